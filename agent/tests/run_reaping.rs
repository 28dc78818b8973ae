//! `run` as a supervisor: orphans are reaped (as a child subreaper, and as PID 1 in a new
//! PID namespace), signals reach the command, and nothing is left running.

// Helpers outside #[test] fns unwrap too: in a test, a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;

/// A command that orphans a grandchild (which exits after 100 ms) and writes its pid.
fn orphaning_script(pidfile: &str) -> String {
    format!("(sleep 0.1 & echo $! >{pidfile}); exec sleep 30")
}

#[test]
fn orphans_are_reaped_when_run_is_not_pid_1() {
    let mut pod = Pod::new();
    let pidfile = pod.path("orphan.pid");
    let run = pod.spawn(&[
        "run",
        "--",
        "sh",
        "-c",
        &orphaning_script(pidfile.to_str().unwrap()),
    ]);
    assert!(eventually(Duration::from_secs(5), || read_pid(&pidfile).is_some()));
    let orphan = read_pid(&pidfile).unwrap();
    // Reparented to run (the subreaper), not to init, once the subshell that wrote the pid
    // file (its parent until then) has exited...
    let parent_of = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                s.rsplit(')')
                    .next()?
                    .split_whitespace()
                    .nth(1)?
                    .parse::<u32>()
                    .ok()
            })
    };
    // The subshell is the command's child: its parent's parent is run.
    let is_the_subshell = |p: u32| parent_of(p).and_then(parent_of) == Some(run);
    let mut parent = parent_of(orphan);
    eventually(Duration::from_secs(5), || {
        parent = parent_of(orphan);
        !parent.is_some_and(is_the_subshell)
    });
    assert!(
        parent.is_none() || parent == Some(run),
        "orphan {orphan} has parent {parent:?}, not run {run}"
    );
    // ...and reaped by it once it exits: no zombie left in /proc.
    assert!(
        eventually(Duration::from_secs(5), || !std::path::Path::new(&format!(
            "/proc/{orphan}"
        ))
        .exists()),
        "orphan {orphan} was never reaped"
    );
    kill9(run);
}

#[test]
fn as_pid_1_in_a_new_pid_namespace_orphans_are_reaped_and_signals_reach_the_command() {
    let unshare_works = std::process::Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !unshare_works {
        eprintln!("skipped: unshare --pid needs root");
        return;
    }
    let pod = Pod::new();
    let d = pod.tmp.path().display().to_string();
    // Inside: the command checks that the orphan is gone from /proc (reaped by PID 1 = run),
    // then waits for SIGTERM and exits 42 on it.
    let script = format!(
        "[ $PPID = 1 ] || exit 10; (sleep 0.1 & echo $! >{d}/orphan.pid); \
         i=0; until [ -s {d}/orphan.pid ] && [ ! -e /proc/$(cat {d}/orphan.pid) ]; do i=$((i+1)); [ $i -gt 500 ] && exit 11; sleep 0.01; done; \
         trap 'exit 42' TERM; touch {d}/reaped; while :; do sleep 0.01; done"
    );
    let mut unshare = std::process::Command::new("unshare")
        .args([
            "--pid",
            "--fork",
            "--mount-proc",
            env!("CARGO_BIN_EXE_podsignal"),
            "run",
            "--",
            "sh",
            "-c",
            &script,
        ])
        .env("PODSIGNAL_DIR", &pod.dir)
        .spawn()
        .unwrap();
    let reaped = pod.path("reaped");
    let ok = eventually(Duration::from_secs(10), || {
        reaped.exists() || unshare.try_wait().unwrap().is_some()
    });
    assert!(
        ok && reaped.exists(),
        "the orphan was not reaped by PID 1 (exit {:?})",
        unshare.try_wait()
    );
    // run is unshare's child; signal it (PID 1 of the namespace) from outside.
    let run_pid = children_of(unshare.id())
        .into_iter()
        .next()
        .expect("run inside unshare");
    std::process::Command::new("kill")
        .args(["-TERM", &run_pid.to_string()])
        .status()
        .unwrap();
    assert_eq!(wait_exit(&mut unshare, Duration::from_secs(5)), Some(42));
}

fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit(')')
                        .next()?
                        .split_whitespace()
                        .nth(1)?
                        .parse::<u32>()
                        .ok()
                })
                == Some(pid)
        })
        .collect()
}

#[test]
fn descendants_left_behind_are_stopped_when_the_command_exits() {
    let pod = Pod::new();
    let pidfile = pod.path("daemon.pid");
    let script = format!("(sleep 30 & echo $! >{}); exit 0", pidfile.display());
    let out = pod.run(&["run", "--grace", "2s", "--", "sh", "-c", &script]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let daemon = read_pid(&pidfile).unwrap();
    assert!(!alive(daemon), "run exited leaving {daemon} running");
}

#[test]
fn signals_other_than_term_are_forwarded_to_the_command() {
    let mut pod = Pod::new();
    let got = pod.path("got-usr1");
    let ready = pod.path("trap-set");
    let script = format!(
        "trap 'touch {}; exit 7' USR1; touch {}; while :; do sleep 0.01; done",
        got.display(),
        ready.display()
    );
    let run = pod.spawn(&["run", "--", "sh", "-c", &script]);
    assert!(eventually(Duration::from_secs(5), || ready.exists()));
    std::process::Command::new("kill")
        .args(["-USR1", &run.to_string()])
        .status()
        .unwrap();
    assert_eq!(
        wait_exit(&mut pod.take(run), Duration::from_secs(5)),
        Some(7)
    );
    assert!(got.exists());
}

#[test]
fn an_orphan_in_a_session_of_its_own_is_reaped_too() {
    // A daemon that called setsid(2) is in another process group: a reaper that waits only
    // for its own group (waitpid(0)) would leave it a zombie forever.
    let mut pod = Pod::new();
    let pidfile = pod.path("orphan.pid");
    let script = format!(
        "(setsid sh -c 'echo $$ >{}; exec sleep 0.1' &); exec sleep 30",
        pidfile.display()
    );
    let run = pod.spawn(&["run", "--", "sh", "-c", &script]);
    assert!(eventually(Duration::from_secs(5), || read_pid(&pidfile).is_some()));
    let orphan = read_pid(&pidfile).unwrap();
    assert!(
        eventually(Duration::from_secs(5), || !std::path::Path::new(&format!(
            "/proc/{orphan}"
        ))
        .exists()),
        "orphan {orphan} (own session) was never reaped"
    );
    kill9(run);
}
