//! Leader election under `kill -9`: eight candidates campaign for one leadership (`podsignal
//! leader` on the volume, `podsignal --agent URL leader`, HTTP holds on
//! `/v1/leaders/NAME/hold`). The acting leader writes `enter`, then `work` every 20 ms until a
//! killer `kill -9`s its wrapper, its command or the command's child (or drops its HTTP
//! connection), or the agent. The ledger must show one leader acting at a time with strictly
//! increasing tokens ([`crate::ledger`]), and each kill be followed by the next leader's
//! `enter` within [`TAKEOVER_LIMIT`] (timed by following the ledger). Leaders through the
//! agent enter through a [`Gate`]: a term granted by an agent killed since is left unused.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read as _;
use std::net::{Shutdown, TcpStream};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use crate::agent::{Agent, RawHold};
use crate::harness::{Ctx, Proc, Report, Rng, children, eventually, kill9, lock, ms, percentiles};
use crate::ledger::{self, Gate};

/// The campaign every candidate runs for.
const NAME: &str = "chief";

/// A takeover slower than this after the acting leader was killed is a violation.
const TAKEOVER_LIMIT: Duration = Duration::from_secs(10);

/// The candidates, by how they campaign: `cli` runs `podsignal leader NAME -- sh -c LEADING`
/// on the volume, `agentcli` the same with `--agent URL`, `hold` is a thread holding
/// `POST /v1/leaders/NAME/hold` open and writing the ledger itself.
const CANDIDATES: [&str; 8] = [
    "cli", "cli", "cli", "agentcli", "agentcli", "agentcli", "hold", "hold",
];

/// What a leader runs after [`ledger::ENTER`]: a child writing `work` every 20 ms, forever.
/// Any kill in the tree ends the term (the command ends with its child; the wrapper stops the
/// child).
const LEADING: &str = r#"
( while :; do echo "$W $T work" >>"$LEDGER"; sleep 0.02 || exit 1; done ) &
wait $!
"#;

/// How the killer reaches a term in progress.
enum Target {
    /// The `podsignal leader` wrapper's pid.
    Proc(u32),
    /// A copy of an HTTP hold's socket (shutting it down drops the connection).
    Http(TcpStream),
}

/// What the candidates and the killer share.
struct Shared {
    /// The shared directory.
    dir: PathBuf,
    /// The ledger file.
    ledger: PathBuf,
    /// The gate of leaders through the agent.
    gate: Gate,
    /// The agent's URL.
    url: String,
    /// The agent's port.
    port: u16,
    /// Set by the killer when it is done: candidates stop.
    stop: AtomicBool,
    /// Worker name -> how to kill it, for every term or campaign in progress.
    current: Mutex<BTreeMap<String, Target>>,
    /// Every `enter` line of the ledger: its offset, when it appeared, whose it is.
    enters: Mutex<Vec<(u64, Instant, String)>>,
    /// Terms granted by an agent killed since they were asked for, left unused.
    unused: AtomicU64,
}

impl Shared {
    /// The worker of the last `enter` line.
    fn acting(&self) -> Option<String> {
        lock(&self.enters).last().map(|e| e.2.clone())
    }

    /// When the first `enter` at or after `offset` appeared.
    fn entered_after(&self, offset: u64) -> Option<Instant> {
        let enters = lock(&self.enters);
        enters.iter().find(|e| e.0 >= offset).map(|e| e.1)
    }
}

/// Runs the scenario.
pub fn run(ctx: &Ctx) -> Result<Report> {
    let dir = ctx.path("shared");
    let ledger_path = ctx.path("ledger");
    File::create(&ledger_path).context("creating the ledger")?;
    let mut agent = Agent::start(ctx, &dir, &["--max-wait", "30s"])?;
    let shared = Shared {
        dir: dir.clone(),
        ledger: ledger_path.clone(),
        gate: Gate::create(ctx.path("gate")).context("creating the gate")?,
        url: agent.url(),
        port: agent.port,
        stop: AtomicBool::default(),
        current: Mutex::default(),
        enters: Mutex::default(),
        unused: AtomicU64::default(),
    };
    let mut report = Report::default();
    let (kills, mut takeovers) = std::thread::scope(|s| {
        s.spawn(|| follow(&shared));
        for (i, kind) in CANDIDATES.iter().enumerate() {
            let shared = &shared;
            s.spawn(move || match *kind {
                "hold" => hold_terms(shared, i),
                _ => process_terms(ctx, shared, i, kind),
            });
        }
        let out = killer(ctx, &shared, &mut agent, &mut report);
        shared.stop.store(true, Ordering::SeqCst);
        out
    });
    let text = std::fs::read_to_string(&ledger_path).context("reading the ledger")?;
    let verdict = ledger::check(&text, &|w: &str| !w.starts_with("cli"));
    report.count("terms", verdict.entered);
    let kills: Vec<String> = kills.iter().map(|(k, n)| format!("{k} {n}")).collect();
    report.count("kill -9", kills.join(" / "));
    if let Some((p50, p99, max)) = percentiles(&mut takeovers) {
        report.count("takeovers", takeovers.len());
        let (p50, p99, max) = (ms(p50), ms(p99), ms(max));
        report.count("takeover", format!("p50 {p50} / p99 {p99} / max {max}"));
    }
    report.count("stale writes fenced", verdict.fenced);
    let unused = shared.unused.load(Ordering::Relaxed);
    report.count("grants of a killed agent left unused", unused);
    let last = verdict.last_token.map_or("-".to_owned(), |t| t.to_string());
    report.count("last token", last);
    let by_kind = ["cli", "agentcli", "hold"].map(|k| {
        let n = lock(&shared.enters)
            .iter()
            .filter(|e| e.2.starts_with(k))
            .count();
        format!("{k} {n}")
    });
    report.count("terms by kind", by_kind.join(" / "));
    for v in verdict.violations {
        report.violation(v);
    }
    report.check(verdict.entered >= 10, || {
        format!("only {} terms in the whole run", verdict.entered)
    });
    let mut show = ctx.podsignal(&dir);
    show.args(["leader", "show", NAME]).stdout(Stdio::null());
    let free = eventually(Duration::from_secs(10), || {
        show.status().is_ok_and(|s| s.code() == Some(1))
    });
    report.check(free, || {
        "someone still led after every candidate stopped".into()
    });
    let stderr = std::fs::read_to_string(ctx.path("stderr")).unwrap_or_default();
    if let Some(line) = stderr.lines().find(|l| l.contains("panicked")) {
        report.violation(format!("a candidate panicked: {line}"));
    }
    Ok(report)
}

/// Follows the ledger every 5 ms until the candidates stop, noting each `enter` line.
fn follow(shared: &Shared) {
    let Ok(mut file) = File::open(&shared.ledger) else {
        return;
    };
    let (mut pending, mut offset) = (Vec::new(), 0u64);
    while !shared.stop.load(Ordering::SeqCst) && file.read_to_end(&mut pending).is_ok() {
        let now = Instant::now();
        while let Some(nl) = pending.iter().position(|b| *b == b'\n') {
            let line = String::from_utf8_lossy(&pending[..nl]).into_owned();
            if let Some(l) = line.strip_suffix(" enter") {
                let worker = l.split(' ').next().unwrap_or_default().to_owned();
                lock(&shared.enters).push((offset, now, worker));
            }
            offset += nl as u64 + 1;
            pending.drain(..=nl);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A process candidate: campaigns one after another until the killer is done.
fn process_terms(ctx: &Ctx, shared: &Shared, i: usize, kind: &str) {
    let mut attempt = 0;
    let script = [ledger::ENTER, LEADING].concat();
    while !shared.stop.load(Ordering::SeqCst) {
        attempt += 1;
        let name = format!("{kind}{i}.{attempt}");
        let mut cmd = ctx.podsignal(&shared.dir);
        if kind == "agentcli" {
            shared.gate.env(&mut cmd, shared.gate.generation());
            cmd.args(["--agent", &shared.url]);
        }
        cmd.args(["leader", NAME, "--grace", "1s", "--", "sh", "-c", &script])
            .env("W", &name)
            .env("LEDGER", &shared.ledger)
            .stdout(Stdio::null());
        if let Ok(f) = File::options()
            .append(true)
            .create(true)
            .open(ctx.path("stderr"))
        {
            cmd.stderr(f);
        }
        let Ok(mut proc) = Proc::spawn(&mut cmd, &name) else {
            break;
        };
        let target = Target::Proc(proc.pid());
        lock(&shared.current).insert(name.clone(), target);
        let mut status = None;
        while status.is_none() && !shared.stop.load(Ordering::SeqCst) {
            status = proc.wait_for(Duration::from_millis(50));
        }
        lock(&shared.current).remove(&name);
        if status.is_some_and(|s| s.code() == Some(ledger::REFUSED)) {
            shared.unused.fetch_add(1, Ordering::Relaxed);
        }
        // Dropping `proc` kills a campaign still under way at the end.
        drop(proc);
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An HTTP candidate: holds through the agent and writes the ledger while the hold lasts.
fn hold_terms(shared: &Shared, i: usize) {
    let mut attempt = 0;
    let path = format!("/v1/leaders/{NAME}/hold?wait=2s");
    while !shared.stop.load(Ordering::SeqCst) {
        attempt += 1;
        let name = format!("hold{i}.{attempt}");
        let asked_in = shared.gate.generation();
        let hold = RawHold::open(shared.port, &path, Duration::from_secs(10));
        let Some((copy, mut hold)) = hold.ok().and_then(|h| Some((h.socket()?, h))) else {
            // The agent is down, or nobody resigned within the wait: again.
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        if !shared
            .gate
            .enter(&shared.ledger, asked_in, &name, hold.token)
        {
            shared.unused.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        lock(&shared.current).insert(name.clone(), Target::Http(copy));
        loop {
            std::thread::sleep(Duration::from_millis(20));
            // Killed (taken out of `current` before the kill: the check and the write hold its
            // lock), lost with the agent, or the end: not another word.
            let current = lock(&shared.current);
            if !current.contains_key(&name) || shared.stop.load(Ordering::SeqCst) || hold.lost() {
                break;
            }
            let _ = ledger::append(&shared.ledger, &name, Some(hold.token), "work");
        }
        lock(&shared.current).remove(&name);
    }
}

/// Kills the acting leader (or the agent) until the budget is spent, waiting for each
/// takeover; returns the kills by kind and the takeover times.
fn killer(
    ctx: &Ctx,
    shared: &Shared,
    agent: &mut Agent,
    report: &mut Report,
) -> (BTreeMap<&'static str, u64>, Vec<Duration>) {
    let mut rng = ctx.rng();
    let mut kills = BTreeMap::new();
    let mut takeovers = Vec::new();
    let deadline = Instant::now() + ctx.budget();
    while Instant::now() < deadline {
        std::thread::sleep(rng.between(Duration::from_millis(40), Duration::from_millis(200)));
        let Some(acting) = shared.acting() else {
            continue;
        };
        let offset = std::fs::metadata(&shared.ledger).map_or(0, |m| m.len());
        let Some((what, killed_at)) = kill_one(ctx, shared, agent, &acting, &mut rng) else {
            continue;
        };
        *kills.entry(what).or_default() += 1;
        if what == "agent" && acting.starts_with("cli") {
            continue; // A leader on the volume does not depend on the agent.
        }
        eventually(TAKEOVER_LIMIT, || shared.entered_after(offset).is_some());
        match shared.entered_after(offset) {
            Some(at) => takeovers.push(at.saturating_duration_since(killed_at)),
            None => report.violation(format!(
                "no new leader within {TAKEOVER_LIMIT:?} after kill -9 of the {what} of {acting}"
            )),
        }
    }
    (kills, takeovers)
}

/// Kills one part of the acting leader, or the agent; returns what, and when.
fn kill_one(
    ctx: &Ctx,
    shared: &Shared,
    agent: &mut Agent,
    acting: &str,
    rng: &mut Rng,
) -> Option<(&'static str, Instant)> {
    if rng.percent(8) {
        let at = Instant::now();
        match shared.gate.kill_agent(&shared.ledger, agent.proc.pid()) {
            Ok(true) => {}
            Ok(false) => eprintln!("chaos: leader: the agent survived kill -9 for 5 s"),
            Err(e) => {
                eprintln!("chaos: leader: the gate: {e}");
                return None;
            }
        }
        if let Err(e) = agent.restart_after_kill9(ctx) {
            eprintln!("chaos: leader: {e:#}");
        }
        return Some(("agent", at));
    }
    let target = lock(&shared.current).remove(acting)?;
    let at = Instant::now();
    match target {
        Target::Http(socket) => {
            let _ = socket.shutdown(Shutdown::Both);
            Some(("HTTP holder", at))
        }
        Target::Proc(root) => {
            let (pid, what) = pick_in_tree(root, rng);
            kill9(pid).then_some((what, at))
        }
    }
}

/// A process of the leader's tree rooted at its wrapper, at random: the wrapper, its command
/// (`sh`), or the command's child (the loop); never the guard (killing it ends nothing) nor
/// a short-lived `sleep` (it may be gone before the signal lands).
fn pick_in_tree(root: u32, rng: &mut Rng) -> (u32, &'static str) {
    let sh =
        |p: &u32| std::fs::read(format!("/proc/{p}/cmdline")).is_ok_and(|c| c.starts_with(b"sh\0"));
    let mut pool = vec![(root, "wrapper")];
    for c in children(root).into_iter().filter(sh) {
        pool.push((c, "command"));
        for g in children(c).into_iter().filter(sh) {
            pool.push((g, "grandchild"));
        }
    }
    *rng.pick(&pool)
}
