//! Operations: `/healthz` (the process answers), `/readyz` (the directory is writable, flock
//! works, the watcher runs), `/metrics` (Prometheus text), `/openapi.json`, and
//! `/v1/status` (everything in the shared directory at once).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use podsignal_client::{Coordinator, Status};
use podsignal_proto::api::ErrorCode;

use super::{ApiError, AppState, Routes, metrics, openapi};

pub fn routes(r: Routes) -> Routes {
    r.get("/healthz", healthz)
        .get("/readyz", readyz)
        .get("/metrics", metrics_text)
        .get("/openapi.json", openapi_json)
        .get("/v1/status", status)
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn readyz(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
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
    Ok(Json(
        serde_json::json!({ "status": "ready", "dir": state.volume().path() }),
    ))
}

async fn metrics_text(State(state): State<AppState>) -> Response {
    let mut response = metrics::render(&state).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

async fn openapi_json() -> Json<serde_json::Value> {
    Json(openapi::document())
}

async fn status(State(state): State<AppState>) -> Result<Json<Status>, ApiError> {
    Ok(Json(state.volume().status().await?))
}
