//! The agent killed under its clients. Rounds of waiters (HTTP long-polls on a readiness name
//! and on the phase; `podsignal --agent URL wait`, run again after an error as a shell loop
//! would) start, the agent is `kill -9`ed and started again on its port, and their condition
//! becomes true on the volume while no agent runs, or after the new one is up. All along,
//! HTTP holds, HTTP leases, `podsignal --agent URL lock` and `podsignal lock` take one lock
//! and write the ledger. Must hold: every client gets an answer, a clear error or reconnects,
//! none hangs or panics; every waiter wakes; one holder at a time (the ledger; holders
//! through the agent enter through a [`Gate`]); a grant asked for after a restart carries a
//! token above every token granted before the kill.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use crate::agent::{self, Agent, io_kind};
use crate::harness::{Ctx, Proc, Report, eventually, lock};
use crate::ledger::{self, Gate};

mod locks;

/// The lock every lock client takes.
const LOCK: &str = "res";

/// The lock clients: `hold` holds `POST /v1/locks/LOCK/hold` open, `lease` takes a lease and
/// deletes it, `agentcli` runs `podsignal --agent URL lock`, `cli` `podsignal lock`.
const LOCKERS: [&str; 6] = ["hold", "hold", "lease", "lease", "agentcli", "cli"];

/// Every waiter of a round must have woken this long after the round started.
const ROUND_LIMIT: Duration = Duration::from_secs(30);

/// What a request got: `(status, body)`, or the kind of error (`read: closed`, ...).
type Answer = Result<(u16, String), String>;

/// What the clients and the killer share.
struct Shared {
    /// The shared directory.
    dir: PathBuf,
    /// The ledger file.
    ledger: PathBuf,
    /// The gate of holders through the agent.
    gate: Gate,
    /// The agent's URL.
    url: String,
    /// The agent's port.
    port: u16,
    /// Set when the killer is done: lock clients stop.
    stop: AtomicBool,
    /// Tokens granted to HTTP clients: (asked at, granted at, token).
    grants: Mutex<Vec<(Instant, Instant, u64)>>,
    /// Agent restarts: (killed at, answering again at).
    restarts: Mutex<Vec<(Instant, Instant)>>,
    /// Errors clients got, by kind.
    errors: Mutex<BTreeMap<String, u64>>,
    /// Broken promises found by the threads (printed when found).
    violations: Mutex<Vec<String>>,
    /// Client sessions started (requests, CLI runs), also naming them.
    clients: AtomicU64,
}

impl Shared {
    /// Counts an error a client got, by kind.
    fn error(&self, kind: impl Into<String>) {
        *lock(&self.errors).entry(kind.into()).or_default() += 1;
    }

    /// Records (and prints) a broken promise.
    fn violation(&self, what: String) {
        eprintln!("chaos: VIOLATION: {what}");
        lock(&self.violations).push(what);
    }

    /// A new client: its number.
    fn client(&self) -> u64 {
        self.clients.fetch_add(1, Ordering::Relaxed)
    }
}

/// Runs the scenario.
pub fn run(ctx: &Ctx) -> Result<Report> {
    let dir = ctx.path("shared");
    let ledger_path = ctx.path("ledger");
    File::create(&ledger_path).context("creating the ledger")?;
    std::fs::create_dir_all(ctx.path("stderr"))?;
    let mut agent = Agent::start(ctx, &dir, &["--max-wait", "30s"])?;
    let shared = Shared {
        dir: dir.clone(),
        ledger: ledger_path.clone(),
        gate: Gate::create(ctx.path("gate")).context("creating the gate")?,
        url: agent.url(),
        port: agent.port,
        stop: AtomicBool::default(),
        grants: Mutex::default(),
        restarts: Mutex::default(),
        errors: Mutex::default(),
        violations: Mutex::default(),
        clients: AtomicU64::default(),
    };
    let rounds = std::thread::scope(|s| {
        for (i, kind) in LOCKERS.iter().enumerate() {
            let shared = &shared;
            s.spawn(move || locks::lock_client(ctx, shared, i, kind));
        }
        let rounds = killer(ctx, &shared, &mut agent);
        shared.stop.store(true, Ordering::SeqCst);
        rounds
    });
    let mut report = Report::default();
    let text = std::fs::read_to_string(&ledger_path).context("reading the ledger")?;
    let verdict = ledger::check(&text, &|w: &str| !w.starts_with("cli"));
    report.count("agent restarts", lock(&shared.restarts).len());
    report.count("waiter rounds", rounds);
    report.count("clients", shared.clients.load(Ordering::Relaxed));
    report.count("lock sections", verdict.entered);
    report.count("stale writes fenced", verdict.fenced);
    let last = verdict.last_token.map_or("-".to_owned(), |t| t.to_string());
    report.count("last token", last);
    let errors: Vec<String> = lock(&shared.errors)
        .iter()
        .map(|(kind, n)| format!("{kind} {n}"))
        .collect();
    report.count("errors", errors.join(" / "));
    for v in verdict
        .violations
        .into_iter()
        .chain(tokens_backwards(&shared))
    {
        report.violation(v);
    }
    // Already printed when found.
    report.violations.append(&mut lock(&shared.violations));
    report.check(verdict.entered >= 10, || {
        format!("only {} lock sections in the whole run", verdict.entered)
    });
    let mut try_once = ctx.podsignal(&dir);
    try_once.args(["lock", LOCK, "--no-wait", "--", "true"]);
    let free = eventually(Duration::from_secs(10), || {
        try_once.status().is_ok_and(|s| s.success())
    });
    report.check(free, || {
        "the lock stayed held after every client stopped".into()
    });
    Ok(report)
}

/// Every grant asked for after a restart must carry a token above every token granted
/// before that kill.
fn tokens_backwards(shared: &Shared) -> Vec<String> {
    let grants = lock(&shared.grants);
    let mut out = Vec::new();
    for (killed, back) in lock(&shared.restarts).iter() {
        let before = grants.iter().filter(|g| g.1 < *killed).map(|g| g.2).max();
        let Some(before) = before else { continue };
        if let Some(g) = grants.iter().find(|g| g.0 > *back && g.2 <= before) {
            let after = g.2;
            out.push(format!(
                "token {after} after a restart, {before} before the kill"
            ));
        }
    }
    out
}

/// The agent killed and started again, round after round, each with its waiters; returns
/// how many rounds ran.
fn killer(ctx: &Ctx, shared: &Shared, agent: &mut Agent) -> u64 {
    let mut rng = ctx.rng();
    let deadline = Instant::now() + ctx.budget();
    let mut round = 0;
    while Instant::now() < deadline {
        round += 1;
        let name = format!("w{round}");
        if !volume(ctx, shared, &["phase", "set", "starting", "--force"]) {
            shared.violation(format!("round {round}: cannot reset the phase"));
        }
        let until = Instant::now() + ROUND_LIMIT;
        let ready = format!("/v1/readiness/{name}?wait=10s");
        let phase = "/v1/phase?at_least=running&wait=10s";
        let paths = [ready.as_str(), &ready, phase];
        std::thread::scope(|s| {
            for path in paths {
                s.spawn(move || http_waiter(shared, path, until));
            }
            s.spawn(|| cli_waiter(ctx, shared, &name, until));
            std::thread::sleep(rng.between(Duration::from_millis(50), Duration::from_millis(300)));
            kill_and_restart(ctx, shared, agent, &name, rng.percent(50));
        });
    }
    round
}

/// `podsignal ARGS` on the volume; true if it succeeded.
fn volume(ctx: &Ctx, shared: &Shared, args: &[&str]) -> bool {
    let mut cmd = ctx.podsignal(&shared.dir);
    cmd.args(args).stdout(Stdio::null());
    cmd.status().is_ok_and(|s| s.success())
}

/// `kill -9` of the agent; the round's condition made true on the volume while it is dead
/// (`during`) or once it is back.
fn kill_and_restart(ctx: &Ctx, shared: &Shared, agent: &mut Agent, name: &str, during: bool) {
    let satisfy = || {
        let phase = ["phase", "set", "running"];
        if !(volume(ctx, shared, &["ready", name]) && volume(ctx, shared, &phase)) {
            shared.violation(format!("cannot make {name} ready on the volume"));
        }
    };
    let killed = Instant::now();
    // Not reaped yet (a zombie keeps its pid): restart_after_kill9 reaps it.
    match shared.gate.kill_agent(&shared.ledger, agent.proc.pid()) {
        Ok(true) => {}
        Ok(false) => shared.violation("the agent survived kill -9 for 5 s".into()),
        Err(e) => {
            shared.violation(format!("cannot kill the agent through the gate: {e}"));
            return satisfy();
        }
    }
    if during {
        satisfy();
    }
    if let Err(e) = agent.restart_after_kill9(ctx) {
        shared.violation(format!("the agent did not start again on its port: {e:#}"));
    }
    lock(&shared.restarts).push((killed, Instant::now()));
    if !during {
        satisfy();
    }
}

/// A long-poll, asked again after every error, until it answers 200 or `until`.
fn http_waiter(shared: &Shared, path: &str, until: Instant) {
    while Instant::now() < until {
        let Some(body) = answer(shared, "long-poll", call(shared, "GET", path), 200) else {
            continue;
        };
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let phase = v["phase"].as_str();
        if v["ready"] != true && phase.is_none_or(|p| p == "starting") {
            shared.violation(format!("GET {path} answered 200 before it held: {body}"));
        }
        return;
    }
    shared.violation(format!("GET {path} never woke"));
}

/// One request with its wait and 5 s more to answer: `(status, body)`, or the kind of error.
fn call(shared: &Shared, method: &str, path: &str) -> Answer {
    shared.client();
    let mut body = String::new();
    let got = agent::send(shared.port, method, path, None, Duration::from_secs(15))
        .and_then(|mut r| Ok(r.read_to_string(&mut body).map(|_| r.status)?));
    got.map(|status| (status, body)).map_err(|e| {
        let io = e.chain().find_map(|c| c.downcast_ref());
        io.map_or_else(|| "read: closed".to_owned(), |e| io_kind("read", e))
    })
}

/// The body of an answer with status `want`; anything else is counted by kind (a hang, or a
/// 5xx other than 503, is a violation) and gives `None` after a short pause.
fn answer(shared: &Shared, what: &str, got: Answer, want: u16) -> Option<String> {
    match got {
        Ok((status, body)) if status == want => return Some(body),
        Ok((status, body)) => {
            if status >= 500 && status != 503 {
                shared.violation(format!("{what}: {status} {body}"));
            }
            shared.error(format!("{what} {status}"));
        }
        Err(kind) => {
            if kind.contains("timed out") {
                shared.violation(format!("{what}: no answer within its wait (hung)"));
            }
            shared.error(format!("{what} {kind}"));
        }
    }
    std::thread::sleep(Duration::from_millis(20));
    None
}

/// `podsignal --agent URL wait NAME phase:running`, run again after a clear error (as a shell
/// loop would), until it succeeds or `until`.
fn cli_waiter(ctx: &Ctx, shared: &Shared, name: &str, until: Instant) {
    while Instant::now() < until {
        let mut cmd = ctx.podsignal(&shared.dir);
        cmd.args(["--agent", &shared.url, "wait", name, "phase:running"]);
        match cli(ctx, shared, cmd.args(["--timeout", "10s"]), "--agent wait") {
            Some(true) | None => return,
            Some(false) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    shared.violation(format!("podsignal --agent wait {name} never woke"));
}

/// Runs a CLI client (`--timeout 10s`) to its end and judges it: `Some(true)` success,
/// `Some(false)` a clear error or a timeout, `None` a violation (a hang, a panic, an error
/// naming neither the agent nor the connection).
fn cli(ctx: &Ctx, shared: &Shared, cmd: &mut Command, what: &str) -> Option<bool> {
    let err = ctx.path(format!("stderr/{}", shared.client()));
    cmd.stdout(Stdio::null()).stderr(File::create(&err).ok()?);
    let Ok(mut proc) = Proc::spawn(cmd, what) else {
        shared.error(format!("{what}: cannot start"));
        return Some(false);
    };
    let status = proc.wait_for(Duration::from_secs(20));
    let text = std::fs::read_to_string(&err).unwrap_or_default();
    let _ = std::fs::remove_file(&err);
    let code = status.and_then(|s| s.code());
    let clear = ["agent", "connect"].iter().any(|w| text.contains(w));
    let broken = match status {
        None => format!("{what} still running 10 s past its --timeout"),
        Some(_) if text.contains("panicked") => format!("{what} panicked: {}", text.trim()),
        Some(s) if s.success() => return Some(true),
        Some(_)
            if code == Some(ledger::REFUSED) && text.contains("agent killed since the grant") =>
        {
            shared.error("grants of a killed agent left unused");
            return Some(false);
        }
        Some(_) if code == Some(124) || clear => {
            shared.error(format!("{what} exit {}", code.unwrap_or_default()));
            return Some(false);
        }
        Some(s) => format!("{what}: {s} without naming the agent: {:?}", text.trim()),
    };
    shared.violation(broken);
    None
}
