//! How `run` stops its command, with real processes, signals and sockets: the one --grace
//! budget, --stop-on, --pre-stop, --pre-stop-http, --on-term-phase, --pgroup,
//! --probe-interval while running, and the termination log.

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

    // A fresh file, as Kubernetes gives each run of a container.
    let path = pod.path("termination-log-2");
    let p = path.to_str().unwrap();
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

fn tombstone(pod: &Pod, name: &str) -> serde_json::Value {
    serde_json::from_str(&read(&pod.dir.join(format!("exits/{name}.json")))).unwrap()
}

#[test]
fn a_stop_on_signal_stops_in_order_and_the_others_are_only_forwarded() {
    // nginx's graceful stop is SIGQUIT (lifecycle.stopSignal: SIGQUIT): with --stop-on QUIT
    // it drains, runs the pre-stop steps, then forwards QUIT; SIGTERM is forwarded as is.
    let mut pod = Pod::new();
    let log = pod.path("log");
    let pre = format!("echo pre-stop >>{}", log.display());
    let script = format!(
        "trap 'echo quit >>{l}; exit 0' QUIT; trap 'echo term >>{l}' TERM; while :; do sleep 0.05; done",
        l = log.display()
    );
    let mut run = start(
        &mut pod,
        "web",
        &["--stop-on", "QUIT", "--pre-stop", &pre],
        &script,
    );
    signal(run.id(), "TERM");
    assert!(
        eventually(Duration::from_secs(5), || read(&log) == "term\n"),
        "SIGTERM was not forwarded: {:?}",
        read(&log)
    );
    assert!(
        alive(run.id()),
        "SIGTERM stopped run although --stop-on is QUIT"
    );
    signal(run.id(), "QUIT");
    assert_eq!(wait_exit(&mut run, Duration::from_secs(5)), Some(0));
    assert_eq!(read(&log), "term\npre-stop\nquit\n");
    let t = tombstone(&pod, "web");
    assert_eq!(t["stopped"], true, "{t}");
    assert!(
        t["reason"].as_str().unwrap().contains("received SIGQUIT"),
        "{t}"
    );
}

#[test]
fn a_stop_request_sends_the_first_stop_on_signal() {
    let mut pod = Pod::new();
    let log = pod.path("log");
    let script = format!(
        "trap 'echo quit >>{l}; exit 0' QUIT; trap 'echo term >>{l}; exit 1' TERM; sleep 30 & wait",
        l = log.display()
    );
    let mut run = start(&mut pod, "web", &["--stop-on", "QUIT,TERM,INT"], &script);
    let asked = pod.run(&["stop", "web"]);
    assert!(asked.status.success(), "{}", stderr(&asked));
    assert_eq!(wait_exit(&mut run, Duration::from_secs(5)), Some(0));
    assert_eq!(read(&log), "quit\n");
}

#[test]
fn a_stop_on_signal_while_waiting_ends_run_with_128_plus_n() {
    let mut pod = Pod::new();
    let pid = pod.spawn(&[
        "run",
        "--stop-on",
        "QUIT",
        "--wait-for",
        "never-ready",
        "--",
        "true",
    ]);
    // Waiting: its watcher is up (the signal stream was installed before anything else).
    assert!(eventually(Duration::from_secs(5), || watching(pid)));
    signal(pid, "QUIT");
    let mut run = pod.take(pid);
    assert_eq!(wait_exit(&mut run, Duration::from_secs(5)), Some(131));
    let mut err = String::new();
    std::io::Read::read_to_string(run.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(
        err.contains("SIGQUIT while waiting for never-ready"),
        "{err}"
    );
}

#[test]
fn stop_on_takes_only_signals_run_can_catch() {
    let pod = Pod::new();
    for bad in ["KILL", "CHLD", "NOPE"] {
        let out = pod.run(&["run", "--stop-on", bad, "--", "true"]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("--stop-on"),
            "{bad}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn the_apps_termination_message_comes_first_and_is_never_cut() {
    let pod = Pod::new();
    let run_writing = |name: &str, app_writes: &str| -> String {
        let path = pod.path(name);
        let p = path.to_str().unwrap();
        let script = format!("{app_writes} >{p}; exit 3");
        let out = pod.run(&["run", "--termination-log", p, "--", "sh", "-c", &script]);
        assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
        read(&path)
    };
    assert_eq!(
        run_writing("a", "printf 'db down'"),
        "db down\nexited with code 3"
    );
    assert_eq!(
        run_writing("b", "echo 'db down'"),
        "db down\nexited with code 3"
    );
    // 4090 bytes of the app's: a newline and 5 bytes of run's fill the 4096.
    let text = run_writing("c", "head -c 4090 /dev/zero | tr '\\0' a");
    assert_eq!(text.len(), 4096);
    assert!(text.starts_with(&"a".repeat(4090)) && text.ends_with("\nexite"));
    // The app's alone is over the limit: run adds nothing, cuts nothing.
    let text = run_writing("d", "head -c 5000 /dev/zero | tr '\\0' a");
    assert_eq!(text, "a".repeat(5000));
    // off: nothing of run's (FallbackToLogsOnError then shows the log's tail).
    let off = pod.path("e");
    let off_arg = off.to_str().unwrap();
    let out = pod.run(&[
        "run",
        "--termination-log",
        "off",
        "--",
        "sh",
        "-c",
        &format!(": >{off_arg}; exit 3"),
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(read(&off), "", "run wrote with --termination-log off");
    assert!(
        stderr(&out).contains("exited with code 3"),
        "the log's tail does not say why: {}",
        stderr(&out)
    );
}
