//! A snapshot of everything in the shared directory, for `podsignal status` and `/v1/status`.

use podsignal_proto::{PhaseRecord, layout};
use serde::{Deserialize, Serialize};

use crate::coordinator::Scope;
use crate::error::Result;
use crate::lock::LockStatus;
use crate::readiness::Readiness;
use crate::safe_dir::{SafeDir, kind_name};
use crate::volume::Volume;

/// Everything in the shared directory at one moment.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Status {
    /// The directory.
    pub dir: String,
    /// The current generation (1 until `podsignal reset` first ran); `None` when
    /// `generation.json` cannot be read (then it is under `problems`).
    pub generation: Option<u64>,
    /// The pod phase record, if set (and readable: a bad one is under `problems`).
    pub phase: Option<PhaseRecord>,
    /// Every readiness record, evaluated.
    pub readiness: Vec<Readiness>,
    /// Every lock.
    pub locks: Vec<LockStatus>,
    /// Every leader campaign.
    pub leaders: Vec<LockStatus>,
    /// The event log's extent.
    pub events: EventsExtent,
    /// Files that do not belong or are broken (symlinks, stray files, debris of dead
    /// processes, records that do not parse), one line each, naming the file.
    pub problems: Vec<String>,
}

/// Which events the log holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct EventsExtent {
    /// The oldest sequence number kept (0 if empty).
    pub first_seq: u64,
    /// The newest sequence number (0 if empty).
    pub last_seq: u64,
    /// How many segment files.
    pub segments: usize,
}

impl Volume {
    /// Reads everything. Problems with single files, or with a whole area (a subdirectory a
    /// neighbour replaced with a symlink, one that cannot be read), are reported in
    /// `problems`, and the rest is still shown: status is what an operator runs when things
    /// are wrong.
    pub(crate) fn status_now(&self) -> Result<Status> {
        // Files first, then records that do not parse: one line per file, never two.
        let mut problems = self.stray_files()?;
        let p = &mut problems;
        let segments = crate::events::segments(&self.inner.events)
            .unwrap_or_else(|e| problem(p, &e, Vec::new()));
        let last_seq = self
            .last_event_seq_now()
            .unwrap_or_else(|e| problem(p, &e, 0));
        let generation = self
            .generation_now()
            .map(Some)
            .unwrap_or_else(|e| problem(p, &e, None));
        let phase = self.phase_now().unwrap_or_else(|e| problem(p, &e, None));
        let readiness = self
            .list_readiness_now()
            .unwrap_or_else(|e| problem(p, &e, Vec::new()));
        for r in &readiness {
            // An unreadable generation makes every record say so: reported once, above.
            if r.record.is_none() && !r.is_missing() && generation.is_some() {
                let file = self.inner.ready.path_of(&layout::readiness_file(&r.name));
                add_problem(p, Some(&file), r.why.clone());
            }
        }
        let locks = self
            .list_locks_now(Scope::Lock)
            .unwrap_or_else(|e| problem(p, &e, Vec::new()));
        let leaders = self
            .list_locks_now(Scope::Leader)
            .unwrap_or_else(|e| problem(p, &e, Vec::new()));
        Ok(Status {
            dir: self.path().display().to_string(),
            generation,
            phase,
            readiness,
            locks,
            leaders,
            events: EventsExtent {
                first_seq: segments.first().map_or(0, |s| s.first_seq.min(last_seq)),
                last_seq,
                segments: segments.len(),
            },
            problems,
        })
    }

    /// The status once `unchanged` says it differs from what the caller has seen: read at
    /// once, then again whenever anything in the directory changes (or at the rescan). Waits
    /// for as long as it takes; the caller bounds it (a dropped wait leaves nothing behind).
    pub async fn next_status(&self, unchanged: impl Fn(&Status) -> bool) -> Result<Status> {
        let mut changes = self.watcher().subscribe(&crate::watch::Area::ALL);
        loop {
            changes.mark_seen();
            let status = crate::Coordinator::status(self).await?;
            if !unchanged(&status) {
                return Ok(status);
            }
            changes.changed().await;
        }
    }

    /// One line per file that is not what the protocol puts there, or is debris.
    fn stray_files(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let inner = &self.inner;
        let root_entries = [layout::PHASE_FILE, layout::GENERATION_FILE];
        for name in inner.root.list()? {
            let is_sub = layout::SUBDIRS.contains(&name.as_str());
            let kind = inner.root.kind_of(&name);
            let expected = if is_sub {
                Some(rustix::fs::FileType::Directory)
            } else if root_entries.contains(&name.as_str()) {
                Some(rustix::fs::FileType::RegularFile)
            } else {
                None
            };
            match (kind, expected) {
                (Some(k), Some(e)) if k != e => out.push(format!(
                    "{}: {} where {} belongs (ignored)",
                    inner.root.path_of(&name).display(),
                    kind_name(k),
                    kind_name(e)
                )),
                _ => {}
            }
            if layout::is_temp_file(&name) {
                debris(&inner.root, &name, &mut out);
            }
        }
        for dir in [
            &inner.ready,
            &inner.locks,
            &inner.leaders,
            &inner.events,
            &inner.exits,
            &inner.stop,
        ] {
            // An area that cannot be listed (a planted symlink: reported with the root's
            // entries above) is reported by the section that reads it.
            let Ok(names) = dir.list() else {
                continue;
            };
            for name in names {
                match dir.kind_of(&name) {
                    Some(rustix::fs::FileType::RegularFile) | None => {}
                    Some(kind) => {
                        out.push(format!(
                            "{}: {} (ignored, never followed or read)",
                            dir.path_of(&name).display(),
                            kind_name(kind)
                        ));
                        continue;
                    }
                }
                if layout::is_temp_file(&name) || layout::liveness_owner(&name).is_some() {
                    debris(dir, &name, &mut out);
                }
            }
        }
        for name in inner.stop.list().unwrap_or_default() {
            let Some(n) = layout::name_of_json_file(&name) else {
                continue;
            };
            if inner.stop.kind_of(&name) != Some(rustix::fs::FileType::RegularFile) {
                continue; // reported above
            }
            if let Err(e) = self.stop_request_now(&n) {
                out.push(format!("{} (not acted on)", crate::error_chain(&e)));
            }
        }
        Ok(out)
    }
}

/// Adds `line` to `problems`, unless a line about the same file is there already.
fn add_problem(problems: &mut Vec<String>, path: Option<&std::path::Path>, line: String) {
    let shown = path.map(|p| p.display().to_string());
    if !shown.is_some_and(|p| problems.iter().any(|l| l.contains(&p))) {
        problems.push(line);
    }
}

/// Adds `e` to `problems` and gives `instead`: what status shows of an area it cannot read.
fn problem<T>(problems: &mut Vec<String>, e: &crate::Error, instead: T) -> T {
    add_problem(problems, e.path(), crate::error_chain(e));
    instead
}

/// Reports `name` if it is debris: a temporary or liveness file nobody holds a flock on.
fn debris(dir: &SafeDir, name: &str, out: &mut Vec<String>) {
    if dir.is_debris(name) != Some(true) {
        return;
    }
    let what = if layout::is_temp_file(name) {
        "a temporary file left by a writer that died (removed by the next write of its record)"
    } else {
        "a liveness file left by a holder that died (removed by the next write of its record)"
    };
    out.push(format!("{}: {what}", dir.path_of(name).display()));
}
