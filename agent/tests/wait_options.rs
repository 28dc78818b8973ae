//! How waits end: `--on-timeout continue`, `--stable DUR`, and `wait --unready` on probes;
//! with real records, holders, listeners and servers.

// Helpers outside #[test] fns unwrap too: in a test, a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;

const LIMIT: Duration = Duration::from_secs(10);

/// `podsignal ARGS` in the background with its stderr readable line by line.
fn spawn_logged(pod: &Pod, args: &[&str]) -> (Bg, StderrLines) {
    let mut child = Bg(pod
        .cmd(args)
        .env("PODSIGNAL_REMIND_AFTER", "50ms")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap());
    let lines = StderrLines::of(&mut child.0);
    (child, lines)
}

fn exited(child: &mut Child) -> bool {
    child.try_wait().unwrap().is_some()
}

#[test]
fn wait_on_timeout_continue_exits_0_with_a_warning_naming_what_was_missing() {
    let pod = Pod::new();
    let port = free_port();
    let tcp = format!("tcp:127.0.0.1:{port}");
    let out = pod.run(&[
        "wait",
        &tcp,
        "--timeout",
        "200ms",
        "--on-timeout",
        "continue",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    let warning = err.lines().find(|l| l.contains("WARN")).unwrap_or_default();
    assert!(
        warning.contains(&format!("timed out after 200ms: {tcp}: nothing listening"))
            && warning.contains("continuing (--on-timeout continue)"),
        "{err}"
    );
    // The default fails, as before.
    let out = pod.run(&["wait", &tcp, "--timeout", "200ms", "--on-timeout", "fail"]);
    assert_eq!(out.status.code(), Some(124));
    // Without --timeout there is nothing to continue after.
    let out = pod.run(&["wait", &tcp, "--on-timeout", "continue"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--timeout"), "{}", stderr(&out));
}

#[test]
fn run_on_timeout_continue_starts_the_command_after_a_warning() {
    let pod = Pod::new();
    let out = pod.run(&[
        "run",
        "--wait-for",
        "db",
        "--timeout",
        "200ms",
        "--on-timeout",
        "continue",
        "--",
        "sh",
        "-c",
        "exit 7",
    ]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("timed out after 200ms: db: no record in")
            && err.contains("continuing (--on-timeout continue)"),
        "{err}"
    );
    // --on-timeout fail (the default): CMD never starts.
    let started = pod.path("started");
    let script = format!("touch {}", started.display());
    let out = pod.run(&[
        "run",
        "--wait-for",
        "db",
        "--timeout",
        "200ms",
        "--",
        "sh",
        "-c",
        &script,
    ]);
    assert_eq!(out.status.code(), Some(124));
    assert!(!started.exists());
}

#[test]
fn stable_restarts_its_window_when_a_held_record_flaps() {
    let mut pod = Pod::new();
    let holder = pod.spawn(&["ready", "db", "--hold"]);
    assert!(eventually(LIMIT, || pod
        .run(&["wait", "db", "--timeout", "50ms"])
        .status
        .success()));
    // --rescan 1h: only inotify can tell the waiter that the holder died.
    let (mut waiter, mut lines) = spawn_logged(
        &pod,
        &[
            "--rescan",
            "1h",
            "wait",
            "db",
            "--stable",
            "1s",
            "--timeout",
            "30s",
        ],
    );
    lines.until(LIMIT, "db holding", |l| l.contains("condition db holds"));
    // The dependency crashes, and is back at once.
    kill9(holder);
    lines.until(LIMIT, "the lapse", |l| {
        l.contains("condition db stopped holding after") && l.contains("of --stable 1s")
    });
    let back = Instant::now();
    pod.spawn(&["ready", "db", "--hold"]);
    lines.until(LIMIT, "db holding again", |l| {
        l.contains("condition db holds")
    });
    assert_eq!(wait_exit(&mut waiter.0, LIMIT), Some(0));
    assert!(
        back.elapsed() >= Duration::from_secs(1),
        "returned {:?} after db came back, before --stable 1s",
        back.elapsed()
    );
}

#[test]
fn stable_rechecks_a_probe_and_a_lapse_starts_the_window_over() {
    let pod = Pod::new();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let tcp = format!("tcp:127.0.0.1:{port}");
    let started = Instant::now();
    let (mut waiter, mut lines) =
        spawn_logged(&pod, &["wait", &tcp, "--stable", "1s", "--timeout", "30s"]);
    lines.until(LIMIT, "the port holding", |l| {
        l.contains(&format!("condition {tcp} holds"))
    });
    drop(listener);
    lines.until(LIMIT, "the lapse", |l| {
        l.contains(&format!("condition {tcp} stopped holding")) && l.contains("nothing listening")
    });
    assert!(!exited(&mut waiter.0), "returned on a lapse");
    // Taken before the bind: the window cannot start before the port listens again.
    let back = Instant::now();
    let _again = TcpListener::bind(("127.0.0.1", port)).unwrap();
    assert_eq!(wait_exit(&mut waiter.0, LIMIT), Some(0));
    assert!(
        back.elapsed() >= Duration::from_secs(1),
        "{:?}",
        back.elapsed()
    );
    assert!(started.elapsed() >= Duration::from_secs(1));
}

#[test]
fn stable_times_out_saying_how_long_everything_held() {
    let pod = Pod::new();
    assert!(pod.run(&["ready", "db"]).status.success());
    let out = pod.run(&["wait", "db", "--stable", "5s", "--timeout", "500ms"]);
    assert_eq!(out.status.code(), Some(124), "{}", stderr(&out));
    let err = stderr(&out);
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("podsignal: timed out after 500ms: holding for ")
            && last.ends_with("of --stable 5s"),
        "{err}"
    );
    // run --stable with nothing to wait for is a usage error.
    let out = pod.run(&["run", "--stable", "1s", "--", "true"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn run_wait_for_stable_starts_the_command_once_the_window_passed() {
    let pod = Pod::new();
    assert!(pod.run(&["ready", "db"]).status.success());
    let started = Instant::now();
    let out = pod.run(&[
        "run",
        "--wait-for",
        "db",
        "--stable",
        "300ms",
        "--timeout",
        "20s",
        "--",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[test]
fn stable_with_any_needs_one_condition_to_hold_that_long() {
    let pod = Pod::new();
    assert!(pod.run(&["ready", "db"]).status.success());
    let started = Instant::now();
    let out = pod.run(&[
        "wait",
        "db",
        "cache",
        "--any",
        "--stable",
        "300ms",
        "--timeout",
        "20s",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[test]
fn unready_tcp_waits_until_nothing_listens_on_the_port() {
    let mut pod = Pod::new();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let tcp = format!("tcp:{port}");
    let out = pod.run(&["wait", "--unready", &tcp, "--timeout", "200ms"]);
    assert_eq!(out.status.code(), Some(124));
    assert!(
        stderr(&out).contains(&format!(
            "timed out after 200ms: tcp:127.0.0.1:{port}: something still listens"
        )),
        "{}",
        stderr(&out)
    );
    let w = pod.spawn(&["wait", "--unready", &tcp, "--timeout", "30s"]);
    let mut waiter = pod.take(w);
    assert!(!eventually(Duration::from_millis(200), || exited(
        &mut waiter
    )));
    drop(listener);
    assert_eq!(wait_exit(&mut waiter, LIMIT), Some(0));
}

/// A one-thread HTTP server answering 200, or 503 once `draining` is set.
fn health_server(draining: Arc<AtomicBool>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { return };
            let mut buf = [0u8; 1024];
            let _ = c.read(&mut buf);
            let status = if draining.load(Ordering::Relaxed) {
                "503 Service Unavailable"
            } else {
                "200 OK"
            };
            let _ = write!(c, "HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n");
        }
    });
    port
}

#[test]
fn unready_http_waits_until_the_url_no_longer_answers_2xx() {
    let mut pod = Pod::new();
    let draining = Arc::new(AtomicBool::new(false));
    let port = health_server(draining.clone());
    let url = format!("http://127.0.0.1:{port}/ready");
    let w = pod.spawn(&["wait", "--unready", &url, "--timeout", "30s"]);
    let mut waiter = pod.take(w);
    assert!(!eventually(Duration::from_millis(200), || exited(
        &mut waiter
    )));
    draining.store(true, Ordering::Relaxed);
    assert_eq!(wait_exit(&mut waiter, LIMIT), Some(0));
    // A 503 is what `#status=503` wants: that condition still holds.
    let out = pod.run(&[
        "wait",
        "--unready",
        &format!("{url}#status=503"),
        "--timeout",
        "200ms",
    ]);
    assert_eq!(out.status.code(), Some(124));
    assert!(
        stderr(&out).contains("still answers 503"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn unready_unix_and_names_together_wait_for_both() {
    let mut pod = Pod::new();
    let sock = pod.path("app.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    assert!(pod.run(&["ready", "web"]).status.success());
    let unix = format!("unix:{}", sock.display());
    let w = pod.spawn(&["wait", "--unready", "web", &unix, "--timeout", "30s"]);
    let mut waiter = pod.take(w);
    drop(listener);
    std::fs::remove_file(&sock).unwrap();
    assert!(
        !eventually(Duration::from_millis(200), || exited(&mut waiter)),
        "returned while web was still ready"
    );
    assert!(pod.run(&["unready", "web"]).status.success());
    assert_eq!(wait_exit(&mut waiter, LIMIT), Some(0));
}

#[test]
fn unready_refuses_conditions_that_are_not_names_or_probes() {
    let pod = Pod::new();
    for cond in ["exit:app", "phase:running", "file:/tmp/x"] {
        let out = pod.run(&["wait", "--unready", cond]);
        assert_eq!(out.status.code(), Some(2), "{cond}: {}", stderr(&out));
        assert!(stderr(&out).contains(cond), "{}", stderr(&out));
    }
    let out = pod.run(&["wait", "--unready", "tcp:1", "--stable", "1s"]);
    assert_eq!(out.status.code(), Some(2));
}

/// A `--ready-when mysql://` probe repeats for the container's whole life: against a remote
/// server each one counts toward `max_connect_errors` and would get the pod blocked, so it is
/// refused (exit 2, saying why and what to probe instead). On loopback it is not counted, and
/// `--wait-for` stops at the first answer: both are accepted.
#[test]
fn a_lifelong_mysql_probe_of_a_remote_server_is_refused() {
    let pod = Pod::new();
    let out = pod.run(&[
        "run",
        "--name",
        "app",
        "--ready-when",
        "mysql://db.example:3306",
        "--",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("max_connect_errors") && err.contains("tcp:db.example:3306"),
        "{err}"
    );
    let out = pod.run(&[
        "run",
        "--name",
        "app",
        "--ready-when",
        "mysql://127.0.0.1:1",
        "--",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}
