//! Blocking `flock(2)` waits that a caller can abandon without leaving anything behind.
//!
//! A blocking flock cannot be cancelled, so it cannot run on the async runtime, and a thread
//! per wait would outlive every abandoned wait (a timeout, a client gone) until the lock is
//! free: hundreds of timed-out waits on a held lock would be hundreds of threads. Instead
//! there is at most **one thread per lock file** with waiters in this process. It opens the
//! file, blocks in `flock(LOCK_EX)`, and runs the job of the first waiter still waiting
//! (FIFO) with the locked descriptor; if none is, it closes it at once, which unlocks. A
//! waiter that gives up just drops its receiver: nothing else to undo. The thread ends when
//! nobody waits.
//!
//! The job runs right where the lock was taken ([`FlockWaits::run_locked`]): granting a lock
//! (fence, holder record) or appending an event happens on that thread, not after handing
//! the descriptor to the async side and a blocking task, so under contention the lock is
//! held for the work alone, not for the work plus two thread hand-offs. A job that wants the
//! descriptor itself returns it (`Ok`).

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::safe_dir::SafeDir;
use crate::volume::Volume;

/// How the waiting thread opens the lock file (afresh for every acquisition: a flock
/// belongs to an open file description).
pub(crate) type Opener = Arc<dyn Fn() -> Result<File> + Send + Sync>;

/// A waiter in a lock file's queue: its job, run with the lock held.
type Waiter = Box<dyn LockedJob>;

/// A job run on the flock thread with the lock held: a closure and where its result goes.
trait LockedJob: Send {
    /// True once the caller stopped waiting for the result.
    fn abandoned(&self) -> bool;
    /// Runs the job with `locked` (unlocking when done), unless the caller gave up: then
    /// `Err(locked)`, for the next waiter.
    fn run(self: Box<Self>, locked: Result<File>) -> std::result::Result<(), Result<File>>;
}

struct Job<T, F> {
    f: F,
    tx: oneshot::Sender<Result<T>>,
}

impl<T: Send, F: FnOnce(File) -> Result<T> + Send> LockedJob for Job<T, F> {
    fn abandoned(&self) -> bool {
        self.tx.is_closed()
    }

    fn run(self: Box<Self>, locked: Result<File>) -> std::result::Result<(), Result<File>> {
        if self.tx.is_closed() {
            return Err(locked);
        }
        let result = locked.and_then(self.f);
        // The caller may have gone meanwhile: the job ran all the same, as a blocking task
        // would have.
        let _ = self.tx.send(result);
        Ok(())
    }
}

/// Every lock file this process waits for, each with its queue of waiters.
#[derive(Default)]
pub(crate) struct FlockWaits {
    /// A std mutex: held to push or pop a waiter, never across a blocking call.
    queues: Arc<Mutex<HashMap<String, VecDeque<Waiter>>>>,
    /// The most threads (lock files waited for) at once; `None`: no limit. A thread lives
    /// until its lock is free, whether or not anyone still waits, so a server whose callers
    /// choose the lock names (the agent) must bound them.
    limit: Option<usize>,
}

impl std::fmt::Debug for FlockWaits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let waiting = self.queues.lock().map(|q| q.len()).unwrap_or(0);
        f.debug_struct("FlockWaits")
            .field("files_waited_for", &waiting)
            .finish()
    }
}

impl FlockWaits {
    /// At most `limit` threads (lock files waited for) at once.
    pub(crate) fn with_limit(limit: Option<usize>) -> FlockWaits {
        FlockWaits {
            queues: Arc::default(),
            limit,
        }
    }

    /// Runs `f` on the lock file's thread with the flock held (the descriptor is `f`'s; the
    /// lock ends when it is dropped). Dropping the future before `f` starts abandons it; once
    /// started it completes. Same limit as [`lock`](Self::lock).
    pub(crate) async fn run_locked<T: Send + 'static>(
        &self,
        key: &str,
        open: Opener,
        f: impl FnOnce(File) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.enqueue(key, open, Box::new(Job { f, tx }))?;
        rx.await.map_err(|_| thread_ended(key))?
    }

    /// Queues `waiter` for the lock file `key`, starting its thread if it has none.
    fn enqueue(&self, key: &str, open: Opener, tx: Waiter) -> Result<()> {
        let start_thread = {
            let mut queues = self
                .queues
                .lock()
                .map_err(|_| Error::Invalid("the flock wait queue is poisoned".into()))?;
            let threads = queues.len();
            match queues.get_mut(key) {
                Some(q) => {
                    q.push_back(tx);
                    false
                }
                None if self.limit.is_some_and(|l| threads >= l) => {
                    return Err(Error::TooManyWaits {
                        limit: self.limit.unwrap_or_default(),
                    });
                }
                None => {
                    queues.insert(key.to_owned(), VecDeque::from([tx]));
                    true
                }
            }
        };
        if start_thread {
            let queues = self.queues.clone();
            let thread_key = key.to_owned();
            let spawned = std::thread::Builder::new()
                .name("podsignal-flock".into())
                .spawn(move || serve(&queues, &thread_key, &*open));
            if let Err(e) = spawned {
                if let Ok(mut q) = self.queues.lock() {
                    q.remove(key);
                }
                return Err(Error::io("cannot start a thread to wait for", key, e));
            }
        }
        Ok(())
    }

    /// How many lock files have a waiting thread (for tests and metrics).
    #[cfg(test)]
    pub(crate) fn threads(&self) -> usize {
        self.queues.lock().map(|q| q.len()).unwrap_or(0)
    }
}

fn thread_ended(key: &str) -> Error {
    Error::io(
        "cannot lock",
        key,
        std::io::Error::other("the flock thread ended"),
    )
}

impl Volume {
    /// Runs `f` with an exclusive flock on `file` in `dir` (the descriptor is `f`'s; the lock
    /// ends when it is dropped): on the blocking pool at once if the lock is free, else on
    /// the lock file's flock thread as soon as it is ([`FlockWaits::run_locked`]).
    /// Cancel-safe until `f` starts.
    pub(crate) async fn with_flock<T: Send + 'static>(
        &self,
        dir: &Arc<SafeDir>,
        file: &str,
        f: impl FnOnce(File) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let first = dir.open_lockable(file, self.access())?;
        match first.try_lock() {
            Ok(()) => return self.blocking(move || f(first)).await,
            Err(std::fs::TryLockError::WouldBlock) => drop(first),
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(Error::io("cannot lock", dir.path_of(file), e));
            }
        }
        let access = self.access();
        let open: Opener = {
            let (dir, file) = (dir.clone(), file.to_owned());
            Arc::new(move || dir.open_lockable(&file, access))
        };
        let key = dir.path_of(file).display().to_string();
        self.inner.flocks.run_locked(&key, open, f).await
    }
}

/// The thread of one lock file: lock, hand over (or run the job), until nobody waits.
fn serve(
    queues: &Mutex<HashMap<String, VecDeque<Waiter>>>,
    key: &str,
    open: &dyn Fn() -> Result<File>,
) {
    loop {
        // Forget waiters who gave up; end (and leave the map) if none is left. Under the same
        // lock a new waiter registers, so none is ever left without a thread.
        {
            let Ok(mut map) = queues.lock() else { return };
            let q = map.entry(key.to_owned()).or_default();
            q.retain(|w| !w.abandoned());
            if q.is_empty() {
                map.remove(key);
                return;
            }
        }
        let locked = open().and_then(|file| {
            file.lock()
                .map(|()| file)
                .map_err(|e| Error::io("cannot lock", key, e))
        });
        let mut result = Some(locked);
        while let Some(r) = result.take() {
            let Some(waiter) = queues
                .lock()
                .ok()
                .and_then(|mut m| m.get_mut(key).and_then(VecDeque::pop_front))
            else {
                break; // nobody left: dropping `r` closes the file, which unlocks
            };
            if let Err(back) = waiter.run(r) {
                result = Some(back); // that waiter gave up meanwhile: the next one
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn opener(path: std::path::PathBuf) -> Opener {
        Arc::new(move || {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(|e| Error::io("cannot open", &path, e))
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn abandoned_waits_share_one_thread_and_leave_none() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("x.lock");
        let key = path.display().to_string();
        let holder = opener(path.clone())().unwrap();
        holder.lock().unwrap();
        let waits = FlockWaits::with_limit(Some(1));
        for _ in 0..300 {
            let r = tokio::time::timeout(
                Duration::from_millis(1),
                waits.run_locked(&key, opener(path.clone()), Ok),
            )
            .await;
            assert!(r.is_err(), "the lock is held");
        }
        assert_eq!(waits.threads(), 1, "one thread for one lock file");
        let other = tmp.path().join("y.lock");
        let refused = waits.run_locked("y", opener(other), Ok).await;
        assert!(
            matches!(refused, Err(Error::TooManyWaits { limit: 1 })),
            "a second lock file is over the limit: {refused:?}"
        );
        drop(holder); // unlock: the thread takes it, finds nobody, unlocks, ends
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while waits.threads() > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the thread never ended"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let again = opener(path.clone())().unwrap();
        assert!(again.try_lock().is_ok(), "nobody holds it any more");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_lock_goes_to_the_first_waiter_still_waiting() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("x.lock");
        let key = path.display().to_string();
        let holder = opener(path.clone())().unwrap();
        holder.lock().unwrap();
        let waits = Arc::new(FlockWaits::default());
        let gave_up = tokio::time::timeout(
            Duration::from_millis(10),
            waits.run_locked(&key, opener(path.clone()), Ok),
        );
        let w = waits.clone();
        let (k, p) = (key.clone(), path.clone());
        let patient = tokio::spawn(async move { w.run_locked(&k, opener(p), Ok).await });
        assert!(gave_up.await.is_err());
        drop(holder);
        let got = tokio::time::timeout(Duration::from_secs(5), patient)
            .await
            .expect("the patient waiter got it")
            .unwrap()
            .unwrap();
        let other = opener(path)().unwrap();
        assert!(other.try_lock().is_err(), "held by the patient waiter");
        drop(got);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jobs_run_with_the_lock_held_and_abandoned_ones_never_run() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("x.lock");
        let key = path.display().to_string();
        let holder = opener(path.clone())().unwrap();
        holder.lock().unwrap();
        let waits = Arc::new(FlockWaits::default());
        let ran = Arc::new(Mutex::new(Vec::new()));
        let job = |i: u32| {
            let (ran, path) = (ran.clone(), path.clone());
            move |locked: File| {
                // Held while the job runs: another descriptor cannot take it.
                let other = opener(path)().unwrap();
                assert!(other.try_lock().is_err(), "job {i} runs with the lock held");
                ran.lock().unwrap().push(i);
                drop(locked);
                Ok(i)
            }
        };
        let abandoned = tokio::time::timeout(
            Duration::from_millis(10),
            waits.run_locked(&key, opener(path.clone()), job(0)),
        );
        assert!(abandoned.await.is_err(), "the lock is held");
        let patient: Vec<_> = (1..=2)
            .map(|i| {
                let (w, k, p, j) = (waits.clone(), key.clone(), path.clone(), job(i));
                tokio::spawn(async move { w.run_locked(&k, opener(p), j).await })
            })
            .collect();
        drop(holder);
        for (i, task) in (1..=2).zip(patient) {
            let got = tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .expect("the job ran")
                .unwrap()
                .unwrap();
            assert_eq!(got, i);
        }
        let mut ran = ran.lock().unwrap().clone();
        ran.sort();
        assert_eq!(ran, [1, 2], "the abandoned job never ran");
        assert!(
            opener(path)().unwrap().try_lock().is_ok(),
            "unlocked after the jobs"
        );
    }
}
