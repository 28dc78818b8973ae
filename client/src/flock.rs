//! Blocking `flock(2)` waits that a caller can abandon without leaving anything behind.
//!
//! A blocking flock cannot be cancelled, so it cannot run on the async runtime, and a thread
//! per wait would outlive every abandoned wait (a timeout, a client gone) until the lock is
//! free: hundreds of timed-out waits on a held lock would be hundreds of threads. Instead
//! there is at most **one thread per lock file** with waiters in this process. It opens the
//! file, blocks in `flock(LOCK_EX)`, and hands the locked descriptor to the first waiter that
//! is still waiting (FIFO); if none is, it closes it at once, which unlocks. A waiter that
//! gives up just drops its receiver: nothing else to undo. The thread ends when nobody waits.

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

type Waiter = oneshot::Sender<Result<File>>;

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

    /// Waits for an exclusive flock on the file `open` opens, identified by `key` (its path).
    /// Cancel-safe: dropping the future abandons the wait. [`Error::TooManyWaits`] when the
    /// file has no thread yet and the limit of threads is reached.
    pub(crate) async fn lock(&self, key: &str, open: Opener) -> Result<File> {
        let (tx, rx) = oneshot::channel();
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
        rx.await.map_err(|_| {
            Error::io(
                "cannot lock",
                key,
                std::io::Error::other("the flock thread ended"),
            )
        })?
    }

    /// How many lock files have a waiting thread (for tests and metrics).
    #[cfg(test)]
    pub(crate) fn threads(&self) -> usize {
        self.queues.lock().map(|q| q.len()).unwrap_or(0)
    }
}

impl Volume {
    /// An exclusive flock on `file` in `dir`: at once if it is free, else waited for on the
    /// flock thread of that file. Cancel-safe.
    pub(crate) async fn flock(&self, dir: &Arc<SafeDir>, file: &str) -> Result<File> {
        let f = dir.open_lockable(file, self.access())?;
        match f.try_lock() {
            Ok(()) => return Ok(f),
            Err(std::fs::TryLockError::WouldBlock) => drop(f),
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
        tracing::info!("waiting for the flock on {key}");
        self.inner.flocks.lock(&key, open).await
    }
}

/// The thread of one lock file: lock, hand over, until nobody waits.
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
            q.retain(|w| !w.is_closed());
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
            if let Err(back) = waiter.send(r) {
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
                waits.lock(&key, opener(path.clone())),
            )
            .await;
            assert!(r.is_err(), "the lock is held");
        }
        assert_eq!(waits.threads(), 1, "one thread for one lock file");
        let other = tmp.path().join("y.lock");
        let refused = waits.lock("y", opener(other)).await;
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
            waits.lock(&key, opener(path.clone())),
        );
        let w = waits.clone();
        let (k, p) = (key.clone(), path.clone());
        let patient = tokio::spawn(async move { w.lock(&k, opener(p)).await });
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
}
