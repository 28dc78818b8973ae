//! The event stream over Server-Sent Events resumes after `Last-Event-ID` with no gap and
//! no duplicate.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod http_support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use http_support::{Agent, json};

/// Opens the stream and returns a reader positioned after the response headers.
fn open(agent: &Agent, headers: &str, query: &str) -> BufReader<TcpStream> {
    let mut s = TcpStream::connect(("127.0.0.1", agent.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /v1/events/stream{query} HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n{headers}\r\n"
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(line.contains(" 200 "), "{line}");
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        if line.trim().is_empty() {
            return r;
        }
    }
}

/// The next `n` event seqs on the stream (the body is chunked; data lines are found by
/// prefix, so chunk-size lines are skipped).
fn next_seqs(r: &mut BufReader<TcpStream>, n: usize) -> Vec<u64> {
    let mut out = Vec::new();
    let mut line = String::new();
    while out.len() < n {
        line.clear();
        assert!(r.read_line(&mut line).unwrap() > 0, "stream ended early");
        if let Some(data) = line.trim_end().strip_prefix("data: ") {
            out.push(json(data)["seq"].as_u64().unwrap());
        }
    }
    out
}

fn publish(agent: &Agent, n: usize) {
    for _ in 0..n {
        let (s, _) = agent.json("POST", "/v1/events", r#"{"kind":"tick"}"#);
        assert_eq!(s, 201);
    }
}

#[test]
fn sse_resumes_after_last_event_id_without_gap_or_duplicate() {
    let agent = Agent::start(&[]);
    publish(&agent, 3);
    let mut first = open(&agent, "", "?since=0");
    assert_eq!(next_seqs(&mut first, 3), [1, 2, 3]);
    drop(first); // the client goes away after seq 3
    publish(&agent, 2); // published while disconnected
    agent.cli(&["event", "publish", "direct"]); // and one straight to the volume
    let mut second = open(&agent, "Last-Event-ID: 3\r\n", "?since=0");
    assert_eq!(
        next_seqs(&mut second, 3),
        [4, 5, 6],
        "Last-Event-ID takes precedence over since"
    );
    publish(&agent, 1);
    assert_eq!(next_seqs(&mut second, 1), [7]);
}

#[test]
fn sse_without_a_position_starts_now_and_the_client_resumes() {
    let agent = Agent::start(&[]);
    publish(&agent, 2);
    let mut stream = open(&agent, "", "");
    publish(&agent, 1);
    assert_eq!(next_seqs(&mut stream, 1), [3]);
    // The real client's stream: --since 0 over --agent sees every event once, in order.
    let out = std::process::Command::new(http_support::BIN)
        .args([
            "--agent",
            &agent.url(),
            "event",
            "watch",
            "--since",
            "1",
            "--count",
            "2",
            "--timeout",
            "5s",
        ])
        .output()
        .unwrap();
    let seqs: Vec<u64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| json(l)["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [2, 3]);
}

#[test]
fn too_many_streams_is_503() {
    let agent = Agent::start(&["--max-streams", "1"]);
    let _one = open(&agent, "", "");
    let (s, body) = agent.get("/v1/events/stream");
    assert_eq!(
        (s, http_support::code(&body).as_str()),
        (503, "too_many_streams")
    );
}

#[test]
fn too_many_waiters_is_503() {
    let agent = Agent::start(&["--max-waiters", "1"]);
    let port = agent.port;
    let _parked = std::thread::spawn(move || {
        http_support::raw(
            port,
            "GET",
            "/v1/readiness/x?wait=5s",
            &[("Host", "localhost")],
            None,
        )
    });
    assert!(http_support::eventually(Duration::from_secs(5), || {
        agent.get("/metrics").1.contains("podsignal_waiters 1")
    }));
    let (s, body) = agent.get("/v1/readiness/y?wait=5s");
    assert_eq!(
        (s, http_support::code(&body).as_str()),
        (503, "too_many_waiters")
    );
}
