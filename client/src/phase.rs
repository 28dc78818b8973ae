//! The pod phase: `phase.json`, plus a `phase` event for every change.

use std::time::Duration;

use podsignal_proto::record::encode;
use podsignal_proto::{FORMAT_VERSION, Name, Phase, PhaseRecord, generation, layout};

use crate::error::{Error, Result};
use crate::identity::now_ms;
use crate::volume::Volume;
use crate::watch::Area;

impl Volume {
    /// The phase record, or `None` if no phase was ever set (the pod is `starting`).
    pub(crate) fn phase_now(&self) -> Result<Option<PhaseRecord>> {
        let root = &self.inner.root;
        let repair = || "`podsignal phase set PHASE --force` replaces it".to_owned();
        let Some(bytes) = root
            .read_record(layout::PHASE_FILE)
            .map_err(|e| e.with_repair(repair))?
        else {
            return Ok(None);
        };
        let record = PhaseRecord::decode(&bytes)
            .map_err(|why| Error::bad_record(root.path_of(layout::PHASE_FILE), why, repair()))?;
        // A phase of an older generation is the last run's: this one is `starting`.
        let current = self.generation_now()?;
        Ok(Some(record).filter(|r| generation::counts(r.generation, current)))
    }

    /// The current phase, `starting` if none was set.
    pub(crate) fn current_phase_now(&self) -> Result<Phase> {
        Ok(self.phase_now()?.map_or(Phase::Starting, |r| r.phase))
    }

    /// Sets the phase and appends a `phase` event, in that order, under the events flock
    /// (so concurrent setters are serialized and the log order matches the record's history).
    /// Moving to an earlier phase is refused unless `force`; with `force`, a corrupt phase
    /// record is replaced.
    pub(crate) async fn set_phase_now(
        &self,
        phase: Phase,
        reason: Option<&str>,
        force: bool,
    ) -> Result<PhaseRecord> {
        let reason = reason.map(str::to_owned);
        self.with_events_lock(move |log| {
            let volume = log.volume();
            let current = match volume.current_phase_now() {
                Ok(p) => p,
                Err(e) if force => {
                    tracing::warn!("replacing a bad phase record: {}", crate::error_chain(&e));
                    Phase::Starting
                }
                Err(e) => return Err(e),
            };
            if phase < current && !force {
                return Err(Error::PhaseBackwards {
                    current,
                    requested: phase,
                });
            }
            let record = PhaseRecord {
                version: FORMAT_VERSION,
                phase,
                reason: reason.clone(),
                writer: volume.identity().clone(),
                updated_ms: now_ms(),
                // Read under the events flock, which `reset` holds while it switches.
                generation: Some(volume.generation_now()?),
            };
            let root = &volume.inner.root;
            let bytes =
                encode(&record).map_err(|e| Error::record(root.path_of(layout::PHASE_FILE), e))?;
            let data = serde_json::json!({ "phase": phase, "previous": current, "reason": reason });
            let mut data = Some(data);
            // The event first, then the record into place: if the event cannot be written, the
            // record stays as it was, and the command fails having changed nothing.
            root.write_atomic_after(
                layout::PHASE_FILE,
                &bytes,
                volume.write_options(),
                false,
                &mut || log.append(phase_kind(), data.take()).map(|_| ()),
            )?;
            Ok(record)
        })
        .await
    }

    /// Waits until the phase is `at_least` or later, and returns it.
    pub(crate) async fn wait_phase_now(
        &self,
        at_least: Phase,
        timeout: Option<Duration>,
    ) -> Result<Phase> {
        self.watcher()
            .wait_until(&[Area::Root], timeout, || match self.phase_now()? {
                Some(r) if r.phase >= at_least => Ok(Ok(r.phase)),
                Some(r) => Ok(Err(vec![format!(
                    "phase is {}, waiting for {at_least}",
                    r.phase
                )])),
                None if Phase::Starting >= at_least => Ok(Ok(Phase::Starting)),
                None => Ok(Err(vec![format!(
                    "phase is {}, waiting for {at_least}: never set in {}",
                    Phase::Starting,
                    crate::Coordinator::describe(self)
                )])),
            })
            .await
    }
}

fn phase_kind() -> Name {
    // "phase" is a valid name by the grammar; this cannot fail.
    Name::new("phase").unwrap_or_else(|_| unreachable!("\"phase\" is a valid name"))
}
