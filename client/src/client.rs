//! [`Client`]: one API over both transports, the shared directory ([`Volume`]) and the HTTP
//! agent ([`AgentClient`]), so app code (and the CLI's `--agent`) switch transport by config.
//! Methods have the same names and results as on [`Volume`]; what is held (a lock, a
//! leadership, a held readiness record) comes back as a `Held*` value that releases when
//! dropped, whichever transport holds it.

use std::fs::File;
use std::time::Duration;

use podsignal_proto::{Event, FencingToken, HolderRecord, Name, Phase, PhaseRecord};

use crate::error::Result;
use crate::events::EventStream;
use crate::http::{AgentClient, AgentHold};
use crate::leader::Leadership;
use crate::lock::{LockGuard, LockStatus};
use crate::readiness::{Readiness, ReadinessGuard, WaitMode};
use crate::status::Status;
use crate::volume::Volume;

/// The shared directory, directly or through the agent.
///
/// ```no_run
/// # async fn demo() -> podsignal_client::Result<()> {
/// use podsignal_client::{Client, http::AgentClient};
/// let client = Client::Agent(AgentClient::new("http://127.0.0.1:7781", None)?);
/// client.set_ready(&"web".parse()?, None).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub enum Client {
    /// The shared directory, opened in this process.
    Volume(Volume),
    /// A `podsignal agent` over HTTP.
    Agent(AgentClient),
}

/// A held readiness record: see [`Client::hold_ready`].
#[derive(Debug)]
pub enum HeldReadiness {
    /// Held by this process on the volume.
    Volume(ReadinessGuard),
    /// Held by the agent while the connection stays open.
    Agent(AgentHold),
}

/// A held lock: see [`Client::lock`].
#[derive(Debug)]
pub enum HeldLock {
    /// Held by this process on the volume.
    Volume(LockGuard),
    /// Held by the agent while the connection stays open.
    Agent(AgentHold),
}

/// Leadership: see [`Client::campaign`].
#[derive(Debug)]
pub enum HeldLeadership {
    /// Held by this process on the volume.
    Volume(Leadership),
    /// Held by the agent while the connection stays open.
    Agent(AgentHold),
}

impl HeldReadiness {
    /// Retracts now with `reason` (over HTTP: closes the connection; the agent retracts).
    pub fn retract(self, reason: &str) -> Result<()> {
        match self {
            HeldReadiness::Volume(g) => g.retract(reason),
            HeldReadiness::Agent(h) => {
                h.release();
                Ok(())
            }
        }
    }

    /// Resolves if the hold is lost while this value lives (never, on the volume).
    pub async fn lost(&self) -> String {
        match self {
            HeldReadiness::Volume(_) => std::future::pending().await,
            HeldReadiness::Agent(h) => h.lost().await,
        }
    }
}

macro_rules! held_token_api {
    ($t:ident, $volume_token:expr) => {
        impl $t {
            /// The fencing token of this grant.
            pub fn token(&self) -> FencingToken {
                match self {
                    $t::Volume(g) => $volume_token(g),
                    $t::Agent(h) => h.token().unwrap_or(FencingToken(0)),
                }
            }

            /// The locked file, when held on the volume by this process (a child that
            /// inherits it holds the lock too). `None` over HTTP.
            pub fn file(&self) -> Option<&File> {
                match self {
                    $t::Volume(g) => Some(Self::guard_file(g)),
                    $t::Agent(_) => None,
                }
            }

            /// Resolves if the hold is lost while this value lives (never, on the volume:
            /// a flock held by this process cannot be taken away).
            pub async fn lost(&self) -> String {
                match self {
                    $t::Volume(_) => std::future::pending().await,
                    $t::Agent(h) => h.lost().await,
                }
            }

            /// Releases now (the same as dropping it).
            pub fn release(self) {
                drop(self);
            }
        }
    };
}

held_token_api!(HeldLock, LockGuard::token);
held_token_api!(HeldLeadership, Leadership::token);

impl HeldLock {
    fn guard_file(g: &LockGuard) -> &File {
        g.file()
    }
}

impl HeldLeadership {
    fn guard_file(g: &Leadership) -> &File {
        g.guard().file()
    }
}

impl Client {
    /// Writes a sticky ready record.
    pub async fn set_ready(&self, name: &Name, reason: Option<&str>) -> Result<()> {
        match self {
            Client::Volume(v) => v.set_ready(name, reason).await,
            Client::Agent(a) => a.set_ready(name, reason).await,
        }
    }

    /// Writes a sticky unready record.
    pub async fn set_unready(&self, name: &Name, reason: Option<&str>) -> Result<()> {
        match self {
            Client::Volume(v) => v.set_unready(name, reason).await,
            Client::Agent(a) => a.set_unready(name, reason).await,
        }
    }

    /// Writes a held ready record that counts while the returned value lives.
    pub async fn hold_ready(&self, name: &Name, reason: Option<&str>) -> Result<HeldReadiness> {
        Ok(match self {
            Client::Volume(v) => HeldReadiness::Volume(v.hold_ready(name, reason).await?),
            Client::Agent(a) => HeldReadiness::Agent(a.hold_ready(name, reason).await?),
        })
    }

    /// One readiness record, evaluated.
    pub async fn readiness(&self, name: &Name) -> Result<Readiness> {
        match self {
            Client::Volume(v) => Ok(v.readiness(name)),
            Client::Agent(a) => a.readiness(name).await,
        }
    }

    /// Every readiness record, evaluated, sorted by name.
    pub async fn list_readiness(&self) -> Result<Vec<Readiness>> {
        match self {
            Client::Volume(v) => v.list_readiness(),
            Client::Agent(a) => a.list_readiness().await,
        }
    }

    /// Waits until every name (or one, with [`WaitMode::Any`]) is ready.
    pub async fn wait_ready(
        &self,
        names: &[Name],
        mode: WaitMode,
        timeout: Option<Duration>,
    ) -> Result<()> {
        match self {
            Client::Volume(v) => v.wait_ready(names, mode, timeout).await,
            Client::Agent(a) => a.wait_ready(names, mode, timeout).await,
        }
    }

    /// Waits until every name (or one) is not ready.
    pub async fn wait_unready(
        &self,
        names: &[Name],
        mode: WaitMode,
        timeout: Option<Duration>,
    ) -> Result<()> {
        match self {
            Client::Volume(v) => v.wait_unready(names, mode, timeout).await,
            Client::Agent(a) => a.wait_unready(names, mode, timeout).await,
        }
    }

    /// Acquires lock `name`, waiting up to `timeout` (`None`: forever).
    pub async fn lock(&self, name: &Name, timeout: Option<Duration>) -> Result<HeldLock> {
        Ok(match self {
            Client::Volume(v) => HeldLock::Volume(v.lock(name, timeout).await?),
            Client::Agent(a) => HeldLock::Agent(a.lock(name, timeout).await?),
        })
    }

    /// Acquires lock `name` if it is free now.
    pub async fn try_lock(&self, name: &Name) -> Result<HeldLock> {
        Ok(match self {
            Client::Volume(v) => HeldLock::Volume(v.try_lock(name).await?),
            Client::Agent(a) => HeldLock::Agent(a.try_lock(name).await?),
        })
    }

    /// The state of lock `name`.
    pub async fn lock_status(&self, name: &Name) -> Result<LockStatus> {
        match self {
            Client::Volume(v) => Ok(v.lock_status(name)),
            Client::Agent(a) => a.lock_status(name).await,
        }
    }

    /// Every lock, sorted by name.
    pub async fn list_locks(&self) -> Result<Vec<LockStatus>> {
        match self {
            Client::Volume(v) => v.list_locks(),
            Client::Agent(a) => a.list_locks().await,
        }
    }

    /// Campaigns for leadership of `name`, waiting up to `timeout` (`None`: forever).
    pub async fn campaign(&self, name: &Name, timeout: Option<Duration>) -> Result<HeldLeadership> {
        Ok(match self {
            Client::Volume(v) => HeldLeadership::Volume(v.campaign(name, timeout).await?),
            Client::Agent(a) => HeldLeadership::Agent(a.campaign(name, timeout).await?),
        })
    }

    /// The current leader of `name`, or `None` if nobody leads now.
    pub async fn leader(&self, name: &Name) -> Result<Option<HolderRecord>> {
        match self {
            Client::Volume(v) => v.leader(name),
            Client::Agent(a) => a.leader(name).await,
        }
    }

    /// Every campaign, as lock statuses.
    pub async fn list_leaders(&self) -> Result<Vec<LockStatus>> {
        match self {
            Client::Volume(v) => v.list_leaders(),
            Client::Agent(a) => a.list_leaders().await,
        }
    }

    /// Waits until the leader of `name` differs from `known`, and returns the new one.
    pub async fn wait_leader_change(
        &self,
        name: &Name,
        known: Option<FencingToken>,
        timeout: Option<Duration>,
    ) -> Result<Option<HolderRecord>> {
        match self {
            Client::Volume(v) => v.wait_leader_change(name, known, timeout).await,
            Client::Agent(a) => a.wait_leader_change(name, known, timeout).await,
        }
    }

    /// Appends an event and returns it with its sequence number.
    pub async fn publish(&self, kind: &Name, data: Option<serde_json::Value>) -> Result<Event> {
        match self {
            Client::Volume(v) => v.publish(kind, data).await,
            Client::Agent(a) => a.publish(kind, data).await,
        }
    }

    /// The events after `since`, at most `limit`; see [`Volume::read_events`].
    pub async fn read_events(&self, since: u64, limit: usize, strict: bool) -> Result<Vec<Event>> {
        match self {
            Client::Volume(v) => v.read_events(since, limit, strict),
            Client::Agent(a) => a.read_events(since, limit, strict).await,
        }
    }

    /// The sequence number of the newest event, 0 if there is none.
    pub async fn last_event_seq(&self) -> Result<u64> {
        match self {
            Client::Volume(v) => v.last_event_seq(),
            Client::Agent(a) => a.last_event_seq().await,
        }
    }

    /// A stream of events after `since` (`None`: from now on); see [`Volume::watch_events`].
    pub async fn watch_events(&self, since: Option<u64>) -> Result<EventStream> {
        match self {
            Client::Volume(v) => v.watch_events(since),
            Client::Agent(a) => a.watch_events(since).await,
        }
    }

    /// The phase record, or `None` if no phase was ever set.
    pub async fn phase(&self) -> Result<Option<PhaseRecord>> {
        match self {
            Client::Volume(v) => v.phase(),
            Client::Agent(a) => a.phase().await,
        }
    }

    /// The current phase, `starting` if none was set.
    pub async fn current_phase(&self) -> Result<Phase> {
        match self {
            Client::Volume(v) => v.current_phase(),
            Client::Agent(a) => a.current_phase().await,
        }
    }

    /// Sets the phase; see [`Volume::set_phase`].
    pub async fn set_phase(
        &self,
        phase: Phase,
        reason: Option<&str>,
        force: bool,
    ) -> Result<PhaseRecord> {
        match self {
            Client::Volume(v) => v.set_phase(phase, reason, force).await,
            Client::Agent(a) => a.set_phase(phase, reason, force).await,
        }
    }

    /// Waits until the phase is `at_least` or later, and returns it.
    pub async fn wait_phase(&self, at_least: Phase, timeout: Option<Duration>) -> Result<Phase> {
        match self {
            Client::Volume(v) => v.wait_phase(at_least, timeout).await,
            Client::Agent(a) => a.wait_phase(at_least, timeout).await,
        }
    }

    /// Everything in the shared directory.
    pub async fn status(&self) -> Result<Status> {
        match self {
            Client::Volume(v) => v.status(),
            Client::Agent(a) => a.status().await,
        }
    }
}
