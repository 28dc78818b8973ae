//! `podsignal run` as a supervisor, as PID 1 of a pid namespace (`unshare --pid --fork
//! --mount-proc`) or as a plain process (a child subreaper); four cases, shuffled, with random
//! timings and options: **zombies** (orphans by the hundred: run reaps them; SIGTERM → 143 or
//! the command's TERM trap code within `--grace`), **ignores TERM** (SIGKILL at the end of
//! `--grace`, not before: 137, or 0 with `--exit-code on-stop-zero`), **kill -9** of run
//! (everything it started gone promptly) and **signalled** (the command killed by signal N →
//! 128+N, its exit code → that code, a signal to run that does not stop it reaches the
//! command). After each case nothing it started may be left running.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt as _;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use rustix::process::Signal;

use crate::harness::{Ctx, Proc, Report, Rng, alive, children, eventually, kill9, ms};
use crate::harness::{percentiles, signal};

/// Zombies of run seen at once beyond which its reaping is not keeping up: a factory makes 80
/// to 240 orphans in about a second; a reaper woken by SIGCHLD leaves a few (13 seen with 3
/// CPU hogs on 2 cores), one that does not reap lets them pile up by the hundred.
const ZOMBIE_BOUND: usize = 32;
/// How soon after `kill -9` of run all it started must be gone (the guard acts at once).
const GONE_WITHIN: Duration = Duration::from_secs(3);
/// What run may take beyond `--grace` to exit (stopping leftovers, exiting) on busy cores.
const SLACK: Duration = Duration::from_millis(1500);
/// Signals whose default action ends a shell, for the command to die of (not SIGINT: dash
/// catches it and waits for its foreground command before deciding).
const DEADLY: [i32; 10] = [1, 3, 6, 9, 10, 11, 12, 13, 14, 15];
/// Signals run forwards without stopping (not SIGTERM/SIGINT), with their `trap` names.
const FORWARDED: [(i32, &str); 4] = [(1, "HUP"), (10, "USR1"), (12, "USR2"), (14, "ALRM")];

/// A case: its name, how to run it (the `bool`: as PID 1), how many (quick, per minute).
type Case = (&'static str, fn(&mut Sup, bool) -> Result<()>, u64, u64);

/// The four cases.
const CASES: [Case; 4] = [
    ("zombies", |s, p| s.zombies(p), 6, 50),
    ("ignores TERM", |s, p| s.ignores_term(p), 5, 30),
    ("kill -9", |s, p| s.kill9(p), 14, 80),
    ("signalled", |s, p| s.signalled(p), 16, 100),
];

/// The report and what the cases found.
#[derive(Default)]
struct Tally {
    /// The report.
    report: Report,
    /// The case under way, for messages.
    what: String,
    /// Runs per case, and how many of them as PID 1.
    runs: BTreeMap<&'static str, (u64, u64)>,
    /// Orphans the factories made.
    orphans: u64,
    /// The most zombies of run seen at once.
    zombies_max: usize,
    /// run's exit codes, how often each.
    codes: BTreeMap<i32, u64>,
    /// SIGTERM to run's exit (zombies); exit past `--grace` (ignores TERM); `kill -9` of run
    /// until nothing it started is left.
    times: [Vec<Duration>; 3],
}

/// The scenario's state.
struct Sup<'a> {
    /// The context.
    ctx: &'a Ctx,
    /// The random source.
    rng: Rng,
    /// The report and what was found.
    t: Tally,
}

/// Runs the scenario.
pub fn run(ctx: &Ctx) -> Result<Report> {
    std::fs::create_dir_all(ctx.path("shared"))?;
    let ns = ["--pid", "--fork", "--mount-proc", "true"];
    let probe = ctx.command("unshare").args(ns).status();
    let ok = probe.as_ref().is_ok_and(|s| s.success());
    anyhow::ensure!(ok, "unshare {ns:?}: {probe:?} (needs root)");
    let mut s = Sup {
        ctx,
        rng: ctx.rng(),
        t: Tally::default(),
    };
    let mut cases: Vec<&Case> = Vec::new();
    for case in &CASES {
        let n = ctx.count(case.2, case.3) as usize;
        cases.extend(std::iter::repeat_n(case, n));
    }
    for i in (1..cases.len()).rev() {
        cases.swap(i, s.rng.below(i as u64 + 1) as usize);
    }
    for (name, f, _, _) in cases {
        let pid1 = s.rng.percent(50);
        let n = s.t.runs.entry(name).or_default();
        *n = (n.0 + 1, n.1 + u64::from(pid1));
        f(&mut s, pid1)?;
        if !eventually(Duration::from_secs(3), || ctx.leftovers().is_empty()) {
            let left = s.leftovers();
            s.fail(format!("left running: {left}"));
            ctx.kill_leftovers();
        }
    }
    Ok(s.finish())
}

impl Sup<'_> {
    /// Starts `[unshare ...] podsignal run ARGS -- sh -c SCRIPT`: the process started
    /// (`unshare` as PID 1, else run) and run's pid.
    fn start(&mut self, pid1: bool, args: &str, script: &str) -> Result<(Proc, u32)> {
        let dir = self.ctx.path("shared");
        let mut cmd = if pid1 {
            let mut c = self.ctx.command("unshare");
            c.args(["--pid", "--fork", "--mount-proc"]);
            c.arg(&self.ctx.bin).env("PODSIGNAL_DIR", &dir);
            c.env("PODSIGNAL_LOG", "warn");
            c
        } else {
            self.ctx.podsignal(&dir)
        };
        let log = self.ctx.path("termination-log");
        cmd.env("PODSIGNAL_TERMINATION_LOG", log).arg("run");
        cmd.args(args.split_whitespace())
            .args(["--", "sh", "-c", script]);
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        let mut proc = Proc::spawn(&mut cmd, "podsignal run")?;
        let mut pid = (!pid1).then(|| proc.pid());
        // A run whose command exits at once may be gone before it is seen: pid 0, which
        // `signal` never signals (nor needs to).
        eventually(Duration::from_secs(5), || {
            let mut c = children(proc.pid()).into_iter();
            pid = pid.or_else(|| c.find(|p| proc_file(*p, "comm") == "podsignal"));
            pid.is_some() || proc.exited().is_some()
        });
        let pid = pid.or_else(|| proc.exited().map(|_| 0));
        let pid = pid.context("unshare never started podsignal run")?;
        Ok((proc, pid))
    }

    /// A violation of the case under way.
    fn fail(&mut self, msg: String) {
        self.t.report.violation(format!("{}: {msg}", self.t.what));
    }

    /// A random duration between `lo` and `hi` milliseconds.
    fn ms(&mut self, lo: u64, hi: u64) -> Duration {
        let ms = Duration::from_millis;
        self.rng.between(ms(lo), ms(hi))
    }

    /// Waits for run's exit; records its code and checks it is `expected`.
    fn exit(&mut self, proc: &mut Proc, limit: Duration, expected: i32) -> bool {
        let Some(status) = proc.wait_for(limit) else {
            self.fail(format!("run still running {} later", ms(limit)));
            return false;
        };
        let code = status.code().unwrap_or(128 + status.signal().unwrap_or(0));
        *self.t.codes.entry(code).or_default() += 1;
        if code != expected {
            self.fail(format!("run exited {code}, expected {expected}"));
        }
        true
    }

    /// SIGTERM to run: it must exit with `code` within `grace` (plus [`SLACK`]); how long it
    /// took.
    fn term(&mut self, proc: &mut Proc, pid: u32, grace: Duration, code: i32) -> Option<Duration> {
        let t0 = Instant::now();
        signal(pid, Signal::TERM);
        if !self.exit(proc, grace + SLACK + Duration::from_secs(5), code) {
            return None;
        }
        let took = t0.elapsed();
        if took > grace + SLACK {
            self.fail(format!("run exited {} after SIGTERM", ms(took)));
        }
        Some(took)
    }

    /// (a) A zombie factory under run: its zombies are reaped; SIGTERM ends it within
    /// `--grace`, with 143 or the code of the command's TERM trap.
    fn zombies(&mut self, pid1: bool) -> Result<()> {
        let n = 40 + self.rng.below(81);
        let grace = self.ms(1000, 3000);
        let trapped = self.rng.percent(40).then(|| 1 + self.rng.below(100) as i32);
        let done = self
            .ctx
            .path(format!("factory-done-{}", self.rng.next_u64()));
        let (trap, tail) = match trapped {
            Some(c) => (format!("trap 'exit {c}' TERM; "), "sleep 1000 & wait"),
            None => (String::new(), "sleep 1000"),
        };
        let script = format!(
            "{trap}i=0; while [ $i -lt {n} ]; do (sleep 0.0$((i % 4)) &); (true &); i=$((i+1)); done; : > '{}'; {tail}",
            done.display()
        );
        self.t.what = format!("zombies (PID 1: {pid1}, {n} rounds, --grace {})", ms(grace));
        let args = format!("--grace {}ms", grace.as_millis());
        let (mut proc, pid) = self.start(pid1, &args, &script)?;
        // A quarter of the time SIGTERM comes while the factory still works.
        let early = self.rng.percent(25);
        let early = early.then(|| Instant::now() + self.ms(50, 400));
        let mut max = 0;
        eventually(Duration::from_secs(30), || {
            max = max.max(zombies_of(pid));
            let early = early.is_some_and(|e| Instant::now() >= e);
            early || done.exists() || proc.exited().is_some()
        });
        self.t.orphans += 2 * n;
        self.t.zombies_max = self.t.zombies_max.max(max);
        if max > ZOMBIE_BOUND {
            self.fail(format!("{max} zombies of run at once"));
        }
        if proc.exited().is_some() {
            self.fail("run ended before it was told to".into());
            return Ok(());
        }
        if done.exists() && !eventually(Duration::from_secs(2), || zombies_of(pid) == 0) {
            let left = zombies_of(pid);
            self.fail(format!(
                "{left} zombies of run 2 s after the factory stopped"
            ));
        }
        // Its signal handlers are installed once the command runs.
        eventually(Duration::from_secs(5), || cmd_child(pid).is_some());
        if let Some(took) = self.term(&mut proc, pid, grace, trapped.unwrap_or(128 + 15)) {
            self.t.times[0].push(took);
        }
        Ok(())
    }

    /// (b) A command ignoring SIGTERM, and its child too: SIGKILL at the end of `--grace`
    /// (not before), exit 137, or 0 with `--exit-code on-stop-zero`.
    fn ignores_term(&mut self, pid1: bool) -> Result<()> {
        let grace = self.ms(400, 1500);
        let mut args = format!("--grace {}ms", grace.as_millis());
        if self.rng.percent(50) {
            let t = self.ms(0, grace.as_millis() as u64).as_millis();
            args += &format!(" --stop-timeout {t}ms");
        }
        if self.rng.percent(40) {
            args += " --pgroup";
        }
        let zero = self.rng.percent(30);
        if zero {
            args += " --exit-code on-stop-zero";
        }
        self.t.what = format!("ignores TERM (PID 1: {pid1}, {args})");
        let (mut proc, pid) = self.start(pid1, &args, "trap '' TERM; sleep 1000 & sleep 1000")?;
        if !eventually(Duration::from_secs(5), || sleeps_under(pid) >= 2) {
            bail!("{}: the command never started its children", self.t.what);
        }
        if let Some(took) = self.term(&mut proc, pid, grace, if zero { 0 } else { 128 + 9 }) {
            self.t.times[1].push(took.saturating_sub(grace));
            if took < grace {
                self.fail(format!("exited {} after SIGTERM, before --grace", ms(took)));
            }
        }
        Ok(())
    }

    /// (c) `kill -9` of run with its command and grandchildren running: all gone promptly
    /// (PDEATHSIG, the guard; as PID 1 the kernel ends the namespace, `setsid` or not).
    fn kill9(&mut self, pid1: bool) -> Result<()> {
        let (escapee, sleeps) = if pid1 {
            ("setsid sleep 1000 & ", 4)
        } else {
            ("", 3)
        };
        let script = format!("sleep 1000 & (sleep 1000 &); {escapee}sleep 1000");
        self.t.what = format!("kill -9 of run (PID 1: {pid1})");
        let (mut proc, pid) = self.start(pid1, "", &script)?;
        if self.rng.percent(25) {
            // Any moment of its start, children half spawned.
            std::thread::sleep(self.ms(0, 30));
        } else {
            // The orphan among them is under run only if run adopted it (a subreaper).
            if !eventually(Duration::from_secs(5), || sleeps_under(pid) >= sleeps) {
                let n = sleeps_under(pid);
                self.fail(format!("{n} of {sleeps} sleeps under run"));
            }
            std::thread::sleep(self.ms(0, 100));
        }
        let t0 = Instant::now();
        kill9(pid);
        let gone = eventually(GONE_WITHIN, || self.ctx.leftovers().is_empty());
        self.t.times[2].push(t0.elapsed());
        if !gone {
            let left = self.leftovers();
            self.fail(format!("{} later still running: {left}", ms(GONE_WITHIN)));
        }
        proc.wait_for(Duration::from_secs(2));
        Ok(())
    }

    /// (d) The command killed by a signal (its own or from outside) → 128+N, or exiting with
    /// a code → that code; a signal to run that does not stop it reaches the command.
    fn signalled(&mut self, pid1: bool) -> Result<()> {
        let sig = *self.rng.pick(&DEADLY);
        let code = self.rng.below(126) as i32;
        let (fwd, fwd_name) = *self.rng.pick(&FORWARDED);
        let variant = self.rng.below(4);
        let (script, expected) = match variant {
            0 => (format!("ulimit -c 0; kill -{sig} $$"), 128 + sig),
            1 => ("ulimit -c 0; sleep 1000".to_owned(), 128 + sig),
            2 => (format!("exit {code}"), code),
            _ => (
                format!("trap 'exit {code}' {fwd_name}; sleep 1000 & wait"),
                code,
            ),
        };
        let to = ["itself", "it", "-", "run"][variant as usize];
        let sent = if variant == 3 { fwd } else { sig };
        self.t.what = format!("command {script:?} (PID 1: {pid1}, signal {sent} to {to})");
        let (mut proc, pid) = self.start(pid1, "", &script)?;
        if variant % 2 == 1 {
            // Its trap (if any) is set once its sleep runs.
            if !eventually(Duration::from_secs(5), || sleeps_under(pid) >= 1) {
                bail!("{}: the command never started", self.t.what);
            }
            let to = match variant {
                1 => cmd_child(pid).context("no command under run")?,
                _ => pid,
            };
            signal(to, Signal::from_named_raw(sent).context("a signal")?);
        }
        self.exit(&mut proc, Duration::from_secs(10), expected);
        Ok(())
    }

    /// This scenario's live processes, with their command lines.
    fn leftovers(&self) -> String {
        let left = self.ctx.leftovers().into_iter();
        let left: Vec<_> = left
            .map(|p| format!("{p} ({})", proc_file(p, "cmdline")))
            .collect();
        left.join(", ")
    }

    /// The report, with the counts.
    fn finish(self) -> Report {
        let mut t = self.t;
        for (name, (n, pid1)) in &t.runs {
            t.report
                .count(&format!("{name} runs (PID 1)"), format!("{n} ({pid1})"));
        }
        t.report.count("orphans made", t.orphans);
        t.report.count("zombies max", t.zombies_max);
        // 0 and 128+N one by one; the commands' own codes (random) together.
        let plain: u64 = t.codes.range(1..128).map(|(_, n)| n).sum();
        let codes = t.codes.range(..1).chain(t.codes.range(128..));
        let mut codes: Vec<_> = codes.map(|(c, n)| format!("{c}×{n}")).collect();
        codes.push(format!("1..127×{plain}"));
        t.report.count("exit codes", codes.join(" "));
        let names = ["SIGTERM→exit", "exit past --grace", "kill -9→all gone"];
        for (what, samples) in names.iter().zip(&mut t.times) {
            if let Some((p50, _, max)) = percentiles(samples) {
                let what = format!("{what} p50/max");
                t.report.count(&what, format!("{}/{}", ms(p50), ms(max)));
            }
        }
        t.report
    }
}

/// `/proc/PID/NAME` as text (NULs as spaces, trimmed); empty if gone.
fn proc_file(pid: u32, name: &str) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/{name}")).unwrap_or_default();
    let text = String::from_utf8_lossy(&raw).replace('\0', " ");
    text.trim().to_owned()
}

/// How many children of `pid` are zombies.
fn zombies_of(pid: u32) -> usize {
    let zombie = |c: &&u32| {
        let stat = proc_file(**c, "stat");
        let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
        state.is_some_and(|s| s.starts_with('Z'))
    };
    children(pid).iter().filter(zombie).count()
}

/// run's command (a shell): its live child named `sh` (the guard is `exe`).
fn cmd_child(run: u32) -> Option<u32> {
    let mut c = children(run).into_iter();
    c.find(|c| alive(*c) && proc_file(*c, "comm") == "sh")
}

/// How many live `sleep` processes are under `root`.
fn sleeps_under(root: u32) -> usize {
    let sleep = |c: u32| usize::from(alive(c) && proc_file(c, "comm") == "sleep");
    children(root)
        .into_iter()
        .map(|c| sleep(c) + sleeps_under(c))
        .sum()
}
