//! How `run` stops its command, with real processes, signals and sockets: the one --grace
//! budget, --pre-stop, --pre-stop-http, --on-term-phase, --pgroup, --probe-interval while
//! running, and the termination log.

// Helpers outside #[test] fns unwrap too: in a test, a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// [`start_run`], keeping run's process to wait on.
fn start(pod: &mut Pod, name: &str, opts: &[&str], script: &str) -> std::process::Child {
    let (run, _) = start_run(pod, name, opts, script);
    pod.take(run)
}

#[test]
fn the_whole_stop_fits_in_one_grace_even_when_stop_after_never_holds() {
    let mut pod = Pod::new();
    let log = pod.path("log");
    // --stop-after never holds and CMD ignores SIGTERM: the worst case. Before, that took
    // --grace for the pre-stop steps plus --grace again before SIGKILL.
    let script = format!(
        "trap 'echo term >>{}' TERM; while :; do sleep 0.05; done",
        log.display()
    );
    let mut run = start(
        &mut pod,
        "proxy",
        &["--stop-after", "exit:never", "--grace", "3s"],
        &script,
    );
    let t0 = Instant::now();
    signal(run.id(), "TERM");
    // Generous: SIGKILL is due at 3 s; twice --grace would be 6 s.
    assert_eq!(wait_exit(&mut run, Duration::from_millis(4500)), Some(137));
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_secs(2),
        "killed after {took:?}, before the pre-stop share of --grace was spent"
    );
    assert_eq!(read(&log), "term\n", "CMD never got its stop signal");
    let mut err = String::new();
    std::io::Read::read_to_string(run.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(
        err.contains("--grace 3s less --stop-timeout 1s"),
        "the log does not explain the budget: {err}"
    );
}

#[test]
fn stop_timeout_longer_than_grace_is_a_usage_error() {
    let pod = Pod::new();
    let out = pod.run(&["run", "--grace", "2s", "--stop-timeout", "5s", "--", "true"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--stop-timeout 5s"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn pre_stop_command_runs_before_the_stop_signal() {
    let mut pod = Pod::new();
    let log = pod.path("log");
    let pre = format!("echo pre-stop >>{}", log.display());
    let script = format!(
        "trap 'echo term >>{}; exit 0' TERM; sleep 30 & wait",
        log.display()
    );
    let mut run = start(&mut pod, "app", &["--pre-stop", &pre], &script);
    signal(run.id(), "TERM");
    assert_eq!(wait_exit(&mut run, Duration::from_secs(5)), Some(0));
    assert_eq!(read(&log), "pre-stop\nterm\n");
}

#[test]
fn pre_stop_http_posts_to_a_real_listener_before_the_stop_signal() {
    let mut pod = Pod::new();
    let log = pod.path("log");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    let log_seen = log.clone();
    std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut line = String::new();
        BufReader::new(&conn).read_line(&mut line).unwrap();
        // Answered before CMD has its stop signal: the log is still empty.
        let term_before_answer = read(&log_seen);
        conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            .unwrap();
        tx.send((line, term_before_answer)).unwrap();
    });
    let script = format!(
        "trap 'echo term >>{}; exit 0' TERM; sleep 30 & wait",
        log.display()
    );
    let url = format!("http://127.0.0.1:{port}/quitquitquit");
    let mut run = start(&mut pod, "app", &["--pre-stop-http", &url], &script);
    signal(run.id(), "TERM");
    let (line, before) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(line.trim_end(), "POST /quitquitquit HTTP/1.1");
    assert_eq!(before, "", "CMD was signalled before the POST was answered");
    assert_eq!(wait_exit(&mut run, Duration::from_secs(5)), Some(0));
    assert_eq!(read(&log), "term\n");
}

#[test]
fn on_term_phase_sets_the_phase_before_the_command_is_signalled() {
    let mut pod = Pod::new();
    let seen = pod.path("phase-seen");
    // The command reads the phase when its SIGTERM arrives (PODSIGNAL_DIR is inherited).
    let script = format!(
        "trap '{} phase get >{}; exit 0' TERM; sleep 30 & wait",
        env!("CARGO_BIN_EXE_podsignal"),
        seen.display()
    );
    let mut run = start(&mut pod, "app", &["--on-term-phase", "draining"], &script);
    signal(run.id(), "TERM");
    assert_eq!(wait_exit(&mut run, Duration::from_secs(5)), Some(0));
    assert_eq!(read(&seen).trim(), "draining");
    assert_eq!(stdout(&pod.run(&["phase", "get"])).trim(), "draining");
}

#[test]
fn pgroup_sends_the_signal_to_a_grandchild_in_the_group() {
    let mut pod = Pod::new();
    let log = pod.path("log");
    let grandchild = pod.path("grandchild.sh");
    std::fs::write(
        &grandchild,
        format!(
            "trap 'echo grandchild-term >>{}; exit 0' TERM\necho up >{}\nwhile :; do sleep 0.05; done\n",
            log.display(),
            pod.path("grandchild.up").display()
        ),
    )
    .unwrap();
    // The command itself survives SIGTERM and waits for the grandchild: only a signal to
    // the group ends it before --grace (30 s) runs out.
    let script = format!(
        "trap 'echo child-term >>{log}' TERM; sh {gc} & echo $! >{gcpid}; wait $!; wait $!",
        log = log.display(),
        gc = grandchild.display(),
        gcpid = pod.path("grandchild.pid").display()
    );
    let mut run = start(&mut pod, "app", &["--pgroup", "--grace", "30s"], &script);
    // Synchronise on the grandchild's word that its TERM trap is set, not on its pid: a
    // signal before the trap would kill it (and the test would see 143).
    assert!(eventually(Duration::from_secs(5), || pod
        .path("grandchild.up")
        .exists()));
    signal(run.id(), "TERM");
    assert_eq!(wait_exit(&mut run, Duration::from_secs(10)), Some(0));
    let got = read(&log);
    assert!(got.contains("grandchild-term"), "{got:?}");
    assert!(got.contains("child-term"), "{got:?}");
}

#[test]
fn probe_interval_marks_unready_with_the_reason_then_ready_again() {
    let mut pod = Pod::new();
    let flag = pod.path("flag");
    std::fs::write(&flag, "").unwrap();
    let probe = format!("file:{}", flag.display());
    let mut run = start(
        &mut pod,
        "app",
        &["--ready-when", &probe, "--probe-interval", "50ms"],
        "exec sleep 30",
    );
    assert!(
        pod.run(&["wait", "app", "--timeout", "5s"])
            .status
            .success()
    );
    std::fs::remove_file(&flag).unwrap();
    assert!(
        pod.run(&["wait", "--unready", "app", "--timeout", "5s"])
            .status
            .success(),
        "still ready after the probe started failing"
    );
    let record: serde_json::Value =
        serde_json::from_str(&read(&pod.dir.join("ready/app.json"))).unwrap();
    let reason = record["reason"].as_str().unwrap();
    assert!(
        reason.contains("failed") && reason.contains("no such file"),
        "{record}"
    );
    std::fs::write(&flag, "").unwrap();
    assert!(
        pod.run(&["wait", "app", "--timeout", "5s"])
            .status
            .success(),
        "not ready again after the probe recovered"
    );
    signal(run.id(), "TERM");
    assert_eq!(wait_exit(&mut run, Duration::from_secs(5)), Some(143));
}

#[test]
fn termination_log_holds_the_reason_in_kubernetes_format() {
    let mut pod = Pod::new();
    let path = pod.path("termination-log");
    let p = path.to_str().unwrap();
    let out = pod.run(&["run", "--termination-log", p, "--", "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3));
    // terminationMessagePolicy File: the file's text as it is, at most 4096 bytes.
    assert_eq!(read(&path), "exited with code 3");

    let mut run = start(
        &mut pod,
        "app",
        &["--termination-log", p],
        "trap 'exit 0' TERM; sleep 30 & wait",
    );
    let long = "x".repeat(5000);
    let asked = pod.run(&["stop", "app", "--reason", &long]);
    assert!(asked.status.success(), "{}", stderr(&asked));
    assert_eq!(wait_exit(&mut run, Duration::from_secs(5)), Some(0));
    let text = read(&path);
    assert_eq!(text.len(), 4096, "Kubernetes reads at most 4096 bytes");
    assert!(
        text.starts_with("stopped by podsignal, stop requested by "),
        "{}",
        &text[..80]
    );
}
