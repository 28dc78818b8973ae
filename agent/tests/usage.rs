//! Usage errors: bad input found before anything is done exits 2 with one line naming the
//! flag or value, whichever subcommand and transport it reaches (README: exit codes).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;
mod http_support;

use std::process::Output;

use common::*;

/// Exit 2 and exactly one line on stderr, `podsignal: ...` containing every `needle`.
fn usage_error(what: &str, out: &Output, needles: &[&str]) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "{what}: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{what}: not one line: {err}");
    assert!(lines[0].starts_with("podsignal: "), "{what}: {err}");
    for needle in needles {
        assert!(
            lines[0].contains(needle),
            "{what}: {needle:?} missing: {err}"
        );
    }
    assert!(!err.contains("panicked"), "{what}: {err}");
}

#[test]
fn a_bad_agent_url_is_a_usage_error() {
    let pod = Pod::new();
    for (url, why) in [
        ("ftp://x", "expected http://HOST:PORT or unix:PATH"),
        ("http://127.0.0.1:99999", "PORT 1-65535"),
        ("http://127.0.0.1:0", "PORT 1-65535"),
        ("http://127.0.0.1:1/v1", "with no path"),
        ("unix:", "needs a socket path"),
    ] {
        for sub in [&["status"][..], &["ready", "x"], &["wait", "x"]] {
            let mut args = vec!["--agent", url];
            args.extend_from_slice(sub);
            usage_error(
                &format!("{args:?}"),
                &pod.run(&args),
                &["--agent", url, why],
            );
        }
    }
    assert!(!pod.dir.exists(), "a usage error created the directory");
}

#[test]
fn agent_options_that_cannot_work_are_usage_errors() {
    let pod = Pod::new();
    let token = pod.path("token");
    let token = token.to_str().unwrap();
    for (args, needles) in [
        (
            &["agent", "--listen", "bogus"][..],
            &["--listen \"bogus\"", "HOST:PORT"][..],
        ),
        (
            &["agent", "--listen", "unix:"],
            &["--listen unix: needs a path"],
        ),
        (
            &["agent", "--listen", "10.0.0.1:7781"],
            &["not a loopback address", "--allow-remote"],
        ),
        (
            &["agent", "--allow-remote", "--listen", "0.0.0.0:7781"],
            &["--allow-remote needs --token-file"],
        ),
        (
            &["--agent", "http://127.0.0.1:1", "agent"],
            &["--agent (PODSIGNAL_AGENT) makes no sense here"],
        ),
        // A missing token file, for the agent and for a client: the agent can create it.
        (
            &["--token-file", token, "agent", "--listen", "127.0.0.1:0"],
            &["token file", "does not exist", "--generate-token"],
        ),
        (
            &[
                "--token-file",
                token,
                "--agent",
                "http://127.0.0.1:1",
                "status",
            ],
            &["token file", "does not exist", "--generate-token"],
        ),
    ] {
        usage_error(
            &format!("{args:?}"),
            &pod.run_within(args, std::time::Duration::from_secs(10)),
            needles,
        );
    }
    std::fs::write(pod.path("token"), "two words\n").unwrap();
    usage_error(
        "a token file with spaces",
        &pod.run(&["--token-file", token, "agent", "--listen", "127.0.0.1:0"]),
        &["must hold one token"],
    );
}

#[test]
fn run_options_missing_what_they_need_are_usage_errors() {
    let pod = Pod::new();
    for (args, needle) in [
        (
            &["run", "--notify-socket", "/tmp/x", "--", "true"][..],
            "--notify-socket needs --ready-when notify",
        ),
        (
            &["run", "--probe-interval", "1s", "--", "true"],
            "--probe-interval needs --ready-when",
        ),
        (
            &["run", "--watchdog", "1s", "--", "true"],
            "--watchdog needs --ready-when notify",
        ),
    ] {
        usage_error(&format!("{args:?}"), &pod.run(args), &[needle]);
    }
}

#[test]
fn a_bad_probe_lists_every_probe_form() {
    let pod = Pod::new();
    let out = pod.run(&[
        "run",
        "--name",
        "a",
        "--ready-when",
        "bogus:1",
        "--",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let first = stderr(&out).lines().next().unwrap_or_default().to_owned();
    assert!(first.contains("invalid probe \"bogus:1\""), "{first}");
    for form in [
        "exec:CMD",
        "notify",
        "tcp:HOST:PORT",
        "http://",
        "file:PATH",
        "unix:PATH",
    ] {
        assert!(first.contains(form), "{form} missing: {first}");
    }
}

#[test]
fn an_oversized_event_is_a_usage_error_on_either_transport() {
    let agent = http_support::Agent::start(&[]);
    let data = format!("\"{}\"", "x".repeat(20_000));
    let args = ["event", "publish", "k", "--data", &data];
    let direct = agent.cli(&args);
    usage_error("on the volume", &direct, &["16384-byte limit"]);
    let remote = agent.remote(&args).output().unwrap();
    usage_error("through --agent", &remote, &["16384-byte limit"]);
}

/// PODSIGNAL_DIR is set in every injected container: clap must not print `--dir <PATH>` in
/// the usage line as if it were required.
#[test]
fn usage_lines_show_options_as_optional() {
    let pod = Pod::new(); // sets PODSIGNAL_DIR
    for (args, usage) in [
        (&["ready"][..], "Usage: podsignal ready [OPTIONS] <NAME>"),
        (
            &["--dir", "/x", "wait"],
            "Usage: podsignal wait [OPTIONS] <COND>...",
        ),
        (
            &["lock", "x", "--timeout", "1s"],
            "Usage: podsignal lock [OPTIONS] <NAME> -- <CMD>...",
        ),
        (
            &["event", "publish"],
            "Usage: podsignal event publish [OPTIONS] <KIND>",
        ),
    ] {
        let out = pod.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = stderr(&out);
        assert!(err.lines().any(|l| l == usage), "{args:?}: {err}");
        assert!(!err.contains("--dir <PATH>"), "{args:?}: {err}");
    }
}
