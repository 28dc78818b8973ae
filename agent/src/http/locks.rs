//! `/v1/locks`: list, show (holder and fencing token), acquire (`?wait=`; without it, try
//! once), held either for as long as a response stays open (`/hold`) or as a lease the caller
//! renews (`?ttl=`, `/renew`, `DELETE`). Leader campaigns (`/v1/leaders`) reuse all of this
//! with [`Kind::Leader`].

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use podsignal_client::{FencingToken, Leadership, LockGuard, LockStatus, Name};
use podsignal_proto::api::{ErrorCode, Grant, IDEMPOTENCY_KEY_HEADER};
use serde::Deserialize;

use super::error::{ApiQuery, parse_duration, parse_name};
use super::leases::Begun;
use super::{ApiError, AppState, Routes, hold};

/// Locks or leader campaigns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `/v1/locks`.
    Lock,
    /// `/v1/leaders`.
    Leader,
}

impl Kind {
    /// How messages name it.
    pub fn word(self) -> &'static str {
        match self {
            Kind::Lock => "lock",
            Kind::Leader => "leadership of",
        }
    }
}

/// A lock or leadership the agent holds.
#[derive(Debug)]
pub enum Held {
    /// A lock.
    Lock(LockGuard),
    /// A leadership.
    Leader(Leadership),
}

impl Held {
    /// The fencing token granted.
    pub fn token(&self) -> FencingToken {
        match self {
            Held::Lock(g) => g.token(),
            Held::Leader(l) => l.token(),
        }
    }
}

/// The longest lease accepted.
const MAX_TTL: Duration = Duration::from_secs(3600);
/// The lease ttl when none is given.
const DEFAULT_TTL: Duration = Duration::from_secs(30);

/// Which handlers serve, as a type: `hold::<Locks>` or `hold::<Leaders>`.
pub trait Scope: Send + Sync + 'static {
    /// The kind.
    const KIND: Kind;
}

/// `/v1/locks`.
pub struct Locks;

impl Scope for Locks {
    const KIND: Kind = Kind::Lock;
}

pub fn routes(r: Routes) -> Routes {
    r.get("/v1/locks", list)
        .get("/v1/locks/{name}", show)
        .post("/v1/locks/{name}", acquire_lease::<Locks>)
        .delete("/v1/locks/{name}", release_lease::<Locks>)
        .post("/v1/locks/{name}/hold", hold::<Locks>)
        .post("/v1/locks/{name}/renew", renew_lease::<Locks>)
}

async fn list(State(state): State<AppState>) -> Result<Json<Vec<LockStatus>>, ApiError> {
    Ok(Json(state.volume().list_locks()?))
}

async fn show(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<LockStatus>, ApiError> {
    let name = parse_name("lock", &name)?;
    Ok(Json(state.volume().lock_status(&name)))
}

/// Query of acquisitions.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcquireQuery {
    /// Wait up to this long; absent: try once.
    wait: Option<String>,
    /// Lease time to live (lease acquisitions only).
    ttl: Option<String>,
}

/// Query of renewals and releases.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseQuery {
    /// The lease id from the grant.
    lease: String,
    /// A new time to live (renew only).
    ttl: Option<String>,
}

/// Acquires (waiting if asked to), counting the wait in the waiter limit and the histogram.
pub async fn acquire(
    state: &AppState,
    kind: Kind,
    name: &Name,
    wait: Option<Duration>,
) -> Result<Held, ApiError> {
    let volume = state.volume();
    let Some(wait) = wait else {
        return Ok(match kind {
            Kind::Lock => Held::Lock(volume.try_lock(name).await?),
            Kind::Leader => Held::Leader(volume.try_campaign(name).await?),
        });
    };
    let started = tokio::time::Instant::now();
    let held = state
        .until_shutdown(async {
            Ok::<_, podsignal_client::Error>(match kind {
                Kind::Lock => Held::Lock(volume.lock(name, Some(wait)).await?),
                Kind::Leader => Held::Leader(volume.campaign(name, Some(wait)).await?),
            })
        })
        .await?;
    state.metrics().observe_lock_wait(started.elapsed());
    Ok(held)
}

fn ttl_param(ttl: Option<&str>) -> Result<Option<Duration>, ApiError> {
    let Some(ttl) = ttl else { return Ok(None) };
    let ttl = parse_duration("ttl", ttl)?;
    if ttl.is_zero() || ttl > MAX_TTL {
        return Err(ApiError::bad_request(format!(
            "ttl must be between 1ms and {}",
            podsignal_proto::format_duration(MAX_TTL)
        )));
    }
    Ok(Some(ttl))
}

pub async fn acquire_lease<S: Scope>(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<AcquireQuery>,
    headers: HeaderMap,
) -> Result<Json<Grant>, ApiError> {
    let kind = S::KIND;
    let name = parse_name(kind.word(), &name)?;
    let wait = state.wait_param(q.wait.as_deref())?;
    let ttl = ttl_param(q.ttl.as_deref())?.unwrap_or(DEFAULT_TTL);
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
    if let Some(k) = &key {
        match leases.begin(kind, &name, k) {
            Begun::Existing(grant) => return Ok(Json(grant)),
            Begun::InProgress => {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    ErrorCode::BadRequest,
                    format!(
                        "a request with Idempotency-Key {k:?} on {} {name} is in progress",
                        kind.word()
                    ),
                ));
            }
            Begun::Acquire => {}
        }
    }
    let slot = wait.map(|_| state.waiter()).transpose()?;
    let held = match acquire(&state, kind, &name, wait).await {
        Ok(h) => h,
        Err(e) => {
            if let Some(k) = &key {
                leases.abandon(kind, &name, k);
            }
            return Err(e);
        }
    };
    drop(slot);
    tracing::info!(
        "{} {name} leased with token {} for {}",
        kind.word(),
        held.token(),
        podsignal_proto::format_duration(ttl)
    );
    Ok(Json(leases.insert(&state, kind, &name, held, ttl, key)))
}

pub async fn renew_lease<S: Scope>(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<LeaseQuery>,
) -> Result<Json<Grant>, ApiError> {
    let kind = S::KIND;
    let name = parse_name(kind.word(), &name)?;
    let ttl = ttl_param(q.ttl.as_deref())?;
    state
        .inner
        .leases
        .renew(kind, &name, &q.lease, ttl)
        .map(Json)
        .ok_or_else(|| no_lease(kind, &name, &q.lease))
}

pub async fn release_lease<S: Scope>(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<LeaseQuery>,
) -> Result<StatusCode, ApiError> {
    let kind = S::KIND;
    let name = parse_name(kind.word(), &name)?;
    if q.ttl.is_some() {
        return Err(ApiError::bad_request("ttl is not a parameter of release"));
    }
    if state.inner.leases.release(kind, &name, &q.lease) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(no_lease(kind, &name, &q.lease))
    }
}

fn no_lease(kind: Kind, name: &Name, lease: &str) -> ApiError {
    let mut err = ApiError::not_found(format!(
        "no lease {lease:?} on {} {name} (released, expired, or never granted)",
        kind.word()
    ));
    err.body.name = Some(name.clone());
    err
}

/// Query of hold requests.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldQuery {
    /// Wait up to this long; absent: try once.
    wait: Option<String>,
}

pub async fn hold<S: Scope>(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<HoldQuery>,
) -> Result<Response, ApiError> {
    let kind = S::KIND;
    let name = parse_name(kind.word(), &name)?;
    let wait = state.wait_param(q.wait.as_deref())?;
    let slot = state.waiter()?;
    let held = acquire(&state, kind, &name, wait).await?;
    let grant = Grant {
        name: name.clone(),
        token: Some(held.token()),
        lease: None,
        ttl_ms: None,
    };
    tracing::info!(
        "{} {name} held with token {} while the connection stays open",
        kind.word(),
        held.token()
    );
    Ok(hold::respond(&state, slot, held, grant).into_response())
}
