//! What an operator reads in `kubectl logs`: plain text unless stderr is a terminal (and
//! NO_COLOR is not set), JSON lines with `--log-format json`, what a wait waits for and a
//! reminder of what is still missing, what `ready --hold` holds; one-shot commands quiet.

// Helpers outside #[test] fns unwrap too: in a test, a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Read;
use std::net::TcpListener;
use std::process::Stdio;
use std::time::Duration;

use common::*;

const ESC: u8 = 0x1b;

#[test]
fn a_log_written_to_a_file_has_no_colour_codes() {
    let pod = Pod::new();
    let log = pod.path("log");
    let status = pod
        .cmd(&["run", "--name", "app", "--", "true"])
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .status()
        .unwrap();
    assert!(status.success());
    let text = std::fs::read(&log).unwrap();
    let shown = String::from_utf8_lossy(&text);
    assert!(shown.contains("started"), "run logged nothing: {shown:?}");
    assert!(!text.contains(&ESC), "colour codes in a file: {shown:?}");
}

/// `run --name app -- true` with its stderr on a pseudo-terminal; what it wrote there.
fn logged_on_a_terminal(pod: &Pod, no_color: Option<&str>) -> Vec<u8> {
    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
    use std::os::unix::ffi::OsStrExt;
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
    grantpt(&master).unwrap();
    unlockpt(&master).unwrap();
    let name = ptsname(&master, Vec::new()).unwrap();
    let terminal = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(std::ffi::OsStr::from_bytes(name.as_bytes()))
        .unwrap();
    let mut master = std::fs::File::from(master);
    // Read while it writes: a terminal's buffer is small, and once the last descriptor of
    // its side is closed, reading ends with EIO.
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = master.read(&mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        got
    });
    let mut cmd = pod.cmd(&["run", "--name", "app", "--", "true"]);
    cmd.env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(terminal);
    if let Some(v) = no_color {
        cmd.env("NO_COLOR", v);
    }
    let mut child = cmd.spawn().unwrap();
    drop(cmd); // its copy of the terminal: the reader's EIO comes once the child's is closed
    assert_eq!(wait_exit(&mut child, Duration::from_secs(10)), Some(0));
    reader.join().unwrap()
}

#[test]
fn a_terminal_gets_colour_unless_no_color_is_set() {
    let pod = Pod::new();
    let coloured = logged_on_a_terminal(&pod, None);
    let shown = String::from_utf8_lossy(&coloured).into_owned();
    assert!(shown.contains("started"), "{shown:?}");
    assert!(
        coloured.contains(&ESC),
        "no colour on a terminal: {shown:?}"
    );
    // no-color.org: an empty NO_COLOR is as good as none.
    let empty = logged_on_a_terminal(&pod, Some(""));
    assert!(
        empty.contains(&ESC),
        "NO_COLOR=\"\" must not disable colour"
    );
    let plain = logged_on_a_terminal(&pod, Some("1"));
    let shown = String::from_utf8_lossy(&plain).into_owned();
    assert!(shown.contains("started"), "{shown:?}");
    assert!(
        !plain.contains(&ESC),
        "colour despite NO_COLOR=1: {shown:?}"
    );
}

#[test]
fn json_format_writes_every_line_as_json_the_final_error_too() {
    let pod = Pod::new();
    let out = pod.run(&[
        "--log-format",
        "json",
        "run",
        "--name",
        "app",
        "--wait-for",
        "db",
        "--timeout",
        "200ms",
        "--",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(124));
    let err = stderr(&out);
    let lines: Vec<serde_json::Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?} is not JSON: {e}")))
        .collect();
    let first = &lines[0];
    assert_eq!(first["level"], "INFO", "{err}");
    assert!(
        first["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("waiting for db")),
        "{err}"
    );
    let last = lines.last().unwrap();
    assert_eq!(last["level"], "ERROR", "{err}");
    let message = last["fields"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("timed out after 200ms: db: no record"),
        "{err}"
    );
}

#[test]
fn one_shot_commands_say_nothing_when_all_is_well() {
    let pod = Pod::new();
    for args in [
        &["ready", "db"][..],
        &["unready", "db", "--reason", "migrating"],
        &["phase", "set", "running"],
        &["status"],
        &["event", "publish", "deployed"],
    ] {
        let out = pod.run(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert_eq!(stderr(&out), "", "{args:?} logged");
    }
}

#[test]
fn run_says_what_it_waits_for_then_reminds_what_is_still_missing() {
    let pod = Pod::new();
    let port = free_port();
    let tcp = format!("tcp:127.0.0.1:{port}");
    let dir = pod.dir.display().to_string();
    let mut run = Bg(pod
        .cmd(&[
            "run",
            "--name",
            "app",
            "--wait-for",
            &format!("db,{tcp}"),
            "--",
            "true",
        ])
        .env("PODSIGNAL_REMIND_AFTER", "50ms")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap());
    let mut lines = StderrLines::of(&mut run.0);
    let limit = Duration::from_secs(10);
    lines.until(limit, "saying what it waits for", |l| {
        l.contains(&format!("waiting for db, {tcp} (read from {dir})"))
    });
    lines.until(limit, "naming db and the port as missing", |l| {
        l.contains("still waiting after")
            && l.contains(&format!("db: no record in {dir};"))
            && l.contains(&format!("{tcp}: "))
            && !l.contains("read from")
    });
    assert!(pod.run(&["ready", "db"]).status.success());
    lines.until(limit, "naming only the port once db is ready", |l| {
        l.contains("still waiting after") && l.contains(&format!("{tcp}: ")) && !l.contains("db:")
    });
    let _listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    lines.until(limit, "saying it started the command", |l| {
        l.contains("started true as pid")
    });
    assert_eq!(wait_exit(&mut run.0, limit), Some(0));
}

#[test]
fn wait_reminds_what_is_still_missing_too() {
    let pod = Pod::new();
    let flag = pod.path("flag");
    let file = format!("file:{}", flag.display());
    let mut wait = Bg(pod
        .cmd(&["wait", &file, "--timeout", "60s"])
        .env("PODSIGNAL_REMIND_AFTER", "50ms")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap());
    let mut lines = StderrLines::of(&mut wait.0);
    let limit = Duration::from_secs(10);
    // No record among the conditions: the directory is not worth naming.
    lines.until(limit, "saying what it waits for", |l| {
        l.ends_with(&format!("waiting for {file}"))
    });
    lines.until(limit, "naming the missing file", |l| {
        l.contains("still waiting after") && l.ends_with(&format!("{file}: no such file"))
    });
    std::fs::write(&flag, "").unwrap();
    assert_eq!(wait_exit(&mut wait.0, limit), Some(0));
}

#[test]
fn wait_unready_reminds_which_names_are_still_ready() {
    let pod = Pod::new();
    assert!(
        pod.run(&["ready", "web", "--reason", "serving"])
            .status
            .success()
    );
    let dir = pod.dir.display().to_string();
    let mut wait = Bg(pod
        .cmd(&["wait", "--unready", "web", "--timeout", "60s"])
        .env("PODSIGNAL_REMIND_AFTER", "50ms")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap());
    let mut lines = StderrLines::of(&mut wait.0);
    let limit = Duration::from_secs(10);
    lines.until(limit, "saying what it waits for", |l| {
        l.ends_with(&format!("waiting for web to be unready (read from {dir})"))
    });
    lines.until(limit, "naming web as still ready", |l| {
        l.contains("still waiting after")
            && l.ends_with(&format!("web: still ready: serving (read from {dir})"))
    });
    assert!(pod.run(&["unready", "web"]).status.success());
    assert_eq!(wait_exit(&mut wait.0, limit), Some(0));
}

#[test]
fn phase_wait_and_stop_wait_remind_what_they_wait_for() {
    let pod = Pod::new();
    let limit = Duration::from_secs(10);
    let spawn = |args: &[&str]| {
        Bg(pod
            .cmd(args)
            .env("PODSIGNAL_REMIND_AFTER", "50ms")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap())
    };
    let mut phase = spawn(&["phase", "wait", "draining", "--timeout", "60s"]);
    let mut lines = StderrLines::of(&mut phase.0);
    lines.until(limit, "saying what it waits for", |l| {
        l.ends_with("waiting for phase draining (or later)")
    });
    lines.until(limit, "saying the phase now", |l| {
        l.contains("still waiting after") && l.ends_with("phase is starting")
    });
    assert!(pod.run(&["phase", "set", "draining"]).status.success());
    assert_eq!(wait_exit(&mut phase.0, limit), Some(0));

    let mut stop = spawn(&["stop", "app", "--wait", "--timeout", "60s"]);
    let mut lines = StderrLines::of(&mut stop.0);
    lines.until(limit, "saying what it waits for", |l| {
        l.ends_with("waiting for app to exit")
    });
    lines.until(limit, "saying app has not exited", |l| {
        l.contains("still waiting after") && l.ends_with("app has not exited")
    });
}

#[test]
fn ready_hold_says_what_it_holds_and_how_to_release_it() {
    let pod = Pod::new();
    let mut hold = Bg(pod
        .cmd(&["ready", "web", "--hold"])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap());
    let pid = hold.id();
    let mut lines = StderrLines::of(&mut hold.0);
    lines.until(Duration::from_secs(10), "saying how to release web", |l| {
        l.contains(&format!(
            "holding web ready while this process runs (pid {pid})"
        )) && l.contains(&format!("Ctrl-C or `kill {pid}`"))
    });
    signal(pid, "TERM");
    assert_eq!(wait_exit(&mut hold.0, Duration::from_secs(10)), Some(0));
    assert!(
        pod.run(&["wait", "--unready", "web", "--timeout", "1s"])
            .status
            .success(),
        "SIGTERM did not release web"
    );
}

#[test]
fn run_without_ready_when_says_it_publishes_readiness_once_started() {
    let pod = Pod::new();
    let out = pod.run(&["run", "--name", "app", "--", "true"]);
    assert!(out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("app will be published ready once the command has started (no --ready-when; --ready-when never opts out)"),
        "{err}"
    );
    let quiet = pod.run(&[
        "run",
        "--name",
        "app",
        "--ready-when",
        "never",
        "--",
        "true",
    ]);
    assert!(!stderr(&quiet).contains("published"), "{}", stderr(&quiet));
}
