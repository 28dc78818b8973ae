//! `/v1/readiness`: list, get, set (sticky), hold (held while a response stays open), and
//! wait: `?wait=DUR` on the list (with `names=`) or on one name long-polls until the
//! condition holds, or answers 408 `timeout` naming what is missing.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use podsignal_client::{Name, Readiness, WaitMode};
use podsignal_proto::api::{Grant, Reason, SetReadiness};
use serde::Deserialize;

use super::error::{ApiJson, ApiQuery, OptionalJson, parse_name, parse_names};
use super::{ApiError, AppState, Routes, hold};

pub fn routes(r: Routes) -> Routes {
    r.get("/v1/readiness", list)
        .get("/v1/readiness/{name}", show)
        .put("/v1/readiness/{name}", set)
        .post("/v1/readiness/{name}/hold", hold_ready)
}

/// `mode=`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Mode {
    #[default]
    All,
    Any,
}

/// `state=`: what to wait for.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Want {
    #[default]
    Ready,
    Unready,
}

/// Query of the list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Comma-separated names (only these; required with `wait`).
    names: Option<String>,
    #[serde(default)]
    mode: Mode,
    #[serde(default)]
    state: Want,
    wait: Option<String>,
}

/// Query of one name.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShowQuery {
    #[serde(default)]
    state: Want,
    wait: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Vec<Readiness>>, ApiError> {
    let names = q
        .names
        .as_deref()
        .map(|n| parse_names("readiness", n))
        .transpose()?;
    let wait = state.wait_param(q.wait.as_deref())?;
    match (names, wait) {
        (None, Some(_)) => Err(ApiError::bad_request("wait needs names=NAME[,NAME...]")),
        (None, None) => Ok(Json(state.volume().list_readiness()?)),
        (Some(names), wait) => {
            if let Some(wait) = wait {
                wait_for(&state, &names, q.mode, q.state, wait).await?;
            }
            Ok(Json(
                names.iter().map(|n| state.volume().readiness(n)).collect(),
            ))
        }
    }
}

async fn show(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<ShowQuery>,
) -> Result<Json<Readiness>, ApiError> {
    let name = parse_name("readiness", &name)?;
    if let Some(wait) = state.wait_param(q.wait.as_deref())? {
        wait_for(
            &state,
            std::slice::from_ref(&name),
            Mode::All,
            q.state,
            wait,
        )
        .await?;
    }
    Ok(Json(state.volume().readiness(&name)))
}

async fn wait_for(
    state: &AppState,
    names: &[Name],
    mode: Mode,
    want: Want,
    wait: std::time::Duration,
) -> Result<(), ApiError> {
    let mode = match mode {
        Mode::All => WaitMode::All,
        Mode::Any => WaitMode::Any,
    };
    let _slot = state.waiter()?;
    let volume = state.volume();
    match want {
        Want::Ready => {
            state
                .until_shutdown(volume.wait_ready(names, mode, Some(wait)))
                .await
        }
        Want::Unready => {
            state
                .until_shutdown(volume.wait_unready(names, mode, Some(wait)))
                .await
        }
    }
}

async fn set(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<SetReadiness>,
) -> Result<Json<Readiness>, ApiError> {
    let name = parse_name("readiness", &name)?;
    let volume = state.volume();
    let reason = body.reason.as_deref();
    if body.ready {
        volume.set_ready(&name, reason).await?;
    } else {
        volume.set_unready(&name, reason).await?;
    }
    Ok(Json(volume.readiness(&name)))
}

async fn hold_ready(
    State(state): State<AppState>,
    Path(name): Path<String>,
    OptionalJson(body): OptionalJson<Reason>,
) -> Result<Response, ApiError> {
    let name = parse_name("readiness", &name)?;
    let slot = state.waiter()?;
    let guard = state
        .volume()
        .hold_ready(&name, body.reason.as_deref())
        .await?;
    let grant = Grant {
        name: name.clone(),
        token: None,
        lease: None,
        ttl_ms: None,
    };
    tracing::info!("readiness {name} held while the connection stays open");
    Ok(hold::respond(&state, slot, guard, grant).into_response())
}
