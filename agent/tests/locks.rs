//! Locks, fencing tokens and leader election, through the real binary and flock(1).
#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

#[test]
fn two_processes_race_for_a_lock_and_exactly_one_wins() {
    let mut pod = Pod::new();
    let marker = pod.path("inside");
    let gate = pod.path("gate");
    let script = format!(
        "touch {m}.$$; while [ ! -e {g} ]; do sleep 0.01; done; ls {m}.* | wc -l > {c}.$$; rm {m}.$$",
        m = marker.display(),
        g = gate.display(),
        c = pod.path("count").display()
    );
    let a = pod.spawn(&[
        "lock",
        "race",
        "--timeout",
        "30s",
        "--",
        "sh",
        "-c",
        &script,
    ]);
    let b = pod.spawn(&[
        "lock",
        "race",
        "--timeout",
        "30s",
        "--",
        "sh",
        "-c",
        &script,
    ]);
    // One of them gets in; the other must be waiting on the lock, not inside.
    let inside = || {
        std::fs::read_dir(pod.tmp.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("inside."))
            .count()
    };
    assert!(eventually(Duration::from_secs(10), || inside() == 1));
    assert!(
        !eventually(Duration::from_millis(200), || inside() > 1),
        "two holders at once"
    );
    std::fs::write(&gate, "").unwrap();
    let (mut ca, mut cb) = (pod.take(a), pod.take(b));
    assert_eq!(wait_exit(&mut ca, Duration::from_secs(20)), Some(0));
    assert_eq!(wait_exit(&mut cb, Duration::from_secs(20)), Some(0));
    let counts: Vec<String> = std::fs::read_dir(pod.tmp.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("count."))
        .map(|e| std::fs::read_to_string(e.path()).unwrap().trim().to_owned())
        .collect();
    assert_eq!(counts, ["1", "1"], "each holder saw only itself inside");
}

#[test]
fn no_wait_reports_busy_with_75_and_names_the_holder() {
    let mut pod = Pod::new();
    let ready = pod.path("held");
    pod.spawn(&[
        "lock",
        "cron",
        "--",
        "sh",
        "-c",
        &format!("touch {}; exec sleep 60", ready.display()),
    ]);
    assert!(eventually(Duration::from_secs(10), || ready.exists()));
    let out = pod.run(&["lock", "cron", "--no-wait", "--", "true"]);
    assert_eq!(out.status.code(), Some(75));
    assert!(
        stderr(&out).contains("lock cron is held by"),
        "{}",
        stderr(&out)
    );
    let out = pod.run(&["lock", "cron", "--timeout", "100ms", "--", "true"]);
    assert_eq!(out.status.code(), Some(124));
}

#[test]
fn lock_holder_killed_frees_lock_and_kills_command() {
    let mut pod = Pod::new();
    let pidfile = pod.path("cmd.pid");
    let holder = pod.spawn(&[
        "lock",
        "l1",
        "--",
        "sh",
        "-c",
        &format!("echo $$ > {}; exec sleep 600", pidfile.display()),
    ]);
    assert!(eventually(Duration::from_secs(10), || read_pid(&pidfile).is_some()));
    let cmd = read_pid(&pidfile).unwrap();
    let w = pod.spawn(&[
        "--rescan",
        "1h",
        "lock",
        "l1",
        "--timeout",
        "60s",
        "--",
        "sh",
        "-c",
        &format!(
            "s=$(cut -d' ' -f3 /proc/{cmd}/stat 2>/dev/null); [ -z \"$s\" ] || [ \"$s\" = Z ]"
        ),
    ]);
    let mut waiter = pod.take(w);
    assert!(
        !eventually(Duration::from_millis(100), || waiter
            .try_wait()
            .unwrap()
            .is_some()),
        "waiter got a held lock"
    );
    kill9(holder);
    assert_eq!(
        wait_exit(&mut waiter, Duration::from_secs(10)),
        Some(0),
        "waiter did not get the lock, or the old command was still running"
    );
    assert!(!alive(cmd), "the killed holder's command outlived it");
}

#[test]
fn flock1_and_podsignal_exclude_each_other() {
    let mut pod = Pod::new();
    assert!(
        pod.run(&["lock", "shared", "--", "true"]).status.success(),
        "create the lock file"
    );
    let lockfile = pod.dir.join("locks/shared.lock");
    let flag = pod.path("flock-holds");
    // --no-fork: killing flock(1) must kill the holder, not orphan a child that keeps the lock.
    let mut flock = Command::new("flock")
        .arg("--no-fork")
        .arg(&lockfile)
        .args([
            "sh",
            "-c",
            &format!("touch {}; exec sleep 600", flag.display()),
        ])
        .spawn()
        .unwrap();
    assert!(eventually(Duration::from_secs(10), || flag.exists()));
    assert_eq!(
        pod.run(&["lock", "shared", "--no-wait", "--", "true"])
            .status
            .code(),
        Some(75),
        "podsignal got a lock flock(1) holds"
    );
    let status = stdout(&pod.run(&["status"]));
    assert!(
        status.contains("shared") && status.contains("held"),
        "{status}"
    );
    flock.kill().unwrap();
    flock.wait().unwrap();
    // And the other way round.
    let flag2 = pod.path("podsignal-holds");
    pod.spawn(&[
        "lock",
        "shared",
        "--",
        "sh",
        "-c",
        &format!("touch {}; exec sleep 600", flag2.display()),
    ]);
    assert!(eventually(Duration::from_secs(10), || flag2.exists()));
    let out = Command::new("flock")
        .args(["--nonblock", "--conflict-exit-code", "75"])
        .arg(&lockfile)
        .arg("true")
        .status()
        .unwrap();
    assert_eq!(out.code(), Some(75), "flock(1) got a lock podsignal holds");
}

#[test]
fn fencing_tokens_increase_across_holders_and_restarts() {
    let pod = Pod::new();
    let tokens = pod.path("tokens");
    let mut last = 0;
    for _ in 0..5 {
        // Every invocation is a new process: the counter survives them on disk.
        let out = pod.run(&[
            "lock",
            "t",
            "--",
            "sh",
            "-c",
            &format!("echo $PODSIGNAL_FENCING_TOKEN >> {}", tokens.display()),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    for t in std::fs::read_to_string(&tokens).unwrap().lines() {
        let t: u64 = t.parse().unwrap();
        assert!(t > last, "token {t} after {last}");
        last = t;
    }
    assert_eq!(last, 5);
    // flock(1) users do not bump it; the counter is untouched by them.
    let status: serde_json::Value =
        serde_json::from_str(&stdout(&pod.run(&["status", "--json"]))).unwrap();
    assert_eq!(status["locks"][0]["last_token"], 5);
}

#[test]
fn a_corrupt_fencing_counter_continues_from_the_last_holder_never_resetting() {
    let pod = Pod::new();
    let token = |out: &std::process::Output| stdout(out).trim().to_owned();
    assert!(pod.run(&["lock", "t", "--", "true"]).status.success());
    std::fs::write(pod.dir.join("locks/t.fence"), "garbage").unwrap();
    let out = pod.run(&[
        "lock",
        "t",
        "--",
        "sh",
        "-c",
        "echo $PODSIGNAL_FENCING_TOKEN",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        token(&out),
        "2",
        "continued from the holder record's token 1"
    );
    assert!(
        stderr(&out).contains("t.fence"),
        "the repair is logged: {}",
        stderr(&out)
    );
    // Garbage again, no holder record, and the lock file's copy gone too: nothing to
    // continue from, so no token at all.
    std::fs::write(pod.dir.join("locks/t.fence"), "garbage").unwrap();
    std::fs::remove_file(pod.dir.join("locks/t.holder.json")).unwrap();
    std::fs::write(pod.dir.join("locks/t.lock"), "").unwrap();
    let out = pod.run(&["lock", "t", "--", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("t.fence"), "{}", stderr(&out));
}

#[test]
fn leader_hands_over_on_kill_with_a_higher_token() {
    let mut pod = Pod::new();
    let log = pod.path("leaders");
    let script = format!(
        "echo \"$$ $PODSIGNAL_FENCING_TOKEN\" >> {}; exec sleep 600",
        log.display()
    );
    let first = pod.spawn(&["leader", "sched", "--", "sh", "-c", &script]);
    assert!(eventually(Duration::from_secs(10), || {
        std::fs::read_to_string(&log).is_ok_and(|s| s.lines().count() == 1)
    }));
    let second = pod.spawn(&["leader", "sched", "--", "sh", "-c", &script]);
    let shown = stdout(&pod.run(&["leader", "show", "sched"]));
    assert!(shown.contains("fencing token 1"), "{shown}");
    assert!(
        !eventually(Duration::from_millis(200), || std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .count()
            > 1),
        "two leaders"
    );
    kill9(first);
    assert!(
        eventually(Duration::from_secs(10), || std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .count()
            == 2),
        "no hand-over"
    );
    let lines: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let old_cmd: u32 = lines[0].split(' ').next().unwrap().parse().unwrap();
    assert!(
        eventually(Duration::from_secs(5), || !alive(old_cmd)),
        "the old leader's command outlived it"
    );
    assert!(lines[1].ends_with(" 2"), "{lines:?}");
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&pod.run(&["leader", "show", "sched", "--json"]))).unwrap();
    assert_eq!(json["leader"]["token"], 2);
    kill9(second);
    assert!(eventually(Duration::from_secs(10), || pod
        .run(&["leader", "show", "sched"])
        .status
        .code()
        == Some(1)));
}

#[test]
fn lock_passes_the_command_exit_code_and_signal_deaths() {
    let pod = Pod::new();
    assert_eq!(
        pod.run(&["lock", "x", "--", "sh", "-c", "exit 3"])
            .status
            .code(),
        Some(3)
    );
    assert_eq!(
        pod.run(&["lock", "x", "--", "sh", "-c", "kill -9 $$"])
            .status
            .code(),
        Some(137)
    );
    let out = pod.run(&["lock", "x", "--", "/nonexistent/cmd"]);
    assert_eq!(out.status.code(), Some(127));
    assert!(
        stderr(&out).contains("/nonexistent/cmd"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn lock_forwards_sigterm_to_its_command_and_keeps_the_lock_until_it_exits() {
    let mut pod = Pod::new();
    let flag = pod.path("started");
    let done = pod.path("cleaned-up");
    let script = format!(
        "trap 'touch {}; exit 7' TERM; touch {}; while :; do sleep 0.05; done",
        done.display(),
        flag.display()
    );
    let pid = pod.spawn(&["lock", "x", "--", "sh", "-c", &script]);
    assert!(eventually(Duration::from_secs(10), || flag.exists()));
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let mut c = pod.take(pid);
    assert_eq!(wait_exit(&mut c, Duration::from_secs(10)), Some(7));
    assert!(done.exists(), "the command did not get SIGTERM");
}

#[test]
fn leader_show_says_when_the_recorded_leader_is_gone_but_its_lock_is_still_held() {
    // The documented limit of the guard: a process that left the command's process group
    // (setsid) survives a kill -9 of the wrapper, holding the inherited lock. `leader show`
    // must not name the dead wrapper as if it led; it says what is going on.
    let mut pod = Pod::new();
    let mut leftovers = KillOnDrop::default();
    let gc = pod.path("gc");
    let script = format!(
        "setsid -f sh -c 'echo $$ >{}; exec sleep 300'; exec sleep 300",
        gc.display()
    );
    let wrapper = pod.spawn(&["leader", "sched", "--", "sh", "-c", &script]);
    assert!(eventually(Duration::from_secs(10), || read_pid(&gc).is_some()));
    leftovers.add(read_pid(&gc).unwrap());
    kill9(wrapper);
    let mut w = pod.take(wrapper);
    assert!(wait_exit(&mut w, Duration::from_secs(5)).is_some());
    let out = pod.run(&["leader", "show", "sched"]);
    assert!(
        stderr(&out).contains("is gone, but the lock is still held"),
        "{}",
        stderr(&out)
    );
    let status = stdout(&pod.run(&["status"]));
    assert!(
        status.contains("is gone, but the lock is still held"),
        "{status}"
    );
}

/// A flock(1) holding the lock `status` lists: `flock DIR/locks/NAME.lock CMD` in the
/// background, with a flag file to know it holds. Killed when dropped.
struct Flock1(std::process::Child);

impl Flock1 {
    fn hold(pod: &Pod, name: &str) -> Flock1 {
        let flag = pod.path(&format!("{name}.flock-holds"));
        // --no-fork: killing flock(1) must kill the holder, not orphan a child with the lock.
        let child = Command::new("flock")
            .arg("--no-fork")
            .arg(pod.dir.join(format!("locks/{name}.lock")))
            .args([
                "sh",
                "-c",
                &format!("touch {}; exec sleep 600", flag.display()),
            ])
            .spawn()
            .unwrap();
        assert!(eventually(Duration::from_secs(10), || flag.exists()));
        Flock1(child)
    }
}

impl Drop for Flock1 {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `status` row of lock `name`, split into its columns.
fn lock_row(pod: &Pod, name: &str) -> (Vec<String>, String) {
    let out = stdout(&pod.run(&["status"]));
    let section = out
        .split("\nLOCK ")
        .nth(1)
        .unwrap()
        .split("\nLEADER")
        .next()
        .unwrap();
    let line = section
        .lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no row for {name}: {out}"))
        .to_owned();
    (line.split_whitespace().map(str::to_owned).collect(), line)
}

#[test]
fn a_lock_held_outside_podsignal_shows_no_token_of_an_earlier_holder() {
    let mut pod = Pod::new();
    // `released`: a podsignal holder took it and let go (token 1), then flock(1) took it.
    assert!(
        pod.run(&["lock", "released", "--", "true"])
            .status
            .success()
    );
    let _released = Flock1::hold(&pod, "released");
    // `crashed`: its podsignal holder was killed -9 (the record says it still holds), then
    // flock(1) took the lock it left.
    let flag = pod.path("crashed-holds");
    let wrapper = pod.spawn(&[
        "lock",
        "crashed",
        "--",
        "sh",
        "-c",
        &format!("touch {}; exec sleep 600", flag.display()),
    ]);
    assert!(eventually(Duration::from_secs(10), || flag.exists()));
    kill9(wrapper);
    let mut w = pod.take(wrapper);
    assert!(wait_exit(&mut w, Duration::from_secs(5)).is_some());
    // The guard kills the command too; flock(1) gets the lock once it is gone.
    let _crashed = Flock1::hold(&pod, "crashed");
    let record = std::fs::read_to_string(pod.dir.join("locks/crashed.holder.json")).unwrap();
    assert!(
        !record.contains("released_ms"),
        "not the case to test: {record}"
    );
    for name in ["released", "crashed"] {
        let (cols, line) = lock_row(&pod, name);
        assert_eq!(cols[1..3], ["held", "-"], "{line}");
        assert!(
            line.contains("outside podsignal (e.g. flock(1)), no token"),
            "{line}"
        );
        assert!(!line.contains("since"), "names an earlier holder: {line}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&pod.run(&["status", "--json"]))).unwrap();
    for lock in json["locks"].as_array().unwrap() {
        assert_eq!(lock["held_outside_podsignal"], true, "{lock}");
    }
    // A lock podsignal holds shows its holder's token.
    let flag = pod.path("mine-holds");
    pod.spawn(&[
        "lock",
        "mine",
        "--",
        "sh",
        "-c",
        &format!("touch {}; exec sleep 600", flag.display()),
    ]);
    assert!(eventually(Duration::from_secs(10), || flag.exists()));
    let (cols, line) = lock_row(&pod, "mine");
    assert_eq!(cols[1..3], ["held", "1"], "{line}");
    assert!(line.contains(" since "), "{line}");
}
