//! `/v1/exits` (tombstones: how the container running `run --name NAME` exited) and
//! `/v1/stop` (requests that it stop): what `run` and `podsignal stop` do on the volume,
//! over HTTP, so `run`, `stop` and `wait exit:NAME` work the same through `--agent`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use podsignal_client::{Coordinator, StopRequest, TombstoneRecord};
use podsignal_proto::api::{ExitView, Reason};
use serde::Deserialize;

use super::caller::Caller;
use super::error::{ApiJson, ApiPath, ApiQuery, OptionalJson, parse_name};
use super::{ApiError, AppState, Routes};

pub fn routes(r: Routes) -> Routes {
    r.get("/v1/exits/{name}", show)
        .put("/v1/exits/{name}", write)
        .delete("/v1/exits/{name}", starting)
        .post("/v1/stop/{name}", request_stop)
        .delete("/v1/stop/{name}", take_stop)
}

/// Query of `GET /v1/exits/{name}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShowQuery {
    /// Wait until there is a tombstone (with exit code `code`, if given).
    wait: Option<String>,
    /// The exit code to wait for.
    code: Option<u8>,
}

async fn show(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<ShowQuery>,
) -> Result<Json<ExitView>, ApiError> {
    let name = parse_name("exit", &name)?;
    let volume = state.volume();
    let tombstone = match state.wait_param(q.wait.as_deref())? {
        None => volume.tombstone(&name).await?,
        Some(wait) => {
            let _slot = state.waiter()?;
            Some(
                state
                    .until_shutdown(volume.wait_exit(&name, q.code, Some(wait)))
                    .await?,
            )
        }
    };
    Ok(Json(ExitView { name, tombstone }))
}

/// Writes a tombstone (`run` through `--agent`); its `writer` is kept as sent.
async fn write(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiJson(record): ApiJson<TombstoneRecord>,
) -> Result<Json<ExitView>, ApiError> {
    let name = parse_name("exit", &name)?;
    if record.name != name {
        return Err(ApiError::bad_request(format!(
            "the tombstone names {:?}, the path {name:?}",
            record.name.as_str()
        )));
    }
    state.volume().write_tombstone(&record).await?;
    Ok(Json(ExitView {
        name,
        tombstone: Some(record),
    }))
}

/// A container starts: removes its tombstone and any stop request left from before.
async fn starting(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let name = parse_name("exit", &name)?;
    state.volume().starting(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn request_stop(
    Caller(volume): Caller,
    ApiPath(name): ApiPath<String>,
    OptionalJson(body): OptionalJson<Reason>,
) -> Result<(StatusCode, Json<StopRequest>), ApiError> {
    let name = parse_name("stop", &name)?;
    let request = volume.request_stop(&name, body.reason.as_deref()).await?;
    Ok((StatusCode::CREATED, Json(request)))
}

/// Query of `DELETE /v1/stop/{name}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TakeQuery {
    /// Wait up to this long for a request (required: 408 after).
    wait: String,
}

/// Takes (waits for, removes and returns) the stop request for `name`: `run --name NAME`
/// through `--agent`. A hostile or broken request file is never one.
async fn take_stop(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<TakeQuery>,
) -> Result<Json<StopRequest>, ApiError> {
    let name = parse_name("stop", &name)?;
    let wait = state.wait_param(Some(&q.wait))?.unwrap_or_default();
    let _slot = state.waiter()?;
    let taken = tokio::time::timeout(wait, state.volume().take_stop_request(&name));
    match state
        .until_shutdown(async { Ok::<_, ApiError>(taken.await) })
        .await?
    {
        Ok(r) => Ok(Json(r?)),
        Err(_) => {
            let mut err = ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                podsignal_proto::api::ErrorCode::Timeout,
                format!("no stop request for {name}"),
            );
            err.body.pending = vec![format!("no stop request for {name}")];
            err.body.after_ms = Some(wait.as_millis() as u64);
            Err(err)
        }
    }
}
