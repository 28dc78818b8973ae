//! What the fault cases share: guards that undo a mount or a sysctl when dropped, bounded
//! commands and the judgement of their errors, and looks at the shared directory.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use crate::harness::{Ctx, Proc, Report};

/// A tmpfs mounted under the scratch directory; unmounted when dropped (lazily if busy).
pub(super) struct Tmpfs {
    /// The mount point.
    pub(super) path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs with `options` at `name` in the scratch directory.
    pub(super) fn mount(ctx: &Ctx, name: &str, options: &str) -> Result<Tmpfs> {
        let path = ctx.path(name);
        std::fs::create_dir_all(&path)?;
        let mut cmd = ctx.command("mount");
        cmd.args(["-t", "tmpfs", "-o", options, "podsignal-chaos"])
            .arg(&path);
        checked(&mut cmd, "mount")?;
        Ok(Tmpfs { path })
    }

    /// `mount -o OPTIONS` on it (`remount,ro`, `remount,rw`).
    pub(super) fn remount(&self, ctx: &Ctx, options: &str) -> Result<()> {
        let mut cmd = ctx.command("mount");
        cmd.args(["-o", options]).arg(&self.path);
        checked(&mut cmd, "remount")
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let umount = |lazy: bool| {
            let mut cmd = Command::new("umount");
            if lazy {
                cmd.arg("-l");
            }
            cmd.arg(&self.path)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if !umount(false) && !umount(true) {
            eprintln!("chaos: fs-faults: cannot unmount {}", self.path.display());
        }
    }
}

/// Runs a setup command to completion; Err unless it succeeds.
fn checked(cmd: &mut Command, what: &str) -> Result<()> {
    let ran = bounded(cmd, what, Duration::from_secs(10))?;
    if ran.code != Some(0) {
        bail!("{what} failed ({:?}): {}", ran.code, ran.err.trim());
    }
    Ok(())
}

/// A sysctl set for a while: the old value is written back when dropped.
pub(super) struct Sysctl {
    path: PathBuf,
    old: String,
}

impl Sysctl {
    /// Sets `name` (dotted, e.g. `fs.inotify.max_queued_events`) to `value`.
    pub(super) fn set(name: &str, value: &str) -> Result<Sysctl> {
        let path = Path::new("/proc/sys").join(name.replace('.', "/"));
        let old = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {name}"))?
            .trim()
            .to_owned();
        std::fs::write(&path, value).with_context(|| format!("setting {name}={value}"))?;
        Ok(Sysctl { path, old })
    }
}

impl Drop for Sysctl {
    fn drop(&mut self) {
        if let Err(e) = std::fs::write(&self.path, &self.old) {
            eprintln!(
                "chaos: fs-faults: CANNOT RESTORE {} to {}: {e}",
                self.path.display(),
                self.old
            );
        }
    }
}

/// How a bounded command ended.
#[derive(Debug)]
pub(in crate::scenarios) struct Ran {
    /// Its exit code; `None` if a signal ended it or it was killed at the limit.
    pub(in crate::scenarios) code: Option<i32>,
    /// Its standard output.
    pub(in crate::scenarios) out: String,
    /// Its standard error.
    pub(in crate::scenarios) err: String,
}

/// Runs `cmd` (its own process group) for at most `limit`, then kills its group.
pub(in crate::scenarios) fn bounded(cmd: &mut Command, what: &str, limit: Duration) -> Result<Ran> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut proc = Proc::spawn(cmd, what)?;
    let status = proc.wait_for(limit);
    let (stdout, stderr) = (proc.child.stdout.take(), proc.child.stderr.take());
    drop(proc); // kills it if still running, so the pipes end
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut s) = stdout {
        let _ = s.read_to_string(&mut out);
    }
    if let Some(mut s) = stderr {
        let _ = s.read_to_string(&mut err);
    }
    Ok(Ran {
        code: status.and_then(|s| s.code()),
        out,
        err,
    })
}

/// Judges a podsignal command that a fault may refuse: `Ok(true)` it succeeded, `Ok(false)`
/// it exited 1 with one line on stderr naming `names`, `Err` anything else (a panic, several
/// lines, a path not named, another code, a hang).
pub(in crate::scenarios) fn judge(ran: &Ran, names: &Path) -> Result<bool, String> {
    let lines: Vec<&str> = ran.err.lines().filter(|l| !l.trim().is_empty()).collect();
    let path = names.display().to_string();
    match ran.code {
        Some(0) => Ok(true),
        _ if ran.err.contains("panicked") => Err(format!("panicked: {:?}", ran.err)),
        Some(1) if lines.len() == 1 && lines[0].contains(&path) => Ok(false),
        code => Err(format!(
            "exit {code:?} with stderr {:?}: wanted exit 1 and one line naming {path}",
            ran.err
        )),
    }
}

/// `podsignal ARGS` on `dir`, within 10 s; its stdout, or Err unless it exits 0.
pub(super) fn run_ok(ctx: &Ctx, dir: &Path, args: &[&str]) -> Result<String> {
    let what = format!("podsignal {}", args.join(" "));
    let mut cmd = ctx.podsignal(dir);
    cmd.args(args);
    let ran = bounded(&mut cmd, &what, Duration::from_secs(10))?;
    if ran.code != Some(0) {
        bail!("`{what}` exited {:?}: {}", ran.code, ran.err.trim());
    }
    Ok(ran.out)
}

/// `podsignal wait NAME --rescan RESCAN --timeout 60s` on `dir`, its stderr in a file.
pub(super) fn waiter(ctx: &Ctx, dir: &Path, name: &str, rescan: &str) -> Result<(Proc, PathBuf)> {
    let log = ctx.path(format!("wait-{name}-{}.err", std::process::id()));
    let log = unique(log);
    let mut cmd = ctx.podsignal(dir);
    cmd.args(["wait", name, "--rescan", rescan, "--timeout", "60s"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?);
    Ok((Proc::spawn(&mut cmd, format!("wait {name}"))?, log))
}

/// `path`, or `path.N` for the first N that does not exist.
fn unique(path: PathBuf) -> PathBuf {
    let mut p = path.clone();
    let mut n = 0;
    while p.exists() {
        n += 1;
        p = PathBuf::from(format!("{}.{n}", path.display()));
    }
    p
}

/// How many inotify watches `pid` has (over all its inotify descriptors); `None` if it has
/// no inotify descriptor.
pub(in crate::scenarios) fn inotify_watches(pid: u32) -> Option<usize> {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    let mut found = None;
    for fd in fds.flatten() {
        let is_inotify = std::fs::read_link(fd.path())
            .is_ok_and(|l| l.to_string_lossy() == "anon_inode:inotify");
        if !is_inotify {
            continue;
        }
        let info = format!("/proc/{pid}/fdinfo/{}", fd.file_name().to_string_lossy());
        let wds = std::fs::read_to_string(info)
            .map(|s| s.lines().filter(|l| l.starts_with("inotify wd:")).count())
            .unwrap_or(0);
        found = Some(found.unwrap_or(0) + wds);
    }
    found
}

/// Every regular file under a directory but temporary ones, with its content, by relative
/// path.
pub(super) type Snapshot = BTreeMap<PathBuf, Vec<u8>>;

/// The files under `dir` now.
pub(super) fn snapshot(dir: &Path) -> Result<Snapshot> {
    let mut out = Snapshot::new();
    for path in files(dir) {
        if !is_debris(&path) {
            let rel = path.strip_prefix(dir)?.to_path_buf();
            out.insert(rel, std::fs::read(&path)?);
        }
    }
    Ok(out)
}

/// Every regular file under `dir` (symlinks not followed).
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => out.push(e.path()),
                _ => {}
            }
        }
    }
    out
}

/// A temporary file or a liveness file.
fn is_debris(path: &Path) -> bool {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    (name.starts_with('.') && name.ends_with(".tmp")) || name.ends_with(".live")
}

/// Temporary and liveness files under `dir`.
pub(super) fn debris(dir: &Path) -> Vec<PathBuf> {
    files(dir).into_iter().filter(|p| is_debris(p)).collect()
}

/// What is damaged under `dir` compared with `before`: a file gone, a record that does not
/// parse, a fencing counter gone back, an event log that is not the old one plus lines.
pub(super) fn damaged(dir: &Path, before: &Snapshot) -> Vec<String> {
    let mut out = Vec::new();
    for (rel, old) in before {
        let path = dir.join(rel);
        let Ok(new) = std::fs::read(&path) else {
            out.push(format!("{} is gone", path.display()));
            continue;
        };
        let name = rel.to_string_lossy();
        let ok = if name.ends_with(".json") {
            serde_json::from_slice::<serde_json::Value>(&new).is_ok_and(|v| v.is_object())
        } else if name.ends_with(".jsonl") {
            new.starts_with(old) && lines_parse(&new)
        } else if name.ends_with(".fence") {
            let num = |b: &[u8]| String::from_utf8_lossy(b).trim().parse::<u64>().ok();
            num(&new).is_some_and(|n| num(old).is_none_or(|o| n >= o))
        } else {
            true // lock files and events.lock: their content is not a record
        };
        if !ok {
            out.push(format!(
                "{} is damaged: {:?} (was {:?})",
                path.display(),
                String::from_utf8_lossy(&new),
                String::from_utf8_lossy(old)
            ));
        }
    }
    out
}

/// Every line of an event segment is a JSON object.
fn lines_parse(text: &[u8]) -> bool {
    text.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .all(|l| serde_json::from_slice::<serde_json::Value>(l).is_ok_and(|v| v.is_object()))
}

/// The `seq` of every event under `dir/events`, in file order.
pub(super) fn event_seqs(dir: &Path) -> Result<Vec<u64>> {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(dir.join("events"))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    segments.sort();
    let mut seqs = Vec::new();
    for s in segments {
        for line in std::fs::read_to_string(&s)?.lines() {
            let v: serde_json::Value = serde_json::from_str(line)
                .with_context(|| format!("a line of {}: {line:?}", s.display()))?;
            seqs.push(v["seq"].as_u64().unwrap_or(0));
        }
    }
    Ok(seqs)
}

/// Counts by label, in the order first added.
#[derive(Debug, Default)]
pub(in crate::scenarios) struct Tally(Vec<(String, u64)>);

impl Tally {
    /// Adds `n` to `what`.
    pub(in crate::scenarios) fn add(&mut self, what: &str, n: u64) {
        match self.0.iter_mut().find(|(w, _)| w == what) {
            Some((_, v)) => *v += n,
            None => self.0.push((what.to_owned(), n)),
        }
    }

    /// Moves every count into `report`.
    pub(in crate::scenarios) fn into_report(self, report: &mut Report) {
        for (what, n) in self.0 {
            report.count(&what, n);
        }
    }
}
