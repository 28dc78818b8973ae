//! Torn writes: short-lived writers (`ready`, `unready`, `ready --hold`, `phase set`, `event
//! publish`, `lock`) on one directory, most `kill -9`ed at a random point of their life (many
//! mid-write), while readers read records and event segments directly, run `status --json`
//! and `wait`, and follow `event watch`. No reader may see a half record (docs/protocol.md,
//! "Writing"; events are whole lines, dense in `seq`); what killed writers leave (`.*.tmp`,
//! dead `*.live`) is bounded per record, listed by `status`, removed by the next write of that
//! record ("Debris").

use std::collections::HashMap;
use std::fs::File;
use std::io::BufRead as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use serde_json::Value;

use crate::harness::{Ctx, Proc, Report, Rng, eventually, ms};

/// The readiness records written.
const READY: [&str; 3] = ["r0", "r1", "r2"];
/// The locks taken.
const LOCKS: [&str; 2] = ["l0", "l1"];
/// The phases set (with `--force`, in any order).
const PHASES: [&str; 4] = ["starting", "running", "draining", "stopping"];
/// Writer threads, each with one writer process at a time.
const WRITERS: usize = 4;
/// The least kill window: a writer is killed at a random point between its start and the
/// time writers take to finish here (3-8 ms alone, more under this load).
const MIN_KILL_WINDOW: Duration = Duration::from_millis(5);
/// Dead-process files one record may have at once: each writer process sweeps the directory's
/// debris at its first write, before it makes a temporary file, so each thread leaves at most
/// one temporary and one liveness.
const DEBRIS_PER_RECORD: usize = 2 * WRITERS;
/// The counts of the table, in order ([`Shared::counts`]).
const COUNTS: &str = "writers started,killed -9,finished,records checked,event lines checked,\
    torn event lines (skipped),status/wait runs,events followed,loss reports,debris max";

/// What every thread shares.
struct Shared {
    dir: PathBuf,
    deadline: Instant,
    counts: [AtomicU64; 10],
    /// How long writers take to finish (µs, a moving average).
    took: AtomicU64,
    watched: AtomicU64,
    found: Mutex<Vec<String>>,
}

impl Shared {
    /// The counter of `what` (one of [`COUNTS`]).
    fn count(&self, what: &str) -> &AtomicU64 {
        let i = COUNTS.split(',').position(|c| c == what);
        &self.counts[i.unwrap_or(0)]
    }

    /// Adds `n` to the count `what`.
    fn add(&self, what: &str, n: u64) {
        self.count(what).fetch_add(n, Relaxed);
    }

    /// Records a violation (the first 50: one is enough to fail).
    fn violation(&self, what: String) {
        if let Ok(mut found) = self.found.lock()
            && found.len() < 50
        {
            found.push(what);
        }
    }
}

/// Runs the scenario.
pub fn run(ctx: &Ctx) -> Result<Report> {
    let dir = ctx.path("shared");
    let failed = write_each(ctx, &dir, "starting")?;
    anyhow::ensure!(failed.is_empty(), "first writes: {failed:?}");
    let shared = Shared {
        dir: dir.clone(),
        deadline: Instant::now() + ctx.budget(),
        counts: Default::default(),
        took: AtomicU64::new(MIN_KILL_WINDOW.as_micros() as u64),
        watched: AtomicU64::new(0),
        found: Mutex::new(Vec::new()),
    };
    let mut watch = ctx.podsignal(&dir);
    watch.args(["event", "watch", "--since", "0", "--on-gap", "continue"]);
    let mut watcher = Proc::spawn(watch.stdout(Stdio::piped()), "event watch")?;
    let out = watcher.child.stdout.take().context("no stdout")?;
    let mut report = Report::default();
    std::thread::scope(|outer| -> Result<()> {
        let shared = &shared;
        outer.spawn(move || follow(shared, out));
        std::thread::scope(|s| {
            for i in 0..WRITERS {
                let mut rng = Rng::new(ctx.seed.wrapping_add(i as u64 * 7919));
                s.spawn(move || writer(ctx, shared, &mut rng));
            }
            s.spawn(move || direct_reader(shared));
            s.spawn(move || cli_reader(ctx, shared));
        });
        let finished = finish(ctx, shared, &mut report);
        watcher.kill9();
        finished
    })?;
    for (what, n) in COUNTS.split(',').zip(&shared.counts) {
        report.count(what, n.load(Relaxed));
    }
    let window = Duration::from_micros(shared.took.load(Relaxed));
    report.count("kill window", ms(window.max(MIN_KILL_WINDOW)));
    for v in shared.found.into_inner().unwrap_or_default() {
        report.violation(v);
    }
    Ok(report)
}

/// One ordinary write of every record (and a lock taken); returns the writes that failed.
fn write_each(ctx: &Ctx, dir: &Path, phase: &str) -> Result<Vec<String>> {
    let ready = READY.map(|r| format!("ready {r}"));
    let locks = LOCKS.map(|l| format!("lock {l} -- true"));
    let phase = format!("phase set {phase} --force");
    let mut failed = Vec::new();
    for w in ready.iter().chain(&locks).chain([&phase]) {
        let out = ctx.podsignal(dir).args(w.split(' ')).output()?;
        let err = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            failed.push(format!("{w}: {}", err.trim()));
        }
    }
    Ok(failed)
}

/// One writer thread: a writer process at a time, most killed at a random point of their life.
fn writer(ctx: &Ctx, shared: &Shared, rng: &mut Rng) {
    let mut n = 0u64;
    while Instant::now() < shared.deadline {
        n += 1;
        let mut cmd = ctx.podsignal(&shared.dir);
        let (hold, what) = writer_args(&mut cmd, rng, n);
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        let started = Instant::now();
        let Ok(mut proc) = Proc::spawn(&mut cmd, what.clone()) else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        shared.add("writers started", 1);
        let took = &shared.took;
        // One in five is left to finish, and timed: that sets the kill window.
        if !hold && rng.percent(20) {
            if proc.wait_for(Duration::from_secs(10)).is_some() {
                let sample = started.elapsed().as_micros() as u64;
                let _ = took.fetch_update(Relaxed, Relaxed, |t| Some((7 * t + sample) / 8));
            }
        } else {
            let window = Duration::from_micros(took.load(Relaxed)).max(MIN_KILL_WINDOW);
            std::thread::sleep(rng.between(Duration::ZERO, window));
            if proc.exited().is_none() {
                proc.kill9();
            }
        }
        match proc.wait_for(Duration::from_secs(10)) {
            Some(s) if s.signal() == Some(9) => shared.add("killed -9", 1),
            Some(s) if s.success() => shared.add("finished", 1),
            other => {
                let mut err = String::new();
                if let Some(mut e) = proc.child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                shared.violation(format!(
                    "`{what}`, not killed, ended {other:?}: {}",
                    err.trim()
                ));
            }
        }
    }
}

/// Adds a random writer's arguments to `cmd`; returns whether it holds (a hold never finishes
/// by itself), and what it is.
fn writer_args(cmd: &mut Command, rng: &mut Rng, n: u64) -> (bool, String) {
    let pad = "x".repeat(rng.below(6000) as usize); // from nothing to more than a page
    let reason = format!("w{n}{pad}");
    let data = serde_json::json!({ "n": n, "pad": pad }).to_string();
    let (r, p, l) = (*rng.pick(&READY), *rng.pick(&PHASES), *rng.pick(&LOCKS));
    let args = match rng.below(12) {
        0..=2 => vec!["ready", r, "--reason", &reason],
        3 | 4 => vec!["unready", r, "--reason", &reason],
        5 => vec!["ready", r, "--hold"],
        6 | 7 => vec!["phase", "set", p, "--force", "--reason", &reason],
        8 | 9 => vec!["event", "publish", "torn", "--data", &data],
        _ => vec!["lock", l, "--grace", "1s", "--", "true"],
    };
    let shown: Vec<&str> = args.iter().copied().filter(|a| a.len() < 40).collect();
    cmd.args(&args);
    (args.contains(&"--hold"), shown.join(" "))
}

/// Reads every file directly, over and over, until the writers stop.
fn direct_reader(shared: &Shared) {
    let mut round = 0u64;
    while Instant::now() < shared.deadline {
        round += 1;
        // The log only grows: reading all of it every time would starve the records.
        let debris = scan(shared, round.is_multiple_of(8)).len() as u64;
        shared.count("debris max").fetch_max(debris, Relaxed);
    }
}

/// `podsignal status --json` and `podsignal wait`, alternately, until the writers stop: a
/// wait must end in time (0) or time out (124), never on a bad record.
fn cli_reader(ctx: &Ctx, shared: &Shared) {
    let waits = ["r0", "--any r1 r2", "--unready r0", "phase:draining"];
    let dir = &shared.dir;
    let mut n = 0;
    while Instant::now() < shared.deadline {
        n += 1;
        shared.add("status/wait runs", 1);
        if n % 2 == 0 {
            status(ctx, shared);
            continue;
        }
        let args = format!("wait {} --timeout 20ms", waits[(n / 2) % waits.len()]);
        let out = ctx.podsignal(dir).args(args.split(' ')).output();
        let Ok(out) = out else { continue };
        let (err, code) = (String::from_utf8_lossy(&out.stderr), out.status.code());
        if !matches!(code, Some(0 | 124)) || err.contains("bad record") || err.contains("malformed")
        {
            shared.violation(format!("{args} exited {code:?}: {}", err.trim()));
        }
    }
}

/// `podsignal status --json`: it must answer, and name no problem but debris. Returns its
/// problems and the last event's `seq`.
fn status(ctx: &Ctx, shared: &Shared) -> Option<(Vec<String>, u64)> {
    let mut cmd = ctx.podsignal(&shared.dir);
    let out = cmd.args(["status", "--json"]).output().ok()?;
    let status = serde_json::from_slice::<Value>(&out.stdout).unwrap_or_default();
    if !out.status.success() || !status.is_object() {
        let err = String::from_utf8_lossy(&out.stderr);
        shared.violation(format!("status --json: {}: {}", out.status, err.trim()));
    }
    let problems: Vec<String> =
        serde_json::from_value(status["problems"].clone()).unwrap_or_default();
    for p in &problems {
        if !p.contains("left by a writer that died") && !p.contains("left by a holder that died") {
            shared.violation(format!("status reports a problem that is not debris: {p}"));
        }
    }
    Some((problems, status["events"]["last_seq"].as_u64().unwrap_or(0)))
}

/// Checks every record (and the event segments, if `events`) in the directory; returns the
/// debris (files of dead writers and holders), after checking how much each record has.
fn scan(shared: &Shared, events: bool) -> Vec<PathBuf> {
    let mut debris: HashMap<String, Vec<PathBuf>> = HashMap::new();
    let mut segments = Vec::new();
    for sub in ["", "ready", "locks", "events"] {
        let d = shared.dir.join(sub);
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = d.join(&name);
            let segment = name.strip_suffix(".jsonl").filter(|_| sub == "events");
            if let Some(record) = debris_of(sub, &name) {
                // A file whose flock can be taken: its writer or holder is dead.
                if File::open(&path).is_ok_and(|f| f.try_lock_shared().is_ok()) {
                    debris.entry(record).or_default().push(path);
                }
            } else if let Some(seq) = segment.and_then(|s| s.parse::<u64>().ok()) {
                segments.push((seq, path));
            } else {
                check_file(shared, sub, &name, &path);
            }
        }
    }
    if events {
        check_segments(shared, &segments);
    }
    for (record, files) in debris.iter().filter(|(_, f)| f.len() > DEBRIS_PER_RECORD) {
        let n = files.len();
        shared.violation(format!("{record}: {n} debris files at once: {files:?}"));
    }
    debris.into_values().flatten().collect()
}

/// The record (`sub/FINAL`) a temporary file (`.FINAL.PID.NONCE.tmp`) or liveness file
/// (`NAME.HOLD.live`, of `ready/NAME.json`) belongs to; `None` for other files.
fn debris_of(sub: &str, name: &str) -> Option<String> {
    if let Some(stem) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".tmp")) {
        let target = stem.rsplitn(3, '.').nth(2).unwrap_or(stem);
        return Some(format!("{sub}/{target}"));
    }
    let (owner, _hold) = name.strip_suffix(".live")?.rsplit_once('.')?;
    Some(format!("{sub}/{owner}.json"))
}

/// Checks a record (or fencing counter) as a reader finds it: whole (one line of at most
/// 64 KiB, JSON of version 1 naming its file, or a decimal counter), or not there.
fn check_file(shared: &Shared, sub: &str, name: &str, path: &Path) {
    let fence = sub == "locks" && name.ends_with(".fence");
    if !fence && !(name.ends_with(".json") && (!sub.is_empty() || name == "phase.json")) {
        return; // lock files, the events lock: not records
    }
    let Ok(bytes) = std::fs::read(path) else {
        return; // gone since the listing: renamed over
    };
    shared.add("records checked", 1);
    let text = String::from_utf8_lossy(&bytes);
    let v = serde_json::from_str::<Value>(&text).unwrap_or_default();
    let own = sub != "ready" || v["name"].as_str() == name.strip_suffix(".json");
    let whole = bytes.len() <= 64 * 1024
        && text.ends_with('\n')
        && text.matches('\n').count() == 1
        && if fence {
            counter(&bytes).is_some()
        } else {
            v["version"] == 1 && own
        };
    if !whole {
        let shown: String = text.chars().take(300).collect();
        let at = path.display();
        shared.violation(format!("{at} is not a whole record: {shown:?}"));
    }
}

/// A fencing counter's value: decimal digits and a newline.
fn counter(bytes: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(bytes).ok()?.strip_suffix('\n')?;
    let digits = text.bytes().all(|b| b.is_ascii_digit());
    digits.then(|| text.parse().ok())?
}

/// Checks event segments: complete lines are events, dense in `seq` from the segment's first
/// (across segments, the follower checks the sequence).
fn check_segments(shared: &Shared, segments: &[(u64, PathBuf)]) {
    for (first, path) in segments {
        let bytes = std::fs::read(path).unwrap_or_default(); // rotated away: nothing
        // A line still being written (no newline yet) is left for later, as readers do.
        let end = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |e| e + 1);
        let mut last: Option<u64> = None;
        for line in bytes[..end].split_inclusive(|b| *b == b'\n') {
            let event = serde_json::from_slice::<Value>(line).unwrap_or_default();
            let Some(seq) = event["seq"].as_u64().filter(|_| event["kind"].is_string()) else {
                shared.add("torn event lines (skipped)", 1);
                continue;
            };
            shared.add("event lines checked", 1);
            let expected = last.map_or(*first, |l| l + 1);
            if seq != expected {
                let at = path.display();
                shared.violation(format!("{at}: seq {seq} where {expected} belongs"));
            }
            last = Some(seq);
        }
    }
}

/// Follows `event watch` until it is killed: every event once, in order, or a loss report.
fn follow(shared: &Shared, out: std::process::ChildStdout) {
    for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
        let v = serde_json::from_str::<Value>(&line).unwrap_or_default();
        let last = shared.watched.load(Relaxed);
        if let Some(to) = v["lost"]["to"].as_u64() {
            shared.add("loss reports", 1);
            shared.watched.store(to, Relaxed);
        } else if v["seq"].as_u64() == Some(last + 1) {
            shared.add("events followed", 1);
            shared.watched.store(last + 1, Relaxed);
        } else {
            shared.violation(format!("event watch printed {line:?} after seq {last}"));
        }
    }
}

/// After the writers: `status` lists the debris, one write of each record removes it, and the
/// follower saw the whole log.
fn finish(ctx: &Ctx, shared: &Shared, report: &mut Report) -> Result<()> {
    let debris = scan(shared, true);
    report.count("debris at the end", debris.len());
    let (listed, _) = status(ctx, shared).unwrap_or_default();
    for d in debris.iter().map(|d| d.display().to_string()) {
        if !listed.iter().any(|p| p.contains(&d)) {
            shared.violation(format!("status does not list the debris {d}"));
        }
    }
    for failed in write_each(ctx, &shared.dir, "stopping")? {
        shared.violation(format!("after the run: {failed}"));
    }
    let left = scan(shared, true);
    report.count("debris after one write each", left.len());
    if !left.is_empty() {
        shared.violation(format!("debris survived a write of its record: {left:?}"));
    }
    let (problems, last) = status(ctx, shared).unwrap_or_default();
    if !problems.is_empty() {
        shared.violation(format!("status still reports problems: {problems:?}"));
    }
    eventually(Duration::from_secs(5), || {
        shared.watched.load(Relaxed) >= last
    });
    let seen = shared.watched.load(Relaxed);
    if seen != last {
        shared.violation(format!("event watch got to seq {seen}, the log to {last}"));
    }
    Ok(())
}
