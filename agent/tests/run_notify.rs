//! `run --ready-when notify`: the sd_notify protocol with real datagrams, from the child,
//! from a grandchild shell script (an sd_notify sender that waits for its BARRIER, as
//! systemd-notify does from systemd 254 on), and from an unrelated process; WATCHDOG_PID,
//! EXIT_STATUS/ERRNO and EXTEND_TIMEOUT_USEC. And `--ready-when fd:N` (s6's
//! notification-fd): a real pipe, held by the command alone.

// Helpers outside #[test] fns unwrap too: in a test, a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::Duration;

use common::*;

fn record(pod: &Pod, name: &str) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(pod.dir.join(format!("ready/{name}.json"))).ok()?;
    serde_json::from_str(&text).ok()
}

fn has(pod: &Pod, name: &str, state: &str, reason: &str) -> bool {
    record(pod, name).is_some_and(|r| r["state"] == state && r["reason"] == reason)
}

/// A script that sends each step's message with an sd_notify sender once the file STEP
/// exists; run as `sh -c 'sh SCRIPT'`, so the sender is a great-grandchild of the command.
fn stepper(dir: &Path) -> String {
    let d = dir.display();
    let n = format!("python3 {}", sd_notify_sender(dir));
    let script = format!(
        "step() {{ while [ ! -e {d}/$1 ]; do sleep 0.01; done; }}\n\
         {n} READY=1 STATUS=up\n\
         step s2; {n} RELOADING=1 STATUS=reloading\n\
         step s3; {n} READY=1 STATUS=reloaded\n\
         step s4; {n} STATUS=after-intruder\n\
         step s5; {n} STOPPING=1 STATUS=bye\n\
         step s6\n"
    );
    let path = dir.join("notify.sh");
    std::fs::write(&path, script).unwrap();
    path.display().to_string()
}

#[test]
fn notify_from_a_grandchild_script_drives_readiness_and_strangers_are_ignored() {
    require_tool("python3", "--version");
    let mut pod = Pod::new();
    let sock = pod.path("notify.sock");
    let script = stepper(pod.tmp.path());
    let tmp = pod.tmp.path().to_owned();
    let step = |s: &str| std::fs::write(tmp.join(s), "").unwrap();
    let long = Duration::from_secs(5);
    let run = pod.spawn(&[
        "run",
        "--name",
        "api",
        "--ready-when",
        "notify",
        "--notify-socket",
        sock.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        &format!("sh {script}"),
    ]);
    assert!(
        eventually(long, || has(&pod, "api", "ready", "up")),
        "READY=1 STATUS=up: {:?}",
        record(&pod, "api")
    );
    step("s2");
    assert!(
        eventually(long, || has(&pod, "api", "unready", "reloading")),
        "RELOADING=1: {:?}",
        record(&pod, "api")
    );
    step("s3");
    assert!(
        eventually(long, || has(&pod, "api", "ready", "reloaded")),
        "READY=1 after reload: {:?}",
        record(&pod, "api")
    );
    // An unrelated process (this test) says STOPPING=1: ignored. The child's next message,
    // sent after it, shows the intruder's was handled (in order) without effect.
    UnixDatagram::unbound()
        .unwrap()
        .send_to(b"STOPPING=1\nSTATUS=intruder", &sock)
        .unwrap();
    step("s4");
    assert!(
        eventually(long, || has(&pod, "api", "ready", "after-intruder")),
        "a stranger's datagram counted: {:?}",
        record(&pod, "api")
    );
    step("s5");
    assert!(
        eventually(long, || has(&pod, "api", "unready", "bye")),
        "STOPPING=1: {:?}",
        record(&pod, "api")
    );
    step("s6");
    assert_eq!(wait_exit(&mut pod.take(run), long), Some(0));
}

#[test]
fn notify_ready_from_the_child_itself_on_the_default_abstract_socket() {
    let mut pod = Pod::new();
    // python3 sends from the command's own process, to the abstract address in NOTIFY_SOCKET.
    let py = "import os,socket,time\n\
              a=os.environ['NOTIFY_SOCKET']\n\
              a='\\0'+a[1:] if a.startswith('@') else a\n\
              s=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM)\n\
              s.sendto(b'READY=1\\nSTATUS=serving',a)\n\
              time.sleep(30)\n";
    let run = pod.spawn(&[
        "run",
        "--name",
        "py",
        "--ready-when",
        "notify",
        "--",
        "python3",
        "-c",
        py,
    ]);
    assert!(
        eventually(Duration::from_secs(10), || has(
            &pod, "py", "ready", "serving"
        )),
        "{:?}",
        record(&pod, "py")
    );
    kill9(run);
}

fn tombstone(pod: &Pod, name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(pod.dir.join(format!("exits/{name}.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn watchdog_pid_is_the_commands_own_pid_and_not_its_childrens() {
    let pod = Pod::new();
    let seen = pod.path("seen");
    let s = seen.display();
    // The command, then a process it starts, each print WATCHDOG_PID and their own pid.
    let script = format!(
        "echo \"$WATCHDOG_PID $$\" >{s}; sh -c 'echo \"$WATCHDOG_PID $$\"' >>{s}; echo \"$WATCHDOG_USEC\" >>{s}"
    );
    let args = [
        "run",
        "--name",
        "w",
        "--ready-when",
        "notify",
        "--watchdog",
        "10s",
        "--",
        "sh",
        "-c",
        &script,
    ];
    let out = pod.run_within(&args, Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = std::fs::read_to_string(&seen).unwrap();
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split(' ').collect()).collect();
    assert_eq!(
        lines[0][0], lines[0][1],
        "WATCHDOG_PID is not the command's pid: {text:?}"
    );
    assert_eq!(lines[1][0], lines[0][1], "{text:?}");
    assert_ne!(
        lines[1][0], lines[1][1],
        "the grandchild took the watchdog: {text:?}"
    );
    assert_eq!(lines[2], ["10000000"], "{text:?}");
    // The log names the command, not the re-exec it went through.
    assert!(stderr(&out).contains("started sh -c"), "{}", stderr(&out));

    // A command that cannot be run: 127, as without --watchdog.
    let out = pod.run_within(
        &[
            "run",
            "--ready-when",
            "notify",
            "--name",
            "w",
            "--watchdog",
            "1s",
            "--",
            "/does/not/exist",
        ],
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot run /does/not/exist"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn exit_status_and_errno_sent_just_before_exiting_are_the_tombstones_reason() {
    require_tool("python3", "--version");
    let pod = Pod::new();
    let log = pod.path("termination-log");
    // Sent by the command itself, which exits at once (os._exit: no interpreter teardown):
    // no barrier to wait for, so run must still read what is queued on its socket after the
    // exit (without that, about one run in two lost it).
    let py = "import os,socket\n\
              a=os.environ['NOTIFY_SOCKET']\n\
              a='\\0'+a[1:] if a.startswith('@') else a\n\
              s=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM)\n\
              s.sendto(b'EXIT_STATUS=db unreachable\\nERRNO=111',a)\n\
              os._exit(3)\n";
    let out = pod.run_within(
        &[
            "run",
            "--name",
            "job",
            "--ready-when",
            "notify",
            "--termination-log",
            log.to_str().unwrap(),
            "--",
            "python3",
            "-c",
            py,
        ],
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let want = "exited with code 3 (EXIT_STATUS=db unreachable, ERRNO=111: Connection refused)";
    assert_eq!(tombstone(&pod, "job")["reason"], want);
    assert_eq!(std::fs::read_to_string(&log).unwrap(), want);
}

#[test]
fn extend_timeout_usec_after_the_stop_signal_postpones_sigkill() {
    require_tool("python3", "--version");
    let mut pod = Pod::new();
    let sender = sd_notify_sender(pod.tmp.path());
    // The stop signal comes 0.5 s after SIGTERM, SIGKILL at 2 s; the command asks for 6 s
    // more and needs 2.5 s.
    let script = format!(
        "trap 'python3 {sender} EXTEND_TIMEOUT_USEC=6000000; sleep 2.5; exit 0' TERM; while :; do sleep 0.05; done"
    );
    let (run, _) = start_run(
        &mut pod,
        "app",
        &[
            "--ready-when",
            "notify",
            "--grace",
            "2s",
            "--stop-timeout",
            "1500ms",
        ],
        &script,
    );
    let mut run = pod.take(run);
    signal(run.id(), "TERM");
    assert_eq!(
        wait_exit(&mut run, Duration::from_secs(10)),
        Some(0),
        "SIGKILLed despite EXTEND_TIMEOUT_USEC"
    );
}

#[test]
fn extend_timeout_usec_before_the_stop_signal_postpones_sigkill() {
    require_tool("python3", "--version");
    let mut pod = Pod::new();
    let sender = sd_notify_sender(pod.tmp.path());
    let (pre, ext) = (pod.path("pre"), pod.path("extended"));
    let (pre, ext) = (pre.display(), ext.display());
    // The pre-stop step lets the command know the stop has begun, and ends once the command
    // has asked for more time: the request comes before the stop signal. SIGKILL is due 3 s
    // after SIGTERM; the command needs 3 s after its stop signal.
    let pre_stop = format!("touch {pre}; until [ -e {ext} ]; do sleep 0.01; done");
    let script = format!(
        "trap 'sleep 3; exit 0' TERM; until [ -e {pre} ]; do sleep 0.01; done; \
         python3 {sender} EXTEND_TIMEOUT_USEC=8000000; touch {ext}; while :; do sleep 0.05; done"
    );
    let (run, _) = start_run(
        &mut pod,
        "app",
        &[
            "--ready-when",
            "notify",
            "--grace",
            "3s",
            "--stop-timeout",
            "1s",
            "--pre-stop",
            &pre_stop,
        ],
        &script,
    );
    let mut run = pod.take(run);
    let mut lines = StderrLines::of(&mut run);
    signal(run.id(), "TERM");
    lines.until(Duration::from_secs(5), "postponing SIGKILL", |l| {
        l.contains("EXTEND_TIMEOUT_USEC")
    });
    assert_eq!(
        wait_exit(&mut run, Duration::from_secs(12)),
        Some(0),
        "SIGKILLed despite EXTEND_TIMEOUT_USEC"
    );
}

/// The inodes (`pipe:[N]`) a process holds open, by descriptor number.
fn open_pipes(pid: u32) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let target = std::fs::read_link(entry.path()).unwrap_or_default();
        let target = target.to_string_lossy().into_owned();
        if target.starts_with("pipe:") {
            out.push((entry.file_name().to_string_lossy().parse().unwrap(), target));
        }
    }
    out
}

/// Every child of `pid`.
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let list = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        out.extend(
            list.split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok()),
        );
    }
    out
}

#[test]
fn ready_fd_a_newline_on_fd_n_publishes_ready_and_only_the_command_holds_it() {
    let mut pod = Pod::new();
    let go = pod.path("go");
    let script = format!(
        "until [ -e {} ]; do sleep 0.01; done; echo >&5; exec sleep 30",
        go.display()
    );
    let (run, cmd) = start_run(&mut pod, "db", &["--ready-when", "fd:5"], &script);
    // Before the newline: not ready.
    let out = pod.run(&["wait", "db", "--timeout", "300ms"]);
    assert_eq!(
        out.status.code(),
        Some(124),
        "ready before the newline: {}",
        stdout(&out)
    );
    // The pipe is fd 5 in the command and in no other descriptor of it; run holds only its
    // read end, and no other child of run (the guard) holds it at all.
    let pipes = open_pipes(cmd);
    let ours: Vec<&(u32, String)> = pipes.iter().filter(|(fd, _)| *fd == 5).collect();
    assert_eq!(ours.len(), 1, "no pipe at fd 5: {pipes:?}");
    let inode = &ours[0].1;
    assert_eq!(
        pipes.iter().filter(|(_, i)| i == inode).count(),
        1,
        "{pipes:?}"
    );
    assert_eq!(
        open_pipes(run).iter().filter(|(_, i)| i == inode).count(),
        1
    );
    let others: Vec<u32> = children(run).into_iter().filter(|p| *p != cmd).collect();
    assert!(!others.is_empty(), "no guard found among run's children");
    for other in others {
        assert!(
            !open_pipes(other).iter().any(|(_, i)| i == inode),
            "{other} (not the command) holds the readiness pipe"
        );
    }
    std::fs::write(&go, "").unwrap();
    let out = pod.run(&["wait", "db", "--timeout", "5s"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(pod.dir.join("ready/db.json")).unwrap())
            .unwrap();
    assert!(
        record["reason"].as_str().unwrap().contains("fd:5"),
        "{record}"
    );
}

#[test]
fn ready_fd_closed_without_a_newline_is_never_ready_and_says_so() {
    let mut pod = Pod::new();
    let pid = pod.spawn(&[
        "run",
        "--name",
        "db",
        "--ready-when",
        "fd:3",
        "--",
        "sh",
        "-c",
        "exec 3>&-; exec sleep 30",
    ]);
    let mut run = pod.take(pid);
    let mut lines = StderrLines::of(&mut run);
    lines.until(Duration::from_secs(5), "saying fd 3 closed", |l| {
        l.contains("closed descriptor 3 without writing a newline")
    });
    assert!(
        !pod.dir.join("ready/db.json").exists(),
        "published although never ready"
    );
    kill9(pid);
    let _ = run.wait();
}

#[test]
fn ready_fd_takes_descriptors_from_3_up_to_the_limit() {
    let pod = Pod::new();
    for (fd, says) in [
        ("fd:2", "3 or more"),
        ("fd:0", "3 or more"),
        ("fd:2000000000", "ulimit -n"),
    ] {
        let out = pod.run(&["run", "--name", "db", "--ready-when", fd, "--", "true"]);
        assert_eq!(out.status.code(), Some(2), "{fd}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{fd}: {}", stderr(&out));
    }
}
