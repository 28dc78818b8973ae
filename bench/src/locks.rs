//! Lock benchmarks with real processes: hand-off (the holder releases) and holder death
//! (SIGKILL), the waiter in another process; floor: raw flock; the library; the CLI next to
//! `flock(1)`. The machinery (long-lived waiters, rounds, rows) is [`crate::wake`]'s.

use crate::child::{HolderMode, WaiterMode, lock_file, now_ns};
use crate::report::Report;
use crate::wake::{
    Jitter, Trials, Waiter, arm, blocked_on_lock, latency_row, locked_out, poll_until,
};
use anyhow::{Context, Result, bail};
use podsignal_client::{Coordinator, Volume, VolumeOptions};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Lock hand-off (the holder releases) and holder death (SIGKILL), waiter in another
/// process.
pub fn locks(rt: &tokio::runtime::Runtime, podsignal: &Path, trials: Trials) -> Result<Report> {
    let mut report = Report::new("locks");
    use rustix::fs::{FlockOperation, flock};

    // Hand-off, floor: raw flock here, raw flock in the waiter.
    let raw = tempfile::tempdir()?;
    let mut w = Waiter::spawn(WaiterMode::Flock, raw.path(), None)?;
    let mut jitter = Jitter::new();
    let mut handoff_floor = Vec::new();
    for i in 0..trials.fast {
        let file = lock_file(raw.path(), &format!("l{i}"))?;
        flock(&file, FlockOperation::LockExclusive)?;
        w.go(i)?;
        arm(&mut jitter);
        if !poll_until(Duration::from_secs(2), || locked_out(&w)) {
            bail!("the raw flock waiter did not block");
        }
        let t0 = now_ns();
        flock(&file, FlockOperation::Unlock)?;
        handoff_floor.push(w.woken_at()? as f64 / 1e6 - t0 as f64 / 1e6);
    }
    drop(w);

    // Hand-off, library: on this file system (the directory users get by default, disk
    // behind it), and on tmpfs (`emptyDir: {medium: Memory}`), where the fsync of the fencing
    // counter costs nothing: what is left is the protocol's own work.
    let dir = tempfile::tempdir()?;
    let handoff_lib = library_handoff(rt, dir.path(), trials.fast, &mut jitter)?;
    let shm = Path::new("/dev/shm");
    let handoff_tmpfs = if shm.is_dir() {
        let d = tempfile::tempdir_in(shm)?;
        library_handoff(rt, d.path(), trials.fast, &mut jitter)?
    } else {
        Vec::new()
    };

    // Hand-off, CLI: the holder runs `sh -c 'echo held; read x'`; closing its stdin ends it.
    let mut handoff_cli = Vec::new();
    let mut handoff_flock1 = Vec::new();
    let mut death_cli_holder = Vec::new();
    let mut death_cli_group = Vec::new();
    let mut death_flock1_group = Vec::new();
    for i in 0..trials.process {
        let name = format!("c{i}");
        let ps = |args: &[&str]| {
            let mut c = Command::new(podsignal);
            c.arg("--dir").arg(dir.path()).args(args);
            c
        };
        let holder = ps(&["lock", &name, "--", "sh", "-c", "echo held; read x"]);
        let waiter = ps(&["lock", &name, "--", "true"]);
        handoff_cli.push(cli_handoff(holder, waiter, End::Release)?);
        let holder = ps(&[
            "lock",
            &format!("d{i}"),
            "--",
            "sh",
            "-c",
            "echo held; read x",
        ]);
        let waiter = ps(&["lock", &format!("d{i}"), "--", "true"]);
        death_cli_holder.push(cli_handoff(holder, waiter, End::KillHolder)?);
        let holder = ps(&[
            "lock",
            &format!("g{i}"),
            "--",
            "sh",
            "-c",
            "echo held; read x",
        ]);
        let waiter = ps(&["lock", &format!("g{i}"), "--", "true"]);
        death_cli_group.push(cli_handoff(holder, waiter, End::KillGroup)?);
        let file = raw.path().join(format!("f{i}"));
        let mut holder = Command::new("flock");
        holder.arg(&file).args(["sh", "-c", "echo held; read x"]);
        let mut waiter = Command::new("flock");
        waiter.arg(&file).arg("true");
        handoff_flock1.push(cli_handoff(holder, waiter, End::Release)?);
        let file = raw.path().join(format!("g{i}"));
        let mut holder = Command::new("flock");
        holder.arg(&file).args(["sh", "-c", "echo held; read x"]);
        let mut waiter = Command::new("flock");
        waiter.arg(&file).arg("true");
        death_flock1_group.push(cli_handoff(holder, waiter, End::KillGroup)?);
    }

    // Holder death: a holder process is SIGKILLed; the waiter takes the lock.
    let mut death = [Vec::new(), Vec::new()];
    for (k, (hmode, wmode, d)) in [
        (HolderMode::Flock, WaiterMode::Flock, raw.path()),
        (HolderMode::Lib, WaiterMode::LibLock, dir.path()),
    ]
    .into_iter()
    .enumerate()
    {
        let mut w = Waiter::spawn(wmode, d, None)?;
        for i in 0..trials.process {
            // The waiter locks "l" + its line: the holder takes "lk{i}", the waiter gets "k{i}".
            let name = format!("lk{i}");
            let mode = clap::ValueEnum::to_possible_value(&hmode)
                .context("mode")?
                .get_name()
                .to_string();
            let mut holder = Command::new(std::env::current_exe()?)
                .args(["holder", "--mode", &mode, "--dir"])
                .arg(d)
                .args(["--name", &name])
                .stdout(Stdio::piped())
                .spawn()?;
            let mut line = String::new();
            BufReader::new(holder.stdout.take().context("holder stdout")?).read_line(&mut line)?;
            if line.trim() != "held" {
                bail!("holder: {line:?}");
            }
            w.go(format!("k{i}"))?;
            arm(&mut jitter);
            if !poll_until(Duration::from_secs(2), || locked_out(&w)) {
                bail!("the waiter did not block behind the holder");
            }
            let t0 = now_ns();
            holder.kill()?;
            death[k].push(w.woken_at()? as f64 / 1e6 - t0 as f64 / 1e6);
            holder.wait()?;
        }
    }

    latency_row(
        &mut report,
        "lock-handoff",
        "lock hand-off: holder releases → waiter in another process holds",
        Some(("floor: raw flock", &handoff_floor)),
        &[
            (
                "library (LockGuard dropped → Volume::lock)",
                &handoff_lib[..],
            ),
            (
                "library, directory on tmpfs (emptyDir medium: Memory)",
                &handoff_tmpfs[..],
            ),
        ][..if handoff_tmpfs.is_empty() { 1 } else { 2 }],
        &[],
    );
    latency_row(
        &mut report,
        "lock-handoff-cli",
        "lock hand-off, CLI: holder's command ends → waiter's command has run",
        None,
        &[("podsignal lock", &handoff_cli)],
        &[("flock(1)", &handoff_flock1)],
    );
    latency_row(
        &mut report,
        "lock-death",
        "lock holder death: kill -9 holder → waiter holds",
        Some(("floor: raw flock", &death[0])),
        &[("library", &death[1])],
        &[],
    );
    latency_row(
        &mut report,
        "lock-death-cli",
        "lock holder death, CLI: kill -9 → waiter's command has run",
        None,
        &[
            ("kill -9 the podsignal lock process group", &death_cli_group),
            (
                "kill -9 the podsignal lock process only (its command dies by PDEATHSIG)",
                &death_cli_holder,
            ),
        ],
        &[("kill -9 the flock(1) process group", &death_flock1_group)],
    );
    Ok(report)
}

/// Library hand-offs in `dir`: this process holds `l{i}`, a waiter process blocks on it, the
/// guard is dropped; the time until the waiter holds it.
fn library_handoff(
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    trials: usize,
    jitter: &mut Jitter,
) -> Result<Vec<f64>> {
    let volume = rt.block_on(Volume::open(dir, VolumeOptions::default()))?;
    let mut w = Waiter::spawn(WaiterMode::LibLock, dir, None)?;
    let mut out = Vec::new();
    for i in 0..trials {
        let guard = rt.block_on(volume.lock(&format!("l{i}").parse()?, None))?;
        w.go(i)?;
        arm(jitter);
        if !poll_until(Duration::from_secs(2), || locked_out(&w)) {
            bail!("the library lock waiter did not block in flock");
        }
        let t0 = now_ns();
        drop(guard);
        out.push(w.woken_at()? as f64 / 1e6 - t0 as f64 / 1e6);
    }
    Ok(out)
}

/// How a CLI holder stops holding.
#[derive(Clone, Copy)]
enum End {
    /// Its command ends (stdin closed).
    Release,
    /// `kill -9` of the holder process only.
    KillHolder,
    /// `kill -9` of the holder's whole process group (the container dies).
    KillGroup,
}

/// CLI hand-off: start the holder (its own process group), wait for its `held`, start the
/// waiter, wait until it is blocked, end the holder as `end` says and time until the waiter
/// exits.
fn cli_handoff(mut holder: Command, mut waiter: Command, end: End) -> Result<f64> {
    use std::os::unix::process::CommandExt;
    let mut h = holder
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(h.stdout.take().context("holder stdout")?).read_line(&mut line)?;
    if line.trim() != "held" {
        bail!("{holder:?}: {line:?}");
    }
    let mut w = waiter.stdout(Stdio::null()).spawn()?;
    if !poll_until(Duration::from_secs(5), || blocked_on_lock(w.id())) {
        let _ = (h.kill(), w.kill());
        bail!("{waiter:?} did not block on the lock within 5 s");
    }
    let stdin = h.stdin.take();
    let pid = rustix::process::Pid::from_raw(h.id() as i32).context("holder pid")?;
    let t0 = Instant::now();
    match end {
        End::Release => drop(stdin),
        End::KillHolder => rustix::process::kill_process(pid, rustix::process::Signal::KILL)?,
        End::KillGroup => rustix::process::kill_process_group(pid, rustix::process::Signal::KILL)?,
    }
    let status = w.wait()?;
    let elapsed = t0.elapsed();
    h.wait()?;
    if !status.success() {
        bail!("{waiter:?}: {status}");
    }
    Ok(elapsed.as_secs_f64() * 1000.0)
}
