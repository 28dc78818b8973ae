//! What the users do together on a `group` or `all` directory: waits across users, a held
//! record, and contention (one lock, one event log).

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{Result, ensure};

use super::{Counts, Shared, USERS};
use crate::harness::{Proc, Report, eventually};
use crate::ledger;
use crate::scenarios::fs_faults::{Tally, bounded, inotify_watches};

/// A waiter of each user, started first, wakes for the write of the next user.
pub(super) fn cross_waits(
    s: &Shared,
    report: &mut Report,
    counts: &mut Counts,
    tally: &mut Tally,
) -> Result<()> {
    let mut waiters = Vec::new();
    for u in 0..USERS.len() {
        let name = format!("from-{}", USERS[(u + 1) % USERS.len()].1);
        let mut cmd = s.cmd(u, &["wait", &name, "--rescan", "60s", "--timeout", "30s"]);
        cmd.stdout(std::process::Stdio::null());
        waiters.push((
            u,
            name.clone(),
            Proc::spawn(&mut cmd, format!("wait {name}"))?,
        ));
    }
    // The writes come once every waiter watches the root and its six subdirectories, so
    // inotify wakes them (their rescan is 60 s), not their first look.
    let up = eventually(Duration::from_secs(10), || {
        waiters
            .iter()
            .all(|(_, _, p)| inotify_watches(p.pid()).is_some_and(|n| n >= 7))
    });
    ensure!(up, "the waiters never watched every directory");
    for (u, (_, label)) in USERS.iter().enumerate() {
        s.must(report, counts, u, &["ready", &format!("from-{label}")]);
    }
    for (u, name, mut p) in waiters {
        let woke = p
            .wait_for(Duration::from_secs(10))
            .is_some_and(|st| st.success());
        counts.ok[u] += u64::from(woke);
        report.check(woke, || {
            format!("--access {}: user {}'s `wait {name}` (rescan 60s) did not wake within 10 s of the other user's write", s.mode.access(), USERS[u].1)
        });
        tally.add("waiters woken by another user", u64::from(woke));
    }
    Ok(())
}

/// User a holds a record; b sees it ready; a is killed; c sees it unready; b rewrites the
/// name, which removes a's dead liveness file.
pub(super) fn held(
    s: &Shared,
    report: &mut Report,
    counts: &mut Counts,
    tally: &mut Tally,
) -> Result<()> {
    let mut holder = Proc::spawn(
        &mut s.cmd(0, &["ready", "held", "--hold"]),
        "ready held --hold",
    )?;
    s.must(report, counts, 1, &["wait", "held", "--timeout", "10s"]);
    holder.kill9();
    counts.ok[0] += 1;
    s.must(
        report,
        counts,
        2,
        &["wait", "held", "--unready", "--timeout", "10s"],
    );
    s.must(report, counts, 1, &["ready", "held", "--reason", "sticky"]);
    let live: Vec<_> = std::fs::read_dir(s.root.join("ready"))?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".live"))
        .map(|e| e.path())
        .collect();
    report.check(live.is_empty(), || {
        format!(
            "--access {}: a dead holder's liveness file survived another user's write: {live:?}",
            s.mode.access()
        )
    });
    tally.add("held records seen across users", 1);
    Ok(())
}

/// Every user at once: critical sections under one lock (user c alternates with `flock(1)`),
/// and events.
pub(super) fn contended(
    s: &Shared,
    report: &mut Report,
    counts: &mut Counts,
    tally: &mut Tally,
) -> Result<()> {
    let ledger_path = s.ctx.path(format!("ledger-{}", s.mode.access()));
    std::fs::write(&ledger_path, "")?;
    std::fs::set_permissions(&ledger_path, std::fs::Permissions::from_mode(0o666))?;
    s.must(report, counts, 0, &["lock", "lx", "--", "true"]); // the lock file, for flock(1)
    // Per round: a long run repeats rounds until its budget.
    let (sections, events) = (8, 12);
    let ledger_ref = ledger_path.as_path();
    let results: Vec<(u64, u64, Vec<String>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..USERS.len())
            .map(|u| scope.spawn(move || worker(s, u, ledger_ref, sections, events)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| (0, 0, vec!["a worker panicked".into()]))
            })
            .collect()
    });
    for (u, (ok, published, failures)) in results.into_iter().enumerate() {
        counts.ok[u] += ok;
        for f in failures {
            report.violation(format!(
                "--access {}: user {}: {f}",
                s.mode.access(),
                USERS[u].1
            ));
        }
        let kind = format!("from-{}", USERS[u].1);
        let seen = s
            .events()
            .iter()
            .filter(|e| e["kind"] == kind.as_str())
            .count() as u64;
        report.check(seen == published, || {
            format!(
                "--access {}: user {} published {published} events, the log has {seen}",
                s.mode.access(),
                USERS[u].1
            )
        });
    }
    let seqs: Vec<u64> = s
        .events()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap_or(0))
        .collect();
    report.check(seqs.iter().zip(1..).all(|(a, b)| *a == b), || {
        format!(
            "--access {}: event seqs not dense: {seqs:?}",
            s.mode.access()
        )
    });
    let text = std::fs::read_to_string(&ledger_path)?;
    let verdict = ledger::check(&text, &|_| false);
    for v in verdict.violations {
        report.violation(format!("--access {}: ledger: {v}", s.mode.access()));
    }
    report.check(
        verdict.exited == verdict.entered && verdict.entered == sections * 3,
        || {
            format!(
                "--access {}: {} sections entered, {} completed, {} wanted",
                s.mode.access(),
                verdict.entered,
                verdict.exited,
                sections * 3
            )
        },
    );
    tally.add("sections across users", verdict.entered);
    tally.add("events across users", seqs.len() as u64);
    Ok(())
}

/// One user's share of [`contended`]: its sections and events, interleaved. Returns what
/// succeeded, how many events it published, and what failed.
fn worker(
    s: &Shared,
    u: usize,
    ledger_path: &Path,
    sections: u64,
    events: u64,
) -> (u64, u64, Vec<String>) {
    let label = USERS[u].1;
    let (mut ok, mut published, mut failures) = (0, 0, Vec::new());
    let lock_file = s.root.join("locks/lx.lock");
    for i in 0..sections.max(events) {
        if i < sections {
            let mut cmd = if u == 2 && i % 2 == 1 {
                let file = lock_file.as_os_str().to_string_lossy();
                s.program(u, "flock".as_ref(), &[&file, "sh", "-c", ledger::SECTION])
            } else {
                s.cmd(
                    u,
                    &[
                        "lock",
                        "lx",
                        "--timeout",
                        "30s",
                        "--",
                        "sh",
                        "-c",
                        ledger::SECTION,
                    ],
                )
            };
            cmd.env("W", format!("{label}.{i}"))
                .env("LEDGER", ledger_path);
            match bounded(&mut cmd, "section", Duration::from_secs(60)) {
                Ok(r) if r.code == Some(0) => ok += 1,
                Ok(r) => failures.push(format!("section {i}: {:?}: {}", r.code, r.err.trim())),
                Err(e) => failures.push(format!("section {i}: {e:#}")),
            }
        }
        if i < events {
            match s.run(u, &["event", "publish", &format!("from-{label}")]) {
                Ok(r) if r.code == Some(0) => {
                    ok += 1;
                    published += 1;
                }
                Ok(r) => failures.push(format!("event {i}: {:?}: {}", r.code, r.err.trim())),
                Err(e) => failures.push(format!("event {i}: {e:#}")),
            }
        }
    }
    (ok, published, failures)
}
