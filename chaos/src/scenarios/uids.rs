//! Writers and waiters as different real users on one directory (docs/protocol.md,
//! Permissions). Three users with numeric ids and no passwd entry (nothing to clean up), run
//! through `setpriv` with a hostile `umask 077`:
//!
//! - `--access group` (a root like a Pod's `fsGroup` emptyDir: setgid, group-writable, the
//!   users share a supplementary group) and `--access all` (a plain 0777 emptyDir, no shared
//!   group): each user rewrites the others' records, files and directories get the documented
//!   mode whatever the umask, the lock excludes across users (`podsignal lock` and `flock(1)`,
//!   checked by the ledger, tokens strictly increasing), events published by all are dense,
//!   a waiter of one user wakes (by inotify: it rescans every 60 s) for another's write, and a
//!   held record is seen by the others and its death too.
//! - `--access owner` (the default): a second user reads what the first wrote, and every write
//!   of it fails with exit 1 and one line naming the path, never a panic, leaving every record
//!   as it was.

mod cross;
mod owner;

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use super::fs_faults::{Ran, Tally, bounded};
use crate::harness::{Ctx, Report};

/// The shared group of `--access group`.
const GROUP: u32 = 64100;

/// The users: uid (also the gid of a primary group of its own) and a label.
const USERS: [(u32, &str); 3] = [(64101, "a"), (64102, "b"), (64103, "c")];

/// How the users share the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `--access group`, the users share [`GROUP`].
    Group,
    /// `--access all`, no shared group.
    All,
    /// `--access owner`, no shared group.
    Owner,
}

impl Mode {
    /// The `--access` value.
    fn access(self) -> &'static str {
        match self {
            Mode::Group => "group",
            Mode::All => "all",
            Mode::Owner => "owner",
        }
    }

    /// The mode of files podsignal creates.
    fn file_mode(self) -> u32 {
        match self {
            Mode::Group => 0o664,
            Mode::All => 0o666,
            Mode::Owner => 0o644,
        }
    }

    /// The mode of directories podsignal creates.
    fn dir_mode(self) -> u32 {
        match self {
            Mode::Group => 0o2775,
            Mode::All => 0o777,
            Mode::Owner => 0o755,
        }
    }
}

/// One mode's shared directory, and what the users did there.
struct Shared<'a> {
    /// The scenario's context.
    ctx: &'a Ctx,
    /// The access mode every user passes.
    mode: Mode,
    /// The shared directory.
    root: PathBuf,
}

impl Shared<'_> {
    /// `podsignal ARGS` as user `u` (an index in [`USERS`]), `umask 077`, on the root.
    fn cmd(&self, u: usize, args: &[&str]) -> Command {
        self.program(u, self.ctx.bin.as_os_str(), args)
    }

    /// `PROGRAM ARGS` as user `u`, `umask 077`, with the root in the environment.
    fn program(&self, u: usize, program: &std::ffi::OsStr, args: &[&str]) -> Command {
        let (uid, label) = USERS[u];
        let mut c = self.ctx.command("setpriv");
        c.args(["--reuid", &uid.to_string(), "--regid", &uid.to_string()]);
        match self.mode {
            Mode::Group => c.args(["--groups", &GROUP.to_string()]),
            _ => c.arg("--clear-groups"),
        };
        c.args(["sh", "-c", "umask 077; exec \"$@\"", "sh"])
            .arg(program)
            .args(args)
            .env("PODSIGNAL_DIR", &self.root)
            .env("PODSIGNAL_ACCESS", self.mode.access())
            .env("PODSIGNAL_NAME", label)
            .env("PODSIGNAL_LOG", "warn");
        c
    }

    /// Runs `podsignal ARGS` as user `u`, within 30 s.
    fn run(&self, u: usize, args: &[&str]) -> Result<Ran> {
        let what = format!(
            "{} as {}: podsignal {}",
            self.mode.access(),
            USERS[u].1,
            args.join(" ")
        );
        bounded(&mut self.cmd(u, args), &what, Duration::from_secs(30))
    }

    /// Runs it and counts it; a violation unless it exits 0.
    fn must(&self, report: &mut Report, counts: &mut Counts, u: usize, args: &[&str]) -> bool {
        let ok = match self.run(u, args) {
            Ok(ran) if ran.code == Some(0) => true,
            Ok(ran) => {
                report.violation(self.failed(
                    u,
                    args,
                    &format!("{:?}: {}", ran.code, ran.err.trim()),
                ));
                false
            }
            Err(e) => {
                report.violation(self.failed(u, args, &format!("{e:#}")));
                false
            }
        };
        counts.ok[u] += u64::from(ok);
        ok
    }

    /// Every event in the log, in file order.
    fn events(&self) -> Vec<serde_json::Value> {
        let mut segments: Vec<PathBuf> = std::fs::read_dir(self.root.join("events"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .collect();
        segments.sort();
        segments
            .iter()
            .flat_map(|p| {
                std::fs::read_to_string(p)
                    .unwrap_or_default()
                    .lines()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .map(|l| serde_json::from_str(&l).unwrap_or_default())
            .collect()
    }

    /// The message for a command that should have succeeded.
    fn failed(&self, u: usize, args: &[&str], why: &str) -> String {
        format!(
            "--access {}: user {} `podsignal {}` failed: {why}",
            self.mode.access(),
            USERS[u].1,
            args.join(" ")
        )
    }
}

/// Per-user counts.
#[derive(Debug, Default)]
struct Counts {
    /// Operations that succeeded.
    ok: [u64; 3],
    /// Operations refused as the access mode says they must be.
    refused: [u64; 3],
}

/// Runs the scenario: group, all, then owner, once (quick) or in rounds until the budget.
pub fn run(ctx: &Ctx) -> Result<Report> {
    // The users must reach the scratch directory (made 0700).
    std::fs::set_permissions(&ctx.work, std::fs::Permissions::from_mode(0o755))?;
    let mut report = Report::default();
    let mut counts = Counts::default();
    let mut tally = Tally::default();
    let deadline = Instant::now() + ctx.budget();
    let mut round = 0;
    loop {
        round += 1;
        for mode in [Mode::Group, Mode::All] {
            let shared = prepare(ctx, mode, round)?;
            shared_dir(&shared, &mut report, &mut counts, &mut tally)
                .with_context(|| format!("--access {}", mode.access()))?;
        }
        let shared = prepare(ctx, Mode::Owner, round)?;
        owner::owner(&shared, &mut report, &mut counts, &mut tally).context("--access owner")?;
        if ctx.quick() || Instant::now() >= deadline {
            break;
        }
    }
    report.count("rounds", round);
    let per_user = |c: &[u64; 3]| format!("{}/{}/{}", c[0], c[1], c[2]);
    report.count("ops ok (a/b/c)", per_user(&counts.ok));
    report.count("refused as expected (a/b/c)", per_user(&counts.refused));
    tally.into_report(&mut report);
    Ok(report)
}

/// The mode's root, made as the platform would: setgid and group-writable for `group` (an
/// `fsGroup` emptyDir), 0777 otherwise (a plain emptyDir).
fn prepare(ctx: &Ctx, mode: Mode, round: u32) -> Result<Shared<'_>> {
    let root = ctx.path(format!("{}-{round}", mode.access()));
    std::fs::create_dir(&root)?;
    let perm = if mode == Mode::Group {
        std::os::unix::fs::chown(&root, Some(0), Some(GROUP))?;
        0o2775
    } else {
        0o777
    };
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(perm))?;
    Ok(Shared { ctx, mode, root })
}

/// `group` or `all`: everything works across users.
fn shared_dir(
    s: &Shared,
    report: &mut Report,
    counts: &mut Counts,
    tally: &mut Tally,
) -> Result<()> {
    // Each user rewrites the record the one before wrote.
    s.must(report, counts, 0, &["ready", "r", "--reason", "by-a"]);
    s.must(report, counts, 1, &["unready", "r", "--reason", "by-b"]);
    s.must(report, counts, 2, &["ready", "r", "--reason", "by-c"]);
    s.must(report, counts, 1, &["phase", "set", "running"]);
    s.must(report, counts, 0, &["phase", "set", "draining"]);
    s.must(report, counts, 2, &["stop", "app"]);
    s.must(report, counts, 0, &["stop", "app", "--reason", "again"]);
    let record = read_json(&s.root.join("ready/r.json"));
    report.check(
        record["reason"] == "by-c" && record["state"] == "ready",
        || {
            format!(
                "--access {}: ready/r.json after three users wrote it: {record}",
                s.mode.access()
            )
        },
    );
    modes(s, report);
    cross::cross_waits(s, report, counts, tally)?;
    cross::held(s, report, counts, tally)?;
    cross::contended(s, report, counts, tally)
}

/// Reads a record as JSON (`null` if missing or garbled).
fn read_json(path: &Path) -> serde_json::Value {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Files and directories have the documented mode (and group) despite `umask 077`.
fn modes(s: &Shared, report: &mut Report) {
    let want_gid = (s.mode == Mode::Group).then_some(GROUP);
    for (rel, dir) in [
        ("ready", true),
        ("locks", true),
        ("events", true),
        ("stop", true),
        ("ready/r.json", false),
        ("phase.json", false),
        ("stop/app.json", false),
    ] {
        let path = s.root.join(rel);
        let want = if dir {
            s.mode.dir_mode()
        } else {
            s.mode.file_mode()
        };
        let meta = std::fs::symlink_metadata(&path);
        let ok = meta
            .as_ref()
            .is_ok_and(|m| m.mode() & 0o7777 == want && want_gid.is_none_or(|g| m.gid() == g));
        report.check(ok, || {
            let got = meta.as_ref().map(|m| (format!("{:o}", m.mode() & 0o7777), m.gid()));
            format!(
                "--access {}: {} has mode/gid {got:?}, wanted {want:o} (gid {want_gid:?}) whatever the umask",
                s.mode.access(),
                path.display()
            )
        });
    }
}
