//! [`Transport`]: where a subcommand's operations go, the shared directory or an agent
//! (`--agent`), chosen at run time. It implements [`Coordinator`] by handing each call to the
//! transport it holds, so that every subcommand (written against the trait) is compiled once,
//! for `Transport`, rather than once per transport: `run`, `wait`, `lock`, ... were each in
//! the binary twice, about 100 KiB of it.

use std::os::fd::BorrowedFd;
use std::time::Duration;

use podsignal_client::http::{AgentClient, AgentHold};
use podsignal_client::{
    Access, Coordinator, Event, EventStream, FencingToken, Hold, HolderRecord, LockGuard, LockHold,
    LockStatus, Name, Phase, PhaseRecord, Readiness, ReadinessGuard, ReadinessHold, Result, Scope,
    Status, StopRequest, TombstoneRecord, Volume, VolumeOptions, Wait, WaitMode,
};

use crate::cli::{AccessArg, GlobalOpts};

/// Where the operations go: the shared directory, or an agent (`--agent`).
#[derive(Debug, Clone)]
pub enum Transport {
    /// The shared directory, opened in this process.
    Volume(Volume),
    /// A `podsignal agent`.
    Agent(AgentClient),
}

/// Something held through a [`Transport`]: `V` on the directory, `A` through the agent.
#[derive(Debug)]
pub enum TransportHold<V, A> {
    /// Held on the shared directory (a flock).
    Volume(V),
    /// Held by the agent (an open connection).
    Agent(A),
}

/// `$body` with `$c` bound to the transport `$on` holds, whichever it is.
macro_rules! each {
    ($on:expr, $c:ident => $body:expr) => {
        match $on {
            Transport::Volume($c) => $body,
            Transport::Agent($c) => $body,
        }
    };
}

/// [`each!`] for a hold: `$body` with `$h` bound to the held value.
macro_rules! each_hold {
    ($on:expr, $h:ident => $body:expr) => {
        match $on {
            TransportHold::Volume($h) => $body,
            TransportHold::Agent($h) => $body,
        }
    };
}

impl<V: Hold, A: Hold> Hold for TransportHold<V, A> {
    fn name(&self) -> &Name {
        each_hold!(self, h => h.name())
    }

    fn descriptor(&self) -> BorrowedFd<'_> {
        each_hold!(self, h => h.descriptor())
    }

    async fn lost(&self) -> String {
        each_hold!(self, h => h.lost().await)
    }
}

impl<V: LockHold, A: LockHold> LockHold for TransportHold<V, A> {
    fn token(&self) -> FencingToken {
        each_hold!(self, h => h.token())
    }
}

impl<V: ReadinessHold, A: ReadinessHold> ReadinessHold for TransportHold<V, A> {
    async fn set(&self, ready: bool, reason: Option<&str>) -> Result<()> {
        each_hold!(self, h => h.set(ready, reason).await)
    }

    async fn retract(self, reason: &str) -> Result<()> {
        each_hold!(self, h => h.retract(reason).await)
    }
}

impl Coordinator for Transport {
    type ReadinessHold = TransportHold<ReadinessGuard, AgentHold>;
    type LockHold = TransportHold<LockGuard, AgentHold>;

    fn describe(&self) -> String {
        each!(self, c => c.describe())
    }

    async fn set_readiness(
        &self,
        name: &Name,
        ready: bool,
        reason: Option<&str>,
    ) -> Result<Readiness> {
        each!(self, c => c.set_readiness(name, ready, reason).await)
    }

    async fn hold_ready(&self, name: &Name, reason: Option<&str>) -> Result<Self::ReadinessHold> {
        Ok(match self {
            Transport::Volume(v) => TransportHold::Volume(v.hold_ready(name, reason).await?),
            Transport::Agent(a) => TransportHold::Agent(a.hold_ready(name, reason).await?),
        })
    }

    async fn readiness(&self, name: &Name) -> Result<Readiness> {
        each!(self, c => c.readiness(name).await)
    }

    async fn list_readiness(&self) -> Result<Vec<Readiness>> {
        each!(self, c => c.list_readiness().await)
    }

    async fn wait_readiness(
        &self,
        names: &[Name],
        mode: WaitMode,
        want: bool,
        timeout: Option<Duration>,
    ) -> Result<Vec<Readiness>> {
        each!(self, c => c.wait_readiness(names, mode, want, timeout).await)
    }

    async fn acquire(&self, scope: Scope, name: &Name, wait: Wait) -> Result<Self::LockHold> {
        Ok(match self {
            Transport::Volume(v) => TransportHold::Volume(v.acquire(scope, name, wait).await?),
            Transport::Agent(a) => TransportHold::Agent(a.acquire(scope, name, wait).await?),
        })
    }

    async fn lock_status(&self, scope: Scope, name: &Name) -> Result<LockStatus> {
        each!(self, c => c.lock_status(scope, name).await)
    }

    async fn list_locks(&self, scope: Scope) -> Result<Vec<LockStatus>> {
        each!(self, c => c.list_locks(scope).await)
    }

    async fn wait_leader_change(
        &self,
        name: &Name,
        known: Option<FencingToken>,
        timeout: Option<Duration>,
    ) -> Result<Option<HolderRecord>> {
        each!(self, c => c.wait_leader_change(name, known, timeout).await)
    }

    async fn publish(&self, kind: &Name, data: Option<serde_json::Value>) -> Result<Event> {
        each!(self, c => c.publish(kind, data).await)
    }

    async fn read_events(&self, since: u64, limit: usize, strict: bool) -> Result<Vec<Event>> {
        each!(self, c => c.read_events(since, limit, strict).await)
    }

    async fn last_event_seq(&self) -> Result<u64> {
        each!(self, c => c.last_event_seq().await)
    }

    async fn watch_events(&self, since: Option<u64>) -> Result<EventStream> {
        each!(self, c => c.watch_events(since).await)
    }

    async fn phase(&self) -> Result<Option<PhaseRecord>> {
        each!(self, c => c.phase().await)
    }

    async fn set_phase(
        &self,
        phase: Phase,
        reason: Option<&str>,
        force: bool,
    ) -> Result<PhaseRecord> {
        each!(self, c => c.set_phase(phase, reason, force).await)
    }

    async fn wait_phase(&self, at_least: Phase, timeout: Option<Duration>) -> Result<Phase> {
        each!(self, c => c.wait_phase(at_least, timeout).await)
    }

    async fn tombstone(&self, name: &Name) -> Result<Option<TombstoneRecord>> {
        each!(self, c => c.tombstone(name).await)
    }

    async fn write_tombstone(&self, record: &TombstoneRecord) -> Result<()> {
        each!(self, c => c.write_tombstone(record).await)
    }

    async fn starting(&self, name: &Name) -> Result<()> {
        each!(self, c => c.starting(name).await)
    }

    async fn wait_exit(
        &self,
        name: &Name,
        code: Option<u8>,
        timeout: Option<Duration>,
    ) -> Result<TombstoneRecord> {
        each!(self, c => c.wait_exit(name, code, timeout).await)
    }

    async fn request_stop(&self, name: &Name, reason: Option<&str>) -> Result<StopRequest> {
        each!(self, c => c.request_stop(name, reason).await)
    }

    async fn take_stop_request(&self, name: &Name) -> Result<StopRequest> {
        each!(self, c => c.take_stop_request(name).await)
    }

    async fn status(&self) -> Result<Status> {
        each!(self, c => c.status().await)
    }
}

/// The transport the global options ask for: the agent at `--agent`, else the volume.
/// `source` names this process in what it writes (`run --name`), instead of the default
/// (`PODSIGNAL_NAME`, else `pid@hostname`).
/// `create`: whether a missing shared directory is created (false for commands that only
/// read: see [`podsignal_client::VolumeOptions::create`]). `one_shot`: the command runs
/// alone on a current-thread runtime, so its file operations run inline
/// ([`podsignal_client::VolumeOptions::inline_io`]).
pub async fn open_transport(
    global: &GlobalOpts,
    source: Option<String>,
    create: bool,
    one_shot: bool,
) -> anyhow::Result<Transport> {
    match &global.agent {
        Some(url) => {
            let token = global
                .token_file
                .as_deref()
                .map(crate::cmd::agent::read_token)
                .transpose()?;
            let mut identity = podsignal_client::identity::current();
            if source.is_some() {
                identity.source = source;
            }
            let client = AgentClient::with_identity(url, token, identity)
                .map_err(|e| crate::exit::usage(format!("--agent: {e}")))?;
            Ok(Transport::Agent(client))
        }
        None => {
            let options = VolumeOptions {
                create,
                inline_io: one_shot,
                ..volume_options(global, source)
            };
            Ok(Transport::Volume(Volume::open(&global.dir, options).await?))
        }
    }
}

/// The volume options the global options ask for, writing as `source` (else the default).
pub fn volume_options(global: &GlobalOpts, source: Option<String>) -> VolumeOptions {
    let access = match global.access {
        AccessArg::Owner => Access::Owner,
        AccessArg::Group => Access::Group,
        AccessArg::All => Access::All,
    };
    VolumeOptions {
        access,
        durable: global.durable,
        rescan: global.rescan,
        source,
        create: true,
        max_lock_waits: None,
        inline_io: false,
    }
}
