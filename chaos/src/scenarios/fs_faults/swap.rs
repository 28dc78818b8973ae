//! `ready/` swapped under a waiter. docs/protocol.md: "A watch is on a directory, not its
//! path: when a watched directory is moved away or removed ... or one appears at a protocol
//! path, the directory now at the path is watched and its waiters look again", and "a
//! neighbour who replaces `ready/` with a symlink is refused, not followed".
//!
//! The waiters here rescan every 60 s and must wake within 10 s: only the re-watch wakes them.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};

use super::common::{Snapshot, Tally, bounded, inotify_watches, judge, run_ok, snapshot, waiter};
use crate::harness::{Ctx, Proc, Report, eventually};

/// The protocol directories a waiter watches: the root and its six subdirectories.
const WATCHED: usize = 7;

/// How `ready/` is swapped.
#[derive(Debug, Clone, Copy)]
enum Swap {
    /// `mv ready ready.old; mkdir ready`, then the record is written.
    Moved,
    /// `rm -r ready`, then the record is written.
    Removed,
    /// Exchanged with a directory that already holds the record.
    Replaced,
}

/// Runs every swap on a fresh directory.
pub(super) fn subdirs(ctx: &Ctx, report: &mut Report, tally: &mut Tally, round: u32) -> Result<()> {
    let dir = ctx.path(format!("swap-{round}"));
    run_ok(ctx, &dir, &["ready", "r0"])?;
    for swap in [Swap::Moved, Swap::Removed, Swap::Replaced] {
        swapped(ctx, report, tally, &dir, swap).with_context(|| format!("{swap:?}"))?;
    }
    symlinked(ctx, report, tally, &dir, round)
}

/// A waiter that has started watching every directory.
fn watching(ctx: &Ctx, dir: &Path, name: &str) -> Result<Proc> {
    let (w, _) = waiter(ctx, dir, name, "60s")?;
    let up = eventually(Duration::from_secs(10), || {
        inotify_watches(w.pid()).is_some_and(|n| n >= WATCHED)
    });
    ensure!(up, "the waiter on {name} never watched every directory");
    Ok(w)
}

/// One swap under a waiter; it must wake within 10 s.
fn swapped(
    ctx: &Ctx,
    report: &mut Report,
    tally: &mut Tally,
    dir: &Path,
    swap: Swap,
) -> Result<()> {
    let name = format!("sw-{}", format!("{swap:?}").to_lowercase());
    let ready = dir.join("ready");
    let mut w = watching(ctx, dir, &name)?;
    match swap {
        Swap::Moved => {
            std::fs::rename(&ready, dir.join(format!("ready.old-{name}")))?;
            // The waiter may have made the new one already (the next write would).
            if let Err(e) = std::fs::create_dir(&ready) {
                ensure!(e.kind() == std::io::ErrorKind::AlreadyExists, e);
            }
            run_ok(ctx, dir, &["ready", &name])?;
        }
        Swap::Removed => {
            std::fs::remove_dir_all(&ready)?;
            run_ok(ctx, dir, &["ready", &name])?;
        }
        Swap::Replaced => {
            let staged = dir.with_extension(format!("staged-{name}"));
            run_ok(ctx, &staged, &["ready", &name])?;
            exchange(&staged.join("ready"), &ready)?;
        }
    }
    let woke = w
        .wait_for(Duration::from_secs(10))
        .is_some_and(|s| s.success());
    report.check(woke, || {
        format!("ready/ {swap:?}: the waiter on {name} (rescan 60s) did not wake within 10 s")
    });
    tally.add("re-watch wakes", u64::from(woke));
    Ok(())
}

/// `ready/` replaced by a symlink to a directory that holds a valid record of the awaited
/// name: the write is refused naming `ready`, nothing is written through the link, neither
/// the waiter nor a new `wait` sees the planted record; once the real directory is back and
/// the record written, the waiter wakes.
fn symlinked(
    ctx: &Ctx,
    report: &mut Report,
    tally: &mut Tally,
    dir: &Path,
    round: u32,
) -> Result<()> {
    let name = "sw-symlink";
    let ready = dir.join("ready");
    let elsewhere = ctx.path(format!("elsewhere-{round}"));
    run_ok(ctx, &elsewhere, &["ready", name])?;
    let planted = snapshot(&elsewhere)?;
    let mut w = watching(ctx, dir, name)?;
    let link = dir.join("ready.link");
    std::os::unix::fs::symlink(elsewhere.join("ready"), &link)?;
    exchange(&link, &ready)?;
    // A write is refused, not written through the link.
    let mut cmd = ctx.podsignal(dir);
    cmd.args(["ready", name]);
    let write = bounded(&mut cmd, "ready through a symlink", Duration::from_secs(10))?;
    match judge(&write, &ready) {
        Ok(false) => tally.add("symlinked ready/ refused", 1),
        Ok(true) => report.violation(format!(
            "a write with ready/ a symlink succeeded: {write:?}"
        )),
        Err(why) => report.violation(format!("a write with ready/ a symlink: {why}")),
    }
    unchanged(report, &elsewhere, &planted);
    // A reader does not follow it either.
    let mut cmd = ctx.podsignal(dir);
    cmd.args(["wait", name, "--timeout", "1s"]);
    let fresh = bounded(&mut cmd, "wait through a symlink", Duration::from_secs(10))?;
    report.check(fresh.code != Some(0) && !fresh.err.contains("panicked"), || {
        format!("`wait {name}` with ready/ a symlink to a valid record: {fresh:?} (followed the link?)")
    });
    let early = w.exited();
    exchange(&link, &ready)?;
    std::fs::remove_file(&link)?;
    match early {
        Some(s) if s.success() => report.violation(format!(
            "the waiter on {name} woke for the record behind a symlinked ready/"
        )),
        Some(s) => tally.add(&format!("waiter refused symlinked ready/ ({s})"), 1),
        None => {
            run_ok(ctx, dir, &["ready", name])?;
            let woke = w
                .wait_for(Duration::from_secs(10))
                .is_some_and(|s| s.success());
            report.check(woke, || {
                format!("the waiter on {name} did not wake within 10 s once ready/ was a directory again and the record written")
            });
            tally.add("re-watch wakes", u64::from(woke));
        }
    }
    Ok(())
}

/// The files under `dir` are still `before`, byte for byte, and nothing was added.
fn unchanged(report: &mut Report, dir: &Path, before: &Snapshot) {
    let now = snapshot(dir).unwrap_or_default();
    report.check(&now == before, || {
        format!(
            "{} changed while a symlink to it stood in for ready/: {:?} -> {:?}",
            dir.display(),
            before.keys().collect::<Vec<_>>(),
            now.keys().collect::<Vec<_>>()
        )
    });
}

/// `renameat2(a, b, RENAME_EXCHANGE)`: the two swap places atomically.
fn exchange(a: &Path, b: &Path) -> Result<()> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE)
        .with_context(|| format!("exchanging {} and {}", a.display(), b.display()))
}
