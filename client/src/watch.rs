//! Change notification for waiters: inotify on every protocol directory, plus a periodic
//! rescan so that nothing depends on inotify alone.
//!
//! The watcher keeps one counter per [`Area`] and bumps it on every relevant inotify event.
//! A waiter re-evaluates its condition when a counter of an area it cares about moves, or
//! when the rescan interval passes (queue overflow, a filesystem without inotify, a missed
//! event: the rescan catches up). An `IN_Q_OVERFLOW` bumps every area.
//!
//! Which events count: a record renamed into place (`IN_MOVED_TO`), removed or moved away,
//! created (a lock file), or closed after writing (`IN_CLOSE_WRITE`). The last one is how a
//! waiter learns at once that the holder of a liveness file died: the kernel closes its
//! read-write descriptor, which raises `IN_CLOSE_WRITE` even on `kill -9`. Readers open such
//! files read-only, which raises nothing we listen to, so checking never wakes anyone.
//! Temporary files are ignored: a write wakes waiters once, at its rename.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};
use podsignal_proto::layout;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::error::{Error, Result};

/// A directory of the protocol whose changes a waiter can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Area {
    Root = 0,
    Ready = 1,
    Locks = 2,
    Leaders = 3,
    Events = 4,
    Exits = 5,
    Stop = 6,
}

const AREAS: usize = 7;

/// Per-area change counters.
pub(crate) type Generations = [u64; AREAS];

/// The watcher: a task reading inotify and bumping counters. Dropping it stops the task.
#[derive(Debug)]
pub(crate) struct Watcher {
    tx: watch::Sender<Generations>,
    task: Option<tokio::task::AbortHandle>,
    rescan: Duration,
    stats: Arc<Counters>,
}

/// How often waiters fell back to the rescan, and how often inotify overflowed: for
/// `/metrics`. Atomics, because they are bumped from many tasks and only ever read as totals.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) rescans: AtomicU64,
    pub(crate) overflows: AtomicU64,
}

/// Totals of the watcher's counters, as [`crate::Volume::watch_stats`] reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WatchStats {
    /// Whether inotify is running (false: waiters rely on the rescan alone).
    pub watching: bool,
    /// Times a waiter re-checked because the rescan interval passed without an inotify event.
    pub rescans: u64,
    /// Times the inotify queue overflowed (each wakes every waiter).
    pub overflows: u64,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

impl Watcher {
    /// Starts watching `dirs` (each a path naming an opened directory, and its area). If
    /// inotify is unavailable, logs why and relies on the rescan alone.
    pub(crate) fn start(dirs: &[(PathBuf, PathBuf, Area)], rescan: Duration) -> Watcher {
        let (tx, _) = watch::channel([0; AREAS]);
        let stats = Arc::new(Counters::default());
        let task = match Self::spawn(dirs, tx.clone(), stats.clone()) {
            Ok(handle) => Some(handle),
            Err(e) => {
                tracing::warn!(
                    "{:#}; waiters fall back to rescanning every {}",
                    crate::error_chain(&e),
                    podsignal_proto::format_duration(rescan)
                );
                None
            }
        };
        Watcher {
            tx,
            task,
            rescan,
            stats,
        }
    }

    fn spawn(
        dirs: &[(PathBuf, PathBuf, Area)],
        tx: watch::Sender<Generations>,
        stats: Arc<Counters>,
    ) -> Result<tokio::task::AbortHandle> {
        let inotify =
            Inotify::init().map_err(|e| inotify_error(e, "inotify_init", PathBuf::new()))?;
        let mut areas: HashMap<WatchDescriptor, Area> = HashMap::new();
        for (proc_path, shown, area) in dirs {
            let mask = WatchMask::MOVED_TO
                | WatchMask::MOVED_FROM
                | WatchMask::DELETE
                | WatchMask::CREATE
                | WatchMask::CLOSE_WRITE
                | WatchMask::ONLYDIR;
            // Appends to an event segment raise IN_MODIFY; elsewhere it would only add noise.
            let mask = if *area == Area::Events {
                mask | WatchMask::MODIFY
            } else {
                mask
            };
            let wd = inotify
                .watches()
                .add(proc_path, mask)
                .map_err(|e| inotify_error(e, "inotify_add_watch", shown.clone()))?;
            areas.insert(wd, *area);
        }
        let mut stream = inotify
            .into_event_stream([0u8; 8192])
            .map_err(|e| inotify_error(e, "inotify", PathBuf::new()))?;
        let handle = tokio::spawn(async move {
            while let Some(event) = stream.next().await {
                let event = match event {
                    Ok(e) => e,
                    Err(e) => {
                        tracing::warn!("reading inotify events failed: {e}; relying on the rescan");
                        return;
                    }
                };
                if event.mask.contains(EventMask::Q_OVERFLOW) {
                    tracing::debug!("inotify queue overflow: waking every waiter");
                    stats.overflows.fetch_add(1, Ordering::Relaxed);
                    tx.send_modify(|g| g.iter_mut().for_each(|n| *n += 1));
                    continue;
                }
                if event
                    .name
                    .as_deref()
                    .and_then(|n| n.to_str())
                    .is_some_and(layout::is_temp_file)
                {
                    continue;
                }
                if let Some(area) = areas.get(&event.wd) {
                    tx.send_modify(|g| g[*area as usize] += 1);
                }
            }
        });
        Ok(handle.abort_handle())
    }

    /// Waits until `check` returns `Ok(Some(_))`, re-evaluating it whenever one of `areas`
    /// changes or the rescan interval passes. On timeout, the error lists what `pending`
    /// last said was missing.
    pub(crate) async fn wait_until<T>(
        &self,
        areas: &[Area],
        timeout: Option<Duration>,
        mut check: impl FnMut() -> Result<Result<T, Vec<String>>>,
    ) -> Result<T> {
        let started = Instant::now();
        let deadline = timeout.map(|t| started + t);
        let mut rx = self.tx.subscribe();
        let mut watching = self.task.is_some();
        loop {
            let seen = *rx.borrow_and_update();
            let pending = match check()? {
                Ok(done) => return Ok(done),
                Err(pending) => pending,
            };
            let rescan_at = Instant::now() + self.rescan;
            loop {
                let far = Instant::now() + Duration::from_secs(86_400 * 365);
                let expired = tokio::select! {
                    changed = rx.changed(), if watching => {
                        if changed.is_err() {
                            watching = false;
                        }
                        let now = *rx.borrow_and_update();
                        if areas.iter().any(|a| now[*a as usize] != seen[*a as usize]) { break }
                        false
                    }
                    _ = tokio::time::sleep_until(rescan_at) => {
                        self.stats.rescans.fetch_add(1, Ordering::Relaxed);
                        break
                    }
                    _ = tokio::time::sleep_until(deadline.unwrap_or(far)) => true,
                };
                if expired {
                    // One last look: the condition may have become true at the deadline.
                    return match check()? {
                        Ok(done) => Ok(done),
                        Err(last) => Err(Error::Timeout {
                            after: started.elapsed(),
                            pending: if last.is_empty() { pending } else { last },
                        }),
                    };
                }
            }
        }
    }

    /// The totals of the watcher's counters.
    pub(crate) fn stats(&self) -> WatchStats {
        WatchStats {
            watching: self.task.as_ref().is_some_and(|t| !t.is_finished()),
            rescans: self.stats.rescans.load(Ordering::Relaxed),
            overflows: self.stats.overflows.load(Ordering::Relaxed),
        }
    }

    /// Counts one rescan by a stream that waits on its own.
    pub(crate) fn count_rescan(&self) {
        self.stats.rescans.fetch_add(1, Ordering::Relaxed);
    }

    /// A receiver of the change counters, for streams that wait on their own.
    pub(crate) fn subscribe(&self) -> (watch::Receiver<Generations>, Duration, bool) {
        (self.tx.subscribe(), self.rescan, self.task.is_some())
    }
}

fn inotify_error(e: std::io::Error, call: &'static str, path: PathBuf) -> Error {
    let hint = match e.raw_os_error() {
        Some(28) => "the inotify watch limit is reached: raise fs.inotify.max_user_watches",
        Some(24) => "the inotify instance limit is reached: raise fs.inotify.max_user_instances",
        _ => call,
    };
    Error::io(hint, path, e)
}
