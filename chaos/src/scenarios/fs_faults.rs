//! Filesystem faults, with real mounts and sysctls (the harness runs as root): a full tmpfs
//! (`size=256k` and a filler file), one out of inodes (`nr_inodes=64`), a read-only remount,
//! lowered inotify limits and an overflowing inotify queue ([`inotify`]), and `ready/` swapped
//! under a waiter ([`swap`]).
//!
//! What must hold (docs/protocol.md, docs/http-api.md): a write the fault refuses exits 1 with
//! one line on stderr naming the path, never a panic, and the agent answers `503 storage` (and
//! `/readyz` 503: "200 when the dir is writable"); no file that existed before is damaged;
//! once space is freed or the volume is writable again every write succeeds, tokens and
//! sequence numbers go on and no debris is left; a waiter started before the fault (CLI with
//! `--rescan 1s`, and an HTTP long-poll) wakes when the record is written after it.
//!
//! Every mount is under the scratch directory and unmounted when dropped; every sysctl is
//! restored when dropped ([`common`]).

mod common;
mod fault;
mod inotify;
mod swap;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use crate::agent::{self, Agent};
use crate::harness::{Ctx, Report, eventually};

pub(super) use common::{Ran, Tally, bounded, inotify_watches, judge};
use common::{Snapshot, Tmpfs, damaged, debris, event_seqs, run_ok, waiter};
use fault::Fault;

/// Runs the scenario: every fault once (quick), or in rounds until the budget is spent.
pub fn run(ctx: &Ctx) -> Result<Report> {
    let mut report = Report::default();
    let mut tally = Tally::default();
    let deadline = Instant::now() + ctx.budget();
    let mut round = 0;
    loop {
        round += 1;
        for fault in [Fault::Space, Fault::Inodes, Fault::ReadOnly] {
            volume_fault(ctx, &mut report, &mut tally, fault, round)
                .with_context(|| format!("{} (round {round})", fault.label()))?;
        }
        inotify::limits(ctx, &mut report, &mut tally, round).context("inotify limits")?;
        swap::subdirs(ctx, &mut report, &mut tally, round).context("swapped ready/")?;
        if ctx.quick() || Instant::now() >= deadline {
            break;
        }
    }
    report.count("rounds", round);
    tally.into_report(&mut report);
    Ok(report)
}

/// What was there before a fault.
struct Before {
    /// Every file, with its content.
    files: Snapshot,
    /// The last fencing token of lock `l0`.
    token: u64,
}

/// One fault on a fresh tmpfs: records, an agent and waiters first, then the fault, writes
/// that must fail clearly, then recovery.
fn volume_fault(
    ctx: &Ctx,
    report: &mut Report,
    tally: &mut Tally,
    fault: Fault,
    round: u32,
) -> Result<()> {
    let mnt = Tmpfs::mount(
        ctx,
        &format!("mnt-{}-{round}", fault.slug()),
        fault.options(),
    )?;
    let dir = mnt.path.join("shared");
    run_ok(ctx, &dir, &["ready", "r0"])?;
    run_ok(ctx, &dir, &["phase", "set", "running"])?;
    run_ok(ctx, &dir, &["event", "publish", "before"])?;
    let token = lock_token(ctx, &dir)?;
    let agent = Agent::start(ctx, &dir, &[])?;
    let (mut cli_waiter, _) = waiter(ctx, &dir, "after", "1s")?;
    let http_waiter = long_poll(agent.port, "after");
    // Both are waiting before the fault: the CLI watches every directory, the agent counts
    // the long-poll.
    let waiting = eventually(Duration::from_secs(10), || {
        inotify_watches(cli_waiter.pid()).is_some_and(|n| n >= 7)
            && agent::get(agent.port, "/metrics").is_ok_and(|(_, m)| {
                m.lines()
                    .any(|l| l.starts_with("podsignal_waiters ") && !l.ends_with(" 0"))
            })
    });
    anyhow::ensure!(waiting, "the waiters never started waiting");
    let before = Before {
        files: common::snapshot(&dir)?,
        token,
    };
    let marker = ctx.path(format!("ran-{}-{round}", fault.slug()));
    fault.inject(ctx, &mnt)?;
    under_fault(ctx, report, tally, fault, &dir, &marker);
    http_under_fault(report, tally, fault, &agent, &dir);
    for what in damaged(&dir, &before.files) {
        report.violation(format!("{}: {what}", fault.label()));
    }
    fault.lift(ctx, &mnt)?;
    recovered(ctx, report, tally, fault, &dir, &before)?;
    http_recovered(report, tally, fault, &agent);
    // The waiters started before the fault wake for the record written after it.
    run_ok(ctx, &dir, &["ready", "after"])?;
    let cli = cli_waiter
        .wait_for(Duration::from_secs(5))
        .is_some_and(|s| s.success());
    report.check(cli, || {
        format!("{}: `wait after` (started before the fault) did not wake within 5 s of the write after recovery", fault.label())
    });
    let http = http_waiter.recv_timeout(Duration::from_secs(5));
    report.check(http == Ok(200), || {
        format!("{}: the long-poll for `after` (started before the fault) did not answer 200 within 5 s of the write after recovery: {http:?}", fault.label())
    });
    tally.add(
        "waiters woken after recovery",
        u64::from(cli) + u64::from(http == Ok(200)),
    );
    Ok(())
}

/// The last fencing token of lock `l0`, taken once more.
fn lock_token(ctx: &Ctx, dir: &Path) -> Result<u64> {
    let out = run_ok(
        ctx,
        dir,
        &[
            "lock",
            "l0",
            "--",
            "sh",
            "-c",
            "echo $PODSIGNAL_FENCING_TOKEN",
        ],
    )?;
    out.trim()
        .parse()
        .with_context(|| format!("the lock's token {out:?}"))
}

/// The writes tried under a fault: arguments, and the directory their error must name.
fn fault_ops(dir: &Path, marker: &Path) -> Vec<(Vec<String>, PathBuf)> {
    let ready = dir.join("ready");
    let locks = dir.join("locks");
    let m = marker.display().to_string();
    let ops: [(&[&str], PathBuf); 8] = [
        (&["ready", "fresh"], ready.clone()),
        (&["unready", "r0", "--reason", "fault"], ready.clone()),
        (&["ready", "held", "--hold"], ready),
        (&["phase", "set", "draining"], dir.to_path_buf()),
        (&["event", "publish", "during"], dir.join("events")),
        (
            &["lock", "l0", "--no-wait", "--", "touch", &m],
            locks.clone(),
        ),
        (
            &["lock", "fresh-lock", "--no-wait", "--", "touch", &m],
            locks,
        ),
        (&["stop", "app"], dir.join("stop")),
    ];
    ops.into_iter()
        .map(|(args, names)| (args.iter().map(|a| (*a).to_owned()).collect(), names))
        .collect()
}

/// Every write under the fault: done (it fit), or refused with one line naming the path.
fn under_fault(
    ctx: &Ctx,
    report: &mut Report,
    tally: &mut Tally,
    fault: Fault,
    dir: &Path,
    marker: &Path,
) {
    let label = fault.label();
    let mut refused = 0;
    for (args, names) in fault_ops(dir, marker) {
        let mut cmd = ctx.podsignal(dir);
        cmd.args(&args);
        let verdict = bounded(&mut cmd, &args.join(" "), Duration::from_secs(10))
            .map_err(|e| format!("{e:#}"))
            .and_then(|ran| judge(&ran, &names));
        match verdict {
            Ok(true) => tally.add(&format!("{label} fit anyway"), 1),
            Ok(false) => refused += 1,
            Err(why) => report.violation(format!("{label}: `podsignal {}`: {why}", args.join(" "))),
        }
    }
    tally.add(&format!("{label} refused naming the path"), refused);
    report.check(refused > 0, || {
        format!("{label}: no write was refused: the fault did not take")
    });
    let ran = marker.exists();
    report.check(!ran, || {
        format!("{label}: a lock's command ran although its token could not be written")
    });
}

/// The agent under the fault: a write answers `503 storage` naming the path, `/readyz` 503.
fn http_under_fault(
    report: &mut Report,
    tally: &mut Tally,
    fault: Fault,
    agent: &Agent,
    dir: &Path,
) {
    let label = fault.label();
    let put = agent::request(
        agent.port,
        "PUT",
        "/v1/readiness/x",
        Some(r#"{"ready":true}"#),
    );
    let ok = put.as_ref().is_ok_and(|(status, body)| {
        let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        *status == 503
            && v["error"] == "storage"
            && v["message"]
                .as_str()
                .is_some_and(|m| m.contains(&dir.display().to_string()))
    });
    report.check(ok, || {
        format!(
            "{label}: PUT /v1/readiness/x answered {put:?}, wanted 503 storage naming {}",
            dir.display()
        )
    });
    tally.add("HTTP 503 storage", u64::from(ok));
    let ready = agent::get(agent.port, "/readyz");
    report.check(ready.as_ref().is_ok_and(|(s, _)| *s == 503), || {
        format!("{label}: /readyz answered {ready:?} while every write answers 503 storage (docs/http-api.md: 200 only when the dir is writable)")
    });
}

/// After the fault is lifted: the same writes succeed, the token and the event sequence go
/// on, and no debris is left.
fn recovered(
    ctx: &Ctx,
    report: &mut Report,
    tally: &mut Tally,
    fault: Fault,
    dir: &Path,
    before: &Before,
) -> Result<()> {
    let label = fault.label();
    let ops: [&[&str]; 6] = [
        &["ready", "fresh"],
        &["unready", "r0", "--reason", "recovered"],
        &["ready", "held"],
        &["phase", "set", "draining"],
        &["event", "publish", "after"],
        &["stop", "app"],
    ];
    let mut ok = 0;
    for args in ops {
        match run_ok(ctx, dir, args) {
            Ok(_) => ok += 1,
            Err(e) => report.violation(format!("{label}: after recovery: {e:#}")),
        }
    }
    match lock_token(ctx, dir) {
        Ok(t) => {
            ok += 1;
            report.check(t > before.token, || {
                format!(
                    "{label}: token {t} after recovery, {} before the fault",
                    before.token
                )
            });
        }
        Err(e) => report.violation(format!("{label}: lock after recovery: {e:#}")),
    }
    tally.add("CLI writes after recovery", ok);
    let seqs = event_seqs(dir)?;
    let dense = seqs.iter().zip(1..).all(|(s, i)| *s == i);
    report.check(dense && !seqs.is_empty(), || {
        format!("{label}: event seqs after recovery are not 1..n: {seqs:?}")
    });
    let left = debris(dir);
    report.check(left.is_empty(), || {
        format!("{label}: debris left after the same names were written again: {left:?}")
    });
    Ok(())
}

/// The agent after recovery: writes and `/readyz` answer 200 again.
fn http_recovered(report: &mut Report, tally: &mut Tally, fault: Fault, agent: &Agent) {
    let put = agent::request(
        agent.port,
        "PUT",
        "/v1/readiness/x",
        Some(r#"{"ready":true}"#),
    );
    let ok = put.as_ref().is_ok_and(|(s, _)| *s == 200);
    report.check(ok, || {
        format!(
            "{}: PUT /v1/readiness/x after recovery answered {put:?}",
            fault.label()
        )
    });
    let ready = agent::get(agent.port, "/readyz");
    let up = ready.as_ref().is_ok_and(|(s, _)| *s == 200);
    report.check(up, || {
        format!(
            "{}: /readyz after recovery answered {ready:?}",
            fault.label()
        )
    });
    tally.add("HTTP writes after recovery", u64::from(ok));
}

/// `GET /v1/readiness/NAME?wait=30s` in a thread; its status arrives on the channel (0: no
/// answer).
fn long_poll(port: u16, name: &str) -> mpsc::Receiver<u16> {
    let (tx, rx) = mpsc::channel();
    let path = format!("/v1/readiness/{name}?wait=30s");
    std::thread::spawn(move || {
        let _ = tx.send(agent::get(port, &path).map_or(0, |(s, _)| s));
    });
    rx
}
