//! The HTTP transport: [`AgentClient`] calls a `podsignal agent` and offers the same
//! operations as [`crate::Volume`], with the same results and the same typed errors (a wait
//! that runs out is [`Error::Timeout`], a busy lock [`Error::LockBusy`], and so on).
//!
//! - `conn`: TCP and unix-socket connections, pooled.
//! - `hold`: locks, leaderships and held readiness tied to one open response ([`AgentHold`]).
//! - `sse`: the event stream, resumed with `Last-Event-ID` after a dropped connection.
//! - `request`: building requests, long-polls, and mapping answers to typed errors.
//!
//! Long waits are split into long-polls no longer than the agent allows; the client re-polls
//! until its own deadline, so `timeout: None` waits forever over HTTP too.

mod conn;
mod hold;
mod request;
mod sse;

use std::sync::Arc;
use std::time::Duration;

use http::Method;
use podsignal_proto::api::{
    Grant, IDEMPOTENCY_KEY_HEADER, LeaderView, PhaseView, Publish, Reason, SetPhase, SetReadiness,
};
use podsignal_proto::{Event, FencingToken, HolderRecord, Name, Phase, PhaseRecord};

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
/// use podsignal_client::http::AgentClient;
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
}

impl AgentClient {
    /// A client of the agent at `url` (`http://HOST:PORT` or `unix:PATH`), sending `token` as
    /// a bearer token if given. Does no I/O: the first call connects.
    pub fn new(url: &str, token: Option<String>) -> Result<AgentClient> {
        let endpoint = Endpoint::parse(url)?;
        Ok(AgentClient {
            inner: Arc::new(Inner {
                url: url.trim_end_matches('/').to_owned(),
                pool: Pool::new(endpoint),
                token,
            }),
        })
    }

    /// The agent's URL, as given.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    // ---- readiness ----

    /// Writes a sticky ready record.
    pub async fn set_ready(&self, name: &Name, reason: Option<&str>) -> Result<()> {
        self.put_readiness(name, true, reason).await
    }

    /// Writes a sticky unready record.
    pub async fn set_unready(&self, name: &Name, reason: Option<&str>) -> Result<()> {
        self.put_readiness(name, false, reason).await
    }

    async fn put_readiness(&self, name: &Name, ready: bool, reason: Option<&str>) -> Result<()> {
        let body = SetReadiness {
            ready,
            reason: reason.map(str::to_owned),
        };
        let _: Readiness = self
            .json(Method::PUT, format!("/v1/readiness/{name}"), Some(&body))
            .await?;
        Ok(())
    }

    /// Marks `name` ready for as long as the returned hold lives (the agent keeps the
    /// record's liveness while this connection stays open).
    pub async fn hold_ready(&self, name: &Name, reason: Option<&str>) -> Result<AgentHold> {
        let body = Reason {
            reason: reason.map(str::to_owned),
        };
        self.hold(format!("/v1/readiness/{name}/hold"), Some(&body), None)
            .await
    }

    /// One readiness record, evaluated.
    pub async fn readiness(&self, name: &Name) -> Result<Readiness> {
        self.json::<(), _>(Method::GET, format!("/v1/readiness/{name}"), None)
            .await
    }

    /// Every readiness record, evaluated, sorted by name.
    pub async fn list_readiness(&self) -> Result<Vec<Readiness>> {
        self.json::<(), _>(Method::GET, "/v1/readiness".into(), None)
            .await
    }

    /// Waits until every name (or one, with [`WaitMode::Any`]) is ready.
    pub async fn wait_ready(
        &self,
        names: &[Name],
        mode: WaitMode,
        timeout: Option<Duration>,
    ) -> Result<()> {
        self.wait_readiness(names, mode, true, timeout).await
    }

    /// Waits until every name (or one) is not ready.
    pub async fn wait_unready(
        &self,
        names: &[Name],
        mode: WaitMode,
        timeout: Option<Duration>,
    ) -> Result<()> {
        self.wait_readiness(names, mode, false, timeout).await
    }

    async fn wait_readiness(
        &self,
        names: &[Name],
        mode: WaitMode,
        want: bool,
        timeout: Option<Duration>,
    ) -> Result<()> {
        let list = names.iter().map(Name::as_str).collect::<Vec<_>>().join(",");
        let mode = match mode {
            WaitMode::All => "all",
            WaitMode::Any => "any",
        };
        let state = if want { "ready" } else { "unready" };
        let _: Vec<Readiness> = self
            .long_poll(timeout, |wait| {
                format!("/v1/readiness?names={list}&mode={mode}&state={state}&wait={wait}")
            })
            .await?;
        Ok(())
    }

    // ---- locks ----

    /// Acquires lock `name`, waiting up to `timeout` (`None`: forever). The lock stays held
    /// while the returned hold lives.
    pub async fn lock(&self, name: &Name, timeout: Option<Duration>) -> Result<AgentHold> {
        self.hold(format!("/v1/locks/{name}/hold"), None::<&()>, Some(timeout))
            .await
    }

    /// Acquires lock `name` if it is free now; [`Error::LockBusy`] if not.
    pub async fn try_lock(&self, name: &Name) -> Result<AgentHold> {
        self.hold(format!("/v1/locks/{name}/hold"), None::<&()>, None)
            .await
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

    /// The state of lock `name`.
    pub async fn lock_status(&self, name: &Name) -> Result<LockStatus> {
        self.json::<(), _>(Method::GET, format!("/v1/locks/{name}"), None)
            .await
    }

    /// Every lock, sorted by name.
    pub async fn list_locks(&self) -> Result<Vec<LockStatus>> {
        self.json::<(), _>(Method::GET, "/v1/locks".into(), None)
            .await
    }

    // ---- leaders ----

    /// Campaigns for leadership of `name`, waiting up to `timeout` (`None`: forever).
    pub async fn campaign(&self, name: &Name, timeout: Option<Duration>) -> Result<AgentHold> {
        self.hold(
            format!("/v1/leaders/{name}/hold"),
            None::<&()>,
            Some(timeout),
        )
        .await
    }

    /// The current leader of `name`, or `None` if nobody leads now.
    pub async fn leader(&self, name: &Name) -> Result<Option<HolderRecord>> {
        let view: LeaderView = self
            .json::<(), _>(Method::GET, format!("/v1/leaders/{name}"), None)
            .await?;
        Ok(view.leader)
    }

    /// Every campaign, as lock statuses.
    pub async fn list_leaders(&self) -> Result<Vec<LockStatus>> {
        self.json::<(), _>(Method::GET, "/v1/leaders".into(), None)
            .await
    }

    /// Waits until the leader of `name` differs from `known` (by token; `None`: no leader).
    pub async fn wait_leader_change(
        &self,
        name: &Name,
        known: Option<FencingToken>,
        timeout: Option<Duration>,
    ) -> Result<Option<HolderRecord>> {
        let known = known.map_or("none".to_owned(), |t| t.to_string());
        let view: LeaderView = self
            .long_poll(timeout, |wait| {
                format!("/v1/leaders/{name}?token={known}&wait={wait}")
            })
            .await?;
        Ok(view.leader)
    }

    // ---- events ----

    /// Appends an event and returns it with its sequence number.
    pub async fn publish(&self, kind: &Name, data: Option<serde_json::Value>) -> Result<Event> {
        let body = Publish {
            kind: kind.clone(),
            data,
        };
        self.json(Method::POST, "/v1/events".into(), Some(&body))
            .await
    }

    /// The events after `since`, at most `limit`; see [`crate::Volume::read_events`].
    pub async fn read_events(&self, since: u64, limit: usize, strict: bool) -> Result<Vec<Event>> {
        let path = format!("/v1/events?since={since}&limit={limit}&strict={strict}");
        self.json::<(), _>(Method::GET, path, None).await
    }

    /// The sequence number of the newest event, 0 if there is none.
    pub async fn last_event_seq(&self) -> Result<u64> {
        Ok(self.status().await?.events.last_seq)
    }

    /// A stream of events after `since` (`None`: from now on), over Server-Sent Events,
    /// reconnecting with `Last-Event-ID` if the connection drops.
    pub async fn watch_events(&self, since: Option<u64>) -> Result<EventStream> {
        sse::watch(self.clone(), since).await
    }

    // ---- phase ----

    /// The phase record, or `None` if no phase was ever set.
    pub async fn phase(&self) -> Result<Option<PhaseRecord>> {
        let view: PhaseView = self
            .json::<(), _>(Method::GET, "/v1/phase".into(), None)
            .await?;
        Ok(view.record)
    }

    /// The current phase, `starting` if none was set.
    pub async fn current_phase(&self) -> Result<Phase> {
        let view: PhaseView = self
            .json::<(), _>(Method::GET, "/v1/phase".into(), None)
            .await?;
        Ok(view.phase)
    }

    /// Sets the phase; see [`crate::Volume::set_phase`].
    pub async fn set_phase(
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
        self.json(Method::PUT, "/v1/phase".into(), Some(&body))
            .await
    }

    /// Waits until the phase is `at_least` or later.
    pub async fn wait_phase(&self, at_least: Phase, timeout: Option<Duration>) -> Result<Phase> {
        let view: PhaseView = self
            .long_poll(timeout, |wait| {
                format!("/v1/phase?at_least={at_least}&wait={wait}")
            })
            .await?;
        Ok(view.phase)
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

    /// Everything in the shared directory.
    pub async fn status(&self) -> Result<Status> {
        self.json::<(), _>(Method::GET, "/v1/status".into(), None)
            .await
    }
}
