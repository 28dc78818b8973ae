//! Writing records, and the debris writers and holders leave: temporary files and
//! liveness files are flocked by their process while it lives, so one whose flock can be
//! taken is debris, which [`SafeDir::sweep`] removes.

use std::fs::{File, TryLockError};
use std::io::{self, Write};

use podsignal_proto::layout;
use rustix::fs::{self as rfs, AtFlags, OFlags};

use super::{Access, OpenDir, SafeDir, WriteOptions, errno_to_io};
use crate::error::{Error, Result};
use crate::identity;

/// How often, at most, a process sweeps a directory's debris (at a write; its first write
/// to a directory always sweeps). Each process that starts sweeps, so a crash loop leaves
/// a bounded number of files; a long-lived writer removes what others left within this.
pub(crate) const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// How long a writer waits for the directory's write lock before it writes anyway.
const WRITE_LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);

impl SafeDir {
    /// Runs `f` holding an exclusive flock on this directory (a descriptor of its own, so
    /// that two threads of one process exclude each other too): writers that must read, decide
    /// and write without anyone writing in between (a hold's retraction) take it, and so do
    /// the writes they must not miss. The wait is bounded ([`WRITE_LOCK_PATIENCE`]): a
    /// neighbour holding the lock slows writers down, and then they write without it
    /// (logged), never stop. `flock(1)` on the directory joins in.
    pub(crate) fn write_locked<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let d = self.current()?;
        let lock = rfs::openat(
            &d.fd,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            rfs::Mode::empty(),
        )
        .map(File::from)
        .map_err(|e| Error::io("cannot open directory", self.path(), errno_to_io(e)))?;
        let deadline = std::time::Instant::now() + WRITE_LOCK_PATIENCE;
        let mut pause = std::time::Duration::from_micros(50);
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(std::time::Duration::from_millis(20));
                }
                Err(TryLockError::WouldBlock) => {
                    tracing::warn!(
                        "{} is locked (flock) for more than {}: writing without the lock",
                        self.path().display(),
                        podsignal_proto::format_duration(WRITE_LOCK_PATIENCE)
                    );
                    break;
                }
                Err(TryLockError::Error(e)) => {
                    return Err(Error::io("cannot lock", self.path(), e));
                }
            }
        }
        f()
        // `lock` closes here: unlocked.
    }

    /// Writes `bytes` to `name` atomically: temporary file (flocked while it is written),
    /// (fsync), rename, (fsync dir). First removes the directory's debris if a sweep is due
    /// ([`SafeDir::sweep_if_due`]).
    pub(crate) fn write_atomic(
        &self,
        name: &str,
        bytes: &[u8],
        opts: WriteOptions,
        fsync: bool,
    ) -> Result<()> {
        self.write_atomic_after(name, bytes, opts, fsync, &mut || Ok(()))
    }

    /// [`write_atomic`](Self::write_atomic), running `first` once the new record is written
    /// to its temporary file and before it is renamed into place: if `first` fails (or the
    /// temporary file cannot be written), the record in place is left as it was. What must
    /// happen together with a record (the event that announces it) goes in `first`.
    pub(crate) fn write_atomic_after(
        &self,
        name: &str,
        bytes: &[u8],
        opts: WriteOptions,
        fsync: bool,
        first: &mut dyn FnMut() -> Result<()>,
    ) -> Result<()> {
        let max = podsignal_proto::MAX_RECORD_BYTES;
        if bytes.len() as u64 > max {
            return Err(Error::TooLarge {
                path: self.path_of(name),
                size: bytes.len() as u64,
                limit: max,
            });
        }
        self.sweep_if_due();
        let mut first = Some(first);
        // A sweeper can take a new temporary file for debris in the instant between its
        // creation and its flock, and remove it: then the rename finds nothing. Again, with a
        // new name (`first` has run by then, and does not run again).
        retry_if_swept(|| self.write_once(name, bytes, opts, fsync, &mut first))
    }

    fn write_once(
        &self,
        name: &str,
        bytes: &[u8],
        opts: WriteOptions,
        fsync: bool,
        first: &mut Option<&mut dyn FnMut() -> Result<()>>,
    ) -> Result<()> {
        let d = self.current()?;
        let fsync = fsync || opts.durable;
        let tmp = layout::temp_file(name, std::process::id(), identity::nonce());
        // The temporary file is ours alone: a failure to make it is said of the record.
        let record = || self.path_of(name);
        let file = self
            .create_locked(&d, &tmp, opts.access)
            .map_err(|e| e.about("cannot write", record()))?;
        let result = (|| {
            let mut file = file;
            file.write_all(bytes)
                .map_err(|e| Error::io("cannot write", record(), e))?;
            if fsync {
                file.sync_all()
                    .map_err(|e| Error::io("cannot fsync", record(), e))?;
            }
            if let Some(first) = first.take() {
                first()?;
            }
            rfs::renameat(&d.fd, tmp.as_str(), &d.fd, name).map_err(|e| {
                Error::io(
                    "cannot rename into place",
                    self.path_of(name),
                    errno_to_io(e),
                )
            })?;
            if fsync {
                rfs::fsync(&d.fd)
                    .map_err(|e| Error::io("cannot fsync directory", &self.path, errno_to_io(e)))?;
            }
            Ok(())
            // `file` closes here, after the rename: its flock marked it as being written.
        })();
        if result.is_err() {
            let _ = rfs::unlinkat(&d.fd, tmp.as_str(), AtFlags::empty());
        }
        result
    }

    /// Creates a liveness file named by `name_for(id)` for a new random id; returns the id and
    /// the file. A sweeper that removed the new file in the instant before its flock (it
    /// looked like debris) makes it try again with another id.
    pub(crate) fn create_liveness_named(
        &self,
        name_for: impl Fn(&str) -> String,
    ) -> Result<(String, File)> {
        retry_if_swept(|| {
            let id = format!("{:016x}", identity::nonce());
            let file = self.create_liveness(&name_for(&id))?;
            Ok((id, file))
        })
    }

    /// Creates `name` (which must not exist) with the access mode and an exclusive flock, for
    /// a file whose flock says its writer or holder lives (temporary and liveness files).
    fn create_locked(&self, d: &OpenDir, name: &str, access: Access) -> Result<File> {
        let file = self.create_exclusive(d, name, access)?;
        match file.try_lock() {
            Ok(()) => Ok(file),
            Err(TryLockError::WouldBlock) => {
                // A sweeper is probing it this very instant: it sees it locked in a moment.
                file.lock()
                    .map_err(|e| Error::io("cannot lock", self.path_of(name), e))?;
                Ok(file)
            }
            Err(TryLockError::Error(e)) => Err(Error::io("cannot lock", self.path_of(name), e)),
        }
    }

    /// Creates a liveness file: a new file, exclusively flocked for as long as the returned
    /// descriptor stays open. Fails if it exists.
    fn create_liveness(&self, name: &str) -> Result<File> {
        let d = self.current()?;
        let file = self.create_locked(&d, name, self.access)?;
        // A sweeper may have removed it between creation and flock: then it is not the file
        // at the path, and a reader would find no liveness file. Refuse; the caller retries.
        if !self.is_current(name, &file)? {
            return Err(Error::io(
                "lost the new liveness file",
                self.path_of(name),
                io::Error::from(io::ErrorKind::NotFound),
            ));
        }
        Ok(file)
    }

    /// Sweeps ([`sweep`](Self::sweep)) if this process has not swept this directory in the
    /// last [`SWEEP_EVERY`].
    pub(crate) fn sweep_if_due(&self) {
        let due = match self.last_sweep.lock() {
            Ok(mut last) => {
                let due = last.is_none_or(|t| t.elapsed() >= SWEEP_EVERY);
                if due {
                    *last = Some(std::time::Instant::now());
                }
                due
            }
            Err(_) => true,
        };
        if due {
            self.sweep();
        }
    }

    /// Removes the temporary and liveness files whose flock can be taken: debris of dead
    /// writers and holders. Problems are logged, not returned: a sweep is housekeeping and
    /// never fails the write it precedes.
    pub(crate) fn sweep(&self) {
        let belongs = |f: &str| layout::is_temp_file(f) || layout::liveness_owner(f).is_some();
        let names = match self.list() {
            Ok(n) => n,
            Err(e) => {
                tracing::debug!(
                    "sweeping {}: {}",
                    self.path.display(),
                    crate::error_chain(&e)
                );
                return;
            }
        };
        for name in names.iter().filter(|n| belongs(n)) {
            if self.is_debris(name) == Some(true) {
                match self.remove(name) {
                    Ok(()) => tracing::debug!(
                        "removed {}: left by a dead process",
                        self.path_of(name).display()
                    ),
                    Err(e) => tracing::debug!("{}", crate::error_chain(&e)),
                }
            }
        }
    }

    /// Whether `name` is a regular file nobody holds a flock on (the debris of a dead writer
    /// or holder): `Some(true)`; held: `Some(false)`; not a regular file or gone: `None`.
    pub(crate) fn is_debris(&self, name: &str) -> Option<bool> {
        let file = self.open_regular(name).ok()??;
        match file.try_lock_shared() {
            Ok(()) => Some(true),
            Err(TryLockError::WouldBlock) => Some(false),
            Err(TryLockError::Error(_)) => None,
        }
    }

    /// Creates a new file that must not exist yet, read-write, with the access mode.
    pub(crate) fn create_new(&self, name: &str, access: Access) -> Result<File> {
        self.create_exclusive(&*self.current()?, name, access)
    }

    fn create_exclusive(&self, d: &OpenDir, name: &str, access: Access) -> Result<File> {
        let flags =
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rfs::openat(&d.fd, name, flags, access.file_mode())
            .map_err(|e| self.open_error(name, e))?;
        // openat honours the umask: set the documented mode exactly.
        rfs::fchmod(&fd, access.file_mode())
            .map_err(|e| Error::io("cannot chmod", self.path_of(name), errno_to_io(e)))?;
        Ok(File::from(fd))
    }
}

/// How many times a write is tried when a sweeper removed its new file each time: one
/// collision is rare (a window of microseconds), several in a row, under a crash loop of
/// writers sweeping the same name, happened once in 50,000 (chaos `torn`).
const SWEPT_ATTEMPTS: usize = 8;

/// Runs `attempt` again (up to [`SWEPT_ATTEMPTS`] in all) while it fails because its new file
/// was swept away (`NotFound`).
fn retry_if_swept<T>(mut attempt: impl FnMut() -> Result<T>) -> Result<T> {
    let mut tries = 1;
    loop {
        match attempt() {
            Err(Error::Io { source, .. })
                if source.kind() == io::ErrorKind::NotFound && tries < SWEPT_ATTEMPTS =>
            {
                tries += 1;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn swept() -> Error {
        Error::io("lost", "/x", io::Error::from(io::ErrorKind::NotFound))
    }

    #[test]
    fn a_write_swept_away_is_tried_again_a_bounded_number_of_times() {
        let mut calls = 0;
        let r = retry_if_swept(|| {
            calls += 1;
            if calls < 4 { Err(swept()) } else { Ok(calls) }
        });
        assert_eq!(r.ok(), Some(4));
        let mut calls = 0;
        let r: Result<()> = retry_if_swept(|| {
            calls += 1;
            Err(swept())
        });
        assert!(r.is_err());
        assert_eq!(calls, SWEPT_ATTEMPTS);
        // Any other error is not retried.
        let mut calls = 0;
        let r: Result<()> = retry_if_swept(|| {
            calls += 1;
            Err(Error::Invalid("no".into()))
        });
        assert!(r.is_err());
        assert_eq!(calls, 1);
    }

    /// The first write of a process sweeps the directory's debris, whatever record it
    /// writes; later writes do not list the directory again until [`SWEEP_EVERY`] has passed;
    /// a file whose flock is held is never taken.
    #[test]
    fn writes_sweep_dead_files_at_first_and_then_only_every_sweep_period() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = SafeDir::open_root(tmp.path(), Access::Owner, true).unwrap();
        let plant = |name: &str| std::fs::write(tmp.path().join(name), b"{").unwrap();
        let exists = |name: &str| tmp.path().join(name).exists();
        plant(".a.json.1.1.tmp"); // a dead writer's temporary file of another record
        plant("a.0123456789abcdef.live"); // a dead holder's liveness file
        let held = ".b.json.2.2.tmp";
        plant(held);
        let holder = File::open(tmp.path().join(held)).unwrap();
        holder.lock().unwrap();
        let opts = WriteOptions::default();
        dir.write_atomic("b.json", b"{}", opts, false).unwrap();
        assert!(!exists(".a.json.1.1.tmp") && !exists("a.0123456789abcdef.live"));
        assert!(exists(held), "a held file is never debris");

        plant(".c.json.3.3.tmp");
        dir.write_atomic("b.json", b"{}", opts, false).unwrap();
        assert!(exists(".c.json.3.3.tmp"), "swept less than SWEEP_EVERY ago");
        *dir.last_sweep.lock().unwrap() = std::time::Instant::now().checked_sub(SWEEP_EVERY);
        dir.write_atomic("b.json", b"{}", opts, false).unwrap();
        assert!(!exists(".c.json.3.3.tmp"), "a sweep is due again");
        assert!(exists(held));
    }
}
