//! `run --name NAME` writes as NAME (readiness record, tombstone, events), and its events
//! carry the incarnation that tells one start of NAME from the next.

// Helpers outside #[test] fns unwrap too: in a test, a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

fn json_file(pod: &Pod, rel: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(pod.dir.join(rel)).unwrap()).unwrap()
}

/// Every event in the log, oldest first.
fn events(pod: &Pod) -> Vec<Value> {
    let out = pod.run(&["event", "watch", "--since", "0", "--timeout", "200ms"]);
    stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Runs `run --name app --ready-when exec:true` until it is ready, then stops it with
/// SIGTERM; returns the readiness record as it was while ready.
fn one_run(pod: &mut Pod) -> Value {
    let r = pod.spawn(&[
        "run",
        "--name",
        "app",
        "--ready-when",
        "exec:true",
        "--",
        "sh",
        "-c",
        "trap 'exit 0' TERM; sleep 30 & wait",
    ]);
    let mut run = pod.take(r);
    assert!(
        pod.run(&["wait", "app", "--timeout", "5s"])
            .status
            .success()
    );
    let record = json_file(pod, "ready/app.json");
    std::process::Command::new("kill")
        .args(["-TERM", &r.to_string()])
        .status()
        .unwrap();
    assert_eq!(wait_exit(&mut run, Duration::from_secs(5)), Some(0));
    record
}

#[test]
fn run_name_is_the_writer_of_its_record_tombstone_and_events() {
    let mut pod = Pod::new();
    let record = one_run(&mut pod);
    // PODSIGNAL_NAME is not set for run itself (the test harness removes it): --name is.
    assert_eq!(record["writer"]["source"], "app", "{record}");
    let tombstone = json_file(&pod, "exits/app.json");
    assert_eq!(tombstone["writer"]["source"], "app", "{tombstone}");
    let ev = events(&pod);
    let kinds: Vec<&str> = ev.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    for kind in ["start", "stop", "exit"] {
        assert!(kinds.contains(&kind), "no {kind} event: {ev:?}");
    }
    for e in &ev {
        assert_eq!(e["source"], "app", "an event not written as app: {e}");
    }
    let out = stdout(&pod.run(&["status"]));
    assert!(!out.contains('@'), "status names a pid@host writer: {out}");
}

#[test]
fn start_stop_and_exit_events_carry_the_incarnation_of_each_run() {
    let mut pod = Pod::new();
    let first = one_run(&mut pod);
    let first_tombstone = json_file(&pod, "exits/app.json");
    let second = one_run(&mut pod);
    let (a, b) = (
        first["writer"]["incarnation"].as_str().unwrap().to_owned(),
        second["writer"]["incarnation"].as_str().unwrap().to_owned(),
    );
    assert_ne!(a, b, "two runs, one incarnation");
    assert_eq!(first_tombstone["writer"]["incarnation"], a.as_str());
    let ev = events(&pod);
    let of = |kind: &str| -> Vec<String> {
        ev.iter()
            .filter(|e| e["kind"] == kind)
            .map(|e| e["data"]["incarnation"].as_str().unwrap().to_owned())
            .collect()
    };
    // In log order: the first run's, then the second's; the same id as its records.
    assert_eq!(of("start"), [a.clone(), b.clone()], "{ev:?}");
    assert_eq!(of("stop"), [a.clone(), b.clone()], "{ev:?}");
    assert_eq!(of("exit"), [a, b], "{ev:?}");
}
