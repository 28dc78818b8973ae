//! Conditions (`wait`, `run --wait-for`) against real records, tombstones and listeners.

// Helpers outside #[test] fns unwrap too: in a test, a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use common::*;

#[test]
fn run_starts_its_command_once_a_record_written_later_is_ready() {
    let mut pod = Pod::new();
    let started = pod.path("started");
    let script = format!("touch {}", started.display());
    // --rescan 1h: only inotify can wake the waiter before the deadline below.
    let r = pod.spawn(&[
        "--rescan",
        "1h",
        "run",
        "--name",
        "app",
        "--wait-for",
        "db",
        "--",
        "sh",
        "-c",
        &script,
    ]);
    let mut run = pod.take(r);
    assert!(
        !eventually(Duration::from_millis(200), || started.exists()),
        "started before db was ready"
    );
    assert!(pod.run(&["ready", "db"]).status.success());
    assert!(
        eventually(Duration::from_secs(5), || started.exists()),
        "never started after db was ready"
    );
    assert_eq!(wait_exit(&mut run, Duration::from_secs(5)), Some(0));
}

#[test]
fn wait_for_timeout_exits_124_naming_each_unmet_condition() {
    let pod = Pod::new();
    let port = free_port();
    let out = pod.run(&[
        "run",
        "--name",
        "app",
        "--timeout",
        "300ms",
        "--wait-for",
        &format!("db,exit:migrate,tcp:127.0.0.1:{port},http://127.0.0.1:{port}/healthz"),
        "--",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(124));
    let all = stderr(&out);
    // The error is one line, the last, after what the wait logged at info.
    let err = all.lines().last().unwrap_or_default();
    assert!(err.starts_with("podsignal: timed out"), "{all}");
    assert_eq!(
        all.matches("podsignal: ").count(),
        1,
        "one error line: {all}"
    );
    for want in [
        "db: no record",
        "exit:migrate: no tombstone",
        "nothing listening",
        "connection refused",
    ] {
        assert!(err.contains(want), "{want:?} missing in {err}");
    }
}

#[test]
fn a_tombstone_written_before_the_wait_started_satisfies_it_at_once() {
    let mut pod = Pod::new();
    assert_eq!(
        pod.run(&["run", "--name", "x", "--", "sh", "-c", "exit 3"])
            .status
            .code(),
        Some(3)
    );
    let w = pod.spawn(&[
        "--rescan",
        "1h",
        "run",
        "--wait-for",
        "exit:x",
        "--",
        "true",
    ]);
    let mut waiter = pod.take(w);
    assert_eq!(wait_exit(&mut waiter, Duration::from_secs(5)), Some(0));
    assert_eq!(
        pod.run(&["wait", "exit:x=3", "--timeout", "1s"])
            .status
            .code(),
        Some(0)
    );
    let out = pod.run(&["wait", "exit:x=0", "--timeout", "200ms"]);
    assert_eq!(out.status.code(), Some(124));
    assert!(
        stderr(&out).contains("exited with 3, not 0"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn tcp_condition_holds_once_a_late_listener_binds() {
    let mut pod = Pod::new();
    let port = free_port();
    let w = pod.spawn(&["wait", &format!("tcp:{port}"), "--timeout", "10s"]);
    let mut waiter = pod.take(w);
    assert!(!eventually(Duration::from_millis(100), || waiter
        .try_wait()
        .unwrap()
        .is_some()));
    let _listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    assert_eq!(wait_exit(&mut waiter, Duration::from_secs(5)), Some(0));
}

/// A one-thread HTTP server answering every request with `status` and `body`.
fn serve(listener: TcpListener, status: &'static str, body: &'static str) {
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { return };
            let mut buf = [0u8; 1024];
            let _ = c.read(&mut buf);
            let _ = write!(
                c,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nX-Ready: yes\r\n\r\n{body}",
                body.len()
            );
        }
    });
}

#[test]
fn http_condition_matches_status_body_and_header_of_a_late_server() {
    let mut pod = Pod::new();
    let (p1, p2) = (free_port(), free_port());
    let ok = pod.spawn(&[
        "wait",
        &format!("http://127.0.0.1:{p1}/healthz#body=serving&header=x-ready:yes"),
        "--timeout",
        "10s",
    ]);
    let down = pod.spawn(&[
        "wait",
        &format!("http://127.0.0.1:{p2}/"),
        "--timeout",
        "1s",
    ]);
    let expect_503 = pod.spawn(&[
        "wait",
        &format!("http://127.0.0.1:{p2}/#status=503"),
        "--timeout",
        "10s",
    ]);
    serve(
        TcpListener::bind(("127.0.0.1", p1)).unwrap(),
        "200 OK",
        "serving",
    );
    serve(
        TcpListener::bind(("127.0.0.1", p2)).unwrap(),
        "503 Service Unavailable",
        "starting",
    );
    assert_eq!(
        wait_exit(&mut pod.take(ok), Duration::from_secs(5)),
        Some(0)
    );
    assert_eq!(
        wait_exit(&mut pod.take(expect_503), Duration::from_secs(5)),
        Some(0)
    );
    let out = pod.take(down).wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(124));
    assert!(
        stderr(&out).contains("status 503, want 2xx"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn unix_condition_holds_once_a_late_socket_accepts() {
    let mut pod = Pod::new();
    let sock = pod.path("s.sock");
    let w = pod.spawn(&[
        "wait",
        &format!("unix:{}", sock.display()),
        "--timeout",
        "10s",
    ]);
    let mut waiter = pod.take(w);
    assert!(!eventually(Duration::from_millis(100), || waiter
        .try_wait()
        .unwrap()
        .is_some()));
    let _l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    assert_eq!(wait_exit(&mut waiter, Duration::from_secs(5)), Some(0));
}

#[test]
fn file_condition_is_woken_by_inotify_even_in_a_directory_created_later() {
    let mut pod = Pod::new();
    let file = pod.path("later/dir/flag");
    let w = pod.spawn(&[
        "--rescan",
        "1h",
        "wait",
        &format!("file:{}", file.display()),
        "phase:starting",
        "--timeout",
        "30s",
    ]);
    let mut waiter = pod.take(w);
    assert!(!eventually(Duration::from_millis(100), || waiter
        .try_wait()
        .unwrap()
        .is_some()));
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, "x").unwrap();
    assert_eq!(wait_exit(&mut waiter, Duration::from_secs(5)), Some(0));
}

#[test]
fn sigterm_during_wait_for_ends_run_at_once_with_143() {
    let mut pod = Pod::new();
    let r = pod.spawn(&["run", "--wait-for", "never-ready", "--", "true"]);
    let mut run = pod.take(r);
    // The shared directory is opened after the handlers are installed.
    assert!(eventually(Duration::from_secs(5), || pod
        .dir
        .join("exits")
        .exists()));
    signal(r, "TERM");
    assert_eq!(wait_exit(&mut run, Duration::from_secs(2)), Some(143));
    let r = pod.spawn(&["run", "--wait-for", "never-ready", "--", "true"]);
    let mut run = pod.take(r);
    assert!(eventually(Duration::from_secs(5), || pod
        .dir
        .join("exits")
        .exists()));
    signal(r, "INT");
    assert_eq!(wait_exit(&mut run, Duration::from_secs(2)), Some(130));
}

#[test]
fn wait_rejects_malformed_conditions_and_https_with_usage_errors() {
    let pod = Pod::new();
    let out = pod.run(&["wait", "tcp:nohost"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("tcp:nohost"));
    let out = pod.run(&["wait", "https://example.com/"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("https:// is not supported"),
        "{}",
        stderr(&out)
    );
}

fn signal(pid: u32, sig: &str) {
    std::process::Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap();
}

#[test]
fn localhost_conditions_hold_against_real_listeners() {
    let pod = Pod::new();
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let web = TcpListener::bind("127.0.0.1:0").unwrap();
    let (tp, wp) = (
        tcp.local_addr().unwrap().port(),
        web.local_addr().unwrap().port(),
    );
    serve(web, "200 OK", "ok");
    let tcp_cond = format!("tcp:localhost:{tp}");
    let http_cond = format!("http://localhost:{wp}/healthz");
    for c in [&tcp_cond, &http_cond] {
        let out = pod.run(&["wait", c, "--timeout", "5s"]);
        assert!(out.status.success(), "{c}: {}", stderr(&out));
    }
    let out = pod.run(&[
        "run",
        "--name",
        "app",
        "--ready-when",
        &tcp_cond,
        "--",
        "true",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    drop(tcp);
}

#[test]
fn localhost_is_resolved_without_etc_hosts_as_in_a_scratch_image() {
    // A static glibc binary in a FROM scratch image cannot use the system's resolver (its NSS
    // modules are missing). Reproduce "the resolver does not know localhost" by hiding
    // /etc/hosts in a private mount namespace: localhost must still work.
    let empty = tempfile::NamedTempFile::new().unwrap();
    let hidden = std::process::Command::new("unshare")
        .args(["--mount", "sh", "-c"])
        .arg(format!(
            "mount --bind {} /etc/hosts && ! getent hosts localhost",
            empty.path().display()
        ))
        .status()
        .is_ok_and(|s| s.success());
    if !hidden {
        eprintln!("skipped: unshare --mount needs root (or getent resolves without /etc/hosts)");
        return;
    }
    let pod = Pod::new();
    let web = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = web.local_addr().unwrap().port();
    serve(web, "200 OK", "ok");
    let out = std::process::Command::new("unshare")
        .args(["--mount", "sh", "-c"])
        .arg(format!(
            "mount --bind {} /etc/hosts && exec {} --dir {} wait http://localhost:{port}/ --timeout 5s",
            empty.path().display(),
            env!("CARGO_BIN_EXE_podsignal"),
            pod.dir.display()
        ))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn an_unresolvable_host_is_named_in_the_timeout_message() {
    let pod = Pod::new();
    let out = pod.run(&["wait", "tcp:no-such-host.invalid:80", "--timeout", "2s"]);
    assert_eq!(out.status.code(), Some(124));
    assert!(
        stderr(&out).contains("cannot resolve no-such-host.invalid"),
        "{}",
        stderr(&out)
    );
}
