//! Events through rotation: eight publishers (`podsignal event publish` on the volume and
//! through `--agent`, and `POST /v1/events`) append padded events fast enough to rotate the
//! log many times, while seven watchers follow it: `podsignal event watch` on the volume and
//! through `--agent`, an SSE client that drops its connection at random and resumes with
//! `Last-Event-ID`, a long-poll loop, a slow SSE reader, and two CLI watchers that are
//! SIGSTOPped until rotation has deleted what they had not read (one with `--on-gap
//! continue`, one with `--on-gap fail`); the SSE and long-poll watchers stay away meanwhile. Every watcher must see every event once, in order,
//! byte for byte as published, or say explicitly which ones it lost (see [`judge::check`]);
//! the log on disk must stay bounded, dense and intact.

mod http; // a small HTTP client with headers both ways
mod judge; // the verdict
mod pauses; // SIGSTOP and holds past rotation; the log on disk
mod publishers; // the publishers and the truth
mod sse; // the SSE watchers
mod watchers; // the CLI and long-poll watchers, what watchers share

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{Scope, ScopedJoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use rustix::process::Signal;

use crate::agent::Agent;
use crate::harness::{Ctx, Proc, Report, Rng, eventually, signal};
use watchers::{Log, Shared};

/// The CLI watchers: name, `--on-gap`, through the agent, paused.
const CLI_WATCHERS: [(&str, &str, bool, bool); 4] = [
    ("cli", "continue", false, false),
    ("agent-cli", "continue", true, false),
    ("paused-cli", "continue", false, true),
    ("paused-fail", "fail", false, true),
];

/// Every watcher, the CLI ones first (as in [`CLI_WATCHERS`]); the index of its position in
/// [`Shared::pos`] and of its log.
const WATCHERS: [&str; 7] = [
    "cli",
    "agent-cli",
    "paused-cli",
    "paused-fail",
    "sse",
    "long-poll",
    "slow-sse",
];

/// The HTTP watchers held (kept from reading) while the paused CLI watchers are stopped.
const HELD: [&str; 2] = ["sse", "long-poll"];

/// How long the watchers get to reach the last event once publishing stopped.
const CATCH_UP: Duration = Duration::from_secs(30);

/// What the publishers share, and what they found.
struct Run {
    dir: PathBuf,
    url: String,
    port: u16,
    /// Stop publishing.
    stop: AtomicBool,
    /// `seq` -> hash of the event as its publisher got it back.
    truth: Mutex<HashMap<u64, u64>>,
    /// Events published, by [`publishers::Via`].
    published: [AtomicU64; 3],
    /// Bytes of events published.
    bytes: AtomicU64,
    /// Bytes of padding handed out to the publishers (they are paced together).
    reserved: AtomicU64,
    /// What went wrong publishing (each a violation).
    failures: Mutex<Vec<String>>,
}

/// A `podsignal event watch` process.
struct CliWatcher {
    name: &'static str,
    proc: Proc,
    /// Its stderr.
    err: PathBuf,
    paused: bool,
    on_gap_fail: bool,
    /// Its exit status once it ended (reaped).
    status: Option<ExitStatus>,
}

impl CliWatcher {
    /// Its exit code, once it ended (-1: killed by a signal).
    fn code(&self) -> Option<i32> {
        self.status.map(|s| s.code().unwrap_or(-1))
    }
}

/// Runs the scenario.
pub fn run(ctx: &Ctx) -> Result<Report> {
    let dir = ctx.path("shared");
    let agent = Agent::start(ctx, &dir, &[])?;
    let run = Run {
        dir: dir.clone(),
        url: agent.url(),
        port: agent.port,
        stop: AtomicBool::new(false),
        truth: Mutex::new(HashMap::new()),
        published: Default::default(),
        bytes: AtomicU64::new(0),
        reserved: AtomicU64::new(0),
        failures: Mutex::new(Vec::new()),
    };
    // Event 1, before any watcher starts: each must begin with it.
    publishers::first(ctx, &run).context("publishing the first event")?;
    let mut clis = start_cli_watchers(ctx, &run)?;
    let shared = Shared::new(agent.port, WATCHERS.len());
    let mut report = Report::default();
    let (logs, mut pauses) = std::thread::scope(|s| {
        let mut rng = ctx.rng();
        let watching = spawn_watchers(s, &mut clis, &shared, &mut rng);
        let started = eventually(Duration::from_secs(15), || {
            shared.positions().iter().all(|p| *p >= 1)
        });
        report.check(started, || {
            format!(
                "not every watcher saw event 1 in 15 s: {}",
                positions(&shared)
            )
        });
        let began = Instant::now();
        let publishing: Vec<_> = (0..publishers::PUBLISHERS.len())
            .map(|i| {
                let (run, mut rng) = (&run, Rng::new(rng.next_u64()));
                s.spawn(move || publishers::publisher(ctx, run, i, began, &mut rng))
            })
            .collect();
        let stop: Vec<(usize, u32)> = (clis.iter().enumerate())
            .filter(|(_, c)| c.paused)
            .map(|(i, c)| (i, c.proc.pid()))
            .collect();
        let hold = HELD.map(|name| WATCHERS.iter().position(|w| *w == name).unwrap_or(0));
        let deadline = began + ctx.budget();
        let pauses = pauses::pauser(&dir, deadline, &stop, &hold, &shared, &mut rng);
        run.stop.store(true, Ordering::SeqCst);
        for p in publishing {
            let _ = p.join();
        }
        catch_up(&run, &shared, &mut clis, &mut report);
        let logs: Vec<Log> = watching
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect();
        (logs, pauses)
    });
    judge::judge(&run, &clis, &logs, &mut pauses, &mut report);
    Ok(report)
}

/// Starts the CLI watchers, each `--since 0`, output into a pipe.
fn start_cli_watchers(ctx: &Ctx, run: &Run) -> Result<Vec<CliWatcher>> {
    let mut out = Vec::new();
    for (name, on_gap, through_agent, paused) in CLI_WATCHERS {
        let err = ctx.path(format!("{name}.err"));
        let mut cmd = ctx.podsignal(&run.dir);
        if through_agent {
            cmd.args(["--agent", &run.url]);
        }
        cmd.args(["event", "watch", "--since", "0", "--on-gap", on_gap])
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(&err)?));
        out.push(CliWatcher {
            name,
            proc: Proc::spawn(&mut cmd, name)?,
            err,
            paused,
            on_gap_fail: on_gap == "fail",
            status: None,
        });
    }
    Ok(out)
}

/// Starts a reader of each CLI watcher's output and the HTTP watchers, in [`WATCHERS`] order.
fn spawn_watchers<'s>(
    s: &'s Scope<'s, '_>,
    clis: &mut [CliWatcher],
    shared: &'s Shared,
    rng: &mut Rng,
) -> Vec<ScopedJoinHandle<'s, Log>> {
    let mut out = Vec::new();
    for (i, c) in clis.iter_mut().enumerate() {
        let Some(stdout) = c.proc.child.stdout.take() else {
            out.push(s.spawn(Log::default));
            continue;
        };
        out.push(s.spawn(move || watchers::cli_reader(stdout, shared, i)));
    }
    for (i, name) in WATCHERS.iter().enumerate().skip(clis.len()) {
        let mut rng = Rng::new(rng.next_u64());
        out.push(s.spawn(move || match *name {
            "long-poll" => watchers::long_poll(shared, i),
            _ => sse::sse(shared, i, *name == "slow-sse", &mut rng),
        }));
    }
    out
}

/// Once publishing stopped: waits until every watcher reached the last event (or exited, the
/// `--on-gap fail` one may), then stops the CLI watchers with SIGTERM and the others.
fn catch_up(run: &Run, shared: &Shared, clis: &mut [CliWatcher], report: &mut Report) {
    let last = run
        .truth
        .lock()
        .map_or(0, |t| t.keys().max().copied().unwrap_or(0));
    shared.final_seq.store(last, Ordering::SeqCst);
    let caught_up = eventually(CATCH_UP, || {
        let pos = shared.positions();
        clis.iter_mut().enumerate().all(|(i, c)| {
            c.status = c.status.or_else(|| c.proc.exited());
            c.status.is_some() || pos[i] >= last
        }) && pos[clis.len()..].iter().all(|p| *p >= last)
    });
    report.check(caught_up, || {
        format!(
            "not every watcher reached event {last} within {CATCH_UP:?} after the last publish: {}",
            positions(shared)
        )
    });
    shared.abort.store(true, Ordering::SeqCst);
    for c in clis.iter_mut().filter(|c| c.status.is_none()) {
        signal(c.proc.pid(), Signal::CONT);
        signal(c.proc.pid(), Signal::TERM);
        c.status = c.proc.wait_for(Duration::from_secs(10));
        if c.status.is_none() {
            report.violation(format!("{}: still running 10 s after SIGTERM", c.name));
            c.proc.kill9();
        }
    }
}

/// `name at POS, ...` for every watcher.
fn positions(shared: &Shared) -> String {
    WATCHERS
        .iter()
        .zip(shared.positions())
        .map(|(n, p)| format!("{n} at {p}"))
        .collect::<Vec<_>>()
        .join(", ")
}
