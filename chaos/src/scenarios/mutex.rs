//! Mutual exclusion under `kill -9`: twelve workers take one lock in every way there is
//! (`podsignal lock` on the volume, `flock(1)` on the lock file, `podsignal --agent URL
//! lock`, raw HTTP holds and leases), each critical section writes the ledger, and a killer
//! `kill -9`s wrappers, holders, grandchildren and the agent at random. The ledger must show
//! one inside at a time and strictly increasing tokens (see [`crate::ledger`]); holders
//! through the agent enter through a [`Gate`], so a grant of an agent killed since is left
//! unused rather than written as the next agent's.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use crate::agent::{self, Agent};
use crate::harness::{Ctx, Proc, Report, Rng, children, eventually, kill9, lock};
use crate::ledger::{self, Gate};

/// The lock every worker takes.
const LOCK: &str = "ledger";

/// How a worker takes the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `podsignal lock LOCK -- sh -c SECTION`, on the volume.
    Cli,
    /// `flock DIR/locks/LOCK.lock sh -c SECTION`.
    Flock,
    /// `podsignal --agent URL lock LOCK -- sh -c SECTION`.
    AgentCli,
    /// `POST /v1/locks/LOCK/hold`, the section written by the harness while the stream is open.
    Hold,
    /// `POST /v1/locks/LOCK?ttl=...`, then `DELETE ...?lease=ID`.
    Lease,
}

impl Kind {
    /// The prefix of its workers' names.
    fn label(self) -> &'static str {
        match self {
            Kind::Cli => "cli",
            Kind::Flock => "flock",
            Kind::AgentCli => "agentcli",
            Kind::Hold => "hold",
            Kind::Lease => "lease",
        }
    }

    /// Whether the lock lives in the agent (and vanishes when it dies).
    fn through_agent(worker: &str) -> bool {
        ["agentcli", "hold", "lease"]
            .iter()
            .any(|k| worker.starts_with(k))
    }
}

/// The workers, by how they take the lock.
const WORKERS: [Kind; 12] = {
    use Kind::{AgentCli, Cli, Flock, Hold, Lease};
    [
        Cli, Cli, Cli, Cli, Flock, Flock, AgentCli, AgentCli, Hold, Hold, Lease, Lease,
    ]
};

/// What the workers and the killer share.
struct Shared {
    /// The shared directory.
    dir: PathBuf,
    /// The ledger file.
    ledger: PathBuf,
    /// The gate of holders through the agent.
    gate: Gate,
    /// The agent's port.
    port: u16,
    /// When workers stop starting sections.
    deadline: Instant,
    /// Worker index -> the pid of its current process (process kinds).
    running: Mutex<HashMap<usize, u32>>,
    /// Worker index -> "crash now" (thread kinds: drop the connection, write nothing more).
    crash: Vec<AtomicBool>,
    /// Attempts that did not complete a section.
    failed_attempts: AtomicU64,
    /// Grants of an agent killed since they were asked for, left unused.
    unused: AtomicU64,
}

/// Runs the scenario.
pub fn run(ctx: &Ctx) -> Result<Report> {
    let dir = ctx.path("shared");
    let ledger_path = ctx.path("ledger");
    // Creates the directory, the lock file and the counter (flock(1) needs the file's folder).
    let out = ctx
        .podsignal(&dir)
        .args(["lock", LOCK, "--no-wait", "--", "true"])
        .output()?;
    anyhow::ensure!(out.status.success(), "first lock: {out:?}");
    let mut agent = Agent::start(ctx, &dir, &["--max-wait", "30s"])?;
    let shared = Arc::new(Shared {
        dir: dir.clone(),
        ledger: ledger_path.clone(),
        gate: Gate::create(ctx.path("gate")).context("creating the gate")?,
        port: agent.port,
        deadline: Instant::now() + ctx.budget(),
        running: Mutex::new(HashMap::new()),
        crash: WORKERS.iter().map(|_| AtomicBool::new(false)).collect(),
        failed_attempts: AtomicU64::new(0),
        unused: AtomicU64::new(0),
    });
    let mut report = Report::default();
    let kills = std::thread::scope(|s| {
        for (i, kind) in WORKERS.iter().enumerate() {
            let shared = &shared;
            let mut rng = Rng::new(ctx.seed.wrapping_add(i as u64 * 7919));
            s.spawn(move || worker(ctx, shared, i, *kind, &mut rng));
        }
        killer(ctx, &shared, &mut agent)
    });
    let text = std::fs::read_to_string(&ledger_path).context("reading the ledger")?;
    let verdict = ledger::check(&text, &Kind::through_agent);
    report.count("sections", verdict.entered);
    report.count("completed", verdict.exited);
    report.count("cut short by kill -9", verdict.cut_short);
    for (what, n) in &kills {
        report.count(&format!("kill -9 {what}"), n);
    }
    report.count("stale writes fenced", verdict.fenced);
    report.count("unfenceable (under flock(1))", verdict.unfenceable);
    let last = verdict.last_token.map_or("-".to_owned(), |t| t.to_string());
    report.count("last token", last);
    let failed = shared.failed_attempts.load(Ordering::Relaxed);
    report.count("attempts failed (killed, agent down)", failed);
    let unused = shared.unused.load(Ordering::Relaxed);
    report.count("grants of a killed agent left unused", unused);
    for v in verdict.violations {
        report.violation(v);
    }
    report.check(verdict.entered >= 10, || {
        format!("only {} sections in the whole run", verdict.entered)
    });
    // Everything let go: the lock can be taken at once.
    let free = eventually(Duration::from_secs(10), || {
        ctx.podsignal(&dir)
            .args(["lock", LOCK, "--no-wait", "--", "true"])
            .status()
            .is_ok_and(|s| s.success())
    });
    report.check(free, || {
        "the lock stayed held after every worker stopped".into()
    });
    Ok(report)
}

/// One worker: sections until the deadline.
fn worker(ctx: &Ctx, shared: &Shared, i: usize, kind: Kind, rng: &mut Rng) {
    let mut attempt = 0;
    while Instant::now() < shared.deadline {
        attempt += 1;
        let name = format!("{}{i}.{attempt}", kind.label());
        shared.crash[i].store(false, Ordering::SeqCst);
        let ok = match kind {
            Kind::Cli | Kind::Flock | Kind::AgentCli => {
                process_section(ctx, shared, i, kind, &name, rng)
            }
            Kind::Hold => hold_section(shared, i, &name, rng),
            Kind::Lease => lease_section(shared, i, &name, rng),
        };
        if !ok {
            shared.failed_attempts.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A section in a process (wrapper, `flock(1)`) of its own; true if it exited 0.
fn process_section(
    ctx: &Ctx,
    shared: &Shared,
    i: usize,
    kind: Kind,
    name: &str,
    rng: &mut Rng,
) -> bool {
    let mut cmd = match kind {
        Kind::Cli => {
            let mut c = ctx.podsignal(&shared.dir);
            c.args(["lock", LOCK, "--timeout", "30s", "--grace", "2s", "--"]);
            c
        }
        Kind::AgentCli => {
            let mut c = ctx.podsignal(&shared.dir);
            shared.gate.env(&mut c, shared.gate.generation());
            c.args(["--agent", &format!("http://127.0.0.1:{}", shared.port)]);
            c.args(["lock", LOCK, "--timeout", "30s", "--grace", "2s", "--"]);
            c
        }
        _ => {
            let mut c = ctx.command("flock");
            c.arg(lock_file(&shared.dir));
            c
        }
    };
    cmd.args(["sh", "-c", ledger::SECTION])
        .env("W", name)
        .env("LEDGER", &shared.ledger)
        .env("WORK", (1 + rng.below(4)).to_string())
        .env("PAUSE", format!("0.0{}", 1 + rng.below(3)))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // flock(1) does not promise to stop what its command left running: no late writer there.
    if kind != Kind::Flock && rng.percent(30) {
        cmd.env("LATE", "0.03");
    }
    let Ok(mut proc) = Proc::spawn(&mut cmd, name) else {
        return false;
    };
    lock(&shared.running).insert(i, proc.pid());
    let status = proc.wait_for(Duration::from_secs(90));
    lock(&shared.running).remove(&i);
    if status.is_some_and(|s| s.code() == Some(ledger::REFUSED)) {
        shared.unused.fetch_add(1, Ordering::Relaxed);
    }
    status.is_some_and(|s| s.success())
}

/// The file `podsignal lock` flocks for [`LOCK`] (as `flock(1)` workers do).
fn lock_file(dir: &Path) -> PathBuf {
    dir.join("locks").join(format!("{LOCK}.lock"))
}

/// A hold through the agent: the harness writes the section while the stream is open; a
/// crash drops the connection mid-section.
fn hold_section(shared: &Shared, i: usize, name: &str, rng: &mut Rng) -> bool {
    let asked_in = shared.gate.generation();
    let path = format!("/v1/locks/{LOCK}/hold?wait=30s");
    let Ok(mut stream) = agent::send(shared.port, "POST", &path, None, Duration::from_secs(60))
    else {
        return false;
    };
    if stream.status != 200 {
        return false;
    }
    let Some(token) = stream
        .line()
        .ok()
        .flatten()
        .and_then(|l| serde_json::from_str::<serde_json::Value>(&l).ok())
        .and_then(|v| v["token"].as_u64())
    else {
        return false;
    };
    if enter(shared, asked_in, name, token) {
        write_section(shared, i, name, token, rng);
    }
    drop(stream);
    true
}

/// A lease through the agent; a crash abandons it (it expires after its ttl).
fn lease_section(shared: &Shared, i: usize, name: &str, rng: &mut Rng) -> bool {
    let asked_in = shared.gate.generation();
    let path = format!("/v1/locks/{LOCK}?ttl=3s&wait=30s");
    let Ok((200, body)) = agent::request(shared.port, "POST", &path, None) else {
        return false;
    };
    let Ok(grant) = serde_json::from_str::<serde_json::Value>(&body) else {
        return false;
    };
    let (Some(token), Some(lease)) = (grant["token"].as_u64(), grant["lease"].as_str()) else {
        return false;
    };
    // Released when left unused too: the grant may be the new agent's.
    if !enter(shared, asked_in, name, token) || write_section(shared, i, name, token, rng) {
        let path = format!("/v1/locks/{LOCK}?lease={lease}");
        return agent::request(shared.port, "DELETE", &path, None).is_ok_and(|(s, _)| s == 204);
    }
    true
}

/// Writes `enter` through the gate for a grant asked for in generation `asked_in`; false
/// (counted) if the agent was killed since.
fn enter(shared: &Shared, asked_in: u64, name: &str, token: u64) -> bool {
    let entered = shared.gate.enter(&shared.ledger, asked_in, name, token);
    if !entered {
        shared.unused.fetch_add(1, Ordering::Relaxed);
    }
    entered
}

/// After [`enter`]: work lines, exit; stops without another word when told to crash. True
/// if it completed.
fn write_section(shared: &Shared, i: usize, name: &str, token: u64, rng: &mut Rng) -> bool {
    let crashed = || shared.crash[i].load(Ordering::SeqCst);
    for _ in 0..1 + rng.below(4) {
        std::thread::sleep(Duration::from_millis(10 + rng.below(20)));
        if crashed() {
            return false;
        }
        let _ = ledger::append(&shared.ledger, name, Some(token), "work");
    }
    if crashed() {
        return false;
    }
    let _ = ledger::append(&shared.ledger, name, Some(token), "exit");
    true
}

/// Kills at random until the deadline; returns what it killed, by kind.
fn killer(ctx: &Ctx, shared: &Shared, agent: &mut Agent) -> Vec<(&'static str, u64)> {
    let mut rng = ctx.rng();
    let mut kills: HashMap<&'static str, u64> = HashMap::new();
    while Instant::now() < shared.deadline {
        std::thread::sleep(rng.between(Duration::from_millis(80), Duration::from_millis(300)));
        if rng.percent(6) {
            match shared.gate.kill_agent(&shared.ledger, agent.proc.pid()) {
                Ok(true) => *kills.entry("agent").or_default() += 1,
                Ok(false) => eprintln!("chaos: mutex: the agent survived kill -9 for 5 s"),
                Err(e) => {
                    eprintln!("chaos: mutex: the gate: {e}");
                    continue;
                }
            }
            if let Err(e) = agent.restart_after_kill9(ctx) {
                eprintln!("chaos: mutex: {e:#}");
            }
            continue;
        }
        let i = rng.below(WORKERS.len() as u64) as usize;
        match WORKERS[i] {
            Kind::Hold | Kind::Lease if rng.percent(30) => {
                shared.crash[i].store(true, Ordering::SeqCst);
                *kills.entry("HTTP client").or_default() += 1;
            }
            _ => {
                // Mostly the holder's tree (the one with processes under its wrapper).
                let running: Vec<u32> = lock(&shared.running).values().copied().collect();
                let holding: Vec<u32> = running
                    .iter()
                    .copied()
                    .filter(|p| !children(*p).is_empty())
                    .collect();
                let pool = if !holding.is_empty() && rng.percent(80) {
                    holding
                } else {
                    running
                };
                if pool.is_empty() {
                    continue;
                }
                let root = *rng.pick(&pool);
                let mut tree = vec![root];
                tree.extend(descendants(root));
                let pid = *rng.pick(&tree);
                let what = role(pid, root);
                if kill9(pid) {
                    *kills.entry(what).or_default() += 1;
                }
            }
        }
    }
    let mut out: Vec<_> = kills.into_iter().collect();
    out.sort();
    out
}

/// What `pid` is in a worker's tree rooted at `root`, by its command.
fn role(pid: u32, root: u32) -> &'static str {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    if pid == root {
        "wrapper"
    } else if cmdline.contains(" guard") {
        "guard"
    } else if cmdline.starts_with("sleep") {
        "grandchild"
    } else {
        "holder"
    }
}

/// Every descendant of `root`, parents before children.
fn descendants(root: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut queue = vec![root];
    while let Some(p) = queue.pop() {
        for c in children(p) {
            out.push(c);
            queue.push(c);
        }
    }
    out
}
