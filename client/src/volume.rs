//! [`Volume`]: the shared directory, opened. Every protocol operation is a method on it,
//! defined in the module of its concept (`readiness`, `lock`, `leader`, `events`, `phase`).

use std::io::Write as _;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use podsignal_proto::{
    Event, FencingToken, HolderRecord, Identity, Name, Phase, PhaseRecord, StopRequest,
    TombstoneRecord, layout,
};

use crate::coordinator::{Coordinator, Scope, Wait};
use crate::error::{Error, Result};
use crate::events::EventStream;
use crate::flock::FlockWaits;
use crate::identity;
use crate::lock::{LockGuard, LockStatus};
use crate::readiness::{Readiness, ReadinessGuard, WaitMode};
use crate::safe_dir::{Access, SafeDir, WriteOptions};
use crate::status::Status;
use crate::watch::{Area, Watcher};

/// How a [`Volume`] writes and waits.
#[derive(Debug, Clone)]
pub struct VolumeOptions {
    /// Permissions of what podsignal creates.
    pub access: Access,
    /// fsync every write. The fencing counter is always fsynced; readiness, phase and event
    /// writes are not by default, because an emptyDir dies with the pod anyway.
    pub durable: bool,
    /// How often waiters re-check even without an inotify event.
    pub rescan: Duration,
    /// The `source` recorded as writer; defaults to `PODSIGNAL_NAME`.
    pub source: Option<String>,
    /// Create the shared directory and its subdirectories where missing (the default). A
    /// process that only reads and waits sets it false: then a missing directory is not
    /// created but reads as empty, and waits go on until it appears (the rescan looks for
    /// it); writing into it fails.
    pub create: bool,
    /// The most lock files this process may wait for at once (each wait runs on a thread
    /// that lives until the lock is free); `None`: no limit. For servers whose callers choose
    /// the lock names: the agent sets its `--max-waiters`.
    pub max_lock_waits: Option<usize>,
    /// Run file operations (reads, atomic writes, listings, a lock grant) on the calling
    /// task rather than on tokio's blocking pool. Each takes microseconds but blocks the
    /// runtime's thread meanwhile (a write may wait up to 2 s for the directory's write
    /// lock), so this is for a process that has nothing else to do in the meantime: a
    /// one-shot command (`podsignal ready x`), for which starting a pool thread costs more
    /// than the write. Waiting for a held lock still happens on a thread of its own.
    pub inline_io: bool,
}

impl Default for VolumeOptions {
    fn default() -> Self {
        VolumeOptions {
            access: Access::Owner,
            durable: false,
            rescan: Duration::from_secs(1),
            source: None,
            create: true,
            max_lock_waits: None,
            inline_io: false,
        }
    }
}

/// The shared directory, opened: cheap to clone, safe to share between tasks. Its operations
/// are those of [`Coordinator`].
///
/// ```no_run
/// # async fn demo() -> podsignal_client::Result<()> {
/// use podsignal_client::{Volume, VolumeOptions};
/// let volume = Volume::open("/run/podsignal", VolumeOptions::default()).await?;
/// println!("{}", volume.path().display());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Volume {
    pub(crate) inner: Arc<Inner>,
    /// Who this volume writes as (records' `writer`, events' `source`).
    identity: Arc<Identity>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) root: Arc<SafeDir>,
    pub(crate) ready: Arc<SafeDir>,
    pub(crate) locks: Arc<SafeDir>,
    pub(crate) leaders: Arc<SafeDir>,
    pub(crate) events: Arc<SafeDir>,
    pub(crate) exits: Arc<SafeDir>,
    pub(crate) stop: Arc<SafeDir>,
    pub(crate) options: VolumeOptions,
    /// Started on the first wait: a one-shot command (`ready`, `event publish`) watches
    /// nothing.
    watcher: OnceLock<Watcher>,
    /// Started on the first readiness wait: one evaluation per name, shared by its waiters.
    ready_hub: OnceLock<crate::ready_hub::ReadyHub>,
    /// The directories the watcher watches, by area.
    areas: Vec<(Area, Arc<SafeDir>)>,
    /// Blocking flock waits (locks, leaderships, the events lock): one thread per file.
    pub(crate) flocks: FlockWaits,
}

impl Volume {
    /// Opens the shared directory at `path`, creating it and its subdirectories if missing
    /// (unless [`VolumeOptions::create`] is false), and starts watching it. Must be called
    /// inside a tokio runtime.
    pub async fn open(path: impl AsRef<Path>, options: VolumeOptions) -> Result<Volume> {
        let path = path.as_ref();
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::Invalid(
                "Volume::open must be called inside a tokio runtime".into(),
            ));
        }
        let max_lock_waits = options.max_lock_waits;
        let root = SafeDir::open_root(path, options.access, options.create)?;
        let sub = |name: &'static str| SafeDir::open_subdir(&root, name);
        let (ready, locks, leaders) = (
            sub(layout::READY_DIR),
            sub(layout::LOCKS_DIR),
            sub(layout::LEADERS_DIR),
        );
        let (events, exits, stop) = (
            sub(layout::EVENTS_DIR),
            sub(layout::EXITS_DIR),
            sub(layout::STOP_DIR),
        );
        let areas = vec![
            (Area::Root, root.clone()),
            (Area::Ready, ready.clone()),
            (Area::Locks, locks.clone()),
            (Area::Leaders, leaders.clone()),
            (Area::Events, events.clone()),
            (Area::Exits, exits.clone()),
            (Area::Stop, stop.clone()),
        ];
        let mut identity = identity::current();
        if options.source.is_some() {
            identity.source = options.source.clone();
        }
        Ok(Volume {
            inner: Arc::new(Inner {
                root,
                ready,
                locks,
                leaders,
                events,
                exits,
                stop,
                options,
                watcher: OnceLock::new(),
                ready_hub: OnceLock::new(),
                areas,
                flocks: FlockWaits::with_limit(max_lock_waits),
            }),
            identity: Arc::new(identity),
        })
    }

    /// The directory this volume was opened at.
    pub fn path(&self) -> &Path {
        self.inner.root.path()
    }

    /// The identity this volume records as writer.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The same volume, writing as `identity`: for a process that acts for others (the
    /// agent), so that what it writes for a caller names the caller.
    pub fn as_caller(&self, identity: Identity) -> Volume {
        Volume {
            inner: self.inner.clone(),
            identity: Arc::new(identity),
        }
    }

    /// How often waiters re-check without an inotify event (`VolumeOptions::rescan`).
    pub fn rescan(&self) -> Duration {
        self.inner.options.rescan
    }

    /// The watcher's counters: whether inotify runs, rescans, queue overflows.
    pub fn watch_stats(&self) -> crate::watch::WatchStats {
        self.watcher().stats()
    }

    /// Checks the directory is usable: creates a probe file, writes a page to it (a full
    /// filesystem fails here), takes an exclusive flock on it,
    /// checks that a second descriptor is refused a shared flock (flock works on this
    /// filesystem), and removes it. For the agent's `/readyz`.
    pub fn self_test(&self) -> Result<()> {
        let root = &self.inner.root;
        let probe = layout::temp_file("self-test", std::process::id(), identity::nonce());
        let file = root.create_new(&probe, self.access())?;
        let result = (|| {
            // A page of data: creating an empty file needs an inode, not a data block, so
            // only a write finds a full filesystem.
            (&file)
                .write_all(&[0u8; 4096])
                .map_err(|e| Error::io("cannot write", root.path_of(&probe), e))?;
            // A reader probing for debris (status) may hold a shared try-lock on it this very
            // instant: then wait for that instant to pass rather than fail.
            match file.try_lock() {
                Ok(()) => Ok(()),
                Err(std::fs::TryLockError::WouldBlock) => file.lock(),
                Err(std::fs::TryLockError::Error(e)) => Err(e),
            }
            .map_err(|e| Error::io("cannot flock", root.path_of(&probe), e))?;
            let other = root.open_regular(&probe)?.ok_or_else(|| {
                Error::io(
                    "cannot reopen",
                    root.path_of(&probe),
                    std::io::ErrorKind::NotFound,
                )
            })?;
            match other.try_lock_shared() {
                Err(std::fs::TryLockError::WouldBlock) => Ok(()),
                _ => Err(Error::refused(
                    root.path_of(&probe),
                    "flock(2) does not exclude other descriptors on this filesystem",
                )),
            }
        })();
        root.remove(&probe)?;
        result
    }

    /// The watcher, started on first use (it needs the runtime: always called from async
    /// code).
    /// A volume around `inner`, writing as `identity` (for tasks that hold it weakly).
    pub(crate) fn from_parts(inner: Arc<Inner>, identity: Arc<Identity>) -> Volume {
        Volume { inner, identity }
    }

    /// The identity, shared.
    pub(crate) fn clone_identity(&self) -> Arc<Identity> {
        self.identity.clone()
    }

    /// The readiness hub, started on first use.
    pub(crate) fn ready_hub(&self) -> &crate::ready_hub::ReadyHub {
        self.inner
            .ready_hub
            .get_or_init(|| crate::ready_hub::ReadyHub::start(self))
    }

    pub(crate) fn watcher(&self) -> &Watcher {
        self.inner
            .watcher
            .get_or_init(|| Watcher::start(self.inner.areas.clone(), self.inner.options.rescan))
    }

    /// Runs blocking file work: on tokio's blocking pool, or right here with
    /// [`VolumeOptions::inline_io`].
    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        if self.inner.options.inline_io {
            return f();
        }
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| Error::Invalid(format!("a blocking task failed: {e}")))?
    }

    pub(crate) fn write_options(&self) -> WriteOptions {
        WriteOptions {
            access: self.inner.options.access,
            durable: self.inner.options.durable,
        }
    }

    pub(crate) fn access(&self) -> Access {
        self.inner.options.access
    }
}

impl Coordinator for Volume {
    type ReadinessHold = ReadinessGuard;
    type LockHold = LockGuard;

    /// The directory's path, saying so if nothing is there (a volume that does not create
    /// it waits for it).
    fn describe(&self) -> String {
        match self.path().exists() {
            true => self.path().display().to_string(),
            false => format!("{}, which does not exist", self.path().display()),
        }
    }

    async fn set_readiness(
        &self,
        name: &Name,
        ready: bool,
        reason: Option<&str>,
    ) -> Result<Readiness> {
        let (v, name, reason) = (self.clone(), name.clone(), reason.map(str::to_owned));
        self.blocking(move || {
            let state = if ready {
                podsignal_proto::ReadinessState::Ready
            } else {
                podsignal_proto::ReadinessState::Unready
            };
            v.write_readiness(&name, state, reason.as_deref(), None)?;
            Ok(v.readiness_now(&name))
        })
        .await
    }

    async fn hold_ready(&self, name: &Name, reason: Option<&str>) -> Result<ReadinessGuard> {
        let (v, name, reason) = (self.clone(), name.clone(), reason.map(str::to_owned));
        self.blocking(move || v.hold_ready_now(&name, reason.as_deref()))
            .await
    }

    async fn readiness(&self, name: &Name) -> Result<Readiness> {
        Ok(self.readiness_now(name))
    }

    async fn list_readiness(&self) -> Result<Vec<Readiness>> {
        let v = self.clone();
        self.blocking(move || v.list_readiness_now()).await
    }

    async fn wait_readiness(
        &self,
        names: &[Name],
        mode: WaitMode,
        want: bool,
        timeout: Option<Duration>,
    ) -> Result<Vec<Readiness>> {
        self.wait_readiness_now(names, mode, want, timeout).await
    }

    async fn acquire(&self, scope: Scope, name: &Name, wait: Wait) -> Result<LockGuard> {
        self.acquire_now(scope, name, wait).await
    }

    async fn lock_status(&self, scope: Scope, name: &Name) -> Result<LockStatus> {
        Ok(self.lock_status_now(scope, name))
    }

    async fn list_locks(&self, scope: Scope) -> Result<Vec<LockStatus>> {
        let v = self.clone();
        self.blocking(move || v.list_locks_now(scope)).await
    }

    async fn wait_leader_change(
        &self,
        name: &Name,
        known: Option<FencingToken>,
        timeout: Option<Duration>,
    ) -> Result<Option<HolderRecord>> {
        self.wait_leader_change_now(name, known, timeout).await
    }

    async fn publish(&self, kind: &Name, data: Option<serde_json::Value>) -> Result<Event> {
        self.publish_now(kind, data).await
    }

    async fn read_events(&self, since: u64, limit: usize, strict: bool) -> Result<Vec<Event>> {
        let page = self.read_events_page(since, limit, strict).await?;
        match page.lost {
            Some((from, to)) if strict && page.events.is_empty() => Err(Error::EventsRotated {
                wanted: from,
                available: to + 1,
            }),
            Some((from, to)) if !strict => {
                tracing::warn!(
                    "events {from} to {to} were lost: rotated away before they could be read"
                );
                Ok(page.events)
            }
            _ => Ok(page.events),
        }
    }

    async fn last_event_seq(&self) -> Result<u64> {
        let v = self.clone();
        self.blocking(move || v.last_event_seq_now()).await
    }

    async fn watch_events(&self, since: Option<u64>) -> Result<EventStream> {
        self.watch_events_now(since)
    }

    async fn phase(&self) -> Result<Option<PhaseRecord>> {
        self.phase_now()
    }

    async fn set_phase(
        &self,
        phase: Phase,
        reason: Option<&str>,
        force: bool,
    ) -> Result<PhaseRecord> {
        self.set_phase_now(phase, reason, force).await
    }

    async fn wait_phase(&self, at_least: Phase, timeout: Option<Duration>) -> Result<Phase> {
        self.wait_phase_now(at_least, timeout).await
    }

    async fn tombstone(&self, name: &Name) -> Result<Option<TombstoneRecord>> {
        self.tombstone_now(name)
    }

    async fn write_tombstone(&self, record: &TombstoneRecord) -> Result<()> {
        let (v, record) = (self.clone(), record.clone());
        self.blocking(move || v.write_tombstone_now(&record)).await
    }

    async fn starting(&self, name: &Name) -> Result<()> {
        self.starting_now(name)
    }

    async fn wait_exit(
        &self,
        name: &Name,
        code: Option<u8>,
        timeout: Option<Duration>,
    ) -> Result<TombstoneRecord> {
        self.wait_exit_now(name, code, timeout).await
    }

    async fn request_stop(&self, name: &Name, reason: Option<&str>) -> Result<StopRequest> {
        let (v, name, reason) = (self.clone(), name.clone(), reason.map(str::to_owned));
        self.blocking(move || v.request_stop_now(&name, reason.as_deref()))
            .await
    }

    async fn take_stop_request(&self, name: &Name) -> Result<StopRequest> {
        self.take_stop_request_now(name).await
    }

    async fn status(&self) -> Result<Status> {
        let v = self.clone();
        self.blocking(move || v.status_now()).await
    }
}
