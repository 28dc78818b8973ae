//! Whatever the agent holds for a caller over a connection is released when the caller
//! disappears, however it disappears.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod http_support;

use std::process::{Command, Stdio};
use std::time::Duration;

use http_support::{Agent, BIN, json, signal};

fn held(agent: &Agent, what: &str) -> bool {
    json(&agent.get(what).1)["held"].as_bool().unwrap_or(false)
}

#[test]
fn a_lock_held_by_a_killed_client_is_freed() {
    let agent = Agent::start(&[]);
    let mut client = Command::new(BIN)
        .args(["--agent", &agent.url(), "lock", "db", "--", "sleep", "60"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    assert!(http_support::eventually(Duration::from_secs(10), || held(
        &agent,
        "/v1/locks/db"
    )));
    signal(client.id(), "KILL");
    client.wait().unwrap();
    assert!(
        http_support::eventually(Duration::from_secs(10), || !held(&agent, "/v1/locks/db")),
        "the lock stayed held after its HTTP client was killed"
    );
    // And it can be taken again, with a higher token.
    let (s, body) = agent.call("POST", "/v1/locks/db?ttl=5s", &[], None);
    assert_eq!((s, json(&body)["token"].as_u64()), (200, Some(2)), "{body}");
}

#[test]
fn held_readiness_is_retracted_when_the_client_dies() {
    let agent = Agent::start(&[]);
    let mut client = Command::new(BIN)
        .args(["--agent", &agent.url(), "ready", "web", "--hold"])
        .spawn()
        .unwrap();
    assert!(http_support::eventually(Duration::from_secs(10), || {
        json(&agent.get("/v1/readiness/web").1)["ready"] == true
    }));
    signal(client.id(), "KILL");
    client.wait().unwrap();
    let out = agent.cli(&["wait", "--unready", "web", "--timeout", "10s"]);
    assert!(out.status.success(), "held readiness outlived its client");
}

#[test]
fn leadership_passes_when_the_leader_disappears() {
    let agent = Agent::start(&[]);
    let mut leader = Command::new(BIN)
        .args([
            "--agent",
            &agent.url(),
            "leader",
            "sched",
            "--",
            "sleep",
            "60",
        ])
        .spawn()
        .unwrap();
    assert!(http_support::eventually(Duration::from_secs(10), || {
        json(&agent.get("/v1/leaders/sched").1)["leader"]["token"] == 1
    }));
    let port = agent.port;
    let follower = std::thread::spawn(move || {
        http_support::status_only(port, "POST", "/v1/leaders/sched/hold?wait=20s")
    });
    signal(leader.id(), "KILL");
    leader.wait().unwrap();
    assert_eq!(follower.join().unwrap(), 200);
}
