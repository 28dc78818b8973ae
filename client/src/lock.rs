//! Locks with fencing tokens: `locks/NAME.lock` (a plain flock(2) file, compatible with
//! `flock(1)`), `locks/NAME.fence` and `locks/NAME.holder.json`. Leader campaigns use the same
//! mechanism under `leaders/` ([`Scope::Leader`]).
//!
//! Acquiring: open (never delete) the lock file, flock it exclusively, check the file is
//! still the one at that path in the directory now at its path, take the next fencing token
//! (one past the larger of the counter and the last holder record's token, see
//! [`podsignal_proto::lock::next_token`]) and fsync it, then record the holder. Only then is
//! the lock reported acquired, so a token is never handed out twice or lower, even across a
//! crash or a damaged counter. A blocking wait runs on the volume's flock thread for that
//! file (module `flock`): the async runtime never blocks, and an abandoned wait leaves
//! nothing behind.

use std::fs::{File, TryLockError};
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;

use podsignal_proto::lock::{Counter, next_token};
use podsignal_proto::record::encode;
use podsignal_proto::{FORMAT_VERSION, FencingToken, HolderRecord, Name, layout};
use serde::{Deserialize, Serialize};

use crate::coordinator::{Hold, LockHold, Scope, Wait};
use crate::error::{Error, Result};
use crate::identity::now_ms;
use crate::safe_dir::SafeDir;
use crate::volume::Volume;

/// A held lock or leadership. Released when dropped (or when the process dies, even by
/// `kill -9`).
///
/// ```no_run
/// # async fn demo(volume: podsignal_client::Volume) -> podsignal_client::Result<()> {
/// use podsignal_client::{Coordinator, LockHold};
/// use std::time::Duration;
/// let guard = volume.lock(&"migrations".parse()?, Some(Duration::from_secs(30))).await?;
/// println!("holding with fencing token {}", guard.token());
/// drop(guard);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct LockGuard {
    dir: Arc<SafeDir>,
    volume: Volume,
    name: Name,
    token: FencingToken,
    file: File,
}

impl LockGuard {
    /// The locked file. A child process that inherits this descriptor holds the lock too
    /// (as with `flock(1)`): the lock is free only when every copy is closed.
    pub fn file(&self) -> &File {
        &self.file
    }
}

impl Hold for LockGuard {
    fn name(&self) -> &Name {
        &self.name
    }

    fn descriptor(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    async fn lost(&self) -> String {
        std::future::pending().await
    }
}

impl LockHold for LockGuard {
    fn token(&self) -> FencingToken {
        self.token
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        // Written while the flock is still held: after it, the next holder's record could be
        // overwritten with ours.
        let file = layout::holder_file(&self.name);
        if let Ok(Some(mut h)) = read_holder(&self.dir, &self.name)
            && h.token == self.token
        {
            h.released_ms = Some(now_ms());
            let written = encode(&h)
                .map_err(|e| Error::record(self.dir.path_of(&file), e))
                .and_then(|bytes| {
                    self.dir
                        .write_atomic(&file, &bytes, self.volume.write_options(), false)
                });
            if let Err(e) = written {
                tracing::debug!(
                    "recording release of {}: {}",
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
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
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
    /// While held: the pid `/proc/locks` names as the flock's owner (the process that took
    /// it), as seen from this pid namespace; absent when unknown or not visible from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flock_pid: Option<u32>,
    /// A problem with the files, or with who holds the lock, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// Held by a process podsignal did not record: `flock(1)`, or a process that took the
    /// lock after the recorded holder released it or died. No token is its: `holder` and
    /// `last_token` are a previous holder's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub held_outside_podsignal: bool,
}

impl LockStatus {
    /// The recorded holder, if it holds the lock now (held, the record is not released, and
    /// the flock is not someone else's).
    pub fn current_holder(&self) -> Option<HolderRecord> {
        self.holder
            .clone()
            .filter(|h| self.held && !self.held_outside_podsignal && h.released_ms.is_none())
    }
}

impl Volume {
    pub(crate) fn scope_dir(&self, scope: Scope) -> &Arc<SafeDir> {
        match scope {
            Scope::Lock => &self.inner.locks,
            Scope::Leader => &self.inner.leaders,
        }
    }

    pub(crate) async fn acquire_now(
        &self,
        scope: Scope,
        name: &Name,
        wait: Wait,
    ) -> Result<LockGuard> {
        let dir = self.scope_dir(scope).clone();
        let lock_file = layout::lock_file(name);
        let started = tokio::time::Instant::now();
        let deadline = match wait {
            Wait::Timeout(t) => Some(crate::deadline_after(started, t)),
            Wait::TryOnce | Wait::Forever => None,
        };
        loop {
            let file = match wait {
                Wait::TryOnce => {
                    let file = dir.open_lockable(&lock_file, self.access())?;
                    match file.try_lock() {
                        Ok(()) => file,
                        Err(TryLockError::WouldBlock) => {
                            return Err(Error::LockBusy {
                                name: name.clone(),
                                holder: self.busy_holder(scope, name),
                            });
                        }
                        Err(TryLockError::Error(e)) => {
                            return Err(Error::io("cannot lock", dir.path_of(&lock_file), e));
                        }
                    }
                }
                Wait::Timeout(_) | Wait::Forever => {
                    // Checked and granted where the flock is taken (the flock thread when
                    // it must be waited for): the fence is fsynced there too.
                    let volume = self.clone();
                    let (dir2, name2) = (dir.clone(), name.clone());
                    let waiting = self.with_flock(&dir, &lock_file, move |file| {
                        volume.grant(dir2, &name2, file)
                    });
                    let granted = match deadline {
                        None => waiting.await?,
                        Some(d) => match tokio::time::timeout_at(d, waiting).await {
                            Ok(r) => r?,
                            Err(_) => {
                                let by = self
                                    .busy_holder(scope, name)
                                    .map(|h| format!(" by {h}"))
                                    .unwrap_or_default();
                                return Err(Error::Timeout {
                                    after: started.elapsed(),
                                    pending: vec![format!("{} {name} is held{by}", scope.word())],
                                });
                            }
                        },
                    };
                    match granted {
                        Some(guard) => return Ok(guard),
                        None => continue,
                    }
                }
            };
            // Check, then grant, on the blocking pool: the fence is fsynced.
            let volume = self.clone();
            let (dir2, name2) = (dir.clone(), name.clone());
            let granted = self
                .blocking(move || volume.grant(dir2, &name2, file))
                .await?;
            match granted {
                Some(guard) => return Ok(guard),
                None => continue,
            }
        }
    }

    /// With the flock held: checks the locked file is the one at the path (in the directory
    /// now at its path), takes the next token and records the holder. `None`: a neighbour
    /// deleted or replaced the file or its directory while we waited; start over on the file
    /// now at the path.
    fn grant(&self, dir: Arc<SafeDir>, name: &Name, file: File) -> Result<Option<LockGuard>> {
        let lock_file = layout::lock_file(name);
        if !dir.is_current(&lock_file, &file)? {
            tracing::warn!(
                "{} was replaced while locking; locking the file now at that path",
                dir.path_of(&lock_file).display()
            );
            return Ok(None);
        }
        let token = self.bump_fence(&dir, name, &file)?;
        let me = crate::identity::current();
        let holder = HolderRecord {
            version: FORMAT_VERSION,
            name: name.clone(),
            token,
            holder: self.identity().clone(),
            via: (self.identity().incarnation != me.incarnation).then_some(me),
            acquired_ms: now_ms(),
            released_ms: None,
        };
        let holder_file = layout::holder_file(name);
        let bytes = encode(&holder).map_err(|e| Error::record(dir.path_of(&holder_file), e))?;
        dir.write_atomic(&holder_file, &bytes, self.write_options(), false)?;
        Ok(Some(LockGuard {
            dir,
            volume: self.clone(),
            name: name.clone(),
            token,
            file,
        }))
    }

    /// Who holds a busy lock, as far as the holder record says.
    fn busy_holder(&self, scope: Scope, name: &Name) -> Option<String> {
        self.lock_status_now(scope, name)
            .holder
            .filter(|h| h.released_ms.is_none())
            .map(|h| describe_holder(&h))
    }

    /// Reads, increments, and durably writes the fencing counter, and keeps a copy of it in
    /// the lock file itself (`locked`, which the protocol never deletes): tokens continue
    /// even if the counter and the holder record are both deleted. Called with the lock
    /// held, so no other podsignal process touches them meanwhile.
    fn bump_fence(&self, dir: &SafeDir, name: &Name, locked: &File) -> Result<FencingToken> {
        let file = layout::fence_file(name);
        let counter = Counter::parse(dir.read_record(&file)?.as_deref());
        let last_holder = match read_holder(dir, name) {
            Ok(h) => h.map(|h| h.token),
            Err(e) => {
                tracing::warn!("{}", crate::error_chain(&e));
                None
            }
        };
        let in_lock_file = lock_file_token(locked);
        let next =
            next_token(&counter, last_holder.max(in_lock_file)).map_err(|why| Error::Fence {
                path: dir.path_of(&file),
                why,
            })?;
        if let Counter::Corrupt(why) = &counter {
            tracing::warn!(
                "{}: {why}; continuing from the last token the holder record or the lock file keeps, with {next}",
                dir.path_of(&file).display()
            );
        }
        dir.write_atomic(
            &file,
            next.to_counter().as_bytes(),
            self.write_options(),
            true,
        )?;
        write_lock_file_token(locked, next);
        Ok(next)
    }

    /// Every lock (or campaign) in the directory, sorted by name.
    pub(crate) fn list_locks_now(&self, scope: Scope) -> Result<Vec<LockStatus>> {
        let names = self.scope_dir(scope).list()?;
        let names = names
            .iter()
            .filter_map(|f| f.strip_suffix(".lock"))
            .filter_map(|s| Name::new(s).ok());
        Ok(names.map(|n| self.lock_status_now(scope, &n)).collect())
    }

    pub(crate) fn lock_status_now(&self, scope: Scope, name: &Name) -> LockStatus {
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
        let flock_pid = if held {
            dir.open_regular(&layout::lock_file(name))
                .ok()
                .flatten()
                .and_then(|f| flock_owner(&f))
        } else {
            None
        };
        if let Some(note) = holder
            .as_ref()
            .filter(|h| held && h.released_ms.is_none())
            .and_then(|h| holder_mismatch(h, flock_pid))
        {
            problems.push(note);
        }
        let fence = layout::fence_file(name);
        let counter = match dir.read_record(&fence) {
            Ok(bytes) => Counter::parse(bytes.as_deref()),
            Err(e) => {
                problems.push(crate::error_chain(&e));
                Counter::Missing
            }
        };
        if let Counter::Corrupt(why) = &counter {
            problems.push(format!("{}: {why}", dir.path_of(&fence).display()));
        }
        let last_token = counter
            .last()
            .max(holder.as_ref().map(|h| h.token))
            .unwrap_or(FencingToken(0));
        let recorded_holder_holds = holder
            .as_ref()
            .is_some_and(|h| h.released_ms.is_none() && !flock_is_elsewhere(h, flock_pid));
        LockStatus {
            name: name.clone(),
            held,
            holder,
            last_token,
            flock_pid,
            problem: (!problems.is_empty()).then(|| problems.join("; ")),
            held_outside_podsignal: held && !recorded_holder_holds,
        }
    }
}

/// The token a lock file holds (podsignal writes the last one granted into it; flock(1)
/// leaves it empty). Anything else counts as none.
fn lock_file_token(file: &File) -> Option<FencingToken> {
    use std::os::unix::fs::FileExt;
    let mut buf = [0u8; 24];
    let n = file.read_at(&mut buf, 0).ok()?;
    Counter::parse(Some(&buf[..n])).last()
}

/// Writes `token` into the lock file (best-effort: a lock file opened read-only, for mixed
/// UIDs, keeps what it had; the counter is the record that is fsynced).
fn write_lock_file_token(file: &File, token: FencingToken) {
    use std::os::unix::fs::FileExt;
    let text = token.to_counter();
    if file.write_at(text.as_bytes(), 0).is_ok() {
        let _ = file.set_len(text.len() as u64);
    }
}

/// The pid `/proc/locks` names as the owner of the flock on `file` (the process that took it),
/// as seen from this pid namespace; `None` if there is none, or it is not visible from here.
fn flock_owner(file: &File) -> Option<u32> {
    let st = rustix::fs::fstat(file).ok()?;
    let key = format!(
        "{:02x}:{:02x}:{}",
        rustix::fs::major(st.st_dev),
        rustix::fs::minor(st.st_dev),
        st.st_ino
    );
    let mut text = String::new();
    std::fs::File::open("/proc/locks")
        .ok()?
        .take(1 << 20)
        .read_to_string(&mut text)
        .ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        // `1: FLOCK  ADVISORY  WRITE 8455 fe:00:10010664 0 EOF` (blocked waiters: `-> FLOCK`)
        (f.len() >= 6 && f[1] == "FLOCK" && f[5] == key)
            .then(|| f[4].parse::<u32>().ok().filter(|p| *p > 0))
            .flatten()
    })
}

/// When the recorded holder is gone but the flock it took is still held, says so: something
/// it started inherited the descriptor. (A flock some other process took is
/// [`LockStatus::held_outside_podsignal`].) The check needs the pid to be visible from here.
fn holder_mismatch(h: &HolderRecord, flock_pid: Option<u32>) -> Option<String> {
    let locker = h.via.as_ref().unwrap_or(&h.holder);
    let visible = |pid: u32| std::path::Path::new(&format!("/proc/{pid}")).exists();
    match flock_pid {
        Some(p) if p == locker.pid && !visible(p) => Some(format!(
            "its recorded holder (pid {p}) is gone, but the lock is still held: a process it started inherited it"
        )),
        _ => None,
    }
}

/// True when `/proc/locks` names another process than the recorded holder as the flock's
/// owner: `flock(1)`, or whatever took the lock after the recorded holder died. Only within
/// one pod (same hostname): pids of other pods' namespaces do not compare.
fn flock_is_elsewhere(h: &HolderRecord, flock_pid: Option<u32>) -> bool {
    let locker = h.via.as_ref().unwrap_or(&h.holder);
    flock_pid
        .is_some_and(|p| p != locker.pid && locker.hostname == crate::identity::current().hostname)
}

pub(crate) fn read_holder(dir: &SafeDir, name: &Name) -> Result<Option<HolderRecord>> {
    let file = layout::holder_file(name);
    let repair = || format!("the next holder of {name} replaces it");
    let Some(bytes) = dir.read_record(&file).map_err(|e| e.with_repair(repair))? else {
        return Ok(None);
    };
    HolderRecord::decode(&bytes, name)
        .map(Some)
        .map_err(|why| Error::bad_record(dir.path_of(&file), why, repair()))
}

/// How messages name a holder: `app (pid 42 on pod-1), token 7`.
pub(crate) fn describe_holder(h: &HolderRecord) -> String {
    format!("{}, token {}", h.holder.describe(), h.token)
}
