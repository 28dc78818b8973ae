//! `/v1/readiness`: list, get, set (sticky; or, with a hold id, the state of a record this
//! agent holds), hold (held while a response stays open), and wait: `?wait=DUR` on the list
//! (the names given, or every name listed now) or on one name long-polls until the condition
//! holds, or answers 408 `timeout` naming what is missing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use podsignal_client::{Coordinator, Name, Readiness, ReadinessGuard, WaitMode};
use podsignal_proto::api::{Grant, Reason, SetReadiness};
use schemars::JsonSchema;
use serde::Deserialize;

use super::caller::Caller;
use super::error::{ApiJson, ApiPath, ApiQuery, OptionalJson, parse_name};
use super::params::{Dur, Names};
use super::{Answer, ApiError, AppState, Doc, Routes, hold, schema};

pub fn routes(r: Routes) -> Routes {
    r.get(
        "/v1/readiness",
        list,
        Doc::new(
            "Every readiness record, evaluated; with names, only those; with wait, long-poll until they (without names: every name listed now) are ready (or, with state=unready, not).",
            Answer::Json(200, schema::<Vec<Readiness>>),
        )
        .query(schema::<ListQuery>)
        .errors(&[408]),
    )
    .get(
        "/v1/readiness/{name}",
        show,
        Doc::new(
            "One readiness record, evaluated; with wait, long-poll until ready (or not).",
            Answer::Json(200, schema::<Readiness>),
        )
        .query(schema::<ShowQuery>)
        .errors(&[408]),
    )
    .put(
        "/v1/readiness/{name}",
        set,
        Doc::new(
            "Write a sticky readiness record; with hold, change the state of a record this agent holds for you.",
            Answer::Json(200, schema::<Readiness>),
        )
        .body(schema::<SetReadiness>, true)
        .errors(&[404, 413, 415]),
    )
    .post(
        "/v1/readiness/{name}/hold",
        hold_ready,
        Doc::new(
            "Mark ready for as long as this response stays open.",
            Answer::Stream(
                "application/x-ndjson",
                "JSON lines: {\"type\":\"held\",...} first, then heartbeats; released on shutdown.",
            ),
        )
        .body(schema::<Reason>, false)
        .errors(&[413, 415]),
    )
}

/// The readiness records this agent holds now, by (name, hold id), each with the unready
/// reason its client last set: a client may change the state of its own held record (`PUT`
/// with `hold`), no other; and when the hold ends, the record is retracted with the reason
/// the client gave (a client that says why it stops, then closes its connection), else
/// "holder released it".
#[derive(Debug, Default, Clone)]
pub struct Holds(Arc<Mutex<HashMap<HoldKey, Option<String>>>>);

/// A readiness hold: the name and the hold id.
type HoldKey = (Name, String);

/// A readiness hold of this agent: the guard, and its entry in [`Holds`]. Dropped (on the
/// blocking pool, see `hold::release`) when the hold ends.
struct HeldHere {
    holds: Holds,
    key: HoldKey,
    guard: Option<ReadinessGuard>,
}

impl Drop for HeldHere {
    fn drop(&mut self) {
        // Out of the registry first: no PUT reaches a hold being released.
        let given = self
            .holds
            .0
            .lock()
            .ok()
            .and_then(|mut h| h.remove(&self.key))
            .flatten();
        if let Some(guard) = self.guard.take() {
            let reason = given.as_deref().unwrap_or("holder released it");
            if let Err(e) = guard.retract_now(reason) {
                tracing::warn!(
                    "retracting readiness of {}: {}",
                    self.key.0,
                    podsignal_client::error_chain(&e)
                );
            }
        }
    }
}

impl Holds {
    fn register(&self, name: &Name, guard: ReadinessGuard) -> HeldHere {
        let key = (name.clone(), guard.hold_id().to_owned());
        if let Ok(mut h) = self.0.lock() {
            h.insert(key.clone(), None);
        }
        HeldHere {
            holds: self.clone(),
            key,
            guard: Some(guard),
        }
    }

    /// Records what the client set on its hold; false if this agent holds no such hold.
    fn set(&self, name: &Name, hold: &str, ready: bool, reason: Option<&str>) -> bool {
        let Ok(mut h) = self.0.lock() else {
            return false;
        };
        match h.get_mut(&(name.clone(), hold.to_owned())) {
            Some(given) => {
                *given = (!ready).then(|| reason.unwrap_or("unready").to_owned());
                true
            }
            None => false,
        }
    }
}

/// `mode=`: whether every name must hold, or one is enough.
#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Mode {
    #[default]
    All,
    Any,
}

/// `state=`: what to wait for.
#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Want {
    #[default]
    Ready,
    Unready,
}

/// Query of the list.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Only these names (comma-separated); with `wait` and no names, every name listed now.
    names: Option<Names>,
    /// With `wait`: every name (all, the default) or one (any).
    #[serde(default)]
    mode: Mode,
    /// With `wait`: wait until ready (the default) or unready.
    #[serde(default)]
    state: Want,
    /// Long-poll up to this long (capped by --max-wait); 408 when it runs out.
    wait: Option<Dur>,
}

/// Query of one name.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ShowQuery {
    /// With `wait`: wait until ready (the default) or unready.
    #[serde(default)]
    state: Want,
    /// Long-poll up to this long (capped by --max-wait); 408 when it runs out.
    wait: Option<Dur>,
}

async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Vec<Readiness>>, ApiError> {
    let names = q.names.map(|n| n.0);
    let wait = state.wait_param(q.wait);
    let volume = state.volume();
    let names = match (names, wait) {
        (None, None) => return Ok(Json(volume.list_readiness().await?)),
        (Some(names), _) => names,
        (None, Some(_)) => volume
            .list_readiness()
            .await?
            .into_iter()
            .map(|r| r.name)
            .collect(),
    };
    // A long-poll answers with the evaluations its wait ended on: ten thousand waiters
    // woken by one change read nothing more.
    if let Some(wait) = wait {
        return Ok(Json(wait_for(&state, &names, q.mode, q.state, wait).await?));
    }
    let mut out = Vec::with_capacity(names.len());
    for n in &names {
        out.push(volume.readiness(n).await?);
    }
    Ok(Json(out))
}

async fn show(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<ShowQuery>,
) -> Result<Json<Readiness>, ApiError> {
    let name = parse_name("readiness", &name)?;
    if let Some(wait) = state.wait_param(q.wait) {
        let mut ended_on = wait_for(
            &state,
            std::slice::from_ref(&name),
            Mode::All,
            q.state,
            wait,
        )
        .await?;
        if let Some(one) = ended_on.pop() {
            return Ok(Json(one));
        }
    }
    Ok(Json(state.volume().readiness(&name).await?))
}

async fn wait_for(
    state: &AppState,
    names: &[Name],
    mode: Mode,
    want: Want,
    wait: std::time::Duration,
) -> Result<Vec<Readiness>, ApiError> {
    let mode = match mode {
        Mode::All => WaitMode::All,
        Mode::Any => WaitMode::Any,
    };
    let _slot = state.waiter()?;
    let want = matches!(want, Want::Ready);
    state
        .until_shutdown(state.volume().wait_readiness(names, mode, want, Some(wait)))
        .await
}

async fn set(
    State(state): State<AppState>,
    Caller(volume): Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<SetReadiness>,
) -> Result<Json<Readiness>, ApiError> {
    let name = parse_name("readiness", &name)?;
    let reason = body.reason.as_deref();
    let readiness = match &body.hold {
        None => volume.set_readiness(&name, body.ready, reason).await?,
        Some(hold) if state.inner.holds.set(&name, hold, body.ready, reason) => {
            volume
                .set_held_readiness(&name, hold, body.ready, reason)
                .await?
        }
        Some(hold) => {
            return Err(ApiError::not_found(format!(
                "this agent holds no readiness {name} with hold id {hold:?} (released, or never held here)"
            )));
        }
    };
    Ok(Json(readiness))
}

async fn hold_ready(
    State(state): State<AppState>,
    Caller(volume): Caller,
    ApiPath(name): ApiPath<String>,
    OptionalJson(body): OptionalJson<Reason>,
) -> Result<Response, ApiError> {
    let name = parse_name("readiness", &name)?;
    let slot = state.waiter()?;
    let guard = volume.hold_ready(&name, body.reason.as_deref()).await?;
    let hold_id = guard.hold_id().to_owned();
    let held = state.inner.holds.register(&name, guard);
    let grant = Grant {
        name: name.clone(),
        token: None,
        lease: None,
        ttl_ms: None,
        heartbeat_ms: None,
        hold: Some(hold_id),
    };
    tracing::info!("readiness {name} held while the connection stays open");
    Ok(hold::respond(&state, slot, held, grant).into_response())
}
