//! Attacks on "one API over both transports" (issue 14): what the CLI does on the volume it
//! must do the same through `--agent URL` (every wait condition, `stop`), and the records
//! written through the agent must name the CLI caller, not the agent.
//!
//! Every `--agent` client here runs with PODSIGNAL_DIR pointing elsewhere (see
//! `Agent::remote`): a client that quietly used the volume instead of the agent would fail.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;
mod http_support;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use http_support::Agent;

/// A Pod whose CLI works on the agent's volume directly.
fn volume_of(agent: &Agent) -> Pod {
    let mut pod = Pod::new();
    pod.dir = agent.dir.clone();
    pod
}

#[test]
fn wait_through_the_agent_takes_exit_and_phase_conditions() {
    // `--agent URL wait exit:app phase:running app2`: 0 once all hold, 124 before.
    let agent = Agent::start(&[]);
    let pod = volume_of(&agent);
    let conds = ["wait", "exit:app", "phase:running", "app2"];
    let mut waiter = Bg(agent
        .remote(&[&conds[..], &["--timeout", "30s"]].concat())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap());
    assert!(
        pod.run(&["run", "--name", "app", "--", "true"])
            .status
            .success()
    );
    assert!(pod.run(&["phase", "set", "running"]).status.success());
    // app2 is still missing: a short wait runs out.
    let out = run_cmd_within(
        &mut agent.remote(&[&conds[..], &["--timeout", "1s"]].concat()),
        Duration::from_secs(15),
        "wait --timeout 1s",
    );
    assert_eq!(out.status.code(), Some(124), "{}", stderr(&out));
    if let Some(s) = waiter.0.try_wait().unwrap() {
        let mut err = String::new();
        std::io::Read::read_to_string(waiter.0.stderr.as_mut().unwrap(), &mut err).unwrap();
        panic!("the waiter ended ({s}) before app2 was ready: {err}");
    }
    assert!(pod.run(&["ready", "app2"]).status.success());
    assert_eq!(
        wait_exit(&mut waiter.0, Duration::from_secs(10)),
        Some(0),
        "the waiter did not see every condition hold"
    );
}

#[test]
fn stop_through_the_agent_stops_a_run_on_the_volume() {
    // `--agent URL stop app` stops `run --name app`: run exits and writes its tombstone.
    let agent = Agent::start(&[]);
    let mut pod = volume_of(&agent);
    let (run, _) = start_run(&mut pod, "app", &[], "exec sleep 300");
    let out = run_cmd_within(
        &mut agent.remote(&["stop", "app"]),
        Duration::from_secs(15),
        "stop",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let mut run = Bg(pod.take(run));
    assert!(
        wait_exit(&mut run.0, Duration::from_secs(15)).is_some(),
        "run was not stopped"
    );
    assert!(
        pod.dir.join("exits/app.json").exists(),
        "no tombstone for app"
    );
}

#[test]
fn an_event_published_through_the_agent_names_the_cli_caller() {
    // `PODSIGNAL_NAME=cli-x podsignal --agent URL event publish k`: source is cli-x.
    let agent = Agent::start(&[]);
    let pod = volume_of(&agent);
    let out = run_cmd_within(
        agent
            .remote(&["event", "publish", "k"])
            .env("PODSIGNAL_NAME", "cli-x"),
        Duration::from_secs(15),
        "event publish",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = pod.run_within(
        &[
            "event",
            "watch",
            "--since",
            "0",
            "--count",
            "1",
            "--timeout",
            "5s",
        ],
        Duration::from_secs(15),
    );
    let event: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(event["source"], "cli-x", "{event}");
}

#[test]
fn a_lock_taken_through_the_agent_names_the_cli_wrapper_as_holder() {
    // `--agent URL lock m -- sh -c 'cat DIR/locks/m.holder.json >H'`: holder.pid is the
    // wrapper's (the CLI process's), not the agent's.
    let agent = Agent::start(&[]);
    let h = agent.dir.with_file_name("H");
    let script = format!(
        "cat {} >{}",
        agent.dir.join("locks/m.holder.json").display(),
        h.display()
    );
    let mut wrapper = Bg(agent
        .remote(&["lock", "m", "--", "sh", "-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap());
    let pid = wrapper.id();
    assert_eq!(wait_exit(&mut wrapper.0, Duration::from_secs(15)), Some(0));
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&h).unwrap()).unwrap();
    assert_eq!(
        record["holder"]["pid"],
        pid,
        "holder is not the CLI wrapper (agent pid {}): {record}",
        agent.child.id()
    );
}

#[test]
fn run_through_the_agent_publishes_readiness_takes_stop_requests_and_writes_its_tombstone() {
    // `run` works the same through `--agent`: its readiness, stop requests and tombstone
    // go through the agent to the volume, where the others see them.
    let agent = Agent::start(&[]);
    let pod = volume_of(&agent);
    let tmp = tempfile::tempdir().unwrap();
    let go = tmp.path().join("go");
    let mut run = Bg(agent
        .remote(&[
            "run",
            "--name",
            "app",
            "--ready-when",
            &format!("file:{}", go.display()),
            "--",
            "sh",
            "-c",
            "trap 'exit 0' TERM; while :; do sleep 0.1; done",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap());
    assert!(
        !pod.run(&["wait", "app", "--timeout", "300ms"])
            .status
            .success(),
        "ready before its probe passed"
    );
    std::fs::write(&go, "").unwrap();
    let out = pod.run(&["wait", "app", "--timeout", "10s"]);
    assert!(
        out.status.success(),
        "never ready on the volume: {}",
        stderr(&out)
    );
    let status: serde_json::Value =
        serde_json::from_str(&stdout(&pod.run(&["status", "--json"]))).unwrap();
    assert_eq!(
        status["readiness"][0]["record"]["writer"]["source"], "app",
        "the record names run --name, not the agent: {status}"
    );
    assert!(
        pod.run(&["stop", "app", "--reason", "done"])
            .status
            .success()
    );
    assert_eq!(wait_exit(&mut run.0, Duration::from_secs(10)), Some(0));
    let t: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(agent.dir.join("exits/app.json")).unwrap())
            .unwrap();
    assert_eq!(t["stopped"], true, "{t}");
    assert!(t["reason"].as_str().unwrap().contains("done"), "{t}");
    assert_eq!(t["writer"]["source"], "app");
    let out = pod.run(&["wait", "--unready", "app", "--timeout", "5s"]);
    assert!(
        out.status.success(),
        "readiness outlived run: {}",
        stderr(&out)
    );
}

#[test]
fn a_hold_retracted_through_the_agent_says_why_as_on_the_volume() {
    // `ready --hold` stopped by SIGTERM retracts with "holder stopped by SIGTERM" on the
    // volume; through the agent the closing connection must not overwrite that reason.
    let agent = Agent::start(&[]);
    let pod = volume_of(&agent);
    let holder = Bg(agent
        .remote(&["ready", "web", "--hold"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap());
    assert!(
        pod.run(&["wait", "web", "--timeout", "10s"])
            .status
            .success()
    );
    signal(holder.id(), "TERM");
    let mut holder = holder;
    assert_eq!(wait_exit(&mut holder.0, Duration::from_secs(10)), Some(0));
    // The agent ends the hold when it sees the connection close: poll for it.
    let record = || -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(agent.dir.join("ready/web.json")).unwrap())
            .unwrap()
    };
    assert!(
        eventually(Duration::from_secs(5), || record()["held"] == false),
        "{}",
        record()
    );
    assert_eq!(
        record()["reason"],
        "holder stopped by SIGTERM",
        "{}",
        record()
    );
}
