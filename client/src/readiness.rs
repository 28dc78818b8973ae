//! Readiness: `ready/NAME.json`, sticky or held.
//!
//! A held record counts only while its holder holds an exclusive flock on its liveness file
//! `ready/NAME.HOLD.live`, where HOLD is an id chosen afresh for every hold. Readers probe
//! that file with a non-blocking shared flock: refused means the holder is alive; granted (or
//! no file) means it is gone, whatever the record says. Probing readers never block each
//! other or the holder.
//!
//! Every write of a record first removes that name's debris: liveness files nobody holds
//! (their holder died) and temporary files of dead writers. A liveness file that is held is
//! never removed, whoever writes.

use std::fs::{File, TryLockError};
use std::os::fd::{AsFd, BorrowedFd};

use podsignal_proto::record::encode;
use podsignal_proto::{FORMAT_VERSION, Name, ReadinessRecord, ReadinessState, generation, layout};
use serde::{Deserialize, Serialize};

use crate::coordinator::{Hold, ReadinessHold};
use crate::error::{Error, Result};
use crate::identity::now_ms;
use crate::safe_dir::SafeDir;
use crate::volume::Volume;

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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
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

impl Readiness {
    /// The `why` of a name nobody has written a record for.
    pub const NO_RECORD: &'static str = "no record";

    /// True if no record exists for the name (as opposed to a bad or unready one).
    pub fn is_missing(&self) -> bool {
        self.record.is_none() && self.why == Self::NO_RECORD
    }
}

/// Holds a readiness record's liveness: while this guard lives, the record counts; when it
/// is dropped (or the process dies, even by `kill -9`) every waiter sees the name unready.
///
/// ```no_run
/// # async fn demo(volume: podsignal_client::Volume) -> podsignal_client::Result<()> {
/// use podsignal_client::{Coordinator, ReadinessHold};
/// let name = "web".parse()?;
/// let guard = volume.hold_ready(&name, Some("listening on :8080")).await?;
/// // ... serve ...
/// guard.set(false, Some("draining")).await?;
/// guard.retract("stopped").await?; // the record says unready, the liveness file is gone
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ReadinessGuard {
    volume: Volume,
    name: Name,
    hold: String,
    live: File,
    retracted: bool,
}

impl ReadinessGuard {
    /// The id of this hold (it names the liveness file, and the record carries it).
    pub fn hold_id(&self) -> &str {
        &self.hold
    }

    fn live_file(&self) -> String {
        layout::liveness_file(&self.name, &self.hold)
    }

    /// Retracts now, from synchronous code (a `Drop` on the blocking pool): the same as
    /// [`ReadinessHold::retract`].
    pub fn retract_now(mut self, reason: &str) -> Result<()> {
        self.retracted = true;
        self.do_retract(reason)
    }

    fn do_retract(&self, reason: &str) -> Result<()> {
        // Only our own hold: someone may have written the name since (a sticky record, or
        // another hold in this very process), and theirs must stand. Checked and written
        // under the directory's write lock, so nobody writes in between.
        let dir = &self.volume.inner.ready;
        let result = dir.write_locked(|| {
            let ours = matches!(
                self.volume.read_readiness_record(&self.name),
                Ok(Some(r)) if r.hold.as_deref() == Some(self.hold.as_str())
            );
            if ours {
                self.volume.write_readiness_unlocked(
                    &self.name,
                    ReadinessState::Unready,
                    Some(reason),
                    None,
                )
            } else {
                Ok(())
            }
        });
        dir.remove(&self.live_file())?;
        result
    }
}

impl Hold for ReadinessGuard {
    fn name(&self) -> &Name {
        &self.name
    }

    fn descriptor(&self) -> BorrowedFd<'_> {
        self.live.as_fd()
    }

    async fn lost(&self) -> String {
        std::future::pending().await
    }
}

impl ReadinessHold for ReadinessGuard {
    async fn set(&self, ready: bool, reason: Option<&str>) -> Result<()> {
        self.volume
            .set_held_readiness(&self.name, &self.hold, ready, reason)
            .await
            .map(drop)
    }

    async fn retract(self, reason: &str) -> Result<()> {
        self.retract_now(reason)
    }
}

impl Drop for ReadinessGuard {
    fn drop(&mut self) {
        if !self.retracted
            && let Err(e) = self.do_retract("holder released it")
        {
            tracing::warn!(
                "retracting readiness of {}: {}",
                self.name,
                crate::error_chain(&e)
            );
        }
    }
}

impl Volume {
    /// Changes the state of the record `name` held by hold `hold` (which this process holds:
    /// a server holding records for its callers, the agent), keeping it held. Returns it
    /// evaluated.
    pub async fn set_held_readiness(
        &self,
        name: &Name,
        hold: &str,
        ready: bool,
        reason: Option<&str>,
    ) -> Result<Readiness> {
        let (v, name, hold, reason) = (
            self.clone(),
            name.clone(),
            hold.to_owned(),
            reason.map(str::to_owned),
        );
        self.blocking(move || {
            let state = if ready {
                ReadinessState::Ready
            } else {
                ReadinessState::Unready
            };
            v.write_readiness(&name, state, reason.as_deref(), Some(&hold))?;
            Ok(v.readiness_now(&name))
        })
        .await
    }

    /// Writes a held ready record and returns the guard that keeps it alive.
    pub(crate) fn hold_ready_now(
        &self,
        name: &Name,
        reason: Option<&str>,
    ) -> Result<ReadinessGuard> {
        // A new id for every hold.
        let (hold, live) = self
            .inner
            .ready
            .create_liveness_named(|id| layout::liveness_file(name, id))?;
        let guard = ReadinessGuard {
            volume: self.clone(),
            name: name.clone(),
            hold,
            live,
            retracted: false,
        };
        self.write_readiness(name, ReadinessState::Ready, reason, Some(&guard.hold))?;
        Ok(guard)
    }

    /// Writes the record of `name`: held (by hold `hold`) or sticky (`None`), under the
    /// directory's write lock (a retraction in progress decides and writes without us in
    /// between). First removes the name's debris: dead holders' liveness files and dead
    /// writers' temporary files.
    pub(crate) fn write_readiness(
        &self,
        name: &Name,
        state: ReadinessState,
        reason: Option<&str>,
        hold: Option<&str>,
    ) -> Result<()> {
        self.inner
            .ready
            .write_locked(|| self.write_readiness_unlocked(name, state, reason, hold))
    }

    fn write_readiness_unlocked(
        &self,
        name: &Name,
        state: ReadinessState,
        reason: Option<&str>,
        hold: Option<&str>,
    ) -> Result<()> {
        let old = self.read_readiness_record(name).ok().flatten();
        let me = self.identity();
        let now = now_ms();
        // The state's age carries over while the same hold (or, sticky, the same process)
        // rewrites it without changing it.
        let same_writer = |o: &ReadinessRecord| match hold {
            Some(h) => o.hold.as_deref() == Some(h),
            None => !o.held && o.writer.incarnation == me.incarnation,
        };
        let since_ms = match &old {
            Some(o) if o.state == state && same_writer(o) => o.since_ms,
            _ => now,
        };
        let record = ReadinessRecord {
            version: FORMAT_VERSION,
            name: name.clone(),
            state,
            reason: reason.map(str::to_owned),
            held: hold.is_some(),
            hold: hold.map(str::to_owned),
            // Read under the directory's write lock, which `reset` holds while it switches.
            generation: Some(self.generation_now()?),
            writer: me.clone(),
            since_ms,
            updated_ms: now,
        };
        let file = layout::readiness_file(name);
        let dir = &self.inner.ready;
        let bytes = encode(&record).map_err(|e| Error::record(dir.path_of(&file), e))?;
        dir.write_atomic(&file, &bytes, self.write_options(), false)
    }

    pub(crate) fn read_readiness_record(&self, name: &Name) -> Result<Option<ReadinessRecord>> {
        let dir = &self.inner.ready;
        let file = layout::readiness_file(name);
        let repair = || format!("`podsignal ready {name}` (or `unready {name}`) replaces it");
        let Some(bytes) = dir.read_record(&file).map_err(|e| e.with_repair(repair))? else {
            return Ok(None);
        };
        ReadinessRecord::decode(&bytes, name)
            .map(Some)
            .map_err(|why| Error::bad_record(dir.path_of(&file), why, repair()))
    }

    /// Reads and evaluates one readiness record. Never fails: a bad record is "not ready",
    /// with the reason in `why`.
    pub(crate) fn readiness_now(&self, name: &Name) -> Readiness {
        self.readiness_in(name, &self.generation_now())
    }

    /// [`Volume::readiness_now`] in generation `current` (read once by the caller for a
    /// batch of names): a record of an older generation is not ready, and says so.
    pub(crate) fn readiness_in(&self, name: &Name, current: &Result<u64>) -> Readiness {
        let not = |why: String, record: Option<ReadinessRecord>, alive| Readiness {
            name: name.clone(),
            ready: false,
            why,
            holder_alive: alive,
            record,
        };
        // Without the generation no record can be trusted, present or not: say so first.
        let current = match current {
            Ok(g) => *g,
            Err(e) => return not(crate::error_chain(e), None, None),
        };
        let record = match self.read_readiness_record(name) {
            Ok(Some(r)) => r,
            Ok(None) => return not(Readiness::NO_RECORD.into(), None, None),
            Err(e) => return not(crate::error_chain(&e), None, None),
        };
        if !generation::counts(record.generation, current) {
            let state = match record.state {
                ReadinessState::Ready => "ready",
                ReadinessState::Unready => "unready",
            };
            let why = generation::stale_why(state, record.generation, current);
            return not(why, Some(record), None);
        }
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
                let why = format!("its holder {} is gone", record.writer.describe());
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
    pub(crate) fn list_readiness_now(&self) -> Result<Vec<Readiness>> {
        Ok(self
            .inner
            .ready
            .list()?
            .iter()
            .filter_map(|f| layout::name_of_json_file(f))
            .map(|n| self.readiness_now(&n))
            .collect())
    }

    /// Waits until the names are ready (or, `want` false, not), all or one of them. Every
    /// waiter on a name shares one evaluation of it ([`crate::ready_hub`]): a change costs one
    /// read per name, whatever the number of waiters.
    pub(crate) async fn wait_readiness_now(
        &self,
        names: &[Name],
        mode: WaitMode,
        want: bool,
        timeout: Option<std::time::Duration>,
    ) -> Result<Vec<Readiness>> {
        let started = tokio::time::Instant::now();
        let deadline = timeout.map(|t| crate::deadline_after(started, t));
        let hub = self.ready_hub();
        let mut evaluations: Vec<_> = names.iter().map(|n| hub.subscribe(self, n)).collect();
        loop {
            let states: Vec<Readiness> = evaluations
                .iter_mut()
                .map(|rx| rx.borrow_and_update().clone())
                .collect();
            let pending = match verdict(&states, mode, want, None) {
                Ok(()) => return Ok(states),
                Err(pending) => pending,
            };
            let changed = futures_util::future::select_all(
                evaluations.iter_mut().map(|rx| Box::pin(rx.changed())),
            );
            let woke = match deadline {
                Some(d) => tokio::time::timeout_at(d, changed).await.ok(),
                None => Some(changed.await),
            };
            if let Some((result, _, _)) = woke {
                // A channel closes only with its volume's hub: nothing would wake us again.
                result.map_err(|_| Error::Invalid("the readiness hub stopped".into()))?;
            } else {
                // One last look, first hand: it may have become true at the deadline.
                let states: Vec<Readiness> = names.iter().map(|n| self.readiness_now(n)).collect();
                let place = crate::Coordinator::describe(self);
                return match verdict(&states, mode, want, Some(&place)) {
                    Ok(()) => Ok(states),
                    Err(last) => Err(Error::Timeout {
                        after: started.elapsed(),
                        pending: if last.is_empty() { pending } else { last },
                    }),
                };
            }
        }
    }
}

/// Whether `states` satisfy the wait; if not, one line per name still missing, saying in
/// which `place` (the directory) a missing record was looked for, when given.
fn verdict(
    states: &[Readiness],
    mode: WaitMode,
    want: bool,
    place: Option<&str>,
) -> std::result::Result<(), Vec<String>> {
    let met = |r: &Readiness| r.ready == want;
    let done = match mode {
        WaitMode::All => states.iter().all(met),
        WaitMode::Any => states.iter().any(met),
    };
    if done {
        return Ok(());
    }
    Err(states
        .iter()
        .filter(|r| !met(r))
        .map(|r| {
            if let (true, Some(place)) = (want && r.is_missing(), place) {
                format!("{}: {} in {place}", r.name, r.why)
            } else if want {
                format!("{}: {}", r.name, r.why)
            } else {
                format!("{}: still ready ({})", r.name, r.why)
            }
        })
        .collect())
}

/// Probes the liveness file of a held record: alive while its holder holds the flock.
pub(crate) fn holder_alive(dir: &SafeDir, name: &Name, record: &ReadinessRecord) -> bool {
    let file = layout::liveness_file(name, record.liveness_id());
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
            tracing::warn!("probing liveness of {name}: {}", crate::error_chain(&e));
            false
        }
    }
}
