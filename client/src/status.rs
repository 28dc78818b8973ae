//! A snapshot of everything in the shared directory, for `podsignal status` and `/v1/status`.

use podsignal_proto::{PhaseRecord, layout};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::lock::LockStatus;
use crate::readiness::Readiness;
use crate::volume::Volume;

/// Everything in the shared directory at one moment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    /// The directory.
    pub dir: String,
    /// The pod phase record, if set.
    pub phase: Option<PhaseRecord>,
    /// Every readiness record, evaluated.
    pub readiness: Vec<Readiness>,
    /// Every lock.
    pub locks: Vec<LockStatus>,
    /// Every leader campaign.
    pub leaders: Vec<LockStatus>,
    /// The event log's extent.
    pub events: EventsExtent,
    /// Files that do not belong (symlinks, stray files, leftovers), one line each.
    pub problems: Vec<String>,
}

/// Which events the log holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventsExtent {
    /// The oldest sequence number kept (0 if empty).
    pub first_seq: u64,
    /// The newest sequence number (0 if empty).
    pub last_seq: u64,
    /// How many segment files.
    pub segments: usize,
}

impl Volume {
    /// Reads everything. Problems with single files are reported in `problems`, not as errors.
    pub fn status(&self) -> Result<Status> {
        let segments = crate::events::segments(&self.inner.events)?;
        let last_seq = self.last_event_seq()?;
        Ok(Status {
            dir: self.path().display().to_string(),
            phase: self.phase().unwrap_or(None),
            readiness: self.list_readiness()?,
            locks: self.list_locks()?,
            leaders: self.list_leaders()?,
            events: EventsExtent {
                first_seq: segments.first().map_or(0, |s| s.first_seq.min(last_seq)),
                last_seq,
                segments: segments.len(),
            },
            problems: self.problems()?,
        })
    }

    fn problems(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let inner = &self.inner;
        for dir in [
            &inner.ready,
            &inner.locks,
            &inner.leaders,
            &inner.events,
            &inner.exits,
            &inner.stop,
        ] {
            for name in dir.list()? {
                let path = dir.path_of(&name);
                match dir.kind_of(&name) {
                    Some(rustix::fs::FileType::RegularFile) => {}
                    Some(rustix::fs::FileType::Symlink) => out.push(format!(
                        "{}: a symlink (ignored, never followed)",
                        path.display()
                    )),
                    Some(_) => {
                        out.push(format!("{}: not a regular file (ignored)", path.display()))
                    }
                    None => continue,
                }
                if layout::is_temp_file(&name) {
                    let age =
                        crate::identity::now_ms().saturating_sub(dir.mtime_ms(&name).unwrap_or(0));
                    if age > 60_000 {
                        out.push(format!(
                            "{}: a temporary file left by a crashed writer",
                            path.display()
                        ));
                    }
                }
            }
        }
        for r in self.list_readiness()? {
            if r.record.is_none() && r.why != "no record" {
                out.push(format!("ready/{}: {}", r.name, r.why));
            }
        }
        Ok(out)
    }
}
