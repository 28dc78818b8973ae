//! A hostile or careless neighbour in the shared directory: bad names, garbage, symlinks,
#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed
//! FIFOs, oversized and torn records. Clear errors, no panic, nothing followed.

mod common;

use std::os::unix::fs::symlink;
use std::time::Duration;

use common::*;

fn no_panic(o: &std::process::Output) {
    assert!(!stderr(o).contains("panicked"), "panic: {}", stderr(o));
}

#[test]
fn bad_names_are_usage_errors_and_create_nothing() {
    let pod = Pod::new();
    let long = "a".repeat(64);
    for bad in [
        "Bad/Name", "../etc", "", &long, "Upper", "a:b", "a-", ".a", "a b",
    ] {
        for sub in [
            &["ready", bad][..],
            &["wait", bad],
            &["lock", bad, "--", "true"],
            &["event", "publish", bad],
        ] {
            let out = pod.run(sub);
            assert_eq!(out.status.code(), Some(2), "{sub:?}: {}", stderr(&out));
            no_panic(&out);
            // `wait` reads conditions, so "a:b" is an invalid condition there.
            assert!(
                stderr(&out).contains("invalid name") || stderr(&out).contains("invalid condition"),
                "{sub:?}: {}",
                stderr(&out)
            );
        }
    }
    let found: Vec<_> = walk(pod.tmp.path())
        .into_iter()
        .filter(|p| p.contains("etc") || p.contains("Bad"))
        .collect();
    assert!(found.is_empty(), "{found:?}");
}

fn walk(p: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            out.push(e.path().display().to_string());
            out.extend(walk(&e.path()));
        }
    }
    out
}

/// The shared directory's subdirectories, as a writer creates them (`status`, which only
/// shows, creates nothing).
fn make_layout(pod: &Pod) {
    for sub in ["ready", "locks", "leaders", "events", "exits", "stop"] {
        std::fs::create_dir_all(pod.dir.join(sub)).unwrap();
    }
}

#[test]
fn garbage_torn_and_oversized_records_are_not_ready_and_reported() {
    let pod = Pod::new();
    make_layout(&pod);
    let ready = pod.dir.join("ready");
    std::fs::write(ready.join("garbage.json"), b"\x00\xff not json").unwrap();
    std::fs::write(
        ready.join("torn.json"),
        br#"{"version":1,"name":"torn","state":"rea"#,
    )
    .unwrap();
    std::fs::write(ready.join("huge.json"), vec![b' '; 200 * 1024]).unwrap();
    std::fs::write(ready.join("future.json"), br#"{"version":99}"#).unwrap();
    std::fs::write(ready.join("other.json"), br#"{"version":1,"name":"db","state":"ready","held":false,"writer":{"pid":1,"hostname":"h","incarnation":"0000000000000001"},"since_ms":0,"updated_ms":0}"#).unwrap();
    for (name, why) in [
        ("garbage", "malformed"),
        ("torn", "malformed"),
        ("huge", "limit"),
        ("future", "newer"),
        ("other", "names db, but its file is for other"),
    ] {
        let out = pod.run(&["wait", name, "--timeout", "10ms"]);
        assert_eq!(out.status.code(), Some(124), "{name}");
        no_panic(&out);
        assert!(stderr(&out).contains(why), "{name}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!("{name}.json")),
            "error names the file: {}",
            stderr(&out)
        );
    }
    let out = pod.run(&["status"]);
    assert!(out.status.success());
    no_panic(&out);
    assert!(stdout(&out).contains("PROBLEMS"), "{}", stdout(&out));
}

#[test]
fn a_symlinked_record_is_refused_and_never_followed() {
    let pod = Pod::new();
    make_layout(&pod);
    let secret = pod.path("secret");
    std::fs::write(&secret, "precious").unwrap();
    // A valid-looking record elsewhere, linked in: must not count.
    let target = pod.path("elsewhere.json");
    std::fs::write(&target, br#"{"version":1,"name":"db","state":"ready","held":false,"writer":{"pid":1,"hostname":"h","incarnation":"0000000000000001"},"since_ms":0,"updated_ms":0}"#).unwrap();
    symlink(&target, pod.dir.join("ready/db.json")).unwrap();
    let out = pod.run(&["wait", "db", "--timeout", "10ms"]);
    assert_eq!(out.status.code(), Some(124));
    assert!(stderr(&out).contains("symlink"), "{}", stderr(&out));
    // Writing replaces the link itself; the file it pointed to is untouched.
    symlink(&secret, pod.dir.join("ready/web.json")).unwrap();
    assert!(pod.run(&["ready", "web"]).status.success());
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "precious");
    assert!(!pod.dir.join("ready/web.json").is_symlink());
    // A symlinked lock file is refused, not locked through.
    symlink(&secret, pod.dir.join("locks/evil.lock")).unwrap();
    let out = pod.run(&["lock", "evil", "--", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("symlink"), "{}", stderr(&out));
}

#[test]
fn a_subdirectory_replaced_by_a_symlink_is_refused() {
    let pod = Pod::new();
    std::fs::create_dir_all(&pod.dir).unwrap();
    let outside = pod.path("outside");
    std::fs::create_dir(&outside).unwrap();
    symlink(&outside, pod.dir.join("ready")).unwrap();
    let out = pod.run(&["ready", "db"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("ready"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "wrote through the symlink"
    );
}

#[test]
fn a_fifo_record_does_not_hang_a_reader() {
    let pod = Pod::new();
    make_layout(&pod);
    let fifo = pod.dir.join("ready/pipe.json");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let mut pod = pod;
    let w = pod.spawn(&["wait", "pipe", "--timeout", "100ms"]);
    let mut c = pod.take(w);
    assert_eq!(
        wait_exit(&mut c, Duration::from_secs(10)),
        Some(124),
        "reader hung on a FIFO"
    );
}

#[test]
fn garbage_in_the_event_log_is_skipped() {
    let pod = Pod::new();
    assert!(pod.run(&["event", "publish", "a"]).status.success());
    let seg = std::fs::read_dir(pod.dir.join("events"))
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().ends_with(".jsonl"))
        .unwrap()
        .path();
    // A torn line with no newline, then publish again: the new event must stand on its own.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&seg)
        .unwrap()
        .write_all(b"{\"seq\": 2, \"garb")
        .unwrap();
    assert!(pod.run(&["event", "publish", "b"]).status.success());
    let out = pod.run(&[
        "event",
        "watch",
        "--since",
        "0",
        "--count",
        "2",
        "--timeout",
        "5s",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let kinds: Vec<String> = stdout(&out)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(kinds, ["a", "b"]);
}

use std::io::Write;

#[test]
fn bad_durations_and_unknown_phases_are_usage_errors() {
    let pod = Pod::new();
    for args in [
        &["wait", "x", "--timeout", "5"][..],
        &["wait", "x", "--timeout", "1d"],
        &["phase", "set", "paused"],
        &["--rescan", "soon", "status"],
    ] {
        let out = pod.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        no_panic(&out);
    }
}

/// A neighbour planted a symlink where `ready/` belongs: status shows everything else and
/// names it under PROBLEMS; other areas keep working; writes to that area fail naming it.
/// (Found by the chaos `fs-faults` scenario: status exited 1, every command failed.)
#[test]
fn a_planted_area_breaks_only_that_area() {
    let pod = Pod::new();
    assert!(pod.run(&["phase", "set", "running"]).status.success());
    let elsewhere = pod.path("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let _ = std::fs::remove_dir_all(pod.dir.join("ready"));
    symlink(&elsewhere, pod.dir.join("ready")).unwrap();
    let out = pod.run(&["status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let shown = stdout(&out);
    assert!(shown.contains("PHASE  running"), "{shown}");
    assert!(
        shown.contains("/ready: a symlink where a directory belongs"),
        "{shown}"
    );
    let out = pod.run(&["lock", "m", "--", "true"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = pod.run(&["ready", "x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("/ready"), "{}", stderr(&out));
    no_panic(&out);
    assert_eq!(
        std::fs::read_dir(&elsewhere).unwrap().count(),
        0,
        "written through the link"
    );
}

/// Logs read through `kubectl logs` are plain text: no colour codes unless on a terminal.
#[test]
fn logs_to_a_pipe_carry_no_escape_codes() {
    let pod = Pod::new();
    let out = pod
        .cmd(&["lock", "m", "--", "true"])
        .env("PODSIGNAL_LOG", "debug")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!out.stderr.is_empty(), "nothing logged at debug");
    assert!(!out.stderr.contains(&0x1b), "{}", stderr(&out));
}
