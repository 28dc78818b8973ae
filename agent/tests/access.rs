//! Several containers with different UIDs sharing one volume: what `--access` permits.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed
//! Runs real processes as another UID (setpriv); the tests run as root, like CI.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;

use common::*;

/// `podsignal ARGS` as UID/GID 4242 with no supplementary groups, or None when not root.
fn as_other_uid(pod: &Pod, args: &[&str]) -> Option<std::process::Output> {
    if !rustix_is_root() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs the tests as root"
        );
        return None;
    }
    let out = Command::new("setpriv")
        .args([
            "--reuid",
            "4242",
            "--regid",
            "4242",
            "--clear-groups",
            env!("CARGO_BIN_EXE_podsignal"),
        ])
        .args(args)
        .env("PODSIGNAL_DIR", &pod.dir)
        .output()
        .expect("setpriv");
    Some(out)
}

fn rustix_is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

fn open_up(pod: &Pod) {
    // tempdir() is 0700; an emptyDir is 0777.
    std::fs::set_permissions(pod.tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn access_all_lets_another_uid_write_everything() {
    let pod = Pod::new();
    open_up(&pod);
    std::fs::create_dir(&pod.dir).unwrap();
    std::fs::set_permissions(&pod.dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    for args in [
        &["--access", "all", "ready", "db"][..],
        &["--access", "all", "lock", "m", "--", "true"],
        &["--access", "all", "event", "publish", "x"],
    ] {
        assert!(pod.run(args).status.success());
    }
    let mode = |rel: &str| {
        std::fs::metadata(pod.dir.join(rel))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode("ready"), 0o777);
    assert_eq!(mode("ready/db.json"), 0o666);
    assert_eq!(mode("locks/m.lock"), 0o666);
    let Some(out) = as_other_uid(&pod, &["ready", "web"]) else {
        return;
    };
    assert!(out.status.success(), "{}", stderr(&out));
    for args in [
        &["unready", "db"][..],
        &["lock", "m", "--", "true"],
        &["event", "publish", "y"],
        &["phase", "set", "running"],
    ] {
        let out = as_other_uid(&pod, args).unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }
    assert_eq!(
        pod.run(&["wait", "web", "--timeout", "1s"]).status.code(),
        Some(0)
    );
    let status: serde_json::Value =
        serde_json::from_str(&stdout(&pod.run(&["status", "--json"]))).unwrap();
    assert_eq!(
        status["locks"][0]["last_token"], 2,
        "both UIDs advanced one counter"
    );
    // x, y, the phase, and a `lock` event as each lock was taken and released.
    assert_eq!(status["events"]["last_seq"], 7);
}

#[test]
fn access_owner_refuses_another_uid_with_a_clear_error_and_no_damage() {
    let pod = Pod::new();
    open_up(&pod);
    std::fs::create_dir(&pod.dir).unwrap();
    std::fs::set_permissions(&pod.dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    assert!(pod.run(&["ready", "db"]).status.success());
    assert_eq!(
        std::fs::metadata(pod.dir.join("ready/db.json"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o644
    );
    let Some(out) = as_other_uid(&pod, &["unready", "db"]) else {
        return;
    };
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("ready/db.json")
            && err.contains("permission denied")
            && err.contains("--access"),
        "{err}"
    );
    assert!(!err.contains("panicked"));
    // Reading still works for the other UID, and the record is intact.
    let out = as_other_uid(&pod, &["wait", "db", "--timeout", "1s"]).unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn access_group_makes_setgid_group_writable_directories() {
    let pod = Pod::new();
    assert!(
        pod.run(&["--access", "group", "ready", "db"])
            .status
            .success()
    );
    let mode = |rel: &str| {
        std::fs::metadata(pod.dir.join(rel))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode("ready"), 0o2775);
    assert_eq!(mode("ready/db.json"), 0o664);
}

/// A phase set that cannot write its event changes nothing: the record stays, the log agrees.
/// (Found by the chaos `uids` scenario: `phase.json` was replaced, then the event failed.)
#[test]
fn a_phase_set_that_cannot_log_its_event_leaves_the_record_as_it_was() {
    let pod = Pod::new();
    open_up(&pod);
    std::fs::create_dir(&pod.dir).unwrap();
    std::fs::set_permissions(&pod.dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    assert!(pod.run(&["phase", "set", "running"]).status.success());
    // The root is 0777 (another UID can rename into it), events/ is the owner's alone.
    let Some(out) = as_other_uid(&pod, &["phase", "set", "draining"]) else {
        return;
    };
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("events"), "{}", stderr(&out));
    assert_eq!(stdout(&pod.run(&["phase", "get"])).trim(), "running");
    let log = stdout(&pod.run(&[
        "event",
        "watch",
        "--since",
        "0",
        "--count",
        "1",
        "--kind",
        "phase",
        "--timeout",
        "2s",
    ]));
    assert!(log.contains("\"running\""), "{log}");
    assert!(!log.contains("draining"), "{log}");
    // No temporary file is left of the attempt.
    let debris: Vec<_> = std::fs::read_dir(&pod.dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(debris.is_empty(), "{debris:?}");
}
