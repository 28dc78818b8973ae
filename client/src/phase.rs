//! The pod phase: `phase.json`, plus a `phase` event for every change.

use std::time::Duration;

use podsignal_proto::record::encode;
use podsignal_proto::{FORMAT_VERSION, Name, Phase, PhaseRecord, layout};

use crate::error::{Error, Result};
use crate::identity::now_ms;
use crate::volume::Volume;
use crate::watch::Area;

impl Volume {
    /// The phase record, or `None` if no phase was ever set (the pod is `starting`).
    pub fn phase(&self) -> Result<Option<PhaseRecord>> {
        let root = &self.inner.root;
        let Some(bytes) = root.read_record(layout::PHASE_FILE)? else {
            return Ok(None);
        };
        PhaseRecord::decode(&bytes)
            .map(Some)
            .map_err(|source| Error::BadRecord {
                path: root.path_of(layout::PHASE_FILE),
                source,
            })
    }

    /// The current phase, `starting` if none was set.
    pub fn current_phase(&self) -> Result<Phase> {
        Ok(self.phase()?.map_or(Phase::Starting, |r| r.phase))
    }

    /// Sets the phase and appends a `phase` event, in that order, under the events flock
    /// (so concurrent setters are serialized and the log order matches the record's history).
    /// Moving to an earlier phase is refused unless `force`.
    ///
    /// ```no_run
    /// # async fn demo(volume: podsignal_client::Volume) -> podsignal_client::Result<()> {
    /// use podsignal_client::Phase;
    /// volume.set_phase(Phase::Draining, Some("SIGTERM received"), false).await?;
    /// # Ok(()) }
    /// ```
    pub async fn set_phase(
        &self,
        phase: Phase,
        reason: Option<&str>,
        force: bool,
    ) -> Result<PhaseRecord> {
        let volume = self.clone();
        let reason = reason.map(str::to_owned);
        tokio::task::spawn_blocking(move || {
            volume.with_events_lock(|log| {
                let current = volume.current_phase()?;
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
                };
                volume.inner.root.write_atomic(
                    layout::PHASE_FILE,
                    &encode(&record),
                    volume.write_options(),
                    false,
                )?;
                let data =
                    serde_json::json!({ "phase": phase, "previous": current, "reason": reason });
                log.append(phase_kind(), Some(data))?;
                Ok(record)
            })
        })
        .await
        .map_err(|e| Error::Invalid(format!("phase task failed: {e}")))?
    }

    /// Waits until the phase is `at_least` or later, and returns it.
    pub async fn wait_phase(&self, at_least: Phase, timeout: Option<Duration>) -> Result<Phase> {
        self.inner
            .watcher
            .wait_until(&[Area::Root], timeout, || {
                let now = self.current_phase()?;
                if now >= at_least {
                    Ok(Ok(now))
                } else {
                    Ok(Err(vec![format!("phase is {now}, waiting for {at_least}")]))
                }
            })
            .await
    }
}

fn phase_kind() -> Name {
    // "phase" is a valid name by the grammar; this cannot fail.
    Name::new("phase").unwrap_or_else(|_| unreachable!("\"phase\" is a valid name"))
}
