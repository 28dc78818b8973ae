//! Operations: `/healthz` (the process answers), `/readyz` (the directory is writable, flock
//! works, the watcher runs), `/metrics` (Prometheus text) and `/openapi.json`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use podsignal_proto::api::ErrorCode;

use super::{Answer, ApiError, AppState, Doc, Routes, metrics, openapi, schema};

pub fn routes(r: Routes) -> Routes {
    r.get(
        "/healthz",
        healthz,
        Doc::new("The process answers.", Answer::Json(200, schema::<Health>)),
    )
    .get(
        "/readyz",
        readyz,
        Doc::new(
            "The shared directory is writable, flock works, inotify runs (503 not_ready otherwise).",
            Answer::Json(200, schema::<Health>),
        ),
    )
    .get(
        "/metrics",
        metrics_text,
        Doc::new("Prometheus metrics.", Answer::Text),
    )
    .get(
        "/openapi.json",
        openapi_json,
        Doc::new(
            "This document.",
            Answer::Json(200, schema::<serde_json::Value>),
        ),
    )
}

/// `/healthz` and `/readyz`.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
struct Health {
    /// `ok` (healthz) or `ready` (readyz).
    status: &'static str,
    /// readyz: the shared directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    dir: Option<String>,
}

async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok",
        dir: None,
    })
}

async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    if state.shutdown().is_cancelled() {
        return Err(ApiError::shutting_down());
    }
    let volume = state.volume().clone();
    let not_ready =
        |m: String| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::NotReady, m);
    tokio::task::spawn_blocking(move || volume.self_test())
        .await
        .map_err(|e| not_ready(format!("self-test did not finish: {e}")))?
        .map_err(|e| {
            not_ready(format!(
                "self-test failed: {}",
                podsignal_client::error_chain(&e)
            ))
        })?;
    if !state.volume().watch_stats().watching {
        return Err(not_ready(
            "inotify is not running (waiters rely on the rescan alone); see the agent's log".into(),
        ));
    }
    Ok(Json(Health {
        status: "ready",
        dir: Some(state.volume().path().display().to_string()),
    }))
}

async fn metrics_text(State(state): State<AppState>) -> Response {
    let mut response = metrics::render(&state).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

async fn openapi_json() -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        openapi::DOCUMENT,
    )
}
