//! Every endpoint of the agent, with good and bad input and the exact status code, against a
//! real agent on a real port.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod http_support;

use http_support::{Agent, code, json};

#[test]
fn ops_endpoints_answer() {
    let agent = Agent::start(&[]);
    assert_eq!(agent.get("/healthz").0, 200);
    let (s, body) = agent.get("/readyz");
    assert_eq!(s, 200, "{body}");
    let (s, metrics) = agent.get("/metrics");
    assert_eq!(s, 200);
    for needle in [
        "# TYPE podsignal_http_requests_total counter",
        "# TYPE podsignal_waiters gauge",
        "# TYPE podsignal_lock_wait_seconds histogram",
        "podsignal_events_published_total",
        "podsignal_rescans_total",
        "podsignal_inotify_overflows_total",
        "route=\"/healthz\",method=\"GET\",status=\"200\"",
    ] {
        assert!(
            metrics.contains(needle),
            "{needle} missing from /metrics:\n{metrics}"
        );
    }
    let (s, status) = agent.get("/v1/status");
    assert_eq!(s, 200);
    assert!(json(&status)["readiness"].is_array());
}

#[test]
fn unknown_routes_and_methods_are_json_errors() {
    let agent = Agent::start(&[]);
    let (s, body) = agent.get("/v1/nothing");
    assert_eq!((s, code(&body).as_str()), (404, "not_found"));
    let (s, body) = agent.call("DELETE", "/v1/phase", &[], None);
    assert_eq!((s, code(&body).as_str()), (405, "method_not_allowed"));
    // Mutations are never GET.
    assert_eq!(agent.get("/v1/shutdown").0, 405);
    assert_eq!(agent.get("/quitquitquit").0, 405);
}

#[test]
fn dns_rebinding_and_browsers_are_refused() {
    let agent = Agent::start(&[]);
    let p = agent.port;
    let (s, body) = http_support::raw(p, "GET", "/readyz", &[("Host", "evil.example")], None);
    assert_eq!((s, code(&body).as_str()), (421, "bad_host"));
    let (s, _) = http_support::raw(
        p,
        "GET",
        "/readyz",
        &[("Host", &format!("evil.example:{p}"))],
        None,
    );
    assert_eq!(s, 421);
    let (s, body) = agent.call("GET", "/readyz", &[("Origin", "http://evil.example")], None);
    assert_eq!((s, code(&body).as_str()), (403, "forbidden"));
    for host in [
        format!("localhost:{p}"),
        "localhost".into(),
        format!("[::1]:{p}"),
    ] {
        let (s, _) = http_support::raw(p, "GET", "/readyz", &[("Host", &host)], None);
        assert_eq!(s, 200, "Host: {host}");
    }
}

#[test]
fn a_token_is_required_when_set() {
    let tmp = tempfile::tempdir().unwrap();
    let token_file = tmp.path().join("token");
    let tf = token_file.to_str().unwrap();
    let agent = Agent::start(&["--token-file", tf, "--generate-token"]);
    let token = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_owned();
    let (s, body) = agent.get("/v1/status");
    assert_eq!((s, code(&body).as_str()), (401, "unauthorized"));
    let (s, _) = agent.call(
        "GET",
        "/v1/status",
        &[("Authorization", "Bearer nope")],
        None,
    );
    assert_eq!(s, 401);
    let bearer = format!("Bearer {token}");
    let (s, _) = agent.call("GET", "/v1/status", &[("Authorization", &bearer)], None);
    assert_eq!(s, 200);
    // Probes need no token.
    assert_eq!(agent.get("/healthz").0, 200);
    assert_eq!(agent.get("/readyz").0, 200);
    // The CLI sends it from --token-file.
    let out = std::process::Command::new(http_support::BIN)
        .args(["--agent", &agent.url(), "--token-file", tf, "ready", "tok"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = std::process::Command::new(http_support::BIN)
        .args(["--agent", &agent.url(), "ready", "tok"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("token"));
}

#[test]
fn remote_listening_needs_allow_remote_and_a_token() {
    let out = std::process::Command::new(http_support::BIN)
        .args([
            "agent",
            "--listen",
            "0.0.0.0:0",
            "--dir",
            "/tmp/podsignal-never-used",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a usage error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--allow-remote"));
    let out = std::process::Command::new(http_support::BIN)
        .args([
            "agent",
            "--listen",
            "0.0.0.0:0",
            "--allow-remote",
            "--dir",
            "/tmp/podsignal-never-used",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a usage error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--token-file"));
}

#[test]
fn readiness_set_get_and_bad_input() {
    let agent = Agent::start(&["--max-body", "1024"]);
    let (s, body) = agent.json(
        "PUT",
        "/v1/readiness/db",
        r#"{"ready":true,"reason":"v42"}"#,
    );
    assert_eq!(s, 200, "{body}");
    assert_eq!(json(&body)["ready"], true);
    let (s, body) = agent.get("/v1/readiness/db");
    assert_eq!((s, json(&body)["why"].as_str()), (200, Some("v42")));
    let (s, body) = agent.get("/v1/readiness");
    assert_eq!(s, 200);
    assert_eq!(json(&body).as_array().map(Vec::len), Some(1));
    // The volume agrees.
    assert!(
        agent
            .cli(&["wait", "db", "--timeout", "1s"])
            .status
            .success()
    );

    let (s, body) = agent.json("PUT", "/v1/readiness/Bad_Name", r#"{"ready":true}"#);
    assert_eq!((s, code(&body).as_str()), (400, "bad_name"));
    let (s, body) = agent.get("/v1/readiness/..");
    assert!(s == 400 || s == 404, "{s} {body}");
    let (s, body) = agent.json("PUT", "/v1/readiness/db", r#"{"ready":"#);
    assert_eq!((s, code(&body).as_str()), (400, "bad_json"));
    let (s, body) = agent.json("PUT", "/v1/readiness/db", r#"{"ready":true,"extra":1}"#);
    assert_eq!((s, code(&body).as_str()), (400, "bad_json"));
    let (s, body) = agent.call("PUT", "/v1/readiness/db", &[], Some(r#"{"ready":true}"#));
    assert_eq!((s, code(&body).as_str()), (415, "bad_json"));
    let big = format!(r#"{{"ready":true,"reason":"{}"}}"#, "x".repeat(2000));
    let (s, body) = agent.json("PUT", "/v1/readiness/db", &big);
    assert_eq!((s, code(&body).as_str()), (413, "payload_too_large"));
    let (s, body) = agent.get("/v1/readiness?mode=some");
    assert_eq!((s, code(&body).as_str()), (400, "bad_request"));
    let (s, body) = agent.get("/v1/readiness/db?wait=soon");
    assert_eq!((s, code(&body).as_str()), (400, "bad_request"));
}

#[test]
fn a_wait_that_runs_out_is_408_naming_what_is_missing() {
    let agent = Agent::start(&[]);
    let (s, body) = agent.get("/v1/readiness?names=db,proxy&wait=150ms");
    assert_eq!((s, code(&body).as_str()), (408, "timeout"));
    let pending = json(&body)["pending"].to_string();
    assert!(
        pending.contains("db") && pending.contains("proxy"),
        "{body}"
    );
    // Met conditions answer at once.
    agent.json("PUT", "/v1/readiness/db", r#"{"ready":true}"#);
    let (s, _) = agent.get("/v1/readiness?names=db,proxy&mode=any&wait=5s");
    assert_eq!(s, 200);
    let (s, _) = agent.get("/v1/readiness/proxy?state=unready&wait=5s");
    assert_eq!(s, 200);
    // The CLI exits 124 on a timeout over HTTP, as on the volume.
    let out = std::process::Command::new(http_support::BIN)
        .args([
            "--agent",
            &agent.url(),
            "wait",
            "proxy",
            "--timeout",
            "200ms",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(124),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("proxy"));
}

#[test]
fn lock_leases_are_idempotent_renewable_and_releasable() {
    let agent = Agent::start(&[]);
    let key = [("Idempotency-Key", "k1")];
    let (s, body) = agent.call("POST", "/v1/locks/db?ttl=30s", &key, None);
    assert_eq!(s, 200, "{body}");
    let grant = json(&body);
    let lease = grant["lease"].as_str().unwrap().to_owned();
    assert_eq!(grant["token"], 1);
    // A retry with the same key gets the same grant.
    let (s, again) = agent.call("POST", "/v1/locks/db?ttl=30s", &key, None);
    assert_eq!(s, 200);
    assert_eq!(json(&again), grant);
    // Anyone else finds it busy (try); a waiter times out: at the end, see there.
    let (s, body) = agent.call("POST", "/v1/locks/db", &[], None);
    assert_eq!((s, code(&body).as_str()), (409, "lock_busy"));
    let (s, body) = agent.get("/v1/locks/db");
    assert_eq!((s, json(&body)["held"].as_bool()), (200, Some(true)));
    // The volume agrees.
    let out = agent.cli(&["lock", "db", "--no-wait", "--", "true"]);
    assert_eq!(out.status.code(), Some(75));

    let (s, body) = agent.call(
        "POST",
        &format!("/v1/locks/db/renew?lease={lease}&ttl=1m"),
        &[],
        None,
    );
    assert_eq!((s, json(&body)["ttl_ms"].as_u64()), (200, Some(60_000)));
    let (s, body) = agent.call("POST", "/v1/locks/db/renew?lease=nope", &[], None);
    assert_eq!((s, code(&body).as_str()), (404, "not_found"));
    // A ttl is cut to between 1ms and 1h (the grant says what it got): db is held.
    let (s, body) = agent.call("POST", "/v1/locks/db?ttl=0", &[], None);
    assert_eq!((s, code(&body).as_str()), (409, "lock_busy"));
    let (s, body) = agent.call("POST", "/v1/locks/db?ttl=", &[], None);
    assert_eq!(
        (s, code(&body).as_str()),
        (400, "bad_request"),
        "an empty ttl"
    );
    let (s, _) = agent.call(
        "DELETE",
        &format!("/v1/locks/other?lease={lease}"),
        &[],
        None,
    );
    assert_eq!(s, 404, "a lease releases only its own lock");
    let (s, _) = agent.call("DELETE", &format!("/v1/locks/db?lease={lease}"), &[], None);
    assert_eq!(s, 204);
    let (s, _) = agent.call("DELETE", &format!("/v1/locks/db?lease={lease}"), &[], None);
    assert_eq!(s, 404);
    let (s, body) = agent.call("POST", "/v1/locks/db?ttl=5s", &[], None);
    assert_eq!((s, json(&body)["token"].as_u64()), (200, Some(2)), "{body}");
    // Anyone else waiting times out. Last: a wait that timed out leaves the agent's flock
    // thread waiting in the kernel, which takes the lock for an instant when it is next
    // released, and a try-once at that instant (the POST just above) would find it busy
    // (docs/http-api.md, Limits).
    let (s, body) = agent.call("POST", "/v1/locks/db?wait=100ms", &[], None);
    assert_eq!((s, code(&body).as_str()), (408, "timeout"));
    let (s, body) = agent.call("POST", "/v1/locks/BAD", &[], None);
    assert_eq!((s, code(&body).as_str()), (400, "bad_name"));
    let (s, body) = agent.get("/v1/locks");
    assert_eq!((s, json(&body).as_array().map(Vec::len)), (200, Some(1)));
}

/// A release that answered 204 has let go: the very next acquisition, through the agent or
/// on the volume, gets the lock. (It used to answer first and release after, on the blocking
/// pool: under load the next `POST` found the lock still held by the released lease.)
#[test]
fn a_released_lease_is_free_when_the_release_answers() {
    let agent = Agent::start(&[]);
    for path in ["/v1/locks/db", "/v1/leaders/db"] {
        for round in 0..100 {
            let (s, body) = agent.call("POST", &format!("{path}?ttl=30s"), &[], None);
            assert_eq!(s, 200, "{path} round {round}: {body}");
            let lease = json(&body)["lease"].as_str().unwrap().to_owned();
            let (s, body) = agent.call("DELETE", &format!("{path}?lease={lease}"), &[], None);
            assert_eq!(s, 204, "{path} round {round}: {body}");
        }
    }
    // Another container, on the volume, after the release answered.
    let (s, body) = agent.call("POST", "/v1/locks/db?ttl=30s", &[], None);
    assert_eq!(s, 200, "{body}");
    let lease = json(&body)["lease"].as_str().unwrap().to_owned();
    let (s, _) = agent.call("DELETE", &format!("/v1/locks/db?lease={lease}"), &[], None);
    assert_eq!(s, 204);
    let out = agent.cli(&["lock", "db", "--no-wait", "--", "true"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_unrenewed_lease_expires() {
    let agent = Agent::start(&[]);
    let (s, body) = agent.call("POST", "/v1/leaders/sched?ttl=300ms", &[], None);
    assert_eq!(s, 200, "{body}");
    let (_, body) = agent.get("/v1/leaders/sched");
    assert_eq!(json(&body)["leader"]["token"], 1);
    // Watching: returns when the leader changes (here: the lease runs out).
    let (s, body) = agent.get("/v1/leaders/sched?token=1&wait=10s");
    assert_eq!(s, 200);
    assert!(json(&body)["leader"].is_null(), "{body}");
    let (s, body) = agent.get("/v1/leaders/sched?token=x&wait=1s");
    assert_eq!((s, code(&body).as_str()), (400, "bad_request"));
    let (s, body) = agent.get("/v1/leaders");
    assert_eq!((s, json(&body).as_array().map(Vec::len)), (200, Some(1)));
}

#[test]
fn phase_and_shutdown() {
    let agent = Agent::start(&[]);
    let (s, body) = agent.get("/v1/phase");
    assert_eq!((s, json(&body)["phase"].as_str()), (200, Some("starting")));
    let (s, put) = agent.json("PUT", "/v1/phase", r#"{"phase":"running"}"#);
    assert_eq!(s, 200, "{put}");
    // PUT answers what GET then shows: `{phase, record}`, not the bare record.
    let (s, get) = agent.get("/v1/phase");
    assert_eq!((s, json(&put)), (200, json(&get)));
    assert_eq!(json(&put)["phase"], "running", "{put}");
    assert_eq!(json(&put)["record"]["phase"], "running", "{put}");
    let (s, body) = agent.json("PUT", "/v1/phase", r#"{"phase":"starting"}"#);
    assert_eq!((s, code(&body).as_str()), (409, "phase_backwards"));
    let (s, body) = agent.json("PUT", "/v1/phase", r#"{"phase":"sideways"}"#);
    assert_eq!((s, code(&body).as_str()), (400, "bad_json"));
    let (s, body) = agent.get("/v1/phase?wait=100ms&at_least=draining");
    assert_eq!((s, code(&body).as_str()), (408, "timeout"));
    // Without at_least, wait means "for the phase after this one" (draining, here).
    let (s, body) = agent.get("/v1/phase?wait=100ms");
    assert_eq!((s, code(&body).as_str()), (408, "timeout"), "{body}");
    assert!(body.contains("draining"), "{body}");
    let (s, body) = agent.call("POST", "/v1/shutdown", &[], None);
    assert_eq!(
        (s, json(&body)["phase"].as_str()),
        (200, Some("draining")),
        "{body}"
    );
    let (s, body) = agent.call("POST", "/quitquitquit", &[], None);
    assert_eq!((s, json(&body)["phase"].as_str()), (200, Some("draining")));
    let out = agent.cli(&["phase", "get"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "draining");
}

#[test]
fn events_publish_and_list() {
    let agent = Agent::start(&[]);
    let (s, body) = agent.json(
        "POST",
        "/v1/events",
        r#"{"kind":"warmed","data":{"keys":3}}"#,
    );
    assert_eq!((s, json(&body)["seq"].as_u64()), (201, Some(1)), "{body}");
    agent.cli(&["event", "publish", "direct"]);
    let (s, body) = agent.get("/v1/events?since=0");
    assert_eq!(s, 200);
    let kinds: Vec<String> = json(&body)
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, ["warmed", "direct"]);
    let (_, body) = agent.get("/v1/events?since=1&limit=1");
    assert_eq!(json(&body)[0]["seq"], 2);
    let (s, body) = agent.get("/v1/events?since=2&wait=100ms");
    assert_eq!((s, body.as_str()), (200, "[]"));
    let (s, body) = agent.get("/v1/events?since=minus");
    assert_eq!((s, code(&body).as_str()), (400, "bad_request"));
    let (s, body) = agent.json("POST", "/v1/events", r#"{"kind":"Bad Kind"}"#);
    assert_eq!((s, code(&body).as_str()), (400, "bad_json"));
    let (s, body) = agent.call("GET", "/v1/events/stream", &[("Last-Event-ID", "x")], None);
    assert_eq!((s, code(&body).as_str()), (400, "bad_request"));
}

#[test]
fn served_openapi_is_openapi_3_and_lists_every_route() {
    let agent = Agent::start(&[]);
    let (s, body) = agent.get("/openapi.json");
    assert_eq!(s, 200);
    let doc = json(&body);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 8);
    for (path, ops) in paths {
        assert!(path.starts_with('/'));
        for (method, op) in ops.as_object().unwrap() {
            assert!(["get", "put", "post", "delete"].contains(&method.as_str()));
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{method} {path}"
            );
            let params = op["parameters"].as_array().unwrap();
            for p in params {
                assert!(["path", "query", "header"].contains(&p["in"].as_str().unwrap()));
                if p["in"] == "path" {
                    assert_eq!(p["required"], true);
                    assert!(path.contains(&format!("{{{}}}", p["name"].as_str().unwrap())));
                }
            }
            // Every documented route is served: never the router's 404/405.
            let concrete = path.replace("{name}", "x");
            if path.ends_with("/hold") || path.ends_with("/stream") {
                let s = http_support::status_only(agent.port, &method.to_uppercase(), &concrete);
                assert!(s == 200 || s == 409, "{method} {path}: {s}");
                continue;
            }
            let (s, body) = agent.call(
                &method.to_uppercase(),
                &format!("{concrete}?wait=0"),
                &[],
                None,
            );
            let c = if body.starts_with('{') {
                code(&body)
            } else {
                String::new()
            };
            assert!(
                c != "method_not_allowed" && !(s == 404 && body.contains("no route")),
                "{method} {path}: {s} {body}"
            );
        }
    }
}

#[test]
fn every_body_is_a_json_object() {
    let agent = Agent::start(&[]);
    // serde alone would read `[true]` as SetReadiness { ready: true }.
    for (method, path, body) in [
        ("PUT", "/v1/readiness/web", "[true]"),
        ("PUT", "/v1/phase", r#"["running"]"#),
        ("POST", "/v1/events", r#"["kind"]"#),
        ("POST", "/v1/shutdown", "[]"),
        ("POST", "/v1/stop/web", r#"["why"]"#),
        ("PUT", "/v1/readiness/web", "3"),
    ] {
        let (s, answer) = agent.json(method, path, body);
        assert_eq!(
            (s, code(&answer).as_str()),
            (400, "bad_json"),
            "{method} {path} {body}: {answer}"
        );
    }
    assert!(!agent.get("/v1/readiness/web").1.contains("\"ready\":true"));
    assert_eq!(json(&agent.get("/v1/phase").1)["phase"], "starting");
}

#[test]
fn a_tombstone_is_written_under_the_name_in_its_path() {
    let agent = Agent::start(&[]);
    let out = agent.cli(&["run", "--name", "other", "--", "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let record = json(&agent.get("/v1/exits/other").1)["tombstone"].to_string();
    let (s, body) = agent.json("PUT", "/v1/exits/web", &record);
    assert_eq!(s, 200, "{body}");
    let (s, body) = agent.get("/v1/exits/web");
    assert_eq!(s, 200);
    assert_eq!(json(&body)["tombstone"]["name"], "web", "{body}");
    assert_eq!(json(&body)["tombstone"]["exit_code"], 3, "{body}");
}
