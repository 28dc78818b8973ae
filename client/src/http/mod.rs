//! The HTTP transport: [`AgentClient`] calls a `podsignal agent` and implements
//! [`Coordinator`] like [`crate::Volume`], with the same results and the same typed errors
//! (a wait that runs out is [`crate::Error::Timeout`], a busy lock
//! [`crate::Error::LockBusy`], and so on).
//!
//! - `conn`: TCP and unix-socket connections, pooled.
//! - `hold`: locks, leaderships and held readiness tied to one open response ([`AgentHold`]).
//! - `sse`: the event stream, resumed with `Last-Event-ID` after a dropped connection.
//! - `request`: building requests, long-polls, and mapping answers to typed errors.
//!
//! Every request names the caller (its [`Identity`], in the `podsignal-caller` header), so
//! what the agent writes for it (holder records, readiness, events) names the caller, not the
//! agent. Long waits are split into long-polls no longer than the agent allows; the client
//! re-polls until its own deadline, so `timeout: None` waits forever over HTTP too.

mod conn;
mod hold;
mod request;
mod sse;

use std::sync::Arc;
use std::time::Duration;

use http::Method;
use podsignal_proto::api::{
    EVENTS_LOST_HEADER, ExitView, Grant, IDEMPOTENCY_KEY_HEADER, PhaseView, Publish, Reason,
    SetPhase, SetReadiness,
};
use podsignal_proto::{
    Event, FencingToken, HolderRecord, Identity, Name, Phase, PhaseRecord, StopRequest,
    TombstoneRecord,
};

use crate::coordinator::{Coordinator, Scope, Wait};
use crate::error::Result;
use crate::events::EventStream;
use crate::lock::LockStatus;
use crate::readiness::{Readiness, WaitMode};
use crate::status::Status;

pub use hold::AgentHold;

use conn::{Endpoint, Pool};
use request::Call;

/// The longest single long-poll the client asks for; the agent may cap it lower.
const POLL_CHUNK: Duration = Duration::from_secs(60);
/// Added to a long-poll's own duration before the client gives up on the agent.
const RESPONSE_SLACK: Duration = Duration::from_secs(30);
/// The largest response body accepted.
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// A client of a `podsignal agent`. Cheap to clone; clones share idle connections.
///
/// ```no_run
/// # async fn demo() -> podsignal_client::Result<()> {
/// use podsignal_client::{Coordinator, http::AgentClient};
/// let agent = AgentClient::new("http://127.0.0.1:7781", None)?;
/// agent.set_ready(&"web".parse()?, Some("listening")).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct AgentClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    url: String,
    pool: Pool,
    token: Option<String>,
    /// The `podsignal-caller` header value, when this caller can be named in one.
    caller: Option<String>,
}

impl AgentClient {
    /// A client of the agent at `url` (`http://HOST:PORT` or `unix:PATH`), sending `token` as
    /// a bearer token if given, naming this process as the caller. Does no I/O: the first
    /// call connects.
    pub fn new(url: &str, token: Option<String>) -> Result<AgentClient> {
        AgentClient::with_identity(url, token, crate::identity::current())
    }

    /// [`AgentClient::new`], naming the caller `identity` (e.g. with `run --name`'s source).
    pub fn with_identity(
        url: &str,
        token: Option<String>,
        identity: Identity,
    ) -> Result<AgentClient> {
        let endpoint = Endpoint::parse(url)?;
        Ok(AgentClient {
            inner: Arc::new(Inner {
                url: url.trim_end_matches('/').to_owned(),
                pool: Pool::new(endpoint),
                token,
                caller: podsignal_proto::api::caller_header(&identity),
            }),
        })
    }

    /// The agent's URL, as given.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// Acquires lock `name` as a lease that the agent holds until `ttl` passes without a
    /// [`Self::renew_lock_lease`], or [`Self::release_lock_lease`]. `wait: None` tries once.
    /// Retrying with the same `idempotency_key` returns the same grant.
    pub async fn lock_lease(
        &self,
        name: &Name,
        wait: Option<Duration>,
        ttl: Duration,
        idempotency_key: Option<&str>,
    ) -> Result<Grant> {
        let mut path = format!("/v1/locks/{name}?ttl={}ms", ttl.as_millis());
        if let Some(w) = wait {
            path.push_str(&format!("&wait={}ms", w.as_millis()));
        }
        let mut call = Call::new(Method::POST, path, wait.unwrap_or_default());
        if let Some(key) = idempotency_key {
            call.headers.push((IDEMPOTENCY_KEY_HEADER, key));
        }
        self.send_json(call).await
    }

    /// Extends a lock lease by `ttl` from now.
    pub async fn renew_lock_lease(&self, name: &Name, lease: &str, ttl: Duration) -> Result<Grant> {
        let path = format!(
            "/v1/locks/{name}/renew?lease={lease}&ttl={}ms",
            ttl.as_millis()
        );
        self.json::<(), _>(Method::POST, path, None).await
    }

    /// Releases a lock lease.
    pub async fn release_lock_lease(&self, name: &Name, lease: &str) -> Result<()> {
        let call = Call::new(
            Method::DELETE,
            format!("/v1/locks/{name}?lease={lease}"),
            Duration::ZERO,
        );
        self.send(call).await.map(drop)
    }

    /// Asks the pod to drain: sets the phase to `draining` (`POST /v1/shutdown`) unless it
    /// is draining or stopping already, and returns the phase.
    pub async fn shutdown(&self, reason: Option<&str>) -> Result<Phase> {
        let body = Reason {
            reason: reason.map(str::to_owned),
        };
        let view: PhaseView = self
            .json(Method::POST, "/v1/shutdown".into(), Some(&body))
            .await?;
        Ok(view.phase)
    }

    fn scope_path(scope: Scope) -> &'static str {
        match scope {
            Scope::Lock => "/v1/locks",
            Scope::Leader => "/v1/leaders",
        }
    }
}

impl Coordinator for AgentClient {
    type ReadinessHold = AgentHold;
    type LockHold = AgentHold;

    fn describe(&self) -> String {
        format!("the agent at {}", self.url())
    }

    async fn set_readiness(
        &self,
        name: &Name,
        ready: bool,
        reason: Option<&str>,
    ) -> Result<Readiness> {
        let body = SetReadiness {
            ready,
            reason: reason.map(str::to_owned),
            hold: None,
        };
        self.json(Method::PUT, format!("/v1/readiness/{name}"), Some(&body))
            .await
    }

    async fn hold_ready(&self, name: &Name, reason: Option<&str>) -> Result<AgentHold> {
        let body = Reason {
            reason: reason.map(str::to_owned),
        };
        self.hold(
            format!("/v1/readiness/{name}/hold"),
            Some(&body),
            Wait::TryOnce,
        )
        .await
    }

    async fn readiness(&self, name: &Name) -> Result<Readiness> {
        self.json::<(), _>(Method::GET, format!("/v1/readiness/{name}"), None)
            .await
    }

    async fn list_readiness(&self) -> Result<Vec<Readiness>> {
        self.json::<(), _>(Method::GET, "/v1/readiness".into(), None)
            .await
    }

    async fn wait_readiness(
        &self,
        names: &[Name],
        mode: WaitMode,
        want: bool,
        timeout: Option<Duration>,
    ) -> Result<Vec<Readiness>> {
        let list = names.iter().map(Name::as_str).collect::<Vec<_>>().join(",");
        let mode = match mode {
            WaitMode::All => "all",
            WaitMode::Any => "any",
        };
        let state = if want { "ready" } else { "unready" };
        self.long_poll(timeout, |wait| {
            format!("/v1/readiness?names={list}&mode={mode}&state={state}&wait={wait}")
        })
        .await
    }

    async fn acquire(&self, scope: Scope, name: &Name, wait: Wait) -> Result<AgentHold> {
        let path = format!("{}/{name}/hold", Self::scope_path(scope));
        self.hold(path, None::<&()>, wait).await
    }

    async fn lock_status(&self, scope: Scope, name: &Name) -> Result<LockStatus> {
        let path = format!("{}/{name}", Self::scope_path(scope));
        self.json::<(), _>(Method::GET, path, None).await
    }

    async fn list_locks(&self, scope: Scope) -> Result<Vec<LockStatus>> {
        self.json::<(), _>(Method::GET, Self::scope_path(scope).into(), None)
            .await
    }

    async fn wait_leader_change(
        &self,
        name: &Name,
        known: Option<FencingToken>,
        timeout: Option<Duration>,
    ) -> Result<Option<HolderRecord>> {
        let known = known.map_or("none".to_owned(), |t| t.to_string());
        let status: LockStatus = self
            .long_poll(timeout, |wait| {
                format!("/v1/leaders/{name}?token={known}&wait={wait}")
            })
            .await?;
        Ok(status.current_holder())
    }

    async fn publish(&self, kind: &Name, data: Option<serde_json::Value>) -> Result<Event> {
        let body = Publish {
            kind: kind.clone(),
            data,
        };
        self.json(Method::POST, "/v1/events".into(), Some(&body))
            .await
    }

    async fn read_events(&self, since: u64, limit: usize, strict: bool) -> Result<Vec<Event>> {
        let path = format!("/v1/events?since={since}&limit={limit}&strict={strict}");
        let (headers, bytes) = self
            .send_with_headers(Call::new(Method::GET, path.clone(), Duration::ZERO))
            .await?;
        if let Some(lost) = headers
            .get(EVENTS_LOST_HEADER)
            .and_then(|v| v.to_str().ok())
        {
            tracing::warn!("events {lost} were lost: rotated away before they could be read");
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| self.error(None, &path, format!("bad response: {e}")))
    }

    async fn last_event_seq(&self) -> Result<u64> {
        Ok(self.status().await?.events.last_seq)
    }

    async fn watch_events(&self, since: Option<u64>) -> Result<EventStream> {
        sse::watch(self.clone(), since).await
    }

    async fn phase(&self) -> Result<Option<PhaseRecord>> {
        let view: PhaseView = self
            .json::<(), _>(Method::GET, "/v1/phase".into(), None)
            .await?;
        Ok(view.record)
    }

    async fn set_phase(
        &self,
        phase: Phase,
        reason: Option<&str>,
        force: bool,
    ) -> Result<PhaseRecord> {
        let body = SetPhase {
            phase,
            reason: reason.map(str::to_owned),
            force,
        };
        let view: PhaseView = self
            .json(Method::PUT, "/v1/phase".into(), Some(&body))
            .await?;
        view.record
            .ok_or_else(|| self.error(None, "/v1/phase", "the answer has no record".into()))
    }

    async fn wait_phase(&self, at_least: Phase, timeout: Option<Duration>) -> Result<Phase> {
        let view: PhaseView = self
            .long_poll(timeout, |wait| {
                format!("/v1/phase?at_least={at_least}&wait={wait}")
            })
            .await?;
        Ok(view.phase)
    }

    async fn tombstone(&self, name: &Name) -> Result<Option<TombstoneRecord>> {
        let view: ExitView = self
            .json::<(), _>(Method::GET, format!("/v1/exits/{name}"), None)
            .await?;
        Ok(view.tombstone)
    }

    async fn write_tombstone(&self, record: &TombstoneRecord) -> Result<()> {
        let _: ExitView = self
            .json(
                Method::PUT,
                format!("/v1/exits/{}", record.name),
                Some(record),
            )
            .await?;
        Ok(())
    }

    async fn starting(&self, name: &Name) -> Result<()> {
        let call = Call::new(Method::DELETE, format!("/v1/exits/{name}"), Duration::ZERO);
        self.send(call).await.map(drop)
    }

    async fn wait_exit(
        &self,
        name: &Name,
        code: Option<u8>,
        timeout: Option<Duration>,
    ) -> Result<TombstoneRecord> {
        let code = code.map(|c| format!("&code={c}")).unwrap_or_default();
        let view: ExitView = self
            .long_poll(timeout, |wait| {
                format!("/v1/exits/{name}?wait={wait}{code}")
            })
            .await?;
        view.tombstone.ok_or_else(|| {
            self.error(
                None,
                &format!("/v1/exits/{name}"),
                "the answer has no tombstone".into(),
            )
        })
    }

    async fn request_stop(&self, name: &Name, reason: Option<&str>) -> Result<StopRequest> {
        let body = Reason {
            reason: reason.map(str::to_owned),
        };
        self.json(Method::POST, format!("/v1/stop/{name}"), Some(&body))
            .await
    }

    async fn take_stop_request(&self, name: &Name) -> Result<StopRequest> {
        self.long_poll_with(Method::DELETE, None, |wait| {
            format!("/v1/stop/{name}?wait={wait}")
        })
        .await
    }

    async fn status(&self) -> Result<Status> {
        self.json::<(), _>(Method::GET, "/v1/status".into(), None)
            .await
    }
}
