//! Attacks on held things (issue 14, items 2, 3, 12, 13 and 15): a sticky write must not
//! delete a live holder's liveness, a retraction must only retract its own hold, long
//! heartbeats must work, half-closed and stopped clients behave as decided, and a crash loop
//! must not leave debris behind.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;
mod http_support;

use std::net::Shutdown;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Bg, Pod, kill9, require_tool, sd_notify_sender, signal, stderr, stdout, wait_exit};
use http_support::{Agent, BIN, json, open_hold};

fn status_json(pod: &Pod) -> serde_json::Value {
    let out = pod.run(&["status", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}

fn readiness<'a>(status: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    status["readiness"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {status}"))
}

fn record(pod: &Pod, name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(pod.dir.join(format!("ready/{name}.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn a_sticky_unready_does_not_delete_the_liveness_of_a_live_notify_holder() {
    // Item 2: `run --ready-when notify` is ready; `unready web` (sticky) from a neighbour;
    // the child then sends STATUS=again and run rewrites its held record: the holder lives,
    // so web is ready. (Before: "its holder (pid N) is gone" while it lives.)
    require_tool("python3", "--version");
    let mut pod = Pod::new();
    let go = pod.path("go");
    let notify = sd_notify_sender(pod.tmp.path());
    let script = format!(
        "python3 {notify} READY=1; while [ ! -e {} ]; do sleep 0.05; done; \
         python3 {notify} STATUS=again; exec sleep 300",
        go.display()
    );
    pod.spawn(&[
        "run",
        "--name",
        "web",
        "--ready-when",
        "notify",
        "--",
        "sh",
        "-c",
        &script,
    ]);
    let out = pod.run(&["wait", "web", "--timeout", "10s"]);
    assert!(out.status.success(), "web never ready: {}", stderr(&out));
    let out = pod.run(&["unready", "web", "--reason", "neighbour"]);
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::write(&go, "").unwrap();
    let out = pod.run(&["wait", "web", "--timeout", "5s"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "web is not ready again after STATUS=again from its live holder: {}",
        stderr(&out)
    );
    let status = status_json(&pod);
    let web = readiness(&status, "web");
    assert_eq!(web["ready"], true, "{web}");
    assert_eq!(web["holder_alive"], true, "{web}");
}

#[test]
fn closing_a_hold_over_http_does_not_retract_someone_elses_sticky_ready() {
    // Item 3 (agent): A holds web over a connection, B writes a sticky ready, A closes.
    let agent = Agent::start(&[]);
    let (a, _) = open_hold(agent.port, "/v1/readiness/web/hold");
    assert!(http_support::eventually(Duration::from_secs(10), || {
        json(&agent.get("/v1/readiness/web").1)["ready"] == true
    }));
    let (s, body) = agent.json("PUT", "/v1/readiness/web", r#"{"ready":true,"reason":"b"}"#);
    assert!(s < 300, "{s} {body}");
    drop(a);
    // The agent has processed the close once it holds nothing any more; then give a
    // retraction that might still be under way a bounded chance (1 s) to show up.
    assert!(
        http_support::eventually(Duration::from_secs(10), || agent.metric("podsignal_holds")
            == 0.0),
        "the agent still holds web after its client closed"
    );
    let retracted = http_support::eventually(Duration::from_secs(1), || {
        json(&agent.get("/v1/readiness/web").1)["ready"] != true
    });
    let (_, body) = agent.get("/v1/readiness/web");
    let v = json(&body);
    assert!(!retracted, "A's close retracted B's sticky record: {body}");
    assert_eq!(v["ready"], true, "{body}");
    assert_eq!(v["record"]["held"], false, "{body}");
    assert_eq!(v["record"]["reason"], "b", "{body}");
}

#[test]
fn a_terminated_holder_does_not_retract_a_sticky_ready_written_after_it() {
    // Item 3 (volume): `ready web --hold` (A), then `ready web --reason b`, then SIGTERM A.
    let mut pod = Pod::new();
    let a = pod.spawn(&["ready", "web", "--hold"]);
    assert!(
        pod.run(&["wait", "web", "--timeout", "10s"])
            .status
            .success()
    );
    assert!(pod.run(&["ready", "web", "--reason", "b"]).status.success());
    signal(a, "TERM");
    let mut a = Bg(pod.take(a));
    assert!(
        wait_exit(&mut a.0, Duration::from_secs(10)).is_some(),
        "A ignored SIGTERM"
    );
    let r = record(&pod, "web");
    assert_eq!(r["state"], "ready", "{r}");
    assert_eq!(r["reason"], "b", "{r}");
    assert_eq!(r["held"], false, "{r}");
    let out = pod.run(&["wait", "web", "--timeout", "1s"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_lock_held_through_the_agent_outlives_30_seconds_of_heartbeat_silence() {
    // Item 12: `agent --heartbeat 40s`; the CLI must not give up after 30 s without a line
    // ("lost while the command ran"). ~35 s by construction.
    let agent = Agent::start(&["--heartbeat", "40s"]);
    let mut client = Command::new(BIN)
        .args(["--agent", &agent.url(), "lock", "m", "--", "sleep", "35"])
        .env_remove("PODSIGNAL_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let code = wait_exit(&mut client, Duration::from_secs(60));
    if code.is_none() {
        let _ = client.kill();
    }
    let _ = client.wait();
    let mut err = String::new();
    std::io::Read::read_to_string(client.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn the_held_line_announces_the_heartbeat_interval() {
    // Item 12: the `held` line of a hold carries `heartbeat_ms`.
    let agent = Agent::start(&["--heartbeat", "40s"]);
    let (_conn, held) = open_hold(agent.port, "/v1/locks/m/hold");
    assert_eq!(held["type"], "held", "{held}");
    assert_eq!(held["heartbeat_ms"], 40000, "{held}");
}

#[test]
fn a_half_closed_hold_is_released_at_once() {
    // Item 13: read the `held` line, then shutdown(SHUT_WR): the lock is released while the
    // socket stays open (heartbeats can still be written to it, so only reading tells).
    let agent = Agent::start(&[]);
    let (conn, held) = open_hold(agent.port, "/v1/locks/m/hold");
    assert_eq!(held["type"], "held", "{held}");
    conn.get_ref().shutdown(Shutdown::Write).unwrap();
    let released = http_support::eventually(Duration::from_secs(5), || {
        json(&agent.get("/v1/locks/m").1)["held"] == false
    });
    assert!(released, "a half-closed hold is still held after 5 s");
    drop(conn);
}

#[test]
fn a_stopped_client_keeps_its_hold_until_it_is_killed() {
    // Item 13: like a stopped flock(1) holder, a SIGSTOPped client keeps the lock.
    require_tool("curl", "--version");
    let agent = Agent::start(&["--heartbeat", "100ms"]);
    let mut curl = Bg(Command::new("curl")
        .args([
            "-sN",
            "-X",
            "POST",
            &format!("{}/v1/locks/m/hold", agent.url()),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap());
    let held = |agent: &Agent| json(&agent.get("/v1/locks/m").1)["held"] == true;
    assert!(
        http_support::eventually(Duration::from_secs(10), || held(&agent)),
        "curl never got the lock"
    );
    signal(curl.id(), "STOP");
    // Bounded look: 1 s is 10 heartbeats the stopped client does not read.
    let lost = http_support::eventually(Duration::from_secs(1), || !held(&agent));
    assert!(!lost, "a stopped client lost its hold");
    kill9(curl.id());
    curl.0.wait().unwrap();
    assert!(
        http_support::eventually(Duration::from_secs(5), || !held(&agent)),
        "the lock stayed held after its stopped client was killed"
    );
}

/// The names in `ready/` that are debris: liveness files and temporary files.
fn debris(pod: &Pod) -> Vec<String> {
    std::fs::read_dir(pod.dir.join("ready"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".live") || (n.starts_with('.') && n.ends_with(".tmp")))
        .collect()
}

#[test]
fn a_crash_loop_of_holders_leaves_no_debris_once_the_name_is_written_again() {
    // Item 15: 200 rounds of `ready x --hold` killed after 0..3 ms (varying: fault injection,
    // to land the kill at different points of the write), then one sticky `ready x`.
    let pod = Pod::new();
    assert!(
        pod.run(&["ready", "seed"]).status.success(),
        "create ready/"
    );
    for i in 0..200u64 {
        let mut c = pod
            .cmd(&["ready", "x", "--hold"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros((i * 397) % 3001));
        kill9(c.id());
        c.wait().unwrap();
    }
    let out = pod.run(&["ready", "x"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let left = debris(&pod);
    assert!(
        left.is_empty(),
        "{} files left in ready/ after the crash loop: {left:?}",
        left.len()
    );
}

#[test]
fn a_dead_holders_file_is_a_problem_until_its_name_is_written_again() {
    // Item 15: `ready y --hold`, kill -9: `status --json` lists it under problems.
    let mut pod = Pod::new();
    let y = pod.spawn(&["ready", "y", "--hold"]);
    assert!(pod.run(&["wait", "y", "--timeout", "10s"]).status.success());
    kill9(y);
    let mut y = pod.take(y);
    y.wait().unwrap();
    let mentions_y = |pod: &Pod| {
        status_json(pod)["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p.as_str().unwrap_or_default().contains("ready/y"))
    };
    assert!(
        mentions_y(&pod),
        "the dead holder's file is not under problems: {}",
        status_json(&pod)["problems"]
    );
    assert!(pod.run(&["ready", "y"]).status.success());
    assert!(
        !mentions_y(&pod),
        "still a problem after y was written again: {}",
        status_json(&pod)["problems"]
    );
}
