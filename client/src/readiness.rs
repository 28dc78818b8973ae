//! Readiness: `ready/NAME.json`, sticky or held.
//!
//! A held record counts only while its writer holds an exclusive flock on its liveness file
//! `ready/NAME.INCARNATION.live`. Readers probe that file with a non-blocking shared flock:
//! refused means the writer is alive; granted (or no file) means it is gone, whatever the
//! record says. Probing readers never block each other or the writer.

use std::fs::{File, TryLockError};
use std::time::Duration;

use podsignal_proto::record::encode;
use podsignal_proto::{FORMAT_VERSION, Name, ReadinessRecord, ReadinessState, layout};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::identity::now_ms;
use crate::safe_dir::SafeDir;
use crate::volume::Volume;
use crate::watch::Area;

/// Whether to wait for every name or for any one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WaitMode {
    /// Every name must hold.
    #[default]
    All,
    /// One name is enough.
    Any,
}

/// A readiness record as a reader sees it: the record, and whether it counts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Readiness {
    /// The name.
    pub name: Name,
    /// True if the record says ready and, when held, its holder is alive.
    pub ready: bool,
    /// Why it is (not) ready, in one line.
    pub why: String,
    /// For a held record: whether its holder is alive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holder_alive: Option<bool>,
    /// The record, when there is a valid one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<ReadinessRecord>,
}

/// Holds a readiness record's liveness: while this guard lives, the record counts; when it
/// is dropped (or the process dies, even by `kill -9`) every waiter sees the name unready.
///
/// ```no_run
/// # async fn demo(volume: podsignal_client::Volume) -> podsignal_client::Result<()> {
/// let name = "web".parse()?;
/// let guard = volume.hold_ready(&name, Some("listening on :8080")).await?;
/// // ... serve ...
/// guard.set_unready(Some("draining"))?;
/// drop(guard); // retracts: the record says unready, the liveness file is gone
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ReadinessGuard {
    volume: Volume,
    name: Name,
    live_file: String,
    _live: File,
    retracted: bool,
}

impl ReadinessGuard {
    /// The name held.
    pub fn name(&self) -> &Name {
        &self.name
    }

    /// Marks the held record unready (still held: it flips back with [`Self::set_ready`]).
    pub fn set_unready(&self, reason: Option<&str>) -> Result<()> {
        self.volume
            .write_readiness(&self.name, ReadinessState::Unready, reason, true)
    }

    /// Marks the held record ready again.
    pub fn set_ready(&self, reason: Option<&str>) -> Result<()> {
        self.volume
            .write_readiness(&self.name, ReadinessState::Ready, reason, true)
    }

    /// Retracts now: writes an unready record (if the record is still this process's) and
    /// removes the liveness file. Dropping the guard does the same, ignoring errors.
    pub fn retract(mut self, reason: &str) -> Result<()> {
        self.retracted = true;
        self.do_retract(reason)
    }

    fn do_retract(&self, reason: &str) -> Result<()> {
        let ours = match self.volume.read_readiness_record(&self.name) {
            Ok(Some(r)) => r.writer.incarnation == self.volume.identity().incarnation,
            _ => false,
        };
        let result = if ours {
            self.volume
                .write_readiness(&self.name, ReadinessState::Unready, Some(reason), false)
        } else {
            Ok(())
        };
        self.volume.inner.ready.remove(&self.live_file)?;
        result
    }
}

impl Drop for ReadinessGuard {
    fn drop(&mut self) {
        if !self.retracted
            && let Err(e) = self.do_retract("holder released it")
        {
            tracing::warn!(
                "retracting readiness of {}: {:#}",
                self.name,
                crate::error_chain(&e)
            );
        }
    }
}

impl Volume {
    /// Writes a sticky ready record: it stays until changed, whatever happens to this process.
    pub async fn set_ready(&self, name: &Name, reason: Option<&str>) -> Result<()> {
        self.write_readiness(name, ReadinessState::Ready, reason, false)
    }

    /// Writes a sticky unready record.
    pub async fn set_unready(&self, name: &Name, reason: Option<&str>) -> Result<()> {
        self.write_readiness(name, ReadinessState::Unready, reason, false)
    }

    /// Writes a held ready record and returns the guard that keeps it alive.
    pub async fn hold_ready(&self, name: &Name, reason: Option<&str>) -> Result<ReadinessGuard> {
        let live_file = layout::liveness_file(name, &self.identity().incarnation);
        let dir = &self.inner.ready;
        let live = dir
            .create_new(&live_file, self.access())
            .map_err(|e| match e {
                Error::Io { source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists => {
                    Error::Invalid(format!("readiness {name} is already held by this process"))
                }
                e => e,
            })?;
        if let Err(e) = live.try_lock() {
            let _ = dir.remove(&live_file);
            return Err(Error::io(
                "cannot lock",
                dir.path_of(&live_file),
                std::io::Error::other(e.to_string()),
            ));
        }
        let guard = ReadinessGuard {
            volume: self.clone(),
            name: name.clone(),
            live_file,
            _live: live,
            retracted: false,
        };
        self.write_readiness(name, ReadinessState::Ready, reason, true)?;
        Ok(guard)
    }

    pub(crate) fn write_readiness(
        &self,
        name: &Name,
        state: ReadinessState,
        reason: Option<&str>,
        held: bool,
    ) -> Result<()> {
        let old = self.read_readiness_record(name).ok().flatten();
        let me = self.identity();
        let now = now_ms();
        let since_ms = match &old {
            Some(o) if o.state == state && o.writer.incarnation == me.incarnation => o.since_ms,
            _ => now,
        };
        let record = ReadinessRecord {
            version: FORMAT_VERSION,
            name: name.clone(),
            state,
            reason: reason.map(str::to_owned),
            held,
            writer: me.clone(),
            since_ms,
            updated_ms: now,
        };
        let dir = &self.inner.ready;
        dir.write_atomic(
            &layout::readiness_file(name),
            &encode(&record),
            self.write_options(),
            false,
        )?;
        // A replaced held record's liveness file is garbage now: remove it, so a crash-looping
        // writer leaves one liveness file behind at most.
        if let Some(o) = old.filter(|o| o.held && o.writer.incarnation != me.incarnation) {
            dir.remove(&layout::liveness_file(name, &o.writer.incarnation))?;
        }
        Ok(())
    }

    pub(crate) fn read_readiness_record(&self, name: &Name) -> Result<Option<ReadinessRecord>> {
        let dir = &self.inner.ready;
        let file = layout::readiness_file(name);
        let Some(bytes) = dir.read_record(&file)? else {
            return Ok(None);
        };
        ReadinessRecord::decode(&bytes, name)
            .map(Some)
            .map_err(|source| Error::BadRecord {
                path: dir.path_of(&file),
                source,
            })
    }

    /// Reads and evaluates one readiness record. Never fails: a bad record is "not ready",
    /// with the reason in `why`.
    pub fn readiness(&self, name: &Name) -> Readiness {
        let not = |why: String, record: Option<ReadinessRecord>, alive| Readiness {
            name: name.clone(),
            ready: false,
            why,
            holder_alive: alive,
            record,
        };
        let record = match self.read_readiness_record(name) {
            Ok(Some(r)) => r,
            Ok(None) => return not("no record".into(), None, None),
            Err(e) => return not(crate::error_chain(&e), None, None),
        };
        let alive = if record.held {
            Some(holder_alive(&self.inner.ready, name, &record))
        } else {
            None
        };
        match (record.state, alive) {
            (ReadinessState::Unready, _) => {
                let why = format!(
                    "unready: {}",
                    record.reason.as_deref().unwrap_or("no reason given")
                );
                not(why, Some(record), alive)
            }
            (ReadinessState::Ready, Some(false)) => {
                let why = format!(
                    "its holder (pid {} on {}) is gone",
                    record.writer.pid, record.writer.hostname
                );
                not(why, Some(record), alive)
            }
            (ReadinessState::Ready, _) => {
                let why = record.reason.clone().unwrap_or_else(|| "ready".into());
                Readiness {
                    name: name.clone(),
                    ready: true,
                    why,
                    holder_alive: alive,
                    record: Some(record),
                }
            }
        }
    }

    /// Every readiness record in the directory, evaluated, sorted by name.
    pub fn list_readiness(&self) -> Result<Vec<Readiness>> {
        Ok(self
            .inner
            .ready
            .list()?
            .iter()
            .filter_map(|f| layout::name_of_json_file(f))
            .map(|n| self.readiness(&n))
            .collect())
    }

    /// Waits until every name (or, with [`WaitMode::Any`], one of them) is ready.
    /// `timeout: None` waits forever. On timeout the error lists each missing name and why.
    ///
    /// ```no_run
    /// # async fn demo(volume: podsignal_client::Volume) -> podsignal_client::Result<()> {
    /// use podsignal_client::WaitMode;
    /// use std::time::Duration;
    /// let names = ["proxy".parse()?, "db-migrated".parse()?];
    /// volume.wait_ready(&names, WaitMode::All, Some(Duration::from_secs(30))).await?;
    /// # Ok(()) }
    /// ```
    pub async fn wait_ready(
        &self,
        names: &[Name],
        mode: WaitMode,
        timeout: Option<Duration>,
    ) -> Result<()> {
        self.wait_readiness(names, mode, true, timeout).await
    }

    /// Waits until every name (or one) is *not* ready: absent, unready, or its holder gone.
    pub async fn wait_unready(
        &self,
        names: &[Name],
        mode: WaitMode,
        timeout: Option<Duration>,
    ) -> Result<()> {
        self.wait_readiness(names, mode, false, timeout).await
    }

    async fn wait_readiness(
        &self,
        names: &[Name],
        mode: WaitMode,
        want: bool,
        timeout: Option<Duration>,
    ) -> Result<()> {
        self.inner
            .watcher
            .wait_until(&[Area::Ready], timeout, || {
                let states: Vec<Readiness> = names.iter().map(|n| self.readiness(n)).collect();
                let met = |r: &Readiness| r.ready == want;
                let done = match mode {
                    WaitMode::All => states.iter().all(met),
                    WaitMode::Any => states.iter().any(met),
                };
                if done {
                    return Ok(Ok(()));
                }
                let pending = states
                    .iter()
                    .filter(|r| !met(r))
                    .map(|r| {
                        if want {
                            format!("{}: {}", r.name, r.why)
                        } else {
                            format!("{}: still ready ({})", r.name, r.why)
                        }
                    })
                    .collect();
                Ok(Err(pending))
            })
            .await
    }
}

/// Probes the liveness file of a held record: alive while its writer holds the flock.
fn holder_alive(dir: &SafeDir, name: &Name, record: &ReadinessRecord) -> bool {
    let file = layout::liveness_file(name, &record.writer.incarnation);
    match dir.open_regular(&file) {
        Ok(Some(f)) => match f.try_lock_shared() {
            Err(TryLockError::WouldBlock) => true,
            Ok(()) => false,
            Err(TryLockError::Error(e)) => {
                tracing::warn!("probing {}: {e}", dir.path_of(&file).display());
                false
            }
        },
        Ok(None) => false,
        Err(e) => {
            tracing::warn!("probing liveness of {name}: {:#}", crate::error_chain(&e));
            false
        }
    }
}
