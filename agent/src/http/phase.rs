//! `/v1/phase` (get, set, wait with `?wait=&at_least=`) and shutdown: `POST /v1/shutdown`
//! sets the phase to `draining`; `POST /quitquitquit` is the same, for Envoy and scuttle
//! users. Neither stops the agent: it keeps serving the pod while it drains.

use axum::Json;
use axum::extract::State;
use podsignal_client::{Coordinator, Phase};
use podsignal_proto::api::{PhaseView, Reason, SetPhase};
use serde::Deserialize;

use super::caller::Caller;
use super::error::{ApiJson, ApiQuery, OptionalJson};
use super::{ApiError, AppState, Routes};

pub fn routes(r: Routes) -> Routes {
    r.get("/v1/phase", show)
        .put("/v1/phase", set)
        .post("/v1/shutdown", shutdown)
        .post("/quitquitquit", shutdown)
}

/// Query of `GET /v1/phase`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShowQuery {
    /// Wait until the phase is `at_least` or later.
    wait: Option<String>,
    /// The phase to wait for (required with `wait`).
    at_least: Option<Phase>,
}

async fn show(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ShowQuery>,
) -> Result<Json<PhaseView>, ApiError> {
    let volume = state.volume();
    match (state.wait_param(q.wait.as_deref())?, q.at_least) {
        (Some(wait), Some(at_least)) => {
            let _slot = state.waiter()?;
            state
                .until_shutdown(volume.wait_phase(at_least, Some(wait)))
                .await?;
        }
        (Some(_), None) => return Err(ApiError::bad_request("wait needs at_least=PHASE")),
        (None, _) => {}
    }
    let record = volume.phase().await?;
    Ok(Json(PhaseView {
        phase: record.as_ref().map_or(Phase::Starting, |r| r.phase),
        record,
    }))
}

/// Sets the phase; answers like `GET`, `{phase, record}`.
async fn set(
    Caller(volume): Caller,
    ApiJson(body): ApiJson<SetPhase>,
) -> Result<Json<PhaseView>, ApiError> {
    let record = volume
        .set_phase(body.phase, body.reason.as_deref(), body.force)
        .await?;
    Ok(Json(PhaseView {
        phase: record.phase,
        record: Some(record),
    }))
}

/// Sets `draining`, unless the pod is draining or stopping already (then nothing changes).
async fn shutdown(
    Caller(volume): Caller,
    OptionalJson(body): OptionalJson<Reason>,
) -> Result<Json<PhaseView>, ApiError> {
    let current = volume.phase().await?;
    if let Some(r) = current.filter(|r| r.phase >= Phase::Draining) {
        return Ok(Json(PhaseView {
            phase: r.phase,
            record: Some(r),
        }));
    }
    let reason = body
        .reason
        .unwrap_or_else(|| "shutdown requested over HTTP".to_owned());
    let record = volume
        .set_phase(Phase::Draining, Some(&reason), false)
        .await?;
    tracing::info!("phase set to draining: {reason}");
    Ok(Json(PhaseView {
        phase: record.phase,
        record: Some(record),
    }))
}
