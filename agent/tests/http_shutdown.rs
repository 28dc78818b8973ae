//! SIGTERM while 100 long-polls and 10 event streams are open: every one gets a clean
//! answer (503 `shutting_down`, or the stream's `shutdown` message and its end), held
//! things are released, and the agent exits 0.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod http_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use http_support::Agent;

#[test]
fn sigterm_answers_every_long_poll_and_stream_and_exits_0() {
    let mut agent = Agent::start(&[]);
    let port = agent.port;
    let polls: Vec<_> = (0..100)
        .map(|i| {
            std::thread::spawn(move || {
                http_support::raw(
                    port,
                    "GET",
                    &format!("/v1/readiness/w{i}?wait=60s"),
                    &[("Host", "localhost")],
                    None,
                )
            })
        })
        .collect();
    let streams: Vec<_> = (0..10)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            s.write_all(b"GET /v1/events/stream HTTP/1.1\r\nHost: localhost\r\n\r\n")
                .unwrap();
            s
        })
        .collect();
    // A lease the agent must release on the way out.
    let (s, _) = agent.call("POST", "/v1/locks/db?ttl=1h", &[], None);
    assert_eq!(s, 200);
    assert!(http_support::eventually(Duration::from_secs(20), || {
        let m = agent.get("/metrics").1;
        m.contains("podsignal_waiters 100") && m.contains("podsignal_event_streams 10")
    }));

    let status = agent
        .terminate(Duration::from_secs(15))
        .expect("agent still running 15 s after SIGTERM");
    assert_eq!(status.code(), Some(0), "{}", agent.stderr());

    for p in polls {
        let (s, body) = p.join().unwrap();
        assert_eq!(
            (s, http_support::code(&body).as_str()),
            (503, "shutting_down"),
            "{body}"
        );
    }
    for s in streams {
        let mut text = String::new();
        let mut r = BufReader::new(s);
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        assert!(line.contains(" 200 "), "{line}");
        r.read_to_string(&mut text).unwrap(); // ends: the agent closed it
        assert!(text.contains("event: shutdown"), "{text}");
    }
    // The lease was released: the volume can take the lock at once.
    let out = agent.cli(&["lock", "db", "--no-wait", "--", "true"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A log collector that went away closes the agent's stderr: logging into the closed pipe
/// (EPIPE) must not stop the agent from serving or from finishing its shutdown. (It did:
/// tracing-subscriber reports a failed write with `eprintln!`, which panicked in the task
/// that was logging, and the agent never exited.)
#[test]
fn an_agent_whose_stderr_is_gone_still_serves_and_exits_on_sigterm() {
    // At info, the agent's default level (the tests' agents log at warn): it logs its stop.
    let mut agent = Agent::start_via(
        &[],
        |_| {},
        |_, argv| {
            let mut c = std::process::Command::new("env");
            c.arg("PODSIGNAL_LOG=info").args(argv);
            c
        },
    );
    drop(agent.child.stderr.take());
    assert_eq!(
        agent.json("PUT", "/v1/readiness/a", r#"{"ready":true}"#).0,
        200
    );
    assert_eq!(agent.get("/v1/readiness/a").0, 200);
    let status = agent
        .terminate(Duration::from_secs(20))
        .expect("the agent exits on SIGTERM with its stderr closed");
    assert!(status.success(), "{status:?}");
}

/// `POST /quitquitquit` is what Envoy, pilot-agent and cloud-sql-proxy exit on, and what
/// scuttle-style Jobs call to end their sidecars: the agent answers (phase `draining`), lets
/// the requests already open finish (a long-poll gets its 503 `shutting_down`), releases
/// what it holds and exits 0.
#[test]
fn quitquitquit_drains_and_exits_0() {
    let mut agent = Agent::start(&[]);
    let port = agent.port;
    let poll = std::thread::spawn(move || {
        http_support::raw(
            port,
            "GET",
            "/v1/readiness/w?wait=60s",
            &[("Host", "localhost")],
            None,
        )
    });
    let (s, _) = agent.call("POST", "/v1/locks/db?ttl=1h", &[], None);
    assert_eq!(s, 200);
    assert!(http_support::eventually(Duration::from_secs(20), || {
        agent.get("/metrics").1.contains("podsignal_waiters 1")
    }));

    let (s, body) = agent.call("POST", "/quitquitquit", &[], None);
    assert_eq!(
        (s, http_support::json(&body)["phase"].as_str()),
        (200, Some("draining")),
        "{body}"
    );
    let mut status = None;
    assert!(
        http_support::eventually(Duration::from_secs(15), || {
            status = agent.child.try_wait().unwrap();
            status.is_some()
        }),
        "agent still running 15 s after POST /quitquitquit"
    );
    assert_eq!(status.unwrap().code(), Some(0), "{}", agent.stderr());
    let (s, body) = poll.join().unwrap();
    assert_eq!(
        (s, http_support::code(&body).as_str()),
        (503, "shutting_down"),
        "{body}"
    );
    let out = agent.cli(&["lock", "db", "--no-wait", "--", "true"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = agent.cli(&["phase", "get"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "draining");
}

/// `POST /v1/shutdown` only sets the phase: the agent keeps serving the pod while it drains.
#[test]
fn v1_shutdown_sets_draining_and_keeps_serving() {
    let mut agent = Agent::start(&[]);
    let (s, body) = agent.call("POST", "/v1/shutdown", &[], None);
    assert_eq!(
        (s, http_support::json(&body)["phase"].as_str()),
        (200, Some("draining")),
        "{body}"
    );
    // Still serving, and still running, well after the answer.
    let (s, _) = agent.json("PUT", "/v1/readiness/app", r#"{"ready":true}"#);
    assert_eq!(s, 200);
    assert!(agent.child.try_wait().unwrap().is_none());
}
