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
//!
//! **Lost watches.** A watch is on a directory's inode, not its path. When a watched
//! directory is moved away or removed (`IN_MOVE_SELF`, `IN_DELETE_SELF`, `IN_IGNORED`), or a
//! directory appears at a protocol path (`IN_CREATE`/`IN_MOVED_TO` in the root), the watcher
//! watches the directory now at the path, if there is one, and wakes that area's waiters,
//! who re-read through the directory now at the path. The watcher never creates
//! directories; the next write does. One area whose watch cannot be added (the watch limit)
//! falls back to the rescan alone, the others stay event-driven, and the watcher tries again
//! every rescan interval.
//!
//! **A root that does not exist yet.** A reader that does not create the directory (`wait` in
//! an init container that starts first) watches the nearest existing ancestor of the root
//! instead, for the one name on the way to it: the root's creation wakes every waiter at once,
//! not at the next rescan.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask, Watches};
use podsignal_proto::layout;
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::safe_dir::SafeDir;

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

impl Area {
    /// Every area.
    pub(crate) const ALL: [Area; AREAS] = [
        Area::Root,
        Area::Ready,
        Area::Locks,
        Area::Leaders,
        Area::Events,
        Area::Exits,
        Area::Stop,
    ];

    /// The subdirectory of the root this area is, by name.
    fn of_subdir(name: &str) -> Option<Area> {
        Some(match name {
            layout::READY_DIR => Area::Ready,
            layout::LOCKS_DIR => Area::Locks,
            layout::LEADERS_DIR => Area::Leaders,
            layout::EVENTS_DIR => Area::Events,
            layout::EXITS_DIR => Area::Exits,
            layout::STOP_DIR => Area::Stop,
            _ => return None,
        })
    }
}

/// Per-area change counters.
pub(crate) type Generations = [u64; AREAS];

/// One change, for subscribers that keep per-name state (the readiness hub): the file that
/// changed in an area, or `None` when anything in it may have (an overflow, a re-watch).
#[derive(Debug, Clone)]
pub(crate) struct Change {
    pub(crate) area: Area,
    pub(crate) file: Option<Arc<str>>,
}

/// How many changes a slow per-name subscriber may fall behind before it is told to
/// re-check everything (`RecvError::Lagged`).
const CHANGE_BACKLOG: usize = 1024;

/// The watcher: a task reading inotify and bumping counters. Dropping it stops the task.
#[derive(Debug)]
pub(crate) struct Watcher {
    tx: watch::Sender<Generations>,
    changes: broadcast::Sender<Change>,
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
    /// Some area has no watch (its directory is missing, or the watch limit was hit).
    pub(crate) degraded: AtomicBool,
}

/// Totals of the watcher's counters, as [`crate::Volume::watch_stats`] reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WatchStats {
    /// Whether inotify watches every directory (false: some or all waiters rely on the
    /// rescan alone).
    pub watching: bool,
    /// Re-checks because the rescan interval passed (readiness waiters share one per
    /// interval; other waiters count one each).
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

/// The inotify mask for an area's directory.
fn mask_for(area: Area) -> WatchMask {
    let mask = WatchMask::MOVED_TO
        | WatchMask::MOVED_FROM
        | WatchMask::DELETE
        | WatchMask::CREATE
        | WatchMask::CLOSE_WRITE
        | WatchMask::DELETE_SELF
        | WatchMask::MOVE_SELF
        | WatchMask::ONLYDIR;
    // Appends to an event segment raise IN_MODIFY; elsewhere it would only add noise.
    if area == Area::Events {
        mask | WatchMask::MODIFY
    } else {
        mask
    }
}

/// What the watcher task owns: the watches, and which directory each is on.
struct Watching {
    watches: Watches,
    dirs: Vec<(Area, Arc<SafeDir>)>,
    by_wd: HashMap<WatchDescriptor, Area>,
    /// Per area: the watch, and the (device, inode) of the directory it is on.
    current: [Option<(WatchDescriptor, u64, u64)>; AREAS],
    tx: watch::Sender<Generations>,
    changes: broadcast::Sender<Change>,
    stats: Arc<Counters>,
    /// Per area: a failure to watch it was logged (once, until a watch succeeds again).
    warned: [bool; AREAS],
    /// While the root does not exist: the watch on its nearest existing ancestor, and that
    /// ancestor's path.
    ancestor: Option<(WatchDescriptor, PathBuf)>,
}

impl Watching {
    /// Watches the directory now at `area`'s path, if it is not watched already; wakes its
    /// waiters when the watch changed.
    fn rewatch(&mut self, area: Area) {
        let Some(dir) = self
            .dirs
            .iter()
            .find(|(a, _)| *a == area)
            .map(|(_, d)| d.clone())
        else {
            return;
        };
        let now = match dir.existing() {
            Ok(now) => now,
            Err(e) => {
                tracing::debug!(
                    "re-watching {}: {}",
                    dir.path().display(),
                    crate::error_chain(&e)
                );
                None
            }
        };
        let same = match (&now, &self.current[area as usize]) {
            (Some(d), Some((_, dev, ino))) => d.identity() == (*dev, *ino),
            _ => false,
        };
        if same {
            return;
        }
        if let Some((old, _, _)) = self.current[area as usize].take() {
            self.by_wd.remove(&old);
            let _ = self.watches.remove(old); // gone already when the directory was removed
        }
        if let Some(d) = now {
            match self.watches.add(SafeDir::proc_path(&d), mask_for(area)) {
                Ok(wd) => {
                    let (dev, ino) = d.identity();
                    self.by_wd.insert(wd.clone(), area);
                    self.current[area as usize] = Some((wd, dev, ino));
                    self.warned[area as usize] = false;
                }
                Err(e) if self.warned[area as usize] => {
                    tracing::debug!("{}", inotify_problem(&e, dir.path()));
                }
                Err(e) => {
                    self.warned[area as usize] = true;
                    tracing::warn!(
                        "{}; waiters on it fall back to the rescan",
                        inotify_problem(&e, dir.path())
                    );
                }
            }
        }
        self.stats
            .degraded
            .store(self.current.iter().any(Option::is_none), Ordering::Relaxed);
        if area == Area::Root {
            self.watch_for_root();
        }
        self.bump(area, None);
    }

    /// Watches the nearest existing ancestor of a root that does not exist (yet), so that its
    /// creation is an event; forgets that watch once the root exists.
    fn watch_for_root(&mut self) {
        let Some(root) = self.dirs.first().map(|(_, d)| d.path().to_path_buf()) else {
            return;
        };
        let missing = self.current[Area::Root as usize].is_none() && !root.exists();
        let ancestor = missing
            .then(|| root.ancestors().skip(1).find(|p| p.is_dir()))
            .flatten()
            .map(Path::to_path_buf);
        if ancestor.is_some() && ancestor == self.ancestor.as_ref().map(|(_, p)| p.clone()) {
            return;
        }
        if let Some((wd, _)) = self.ancestor.take() {
            let _ = self.watches.remove(wd);
        }
        let Some(ancestor) = ancestor else {
            return;
        };
        let mask = WatchMask::CREATE
            | WatchMask::MOVED_TO
            | WatchMask::DELETE_SELF
            | WatchMask::MOVE_SELF
            | WatchMask::ONLYDIR;
        match self.watches.add(&ancestor, mask) {
            Ok(wd) => self.ancestor = Some((wd, ancestor)),
            Err(e) => return tracing::debug!("{}", inotify_problem(&e, &ancestor)),
        }
        // Made before the watch was added (`mkdir -p` makes one level after another): that
        // raised no event, so look again (at most once a level: each look watches deeper).
        if root.exists() {
            self.rewatch(Area::Root);
        }
    }

    /// An event on the root's ancestor: the way to the root changed if it names the next
    /// directory on it (or the ancestor itself went): look again, and once the root is there,
    /// watch everything in it.
    fn handle_ancestor(&mut self, event: &inotify::Event<std::ffi::OsString>) {
        let Some((_, ancestor)) = &self.ancestor else {
            return;
        };
        let root = self.dirs.first().map(|(_, d)| d.path().to_path_buf());
        let next = root
            .as_deref()
            .and_then(|r| r.strip_prefix(ancestor).ok())
            .and_then(|rest| rest.components().next())
            .map(|c| c.as_os_str().to_owned());
        let on_the_way = event.name.is_some() && event.name == next;
        if event.mask.contains(EventMask::IGNORED) {
            self.ancestor = None;
        } else if !on_the_way
            && !event
                .mask
                .intersects(EventMask::DELETE_SELF | EventMask::MOVE_SELF)
        {
            return;
        }
        self.rewatch(Area::Root);
        if self.current[Area::Root as usize].is_some() {
            for a in &Area::ALL[1..] {
                self.rewatch(*a);
            }
        }
    }

    /// Wakes `area`'s waiters, and tells per-name subscribers which file changed.
    fn bump(&self, area: Area, file: Option<&str>) {
        self.tx.send_modify(|g| g[area as usize] += 1);
        if self.changes.receiver_count() > 0 {
            let _ = self.changes.send(Change {
                area,
                file: file.map(Arc::from),
            });
        }
    }

    fn handle(&mut self, event: inotify::Event<std::ffi::OsString>) {
        if event.mask.contains(EventMask::Q_OVERFLOW) {
            tracing::debug!("inotify queue overflow: waking every waiter");
            self.stats.overflows.fetch_add(1, Ordering::Relaxed);
            for area in Area::ALL {
                self.bump(area, None);
            }
            return;
        }
        if self
            .ancestor
            .as_ref()
            .is_some_and(|(wd, _)| *wd == event.wd)
        {
            return self.handle_ancestor(&event);
        }
        let Some(area) = self.by_wd.get(&event.wd).copied() else {
            return; // a watch already replaced
        };
        if event
            .mask
            .intersects(EventMask::IGNORED | EventMask::DELETE_SELF | EventMask::MOVE_SELF)
        {
            if event.mask.contains(EventMask::IGNORED) {
                // The kernel dropped this watch: forget it before looking again.
                self.by_wd.remove(&event.wd);
                self.current[area as usize] = None;
            }
            self.rewatch(area);
            if area == Area::Root {
                for a in &Area::ALL[1..] {
                    self.rewatch(*a);
                }
            }
            return;
        }
        let name = event.name.as_deref().and_then(|n| n.to_str());
        if name.is_some_and(layout::is_temp_file) {
            return;
        }
        if area == Area::Root
            && let Some(sub) = name.and_then(Area::of_subdir)
        {
            self.rewatch(sub);
        }
        self.bump(area, name);
    }
}

impl Watcher {
    /// Starts watching `dirs`. If inotify is unavailable, logs why and relies on the rescan.
    pub(crate) fn start(dirs: Vec<(Area, Arc<SafeDir>)>, rescan: Duration) -> Watcher {
        let (tx, _) = watch::channel([0; AREAS]);
        let (changes, _) = broadcast::channel(CHANGE_BACKLOG);
        let stats = Arc::new(Counters::default());
        let task = match Self::spawn(dirs, tx.clone(), changes.clone(), stats.clone(), rescan) {
            Ok(handle) => Some(handle),
            Err(e) => {
                tracing::warn!(
                    "{}; waiters fall back to rescanning every {}",
                    crate::error_chain(&e),
                    podsignal_proto::format_duration(rescan)
                );
                stats.degraded.store(true, Ordering::Relaxed);
                None
            }
        };
        Watcher {
            tx,
            changes,
            task,
            rescan,
            stats,
        }
    }

    /// Every change from now on, file by file (for per-name subscribers).
    pub(crate) fn changes(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    /// The rescan interval.
    pub(crate) fn rescan(&self) -> Duration {
        self.rescan
    }

    /// Counts one rescan (for `/metrics`).
    pub(crate) fn count_rescan(&self) {
        self.stats.rescans.fetch_add(1, Ordering::Relaxed);
    }

    fn spawn(
        dirs: Vec<(Area, Arc<SafeDir>)>,
        tx: watch::Sender<Generations>,
        changes: broadcast::Sender<Change>,
        stats: Arc<Counters>,
        rescan: Duration,
    ) -> Result<tokio::task::AbortHandle> {
        let root = dirs
            .first()
            .map(|(_, d)| d.path().to_path_buf())
            .unwrap_or_default();
        let refused = |e: std::io::Error| Error::Invalid(inotify_problem(&e, &root));
        let inotify = Inotify::init().map_err(refused)?;
        let mut stream = inotify.into_event_stream([0u8; 8192]).map_err(refused)?;
        let mut watching = Watching {
            watches: stream.watches(),
            dirs,
            by_wd: HashMap::new(),
            current: Default::default(),
            tx,
            changes,
            stats,
            warned: [false; AREAS],
            ancestor: None,
        };
        for area in Area::ALL {
            watching.rewatch(area);
        }
        let handle = tokio::spawn(async move {
            // Areas without a watch are tried again every rescan interval.
            let mut retry = tokio::time::interval(rescan.max(Duration::from_millis(100)));
            retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    event = stream.next() => match event {
                        Some(Ok(e)) => watching.handle(e),
                        Some(Err(e)) => {
                            tracing::warn!("reading inotify events failed: {e}; relying on the rescan");
                            watching.stats.degraded.store(true, Ordering::Relaxed);
                            return;
                        }
                        None => return,
                    },
                    _ = retry.tick() => {
                        for area in Area::ALL {
                            if watching.current[area as usize].is_none() {
                                watching.rewatch(area);
                            }
                        }
                    }
                }
            }
        });
        Ok(handle.abort_handle())
    }

    /// Waits until `check` returns `Ok(Ok(_))`, re-evaluating it whenever one of `areas`
    /// changes or the rescan interval passes. On timeout, the error lists what `check` last
    /// said was missing.
    pub(crate) async fn wait_until<T>(
        &self,
        areas: &[Area],
        timeout: Option<Duration>,
        mut check: impl FnMut() -> Result<Result<T, Vec<String>>>,
    ) -> Result<T> {
        let started = Instant::now();
        let deadline = timeout.map(|t| crate::deadline_after(started, t));
        let mut changes = self.subscribe(areas);
        loop {
            changes.mark_seen();
            let pending = match check()? {
                Ok(done) => return Ok(done),
                Err(pending) => pending,
            };
            let expired = match deadline {
                Some(d) => tokio::time::timeout_at(d, changes.changed()).await.is_err(),
                None => {
                    changes.changed().await;
                    false
                }
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

    /// The totals of the watcher's counters.
    pub(crate) fn stats(&self) -> WatchStats {
        WatchStats {
            watching: self.task.as_ref().is_some_and(|t| !t.is_finished())
                && !self.stats.degraded.load(Ordering::Relaxed),
            rescans: self.stats.rescans.load(Ordering::Relaxed),
            overflows: self.stats.overflows.load(Ordering::Relaxed),
        }
    }

    /// Changes to `areas`, for waiters that loop on their own.
    pub(crate) fn subscribe(&self, areas: &[Area]) -> Changes {
        let mut rx = self.tx.subscribe();
        let seen = *rx.borrow_and_update();
        Changes {
            rx,
            areas: areas.to_vec(),
            seen,
            rescan: self.rescan,
            rescan_at: crate::deadline_after(Instant::now(), self.rescan),
            watching: self.task.is_some(),
            stats: self.stats.clone(),
        }
    }
}

/// A subscription to changes of some areas: [`Changes::changed`] resolves when one of them
/// changed since [`Changes::mark_seen`], or when the rescan interval has passed since then.
#[derive(Debug)]
pub(crate) struct Changes {
    rx: watch::Receiver<Generations>,
    areas: Vec<Area>,
    seen: Generations,
    rescan: Duration,
    /// Fixed at `mark_seen`: wake-ups for other areas do not push it back.
    rescan_at: Instant,
    watching: bool,
    stats: Arc<Counters>,
}

impl Changes {
    /// Takes the current state as seen (call it before checking the condition).
    pub(crate) fn mark_seen(&mut self) {
        self.seen = *self.rx.borrow_and_update();
        self.rescan_at = crate::deadline_after(Instant::now(), self.rescan);
    }

    /// Resolves when an area changed since the last [`Changes::mark_seen`], or at the rescan.
    pub(crate) async fn changed(&mut self) {
        loop {
            tokio::select! {
                changed = self.rx.changed(), if self.watching => {
                    if changed.is_err() {
                        self.watching = false;
                        continue;
                    }
                    let now = *self.rx.borrow_and_update();
                    if self.areas.iter().any(|a| now[*a as usize] != self.seen[*a as usize]) {
                        return;
                    }
                }
                () = tokio::time::sleep_until(self.rescan_at) => {
                    self.stats.rescans.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
    }
}

/// Why `path` cannot be watched, with what to do about it.
fn inotify_problem(e: &std::io::Error, path: &std::path::Path) -> String {
    let path = path.display();
    match e.raw_os_error() {
        Some(28) => format!(
            "cannot watch {path}: the inotify watch limit is reached (raise fs.inotify.max_user_watches)"
        ),
        Some(24) => format!(
            "cannot watch {path}: the inotify instance limit is reached (raise fs.inotify.max_user_instances)"
        ),
        _ => format!("cannot watch {path} with inotify: {e}"),
    }
}
