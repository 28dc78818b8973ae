//! `/v1/locks`: list, show (holder and fencing token), acquire (`?wait=`; without it, try
//! once), held either for as long as a response stays open (`/hold`) or as a lease the caller
//! renews (`?ttl=`, `/renew`, `DELETE`). Leader campaigns (`/v1/leaders`) reuse all of this
//! with [`Scope::Leader`].

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use podsignal_client::{Coordinator, LockGuard, LockHold, LockStatus, Name, Scope, Volume, Wait};
use podsignal_proto::api::{Grant, IDEMPOTENCY_KEY_HEADER};
use schemars::JsonSchema;
use serde::Deserialize;

use super::caller::Caller;
use super::error::{ApiPath, ApiQuery, parse_name};
use super::leases::Begun;
use super::params::Dur;
use super::{Answer, ApiError, AppState, Doc, Routes, hold, schema};

/// The longest lease accepted.
const MAX_TTL: Duration = Duration::from_secs(3600);
/// The lease ttl when none is given.
const DEFAULT_TTL: Duration = Duration::from_secs(30);

/// Which handlers serve, as a type: `hold::<Locks>` or `hold::<Leaders>`.
pub trait Scoped: Send + Sync + 'static {
    /// The scope.
    const SCOPE: Scope;
}

/// `/v1/locks`.
pub struct Locks;

impl Scoped for Locks {
    const SCOPE: Scope = Scope::Lock;
}

pub fn routes(r: Routes) -> Routes {
    r.get(
        "/v1/locks",
        list::<Locks>,
        Doc::new("Every lock.", Answer::Json(200, schema::<Vec<LockStatus>>)),
    )
    .get(
        "/v1/locks/{name}",
        show,
        Doc::new(
            "A lock: held or not, the last holder, the last fencing token.",
            Answer::Json(200, schema::<LockStatus>),
        ),
    )
    .post(
        "/v1/locks/{name}",
        acquire_lease::<Locks>,
        docs::ACQUIRE_LEASE,
    )
    .delete(
        "/v1/locks/{name}",
        release_lease::<Locks>,
        docs::RELEASE_LEASE,
    )
    .post("/v1/locks/{name}/hold", hold::<Locks>, docs::HOLD)
    .post(
        "/v1/locks/{name}/renew",
        renew_lease::<Locks>,
        docs::RENEW_LEASE,
    )
}

/// The docs of the routes locks and leaders share.
pub mod docs {
    use super::*;

    /// `POST .../{name}`.
    pub const ACQUIRE_LEASE: Doc = Doc::new(
        "Acquire as a lease the agent holds until ttl passes without a renewal (try once, or wait); an Idempotency-Key makes retries safe.",
        Answer::Json(200, schema::<Grant>),
    )
    .query(schema::<AcquireQuery>)
    .errors(&[408])
    .links(&[("delete", "", "lease"), ("post", "/renew", "lease")]);
    /// `DELETE .../{name}`.
    pub const RELEASE_LEASE: Doc = Doc::new(
        "Release a lease; answers once the lock is free.",
        Answer::NoContent,
    )
    .query(schema::<ReleaseQuery>)
    .errors(&[404]);
    /// `POST .../{name}/renew`.
    pub const RENEW_LEASE: Doc = Doc::new(
        "Renew a lease: its ttl counts again from now.",
        Answer::Json(200, schema::<Grant>),
    )
    .query(schema::<RenewQuery>)
    .errors(&[404]);
    /// `POST .../{name}/hold`.
    pub const HOLD: Doc = Doc::new(
        "Acquire (try once, or wait) and hold for as long as this response stays open.",
        Answer::Stream(
            "application/x-ndjson",
            "JSON lines: {\"type\":\"held\",\"token\":N,\"heartbeat_ms\":N} first, then heartbeats; released on shutdown.",
        ),
    )
    .query(schema::<HoldQuery>)
    .errors(&[408]);
}

pub async fn list<S: Scoped>(
    State(state): State<AppState>,
) -> Result<Json<Vec<LockStatus>>, ApiError> {
    Ok(Json(state.volume().list_locks(S::SCOPE).await?))
}

async fn show(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<LockStatus>, ApiError> {
    let name = parse_name("lock", &name)?;
    Ok(Json(state.volume().lock_status(Scope::Lock, &name).await?))
}

/// Query of lease acquisitions.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AcquireQuery {
    /// Wait up to this long (capped by --max-wait; 408 after); absent: try once (409 if
    /// held).
    wait: Option<Dur>,
    /// The lease's time to live (default 30s; cut to between 1ms and 1h).
    ttl: Option<Dur>,
}

/// Query of lease renewals.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RenewQuery {
    /// The lease id from the grant.
    lease: LeaseId,
    /// A new time to live (cut to between 1ms and 1h); absent: the lease's own.
    ttl: Option<Dur>,
}

/// Query of lease releases.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseQuery {
    /// The lease id from the grant.
    lease: LeaseId,
}

/// A lease id: 32 hex digits.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct LeaseId(#[schemars(regex(pattern = r"^[0-9a-f]{32}$"))] String);

/// Acquires (waiting if asked to, until the agent shuts down), counting the wait in the
/// histogram. Cancel-safe: a client that goes away abandons the wait, leaving nothing.
pub async fn acquire(
    state: &AppState,
    volume: &Volume,
    scope: Scope,
    name: &Name,
    wait: Option<Duration>,
) -> Result<LockGuard, ApiError> {
    let Some(wait) = wait else {
        return Ok(volume.acquire(scope, name, Wait::TryOnce).await?);
    };
    let started = tokio::time::Instant::now();
    let held = state
        .until_shutdown(volume.acquire(scope, name, Wait::Timeout(wait)))
        .await?;
    state.metrics().observe_lock_wait(started.elapsed());
    Ok(held)
}

/// A lease's time to live, cut to between 1 ms and [`MAX_TTL`] (the grant says what it got).
fn ttl_param(ttl: Option<Dur>) -> Option<Duration> {
    ttl.map(|t| t.0.clamp(Duration::from_millis(1), MAX_TTL))
}

pub async fn acquire_lease<S: Scoped>(
    State(state): State<AppState>,
    Caller(volume): Caller,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<AcquireQuery>,
    headers: HeaderMap,
) -> Result<Json<Grant>, ApiError> {
    let scope = S::SCOPE;
    let name = parse_name(scope.word(), &name)?;
    let wait = state.wait_param(q.wait);
    let ttl = ttl_param(q.ttl).unwrap_or(DEFAULT_TTL);
    let key = headers
        .get(IDEMPOTENCY_KEY_HEADER)
        .map(|v| {
            v.to_str()
                .ok()
                .filter(|k| !k.is_empty() && k.len() <= 200)
                .map(str::to_owned)
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "Idempotency-Key must be 1 to 200 visible ASCII characters",
                    )
                })
        })
        .transpose()?;
    let leases = &state.inner.leases;
    // The reservation of the key lives as long as this request: if the client goes away
    // (this future is dropped) or the acquisition fails, it is released; only a grant keeps
    // the key.
    let reservation = match &key {
        None => None,
        Some(k) => match leases.begin(scope, &name, k) {
            Begun::Existing(grant) => return Ok(Json(grant)),
            Begun::InProgress => {
                let mut err = ApiError::conflict(format!(
                    "a request with Idempotency-Key {k:?} on {} {name} is in progress; retry when it has answered",
                    scope.word()
                ));
                err.body.name = Some(name.clone());
                return Err(err);
            }
            Begun::Acquire(r) => Some(r),
        },
    };
    let slot = wait.map(|_| state.waiter()).transpose()?;
    let held = acquire(&state, &volume, scope, &name, wait).await?;
    drop(slot);
    tracing::info!(
        "{} {name} leased with token {} for {}",
        scope.word(),
        held.token(),
        podsignal_proto::format_duration(ttl)
    );
    Ok(Json(leases.insert(
        &state,
        scope,
        &name,
        held,
        ttl,
        reservation,
    )))
}

pub async fn renew_lease<S: Scoped>(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<RenewQuery>,
) -> Result<Json<Grant>, ApiError> {
    let scope = S::SCOPE;
    let name = parse_name(scope.word(), &name)?;
    let ttl = ttl_param(q.ttl);
    state
        .inner
        .leases
        .renew(scope, &name, &q.lease.0, ttl)
        .map(Json)
        .ok_or_else(|| no_lease(scope, &name, &q.lease.0))
}

pub async fn release_lease<S: Scoped>(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<ReleaseQuery>,
) -> Result<StatusCode, ApiError> {
    let scope = S::SCOPE;
    let name = parse_name(scope.word(), &name)?;
    if state.inner.leases.release(scope, &name, &q.lease.0).await {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(no_lease(scope, &name, &q.lease.0))
    }
}

fn no_lease(scope: Scope, name: &Name, lease: &str) -> ApiError {
    let mut err = ApiError::not_found(format!(
        "no lease {lease:?} on {} {name} (released, expired, or never granted)",
        scope.word()
    ));
    err.body.name = Some(name.clone());
    err
}

/// Query of hold requests.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldQuery {
    /// Wait up to this long (capped by --max-wait; 408 after); absent: try once (409 if
    /// held).
    wait: Option<Dur>,
}

pub async fn hold<S: Scoped>(
    State(state): State<AppState>,
    Caller(volume): Caller,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<HoldQuery>,
) -> Result<Response, ApiError> {
    let scope = S::SCOPE;
    let name = parse_name(scope.word(), &name)?;
    let wait = state.wait_param(q.wait);
    let slot = state.waiter()?;
    let held = acquire(&state, &volume, scope, &name, wait).await?;
    let grant = Grant {
        name: name.clone(),
        token: Some(held.token()),
        lease: None,
        ttl_ms: None,
        heartbeat_ms: None,
        hold: None,
    };
    tracing::info!(
        "{} {name} held with token {} while the connection stays open",
        scope.word(),
        held.token()
    );
    Ok(hold::respond(&state, slot, held, grant).into_response())
}
