//! What every scenario shares: its context (the binaries, the size of the run, a seeded random
//! source, a scratch directory), its report (counts and violations), and real processes that
//! are tracked so that nothing a scenario starts outlives it unnoticed.

use std::ffi::OsStr;
use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

/// The environment variable every process a scenario starts inherits: how the harness finds
/// what is left of a scenario (`/proc/PID/environ`), whatever process group it moved to.
pub const MARKER: &str = "PODSIGNAL_CHAOS_RUN";

/// How long and how hard to run.
#[derive(Debug, Clone, Copy)]
pub enum Size {
    /// The CI size: every scenario in seconds, the whole run within 5 minutes on 2 cores.
    Quick,
    /// Time-driven scenarios run this many minutes each; counts grow with it.
    Minutes(u64),
}

/// One scenario's context.
pub struct Ctx {
    /// The `podsignal` binary under test.
    pub bin: PathBuf,
    /// This harness binary (for its helper subcommands, e.g. `ledger-append`).
    pub harness: PathBuf,
    /// The size of the run.
    pub size: Size,
    /// The seed of this scenario's random source (printed, so a run can be repeated).
    pub seed: u64,
    /// A scratch directory of this scenario's own, removed afterwards.
    pub work: PathBuf,
    /// The value of [`MARKER`] for this scenario.
    pub run_id: String,
}

impl Ctx {
    /// How long a time-driven scenario runs.
    pub fn budget(&self) -> Duration {
        match self.size {
            Size::Quick => Duration::from_secs(12),
            Size::Minutes(m) => Duration::from_secs(60 * m.max(1)),
        }
    }

    /// A count: `quick` in the quick run, `per_minute` × minutes in a long one.
    pub fn count(&self, quick: u64, per_minute: u64) -> u64 {
        match self.size {
            Size::Quick => quick,
            Size::Minutes(m) => per_minute.saturating_mul(m.max(1)).max(quick),
        }
    }

    /// True in the quick (CI) run.
    pub fn quick(&self) -> bool {
        matches!(self.size, Size::Quick)
    }

    /// A random source seeded for this scenario.
    pub fn rng(&self) -> Rng {
        Rng::new(self.seed)
    }

    /// A path in the scratch directory.
    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.work.join(rel)
    }

    /// `podsignal ARGS...` on the shared directory `dir`, marked as this scenario's, quiet.
    pub fn podsignal(&self, dir: &Path) -> Command {
        let mut c = self.command(&self.bin);
        c.env("PODSIGNAL_DIR", dir).env("PODSIGNAL_LOG", "warn");
        c
    }

    /// Any program, marked as this scenario's, with stdin closed.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new(program);
        c.env(MARKER, &self.run_id)
            .env("PODSIGNAL_CHAOS_HARNESS", &self.harness)
            .stdin(Stdio::null());
        c
    }

    /// Live processes carrying this scenario's marker (zombies excluded: they hold nothing).
    pub fn leftovers(&self) -> Vec<u32> {
        marked_processes(&self.run_id)
    }

    /// Kills every process still carrying this scenario's marker; returns how many there were.
    pub fn kill_leftovers(&self) -> usize {
        let mut killed = 0;
        for _ in 0..20 {
            let left = self.leftovers();
            if left.is_empty() {
                break;
            }
            killed = killed.max(left.len());
            for pid in left {
                kill9(pid);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        killed
    }
}

/// What a scenario found: counts worth printing, and every violation of what must hold.
#[derive(Debug, Default)]
pub struct Report {
    /// `(what, how many)`, in the order they were added.
    pub counts: Vec<(String, String)>,
    /// What did not hold, one line each. Empty: the scenario passed.
    pub violations: Vec<String>,
}

impl Report {
    /// Records a count (or any figure: a latency, a size).
    pub fn count(&mut self, what: &str, value: impl Display) {
        self.counts.push((what.to_owned(), value.to_string()));
    }

    /// Records a violation.
    pub fn violation(&mut self, what: impl Into<String>) {
        let what = what.into();
        eprintln!("chaos: VIOLATION: {what}");
        self.violations.push(what);
    }

    /// Records a violation unless `ok`.
    pub fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.violation(what());
        }
    }
}

/// A small, seeded, reproducible random source (xorshift64*): scenarios choose whom to kill
/// and when from it, so a seed printed with a failure replays the same choices.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A source from `seed` (0 is mapped to a fixed non-zero state).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1) ^ 0x9e37_79b9_7f4a_7c15)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// A duration between `lo` and `hi`.
    pub fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        let span = hi.saturating_sub(lo).as_micros() as u64;
        lo + Duration::from_micros(self.below(span + 1))
    }

    /// True with probability `percent`/100.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// One element of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// A child process that is killed (with its process group, when it leads one) when dropped.
pub struct Proc {
    /// The child.
    pub child: Child,
    /// What it is, for messages.
    pub what: String,
}

impl Proc {
    /// Spawns `cmd` as its own process group leader (so the group can be killed at once).
    pub fn spawn(cmd: &mut Command, what: impl Into<String>) -> Result<Proc> {
        use std::os::unix::process::CommandExt as _;
        let what = what.into();
        let child = cmd
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start {what}"))?;
        Ok(Proc { child, what })
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if it has exited (reaping it).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits up to `limit` for it to exit.
    pub fn wait_for(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let mut status = None;
        eventually(limit, || {
            status = self.exited();
            status.is_some()
        });
        status
    }

    /// SIGKILL to it alone (not its group): what a crash or the OOM killer does.
    pub fn kill9(&mut self) {
        kill9(self.pid());
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.exited().is_none() {
            if let Some(group) = pid(self.pid()) {
                let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn pid(p: u32) -> Option<rustix::process::Pid> {
    i32::try_from(p)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
}

/// Sends `sig` to `pid`; false if there is no such process.
pub fn signal(p: u32, sig: rustix::process::Signal) -> bool {
    p > 1 && pid(p).is_some_and(|p| rustix::process::kill_process(p, sig).is_ok())
}

/// SIGKILL to `pid`.
pub fn kill9(p: u32) -> bool {
    signal(p, rustix::process::Signal::KILL)
}

/// True while `pid` exists and is not a zombie.
pub fn alive(p: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|s| {
        // The state follows the command name, which is in parentheses and may hold spaces.
        s.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

/// The children of `pid` (direct ones), from `/proc/PID/task/*/children`.
pub fn children(p: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for t in tasks.flatten() {
        if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
            out.extend(s.split_whitespace().filter_map(|c| c.parse::<u32>().ok()));
        }
    }
    out
}

/// Every live process whose environment holds `MARKER=run_id`.
fn marked_processes(run_id: &str) -> Vec<u32> {
    let needle = format!("{MARKER}={run_id}");
    let me = std::process::id();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| *p != me && alive(*p))
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()))
        })
        .collect()
}

/// A value of `/proc/PID/status` in its unit (e.g. `VmRSS` in kB).
pub fn proc_status(p: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{p}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// How many descriptors `pid` has open.
pub fn fd_count(p: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{p}/fd")).ok()?.count())
}

/// Locks `m`, whether or not a thread panicked holding it.
pub fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Polls `f` every 10 ms until it returns true or `limit` passes.
pub fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Percentiles of `samples` (sorted in place): `(p50, p99, max)`.
pub fn percentiles(samples: &mut [Duration]) -> Option<(Duration, Duration, Duration)> {
    if samples.is_empty() {
        return None;
    }
    samples.sort();
    let at = |q: f64| {
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let i = ((samples.len() - 1) as f64 * q).round() as usize;
        samples[i]
    };
    Some((at(0.5), at(0.99), samples[samples.len() - 1]))
}

/// A duration as milliseconds with one decimal: `12.3ms`.
pub fn ms(d: Duration) -> String {
    format!("{:.1}ms", d.as_secs_f64() * 1000.0)
}

/// Total size and count of the files under `dir`, recursively (symlinks not followed).
pub fn tree_size(dir: &Path) -> (u64, u64) {
    let mut bytes = 0;
    let mut files = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(meta) = e.path().symlink_metadata() else {
                continue;
            };
            if meta.is_dir() {
                stack.push(e.path());
            } else {
                bytes += meta.len();
                files += 1;
            }
        }
    }
    (bytes, files)
}
