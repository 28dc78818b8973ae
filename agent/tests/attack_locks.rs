//! Attacks on locks (issue 14, items 4, 8, 10, 11 and the locks part of 16): fencing tokens
//! that must never go backwards, a SIGTERM that must never be lost, waiters that must not
//! leak threads, idempotency keys that must not stick, and a swapped `locks/` directory that
//! must not let the agent grant a lock someone holds.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;
mod http_support;

use std::io::Write;
use std::net::TcpStream;
use std::process::Stdio;
use std::time::Duration;

use common::{Bg, KillOnDrop, Pod, eventually, read_pid, signal, stderr, wait_exit};
use http_support::{Agent, code, json, open_hold, proc_status, status_only};

/// `lock NAME` `n` times: the tokens the commands saw, in order.
fn tokens(pod: &Pod, name: &str, n: usize) -> Vec<u64> {
    let file = pod.path(&format!("{name}.tokens"));
    let _ = std::fs::remove_file(&file);
    for _ in 0..n {
        let out = pod.run(&[
            "lock",
            name,
            "--",
            "sh",
            "-c",
            &format!("echo $PODSIGNAL_FENCING_TOKEN >>{}", file.display()),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect()
}

#[test]
fn an_emptied_or_removed_fence_file_does_not_send_tokens_backwards() {
    // Item 4: tokens 1, 2, 3; `: > locks/m.fence` then the next is 4; `rm` then 5.
    let pod = Pod::new();
    assert_eq!(tokens(&pod, "m", 3), [1, 2, 3]);
    let fence = pod.dir.join("locks/m.fence");
    std::fs::write(&fence, "").unwrap();
    assert_eq!(
        tokens(&pod, "m", 1),
        [4],
        "after the fence file was emptied"
    );
    std::fs::remove_file(&fence).unwrap();
    assert_eq!(
        tokens(&pod, "m", 1),
        [5],
        "after the fence file was removed"
    );
}

#[test]
fn an_emptied_fence_and_no_holder_record_continue_from_the_lock_file_else_are_refused() {
    // Item 4: fence emptied AND holder record removed: the lock file's own copy of the last
    // token still says 3, so tokens go on at 4.
    let pod = Pod::new();
    assert_eq!(tokens(&pod, "m", 3), [1, 2, 3]);
    std::fs::write(pod.dir.join("locks/m.fence"), "").unwrap();
    std::fs::remove_file(pod.dir.join("locks/m.holder.json")).unwrap();
    assert_eq!(
        tokens(&pod, "m", 1),
        [4],
        "continued from the lock file's copy"
    );
    // With every copy gone too (the lock file emptied), the last token is unknowable.
    std::fs::write(pod.dir.join("locks/m.fence"), "").unwrap();
    std::fs::remove_file(pod.dir.join("locks/m.holder.json")).unwrap();
    std::fs::write(pod.dir.join("locks/m.lock"), "").unwrap();
    let out = pod.run(&[
        "lock",
        "m",
        "--",
        "sh",
        "-c",
        "echo $PODSIGNAL_FENCING_TOKEN",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "it ran with token {:?}: {}",
        String::from_utf8_lossy(&out.stdout).trim(),
        stderr(&out)
    );
    assert!(stderr(&out).contains("m.fence"), "{}", stderr(&out));
}

#[test]
fn sigterm_to_lock_is_never_lost_whenever_it_arrives() {
    // Item 8: rounds with SIGTERM 0..20 ms after the start (varying, in 0.1 ms steps: fault
    // injection, to hit every step between acquiring the lock and starting the command; the
    // window is narrow, so this catches the bug only now and then: see the next test for a
    // deterministic one). `exec sleep 5` rather than `sleep 5`: the same window, without an
    // orphaned sleep per round; and one lock name per round, so that nothing left by one
    // round (item 7) can delay the next.
    let mut pod = Pod::new();
    let mut leftovers = KillOnDrop::default();
    for round in 0..60u64 {
        let name = format!("m{round}");
        let started = pod.path(&format!("S{round}"));
        let script = format!("echo $$ >{}; exec sleep 5", started.display());
        let pid = pod.spawn(&["lock", &name, "--", "sh", "-c", &script]);
        let delay = Duration::from_micros((round * 3_370) % 20_000);
        std::thread::sleep(delay);
        signal(pid, "TERM");
        let mut c = pod.take(pid);
        let code = wait_exit(&mut c, Duration::from_secs(3));
        if let Some(cmd) = read_pid(&started) {
            leftovers.add(cmd);
        }
        if code.is_none() {
            let _ = c.kill();
            let _ = c.wait();
        }
        assert_eq!(
            code,
            Some(143),
            "round {round}: SIGTERM {delay:?} after the start (command started: {})",
            started.exists()
        );
    }
}

/// A pipe whose buffer is already full: a writer to it blocks until the reader drains it.
fn full_pipe() -> (std::io::PipeReader, std::io::PipeWriter) {
    use rustix::fs::{OFlags, fcntl_getfl, fcntl_setfl};
    let (r, mut w) = std::io::pipe().unwrap();
    let flags = fcntl_getfl(&w).unwrap();
    fcntl_setfl(&w, flags | OFlags::NONBLOCK).unwrap();
    let chunk = [b'.'; 4096];
    loop {
        match w.write(&chunk) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("filling the pipe: {e}"),
        }
    }
    fcntl_setfl(&w, flags).unwrap(); // the wrapper's writes block
    (r, w)
}

#[test]
fn sigterm_to_lock_is_not_lost_while_it_is_stuck_logging_after_acquiring() {
    // Item 8, made reproducible: the wrapper's stderr is a pipe that is already full (a log
    // collector that does not keep up), with PODSIGNAL_LOG=info, so the wrapper stalls on
    // its log line right after acquiring the lock, before it starts the command. SIGTERM it
    // there, then let the log drain: it must exit 143, not run the command to its end.
    // Ten rounds: whether today's wrapper is listening for SIGTERM at that point depends on
    // the order its runtime happened to poll things in (about half the time).
    let pod = Pod::new();
    let mut leftovers = KillOnDrop::default();
    for round in 0..10 {
        let name = format!("m{round}");
        let (mut log_r, log_w) = full_pipe();
        let started = pod.path(&format!("S{round}"));
        let script = format!("echo $$ >{}; exec sleep 5", started.display());
        let mut wrapper = Bg(pod
            .cmd(&["lock", &name, "--", "sh", "-c", &script])
            .env("PODSIGNAL_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_w)
            .spawn()
            .unwrap());
        let holder = pod.dir.join(format!("locks/{name}.holder.json"));
        // Today the stall comes right after acquiring. Should a wrapper stall on a log line
        // before acquiring instead, the lock never shows up: after 2 s, signal it anyway (a
        // SIGTERM while waiting must give 143 too).
        let acquired = eventually(Duration::from_secs(2), || {
            std::fs::read_to_string(&holder).is_ok_and(|h| h.contains("\"token\":1"))
        });
        signal(wrapper.id(), "TERM");
        // Drain the log: the wrapper can go on.
        std::thread::spawn(move || std::io::copy(&mut log_r, &mut std::io::sink()));
        let code = wait_exit(&mut wrapper.0, Duration::from_secs(3));
        if let Some(cmd) = read_pid(&started) {
            leftovers.add(cmd);
        }
        assert_eq!(
            code,
            Some(143),
            "round {round}: SIGTERM lost (lock acquired: {acquired}, command started: {})",
            started.exists()
        );
    }
}

#[test]
fn waiting_acquisitions_that_time_out_do_not_leak_threads() {
    // Item 10: 300 sequential holds that each wait 10 ms for a held lock (408).
    let agent = Agent::start(&[]);
    let (_holder, held) = open_hold(agent.port, "/v1/locks/x/hold");
    assert_eq!(held["type"], "held", "{held}");
    let pid = agent.child.id();
    for i in 0..300 {
        assert_eq!(
            status_only(agent.port, "POST", "/v1/locks/x/hold?wait=10ms"),
            408,
            "attempt {i}"
        );
        if i % 50 == 49 {
            let threads = proc_status(pid, "Threads").unwrap();
            assert!(
                threads < 40,
                "{threads} threads in the agent after {} timed-out waits",
                i + 1
            );
        }
    }
}

/// `POST PATH` with `Idempotency-Key: KEY`; returns status and body.
fn post_with_key(agent: &Agent, path: &str, key: &str) -> (u16, String) {
    agent.call("POST", path, &[("Idempotency-Key", key)], None)
}

/// The agent, a CLI holding lock x on its volume (killed with the returned Pod), and client 1:
/// `POST /v1/locks/x?ttl=30s&wait=30s` with `Idempotency-Key: K`, sent and now waiting.
fn abandoned_acquisition() -> (Agent, Pod, u32, TcpStream) {
    let agent = Agent::start(&[]);
    let mut pod = Pod::new();
    pod.dir = agent.dir.clone();
    let flag = pod.path("held");
    let holder = pod.spawn(&[
        "lock",
        "x",
        "--",
        "sh",
        "-c",
        &format!("touch {}; exec sleep 300", flag.display()),
    ]);
    assert!(eventually(Duration::from_secs(10), || flag.exists()));
    let mut client1 = TcpStream::connect(("127.0.0.1", agent.port)).unwrap();
    write!(
        client1,
        "POST /v1/locks/x?ttl=30s&wait=30s HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Idempotency-Key: K\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    assert!(
        http_support::eventually(Duration::from_secs(10), || agent
            .metric("podsignal_waiters")
            >= 1.0),
        "client 1's acquisition never started waiting"
    );
    (agent, pod, holder, client1)
}

#[test]
fn a_second_request_with_a_key_in_flight_is_a_conflict() {
    // Item 11: while client 1's request with K waits, another request with K is 409 conflict.
    let (agent, _pod, _holder, _client1) = abandoned_acquisition();
    let (s, body) = post_with_key(&agent, "/v1/locks/x?ttl=30s&wait=1s", "K");
    assert_eq!((s, code(&body)), (409, "conflict".to_owned()), "{body}");
}

#[test]
fn an_idempotency_key_abandoned_by_its_client_does_not_stick() {
    // Item 11: client 1 closes its socket without reading; the CLI holder is killed; then a
    // request with K gets a grant (polling up to 5 s while it says 409).
    let (agent, mut pod, holder, client1) = abandoned_acquisition();
    drop(client1);
    common::kill9(holder);
    pod.take(holder).wait().unwrap();
    let mut last = (0, String::new());
    let granted = http_support::eventually(Duration::from_secs(5), || {
        last = post_with_key(&agent, "/v1/locks/x?ttl=30s&wait=10s", "K");
        last.0 != 409
    });
    let (s, body) = last;
    assert!(granted, "key K stuck: still {s} {body}");
    assert_eq!(s, 200, "{body}");
    assert!(json(&body)["token"].as_u64().is_some(), "{body}");
}

#[test]
fn the_agent_does_not_grant_a_lock_held_in_a_swapped_locks_directory() {
    // Item 16: `mv locks locks.old; mkdir locks` under a running agent; a CLI holds m in the
    // new directory: the agent must say lock_busy, and after `rm -rf locks`, grant it.
    let agent = Agent::start(&[]);
    let (s, body) = agent.call("POST", "/v1/locks/m?ttl=5s", &[], None);
    assert_eq!(s, 200, "{body}");
    let lease = json(&body)["lease"].as_str().unwrap().to_owned();
    let (s, _) = agent.call("DELETE", &format!("/v1/locks/m?lease={lease}"), &[], None);
    assert_eq!(s, 204);
    let locks = agent.dir.join("locks");
    std::fs::rename(&locks, agent.dir.join("locks.old")).unwrap();
    std::fs::create_dir(&locks).unwrap();
    let mut pod = Pod::new();
    pod.dir = agent.dir.clone();
    let flag = pod.path("held");
    let holder = pod.spawn(&[
        "lock",
        "m",
        "--",
        "sh",
        "-c",
        &format!("touch {}; exec sleep 300", flag.display()),
    ]);
    assert!(eventually(Duration::from_secs(10), || flag.exists()));
    let (s, body) = agent.call("POST", "/v1/locks/m?ttl=5s", &[], None);
    assert_eq!(
        (s, code(&body)),
        (409, "lock_busy".to_owned()),
        "the agent granted a lock a CLI holds: {body}"
    );
    common::kill9(holder);
    pod.take(holder).wait().unwrap();
    std::fs::remove_dir_all(&locks).unwrap();
    let (s, body) = agent.call("POST", "/v1/locks/m?ttl=5s", &[], None);
    assert_eq!(s, 200, "after rm -rf locks: {body}");
}
