//! [`Volume`]: the shared directory, opened. Every protocol operation is a method on it,
//! defined in the module of its concept (`readiness`, `lock`, `leader`, `events`, `phase`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use podsignal_proto::{Identity, layout};

use crate::error::{Error, Result};
use crate::identity;
use crate::safe_dir::{Access, SafeDir, WriteOptions};
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
}

impl Default for VolumeOptions {
    fn default() -> Self {
        VolumeOptions {
            access: Access::Owner,
            durable: false,
            rescan: Duration::from_secs(1),
            source: None,
        }
    }
}

/// The shared directory, opened: cheap to clone, safe to share between tasks.
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
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) root: SafeDir,
    pub(crate) ready: SafeDir,
    pub(crate) locks: SafeDir,
    pub(crate) leaders: SafeDir,
    pub(crate) events: SafeDir,
    pub(crate) exits: SafeDir,
    pub(crate) stop: SafeDir,
    pub(crate) options: VolumeOptions,
    pub(crate) identity: Identity,
    pub(crate) watcher: Watcher,
}

impl Volume {
    /// Opens the shared directory at `path`, creating it and its subdirectories if missing,
    /// and starts watching it. Must be called inside a tokio runtime.
    pub async fn open(path: impl AsRef<Path>, options: VolumeOptions) -> Result<Volume> {
        let path = path.as_ref();
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::Invalid(
                "Volume::open must be called inside a tokio runtime".into(),
            ));
        }
        let access = options.access;
        let root = SafeDir::open_root(path, access)?;
        let sub = |name: &str| root.open_subdir(name, access);
        let (ready, locks, leaders) = (
            sub(layout::READY_DIR)?,
            sub(layout::LOCKS_DIR)?,
            sub(layout::LEADERS_DIR)?,
        );
        let (events, exits, stop) = (
            sub(layout::EVENTS_DIR)?,
            sub(layout::EXITS_DIR)?,
            sub(layout::STOP_DIR)?,
        );
        let dirs: Vec<(PathBuf, PathBuf, Area)> = [
            (&root, Area::Root),
            (&ready, Area::Ready),
            (&locks, Area::Locks),
            (&leaders, Area::Leaders),
            (&events, Area::Events),
            (&exits, Area::Exits),
            (&stop, Area::Stop),
        ]
        .iter()
        .map(|(d, a)| (d.proc_path(), d.path().to_owned(), *a))
        .collect();
        let watcher = Watcher::start(&dirs, options.rescan);
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
                identity,
                watcher,
            }),
        })
    }

    /// The directory this volume was opened at.
    pub fn path(&self) -> &Path {
        self.inner.root.path()
    }

    /// The identity this volume records as writer.
    pub fn identity(&self) -> &Identity {
        &self.inner.identity
    }

    /// How often waiters re-check without an inotify event (`VolumeOptions::rescan`).
    pub fn rescan(&self) -> Duration {
        self.inner.options.rescan
    }

    /// The watcher's counters: whether inotify runs, rescans, queue overflows.
    pub fn watch_stats(&self) -> crate::watch::WatchStats {
        self.inner.watcher.stats()
    }

    /// Checks the directory is usable: creates a probe file, takes an exclusive flock on it,
    /// checks that a second descriptor is refused a shared flock (flock works on this
    /// filesystem), and removes it. For the agent's `/readyz`.
    pub fn self_test(&self) -> Result<()> {
        let root = &self.inner.root;
        let probe = layout::temp_file("self-test", std::process::id(), identity::nonce());
        let file = root.create_new(&probe, self.access())?;
        let result = (|| {
            file.try_lock().map_err(|e| {
                Error::io(
                    "cannot flock",
                    root.path_of(&probe),
                    std::io::Error::other(e.to_string()),
                )
            })?;
            let other = root.open_regular(&probe)?.ok_or_else(|| {
                Error::io(
                    "cannot reopen",
                    root.path_of(&probe),
                    std::io::ErrorKind::NotFound,
                )
            })?;
            match other.try_lock_shared() {
                Err(std::fs::TryLockError::WouldBlock) => Ok(()),
                _ => Err(Error::Refused {
                    path: root.path_of(&probe),
                    why: "flock(2) does not exclude other descriptors on this filesystem".into(),
                }),
            }
        })();
        root.remove(&probe)?;
        result
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
