//! `podsignal timeline`: golden pictures of hand-made event logs (fixtures/timeline/CASE/ is
//! copied into a fresh shared directory; `UPDATE_GOLDEN=1` rewrites CASE*.svg and CASE*.txt),
//! hostile logs that must stay bounded and escaped, and the timeline of a directory written by
//! real `podsignal run` processes.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::Pod;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/timeline")
}

/// A pod whose shared directory holds fixture `case`: its events.jsonl as the one segment,
/// its exits/ as tombstones.
fn pod_with(case: &str) -> Pod {
    let pod = Pod::new();
    let src = fixtures().join(case);
    std::fs::create_dir_all(pod.dir.join("events")).unwrap();
    std::fs::copy(
        src.join("events.jsonl"),
        pod.dir.join("events/00000000000000000001.jsonl"),
    )
    .unwrap();
    if let Ok(entries) = std::fs::read_dir(src.join("exits")) {
        std::fs::create_dir_all(pod.dir.join("exits")).unwrap();
        for e in entries {
            let e = e.unwrap();
            std::fs::copy(e.path(), pod.dir.join("exits").join(e.file_name())).unwrap();
        }
    }
    pod
}

fn timeline(pod: &Pod, args: &[&str]) -> String {
    let mut all = vec!["timeline"];
    all.extend_from_slice(args);
    let out = pod.run(&all);
    assert!(
        out.status.success(),
        "{all:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// Compares `got` with the golden file `name` (rewrites it with UPDATE_GOLDEN=1).
fn golden(name: &str, got: &str) {
    let path = fixtures().join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, got).unwrap();
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}: UPDATE_GOLDEN=1 writes it", path.display()));
    assert!(
        got == want,
        "{name} differs from the golden file (UPDATE_GOLDEN=1 rewrites it after a deliberate change):\n{got}"
    );
}

/// Every line at most `width` characters.
fn assert_fits(text: &str, width: usize) {
    for l in text.lines() {
        assert!(l.chars().count() <= width, "{} > {width}: {l}", l.len());
    }
}

/// Well-formed enough: no raw markup from the log, every element closed where it opened.
fn assert_no_injection(svg: &str) {
    assert!(!svg.contains("<script"), "{svg}");
    assert!(!svg.contains("<b>"), "{svg}");
    assert!(!svg.contains("<rect/>"), "{svg}");
    assert!(!svg.contains('\u{1b}'), "escape character in {svg}");
    assert_eq!(
        svg.matches("<title>").count(),
        svg.matches("</title>").count()
    );
    assert_eq!(svg.matches("<g>").count(), svg.matches("</g>").count());
}

#[test]
fn a_pod_startup_and_shutdown_draw_as_golden_svg_text_and_html() {
    let pod = pod_with("startup");
    let svg = timeline(&pod, &["--format", "svg"]);
    golden("startup.svg", &svg);
    let text = timeline(&pod, &[]);
    assert_fits(&text, 100);
    golden("startup.txt", &text);
    let narrow = timeline(&pod, &["--width", "60"]);
    assert_fits(&narrow, 60);
    golden("startup-60.txt", &narrow);
    // The story is there: who waited on what, the restart, the stop and the exits.
    for want in [
        "waiting for exit:migrate=0, proxy",
        "app run 2",
        "stop requested",
        "stop requested by app: app is gone",
        "exited 137",
        "lock schema held by migrate, token 1",
        "leader cron held by app, token 4",
        "phase draining (was running): received SIGTERM",
    ] {
        assert!(svg.contains(want), "{want:?} missing from the SVG");
    }
    let html = timeline(&pod, &["--format", "html"]);
    assert!(html.starts_with("<!doctype html>"));
    assert!(html.contains(&svg), "the page embeds the same picture");
    assert!(
        html.contains("<td>killed by SIGKILL")
            || html.contains("killed by SIGKILL (exit 137)</td>")
    );
}

#[test]
fn since_and_until_cut_the_axis_and_keep_the_state_at_the_cut() {
    let pod = pod_with("startup");
    let text = timeline(
        &pod,
        &["--since", "+20s", "--until", "2025-11-24T16:00:31Z"],
    );
    assert!(
        text.starts_with(
            "podsignal timeline  2025-11-24 16:00:20.000Z to 2025-11-24 16:00:31.000Z (11s)"
        ),
        "{text}"
    );
    // db was ready (then flapped) before the cut: its lane starts in a state, not empty.
    let db = text
        .lines()
        .find(|l| l.starts_with("db "))
        .expect("a db lane");
    assert!(db[15..].starts_with('~'), "{db}");
    // migrate exited before the window: no lane.
    assert!(!text.lines().any(|l| l.starts_with("migrate")), "{text}");
    let last = timeline(&pod, &["--since", "1s", "--format", "svg"]);
    assert!(last.contains("2025-11-24 16:00:35.000Z to 2025-11-24 16:00:36.000Z"));
}

#[test]
fn generations_select_the_events_between_their_markers() {
    let pod = pod_with("generations");
    let all = timeline(&pod, &["--format", "svg"]);
    golden("generations.svg", &all);
    let second = timeline(&pod, &["--generation", "2"]);
    golden("generations-2.txt", &second);
    assert!(second.contains("generation 2"), "{second}");
    assert!(
        !second.contains("exit 2"),
        "generation 1's exit is not in 2: {second}"
    );
    let first = timeline(&pod, &["--generation", "1"]);
    assert!(first.contains("exit 2"), "{first}");
    assert!(!first.contains("generation 2"), "{first}");
    let out = pod.run(&["timeline", "--generation", "9"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("generation 9 is not in the event log") && err.contains("generations 1 to 3"),
        "{err}"
    );
    let out = pod.run(&["timeline", "--generation", "0"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn hostile_logs_are_escaped_bounded_and_say_what_they_left_out() {
    let pod = pod_with("hostile");
    let svg = timeline(&pod, &["--format", "svg"]);
    assert_no_injection(&svg);
    golden("hostile.svg", &svg);
    let text = timeline(&pod, &[]);
    assert_fits(&text, 100);
    assert!(!text.contains('\u{1b}') && !text.contains("\nsecond line"));
    golden("hostile.txt", &text);
    // The three quiet days are one axis break, not 3 days to scale.
    assert!(svg.contains("nothing happened for 2d23h"), "{svg}");
    // web's exit is known from its tombstone alone.
    assert!(svg.contains("from the tombstone only"), "{svg}");
    for note in [
        "events 1 to 40 were rotated away",
        "jump",
        "without the data their kind needs",
        "application event",
    ] {
        assert!(svg.contains(note), "note {note:?} missing");
    }
    let html = timeline(&pod, &["--format", "html"]);
    assert_no_injection(&html);
}

#[test]
fn thousands_of_events_make_a_bounded_picture() {
    let pod = Pod::new();
    std::fs::create_dir_all(pod.dir.join("events")).unwrap();
    let mut log = String::new();
    let mut seq = 0;
    let mut push = |log: &mut String, t: u64, kind: &str, data: serde_json::Value| {
        seq += 1;
        log.push_str(
            &serde_json::json!({"seq": seq, "time_ms": 1_764_000_000_000u64 + t, "kind": kind,
                "source": "s", "data": data})
            .to_string(),
        );
        log.push('\n');
    };
    // 100 containers; one readiness that flaps 5,000 times; 300 phase changes.
    for i in 0..100u64 {
        let inc = format!("{i:016x}");
        push(
            &mut log,
            i,
            "start",
            serde_json::json!({"name": format!("c{i}"), "incarnation": inc}),
        );
    }
    for i in 0..5000u64 {
        let kind = if i % 2 == 0 { "unready" } else { "ready" };
        push(
            &mut log,
            1000 + i * 10,
            kind,
            serde_json::json!({"name": "c0", "reason": "flap", "incarnation": format!("{:016x}", 0)}),
        );
    }
    // A crash loop: 3,000 more runs of c1.
    for i in 0..3000u64 {
        let inc = serde_json::json!(format!("{:016x}", 1_000_000 + i));
        push(
            &mut log,
            2000 + i * 5,
            "start",
            serde_json::json!({"name": "c1", "incarnation": inc}),
        );
        push(
            &mut log,
            2002 + i * 5,
            "exit",
            serde_json::json!({"name": "c1", "exit_code": 1, "incarnation": inc}),
        );
    }
    for i in 0..300u64 {
        push(
            &mut log,
            1000 + i * 100,
            "phase",
            serde_json::json!({"phase": "running", "reason": i}),
        );
    }
    // In segments of 4,000 events, named by their first seq, as publishers rotate them (a
    // reader reads at most about 1 MiB of one segment).
    for (i, chunk) in log.lines().collect::<Vec<_>>().chunks(4000).enumerate() {
        let name = format!("events/{:020}.jsonl", i * 4000 + 1);
        std::fs::write(pod.dir.join(name), chunk.join("\n") + "\n").unwrap();
    }
    let svg = timeline(&pod, &["--format", "svg"]);
    assert!(svg.len() < 300_000, "{} bytes", svg.len());
    assert!(
        svg.contains("68 more container(s) left out (at most 32 lanes)"),
        "{}",
        &svg[svg.len() - 2000..]
    );
    assert!(svg.contains("c0: "), "c0's lane says what it left out");
    assert!(
        svg.contains("c1: "),
        "the crash loop's lane says what it left out"
    );
    assert!(
        svg.matches("c1 run ").count() <= 400,
        "a lane holds at most 400 items"
    );
    assert!(svg.contains("marker(s) left out"));
    let text = timeline(&pod, &[]);
    assert_fits(&text, 100);
    assert!(text.lines().count() < 200, "{} lines", text.lines().count());
    let html = timeline(&pod, &["--format", "html"]);
    assert!(html.len() < 800_000, "{} bytes", html.len());
}

#[test]
fn a_missing_directory_is_an_error_and_an_empty_one_an_empty_picture() {
    let pod = Pod::new();
    let out = pod.run(&["timeline"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    std::fs::create_dir_all(&pod.dir).unwrap();
    let svg = timeline(&pod, &["--format", "svg"]);
    assert!(svg.contains("no lifecycle events to draw"), "{svg}");
    let out = pod.run(&["timeline", "--since", "yesterday"]);
    assert_eq!(out.status.code(), Some(2));
}

/// Polls `f` until it is true, for at most `secs`.
fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn real_runs_draw_waiting_ready_restart_stop_and_exit() {
    let mut pod = Pod::new();
    // web waits for db; db becomes ready once its file exists; web exits by itself; db is
    // stopped with `podsignal stop`; then db runs again (a restart: a second run).
    let web = pod.spawn(&[
        "run",
        "--name",
        "web",
        "--wait-for",
        "db",
        "--",
        "sh",
        "-c",
        "sleep 0.3",
    ]);
    let marker = pod.path("db-up");
    let probe = format!("file:{}", marker.display());
    let db = pod.spawn(&[
        "run",
        "--name",
        "db",
        "--ready-when",
        &probe,
        "--",
        "sleep",
        "30",
    ]);
    assert!(eventually(20, || pod
        .run(&["timeline"])
        .stdout
        .starts_with(b"podsignal")
        && String::from_utf8_lossy(
            &pod.run(&["timeline", "--format", "svg"]).stdout
        )
        .contains("waiting for db")));
    std::fs::write(&marker, "").unwrap();
    let web_status = pod.take(web).wait().unwrap();
    assert!(web_status.success());
    assert!(
        pod.run(&["stop", "db", "--reason", "test over"])
            .status
            .success()
    );
    let db_status = pod.take(db).wait().unwrap();
    assert_eq!(db_status.code(), Some(143));
    // Long enough to be more than a column wide, so that its mark is not covered by its exit.
    let again = pod.spawn(&["run", "--name", "db", "--", "sleep", "1"]);
    assert!(pod.take(again).wait().unwrap().success());
    // A script's sticky record, and a lock held around a command.
    assert!(
        pod.run(&["ready", "migrated", "--reason", "schema v42"])
            .status
            .success()
    );
    let mut lock = pod.cmd(&["lock", "schema", "--", "true"]);
    assert!(
        lock.env("PODSIGNAL_NAME", "migrator")
            .status()
            .unwrap()
            .success()
    );

    let svg = timeline(&pod, &["--format", "svg"]);
    assert_no_injection(&svg);
    for want in [
        "web run 1",
        "waiting for db",
        "started as pid",
        "web run 1: exited 0",
        "db run 1",
        "db run 1 (incarnation",
        ": ready ",
        "stop requested by",
        "test over",
        "db run 1: exited 143",
        "db run 2",
        "migrated run 1",
        "schema v42, sticky record by",
        "lock schema held by migrator, token 1",
    ] {
        assert!(svg.contains(want), "{want:?} missing from:\n{svg}");
    }
    let text = timeline(&pod, &[]);
    let lane = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} lane in\n{text}"))
            .to_owned()
    };
    let web_lane = lane("web");
    let (w, r) = (web_lane.find('.'), web_lane.find('#'));
    assert!(
        w.is_some() && r.is_some() && w < r,
        "web waits, then is ready: {web_lane}"
    );
    let db_lane = lane("db");
    assert!(db_lane.contains('2'), "db's restart is marked: {db_lane}");
}
