//! Readiness and waiting, through the real binary.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

mod common;

use std::time::{Duration, Instant};

use common::*;

#[test]
fn wait_times_out_with_124_and_names_what_is_missing() {
    let pod = Pod::new();
    assert!(
        pod.run(&["ready", "db", "--reason", "migrated"])
            .status
            .success()
    );
    assert!(
        pod.run(&["unready", "proxy", "--reason", "warming cache"])
            .status
            .success()
    );
    let out = pod.run(&["wait", "db", "proxy", "cache", "--timeout", "200ms"]);
    assert_eq!(out.status.code(), Some(124));
    let all = stderr(&out);
    // The error is one line, the last, after what the wait logged at info.
    let err = all.lines().last().unwrap_or_default();
    assert!(err.starts_with("podsignal: timed out"), "{all}");
    assert_eq!(
        all.matches("podsignal: ").count(),
        1,
        "one error line: {all}"
    );
    assert!(err.contains("proxy: unready: warming cache"), "{err}");
    assert!(err.contains("cache: no record"), "{err}");
    assert!(
        !err.contains("db:"),
        "db is ready and must not be listed: {err}"
    );
}

#[test]
fn wait_returns_as_soon_as_the_last_name_is_ready() {
    let mut pod = Pod::new();
    assert!(pod.run(&["ready", "a"]).status.success());
    // A rescan interval of an hour: only inotify can wake the waiter in time.
    let w = pod.spawn(&["--rescan", "1h", "wait", "a", "b", "c", "--timeout", "60s"]);
    let mut waiter = pod.take(w);
    assert!(pod.run(&["ready", "b"]).status.success());
    assert_eq!(
        waiter.try_wait().unwrap(),
        None,
        "returned before c was ready"
    );
    let t0 = Instant::now();
    assert!(pod.run(&["ready", "c"]).status.success());
    assert_eq!(wait_exit(&mut waiter, Duration::from_secs(10)), Some(0));
    eprintln!("woken {:?} after the last ready", t0.elapsed());
}

#[test]
fn wait_any_returns_on_the_first_ready_name() {
    let pod = Pod::new();
    assert!(pod.run(&["ready", "b"]).status.success());
    assert!(
        pod.run(&["wait", "--any", "a", "b", "--timeout", "5s"])
            .status
            .success()
    );
    assert_eq!(
        pod.run(&["wait", "a", "b", "--timeout", "100ms"])
            .status
            .code(),
        Some(124)
    );
}

#[test]
fn held_record_dies_with_its_holder_and_waiters_see_it_at_once() {
    let mut pod = Pod::new();
    let holder = pod.spawn(&["ready", "web", "--hold", "--reason", "serving"]);
    assert!(eventually(Duration::from_secs(10), || pod
        .run(&["wait", "web", "--timeout", "50ms"])
        .status
        .success()));
    let w = pod.spawn(&[
        "--rescan",
        "1h",
        "wait",
        "--unready",
        "web",
        "--timeout",
        "60s",
    ]);
    let mut waiter = pod.take(w);
    // The waiter is running and web is ready: it must not have returned.
    assert!(!eventually(Duration::from_millis(100), || waiter
        .try_wait()
        .unwrap()
        .is_some()));
    let t0 = Instant::now();
    kill9(holder);
    assert_eq!(
        wait_exit(&mut waiter, Duration::from_secs(10)),
        Some(0),
        "waiter did not see the holder die"
    );
    eprintln!("holder death seen after {:?}", t0.elapsed());
    let out = pod.run(&["wait", "web", "--timeout", "10ms"]);
    assert_eq!(out.status.code(), Some(124));
    assert!(stderr(&out).contains("is gone"), "{}", stderr(&out));
}

#[test]
fn held_record_is_retracted_on_sigterm() {
    let mut pod = Pod::new();
    let pid = pod.spawn(&["ready", "web", "--hold"]);
    assert!(eventually(Duration::from_secs(10), || pod
        .run(&["wait", "web", "--timeout", "10ms"])
        .status
        .success()));
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let mut holder = pod.take(pid);
    assert_eq!(wait_exit(&mut holder, Duration::from_secs(10)), Some(0));
    let status = stdout(&pod.run(&["status", "--json"]));
    assert!(status.contains("holder stopped by SIGTERM"), "{status}");
    let live: Vec<_> = std::fs::read_dir(pod.dir.join("ready"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".live"))
        .collect();
    assert!(live.is_empty(), "liveness file left behind");
}

#[test]
fn restarts_replace_liveness_files_so_the_directory_does_not_grow() {
    let mut pod = Pod::new();
    for _ in 0..5 {
        let pid = pod.spawn(&["ready", "crashy", "--hold"]);
        assert!(eventually(Duration::from_secs(10), || pod
            .run(&["wait", "crashy", "--timeout", "10ms"])
            .status
            .success()));
        kill9(pid);
        let mut c = pod.take(pid);
        wait_exit(&mut c, Duration::from_secs(10));
    }
    let files = std::fs::read_dir(pod.dir.join("ready")).unwrap().count();
    assert!(files <= 2, "ready/ holds {files} files after 5 restarts");
}

#[test]
fn status_shows_records_locks_and_phase() {
    let pod = Pod::new();
    assert!(
        pod.run(&["ready", "db", "--reason", "migrated"])
            .status
            .success()
    );
    assert!(pod.run(&["lock", "m", "--", "true"]).status.success());
    assert!(pod.run(&["phase", "set", "running"]).status.success());
    let human = stdout(&pod.run(&["status"]));
    for want in ["PHASE  running", "db", "migrated", "LOCK", "m "] {
        assert!(human.contains(want), "status lacks {want:?}:\n{human}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&pod.run(&["status", "--json"]))).unwrap();
    assert_eq!(json["readiness"][0]["ready"], true);
    assert_eq!(json["locks"][0]["last_token"], 1);
    assert_eq!(json["phase"]["phase"], "running");
}

#[test]
fn phase_moves_forward_wakes_waiters_and_refuses_to_go_back() {
    let mut pod = Pod::new();
    let w = pod.spawn(&[
        "--rescan",
        "1h",
        "phase",
        "wait",
        "draining",
        "--timeout",
        "60s",
    ]);
    let mut waiter = pod.take(w);
    assert!(pod.run(&["phase", "set", "running"]).status.success());
    assert!(
        !eventually(Duration::from_millis(100), || waiter
            .try_wait()
            .unwrap()
            .is_some()),
        "woke at running"
    );
    assert!(
        pod.run(&["phase", "set", "stopping", "--reason", "SIGTERM"])
            .status
            .success()
    );
    assert_eq!(
        wait_exit(&mut waiter, Duration::from_secs(10)),
        Some(0),
        "a later phase satisfies the wait"
    );
    let back = pod.run(&["phase", "set", "running"]);
    assert_eq!(back.status.code(), Some(1));
    assert!(stderr(&back).contains("--force"), "{}", stderr(&back));
    assert!(
        pod.run(&["phase", "set", "running", "--force"])
            .status
            .success()
    );
    assert_eq!(stdout(&pod.run(&["phase", "get"])).trim(), "running");
    let events = stdout(&pod.run(&[
        "event", "watch", "--since", "0", "--kind", "phase", "--count", "3",
    ]));
    let phases: Vec<String> = events
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["data"]["phase"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(phases, ["running", "stopping", "running"]);
}

#[test]
fn wait_ends_on_a_state_where_all_hold_not_on_edges_seen_at_different_times() {
    use std::io::{BufRead, BufReader};
    let mut pod = Pod::new();
    let holder = pod.spawn(&["ready", "a", "--hold"]);
    assert!(eventually(Duration::from_secs(10), || pod
        .run(&["wait", "a", "--timeout", "10ms"])
        .status
        .success()));
    let mut waiter = pod
        .cmd(&["wait", "a", "b", "--timeout", "60s"])
        .env("PODSIGNAL_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Synchronise on the waiter's own word that it has seen `a` hold.
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = waiter.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("condition a holds") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("the waiter never saw a ready");
    kill9(holder);
    assert!(pod.run(&["ready", "b"]).status.success());
    assert!(
        !eventually(Duration::from_millis(300), || waiter
            .try_wait()
            .unwrap()
            .is_some()),
        "returned while a was down"
    );
    assert!(pod.run(&["ready", "a"]).status.success());
    assert_eq!(wait_exit(&mut waiter, Duration::from_secs(10)), Some(0));
}

/// How many descriptors `pid` has open on `path`.
fn descriptors_on(pid: u32, path: &std::path::Path) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |fds| {
        fds.flatten()
            .filter(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t == path))
            .count()
    })
}

/// A one-shot command does its file work on its one thread: starting a thread for a single
/// write cost more than the write (issue 17). Seen while the write waits for the directory's
/// write lock, which the test holds: the writer has then opened `ready/` a second time, to
/// lock it.
#[test]
fn a_one_shot_write_starts_no_thread() {
    let mut pod = Pod::new();
    assert!(pod.run(&["ready", "first"]).status.success());
    let ready_dir = pod.dir.join("ready");
    let lock = std::fs::File::open(&ready_dir).unwrap();
    lock.lock().unwrap();
    let pid = pod.spawn(&["ready", "second"]);
    let in_wait = eventually(Duration::from_secs(10), || {
        descriptors_on(pid, &ready_dir) >= 2
    });
    assert!(in_wait, "the writer never waited for the directory's lock");
    assert_eq!(
        proc_status(pid, "Threads"),
        Some(1),
        "threads while writing"
    );
    drop(lock);
    let mut writer = pod.take(pid);
    assert_eq!(wait_exit(&mut writer, Duration::from_secs(10)), Some(0));
    let out = pod.run(&["wait", "second", "--timeout", "0"]);
    assert!(out.status.success(), "{}", stderr(&out));
}
