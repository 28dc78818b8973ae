//! Generations (`podsignal reset`): a Pod restarted in place keeps its emptyDir, and the last
//! run's tombstones, readiness, stop requests and phase must not count in the new one. Real
//! processes on a real directory.

// Helpers outside #[test] fns unwrap too: in a test, a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;

fn json_of(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn reset(pod: &Pod) -> serde_json::Value {
    let out = pod.run(&["reset", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}

/// The issue's hazard: main exited in the last run; the Pod restarts in place, the init
/// container resets, and the sidecar with `--exit-with exit:main` must wait for main's exit in
/// this run, not leave at once on the old tombstone.
#[test]
fn a_sidecar_waits_for_this_generations_exit_not_the_last_ones() {
    let mut pod = Pod::new();
    assert!(
        pod.run(&["run", "--name", "main", "--", "true"])
            .status
            .success()
    );
    assert!(pod.dir.join("exits/main.json").exists());

    let out = pod.run(&["reset"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "2");
    assert!(
        stderr(&out).contains("generation 2 started"),
        "{}",
        stderr(&out)
    );

    let side = pod.spawn(&[
        "--rescan",
        "1h",
        "run",
        "--name",
        "side",
        "--exit-with",
        "exit:main",
        "--",
        "sleep",
        "30",
    ]);
    let mut side = pod.take(side);
    assert!(
        !eventually(Duration::from_millis(500), || side
            .try_wait()
            .unwrap()
            .is_some()),
        "the sidecar exited on the last generation's tombstone"
    );
    assert!(
        pod.run(&["run", "--name", "main", "--", "true"])
            .status
            .success()
    );
    assert_eq!(wait_exit(&mut side, Duration::from_secs(10)), Some(143));
}

#[test]
fn reset_removes_the_last_runs_records_and_carries_live_holds_over() {
    let mut pod = Pod::new();
    assert!(pod.run(&["ready", "db"]).status.success());
    assert!(
        pod.run(&[
            "run",
            "--name",
            "job",
            "--ready-when",
            "never",
            "--",
            "true"
        ])
        .status
        .success()
    );
    assert!(pod.run(&["stop", "proxy"]).status.success());
    assert!(pod.run(&["phase", "set", "running"]).status.success());
    // A held record whose holder survives the restart (a sidecar that kept running), and
    // one whose holder is gone.
    pod.spawn(&["ready", "web", "--hold"]);
    let gone = pod.spawn(&["ready", "cache", "--hold"]);
    assert!(
        pod.run(&["wait", "web", "cache", "--timeout", "5s"])
            .status
            .success()
    );
    kill9(gone);
    assert!(
        pod.run(&["wait", "--unready", "cache", "--timeout", "5s"])
            .status
            .success()
    );
    let lock = pod.run(&[
        "lock",
        "m",
        "--",
        "sh",
        "-c",
        "echo $PODSIGNAL_FENCING_TOKEN",
    ]);
    let token: u64 = stdout(&lock).trim().parse().unwrap();
    let seq_before = json_of_status(&pod)["events"]["last_seq"].as_u64().unwrap();

    let done = reset(&pod);
    assert_eq!(done["generation"], 2);
    assert_eq!(done["previous"], 1);
    assert_eq!(done["previous_phase"], "running");
    assert_eq!(done["removed"]["ready"], serde_json::json!(["cache", "db"]));
    assert_eq!(done["removed"]["exits"], serde_json::json!(["job"]));
    assert_eq!(done["removed"]["stop"], serde_json::json!(["proxy"]));
    assert_eq!(done["carried"], serde_json::json!(["web"]));

    for gone in [
        "ready/db.json",
        "ready/cache.json",
        "exits/job.json",
        "stop/proxy.json",
    ] {
        assert!(!pod.dir.join(gone).exists(), "{gone} is still there");
    }
    assert!(
        pod.run(&["wait", "web", "--timeout", "1s"])
            .status
            .success(),
        "web was dropped"
    );
    assert_eq!(stdout(&pod.run(&["phase", "get"])).trim(), "starting");
    assert!(
        pod.run(&["phase", "set", "running"]).status.success(),
        "forward from starting"
    );
    assert_eq!(json_of(&pod.dir.join("generation.json"))["generation"], 2);

    // The counters and the log go on.
    let lock = pod.run(&[
        "lock",
        "m",
        "--",
        "sh",
        "-c",
        "echo $PODSIGNAL_FENCING_TOKEN",
    ]);
    assert_eq!(stdout(&lock).trim().parse::<u64>().unwrap(), token + 1);
    let events = pod.run(&[
        "event",
        "watch",
        "--since",
        &seq_before.to_string(),
        "--timeout",
        "100ms",
    ]);
    let marker: serde_json::Value = stdout(&events)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["kind"] == "generation")
        .expect("a generation event");
    assert_eq!(marker["seq"].as_u64(), Some(seq_before + 1));
    assert_eq!(marker["data"]["generation"], 2);
    assert_eq!(marker["data"]["removed"], done["removed"]);

    let status = json_of_status(&pod);
    assert_eq!(status["generation"], 2);
    let shown = stdout(&pod.run(&["status"]));
    assert!(shown.contains("GEN    2"), "{shown}");
}

fn json_of_status(pod: &Pod) -> serde_json::Value {
    let out = pod.run(&["status", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}

/// A record of an older generation (a writer that raced the reset, an older podsignal, a
/// script that does not stamp its records) reads as absent, and the wait says why.
#[test]
fn records_of_an_older_generation_read_as_absent_and_say_why() {
    let pod = Pod::new();
    reset(&pod);
    reset(&pod);
    let writer = r#""writer":{"pid":1,"hostname":"h","incarnation":"0123456789abcdef"}"#;
    let ready = format!(
        r#"{{"version":1,"name":"db","state":"ready","held":false,"generation":2,{writer},"since_ms":1,"updated_ms":1}}"#
    );
    std::fs::write(pod.dir.join("ready/db.json"), ready).unwrap();
    let tomb = format!(
        r#"{{"version":1,"name":"main","exit_code":0,"code":0,"stopped":false,"reason":"exited with code 0","started_ms":1,"exited_ms":2,{writer}}}"#
    );
    std::fs::write(pod.dir.join("exits/main.json"), tomb).unwrap();
    std::fs::write(
        pod.dir.join("phase.json"),
        format!(r#"{{"version":1,"phase":"draining","generation":2,{writer},"updated_ms":1}}"#),
    )
    .unwrap();

    let out = pod.run(&["wait", "db", "exit:main", "--timeout", "300ms"]);
    assert_eq!(out.status.code(), Some(124));
    let err = stderr(&out);
    for want in [
        "db: ready in generation 2, now generation 3",
        "exits/main.json: exited with 0 in generation 1, now generation 3",
    ] {
        assert!(err.contains(want), "{want:?} missing in {err}");
    }
    assert_eq!(stdout(&pod.run(&["phase", "get"])).trim(), "starting");
    let status = json_of_status(&pod);
    let db = &status["readiness"][0];
    assert_eq!(db["ready"], false);
    assert_eq!(
        db["record"]["generation"], 2,
        "status still shows the record: {db}"
    );

    // Written in this generation, the same record counts.
    assert!(pod.run(&["ready", "db"]).status.success());
    assert_eq!(json_of(&pod.dir.join("ready/db.json"))["generation"], 3);
    assert!(pod.run(&["wait", "db", "--timeout", "1s"]).status.success());
}

/// Only the generation changes (by hand here, as a neighbour following the protocol would):
/// a waiter that sleeps on inotify alone is woken by it and re-reads every name.
#[test]
fn a_waiter_is_woken_by_a_new_generation() {
    let mut pod = Pod::new();
    assert!(pod.run(&["ready", "db"]).status.success());
    let waiter = pod.spawn(&["--rescan", "1h", "wait", "--unready", "db"]);
    let mut waiter = pod.take(waiter);
    assert!(
        !eventually(Duration::from_millis(200), || waiter
            .try_wait()
            .unwrap()
            .is_some()),
        "db is ready: the wait for unready cannot be over"
    );
    let record = r#"{"version":1,"generation":7,"writer":{"pid":1,"hostname":"h","incarnation":"0123456789abcdef"},"updated_ms":1}"#;
    let tmp = pod.dir.join(".generation.json.1.0000000000000000.tmp");
    std::fs::write(&tmp, record).unwrap();
    std::fs::rename(&tmp, pod.dir.join("generation.json")).unwrap();
    assert_eq!(wait_exit(&mut waiter, Duration::from_secs(5)), Some(0));
}

#[test]
fn concurrent_resets_get_distinct_generations() {
    let pod = Pod::new();
    let children: Vec<_> = (0..6)
        .map(|_| {
            pod.cmd(&["reset"])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut got: Vec<u64> = children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", stderr(&out));
            stdout(&out).trim().parse().unwrap()
        })
        .collect();
    got.sort();
    assert_eq!(got, vec![2, 3, 4, 5, 6, 7]);
    assert_eq!(json_of(&pod.dir.join("generation.json"))["generation"], 7);
}

/// The number never goes back: a deleted generation record continues from the log's last
/// `generation` event; a broken one is an error naming it and the fix, never a panic.
#[test]
fn a_lost_or_broken_generation_record_never_sends_the_number_back() {
    let pod = Pod::new();
    reset(&pod);
    reset(&pod);
    let file = pod.dir.join("generation.json");
    std::fs::remove_file(&file).unwrap();
    assert_eq!(reset(&pod)["generation"], 4);

    let shown = file.display().to_string();
    for (what, make) in [
        (
            "garbage",
            Box::new(|p: &std::path::Path| std::fs::write(p, "{garbage").unwrap())
                as Box<dyn Fn(&std::path::Path)>,
        ),
        (
            "huge",
            Box::new(|p: &std::path::Path| std::fs::write(p, vec![b' '; 1 << 20]).unwrap()),
        ),
        (
            "symlink",
            Box::new(|p: &std::path::Path| std::os::unix::fs::symlink("/etc/passwd", p).unwrap()),
        ),
        (
            "generation 0",
            Box::new(|p: &std::path::Path| {
                std::fs::write(p, r#"{"version":1,"generation":0,"writer":{"pid":1,"hostname":"h","incarnation":"0123456789abcdef"},"updated_ms":1}"#).unwrap()
            }),
        ),
    ] {
        std::fs::remove_file(&file).unwrap();
        make(&file);
        for args in [&["ready", "db"][..], &["phase", "set", "running"][..]] {
            let out = pod.run(args);
            assert_eq!(
                out.status.code(),
                Some(1),
                "{what}: {args:?}: {}",
                stderr(&out)
            );
            let err = stderr(&out);
            assert!(
                err.contains(&shown) && err.contains("`podsignal reset`"),
                "{what}: {err}"
            );
            assert!(!err.contains("panicked"), "{err}");
        }
        let out = pod.run(&["wait", "db", "--timeout", "200ms"]);
        assert_eq!(out.status.code(), Some(124), "{what}");
        assert!(stderr(&out).contains(&shown), "{what}: {}", stderr(&out));
        let status = json_of_status(&pod);
        assert_eq!(status["generation"], serde_json::Value::Null, "{what}");
        assert!(
            status["problems"].to_string().contains(&shown),
            "{what}: {status}"
        );
        // reset is the repair, and continues from the log.
        let before = json_of_status(&pod)["events"]["last_seq"].as_u64().unwrap();
        let done = reset(&pod);
        assert!(done["generation"].as_u64().unwrap() >= 5, "{what}: {done}");
        assert!(before > 0);
        assert!(
            pod.run(&["ready", "db"]).status.success(),
            "{what}: repaired"
        );
    }
}

/// The agent shows the generation; reset itself is what an init container does to the
/// directory it mounts, so it is refused through the agent, saying so.
#[test]
fn the_agent_shows_the_generation_and_reset_needs_the_directory() {
    let mut pod = Pod::new();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    pod.spawn(&["agent", "--listen", &listen]);
    let url = format!("http://{listen}");
    assert!(eventually(Duration::from_secs(10), || {
        pod.run(&["--agent", &url, "status"]).status.success()
    }));
    let out = pod.run(&["--agent", &url, "reset"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not through --agent"),
        "{}",
        stderr(&out)
    );
    assert!(!pod.dir.join("generation.json").exists());

    assert!(
        pod.run(&["run", "--name", "main", "--", "true"])
            .status
            .success()
    );
    let out = pod.run(&["reset", "--reason", "restarted in place"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        json_of(&pod.dir.join("generation.json"))["reason"],
        "restarted in place"
    );
    let status = pod.run(&["--agent", &url, "status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&stdout(&status)).unwrap();
    assert_eq!(status["generation"], 2);
    // A tombstone of the last generation, as a racing writer could leave it: none.
    let tomb = r#"{"version":1,"name":"main","exit_code":0,"stopped":false,"reason":"x","started_ms":1,"exited_ms":2,"writer":{"pid":1,"hostname":"h","incarnation":"0123456789abcdef"}}"#;
    std::fs::write(pod.dir.join("exits/main.json"), tomb).unwrap();
    let out = pod.run(&["--agent", &url, "wait", "exit:main", "--timeout", "300ms"]);
    assert_eq!(out.status.code(), Some(124), "{}", stderr(&out));
}

/// `install --reset` (what `inject` puts in its installer): installs, then resets.
#[test]
fn install_reset_installs_then_starts_a_generation() {
    let pod = Pod::new();
    assert!(
        pod.run(&["run", "--name", "main", "--", "true"])
            .status
            .success()
    );
    let bin = pod.path("bin");
    std::fs::create_dir(&bin).unwrap();
    let out = pod.run(&[
        "install",
        bin.to_str().unwrap(),
        "--reset",
        "--access",
        "all",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(bin.join("podsignal").exists());
    assert_eq!(stdout(&out).trim(), "2");
    assert!(!pod.dir.join("exits/main.json").exists());
}

/// A stop request of an older generation (one a racing `podsignal stop` wrote as the reset
/// switched) is not acted on; one of this generation is.
#[test]
fn a_stop_request_of_an_older_generation_stops_nothing() {
    let mut pod = Pod::new();
    reset(&pod);
    let (run, _) = start_run(&mut pod, "side", &[], "sleep 30");
    let mut run = pod.take(run);
    let stale = r#"{"version":1,"name":"side","reason":"last run","writer":{"pid":1,"hostname":"h","incarnation":"0123456789abcdef"},"requested_ms":1}"#;
    std::fs::write(pod.dir.join("stop/side.json"), stale).unwrap();
    assert!(
        !eventually(Duration::from_millis(500), || run
            .try_wait()
            .unwrap()
            .is_some()),
        "stopped by a stop request of generation 1 in generation 2"
    );
    assert!(pod.run(&["stop", "side"]).status.success());
    assert_eq!(wait_exit(&mut run, Duration::from_secs(10)), Some(143));
}
