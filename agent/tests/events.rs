//! Lifecycle events through the real binary: concurrency, order, resumption.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;

fn parse(lines: &str) -> Vec<serde_json::Value> {
    lines
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

#[test]
fn eight_publishers_thousand_events_each_exactly_once_in_one_order_for_every_watcher() {
    let mut pod = Pod::new();
    assert!(pod.run(&["event", "publish", "start"]).status.success());
    // Two watchers follow from before the first published event.
    let watchers: Vec<u32> = (0..2)
        .map(|_| {
            pod.spawn(&[
                "event", "watch", "--since", "1", "--kind", "load", "--count", "8000",
            ])
        })
        .collect();
    let publishers: Vec<std::thread::JoinHandle<()>> = (0..8)
        .map(|p| {
            let dir = pod.dir.clone();
            std::thread::spawn(move || {
                // One process per publisher, publishing through the client library loop.
                let script = format!("for i in $(seq 1 1000); do {} event publish load --data \"{{\\\"p\\\":{p},\\\"i\\\":$i}}\" >/dev/null || exit 1; done", env!("CARGO_BIN_EXE_podsignal"));
                let st = std::process::Command::new("sh").args(["-c", &script]).env("PODSIGNAL_DIR", &dir).status().unwrap();
                assert!(st.success(), "publisher {p} failed");
            })
        })
        .collect();
    for p in publishers {
        p.join().unwrap();
    }
    let mut orders = Vec::new();
    for w in watchers {
        let child = pod.take(w);
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let events = parse(&stdout(&out));
        assert_eq!(events.len(), 8000);
        let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "out of order");
        let pairs: HashSet<(u64, u64)> = events
            .iter()
            .map(|e| {
                (
                    e["data"]["p"].as_u64().unwrap(),
                    e["data"]["i"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(pairs.len(), 8000, "duplicates or losses");
        orders.push(seqs);
    }
    assert_eq!(orders[0], orders[1], "watchers saw different orders");
    // Dense numbering: 1 (start) then 2..=8001.
    assert_eq!(orders[0].first(), Some(&2));
    assert_eq!(orders[0].last(), Some(&8001));
}

#[test]
fn since_gives_exactly_the_missed_events() {
    let pod = Pod::new();
    for i in 1..=10 {
        assert!(
            pod.run(&["event", "publish", "tick", "--data", &i.to_string()])
                .status
                .success()
        );
    }
    let out = pod.run(&[
        "event",
        "watch",
        "--since",
        "7",
        "--count",
        "3",
        "--timeout",
        "10s",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let seqs: Vec<u64> = parse(&stdout(&out))
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [8, 9, 10]);
    // Asking for more than exists waits, then times out with 124.
    let out = pod.run(&[
        "event",
        "watch",
        "--since",
        "9",
        "--count",
        "2",
        "--timeout",
        "200ms",
    ]);
    assert_eq!(out.status.code(), Some(124));
    assert_eq!(parse(&stdout(&out)).len(), 1);
}

#[test]
fn a_follower_without_since_sees_only_new_events() {
    let mut pod = Pod::new();
    assert!(pod.run(&["event", "publish", "old"]).status.success());
    let w = pod.spawn(&["--rescan", "1h", "event", "watch", "--count", "1"]);
    let mut child = pod.take(w);
    // Publish until the watcher has seen one event and exited; whenever it started, the
    // first event after its start is a "new" one, never the "old" one before it.
    assert!(eventually(Duration::from_secs(10), || {
        assert!(pod.run(&["event", "publish", "new"]).status.success());
        child.try_wait().unwrap().is_some()
    }));
    let out = child.wait_with_output().unwrap();
    let events = parse(&stdout(&out));
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["kind"], "new");
}

#[test]
fn bad_event_input_is_a_usage_error() {
    let pod = Pod::new();
    let out = pod.run(&["event", "publish", "x", "--data", "{not json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not valid JSON"), "{}", stderr(&out));
    let out = pod.run(&[
        "event",
        "publish",
        "x",
        "--data",
        &format!("\"{}\"", "a".repeat(20_000)),
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "over the size limit is a usage error"
    );
    assert!(stderr(&out).contains("limit"), "{}", stderr(&out));
}

#[test]
fn watch_timeout_without_count_ends_the_watch_with_0_and_with_count_is_124() {
    let pod = Pod::new();
    assert!(pod.run(&["event", "publish", "one"]).status.success());
    // Reading until --timeout is the whole job: the events, then exit 0.
    let out = pod.run_within(
        &["event", "watch", "--since", "0", "--timeout", "300ms"],
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(parse(&stdout(&out)).len(), 1, "{}", stdout(&out));
    assert_eq!(stderr(&out), "");
    // With --count, fewer events by then is a timeout, and the line says how many came.
    let out = pod.run_within(
        &[
            "event",
            "watch",
            "--since",
            "0",
            "--count",
            "3",
            "--timeout",
            "300ms",
        ],
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(124));
    assert_eq!(
        stderr(&out).trim_end(),
        format!(
            "podsignal: event watch: timed out after 300ms: 1 of --count 3 events arrived (watching {})",
            pod.dir.display()
        )
    );
}
