//! Long-polls and the volume agree: a waiter on one side is released by a write on the
//! other, each side in its own process. Both run with `--rescan 1h`, so only an inotify
//! wake-up can release a waiter before the generous deadlines here: the tests prove the
//! event path without timing it (latency is measured in bench/, not asserted in tests).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod http_support;

use std::process::Command;
use std::time::{Duration, Instant};

use http_support::{Agent, BIN};

#[test]
fn http_long_poll_is_released_by_a_volume_write() {
    let agent = Agent::start(&["--rescan", "1h"]);
    let port = agent.port;
    let waiter = std::thread::spawn(move || {
        let r = http_support::raw(
            port,
            "GET",
            "/v1/readiness/db?wait=20s",
            &[("Host", "localhost")],
            None,
        );
        (r, Instant::now())
    });
    // The waiter is parked once the agent counts it.
    assert!(http_support::eventually(Duration::from_secs(10), || {
        agent.get("/metrics").1.contains("podsignal_waiters 1")
    }));
    let out = agent.cli(&["ready", "db"]);
    let written = Instant::now();
    assert!(out.status.success());
    let ((status, body), released) = waiter.join().unwrap();
    assert_eq!(status, 200, "{body}");
    let lag = released.saturating_duration_since(written);
    assert!(
        lag < Duration::from_secs(10),
        "released {lag:?} after the write: not by inotify"
    );
    eprintln!("long-poll released {lag:?} after the volume write");
}

/// True once `pid` has an inotify instance open: a podsignal waiter is then watching.
fn watching(pid: u32) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
        fds.flatten().any(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|t| t.to_string_lossy().contains("inotify"))
        })
    })
}

#[test]
fn volume_waiter_is_released_by_an_http_write() {
    let agent = Agent::start(&["--rescan", "1h"]);
    let mut waiter = Command::new(BIN)
        .args(["--rescan", "1h", "wait", "api", "--timeout", "60s"])
        .env("PODSIGNAL_DIR", &agent.dir)
        .spawn()
        .unwrap();
    // Write once the waiter watches (a write before that would release it at once too, by
    // its first look at the state; this way the inotify wake-up is what is tested).
    assert!(http_support::eventually(Duration::from_secs(10), || {
        watching(waiter.id())
    }));
    assert!(
        waiter.try_wait().unwrap().is_none(),
        "the waiter exited before the write"
    );
    let (s, _) = agent.json("PUT", "/v1/readiness/api", r#"{"ready":true}"#);
    let written = Instant::now();
    assert_eq!(s, 200);
    let status = waiter.wait().unwrap();
    let lag = written.elapsed();
    assert!(status.success());
    assert!(
        lag < Duration::from_secs(10),
        "volume waiter released {lag:?} after the HTTP write: not by inotify"
    );
    eprintln!("volume waiter released {lag:?} after the HTTP write");
}

#[test]
fn cli_through_the_agent_uses_the_agent_not_the_volume() {
    let agent = Agent::start(&[]);
    let elsewhere = tempfile::tempdir().unwrap();
    let via = |args: &[&str]| {
        Command::new(BIN)
            .arg("--agent")
            .arg(agent.url())
            .args(args)
            .env("PODSIGNAL_DIR", elsewhere.path())
            .output()
            .unwrap()
    };
    assert!(via(&["ready", "web", "--reason", "up"]).status.success());
    assert!(
        agent
            .cli(&["wait", "web", "--timeout", "1s"])
            .status
            .success()
    );
    assert!(via(&["unready", "web"]).status.success());
    assert!(
        agent
            .cli(&["wait", "--unready", "web", "--timeout", "1s"])
            .status
            .success()
    );
    assert!(via(&["phase", "set", "running"]).status.success());
    assert_eq!(
        String::from_utf8_lossy(&via(&["phase", "get"]).stdout).trim(),
        "running"
    );
    assert!(
        via(&["phase", "wait", "running", "--timeout", "1s"])
            .status
            .success()
    );
    let out = via(&["event", "publish", "hello", "--data", "{\"a\":1}"]);
    assert!(out.status.success());
    let out = via(&[
        "event",
        "watch",
        "--since",
        "0",
        "--kind",
        "hello",
        "--count",
        "1",
        "--timeout",
        "5s",
    ]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("\"hello\""),
        "{out:?}"
    );
    let out = via(&["status", "--json"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(&agent.dir.display().to_string()));
    let out = via(&[
        "lock",
        "db",
        "--",
        "sh",
        "-c",
        "echo $PODSIGNAL_FENCING_TOKEN",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1");
    let out = via(&["leader", "sched", "--", "true"]);
    assert!(out.status.success());
    // Nothing was written to the other directory.
    assert!(
        std::fs::read_dir(elsewhere.path())
            .unwrap()
            .next()
            .is_none()
    );
}

/// Starts a long-poll on `path` in a thread, once the agent counts it as a waiter.
fn parked_poll(agent: &Agent, path: &'static str) -> std::thread::JoinHandle<(u16, String)> {
    let port = agent.port;
    let poll = std::thread::spawn(move || {
        http_support::raw(port, "GET", path, &[("Host", "localhost")], None)
    });
    assert!(http_support::eventually(Duration::from_secs(10), || {
        agent.get("/metrics").1.contains("podsignal_waiters 1")
    }));
    poll
}

#[test]
fn a_phase_wait_without_a_target_ends_at_the_next_phase() {
    let agent = Agent::start(&[]);
    assert!(agent.cli(&["phase", "set", "running"]).status.success());
    let poll = parked_poll(&agent, "/v1/phase?wait=30s");
    assert!(agent.cli(&["phase", "set", "draining"]).status.success());
    let (s, body) = poll.join().unwrap();
    assert_eq!(s, 200, "{body}");
    assert!(body.contains("\"phase\":\"draining\""), "{body}");
}

#[test]
fn a_readiness_wait_without_names_waits_for_every_name_listed() {
    let agent = Agent::start(&[]);
    assert!(agent.cli(&["ready", "web"]).status.success());
    assert!(agent.cli(&["unready", "db"]).status.success());
    let poll = parked_poll(&agent, "/v1/readiness?wait=30s");
    assert!(agent.cli(&["ready", "db"]).status.success());
    let (s, body) = poll.join().unwrap();
    assert_eq!(s, 200, "{body}");
    let names: Vec<String> = http_support::json(&body)
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["ready"] == true)
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["db", "web"], "{body}");
}

#[test]
fn many_waiters_on_a_name_share_one_check_per_rescan() {
    // With one rescan timer per waiter, 40 idle waiters cost 40 checks per interval; with
    // the readiness hub, one per name: the rescans counter moves by ~1 per interval.
    let agent = Agent::start(&["--rescan", "200ms"]);
    let port = agent.port;
    let waiters: Vec<_> = (0..40)
        .map(|_| {
            std::thread::spawn(move || {
                http_support::raw(
                    port,
                    "GET",
                    "/v1/readiness/db?wait=60s",
                    &[("Host", "localhost")],
                    None,
                )
            })
        })
        .collect();
    assert!(http_support::eventually(Duration::from_secs(20), || {
        agent.get("/metrics").1.contains("podsignal_waiters 40")
    }));
    let rescans = || agent.metric("podsignal_rescans_total");
    let before = rescans();
    let mut seen = before;
    assert!(http_support::eventually(Duration::from_secs(20), || {
        seen = rescans();
        seen >= before + 3.0
    }));
    assert!(
        seen - before < 20.0,
        "{} rescans for 40 idle waiters over ~3 intervals: each waiter rescans on its own",
        seen - before
    );
    assert!(agent.cli(&["ready", "db"]).status.success());
    for w in waiters {
        let (status, body) = w.join().unwrap();
        assert_eq!(status, 200, "{body}");
    }
}
