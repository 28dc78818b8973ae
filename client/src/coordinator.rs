//! [`Coordinator`]: every coordination operation, defined once and implemented by both
//! transports, [`crate::Volume`] (the shared directory, in this process) and
//! [`crate::http::AgentClient`] (a `podsignal agent` over HTTP). App code and the CLI are
//! written against the trait, so a feature or a fix lands in one place and the transports
//! cannot drift apart.
//!
//! Where the transports differ, the protocol makes them: a hold through the agent is an open
//! connection rather than a flock, so it can be lost if the agent stops
//! ([`Hold::lost`]); everything else behaves the same.
//!
//! To choose the transport at run time, write the app against the trait and pick once:
//!
//! ```no_run
//! use podsignal_client::{Coordinator, Volume, VolumeOptions, http::AgentClient};
//!
//! async fn app(pod: &impl Coordinator) -> podsignal_client::Result<()> {
//!     pod.wait_ready(&["db".parse()?], Default::default(), None).await?;
//!     let _ready = pod.hold_ready(&"web".parse()?, Some("serving")).await?;
//!     Ok(())
//! }
//!
//! # async fn demo() -> podsignal_client::Result<()> {
//! match std::env::var("PODSIGNAL_AGENT") {
//!     Ok(url) => app(&AgentClient::new(&url, None)?).await,
//!     Err(_) => app(&Volume::open("/run/podsignal", VolumeOptions::default()).await?).await,
//! }
//! # }
//! ```

use std::future::Future;
use std::os::fd::BorrowedFd;
use std::time::Duration;

use podsignal_proto::{
    Event, FencingToken, HolderRecord, Name, Phase, PhaseRecord, StopRequest, TombstoneRecord,
};

use crate::error::Result;
use crate::events::EventStream;
use crate::lock::LockStatus;
use crate::readiness::{Readiness, WaitMode};
use crate::status::Status;

/// Locks or leader campaigns: the same mechanism in two namespaces (`locks/`, `leaders/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// `locks/`.
    Lock,
    /// `leaders/`.
    Leader,
}

impl Scope {
    /// How messages name it: "lock m", "leadership of m".
    pub fn word(self) -> &'static str {
        match self {
            Scope::Lock => "lock",
            Scope::Leader => "leadership of",
        }
    }
}

/// How long an acquisition may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Try once: [`crate::Error::LockBusy`] if held.
    TryOnce,
    /// Wait up to this long: [`crate::Error::Timeout`] after.
    Timeout(Duration),
    /// Wait as long as it takes.
    Forever,
}

impl From<Option<Duration>> for Wait {
    /// `None` waits forever.
    fn from(t: Option<Duration>) -> Wait {
        t.map_or(Wait::Forever, Wait::Timeout)
    }
}

/// Something held for as long as this value lives: a lock, a leadership, a held readiness
/// record. Dropping it releases.
pub trait Hold: Send + Sync + std::fmt::Debug {
    /// What is held.
    fn name(&self) -> &Name;

    /// The descriptor that keeps it held: the locked file, the liveness file, or the
    /// connection to the agent. A child process that inherits it keeps it held too (as with
    /// `flock(1)`), so it is released only once every process holding a copy is gone.
    fn descriptor(&self) -> BorrowedFd<'_>;

    /// Resolves if the hold is lost while this value lives (never, on the volume: a flock
    /// this process holds cannot be taken from it; through the agent, when the agent stops or
    /// the connection breaks). Returns why.
    fn lost(&self) -> impl Future<Output = String> + Send;
}

/// A held lock or leadership.
pub trait LockHold: Hold {
    /// The fencing token of this grant.
    fn token(&self) -> FencingToken;
}

/// A held readiness record.
pub trait ReadinessHold: Hold {
    /// Changes the held record's state (it stays held).
    fn set(&self, ready: bool, reason: Option<&str>) -> impl Future<Output = Result<()>> + Send;

    /// Retracts now: the record says unready with `reason` (if it is still this hold's), and
    /// the hold ends. Dropping it does the same with "holder released it".
    fn retract(self, reason: &str) -> impl Future<Output = Result<()>> + Send;
}

/// Every coordination operation; see the module docs.
pub trait Coordinator: Clone + Send + Sync + 'static {
    /// A held readiness record ([`Coordinator::hold_ready`]).
    type ReadinessHold: ReadinessHold + 'static;
    /// A held lock or leadership ([`Coordinator::acquire`]).
    type LockHold: LockHold + 'static;

    /// Where the operations go: the directory, or the agent's URL.
    fn describe(&self) -> String;

    // ---- readiness ----

    /// Writes a sticky readiness record (it stays until changed), and returns it evaluated.
    fn set_readiness(
        &self,
        name: &Name,
        ready: bool,
        reason: Option<&str>,
    ) -> impl Future<Output = Result<Readiness>> + Send;

    /// Writes a held ready record that counts while the returned hold lives.
    fn hold_ready(
        &self,
        name: &Name,
        reason: Option<&str>,
    ) -> impl Future<Output = Result<Self::ReadinessHold>> + Send;

    /// One readiness record, evaluated (a missing or bad record is "not ready", with why).
    fn readiness(&self, name: &Name) -> impl Future<Output = Result<Readiness>> + Send;

    /// Every readiness record, evaluated, sorted by name.
    fn list_readiness(&self) -> impl Future<Output = Result<Vec<Readiness>>> + Send;

    /// Waits until every name (or one, with [`WaitMode::Any`]) is ready (`want`), or not
    /// ready; `timeout: None` waits forever. Returns the evaluations the wait ended on, one
    /// per name in order (no second read). On timeout the error names each unmet name.
    fn wait_readiness(
        &self,
        names: &[Name],
        mode: WaitMode,
        want: bool,
        timeout: Option<Duration>,
    ) -> impl Future<Output = Result<Vec<Readiness>>> + Send;

    // ---- locks and leaders ----

    /// Acquires lock (or leadership) `name`, waiting as `wait` says. Held while the returned
    /// hold lives.
    fn acquire(
        &self,
        scope: Scope,
        name: &Name,
        wait: Wait,
    ) -> impl Future<Output = Result<Self::LockHold>> + Send;

    /// The state of a lock or campaign, as an observer sees it.
    fn lock_status(
        &self,
        scope: Scope,
        name: &Name,
    ) -> impl Future<Output = Result<LockStatus>> + Send;

    /// Every lock (or campaign), sorted by name.
    fn list_locks(&self, scope: Scope) -> impl Future<Output = Result<Vec<LockStatus>>> + Send;

    /// Waits until the leader of `name` differs from `known` (by token; `None`: no leader)
    /// and returns the new one.
    fn wait_leader_change(
        &self,
        name: &Name,
        known: Option<FencingToken>,
        timeout: Option<Duration>,
    ) -> impl Future<Output = Result<Option<HolderRecord>>> + Send;

    // ---- events ----

    /// Appends an event and returns it with its sequence number.
    fn publish(
        &self,
        kind: &Name,
        data: Option<serde_json::Value>,
    ) -> impl Future<Output = Result<Event>> + Send;

    /// The events after `since` (0: from the oldest kept), at most `limit`. If the events
    /// right after `since` were rotated away: with `strict`, [`crate::Error::EventsRotated`];
    /// without, the events from the oldest kept on (the loss is logged).
    fn read_events(
        &self,
        since: u64,
        limit: usize,
        strict: bool,
    ) -> impl Future<Output = Result<Vec<Event>>> + Send;

    /// The sequence number of the newest event, 0 if there is none.
    fn last_event_seq(&self) -> impl Future<Output = Result<u64>> + Send;

    /// A stream of the events after `since` (`None`: only those published from now on) that
    /// waits for new ones. A loss (events rotated away before the stream read them) is an
    /// [`crate::Error::EventsRotated`] item; the stream goes on after it.
    fn watch_events(&self, since: Option<u64>) -> impl Future<Output = Result<EventStream>> + Send;

    // ---- phase ----

    /// The phase record, or `None` if no phase was ever set (the pod is `starting`).
    fn phase(&self) -> impl Future<Output = Result<Option<PhaseRecord>>> + Send;

    /// Sets the phase and publishes a `phase` event. Moving back needs `force`.
    fn set_phase(
        &self,
        phase: Phase,
        reason: Option<&str>,
        force: bool,
    ) -> impl Future<Output = Result<PhaseRecord>> + Send;

    /// Waits until the phase is `at_least` or later, and returns it.
    fn wait_phase(
        &self,
        at_least: Phase,
        timeout: Option<Duration>,
    ) -> impl Future<Output = Result<Phase>> + Send;

    // ---- exits (tombstones) and stop requests ----

    /// The tombstone of the container running `run --name NAME`, if it exited since it last
    /// started.
    fn tombstone(
        &self,
        name: &Name,
    ) -> impl Future<Output = Result<Option<TombstoneRecord>>> + Send;

    /// Writes a tombstone (for `run`).
    fn write_tombstone(&self, record: &TombstoneRecord) -> impl Future<Output = Result<()>> + Send;

    /// A container named `name` starts: its old tombstone and stop request are removed.
    fn starting(&self, name: &Name) -> impl Future<Output = Result<()>> + Send;

    /// Waits until `name` has a tombstone (with exit code `code`, if given), and returns it.
    fn wait_exit(
        &self,
        name: &Name,
        code: Option<u8>,
        timeout: Option<Duration>,
    ) -> impl Future<Output = Result<TombstoneRecord>> + Send;

    /// Asks the container running `run --name NAME` to stop.
    fn request_stop(
        &self,
        name: &Name,
        reason: Option<&str>,
    ) -> impl Future<Output = Result<StopRequest>> + Send;

    /// Waits until a valid stop request for `name` exists, takes it (removes it) and returns
    /// it. A hostile or broken request file (a symlink, a FIFO, garbage) is reported and
    /// ignored, never acted on.
    fn take_stop_request(&self, name: &Name) -> impl Future<Output = Result<StopRequest>> + Send;

    // ---- everything ----

    /// Everything in the shared directory at one moment.
    fn status(&self) -> impl Future<Output = Result<Status>> + Send;

    // ---- written once, on top of the above ----

    /// Writes a sticky ready record.
    fn set_ready(
        &self,
        name: &Name,
        reason: Option<&str>,
    ) -> impl Future<Output = Result<()>> + Send {
        async move { self.set_readiness(name, true, reason).await.map(drop) }
    }

    /// Writes a sticky unready record.
    fn set_unready(
        &self,
        name: &Name,
        reason: Option<&str>,
    ) -> impl Future<Output = Result<()>> + Send {
        async move { self.set_readiness(name, false, reason).await.map(drop) }
    }

    /// Waits until every name (or one) is ready.
    fn wait_ready(
        &self,
        names: &[Name],
        mode: WaitMode,
        timeout: Option<Duration>,
    ) -> impl Future<Output = Result<()>> + Send {
        let wait = self.wait_readiness(names, mode, true, timeout);
        async move { wait.await.map(drop) }
    }

    /// Waits until every name (or one) is not ready: absent, unready, or its holder gone.
    fn wait_unready(
        &self,
        names: &[Name],
        mode: WaitMode,
        timeout: Option<Duration>,
    ) -> impl Future<Output = Result<()>> + Send {
        let wait = self.wait_readiness(names, mode, false, timeout);
        async move { wait.await.map(drop) }
    }

    /// Acquires lock `name`, waiting up to `timeout` (`None`: forever).
    fn lock(
        &self,
        name: &Name,
        timeout: Option<Duration>,
    ) -> impl Future<Output = Result<Self::LockHold>> + Send {
        self.acquire(Scope::Lock, name, timeout.into())
    }

    /// Acquires lock `name` if it is free now; [`crate::Error::LockBusy`] if not.
    fn try_lock(&self, name: &Name) -> impl Future<Output = Result<Self::LockHold>> + Send {
        self.acquire(Scope::Lock, name, Wait::TryOnce)
    }

    /// Campaigns for leadership of `name`, waiting up to `timeout` (`None`: forever).
    fn campaign(
        &self,
        name: &Name,
        timeout: Option<Duration>,
    ) -> impl Future<Output = Result<Self::LockHold>> + Send {
        self.acquire(Scope::Leader, name, timeout.into())
    }

    /// The current leader of `name`, or `None` if nobody leads now.
    fn leader(&self, name: &Name) -> impl Future<Output = Result<Option<HolderRecord>>> + Send {
        async move {
            Ok(self
                .lock_status(Scope::Leader, name)
                .await?
                .current_holder())
        }
    }

    /// The current phase (`starting` if none was set).
    fn current_phase(&self) -> impl Future<Output = Result<Phase>> + Send {
        async move { Ok(self.phase().await?.map_or(Phase::Starting, |r| r.phase)) }
    }
}
