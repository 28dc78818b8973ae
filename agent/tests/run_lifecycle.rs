//! `run`'s lifecycle with real processes and signals: exit codes, tombstones, --exit-with,
//! --stop-after, --grace, drain, `podsignal stop`, kill -9.

// Helpers outside #[test] fns unwrap too: in a test, a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use common::*;

fn tombstone(pod: &Pod, name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(pod.dir.join(format!("exits/{name}.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn exit_codes_and_signal_deaths_propagate_exactly() {
    let pod = Pod::new();
    for (script, want) in [
        ("exit 0", 0),
        ("exit 3", 3),
        ("kill -KILL $$", 137),
        ("kill -TERM $$", 143),
    ] {
        let out = pod.run(&["run", "--name", "c", "--", "sh", "-c", script]);
        assert_eq!(out.status.code(), Some(want), "{script}: {}", stderr(&out));
        assert_eq!(tombstone(&pod, "c")["exit_code"], want, "{script}");
    }
    assert_eq!(tombstone(&pod, "c")["signal"], 15);
    let out = pod.run(&["run", "--remap-exit", "3:0", "--", "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(0));
    let out = pod.run(&["run", "--exit-code", "zero", "--", "sh", "-c", "exit 4"]);
    assert_eq!(out.status.code(), Some(0));
    let out = pod.run(&["run", "--", "/does/not/exist"]);
    assert_eq!(out.status.code(), Some(127));
}

#[test]
fn exit_with_stops_the_sidecar_when_the_app_exits_and_on_stop_zero_gives_0() {
    let mut pod = Pod::new();
    let (proxy, proxy_cmd) = start_run(
        &mut pod,
        "proxy",
        &["--exit-with", "exit:app", "--exit-code", "on-stop-zero"],
        "exec sleep 30",
    );
    let mut proxy_run = pod.take(proxy);
    assert!(
        pod.run(&["run", "--name", "app", "--", "true"])
            .status
            .success()
    );
    assert_eq!(
        wait_exit(&mut proxy_run, Duration::from_secs(5)),
        Some(0),
        "on-stop-zero after --exit-with"
    );
    assert!(!alive(proxy_cmd), "the sidecar's command outlived it");
    let t = tombstone(&pod, "proxy");
    assert_eq!(
        (t["stopped"].as_bool(), t["exit_code"].as_u64()),
        (Some(true), Some(143))
    );
    assert!(
        t["reason"]
            .as_str()
            .unwrap()
            .contains("--exit-with exit:app"),
        "{t}"
    );
    // Not stopped by podsignal: on-stop-zero passes the child's own code through.
    let out = pod.run(&[
        "run",
        "--exit-code",
        "on-stop-zero",
        "--",
        "sh",
        "-c",
        "exit 5",
    ]);
    assert_eq!(out.status.code(), Some(5));
}

#[test]
fn stop_after_keeps_the_proxy_running_until_the_app_has_exited() {
    let mut pod = Pod::new();
    let (proxy, proxy_cmd) = start_run(
        &mut pod,
        "proxy",
        &["--stop-after", "exit:app", "--grace", "30s"],
        "exec sleep 30",
    );
    let (app, _) = start_run(&mut pod, "app", &[], "trap 'exit 0' TERM; sleep 30 & wait");
    let mut proxy_run = pod.take(proxy);
    let mut app_run = pod.take(app);
    signal(proxy, "TERM");
    assert!(
        !eventually(Duration::from_millis(300), || proxy_run
            .try_wait()
            .unwrap()
            .is_some()),
        "the proxy stopped while the app ran"
    );
    assert!(alive(proxy_cmd));
    signal(app, "TERM");
    assert_eq!(wait_exit(&mut app_run, Duration::from_secs(5)), Some(0));
    assert_eq!(wait_exit(&mut proxy_run, Duration::from_secs(5)), Some(143));
    let (a, p) = (tombstone(&pod, "app"), tombstone(&pod, "proxy"));
    assert!(
        p["exited_ms"].as_u64() >= a["exited_ms"].as_u64(),
        "the proxy stopped before the app: {a} {p}"
    );
    assert!(!alive(proxy_cmd));
}

#[test]
fn grace_escalates_to_sigkill_for_a_child_ignoring_sigterm() {
    let mut pod = Pod::new();
    let (run, cmd) = start_run(
        &mut pod,
        "stubborn",
        &["--grace", "200ms"],
        "trap '' TERM; while :; do sleep 0.05; done",
    );
    let mut run_child = pod.take(run);
    signal(run, "TERM");
    assert_eq!(wait_exit(&mut run_child, Duration::from_secs(5)), Some(137));
    assert!(!alive(cmd));
    assert!(
        tombstone(&pod, "stubborn")["reason"]
            .as_str()
            .unwrap()
            .contains("SIGKILL")
    );
}

#[test]
fn drain_ports_waits_for_an_open_connection_to_close() {
    let mut pod = Pod::new();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (accepted, _) = listener.accept().unwrap();
    let (run, _) = start_run(
        &mut pod,
        "web",
        &[
            "--drain-ports",
            &port.to_string(),
            "--ready-when",
            "exec:true",
            "--grace",
            "30s",
        ],
        "exec sleep 30",
    );
    let mut run_child = pod.take(run);
    assert!(
        pod.run(&["wait", "web", "--timeout", "5s"])
            .status
            .success()
    );
    signal(run, "TERM");
    // Drained: unready at once, but the command keeps running while the connection is open.
    assert!(
        pod.run(&["wait", "--unready", "web", "--timeout", "5s"])
            .status
            .success()
    );
    assert!(
        !eventually(Duration::from_millis(300), || run_child
            .try_wait()
            .unwrap()
            .is_some()),
        "stopped with a connection open"
    );
    drop(conn);
    drop(accepted);
    assert_eq!(wait_exit(&mut run_child, Duration::from_secs(5)), Some(143));
}

#[test]
fn podsignal_stop_stops_run_gracefully_from_another_process() {
    let mut pod = Pod::new();
    let (run, cmd) = start_run(
        &mut pod,
        "proxy",
        &["--exit-code", "on-stop-zero"],
        "trap 'exit 0' TERM; sleep 30 & wait",
    );
    let mut run_child = pod.take(run);
    let out = pod.run(&[
        "stop",
        "proxy",
        "--reason",
        "job done",
        "--wait",
        "--timeout",
        "5s",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(wait_exit(&mut run_child, Duration::from_secs(5)), Some(0));
    assert!(!alive(cmd));
    let t = tombstone(&pod, "proxy");
    assert!(t["reason"].as_str().unwrap().contains("job done"), "{t}");
    assert!(
        !pod.dir.join("stop/proxy.json").exists(),
        "the request was not cleared"
    );
    // Events: start, ready, stop, exit.
    let events = stdout(&pod.run(&[
        "event",
        "watch",
        "--since",
        "0",
        "--count",
        "4",
        "--timeout",
        "2s",
    ]));
    for kind in ["\"start\"", "\"ready\"", "\"stop\"", "\"exit\""] {
        assert!(events.contains(kind), "{kind} missing: {events}");
    }
}

#[test]
fn kill_9_of_run_retracts_its_readiness_and_kills_its_command() {
    let mut pod = Pod::new();
    let flag = pod.path("flag");
    let (run, cmd) = start_run(
        &mut pod,
        "app",
        &["--ready-when", &format!("file:{}", flag.display())],
        "exec sleep 30",
    );
    assert!(
        pod.run(&["wait", "--unready", "app", "--timeout", "1s"])
            .status
            .success(),
        "ready before the probe passed"
    );
    std::fs::write(&flag, "").unwrap();
    assert!(
        pod.run(&["wait", "app", "--timeout", "5s"])
            .status
            .success()
    );
    kill9(run);
    assert!(
        pod.run(&[
            "--rescan",
            "1h",
            "wait",
            "--unready",
            "app",
            "--timeout",
            "5s"
        ])
        .status
        .success()
    );
    assert!(
        eventually(Duration::from_secs(5), || !alive(cmd)),
        "the command outlived kill -9 of run"
    );
}

#[test]
fn without_ready_when_a_named_run_is_ready_once_started_and_held_like_a_probe() {
    // Kubernetes' rule for a container without a readinessProbe: ready once started.
    let mut pod = Pod::new();
    let (run, cmd) = start_run(&mut pod, "worker", &[], "exec sleep 30");
    let out = pod.run(&["wait", "worker", "--timeout", "5s"]);
    assert!(out.status.success(), "never ready: {}", stderr(&out));
    kill9(run);
    assert!(
        pod.run(&[
            "--rescan",
            "1h",
            "wait",
            "--unready",
            "worker",
            "--timeout",
            "5s"
        ])
        .status
        .success(),
        "still ready after kill -9 of run: the record was not held"
    );
    assert!(eventually(Duration::from_secs(5), || !alive(cmd)));
}

#[test]
fn ready_when_started_is_the_default_spelled_out_and_never_opts_out() {
    let mut pod = Pod::new();
    start_run(
        &mut pod,
        "quiet",
        &["--ready-when", "never"],
        "exec sleep 30",
    );
    start_run(
        &mut pod,
        "loud",
        &["--ready-when", "started"],
        "exec sleep 30",
    );
    assert!(
        pod.run(&["wait", "loud", "--timeout", "5s"])
            .status
            .success()
    );
    let out = pod.run(&["wait", "quiet", "--timeout", "300ms"]);
    assert_eq!(out.status.code(), Some(124), "quiet was published");
    assert!(
        stderr(&out).contains("quiet: no record"),
        "{}",
        stderr(&out)
    );
    let out = pod.run(&["run", "--ready-when", "never", "--", "true"]);
    assert_eq!(out.status.code(), Some(2), "--ready-when without --name");
}

#[test]
fn readiness_is_retracted_when_the_command_exits() {
    let mut pod = Pod::new();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let script = format!(
        "exec python3 -c 'import socket,time,sys; s=socket.socket(); s.bind((\"127.0.0.1\",{port})); s.listen(); time.sleep(30)'"
    );
    let (run, _) = start_run(
        &mut pod,
        "srv",
        &["--ready-when", &format!("tcp:{port}")],
        &script,
    );
    assert!(
        pod.run(&["wait", "srv", "--timeout", "10s"])
            .status
            .success()
    );
    let mut run_child = pod.take(run);
    signal(run, "TERM");
    assert_eq!(wait_exit(&mut run_child, Duration::from_secs(5)), Some(143));
    let out = pod.run(&["wait", "srv", "--timeout", "100ms"]);
    assert_eq!(out.status.code(), Some(124));
}

#[test]
fn disabled_execs_the_command_and_says_what_it_skips() {
    let pod = Pod::new();
    let out = pod
        .cmd(&[
            "run",
            "--name",
            "app",
            "--wait-for",
            "never",
            "--",
            "sh",
            "-c",
            "exit 6",
        ])
        .env("PODSIGNAL_DISABLED", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6));
    let err = stderr(&out);
    assert!(
        err.contains("--wait-for never") && err.contains("exits/app.json"),
        "{err}"
    );
    assert!(!pod.dir.join("exits/app.json").exists());
}

#[test]
fn disabled_with_ready_when_fd_gives_the_command_a_descriptor_that_goes_nowhere() {
    // Without it, the kill switch broke `set -e` scripts that report readiness on fd 3.
    let pod = Pod::new();
    let out = pod
        .cmd(&[
            "run",
            "--name",
            "app",
            "--ready-when",
            "fd:3",
            "--",
            "sh",
            "-ec",
            "echo >&3; echo reported",
        ])
        .env("PODSIGNAL_DISABLED", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("reported"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("descriptor 3 is /dev/null"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn disabled_runs_the_command_even_when_fd_n_cannot_be_made() {
    // N beyond the descriptor limit: said on the line, and the command still runs (the kill
    // switch used to exit 1 there, without running it).
    let pod = Pod::new();
    let script = format!(
        "ulimit -n 64 && exec {} --dir {} run --ready-when fd:100 -- sh -c 'echo ran'",
        env!("CARGO_BIN_EXE_podsignal"),
        pod.dir.display()
    );
    let out = std::process::Command::new("sh")
        .args(["-c", &script])
        .env("PODSIGNAL_DISABLED", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("ran"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "--ready-when fd:100 (descriptor 100 left closed: cannot open /dev/null as 100"
        ),
        "{}",
        stderr(&out)
    );
}

#[test]
fn install_copies_a_working_binary() {
    let pod = Pod::new();
    let dest = pod.path("bin");
    std::fs::create_dir(&dest).unwrap();
    assert!(
        pod.run(&["install", dest.to_str().unwrap()])
            .status
            .success()
    );
    let out = std::process::Command::new(dest.join("podsignal"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success() && stdout(&out).contains("podsignal"));
}
