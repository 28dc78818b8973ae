//! Attacks through files (issue 14, items 5, 14, 16 and the umask part of 17): oversized
//! records must be refused before they replace a good one; a hostile `phase.json`, reasons
//! and file names with terminal escapes, symlinked lock files and a read-only volume must be
//! reported clearly (CLI and HTTP, never a 500); a waiter must follow a swapped or deleted
//! `ready/`; the root's mode must not depend on the umask.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;
mod http_support;

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use http_support::{Agent, BIN, code};

fn mkfifo(path: &Path) {
    let ok = Command::new("mkfifo").arg(path).status().unwrap().success();
    assert!(ok, "mkfifo {}", path.display());
}

#[test]
fn an_oversized_reason_is_refused_and_the_previous_record_stays() {
    // Item 5: `ready big --reason <70000 x>` exits 2 naming the 65536 limit.
    let pod = Pod::new();
    assert!(
        pod.run(&["ready", "big", "--reason", "ok"])
            .status
            .success()
    );
    let file = pod.dir.join("ready/big.json");
    let before = std::fs::read(&file).unwrap();
    let out = pod.run(&["ready", "big", "--reason", &"x".repeat(70_000)]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("65536"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read(&file).unwrap(),
        before,
        "the good record was replaced"
    );
}

#[test]
fn an_oversized_reason_over_http_is_413_and_the_previous_record_stays() {
    // Item 5: a 65,400-byte reason, in a body under the 64 KiB --max-body.
    let agent = Agent::start(&[]);
    let (s, body) = agent.json("PUT", "/v1/readiness/x", r#"{"ready":true,"reason":"ok"}"#);
    assert!(s < 300, "{s} {body}");
    let file = agent.dir.join("ready/x.json");
    let before = std::fs::read(&file).unwrap();
    let big = format!(r#"{{"ready":true,"reason":"{}"}}"#, "x".repeat(65_400));
    assert!(big.len() < 65_536);
    let (s, body) = agent.json("PUT", "/v1/readiness/x", &big);
    assert_eq!(
        (s, code(&body)),
        (413, "payload_too_large".to_owned()),
        "{body:.300}"
    );
    assert_eq!(
        std::fs::read(&file).unwrap(),
        before,
        "the good record was replaced"
    );
}

#[test]
fn an_event_over_16_kib_is_a_usage_error() {
    // Item 5: `event publish k --data '"<20000 x>"'`.
    let pod = Pod::new();
    let data = format!("\"{}\"", "x".repeat(20_000));
    let out = pod.run(&["event", "publish", "k", "--data", &data]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

/// Human `status` with `plant` at phase.json: it must not claim the phase was never set,
/// and must name phase.json under PROBLEMS.
fn a_bad_phase_file_is_a_problem(what: &str, plant: impl FnOnce(&Path)) {
    let pod = Pod::new();
    std::fs::create_dir_all(&pod.dir).unwrap();
    plant(&pod.dir.join("phase.json"));
    let out = pod.run_within(&["status"], Duration::from_secs(10));
    let human = stdout(&out);
    assert!(
        !human.contains("never set"),
        "{what} at phase.json: status says `never set`:\n{human}"
    );
    let problems = human.split("\nPROBLEMS").nth(1).unwrap_or_default();
    assert!(
        problems.lines().any(|l| l.contains("phase.json")),
        "{what} at phase.json: no problem names it:\n{human}"
    );
}

#[test]
fn a_fifo_at_phase_json_is_a_problem_not_an_unset_phase() {
    // Item 14.
    a_bad_phase_file_is_a_problem("a FIFO", mkfifo);
}

#[test]
fn a_symlink_at_phase_json_is_a_problem_not_an_unset_phase() {
    // Item 14.
    a_bad_phase_file_is_a_problem("a symlink", |p| symlink("/etc/passwd", p).unwrap());
}

#[test]
fn an_oversized_phase_json_is_a_problem_not_an_unset_phase() {
    // Item 14: a 70 KB phase record (over the 64 KiB record limit).
    a_bad_phase_file_is_a_problem("a 70 KB file", |p| {
        let record = format!(
            "{{\"version\":1,\"phase\":\"running\",\"reason\":\"{}\",\"updated_ms\":1}}\n",
            "x".repeat(70_000)
        );
        std::fs::write(p, record).unwrap();
    });
}

#[test]
fn status_never_prints_terminal_escapes_or_forged_lines() {
    // Item 14: a reason with a newline and escapes, and a junk file named `\e[2Jjunk`.
    let pod = Pod::new();
    let reason = "ok\nLOCK forged\x1b[31m";
    let out = pod.run(&["ready", "a", "--reason", reason]);
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::write(pod.dir.join("ready/\x1b[2Jjunk"), "junk").unwrap();
    let out = pod.run_within(&["status"], Duration::from_secs(10));
    let human = stdout(&out);
    assert!(
        !out.stdout.contains(&0x1b),
        "an ESC byte in status:\n{human:?}"
    );
    assert!(
        !human.lines().any(|l| l.starts_with("LOCK forged")),
        "a forged line in status:\n{human}"
    );
    // --json is JSON: the reason is kept exactly (escaped by JSON itself).
    let out = pod.run_within(&["status", "--json"], Duration::from_secs(10));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let a = v["readiness"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "a")
        .unwrap();
    assert_eq!(a["record"]["reason"], reason, "{a}");
}

#[test]
fn a_fifo_phase_over_http_is_409_bad_file() {
    // Item 14: FIFO phase.json -> `GET /v1/phase` 409 bad_file (never 500, never a hang).
    let agent = Agent::start(&[]);
    std::fs::create_dir_all(&agent.dir).unwrap();
    mkfifo(&agent.dir.join("phase.json"));
    let (s, body) = agent.get("/v1/phase");
    assert_eq!((s, code(&body)), (409, "bad_file".to_owned()), "{body}");
}

#[test]
fn a_symlinked_lock_file_over_http_is_409_bad_file() {
    // Item 14: `ln -s /etc/passwd locks/x.lock` -> `POST /v1/locks/x?ttl=5s` 409 bad_file.
    let agent = Agent::start(&[]);
    std::fs::create_dir_all(agent.dir.join("locks")).unwrap();
    symlink("/etc/passwd", agent.dir.join("locks/x.lock")).unwrap();
    let (s, body) = agent.call("POST", "/v1/locks/x?ttl=5s", &[], None);
    assert_eq!((s, code(&body)), (409, "bad_file".to_owned()), "{body}");
}

#[test]
fn a_read_only_volume_over_http_is_503_storage() {
    // Item 14: the agent in a mount namespace where the volume is bind-mounted read-only.
    require_tool("unshare", "--version");
    let agent = Agent::start_via(
        &[],
        |dir| {
            // Fill the volume first: the read-only agent finds its subdirectories there.
            let ok = Command::new(BIN)
                .args(["ready", "seed"])
                .env("PODSIGNAL_DIR", dir)
                .status()
                .unwrap()
                .success();
            assert!(ok);
        },
        |dir, argv| {
            let mut c = Command::new("unshare");
            c.args([
                "-m",
                "sh",
                "-c",
                r#"mount --bind -o ro "$0" "$0" && exec "$@""#,
            ])
            .arg(dir)
            .args(argv);
            c
        },
    );
    // The volume really is read-only for the agent (not for us, outside its namespace).
    let (s, body) = agent.json("PUT", "/v1/readiness/x", r#"{"ready":true}"#);
    assert_eq!((s, code(&body)), (503, "storage".to_owned()), "{body}");
}

#[test]
fn a_full_volume_makes_the_agent_unready_until_space_comes_back() {
    // Found by the chaos `fs-faults` scenario: /readyz said 200 on a full volume (its probe
    // wrote no byte) while every write answered 503 storage.
    require_tool("unshare", "--version");
    let agent = Agent::start_via(
        &[],
        |_| {},
        |dir, argv| {
            // A 256 KiB tmpfs at the volume, in the agent's own mount namespace, then full.
            let mut c = Command::new("unshare");
            c.args([
                "-m",
                "sh",
                "-c",
                r#"mkdir -p "$0" && mount -t tmpfs -o size=256k tmpfs "$0" &&
                   dd if=/dev/zero of="$0/filler" bs=4k 2>/dev/null; exec "$@""#,
            ])
            .arg(dir)
            .args(argv);
            c
        },
    );
    let (s, body) = agent.get("/readyz");
    assert_eq!(s, 503, "{body}");
    assert!(body.contains("No space left"), "{body}");
    let (s, body) = agent.json("PUT", "/v1/readiness/x", r#"{"ready":true}"#);
    assert_eq!((s, code(&body)), (503, "storage".to_owned()), "{body}");
    // Space comes back (the filler removed through the agent's view of its mounts).
    let filler = format!(
        "/proc/{}/root{}/filler",
        agent.child.id(),
        agent.dir.display()
    );
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(agent.get("/readyz").0, 200);
    let (s, body) = agent.json("PUT", "/v1/readiness/x", r#"{"ready":true}"#);
    assert_eq!(s, 200, "{body}");
}

/// `wait x --rescan 1h` (only inotify can wake it in time), then `swap` on ready/, then
/// `ready x`: the waiter exits 0 within 5 s.
fn a_waiter_follows(swap: impl FnOnce(&Path)) {
    let mut pod = Pod::new();
    assert!(pod.run(&["ready", "y"]).status.success(), "create ready/");
    let w = pod.spawn(&["--rescan", "1h", "wait", "x"]);
    assert!(eventually(Duration::from_secs(10), || watching(w)));
    swap(&pod.dir);
    let out = pod.run(&["ready", "x"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut w = Bg(pod.take(w));
    assert_eq!(
        wait_exit(&mut w.0, Duration::from_secs(5)),
        Some(0),
        "the waiter did not see x ready in the new ready/"
    );
}

#[test]
fn a_waiter_follows_a_ready_directory_swapped_under_it() {
    // Item 16: `mv ready ready.old; mkdir ready`.
    a_waiter_follows(|dir| {
        std::fs::rename(dir.join("ready"), dir.join("ready.old")).unwrap();
        // The waiter, woken by the move, may re-read through a ready/ it creates first: a
        // new directory at the path either way.
        match std::fs::create_dir(dir.join("ready")) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => panic!("mkdir ready: {e}"),
            _ => {}
        }
    });
}

#[test]
fn a_waiter_follows_a_ready_directory_deleted_under_it() {
    // Item 16: `rm -rf ready` (IN_DELETE_SELF); `ready x` creates it again.
    a_waiter_follows(|dir| std::fs::remove_dir_all(dir.join("ready")).unwrap());
}

#[test]
fn access_all_makes_a_fresh_root_0777_whatever_the_umask() {
    // Item 17: under `umask 077`, `--access all ready x` creates the root with mode 0777.
    // (A writer: `status`, which only shows, creates nothing.)
    let pod = Pod::new();
    let out = run_cmd_within(
        Command::new("sh")
            .args(["-c", r#"umask 077; exec "$0" --access all ready x"#, BIN])
            .env("PODSIGNAL_DIR", &pod.dir),
        Duration::from_secs(10),
        "ready",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let mode = std::fs::metadata(&pod.dir).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o777, "the root has mode {mode:o}");
}

#[test]
fn a_neighbour_holding_the_ready_directory_lock_slows_writers_but_never_stops_them() {
    // Readiness writers serialize on a flock of ready/ (a retraction checks and writes under
    // it); a neighbour holding it for a minute must cost a writer at most its bounded wait.
    let pod = Pod::new();
    assert!(pod.run(&["ready", "x"]).status.success());
    let mut neighbour = std::process::Command::new("flock")
        .arg(pod.dir.join("ready"))
        .args(["sleep", "60"])
        .spawn()
        .unwrap();
    let held = eventually(Duration::from_secs(5), || {
        std::process::Command::new("flock")
            .args(["-n"])
            .arg(pod.dir.join("ready"))
            .arg("true")
            .status()
            .is_ok_and(|s| !s.success())
    });
    assert!(held, "the neighbour never took the lock");
    let out = pod.run_within(&["ready", "x", "--reason", "late"], Duration::from_secs(15));
    let _ = neighbour.kill();
    let _ = neighbour.wait();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is locked (flock) for more than 2s: writing without the lock"),
        "{}",
        stderr(&out)
    );
    let status = stdout(&pod.run(&["status", "--json"]));
    assert!(status.contains("\"late\""), "{status}");
}

/// A directory, a FIFO and a symlink planted as records in every area: `status`, `status
/// --json` and `/v1/status` name each path once under PROBLEMS, never twice.
#[test]
fn each_planted_file_is_one_problem_in_every_view_of_status() {
    let agent = Agent::start(&[]);
    assert!(agent.cli(&["status"]).status.success(), "create the layout");
    let mut planted = Vec::new();
    for area in ["ready", "locks", "leaders", "exits", "stop", "events"] {
        for (file, plant) in [
            (
                "dir.json",
                (|p: &Path| std::fs::create_dir(p).unwrap()) as fn(&Path),
            ),
            ("fifo.json", mkfifo),
            ("link.json", |p: &Path| symlink("/etc/passwd", p).unwrap()),
            ("dir.lock", |p: &Path| std::fs::create_dir(p).unwrap()),
            ("fifo.lock", mkfifo),
            ("link.lock", |p: &Path| symlink("/etc/passwd", p).unwrap()),
        ] {
            let path = agent.dir.join(area).join(file);
            plant(&path);
            planted.push(path.display().to_string());
        }
    }
    let human = stdout(&agent.cli(&["status"]));
    let problems_section = human.split("\nPROBLEMS\n").nth(1).unwrap_or_default();
    let json: serde_json::Value =
        serde_json::from_slice(&agent.cli(&["status", "--json"]).stdout).unwrap();
    let (s, body) = agent.get("/v1/status");
    assert_eq!(s, 200, "{body}");
    let http: serde_json::Value = serde_json::from_str(&body).unwrap();
    for (view, lines) in [
        (
            "status",
            problems_section
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>(),
        ),
        ("status --json", strings(&json["problems"])),
        ("/v1/status", strings(&http["problems"])),
    ] {
        for path in &planted {
            let n = lines
                .iter()
                .filter(|l| l.contains(&format!("{path}:")))
                .count();
            assert_eq!(
                n,
                1,
                "{view}: {path} named {n} times:\n{}",
                lines.join("\n")
            );
        }
    }
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}
