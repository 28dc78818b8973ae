//! Attacks on the process wrappers (issue 14, items 6, 7, 9 and the --grace overflow of 17):
//! a neighbour holding a file must not delay a stop past --grace; `lock`, `leader` and `run`
//! must leave no process behind (a leftover holding the lock's descriptor keeps the lock);
//! a hostile stop file is reported, never acted on; an absurd --grace is not a crash.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;
mod http_support;

use std::os::unix::fs::symlink;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use http_support::Agent;

fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn a_neighbour_holding_the_events_lock_does_not_delay_the_stop_past_grace() {
    // Item 6: `flock DIR/events/events.lock sleep 60` in the background, then run with
    // --grace 2s --on-term-phase draining (both of which publish events) and a SIGTERM.
    require_tool("flock", "--version");
    let mut pod = Pod::new();
    assert!(pod.run(&["event", "publish", "seed"]).status.success());
    let held = pod.path("flock-holds");
    // --no-fork: killing flock(1) (at the end) kills the holder, and frees the lock.
    let _neighbour = Bg(Command::new("flock")
        .arg("--no-fork")
        .arg(pod.dir.join("events/events.lock"))
        .args([
            "sh",
            "-c",
            &format!("touch {}; exec sleep 60", held.display()),
        ])
        .stdin(Stdio::null())
        .spawn()
        .unwrap());
    assert!(eventually(Duration::from_secs(10), || held.exists()));
    let (p, t) = (pod.path("P"), pod.path("T"));
    let script = format!(
        "trap \"echo term >>{t}; exit 0\" TERM; echo $$ >{p}; while :; do sleep 0.1; done",
        t = t.display(),
        p = p.display()
    );
    let run = pod.spawn(&[
        "run",
        "--name",
        "app",
        "--grace",
        "2s",
        "--on-term-phase",
        "draining",
        "--",
        "sh",
        "-c",
        &script,
    ]);
    assert!(
        eventually(Duration::from_secs(10), || read_pid(&p).is_some()),
        "the command never started while a neighbour held events.lock"
    );
    let mut run = Bg(pod.take(run));
    let t0 = Instant::now();
    signal(run.id(), "TERM");
    assert!(
        eventually(Duration::from_secs(5), || read(&t) == "term\n"),
        "the command did not get SIGTERM within 5 s (T: {:?})",
        read(&t)
    );
    let left = Duration::from_secs(8).saturating_sub(t0.elapsed());
    let code = wait_exit(&mut run.0, left);
    assert!(
        code.is_some(),
        "run had not exited 8 s after SIGTERM with --grace 2s"
    );
}

#[test]
fn a_killed_leader_wrapper_leaves_no_process_holding_the_campaign() {
    // Item 7a: `leader sched -- sh -c 'sleep 300 & ...; exec sleep 300'`; kill -9 the wrapper.
    let mut pod = Pod::new();
    let mut leftovers = KillOnDrop::default();
    let gc = pod.path("GC");
    let wrapper = pod.spawn(&[
        "leader",
        "sched",
        "--",
        "sh",
        "-c",
        &format!("sleep 300 & echo $! >{}; exec sleep 300", gc.display()),
    ]);
    assert!(eventually(Duration::from_secs(10), || read_pid(&gc).is_some()));
    let grandchild = read_pid(&gc).unwrap();
    leftovers.add(grandchild);
    kill9(wrapper);
    pod.take(wrapper).wait().unwrap();
    assert!(
        eventually(Duration::from_secs(10), || !alive(grandchild)),
        "the leader's background grandchild {grandchild} outlived the killed wrapper"
    );
    let (code, err) = pod.run_detached(
        &["leader", "sched", "--timeout", "15s", "--", "true"],
        Duration::from_secs(25),
    );
    assert_eq!(code, Some(0), "a new leader could not take over: {err}");
}

#[test]
fn a_killed_remote_lock_wrapper_leaves_nothing_running_for_the_next_holder() {
    // Item 7b: through the agent; the next holder checks that the killed holder's grandchild
    // (a loop writing to L) is gone when it gets the lock.
    let agent = Agent::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let (l, gc, r) = (
        tmp.path().join("L"),
        tmp.path().join("GC"),
        tmp.path().join("R"),
    );
    let mut leftovers = KillOnDrop::default();
    let script = format!(
        "(while :; do echo x >>{l}; sleep 0.01; done) & echo $! >{gc}; exec sleep 300",
        l = l.display(),
        gc = gc.display()
    );
    let wrapper = Bg(agent
        .remote(&["lock", "m", "--", "sh", "-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap());
    assert!(eventually(Duration::from_secs(10), || read_pid(&gc)
        .is_some()
        && l.exists()));
    leftovers.add(read_pid(&gc).unwrap());
    kill9(wrapper.id());
    drop(wrapper);
    // A zombie is gone (it runs nothing and holds no descriptor; whoever inherited it just
    // has not reaped it yet), so "alive" is: a /proc entry whose state is not Z.
    let check = format!(
        "st=$(cut -d' ' -f3 /proc/$(cat {gc})/stat 2>/dev/null); \
         if [ -n \"$st\" ] && [ \"$st\" != Z ]; then echo ALIVE >{r}; else echo GONE >{r}; fi",
        gc = gc.display(),
        r = r.display()
    );
    let mut next = Bg(agent
        .remote(&["lock", "m", "--timeout", "20s", "--", "sh", "-c", &check])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap());
    assert_eq!(
        wait_exit(&mut next.0, Duration::from_secs(30)),
        Some(0),
        "the next holder did not run"
    );
    assert_eq!(
        read(&r).trim(),
        "GONE",
        "the next holder got the lock while the killed holder's grandchild still ran"
    );
}

#[test]
fn lock_leaves_no_background_process_holding_the_lock_after_its_command_exits() {
    // Item 7c: `lock m -- sh -c 'sleep 300 & echo $! >GC; exit 0'`.
    let pod = Pod::new();
    let mut leftovers = KillOnDrop::default();
    let gc = pod.path("GC");
    let (code, err) = pod.run_detached(
        &[
            "lock",
            "m",
            "--",
            "sh",
            "-c",
            &format!("sleep 300 & echo $! >{}; exit 0", gc.display()),
        ],
        Duration::from_secs(20),
    );
    let grandchild = read_pid(&gc).expect("no GC pid");
    leftovers.add(grandchild);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        eventually(Duration::from_secs(2), || !alive(grandchild)),
        "the command's background child {grandchild} outlived lock"
    );
    let (code, err) = pod.run_detached(
        &["lock", "m", "--no-wait", "--", "true"],
        Duration::from_secs(10),
    );
    assert_eq!(code, Some(0), "lock m is still held: {err}");
}

#[test]
fn a_killed_run_leaves_no_background_grandchild() {
    // Item 7d: `run -- sh -c 'sleep 300 & echo $! >GC; exec sleep 300'` (not PID 1), kill -9.
    let mut pod = Pod::new();
    let mut leftovers = KillOnDrop::default();
    let gc = pod.path("GC");
    let run = pod.spawn(&[
        "run",
        "--",
        "sh",
        "-c",
        &format!("sleep 300 & echo $! >{}; exec sleep 300", gc.display()),
    ]);
    assert!(eventually(Duration::from_secs(10), || read_pid(&gc).is_some()));
    let grandchild = read_pid(&gc).unwrap();
    leftovers.add(grandchild);
    kill9(run);
    pod.take(run).wait().unwrap();
    assert!(
        eventually(Duration::from_secs(10), || !alive(grandchild)),
        "the background grandchild {grandchild} outlived the killed run"
    );
}

#[test]
fn lock_and_leader_help_document_grace_for_leftovers() {
    // Item 7: `--grace` (leftovers get SIGTERM, SIGKILL after it) is documented.
    let pod = Pod::new();
    for cmd in ["lock", "leader"] {
        let out = pod.run(&[cmd, "--help"]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            stdout(&out).contains("--grace"),
            "`{cmd} --help` does not document --grace"
        );
    }
}

/// `run --name app --rescan 100ms` with a command that just sleeps; returns run's and the
/// command's pids.
fn start_app(pod: &mut Pod) -> (u32, u32) {
    start_run(pod, "app", &["--rescan", "100ms"], "exec sleep 300")
}

/// Plants `plant` at stop/app.json: status reports it, run and its command live on (a
/// bounded look of 15 rescans), and after removing it a real `podsignal stop app` stops run.
fn hostile_stop_file_is_reported_and_ignored(plant: impl FnOnce(&std::path::Path)) {
    let mut pod = Pod::new();
    let (run, cmd) = start_app(&mut pod);
    let stop = pod.dir.join("stop");
    std::fs::create_dir_all(&stop).unwrap();
    let file = stop.join("app.json");
    plant(&file);
    // Bounded look: 1.5 s is 15 --rescan intervals in which run could act on the file.
    let stopped = eventually(Duration::from_millis(1500), || !alive(run) || !alive(cmd));
    assert!(!stopped, "run acted on a hostile stop file");
    let out = pod.run_within(&["status"], Duration::from_secs(10));
    let human = stdout(&out);
    let problems = human.split("PROBLEMS").nth(1).unwrap_or_default();
    assert!(
        problems.contains("stop/app.json"),
        "status does not list stop/app.json as a problem:\n{human}"
    );
    std::fs::remove_file(&file).unwrap();
    let out = pod.run(&["stop", "app"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut run = Bg(pod.take(run));
    assert!(
        wait_exit(&mut run.0, Duration::from_secs(15)).is_some(),
        "a real stop request did not stop run"
    );
}

#[test]
fn a_symlinked_stop_file_is_reported_and_never_acted_on() {
    // Item 9: `ln -s /etc/passwd DIR/stop/app.json`.
    hostile_stop_file_is_reported_and_ignored(|f| symlink("/etc/passwd", f).unwrap());
}

#[test]
fn a_garbage_stop_file_is_reported_and_never_acted_on() {
    // Item 9: a regular file that is not a stop record.
    hostile_stop_file_is_reported_and_ignored(|f| std::fs::write(f, "garbage{\n").unwrap());
}

#[test]
fn an_absurd_grace_is_a_usage_error_or_works_but_never_aborts() {
    // Item 17: `run --grace 18446744073709551615s -- true` must not abort (134) or panic.
    let pod = Pod::new();
    let out = pod.run_within(
        &["run", "--grace", "18446744073709551615s", "--", "true"],
        Duration::from_secs(10),
    );
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    match out.status.code() {
        Some(0) => {}
        Some(2) => assert!(!err.trim().is_empty(), "exit 2 without a message"),
        other => panic!("exit {other:?}: {err}"),
    }
}
