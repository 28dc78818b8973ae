//! The pauser of the `events` scenario (SIGSTOP of CLI watchers and a hold of HTTP ones until
//! rotation has deleted events they had not read, then SIGCONT), the segments seen on the
//! way, and the check of the log left on disk.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rustix::process::Signal;

use super::watchers::{self, Shared};
use crate::harness::{Rng, alive, eventually, signal};

/// Most segments kept (docs/protocol.md: "at most 4 segments of about 1 MiB each").
const SEGMENTS_KEPT: usize = 4;
/// The most a segment may hold: 1 MiB, plus the last event appended before rotation.
const SEGMENT_MAX: u64 = 1024 * 1024 + 32 * 1024;

/// No pause starts closer than this to the deadline (one takes about 3 s at the
/// publishers' rate), so the run ends near its budget.
const PAUSE_ROOM: Duration = Duration::from_secs(4);

/// One pause.
#[derive(Debug)]
pub struct Pause {
    /// The watchers paused (their index in [`super::WATCHERS`]).
    pub paused: Vec<usize>,
    /// The last event in the log once they were all paused: they cannot have read further.
    pub last_before: u64,
    /// The first `seq` of the first segment started after they stopped (0: none seen).
    /// They may still read the segment they were in when it is deleted (through its open
    /// descriptor), but not this one once it is gone.
    pub next_segment: u64,
    /// The first `seq` of the oldest segment kept when they were resumed, if rotation had
    /// deleted `next_segment` by then (the pause forced a loss); `None` if not.
    pub oldest_at_resume: Option<u64>,
}

/// Every pause, and every segment seen.
#[derive(Debug, Default)]
pub struct Pauses {
    /// The pauses, in order.
    pub list: Vec<Pause>,
    /// The first `seq` of every segment seen (sampled every 20 ms, and at the end), and when
    /// it was last seen.
    pub segments: BTreeMap<u64, Instant>,
}

impl Pauses {
    /// The pauses that forced a loss.
    pub fn forced(&self) -> impl Iterator<Item = &Pause> {
        self.list.iter().filter(|p| p.oldest_at_resume.is_some())
    }

    /// Records the segments there are now (seen now); returns their first `seq`s, in order.
    pub fn sample(&mut self, dir: &Path) -> Vec<u64> {
        let now = Instant::now();
        let segs = segments(dir);
        self.segments.extend(segs.iter().map(|s| (*s, now)));
        segs
    }

    /// Waits (up to 20 s) until rotation has deleted the first segment started after event
    /// `last`: that segment's first `seq`, and the oldest segment's then, if it happened.
    fn past_rotation(&mut self, dir: &Path, last: u64) -> (Option<u64>, Option<u64>) {
        let (mut next, mut oldest) = (None, None);
        eventually(Duration::from_secs(20), || {
            let segs = self.sample(dir);
            next = next.or_else(|| segs.iter().copied().find(|s| *s > last));
            oldest = segs
                .first()
                .copied()
                .filter(|o| next.is_some_and(|n| *o > n));
            oldest.is_some()
        });
        (next, oldest)
    }

    /// Sleeps until `until`, sampling the segments.
    fn idle(&mut self, dir: &Path, until: Instant) {
        while Instant::now() < until {
            let _ = self.sample(dir);
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Pauses watchers now and then until `deadline` (a pause under way completes, bounded by
/// 20 s): SIGSTOP of the live `stop` processes (watcher index, pid), every other time a
/// hold of the `hold` HTTP watchers (they stay away between two requests); then waits until
/// rotation has deleted the first segment started after that (they must lose events), and
/// lets them go on.
pub fn pauser(
    shared_dir: &Path,
    deadline: Instant,
    stop: &[(usize, u32)],
    hold: &[usize],
    shared: &Shared,
    rng: &mut Rng,
) -> Pauses {
    let dir = shared_dir.join("events");
    let mut out = Pauses::default();
    loop {
        let pause_at = Instant::now() + rng.between(ms(800), ms(2500));
        out.idle(&dir, pause_at.min(deadline));
        if Instant::now() + PAUSE_ROOM >= deadline {
            out.idle(&dir, deadline);
            break;
        }
        let stopped: Vec<(usize, u32)> = stop.iter().copied().filter(|(_, p)| alive(*p)).collect();
        for (_, p) in &stopped {
            signal(*p, Signal::STOP);
        }
        let mut paused = Vec::new();
        if eventually(Duration::from_secs(2), || {
            stopped.iter().all(|(_, p)| state(*p) == Some('T'))
        }) {
            paused.extend(stopped.iter().map(|(i, _)| *i));
        }
        // Every other pause: the held watchers need a while to catch up after each.
        let holding = |i: &usize| shared.holding[*i].load(Ordering::SeqCst);
        if out.list.len() % 2 == 0 {
            shared.hold.store(true, Ordering::SeqCst);
            eventually(Duration::from_secs(5), || hold.iter().all(holding));
            paused.extend(hold.iter().copied().filter(holding));
        }
        let last_before = last_seq(&dir);
        let (next, oldest) = last_before.map_or((None, None), |l| out.past_rotation(&dir, l));
        for (_, p) in &stopped {
            signal(*p, Signal::CONT);
        }
        shared.hold.store(false, Ordering::SeqCst);
        out.list.push(Pause {
            paused,
            last_before: last_before.unwrap_or(0),
            next_segment: next.unwrap_or(0),
            oldest_at_resume: oldest,
        });
    }
    let _ = out.sample(&dir);
    out
}

/// `n` milliseconds.
fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A process's state letter (`T`: stopped) from `/proc/PID/stat`.
fn state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// The first `seq` of each segment in `events/`, in order.
fn segments(dir: &Path) -> Vec<u64> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<u64> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let seq = name.strip_suffix(".jsonl")?;
            (seq.len() == 20).then(|| seq.parse().ok()).flatten()
        })
        .collect();
    out.sort_unstable();
    out
}

/// The segment whose first `seq` is `first`.
fn segment_path(dir: &Path, first: u64) -> std::path::PathBuf {
    dir.join(format!("{first:020}.jsonl"))
}

/// The `seq` of the last complete event in the newest segment.
fn last_seq(dir: &Path) -> Option<u64> {
    let newest = *segments(dir).last()?;
    let text = std::fs::read(segment_path(dir, newest)).ok()?;
    let complete = &text[..text.iter().rposition(|b| *b == b'\n')?];
    let line = complete.rsplit(|b| *b == b'\n').next()?;
    serde_json::from_slice::<serde_json::Value>(line).ok()?["seq"].as_u64()
}

/// The log left on disk.
#[derive(Debug, Default)]
pub struct Disk {
    /// Segments kept.
    pub segments: usize,
    /// Events in them.
    pub events: u64,
    /// What is wrong with them.
    pub violations: Vec<String>,
}

/// Checks the segments left: at most [`SEGMENTS_KEPT`], each within [`SEGMENT_MAX`], named
/// by its first `seq`, `seq` dense within and across them, every line complete and an event
/// exactly as published (`truth`).
pub fn check_disk(shared_dir: &Path, truth: &HashMap<u64, u64>) -> Disk {
    let dir = shared_dir.join("events");
    let segs = segments(&dir);
    let mut disk = Disk {
        segments: segs.len(),
        ..Disk::default()
    };
    let mut broken = Vec::new();
    if segs.len() > SEGMENTS_KEPT {
        broken.push(format!("{} segments kept: {segs:?}", segs.len()));
    }
    let mut prev: Option<u64> = None;
    for first in segs {
        let path = segment_path(&dir, first);
        let text = std::fs::read(&path).unwrap_or_default();
        if text.len() as u64 > SEGMENT_MAX {
            broken.push(format!("{} has {} bytes", path.display(), text.len()));
        }
        if !text.is_empty() && !text.ends_with(b"\n") {
            broken.push(format!("{} ends with a partial line", path.display()));
        }
        let text = String::from_utf8_lossy(&text);
        for (i, line) in text.lines().enumerate() {
            let Some((seq, hash)) = watchers::fingerprint(line) else {
                broken.push(format!("{}: a line that is not an event", path.display()));
                continue;
            };
            disk.events += 1;
            let expected = if i == 0 {
                first
            } else {
                prev.map_or(first, |p| p + 1)
            };
            if seq != expected || prev.is_some_and(|p| seq != p + 1) {
                broken.push(format!("{}: seq {seq} after {prev:?}", path.display()));
            }
            if truth.get(&seq) != Some(&hash) {
                broken.push(format!(
                    "on disk, event {seq} differs from what was published"
                ));
            }
            prev = Some(seq);
        }
    }
    let n = broken.len();
    disk.violations = broken
        .into_iter()
        .take(5)
        .map(|b| format!("disk: {b}"))
        .collect();
    if n > 5 {
        disk.violations
            .push(format!("disk: ... and {} more", n - 5));
    }
    disk
}
