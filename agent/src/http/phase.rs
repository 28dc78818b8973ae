//! `/v1/phase` (get, set, wait with `?wait=&at_least=`) and shutdown: `POST /v1/shutdown`
//! sets the phase to `draining` and the agent keeps serving the pod while it drains;
//! `POST /quitquitquit` sets `draining` too and then stops the agent gracefully, as Envoy,
//! pilot-agent and cloud-sql-proxy do on it (scuttle-style Jobs call it to end a sidecar).

use axum::Json;
use axum::extract::State;
use podsignal_client::{Coordinator, Phase};
use podsignal_proto::api::{PhaseView, Reason, SetPhase};
use schemars::JsonSchema;
use serde::Deserialize;

use super::caller::Caller;
use super::error::{ApiJson, ApiQuery, OptionalJson};
use super::params::Dur;
use super::{Answer, ApiError, AppState, Doc, Routes, schema};

pub fn routes(r: Routes) -> Routes {
    let shutdown_doc = |summary| {
        Doc::new(summary, Answer::Json(200, schema::<PhaseView>))
            .body(schema::<Reason>, false)
            .errors(&[413, 415])
    };
    r.get(
        "/v1/phase",
        show,
        Doc::new(
            "The pod phase (starting if never set) and its record; with wait and at_least, long-poll until it is at least that.",
            Answer::Json(200, schema::<PhaseView>),
        )
        .query(schema::<ShowQuery>)
        .errors(&[408]),
    )
    .put(
        "/v1/phase",
        set,
        Doc::new(
            "Set the pod phase (forward only, unless force).",
            Answer::Json(200, schema::<PhaseView>),
        )
        .body(schema::<SetPhase>, true)
        .errors(&[413, 415]),
    )
    .post(
        "/v1/shutdown",
        shutdown,
        shutdown_doc("Set the phase to draining (unless draining or stopping already); the agent keeps serving."),
    )
    .post(
        "/quitquitquit",
        quit,
        shutdown_doc("Set the phase to draining (unless draining or stopping already), then stop the agent: open requests get their answer, leases are released, it exits 0."),
    )
}

/// Query of `GET /v1/phase`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ShowQuery {
    /// Wait until the phase is `at_least` or later (capped by --max-wait; 408 after).
    wait: Option<Dur>,
    /// The phase to wait for; without it, `wait` waits for the phase after the current one
    /// (and answers at once when the pod is already `stopping`).
    at_least: Option<Phase>,
}

async fn show(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ShowQuery>,
) -> Result<Json<PhaseView>, ApiError> {
    let volume = state.volume();
    let mut record = volume.phase().await?;
    if let Some(wait) = state.wait_param(q.wait) {
        let current = record.as_ref().map_or(Phase::Starting, |r| r.phase);
        if let Some(at_least) = q.at_least.or_else(|| current.next()) {
            let _slot = state.waiter()?;
            state
                .until_shutdown(volume.wait_phase(at_least, Some(wait)))
                .await?;
            record = volume.phase().await?;
        }
    }
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

/// `POST /quitquitquit`: [`shutdown`], then the agent stops as on SIGTERM. The answer still
/// goes out: the connection serving it finishes its request before it closes.
async fn quit(
    State(state): State<AppState>,
    caller: Caller,
    body: OptionalJson<Reason>,
) -> Result<Json<PhaseView>, ApiError> {
    let answer = shutdown(caller, body).await?;
    tracing::info!("POST /quitquitquit: stopping the agent");
    state.shutdown().cancel();
    Ok(answer)
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
