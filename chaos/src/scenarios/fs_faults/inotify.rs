//! Lowered inotify limits. docs/protocol.md, Waiting: "inotify queue overflow (`IN_Q_OVERFLOW`
//! wakes everyone), a filesystem without inotify, or an exhausted watch limit (reported with
//! the sysctl to raise) degrade to the rescan, never to a lost wake-up", and "a watch that
//! cannot be added ... is retried every rescan interval"; client/src/watch.rs: when inotify
//! cannot be had at all the watcher "logs why and relies on the rescan".
//!
//! Each limit is lowered only until the waiter under test has met it (it said so, or it has
//! its small queue), then restored: the sysctls are global, so the window is kept short.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use rustix::process::Signal;

use super::common::{Sysctl, Tally, inotify_watches, run_ok, waiter};
use crate::harness::{Ctx, Proc, Report, eventually, signal};

/// The protocol directories a waiter watches: the root and its six subdirectories.
const WATCHED: usize = 7;

/// Runs the three limits on a fresh directory.
pub(super) fn limits(ctx: &Ctx, report: &mut Report, tally: &mut Tally, round: u32) -> Result<()> {
    let dir = ctx.path(format!("inotify-{round}"));
    run_ok(ctx, &dir, &["ready", "r0"])?;
    run_ok(ctx, &dir, &["event", "publish", "warm"])?;
    no_watches(ctx, report, tally, &dir)?;
    no_instance(ctx, report, tally, &dir)?;
    overflow(ctx, report, tally, &dir)
}

/// `fs.inotify.max_user_watches=0`: the waiter says so, wakes by its rescan, and gets its
/// watches back once the limit is restored.
fn no_watches(ctx: &Ctx, report: &mut Report, tally: &mut Tally, dir: &Path) -> Result<()> {
    let mut w = degraded(
        ctx,
        report,
        dir,
        "fs.inotify.max_user_watches",
        "iw-watches",
    )?;
    let back = eventually(Duration::from_secs(5), || {
        inotify_watches(w.pid()).is_some_and(|n| n >= WATCHED)
    });
    report.check(back, || {
        format!(
            "max_user_watches: the waiter's watches did not come back within 5 s of the limit's restore ({:?} watches; watch.rs: retried every rescan interval)",
            inotify_watches(w.pid())
        )
    });
    tally.add("watches re-added", u64::from(back));
    wakes(
        ctx,
        report,
        tally,
        dir,
        &mut w,
        "iw-watches",
        "max_user_watches",
    )
}

/// `fs.inotify.max_user_instances=0`: the waiter says so and wakes by its rescan.
fn no_instance(ctx: &Ctx, report: &mut Report, tally: &mut Tally, dir: &Path) -> Result<()> {
    let mut w = degraded(
        ctx,
        report,
        dir,
        "fs.inotify.max_user_instances",
        "iw-instances",
    )?;
    wakes(
        ctx,
        report,
        tally,
        dir,
        &mut w,
        "iw-instances",
        "max_user_instances",
    )
}

/// Starts `wait NAME --rescan 1s` with `sysctl` at 0, and restores it once the waiter said
/// which sysctl to raise (a violation if it never does).
fn degraded(ctx: &Ctx, report: &mut Report, dir: &Path, sysctl: &str, name: &str) -> Result<Proc> {
    let hint = sysctl.rsplit('.').next().unwrap_or(sysctl);
    let (w, log) = {
        let _lowered = Sysctl::set(sysctl, "0")?;
        let (w, log) = waiter(ctx, dir, name, "1s")?;
        eventually(Duration::from_secs(10), || {
            std::fs::read_to_string(&log).is_ok_and(|s| s.contains(hint))
        });
        (w, log)
    };
    let said = std::fs::read_to_string(&log).unwrap_or_default();
    report.check(said.contains(hint) && said.contains("rescan"), || {
        format!("{sysctl}=0: the waiter did not say it falls back to the rescan naming the sysctl; its stderr: {said:?}")
    });
    ensure!(
        std::fs::read_to_string(format!("/proc/sys/{}", sysctl.replace('.', "/")))
            .is_ok_and(|v| v.trim() != "0"),
        "{sysctl} was not restored"
    );
    Ok(w)
}

/// Writes NAME and checks the waiter `w` exits 0 within 5 s.
fn wakes(
    ctx: &Ctx,
    report: &mut Report,
    tally: &mut Tally,
    dir: &Path,
    w: &mut Proc,
    name: &str,
    what: &str,
) -> Result<()> {
    ensure!(w.exited().is_none(), "the waiter on {name} exited early");
    run_ok(ctx, dir, &["ready", name])?;
    let woke = w
        .wait_for(Duration::from_secs(5))
        .is_some_and(|s| s.success());
    report.check(woke, || {
        format!("{what}: a waiter without inotify did not wake within 5 s of the write (rescan 1s)")
    });
    tally.add("rescan wakes without inotify", u64::from(woke));
    Ok(())
}

/// `fs.inotify.max_queued_events=16` while two waiters start (`--rescan 1s` and `--rescan
/// 60s`); both are stopped, a burst of events in `events/` overflows their queues, then the
/// record is written (its event is lost in the overflow) and they continue: both must wake
/// within 10 s, the second only through `IN_Q_OVERFLOW`.
fn overflow(ctx: &Ctx, report: &mut Report, tally: &mut Tally, dir: &Path) -> Result<()> {
    let (mut fast, mut slow) = {
        let _small = Sysctl::set("fs.inotify.max_queued_events", "16")?;
        let (fast, _) = waiter(ctx, dir, "qfin", "1s")?;
        let (slow, _) = waiter(ctx, dir, "qfin", "60s")?;
        let up = eventually(Duration::from_secs(10), || {
            [&fast, &slow]
                .iter()
                .all(|w| inotify_watches(w.pid()).is_some_and(|n| n >= WATCHED))
        });
        ensure!(up, "the waiters never watched every directory");
        (fast, slow)
    };
    for w in [&fast, &slow] {
        signal(w.pid(), Signal::STOP);
    }
    let stopped = eventually(Duration::from_secs(5), || {
        [&fast, &slow].iter().all(|w| all_stopped(w.pid()))
    });
    ensure!(stopped, "the waiters did not stop");
    for _ in 0..24 {
        run_ok(ctx, dir, &["event", "publish", "burst"])?;
    }
    run_ok(ctx, dir, &["ready", "qfin"])?;
    for w in [&fast, &slow] {
        signal(w.pid(), Signal::CONT);
    }
    let t = Instant::now();
    for (w, rescan) in [(&mut fast, "1s"), (&mut slow, "60s")] {
        let woke = w
            .wait_for(Duration::from_secs(10).saturating_sub(t.elapsed()))
            .is_some_and(|s| s.success());
        report.check(woke, || {
            format!("max_queued_events=16: a waiter (--rescan {rescan}) whose queue overflowed did not wake within 10 s")
        });
        tally.add("overflow wakes", u64::from(woke));
    }
    Ok(())
}

/// Every thread of `pid` is stopped.
fn all_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().all(|t| {
        std::fs::read_to_string(t.path().join("stat")).is_ok_and(|s| {
            s.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .is_some_and(|state| state == "T" || state == "t")
        })
    })
}
