//! Locks with fencing tokens: `locks/NAME.lock` (a plain flock(2) file, compatible with
//! `flock(1)`), `locks/NAME.fence` and `locks/NAME.holder.json`. Leader campaigns use the same
//! mechanism under `leaders/` (see [`crate::leader`]).
//!
//! Acquiring: open (never delete) the lock file, flock it exclusively, check the file is
//! still the one at that path, bump the fencing counter and fsync it, then record the holder.
//! Only then is the lock reported acquired, so a token is never handed out twice, even across
//! a crash. A blocking wait runs on a dedicated thread: the async runtime never blocks, and a
//! wait abandoned by a timeout releases the lock the moment that thread gets it.

use std::fs::{File, TryLockError};
use std::time::Duration;

use podsignal_proto::record::encode;
use podsignal_proto::{FORMAT_VERSION, FencingToken, HolderRecord, Name, layout};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::identity::now_ms;
use crate::safe_dir::SafeDir;
use crate::volume::Volume;

/// Which namespace a lock lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    Lock,
    Leader,
}

/// A held lock. Released when dropped (or when the process dies, even by `kill -9`).
///
/// ```no_run
/// # async fn demo(volume: podsignal_client::Volume) -> podsignal_client::Result<()> {
/// use std::time::Duration;
/// let guard = volume.lock(&"migrations".parse()?, Some(Duration::from_secs(30))).await?;
/// println!("holding with fencing token {}", guard.token());
/// drop(guard);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct LockGuard {
    pub(crate) volume: Volume,
    pub(crate) scope: Scope,
    name: Name,
    token: FencingToken,
    file: File,
}

impl LockGuard {
    /// The lock's name.
    pub fn name(&self) -> &Name {
        &self.name
    }

    /// The fencing token granted with this acquisition.
    pub fn token(&self) -> FencingToken {
        self.token
    }

    /// The locked file. A child process that inherits this descriptor holds the lock too
    /// (as with `flock(1)`): the lock is free only when every copy is closed.
    pub fn file(&self) -> &File {
        &self.file
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let dir = self.volume.scope_dir(self.scope);
        let file = layout::holder_file(&self.name);
        if let Ok(Some(mut h)) = read_holder(dir, &self.name)
            && h.token == self.token
        {
            h.released_ms = Some(now_ms());
            if let Err(e) = dir.write_atomic(&file, &encode(&h), self.volume.write_options(), false)
            {
                tracing::debug!(
                    "recording release of {}: {:#}",
                    self.name,
                    crate::error_chain(&e)
                );
            }
        }
        // Closing `self.file` (after this) releases the flock.
    }
}

/// A lock as an observer sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockStatus {
    /// The lock's name.
    pub name: Name,
    /// True if someone holds the flock now (podsignal or any other flock(2) user).
    pub held: bool,
    /// The last holder podsignal recorded (absent for locks only `flock(1)` ever took).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holder: Option<HolderRecord>,
    /// The last fencing token granted.
    pub last_token: FencingToken,
    /// A problem with the files, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl Volume {
    pub(crate) fn scope_dir(&self, scope: Scope) -> &SafeDir {
        match scope {
            Scope::Lock => &self.inner.locks,
            Scope::Leader => &self.inner.leaders,
        }
    }

    /// Acquires lock `name`, waiting up to `timeout` (`None`: forever).
    pub async fn lock(&self, name: &Name, timeout: Option<Duration>) -> Result<LockGuard> {
        self.acquire(Scope::Lock, name, Some(timeout)).await
    }

    /// Acquires lock `name` if it is free now; [`Error::LockBusy`] if not.
    pub async fn try_lock(&self, name: &Name) -> Result<LockGuard> {
        self.acquire(Scope::Lock, name, None).await
    }

    /// `wait: None` tries once; `Some(timeout)` waits.
    pub(crate) async fn acquire(
        &self,
        scope: Scope,
        name: &Name,
        wait: Option<Option<Duration>>,
    ) -> Result<LockGuard> {
        let dir = self.scope_dir(scope);
        let lock_file = layout::lock_file(name);
        let deadline = wait.flatten().map(|t| tokio::time::Instant::now() + t);
        loop {
            let file = dir.open_lockable(&lock_file, self.access())?;
            let file = match wait {
                None => match file.try_lock() {
                    Ok(()) => file,
                    Err(TryLockError::WouldBlock) => {
                        let holder = self
                            .lock_status_in(scope, name)
                            .holder
                            .filter(|h| h.released_ms.is_none())
                            .map(|h| describe_holder(&h));
                        return Err(Error::LockBusy {
                            name: name.clone(),
                            holder,
                        });
                    }
                    Err(TryLockError::Error(e)) => {
                        return Err(Error::io("cannot lock", dir.path_of(&lock_file), e));
                    }
                },
                Some(_) => self.lock_blocking(scope, name, file, deadline).await?,
            };
            // A neighbour may have deleted or replaced the file while we waited: a lock on an
            // unlinked file excludes nobody. Start over on the file now at the path.
            if !dir.is_current(&lock_file, &file)? {
                tracing::warn!(
                    "{} was replaced while locking; locking the new file",
                    dir.path_of(&lock_file).display()
                );
                continue;
            }
            let token = self.bump_fence(dir, name)?;
            let holder = HolderRecord {
                version: FORMAT_VERSION,
                name: name.clone(),
                token,
                holder: self.identity().clone(),
                acquired_ms: now_ms(),
                released_ms: None,
            };
            dir.write_atomic(
                &layout::holder_file(name),
                &encode(&holder),
                self.write_options(),
                false,
            )?;
            return Ok(LockGuard {
                volume: self.clone(),
                scope,
                name: name.clone(),
                token,
                file,
            });
        }
    }

    async fn lock_blocking(
        &self,
        scope: Scope,
        name: &Name,
        file: File,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<File> {
        let dir = self.scope_dir(scope);
        let path = dir.path_of(&layout::lock_file(name));
        if let Ok(()) = file.try_lock() {
            return Ok(file);
        }
        tracing::info!("waiting for lock on {}", path.display());
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("podsignal-flock".into())
            .spawn(move || {
                let result = file.lock();
                // If nobody waits any more, `send` hands the file back and dropping it unlocks.
                let _ = tx.send((file, result));
            })
            .map_err(|e| Error::io("cannot start a thread to wait for", &path, e))?;
        let far = tokio::time::Instant::now() + Duration::from_secs(86_400 * 365);
        let started = tokio::time::Instant::now();
        tokio::select! {
            got = rx => match got {
                Ok((file, Ok(()))) => Ok(file),
                Ok((_, Err(e))) => Err(Error::io("cannot lock", &path, e)),
                Err(_) => Err(Error::io("cannot lock", &path, std::io::Error::other("lock thread ended"))),
            },
            _ = tokio::time::sleep_until(deadline.unwrap_or(far)) => {
                let status = self.lock_status_in(scope, name);
                let by = status.holder.filter(|h| h.released_ms.is_none()).map(|h| format!(" by {}", describe_holder(&h))).unwrap_or_default();
                Err(Error::Timeout { after: started.elapsed(), pending: vec![format!("{} {name} is held{by}", scope_word(scope))] })
            }
        }
    }

    /// Reads, increments, and durably writes the fencing counter. Called with the lock held,
    /// so no other podsignal process touches the counter meanwhile.
    fn bump_fence(&self, dir: &SafeDir, name: &Name) -> Result<FencingToken> {
        let file = layout::fence_file(name);
        let current = match dir.read_record(&file)? {
            None => FencingToken(0),
            Some(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                // A garbage counter must not reset to 0: tokens would go backwards.
                FencingToken::parse_counter(&text).map_err(|source| Error::BadRecord {
                    path: dir.path_of(&file),
                    source,
                })?
            }
        };
        let next = current
            .next()
            .ok_or_else(|| Error::FenceExhausted { name: name.clone() })?;
        dir.write_atomic(
            &file,
            next.to_counter().as_bytes(),
            self.write_options(),
            true,
        )?;
        Ok(next)
    }

    /// The state of lock `name`, as an observer sees it.
    pub fn lock_status(&self, name: &Name) -> LockStatus {
        self.lock_status_in(Scope::Lock, name)
    }

    /// Every lock in the directory, sorted by name.
    pub fn list_locks(&self) -> Result<Vec<LockStatus>> {
        self.list_in(Scope::Lock)
    }

    pub(crate) fn list_in(&self, scope: Scope) -> Result<Vec<LockStatus>> {
        let names = self.scope_dir(scope).list()?;
        let names = names
            .iter()
            .filter_map(|f| f.strip_suffix(".lock"))
            .filter_map(|s| Name::new(s).ok());
        Ok(names.map(|n| self.lock_status_in(scope, &n)).collect())
    }

    pub(crate) fn lock_status_in(&self, scope: Scope, name: &Name) -> LockStatus {
        let dir = self.scope_dir(scope);
        let mut problems = Vec::new();
        let held = match dir.open_regular(&layout::lock_file(name)) {
            // A shared try-lock succeeds unless someone holds it exclusively. It is taken for
            // an instant only; a concurrent `try_lock` could see busy in that instant.
            Ok(Some(f)) => matches!(f.try_lock_shared(), Err(TryLockError::WouldBlock)),
            Ok(None) => false,
            Err(e) => {
                problems.push(crate::error_chain(&e));
                false
            }
        };
        let holder = read_holder(dir, name).unwrap_or_else(|e| {
            problems.push(crate::error_chain(&e));
            None
        });
        let last_token = match dir.read_record(&layout::fence_file(name)) {
            Ok(Some(b)) => FencingToken::parse_counter(&String::from_utf8_lossy(&b))
                .unwrap_or_else(|e| {
                    problems.push(format!(
                        "{}: {e}",
                        dir.path_of(&layout::fence_file(name)).display()
                    ));
                    FencingToken(0)
                }),
            Ok(None) => FencingToken(0),
            Err(e) => {
                problems.push(crate::error_chain(&e));
                FencingToken(0)
            }
        };
        LockStatus {
            name: name.clone(),
            held,
            holder,
            last_token,
            problem: (!problems.is_empty()).then(|| problems.join("; ")),
        }
    }
}

pub(crate) fn read_holder(dir: &SafeDir, name: &Name) -> Result<Option<HolderRecord>> {
    let file = layout::holder_file(name);
    let Some(bytes) = dir.read_record(&file)? else {
        return Ok(None);
    };
    HolderRecord::decode(&bytes, name)
        .map(Some)
        .map_err(|source| Error::BadRecord {
            path: dir.path_of(&file),
            source,
        })
}

pub(crate) fn describe_holder(h: &HolderRecord) -> String {
    format!(
        "{} (pid {} on {}, token {})",
        h.holder.label(),
        h.holder.pid,
        h.holder.hostname,
        h.token
    )
}

fn scope_word(scope: Scope) -> &'static str {
    match scope {
        Scope::Lock => "lock",
        Scope::Leader => "leadership of",
    }
}
