//! `--access owner` with a second user: reads work, writes fail clearly and change nothing.

use std::path::{Path, PathBuf};

use anyhow::{Result, ensure};

use super::{Counts, Shared};
use crate::harness::Report;
use crate::scenarios::fs_faults::{Tally, judge};

/// `owner`: user a sets everything up; user b reads it all, and every write of b is refused
/// with one line naming the path, leaving every file as it was.
pub(super) fn owner(
    s: &Shared,
    report: &mut Report,
    counts: &mut Counts,
    tally: &mut Tally,
) -> Result<()> {
    for args in [
        &["ready", "ro-a"][..],
        &["lock", "lo", "--", "true"],
        &["event", "publish", "by-a"],
        &["phase", "set", "running"],
        &["stop", "app"],
    ] {
        ensure!(s.must(report, counts, 0, args), "user a could not set up");
    }
    let before = snapshot(&s.root)?;
    let marker = s.ctx.path("owner-lock-ran");
    let m = marker.to_string_lossy();
    let root = &s.root;
    let refused: [(&[&str], PathBuf); 8] = [
        (&["ready", "ro-b"], root.join("ready")),
        (&["unready", "ro-a"], root.join("ready")),
        (&["ready", "ro-a", "--hold"], root.join("ready")),
        (
            &["lock", "lo", "--no-wait", "--", "touch", &m],
            root.join("locks"),
        ),
        (
            &["lock", "new-lock", "--no-wait", "--", "touch", &m],
            root.join("locks"),
        ),
        (&["event", "publish", "by-b"], root.join("events")),
        (&["phase", "set", "draining"], root.clone()),
        (&["stop", "app"], root.join("stop")),
    ];
    for (args, names) in refused {
        match s
            .run(1, args)
            .map_err(|e| format!("{e:#}"))
            .and_then(|r| judge(&r, &names))
        {
            Ok(false) => counts.refused[1] += 1,
            Ok(true) => report.violation(format!(
                "--access owner: user b `podsignal {}` succeeded in user a's directories",
                args.join(" ")
            )),
            Err(why) => report.violation(format!(
                "--access owner: user b `podsignal {}`: {why}",
                args.join(" ")
            )),
        }
    }
    report.check(!marker.exists(), || {
        "--access owner: user b's lock command ran although its token could not be written".into()
    });
    let after = snapshot(&s.root)?;
    for (rel, old) in &before {
        let new = after.get(rel);
        let why = if rel == Path::new("phase.json") {
            " (`phase set draining` exited 1 on the events segment after it had replaced \
             phase.json: the record says draining, the log has no such phase event; \
             docs/protocol.md: the log and the record agree)"
        } else {
            ""
        };
        report.check(new == Some(old), || {
            format!(
                "--access owner: {} changed although every write of user b failed{why}: {:?} -> {:?}",
                rel.display(),
                String::from_utf8_lossy(old),
                new.map(|n| String::from_utf8_lossy(n).into_owned())
            )
        });
    }
    // Reading is allowed: files are 0644.
    s.must(report, counts, 1, &["wait", "ro-a", "--timeout", "5s"]);
    s.must(
        report,
        counts,
        1,
        &["phase", "wait", "running", "--timeout", "5s"],
    );
    s.must(report, counts, 1, &["status"]);
    // The owner goes on.
    s.must(report, counts, 0, &["phase", "set", "draining"]);
    s.must(
        report,
        counts,
        0,
        &["lock", "lo", "--no-wait", "--", "true"],
    );
    tally.add("owner: files intact", before.len() as u64);
    Ok(())
}

/// Every regular file under `dir` (temporary files included: a failed write leaves none),
/// with its content, by relative path.
fn snapshot(dir: &Path) -> Result<std::collections::BTreeMap<PathBuf, Vec<u8>>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)?.flatten() {
            let t = e.file_type()?;
            if t.is_dir() {
                stack.push(e.path());
            } else {
                out.insert(
                    e.path().strip_prefix(dir)?.to_path_buf(),
                    std::fs::read(e.path())?,
                );
            }
        }
    }
    Ok(out)
}
