//! What an operator reads (issue 18): durations with units, the directory named, errors that
//! say how to fix what they report. Each test asserts the line as printed where practical.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

mod common;
mod http_support;

use std::time::{Duration, Instant};

use common::*;

/// The error line: the last of stderr (`wait` logs what it waits for at info before it).
fn error_line(o: &std::process::Output) -> String {
    let err = stderr(o);
    err.lines()
        .last()
        .map(|l| format!("{l}\n"))
        .unwrap_or_default()
}

#[test]
fn a_fractional_timeout_is_accepted() {
    let pod = Pod::new();
    assert!(pod.run(&["ready", "db"]).status.success());
    let t0 = Instant::now();
    let out = pod.run(&["wait", "db", "nope", "--any", "--timeout", "1.5s"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = pod.run(&["wait", "nope", "--timeout", "0.25s"]);
    assert_eq!(out.status.code(), Some(124), "{}", stderr(&out));
    assert!(error_line(&out).starts_with("podsignal: timed out after 250ms: "));
    assert!(t0.elapsed() < Duration::from_secs(30));
}

#[test]
fn a_bad_duration_says_what_is_wrong() {
    let pod = Pod::new();
    for (value, why) in [
        ("-1s", "a duration cannot be negative"),
        ("NaN", "not a number"),
        ("1d", "unknown unit (units: ms, s, m, h)"),
        ("87601h", "longer than ten years (87600h)"),
    ] {
        let out = pod.run(&["wait", "db", &format!("--timeout={value}")]);
        assert_eq!(out.status.code(), Some(2), "{value}");
        let err = stderr(&out);
        assert!(
            err.contains(&format!(
                "invalid duration \"{value}\": {why} (examples: 500ms, 1.5s, 30s, 2m, 1h, 1m30s)"
            )),
            "{value}: {err}"
        );
    }
}

#[test]
fn a_first_backoff_longer_than_the_longest_is_refused_not_raised() {
    let pod = Pod::new();
    // With a timeout, so that a clamped backoff fails (124) instead of waiting for ever.
    let backoff = [
        "--backoff-min",
        "2s",
        "--backoff-max",
        "1s",
        "--timeout",
        "2s",
    ];
    for cmd in [
        [&["wait"][..], &backoff, &["tcp:10.0.0.1:5432"]].concat(),
        [
            &["run"][..],
            &backoff,
            &["--wait-for", "tcp:10.0.0.1:5432", "--", "true"],
        ]
        .concat(),
    ] {
        let out = pod.run(&cmd);
        assert_eq!(out.status.code(), Some(2), "{cmd:?}: {}", stderr(&out));
        assert_eq!(
            error_line(&out),
            "podsignal: --backoff-min (2s) is longer than --backoff-max (1s): the first delay cannot exceed the longest\n",
            "{cmd:?}"
        );
    }
}

#[test]
fn an_agent_limit_of_zero_or_beyond_a_billion_is_refused() {
    let pod = Pod::new();
    for flag in [
        "--max-body",
        "--max-streams",
        "--max-waiters",
        "--max-connections",
    ] {
        for n in ["0", "2305843009213693952"] {
            // The second panicked in a semaphore (more than its MAX_PERMITS).
            let out = pod.run(&["agent", "--listen", "127.0.0.1:0", flag, n]);
            assert_eq!(out.status.code(), Some(2), "{flag} {n}: {}", stderr(&out));
            let err = stderr(&out);
            assert!(
                err.contains(flag) && err.contains(&format!("{n} is not in 1..=1000000000")),
                "{flag} {n}: {err}"
            );
        }
    }
}

#[test]
fn a_zero_timeout_is_printed_with_a_unit() {
    let pod = Pod::new();
    assert!(pod.run(&["ready", "other"]).status.success());
    let out = pod.run(&["wait", "db", "--timeout", "0s"]);
    assert_eq!(out.status.code(), Some(124));
    assert_eq!(
        error_line(&out),
        format!(
            "podsignal: timed out after 0s: db: no record in {}\n",
            pod.dir.display()
        )
    );
}

#[test]
fn the_http_api_takes_fractional_durations() {
    let agent = http_support::Agent::start(&[]);
    let (status, body) = agent.get("/v1/readiness/db?wait=0.15s");
    assert_eq!(status, 408, "{body}");
    let (status, body) = agent.get("/v1/readiness/db?wait=-1s");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("a duration cannot be negative"), "{body}");
}

// ---- a directory that does not exist ----

#[test]
fn commands_that_only_show_do_not_create_a_mistyped_dir() {
    let pod = Pod::new();
    let typo = pod.path("shraed");
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["phase", "get"],
        &["leader", "show", "sched"],
    ] {
        let out = pod.cmd(args).env("PODSIGNAL_DIR", &typo).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(
            stderr(&out),
            format!(
                "podsignal: {} does not exist: nothing was ever written there (check --dir or PODSIGNAL_DIR)\n",
                typo.display()
            ),
            "{args:?}"
        );
        assert!(!typo.exists(), "{args:?} created it");
    }
}

#[test]
fn a_wait_times_out_naming_a_dir_that_does_not_exist_without_creating_it() {
    let pod = Pod::new();
    let typo = pod.path("shraed");
    let out = pod
        .cmd(&["wait", "db", "exit:job", "--timeout", "100ms"])
        .env("PODSIGNAL_DIR", &typo)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(124));
    let err = stderr(&out);
    let said = format!(
        "{} does not exist yet; waiting for it to be created",
        typo.display()
    );
    assert_eq!(
        err.lines().filter(|l| l.ends_with(&said)).count(),
        1,
        "{err}"
    );
    let there = format!("{}, which does not exist", typo.display());
    assert_eq!(
        err.lines().last().unwrap_or_default(),
        format!(
            "podsignal: timed out after 100ms: db: no record in {there}; exit:job: no tombstone (not exited) in {there}"
        )
    );
    assert!(!typo.exists());
}

/// `wait tcp:...` (wait-for-it's job) has nothing to do with the shared directory: it neither
/// creates it nor talks about it.
#[test]
fn a_wait_for_probes_only_ignores_a_missing_dir() {
    let pod = Pod::new();
    let file = pod.path("flag");
    std::fs::write(&file, "").unwrap();
    let out = pod.run(&[
        "wait",
        &format!("file:{}", file.display()),
        "--timeout",
        "5s",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let err = stderr(&out);
    let dir = pod.dir.display().to_string();
    assert!(
        !err.contains(&dir) && !err.contains("does not exist"),
        "{err}"
    );
    assert!(!pod.dir.exists());
}

/// An init container may start waiting before anyone made the directory: it says so once
/// and waits, and the first writer's record releases it. The rescan is an hour: only an
/// inotify event (the directory's creation, seen from its parent) can release it in time.
#[test]
fn a_wait_started_before_the_dir_exists_waits_for_it() {
    let mut pod = Pod::new();
    let dir = pod.dir.clone();
    let pid = pod.spawn(&["--rescan", "1h", "wait", "db", "--timeout", "30s"]);
    let mut waiter = pod.take(pid);
    assert!(
        eventually(Duration::from_secs(10), || has_inotify(pid)),
        "the waiter never started watching"
    );
    assert!(!dir.exists(), "the waiter created the directory");
    assert!(pod.run(&["ready", "db"]).status.success());
    assert_eq!(wait_exit(&mut waiter, Duration::from_secs(20)), Some(0));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut waiter.stderr.take().unwrap(), &mut err).unwrap();
    let said = format!(
        "{} does not exist yet; waiting for it to be created",
        dir.display()
    );
    assert_eq!(err.matches(&said).count(), 1, "{err}");
}

/// True once `pid` has an inotify instance open: a podsignal waiter is then watching.
fn has_inotify(pid: u32) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
        fds.flatten().any(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|t| t.to_string_lossy().contains("inotify"))
        })
    })
}

// ---- corrupt records ----

#[test]
fn a_garbage_phase_record_is_replaced_with_force_only_and_the_error_says_so() {
    let pod = Pod::new();
    assert!(pod.run(&["phase", "set", "running"]).status.success());
    let record = pod.dir.join("phase.json");
    std::fs::write(&record, "garbage").unwrap();
    let said = format!(
        "podsignal: bad record {}: malformed record: expected value at line 1 column 1; `podsignal phase set PHASE --force` replaces it\n",
        record.display()
    );
    for args in [&["phase", "get"][..], &["phase", "set", "draining"]] {
        let out = pod.run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(stderr(&out), said, "{args:?}");
    }
    assert_eq!(std::fs::read_to_string(&record).unwrap(), "garbage");
    let out = pod.run(&["phase", "set", "draining", "--force"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&pod.run(&["phase", "get"])).trim(), "draining");
}

#[test]
fn a_garbage_readiness_record_says_how_to_replace_it_and_ready_does() {
    let pod = Pod::new();
    assert!(pod.run(&["ready", "db"]).status.success());
    let record = pod.dir.join("ready/db.json");
    std::fs::write(&record, "garbage").unwrap();
    let out = pod.run(&["wait", "db", "--timeout", "0s"]);
    assert_eq!(out.status.code(), Some(124));
    assert_eq!(
        error_line(&out),
        format!(
            "podsignal: timed out after 0s: db: bad record {}: malformed record: expected value at line 1 column 1; `podsignal ready db` (or `unready db`) replaces it\n",
            record.display()
        )
    );
    assert!(pod.run(&["ready", "db"]).status.success());
    assert!(pod.run(&["wait", "db", "--timeout", "0s"]).status.success());
}

#[test]
fn a_record_for_another_name_says_which_without_rust_debug() {
    let pod = Pod::new();
    assert!(pod.run(&["ready", "db"]).status.success());
    let record = pod.dir.join("ready/db.json");
    let text = std::fs::read_to_string(&record).unwrap();
    std::fs::write(
        &record,
        text.replace("\"name\":\"db\"", "\"name\":\"wrongname\""),
    )
    .unwrap();
    let out = pod.run(&["wait", "db", "--timeout", "0s"]);
    assert_eq!(
        error_line(&out),
        format!(
            "podsignal: timed out after 0s: db: bad record {}: malformed record: record names wrongname, but its file is for db; `podsignal ready db` (or `unready db`) replaces it\n",
            record.display()
        )
    );
}

#[test]
fn a_corrupt_fencing_counter_with_nothing_to_continue_from_says_how_to_repair_it() {
    let pod = Pod::new();
    assert!(pod.run(&["lock", "t", "--", "true"]).status.success());
    let counter = pod.dir.join("locks/t.fence");
    std::fs::write(&counter, "garbage").unwrap();
    std::fs::remove_file(pod.dir.join("locks/t.holder.json")).unwrap();
    std::fs::write(pod.dir.join("locks/t.lock"), "").unwrap();
    let out = pod.run(&["lock", "t", "--", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!(
            "podsignal: cannot grant a fencing token from {0}: fencing counter \"garbage\" is not a decimal number, and there is no holder record to continue from; to repair it, write the last token granted (or any larger one) into it: echo N > {0}\n",
            counter.display()
        )
    );
}

// ---- permissions ----

/// `podsignal ARGS` as UID/GID 4242 with no supplementary groups, or None when not root.
fn as_other_uid(pod: &Pod, args: &[&str]) -> Option<std::process::Output> {
    use std::os::unix::fs::MetadataExt;
    if std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(1)
        != 0
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs the tests as root"
        );
        return None;
    }
    let out = std::process::Command::new("setpriv")
        .args(["--reuid", "4242", "--regid", "4242", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_podsignal"))
        .args(args)
        .env("PODSIGNAL_DIR", &pod.dir)
        .output()
        .expect("setpriv");
    Some(out)
}

#[test]
fn a_permission_error_names_the_record_and_suggests_access() {
    use std::os::unix::fs::PermissionsExt;
    let pod = Pod::new();
    // tempdir() is 0700; an emptyDir is 0777.
    std::fs::set_permissions(pod.tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir(&pod.dir).unwrap();
    std::fs::set_permissions(&pod.dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    assert!(pod.run(&["ready", "db"]).status.success());
    let Some(out) = as_other_uid(&pod, &["ready", "web"]) else {
        return;
    };
    assert_eq!(out.status.code(), Some(1));
    let ready = pod.dir.join("ready");
    assert_eq!(
        stderr(&out),
        format!(
            "podsignal: cannot write {}: permission denied ({} belongs to uid 0 gid 0, mode 0755; this process is uid 4242 gid 4242); when the containers of a Pod run as different users, start every podsignal with --access group (and give the Pod a securityContext.fsGroup) or --access all (env PODSIGNAL_ACCESS)\n",
            ready.join("web.json").display(),
            ready.display()
        )
    );
}
