//! Latency benchmarks with real processes: a writer acts, a waiter in another process is
//! woken. Readiness (floor: a rename seen by raw inotify; the library; HTTP long-polls on the
//! agent and on the floor server), the CLI (`podsignal ready` → `podsignal wait` exits, next
//! to `inotifywait` and the shell loops people write), and locks (hand-off and holder death;
//! floor: raw flock; the library; the CLI next to `flock(1)`, in [`crate::locks`]).
//!
//! Long-lived waiters stamp their wake-up with `CLOCK_MONOTONIC` ([`crate::child`]); the
//! writer stamps just before its first syscall. Per-trial processes are timed by this
//! process, from just before the writer is spawned to the waiter's exit.

use crate::child::{WaiterMode, now_ns};
use crate::report::{Report, Row, Series, Summary};
use crate::servers::{Kind, Server, SyncConn};
use anyhow::{Context, Result, bail};
use podsignal_client::{Coordinator, Volume, VolumeOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// How many trials each kind of measurement gets.
#[derive(Clone, Copy, Debug)]
pub struct Trials {
    /// Long-lived waiters (library, raw, HTTP): cheap trials.
    pub fast: usize,
    /// A process or two per trial (CLI, flock(1), holder death).
    pub process: usize,
    /// Polling baselines, up to a second each.
    pub poll: usize,
}

/// A small xorshift generator: jitter for the arming delays and the polling phase, so the
/// writer never acts in step with a poll loop.
pub struct Jitter(u64);

impl Jitter {
    /// Seeded from the clock.
    pub fn new() -> Jitter {
        Jitter(now_ns() | 1)
    }

    /// A duration uniform in `[0, max)`.
    pub fn upto(&mut self, max: Duration) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        let nanos = max.as_nanos() as u64;
        Duration::from_nanos(if nanos == 0 { 0 } else { self.0 % nanos })
    }
}

/// A long-lived waiter process (`podsignal-bench waiter`).
pub(crate) struct Waiter {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Waiter {
    pub(crate) fn spawn(mode: WaiterMode, dir: &Path, addr: Option<&str>) -> Result<Waiter> {
        let mode = clap::ValueEnum::to_possible_value(&mode)
            .context("mode name")?
            .get_name()
            .to_string();
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.args(["waiter", "--mode", &mode, "--dir"]).arg(dir);
        if let Some(addr) = addr {
            cmd.args(["--addr", addr]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting a waiter")?;
        let stdin = child.stdin.take().context("waiter stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("waiter stdout")?);
        Ok(Waiter {
            child,
            stdin,
            stdout,
        })
    }

    pub(crate) fn go(&mut self, i: impl std::fmt::Display) -> Result<()> {
        writeln!(self.stdin, "{i}")?;
        self.stdin.flush()?;
        Ok(())
    }

    pub(crate) fn woken_at(&mut self) -> Result<u64> {
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            bail!("the waiter exited: {:?}", self.child.wait()?);
        }
        Ok(line.trim().parse()?)
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `pid` is blocked in `flock(2)` (a `->` line of `/proc/locks`).
pub(crate) fn blocked_on_lock(pid: u32) -> bool {
    let pid = pid.to_string();
    std::fs::read_to_string("/proc/locks").is_ok_and(|t| {
        t.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.get(1) == Some(&"->") && f.get(5) == Some(&pid.as_str())
        })
    })
}

/// Whether `pid` has an inotify watch (a `inotify wd:` line in one of its fdinfo files).
fn has_inotify_watch(pid: u32) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_to_string(fd.path())
            .is_ok_and(|t| t.lines().any(|l| l.starts_with("inotify wd:")))
    })
}

/// Polls (every 200 µs) until `ready()` or `within` passes; says which.
pub(crate) fn poll_until(within: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < within {
        if ready() {
            return true;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    false
}

/// The arming pause: long enough for a woken waiter to have looped and started its next
/// wait, jittered.
pub(crate) fn arm(jitter: &mut Jitter) {
    std::thread::sleep(Duration::from_millis(5) + jitter.upto(Duration::from_millis(5)));
}

/// Runs `trials` rounds against a long-lived waiter: `go(i)`, arm, `act(i)` (returns its
/// start stamp), read the waiter's stamp. Latencies in ms.
pub(crate) fn rounds(
    trials: usize,
    waiter: &mut Waiter,
    mut ready: impl FnMut(&Waiter) -> bool,
    mut act: impl FnMut(usize) -> Result<u64>,
) -> Result<Vec<f64>> {
    let mut jitter = Jitter::new();
    let mut out = Vec::with_capacity(trials);
    for i in 0..trials {
        waiter.go(i)?;
        arm(&mut jitter);
        poll_until(Duration::from_secs(2), || ready(waiter));
        let t0 = act(i)?;
        let t1 = waiter.woken_at()?;
        out.push(t1 as f64 / 1e6 - t0 as f64 / 1e6);
    }
    Ok(out)
}

pub(crate) fn always(_: &Waiter) -> bool {
    true
}

pub(crate) fn locked_out(w: &Waiter) -> bool {
    blocked_on_lock(w.child.id())
}

/// `n=… p50 … p99 … max …` of `samples`.
fn brief(samples: &[f64]) -> String {
    let s = Summary::of(samples);
    format!(
        "n={} p50 {:.3} p99 {:.3} max {:.3}",
        samples.len(),
        s.p50,
        s.p99,
        s.max
    )
}

/// Adds latency rows (p50 in the table; n, p99 and max in the note) and their samples:
/// one row per podsignal path, the floor and the baselines on the first.
pub(crate) fn latency_row(
    report: &mut Report,
    plot: &str,
    figure: &str,
    floor: Option<(&str, &[f64])>,
    podsignal: &[(&str, &[f64])],
    baselines: &[(&str, &[f64])],
) {
    let all = floor.iter().chain(podsignal).chain(baselines);
    for (label, samples) in all {
        println!("{figure} | {label}: {}", brief(samples));
        report.series.push(Series {
            plot: plot.into(),
            label: label.to_string(),
            values: samples.to_vec(),
            x: vec![],
            ..Default::default()
        });
    }
    for (i, (label, samples)) in podsignal.iter().enumerate() {
        let mut note = vec![format!("podsignal {}", brief(samples))];
        if let Some((l, s)) = floor {
            note.push(format!("floor ({l}) {}", brief(s)));
        }
        if i == 0 {
            note.extend(baselines.iter().map(|(l, s)| format!("{l} {}", brief(s))));
        }
        report.rows.push(Row {
            figure: format!("{figure}: {label}"),
            unit: "ms p50".into(),
            floor: floor.map(|(_, s)| Summary::of(s).p50),
            podsignal: Some(Summary::of(samples).p50),
            baselines: if i == 0 {
                baselines
                    .iter()
                    .map(|(l, s)| (l.to_string(), Summary::of(s).p50))
                    .collect()
            } else {
                vec![]
            },
            note: note.join("; "),
        });
    }
}

/// Readiness wake with long-lived waiters: raw inotify, library, HTTP (agent, floor).
pub fn readiness(rt: &tokio::runtime::Runtime, podsignal: &Path, trials: Trials) -> Result<Report> {
    let mut report = Report::new("readiness");
    let n = trials.fast;

    // Floor: the writer writes a temporary file and renames it into the watched directory.
    let raw = tempfile::tempdir()?;
    let mut w = Waiter::spawn(WaiterMode::Inotify, raw.path(), None)?;
    let floor = rounds(n, &mut w, always, |i| {
        let t0 = now_ns();
        let tmp = raw.path().join(format!(".t{i}"));
        std::fs::write(&tmp, b"ready")?;
        std::fs::rename(&tmp, raw.path().join(format!("r{i}")))?;
        Ok(t0)
    })?;
    drop(w);

    // The library on both sides.
    let dir = tempfile::tempdir()?;
    let volume = rt.block_on(Volume::open(dir.path(), VolumeOptions::default()))?;
    let mut w = Waiter::spawn(WaiterMode::Lib, dir.path(), None)?;
    let lib = rounds(n, &mut w, always, |i| {
        let name = format!("r{i}").parse()?;
        let t0 = now_ns();
        rt.block_on(volume.set_ready(&name, None))?;
        Ok(t0)
    })?;
    drop(w);

    // HTTP: a PUT on one keep-alive connection wakes a long-poll on another.
    let mut http = Vec::new();
    for kind in [Kind::Agent, Kind::Floor] {
        let server = rt.block_on(Server::start(kind, podsignal, 64))?;
        let addr = server.addr.to_string();
        let mut w = Waiter::spawn(WaiterMode::Http, Path::new("."), Some(&addr))?;
        let mut writer = SyncConn::connect(&addr)?;
        let samples = rounds(n, &mut w, always, |i| {
            let t0 = now_ns();
            let (status, body) = match kind {
                Kind::Agent => writer.request(
                    "PUT",
                    &format!("/v1/readiness/r{i}"),
                    Some(r#"{"ready":true}"#),
                )?,
                Kind::Floor => writer.request("POST", &format!("/v1/readiness/r{i}"), None)?,
            };
            if !(200..300).contains(&status) {
                bail!("{}: write answered {status}: {body}", kind.label());
            }
            Ok(t0)
        })?;
        http.push(samples);
    }

    // Server-Sent Events: a POST /v1/events on one connection, the stream on another.
    let server = rt.block_on(Server::start(Kind::Agent, podsignal, 64))?;
    let addr = server.addr.to_string();
    let mut w = Waiter::spawn(WaiterMode::Sse, Path::new("."), Some(&addr))?;
    let mut writer = SyncConn::connect(&addr)?;
    let sse = rounds(n, &mut w, always, |i| {
        let body = format!(r#"{{"kind":"bench","data":{{"i":{i}}}}}"#);
        let t0 = now_ns();
        let (status, answer) = writer.request("POST", "/v1/events", Some(&body))?;
        if status != 201 {
            bail!("POST /v1/events: {status} {answer}");
        }
        Ok(t0)
    })?;
    drop(w);
    drop(server);
    latency_row(
        &mut report,
        "readiness-wake",
        "readiness wake, writer → waiter in another process",
        Some(("floor: rename → raw inotify", &floor)),
        &[
            ("library (Volume::set_ready → wait_ready)", &lib),
            ("agent: PUT → HTTP long-poll", &http[0]),
        ],
        &[("floor server: POST → HTTP long-poll", &http[1])],
    );
    latency_row(
        &mut report,
        "sse-wake",
        "event published over HTTP → Server-Sent Events reader in another process",
        Some(("floor server: POST → HTTP long-poll", &http[1])),
        &[("agent: POST /v1/events → /v1/events/stream", &sse)],
        &[],
    );
    Ok(report)
}

/// Runs `cmd` to its end; fails unless it succeeds.
pub(crate) fn run_ok(cmd: &mut Command) -> Result<()> {
    let status = cmd.stdout(Stdio::null()).status()?;
    if !status.success() {
        bail!("{cmd:?}: {status}");
    }
    Ok(())
}

/// One per-process trial: `spawn_waiter`, wait until `armed`, pause `phase`, then spawn the
/// writer and time until the waiter exits. ms.
fn process_trial(
    mut waiter: Command,
    armed: impl Fn(u32) -> bool,
    phase: Duration,
    mut writer: Command,
) -> Result<f64> {
    let mut w = waiter.stdout(Stdio::null()).stderr(Stdio::null()).spawn()?;
    if !poll_until(Duration::from_secs(5), || armed(w.id())) {
        let _ = w.kill();
        bail!("{waiter:?} did not arm within 5 s");
    }
    std::thread::sleep(phase);
    let t0 = Instant::now();
    let mut writer = writer.stdout(Stdio::null()).spawn()?;
    let status = w.wait()?;
    let elapsed = t0.elapsed();
    writer.wait()?;
    if !status.success() {
        bail!("{waiter:?}: {status}");
    }
    Ok(elapsed.as_secs_f64() * 1000.0)
}

pub(crate) fn sh(script: &str) -> Command {
    let mut c = Command::new("sh");
    c.args(["-c", script]);
    c
}

/// The CLI path and the shell baselines: a process per waiter and per writer.
pub fn cli(
    rt: &tokio::runtime::Runtime,
    podsignal: &Path,
    tiny: &Path,
    trials: Trials,
) -> Result<Report> {
    let mut report = Report::new("cli");
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    let ps = |args: &[&str]| {
        let mut c = Command::new(podsignal);
        c.arg("--dir").arg(d).args(args);
        c
    };
    let mut jitter = Jitter::new();
    let pause = |j: &mut Jitter| Duration::from_millis(1) + j.upto(Duration::from_millis(2));

    // Floor: spawn a tiny static process and see it exit.
    let mut spawn = Vec::new();
    for _ in 0..trials.fast {
        let t0 = Instant::now();
        run_ok(&mut Command::new(tiny))?;
        spawn.push(t0.elapsed().as_secs_f64() * 1000.0);
    }

    let mut cli = Vec::new();
    let mut ordering = Vec::new();
    let mut inotifywait = Vec::new();
    for i in 0..trials.process {
        let name = format!("c{i}");
        cli.push(process_trial(
            ps(&["wait", &name, "--timeout", "60s"]),
            has_inotify_watch,
            pause(&mut jitter),
            ps(&["ready", &name]),
        )?);
        // Startup ordering: the wrapped command starts once its dependency is ready.
        let name = format!("s{i}");
        ordering.push(process_trial(
            ps(&["run", "--wait-for", &name, "--", "true"]),
            has_inotify_watch,
            pause(&mut jitter),
            ps(&["ready", &name]),
        )?);
        let sub = d.join(format!("iw{i}"));
        std::fs::create_dir(&sub)?;
        let mut waiter = Command::new("inotifywait");
        waiter
            .args(["-qq", "-e", "create", "-e", "moved_to"])
            .arg(&sub);
        let mut touch = Command::new("touch");
        touch.arg(sub.join("f"));
        inotifywait.push(process_trial(
            waiter,
            has_inotify_watch,
            pause(&mut jitter),
            touch,
        )?);
    }

    // Polling baselines: the writer acts at a random phase of the poll period.
    let started = |_: u32| true;
    let mut until_1s = Vec::new();
    let mut until_100ms = Vec::new();
    let mut http_1s = Vec::new();
    let server = rt.block_on(Server::start(Kind::Agent, podsignal, 64))?;
    let agent_dir = server.dir_path().context("agent dir")?;
    for i in 0..trials.poll {
        for (period, out) in [(1.0, &mut until_1s), (0.1, &mut until_100ms)] {
            let flag = d.join(format!("p{i}-{period}"));
            let script = format!("until [ -f '{}' ]; do sleep {period}; done", flag.display());
            let mut touch = Command::new("touch");
            touch.arg(&flag);
            let phase = Duration::from_millis(20) + jitter.upto(Duration::from_secs_f64(period));
            out.push(process_trial(sh(&script), started, phase, touch)?);
        }
        let name = format!("h{i}");
        let script = format!(
            "until curl -s 'http://{}/v1/readiness/{name}' | grep -q '\"ready\":true'; do sleep 1; done",
            server.addr
        );
        let mut writer = Command::new(podsignal);
        writer.arg("--dir").arg(&agent_dir).args(["ready", &name]);
        let phase = Duration::from_millis(20) + jitter.upto(Duration::from_secs(1));
        http_1s.push(process_trial(sh(&script), started, phase, writer)?);
    }
    drop(server);

    latency_row(
        &mut report,
        "cli-wake",
        "CLI readiness: writer process → waiting process exits",
        Some(("floor: spawn a tiny static process to its exit", &spawn)),
        &[
            ("podsignal ready → podsignal wait", &cli),
            (
                "startup ordering: podsignal ready → `podsignal run --wait-for` has run its command",
                &ordering,
            ),
        ],
        &[
            ("touch → inotifywait", &inotifywait),
            ("touch → `until [ -f F ]; do sleep 1; done`", &until_1s),
            ("touch → `sleep 0.1` loop", &until_100ms),
            ("podsignal ready → 1 s curl poll of the agent", &http_1s),
        ],
    );
    Ok(report)
}
