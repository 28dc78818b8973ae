//! The live page at `/` and what keeps it live: the static files are served under the
//! API's Host check with a strict Content-Security-Policy and without a token (they hold no
//! data), and `/v1/status` long-polled with its ETag answers the moment the directory
//! changes. (tests/ui/run.sh loads the page in a real browser.)

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod http_support;

use std::time::{Duration, Instant};

use http_support::{Agent, code, raw, request, request_with};

/// An agent with a generated token, and the token.
fn agent_with_token() -> (Agent, String, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let token_file = tmp.path().join("token");
    let agent = Agent::start(&[
        "--token-file",
        token_file.to_str().unwrap(),
        "--generate-token",
    ]);
    let token = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_owned();
    (agent, token, tmp)
}

#[test]
fn the_page_loads_without_a_token_under_a_strict_policy() {
    let (agent, _token, _tmp) = agent_with_token();
    for (path, media) in [
        ("/", "text/html"),
        ("/page.js", "text/javascript"),
        ("/page.css", "text/css"),
    ] {
        let r = request(agent.port, "GET", path, None);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        assert!(
            r.header("content-type")
                .is_some_and(|t| t.starts_with(media)),
            "{path}: {:?}",
            r.header("content-type")
        );
        let csp = r.header("content-security-policy").unwrap_or_default();
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "connect-src 'self'",
        ] {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
        assert!(!csp.contains("unsafe"), "{path}: {csp}");
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    }
    let html = request(agent.port, "GET", "/", None).body;
    assert!(html.contains(r#"<script src="/page.js""#), "{html}");
    // Nothing inline that would need 'unsafe-inline', nothing from elsewhere.
    assert!(!html.contains("<script>"), "{html}");
    let handler = html.match_indices(" on").any(|(i, _)| {
        let rest = &html[i + 3..];
        let word = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        word > 0 && rest[word..].starts_with('=')
    });
    assert!(!handler, "an inline event handler: {html}");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "{html}"
    );
    // The data stays behind the token.
    let (s, body) = agent.get("/v1/status");
    assert_eq!((s, code(&body).as_str()), (401, "unauthorized"));
}

#[test]
fn the_page_has_the_api_guards() {
    let agent = Agent::start(&[]);
    let (s, body) = raw(agent.port, "GET", "/", &[("Host", "evil.example")], None);
    assert_eq!((s, code(&body).as_str()), (421, "bad_host"));
    // A page elsewhere cannot read it, and the page itself cannot write: browsers send
    // Origin on every POST, PUT and DELETE.
    let (s, body) = agent.call("GET", "/", &[("Origin", "http://evil.example")], None);
    assert_eq!((s, code(&body).as_str()), (403, "forbidden"));
    let origin = format!("http://127.0.0.1:{}", agent.port);
    let (s, _) = agent.call(
        "PUT",
        "/v1/phase",
        &[("Origin", &origin), ("Content-Type", "application/json")],
        Some(r#"{"phase":"running"}"#),
    );
    assert_eq!(s, 403);
}

#[test]
fn status_answers_not_modified_for_its_own_etag() {
    let agent = Agent::start(&[]);
    let first = request(agent.port, "GET", "/v1/status", None);
    assert_eq!(first.status, 200, "{}", first.body);
    let tag = first.header("etag").expect("an ETag").to_owned();
    let again = request_with(
        agent.port,
        "GET",
        "/v1/status",
        &[("If-None-Match", &tag)],
        None,
    );
    assert_eq!(again.status, 304, "{}", again.body);
    assert_eq!(again.header("etag"), Some(tag.as_str()));
    assert!(agent.cli(&["ready", "db"]).status.success());
    let changed = request_with(
        agent.port,
        "GET",
        "/v1/status",
        &[("If-None-Match", &tag)],
        None,
    );
    assert_eq!(changed.status, 200);
    assert_ne!(changed.header("etag"), Some(tag.as_str()));
}

#[test]
fn a_status_long_poll_answers_when_readiness_changes() {
    let agent = Agent::start(&[]);
    let tag = request(agent.port, "GET", "/v1/status", None)
        .header("etag")
        .expect("an ETag")
        .to_owned();
    // Unchanged: it waits the whole wait, then says so.
    let started = Instant::now();
    let r = request_with(
        agent.port,
        "GET",
        "/v1/status?wait=300ms",
        &[("If-None-Match", &tag)],
        None,
    );
    assert_eq!(r.status, 304);
    assert!(started.elapsed() >= Duration::from_millis(300));
    // `podsignal ready` publishes no event; the long-poll still answers at once.
    let port = agent.port;
    let poll = std::thread::spawn(move || {
        let r = request_with(
            port,
            "GET",
            "/v1/status?wait=1m",
            &[("If-None-Match", &tag)],
            None,
        );
        (r, Instant::now())
    });
    // The poll is parked (a waiter) before the change is made.
    assert!(http_support::eventually(Duration::from_secs(10), || {
        agent.metric("podsignal_waiters") == 1.0
    }));
    let changed_at = Instant::now();
    assert!(agent.cli(&["ready", "web"]).status.success());
    let (r, answered_at) = poll.join().unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let status = http_support::json(&r.body);
    let web = status["readiness"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "web")
        .unwrap_or_else(|| panic!("no web in {status}"));
    assert_eq!(web["ready"], true);
    // Woken by the change (inotify), not by its wait running out.
    assert!(answered_at.duration_since(changed_at) < Duration::from_secs(30));
}

#[test]
fn the_timeline_is_served_as_svg_of_the_directory() {
    let agent = Agent::start(&[]);
    let out = agent.cli(&["run", "--name", "app", "--", "true"]);
    assert!(out.status.success(), "{out:?}");
    let r = request(agent.port, "GET", "/v1/timeline", None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("image/svg+xml"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(
        r.header("content-security-policy"),
        Some("default-src 'none'")
    );
    assert!(r.body.contains("<svg"), "{}", r.body);
    assert!(r.body.contains(">app<"), "no lane for app: {}", r.body);
    let windowed = request(agent.port, "GET", "/v1/timeline?since=5m&until=%2B0s", None);
    assert_eq!(windowed.status, 200, "{}", windowed.body);
    let (s, body) = agent.get("/v1/timeline?since=yesterday");
    assert_eq!((s, code(&body).as_str()), (400, "bad_request"), "{body}");
}
