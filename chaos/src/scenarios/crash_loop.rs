//! Crash loop: a container whose readiness is held (`podsignal run --name flaky --ready-when
//! file:...`, and now and then `podsignal ready flaky --hold`) is started and `kill -9`ed over
//! and over, sometimes once it is ready, sometimes before. A held record counts only while its
//! writer lives (docs/protocol.md, "Held records and liveness"): right after each kill nobody
//! may see `flaky` ready, `wait --unready` returns at once, what the writer started dies with
//! it, every start has an incarnation of its own, and the directory does not grow with the
//! restarts (each write sweeps the dead holders' liveness files and temporary files; the event
//! log, where every `run` publishes a `start` event, is bounded by rotation).

use std::collections::HashSet;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::Value;

use crate::harness::{
    Ctx, Proc, Report, Rng, alive, children, eventually, ms, percentiles, tree_size,
};

/// The readiness name of the crashing container.
const NAME: &str = "flaky";
/// Files outside `events/` a restart may add to what was there at 10% of the run: a dead
/// holder's liveness file and a killed writer's temporary file, both removed by the next write.
const FILES_SLACK: u64 = 2;
/// Bytes outside `events/` a restart may add (those two files, longer pids and hold ids).
const BYTES_SLACK: u64 = 1024;
/// The most the event log may hold: 4 segments of 1 MiB and one event over (protocol).
const EVENTS_MAX: u64 = 4 * ((1 << 20) + (16 << 10));

/// What the restarts found.
struct Tally {
    /// Restarts done.
    restarts: u64,
    /// Writers killed before they were seen ready.
    early: u64,
    /// Incarnations seen in ready records.
    incarnations: HashSet<String>,
    /// Writers seen ready (each must bring a new incarnation).
    seen_ready: u64,
    /// How long `wait --unready` took after each `kill -9` (a process start included).
    unready: Vec<Duration>,
    /// How long a writer takes to be seen ready (a moving average): early kills land in it.
    to_ready: Duration,
    /// `(bytes, files)` outside `events/` at 10% of the restarts.
    baseline: Option<(u64, u64)>,
    /// The most `(bytes, files)` outside `events/` after that.
    max: (u64, u64),
    /// The event log's size at the end.
    events: (u64, u64),
    /// Every writer: its pid, when it was started, and when it was dead and reaped.
    lives: Vec<(u32, Instant, Instant)>,
}

/// A concurrent reader's view: when its `status` started and answered, and the pid of the
/// writer of the record it found ready.
type Sample = (Instant, Instant, u64);

/// What the concurrent reader found.
#[derive(Default)]
struct Polled {
    /// `status --json` runs.
    reads: u64,
    /// The runs that found the writer ready.
    samples: Vec<Sample>,
    /// Why runs failed.
    failures: Vec<String>,
}

/// Runs the scenario.
pub fn run(ctx: &Ctx) -> Result<Report> {
    let dir = ctx.path("shared");
    // The emptyDir exists before any container starts: the poller's `status` (which only
    // shows, and refuses a missing directory) may run before the first writer.
    std::fs::create_dir_all(&dir)?;
    let ok = ctx.path("ok");
    std::fs::write(&ok, "")?;
    let restarts = ctx.count(100, 500);
    let mut rng = ctx.rng();
    let mut report = Report::default();
    let mut tally = Tally {
        restarts: 0,
        early: 0,
        incarnations: HashSet::new(),
        seen_ready: 0,
        unready: Vec::new(),
        to_ready: Duration::from_millis(15),
        baseline: None,
        max: (0, 0),
        events: (0, 0),
        lives: Vec::new(),
    };
    let stop = AtomicBool::new(false);
    let polled = std::thread::scope(|s| -> Result<Polled> {
        let poller = s.spawn(|| poll(ctx, &dir, &stop));
        let looped = (0..restarts).try_for_each(|i| {
            restart(ctx, &dir, &ok, &mut rng, &mut tally, &mut report)?;
            measure(&dir, i + 1 >= restarts / 10, &mut tally);
            Ok::<_, anyhow::Error>(())
        });
        stop.store(true, Ordering::Relaxed);
        let polled = poller.join().unwrap_or_default();
        looped.map(|()| polled)
    })?;
    report.count("concurrent status reads", polled.reads);
    report.count("of which saw it ready", polled.samples.len());
    report.check(polled.failures.is_empty(), || {
        let first = &polled.failures[0];
        format!(
            "{} status --json runs failed, the first: {first}",
            polled.failures.len()
        )
    });
    check_samples(&polled.samples, &tally.lives, &mut report);
    report.count("restarts", tally.restarts);
    report.count("killed before ready", tally.early);
    report.count("start to ready", ms(tally.to_ready));
    report.count("distinct incarnations", tally.incarnations.len());
    report.check(tally.incarnations.len() as u64 == tally.seen_ready, || {
        format!(
            "{} writers seen ready, only {} distinct incarnations",
            tally.seen_ready,
            tally.incarnations.len()
        )
    });
    if let Some((p50, p99, max)) = percentiles(&mut tally.unready) {
        let took = format!("{}/{}/{}", ms(p50), ms(p99), ms(max));
        report.count("wait --unready after kill p50/p99/max", took);
    }
    check_sizes(&tally, &mut report);
    Ok(report)
}

/// One start and `kill -9` of the writer.
fn restart(
    ctx: &Ctx,
    dir: &Path,
    ok: &Path,
    rng: &mut Rng,
    tally: &mut Tally,
    report: &mut Report,
) -> Result<()> {
    tally.restarts += 1;
    let mut cmd = ctx.podsignal(dir);
    let what = if rng.percent(75) {
        let probe = format!("file:{}", ok.display());
        cmd.args([
            "run",
            "--name",
            NAME,
            "--ready-when",
            &probe,
            "--",
            "sleep",
            "600",
        ]);
        "run --ready-when"
    } else {
        cmd.args(["ready", NAME, "--hold"]);
        "ready --hold"
    };
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let spawned = Instant::now();
    let mut proc = Proc::spawn(&mut cmd, what)?;
    if rng.percent(25) {
        // Killed at a random point of its start: before, during or after its write.
        std::thread::sleep(rng.between(Duration::ZERO, tally.to_ready));
        tally.early += 1;
    } else {
        let started = Instant::now();
        became_ready(ctx, dir, &mut proc, tally, report);
        tally.to_ready = (tally.to_ready * 7 + started.elapsed()) / 8;
    }
    let started: Vec<u32> = children(proc.pid());
    proc.kill9();
    tally.lives.push((proc.pid(), spawned, Instant::now()));
    // The writer is dead and reaped: from now on nobody may see it ready.
    match status(ctx, dir) {
        Ok(status) => {
            let entry = readiness(&status);
            report.check(entry["ready"] != Value::Bool(true), || {
                format!(
                    "{what} (pid {}) is dead and {NAME} is still ready: {entry}",
                    proc.pid()
                )
            });
        }
        Err(e) => report.violation(format!("after kill -9 of {what}: {e:#}")),
    }
    let asked = Instant::now();
    let waited = ctx
        .podsignal(dir)
        .args(["wait", "--unready", NAME, "--timeout", "5s"])
        .output()?;
    tally.unready.push(asked.elapsed());
    report.check(waited.status.success(), || {
        format!("wait --unready {NAME} after kill -9 of {what}: {waited:?}")
    });
    let gone = eventually(Duration::from_secs(5), || {
        started.iter().all(|p| !alive(*p))
    });
    report.check(gone, || {
        format!("what {what} started outlived its kill -9 by 5 s: {started:?}")
    });
    Ok(())
}

/// Waits for the new writer to be ready, and checks the record is its own and new.
fn became_ready(ctx: &Ctx, dir: &Path, proc: &mut Proc, tally: &mut Tally, report: &mut Report) {
    let waited = ctx
        .podsignal(dir)
        .args(["wait", NAME, "--timeout", "5s"])
        .output();
    if !waited.as_ref().is_ok_and(|o| o.status.success()) {
        report.violation(format!("{} never became ready: {waited:?}", proc.what));
        return;
    }
    let Ok(status) = status(ctx, dir) else {
        report.violation("status --json failed while the writer was ready".to_owned());
        return;
    };
    let entry = readiness(&status);
    let record = &entry["record"];
    let incarnation = record["writer"]["incarnation"].as_str().unwrap_or("");
    let own = entry["ready"] == Value::Bool(true)
        && record["held"] == Value::Bool(true)
        && record["writer"]["pid"].as_u64() == Some(u64::from(proc.pid()));
    report.check(own, || {
        format!(
            "{} (pid {}) is ready, status shows {entry}",
            proc.what,
            proc.pid()
        )
    });
    tally.seen_ready += 1;
    report.check(tally.incarnations.insert(incarnation.to_owned()), || {
        format!("incarnation {incarnation:?} seen again, in {entry}")
    });
}

/// Reads `status --json` over and over until `stop`: when `flaky` is ready, by whom.
fn poll(ctx: &Ctx, dir: &Path, stop: &AtomicBool) -> Polled {
    let mut polled = Polled::default();
    while !stop.load(Ordering::Relaxed) {
        polled.reads += 1;
        let asked = Instant::now();
        let status = match status(ctx, dir) {
            Ok(s) => s,
            Err(e) => {
                polled.failures.push(format!("{e:#}"));
                continue;
            }
        };
        let entry = readiness(&status);
        if entry["ready"] == Value::Bool(true) {
            let pid = entry["record"]["writer"]["pid"].as_u64().unwrap_or(0);
            polled.samples.push((asked, Instant::now(), pid));
        }
    }
    polled
}

/// No concurrent reader saw a record ready whose writer was dead for the whole read.
fn check_samples(samples: &[Sample], lives: &[(u32, Instant, Instant)], report: &mut Report) {
    let stale: Vec<&Sample> = samples
        .iter()
        .filter(|(asked, answered, pid)| {
            !lives.iter().any(|(p, spawned, reaped)| {
                u64::from(*p) == *pid && spawned <= answered && reaped >= asked
            })
        })
        .collect();
    report.check(stale.is_empty(), || {
        let (asked, answered, pid) = stale[0];
        let ago = |t: &Instant| t.elapsed().as_millis();
        format!(
            "{} concurrent status reads saw {NAME} ready while its writer was dead: the first \
             started {} ms before the end, answered {} ms before it, naming pid {pid}, which \
             was not alive in between",
            stale.len(),
            ago(asked),
            ago(answered)
        )
    });
}

/// `podsignal status --json`, parsed.
fn status(ctx: &Ctx, dir: &Path) -> Result<Value> {
    let out = ctx.podsignal(dir).args(["status", "--json"]).output()?;
    anyhow::ensure!(out.status.success(), "status --json: {out:?}");
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// The readiness entry of [`NAME`] in a status (`null` if there is none).
fn readiness(status: &Value) -> Value {
    let all = status["readiness"].as_array().cloned().unwrap_or_default();
    all.into_iter()
        .find(|r| r["name"] == NAME)
        .unwrap_or(Value::Null)
}

/// Measures the directory after a restart: the baseline once `after_tenth`, then the maximum.
fn measure(dir: &Path, after_tenth: bool, tally: &mut Tally) {
    let (all_bytes, all_files) = tree_size(dir);
    let events = tree_size(&dir.join("events"));
    let rest = (
        all_bytes.saturating_sub(events.0),
        all_files.saturating_sub(events.1),
    );
    tally.events = events;
    if !after_tenth {
        return;
    }
    match tally.baseline {
        None => tally.baseline = Some(rest),
        Some(_) => tally.max = (tally.max.0.max(rest.0), tally.max.1.max(rest.1)),
    }
}

/// The directory did not grow with the restarts.
fn check_sizes(tally: &Tally, report: &mut Report) {
    let Some((bytes, files)) = tally.baseline else {
        return;
    };
    let (max_bytes, max_files) = tally.max;
    let (log_bytes, log_files) = tally.events;
    report.count("dir at 10% (bytes/files)", format!("{bytes}/{files}"));
    report.count("dir max after", format!("{max_bytes}/{max_files}"));
    report.count("event log", format!("{log_bytes}/{log_files}"));
    let bounded = max_files <= files + FILES_SLACK && max_bytes <= bytes + BYTES_SLACK;
    report.check(bounded, || {
        let then = format!("{bytes} bytes in {files} files at 10%");
        let later = format!("{max_bytes} bytes in {max_files} files later");
        format!("the directory grew with the restarts (events/ aside): {then}, {later}")
    });
    report.check(log_bytes <= EVENTS_MAX, || {
        format!("the event log holds {log_bytes} bytes, over {EVENTS_MAX}")
    });
}
