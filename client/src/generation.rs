//! Generations: `generation.json`, and `reset`, which starts a new one.
//!
//! Every writer stamps its record with the generation current when it writes (read under
//! the lock that orders its writes: the `ready/` write lock, the events flock); every
//! reader compares a record's generation with the current one and treats an older record
//! as absent. Reading the current generation is one small file read; the readiness hub reads
//! it once per batch of evaluations, not once per name.
//!
//! `reset`, under the events flock (which orders it with phase changes and other resets):
//!
//! 1. next = one past the larger of `generation.json` and the last `generation` event in the
//!    log, so a deleted or garbled record does not make the number go back;
//! 2. under the `ready/` write lock (no readiness write in between): held readiness records
//!    whose holder is alive are re-stamped with the next generation (a sidecar that survived
//!    stays ready), other readiness records are removed; tombstones and stop requests are
//!    removed; `phase.json` says `starting`, stamped with the next generation;
//! 3. the `generation` event is appended, then `generation.json` renamed into place: the
//!    switch. Records written from then on carry the new number; a record of the old one
//!    that a racing writer put in place meanwhile reads as absent.

use podsignal_proto::generation::{self, GenerationEvent, Removed};
use podsignal_proto::record::encode;
use podsignal_proto::{
    Event, FORMAT_VERSION, GenerationRecord, Name, Phase, PhaseRecord, ReadinessRecord, layout,
};

use crate::error::{Error, Result};
use crate::identity::now_ms;
use crate::volume::Volume;

impl Volume {
    /// The current generation: `generation.json`'s, [`generation::FIRST`] if there is none.
    /// A record that cannot be read is an error naming it and `podsignal reset`, which
    /// replaces it.
    pub(crate) fn generation_now(&self) -> Result<u64> {
        let root = &self.inner.root;
        let file = layout::GENERATION_FILE;
        let repair = || "`podsignal reset` replaces it (and starts a new generation)".to_owned();
        let Some(bytes) = root.read_record(file).map_err(|e| e.with_repair(repair))? else {
            return Ok(generation::FIRST);
        };
        GenerationRecord::decode_generation(&bytes)
            .map_err(|why| Error::bad_record(root.path_of(file), why, repair()))
    }

    /// Starts a new generation of the shared directory (`podsignal reset`, for an init
    /// container of a Pod restarted in place, whose emptyDir is kept): readiness records are
    /// removed, except held ones whose holder lives, which are carried over; tombstones and
    /// stop requests are removed; the phase is `starting` again; a `generation` event is
    /// appended; records of older generations read as absent from then on. Fencing counters
    /// and the event log go on. Only on the volume:
    /// it is what an init container does to the directory it mounts, before anyone uses it.
    /// The `generation` event is returned (its `data` is a [`GenerationEvent`]): the same
    /// type publishing returns, so the events flock's machinery is not compiled again.
    pub async fn reset(&self, reason: Option<&str>) -> Result<Event> {
        let reason = reason.map(str::to_owned);
        self.with_events_lock(move |log| {
            let volume = log.volume();
            let previous = match volume.generation_now() {
                Ok(g) => g,
                Err(e) => {
                    tracing::warn!(
                        "replacing a bad generation record: {}",
                        crate::error_chain(&e)
                    );
                    generation::FIRST
                }
            };
            let mut logged = generation::FIRST;
            crate::events::for_each_event(&volume.inner.events, |e| {
                if e.kind.as_str() == generation::EVENT_KIND
                    && let Some(g) = e.data.as_ref().and_then(|d| d["generation"].as_u64())
                {
                    logged = logged.max(g);
                }
            })?;
            let next = previous
                .max(logged)
                .checked_add(1)
                .ok_or_else(|| Error::Invalid("the generation counter is exhausted".into()))?;
            let previous_phase = volume
                .phase_now()
                .ok()
                .flatten()
                .map_or(Phase::Starting, |r| r.phase);
            let mut done = GenerationEvent {
                generation: next,
                previous,
                reason: reason.clone(),
                previous_phase,
                removed: Removed::default(),
                carried: Vec::new(),
                truncated: false,
            };
            let record = GenerationRecord {
                version: FORMAT_VERSION,
                generation: next,
                reason: reason.clone(),
                writer: volume.identity().clone(),
                updated_ms: now_ms(),
            };
            let root = &volume.inner.root;
            let file = layout::GENERATION_FILE;
            let bytes = encode(&record).map_err(|e| Error::record(root.path_of(file), e))?;
            volume.inner.ready.write_locked(|| {
                volume.clear_readiness(next, &mut done)?;
                done.removed.exits = volume.clear_records(&volume.inner.exits)?;
                done.removed.stop = volume.clear_records(&volume.inner.stop)?;
                volume.write_phase_starting(next, reason.as_deref())?;
                done.truncated = truncate(&mut done);
                let data = serde_json::to_value(&done)
                    .map_err(|e| Error::Invalid(format!("cannot encode the event: {e}")))?;
                let mut data = Some(data);
                let mut kind = Some(Name::new(generation::EVENT_KIND)?);
                let mut event = None;
                root.write_atomic_after(file, &bytes, volume.write_options(), false, &mut || {
                    if let Some(k) = kind.take() {
                        event = Some(log.append(k, data.take())?);
                    }
                    Ok(())
                })?;
                event.ok_or_else(|| Error::Invalid("the generation event was not written".into()))
            })
        })
        .await
    }

    /// Re-stamps live held readiness records with generation `next`; removes the others
    /// (sticky, unready, or held by a holder that is gone). Unreadable files are left for
    /// `status` to report. Runs under the `ready/` write lock.
    fn clear_readiness(&self, next: u64, done: &mut GenerationEvent) -> Result<()> {
        let dir = &self.inner.ready;
        let mut names: Vec<Name> = dir
            .list()?
            .iter()
            .filter_map(|f| layout::name_of_json_file(f))
            .collect();
        names.sort();
        for name in names {
            let Ok(Some(record)) = self.read_readiness_record(&name) else {
                continue;
            };
            let file = layout::readiness_file(&name);
            if record.held && crate::readiness::holder_alive(dir, &name, &record) {
                let carried = ReadinessRecord {
                    generation: Some(next),
                    updated_ms: now_ms(),
                    ..record
                };
                let bytes = encode(&carried).map_err(|e| Error::record(dir.path_of(&file), e))?;
                dir.write_atomic(&file, &bytes, self.write_options(), false)?;
                done.carried.push(name);
            } else {
                dir.remove(&file)?;
                done.removed.ready.push(name);
            }
        }
        Ok(())
    }

    /// Removes every valid record of `dir` (tombstones, stop requests); returns their names.
    /// Garbage is left for `status` to report.
    fn clear_records(&self, dir: &crate::safe_dir::SafeDir) -> Result<Vec<Name>> {
        let mut removed = Vec::new();
        let mut files = dir.list()?;
        files.sort();
        for file in files {
            let Some(name) = layout::name_of_json_file(&file) else {
                continue;
            };
            let valid = match dir.read_record(&file) {
                Ok(Some(bytes)) => serde_json::from_slice::<serde_json::Value>(&bytes)
                    .is_ok_and(|v| v["name"] == name.as_str()),
                _ => false,
            };
            if valid {
                dir.remove(&file)?;
                removed.push(name);
            }
        }
        Ok(removed)
    }

    /// `phase.json` says `starting`, in generation `next`.
    fn write_phase_starting(&self, next: u64, reason: Option<&str>) -> Result<()> {
        let record = PhaseRecord {
            version: FORMAT_VERSION,
            phase: Phase::Starting,
            reason: Some(reason.map_or_else(
                || format!("podsignal reset: generation {next}"),
                |r| format!("podsignal reset: generation {next}: {r}"),
            )),
            generation: Some(next),
            writer: self.identity().clone(),
            updated_ms: now_ms(),
        };
        let root = &self.inner.root;
        let bytes =
            encode(&record).map_err(|e| Error::record(root.path_of(layout::PHASE_FILE), e))?;
        root.write_atomic(layout::PHASE_FILE, &bytes, self.write_options(), false)
    }
}

/// Cuts each list of `done` to [`Removed::MAX_LISTED`] names; true if one was cut.
fn truncate(done: &mut GenerationEvent) -> bool {
    let mut cut = false;
    for list in [
        &mut done.removed.ready,
        &mut done.removed.exits,
        &mut done.removed.stop,
        &mut done.carried,
    ] {
        cut |= list.len() > Removed::MAX_LISTED;
        list.truncate(Removed::MAX_LISTED);
    }
    cut
}
