//! `/v1/exits` (tombstones: how the container running `run --name NAME` exited) and
//! `/v1/stop` (requests that it stop): what `run` and `podsignal stop` do on the volume,
//! over HTTP, so `run`, `stop` and `wait exit:NAME` work the same through `--agent`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use podsignal_client::{Coordinator, StopRequest, TombstoneRecord};
use podsignal_proto::api::{ExitView, Reason};
use schemars::JsonSchema;
use serde::Deserialize;

use super::caller::Caller;
use super::error::{ApiJson, ApiPath, ApiQuery, OptionalJson, parse_name};
use super::params::Dur;
use super::{Answer, ApiError, AppState, Doc, Routes, schema};

pub fn routes(r: Routes) -> Routes {
    r.get(
        "/v1/exits/{name}",
        show,
        Doc::new(
            "The tombstone of run --name NAME (null if it has not exited); with wait, long-poll until it has (with code, that exit code).",
            Answer::Json(200, schema::<ExitView>),
        )
        .query(schema::<ShowQuery>)
        .errors(&[408]),
    )
    .put(
        "/v1/exits/{name}",
        write,
        Doc::new(
            "Write the tombstone of run --name NAME (run through --agent); the path names it, a name in the body is replaced.",
            Answer::Json(200, schema::<ExitView>),
        )
        .body(schema::<TombstoneRecord>, true)
        .errors(&[413, 415]),
    )
    .delete(
        "/v1/exits/{name}",
        starting,
        Doc::new(
            "NAME starts: remove its tombstone and any stop request left from before.",
            Answer::NoContent,
        ),
    )
    .post(
        "/v1/stop/{name}",
        request_stop,
        Doc::new(
            "Ask the container running run --name NAME to stop.",
            Answer::Json(201, schema::<StopRequest>),
        )
        .body(schema::<Reason>, false)
        .errors(&[413, 415]),
    )
    .delete(
        "/v1/stop/{name}",
        take_stop,
        Doc::new(
            "Take the stop request for NAME: wait for one, remove it, answer it (run through --agent).",
            Answer::Json(200, schema::<StopRequest>),
        )
        .query(schema::<TakeQuery>)
        .errors(&[408]),
    )
}

/// Query of `GET /v1/exits/{name}`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ShowQuery {
    /// Wait until there is a tombstone (capped by --max-wait; 408 after).
    wait: Option<Dur>,
    /// With `wait`: the exit code to wait for.
    code: Option<u8>,
}

async fn show(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<ShowQuery>,
) -> Result<Json<ExitView>, ApiError> {
    let name = parse_name("exit", &name)?;
    let volume = state.volume();
    let tombstone = match state.wait_param(q.wait) {
        // One of an older generation is not this run's: none, as on the volume.
        None => match volume.tombstone(&name).await {
            Err(podsignal_client::Error::OlderGeneration { .. }) => None,
            read => read?,
        },
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

/// Writes a tombstone (`run` through `--agent`) under the path's name (a `name` in the body
/// is replaced); its `writer` is kept as sent.
async fn write(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiJson(mut record): ApiJson<TombstoneRecord>,
) -> Result<Json<ExitView>, ApiError> {
    let name = parse_name("exit", &name)?;
    record.name = name.clone();
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
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct TakeQuery {
    /// Wait up to this long for a request (capped by --max-wait; 408 after).
    wait: Dur,
}

/// Takes (waits for, removes and returns) the stop request for `name`: `run --name NAME`
/// through `--agent`. A hostile or broken request file is never one.
async fn take_stop(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<TakeQuery>,
) -> Result<Json<StopRequest>, ApiError> {
    let name = parse_name("stop", &name)?;
    let wait = state.wait_param(Some(q.wait)).unwrap_or_default();
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
