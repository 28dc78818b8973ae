//! Attacks on the event log (issue 14, items 1 and 14): readers that fall behind while the log
//! rotates must be told about the gap (CLI `event watch`, SSE, `GET /v1/events`), never skip
//! it silently; and a huge sparse segment must not make the agent read it into memory.
//!
//! Events are published through a real agent over HTTP (600 CLI processes would take ~10 s
//! in a debug build); readers are the real CLI on the same volume, or raw sockets.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod http_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddrV4, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use http_support::{Agent, BIN, code, json, proc_status, request, signal};

/// ~10 KiB of data per event: 600 of them are ~6 MiB, and the log keeps 4 segments of
/// 1 MiB, so the first ~200 are rotated away.
fn big_data() -> String {
    format!("\"{}\"", "x".repeat(10_000))
}

fn publish_big(agent: &Agent, n: usize) {
    let body = format!(r#"{{"kind":"big","data":{}}}"#, big_data());
    for _ in 0..n {
        let (s, b) = agent.json("POST", "/v1/events", &body);
        assert_eq!(s, 201, "{b}");
    }
}

/// A background `podsignal event watch` on the agent's volume; killed when dropped.
struct Watcher {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Watcher {
    fn start(agent: &Agent, extra: &[&str]) -> Watcher {
        let mut child = Command::new(BIN)
            .args(["event", "watch", "--since", "0"])
            .args(extra)
            .env("PODSIGNAL_DIR", &agent.dir)
            .env_remove("PODSIGNAL_AGENT")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        // Read as fast as it prints: what makes it fall behind is SIGSTOP (`fall_behind`).
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Watcher { child, lines }
    }

    fn next_line(&self, limit: Duration) -> Option<String> {
        self.lines.recv_timeout(limit).ok()
    }

    /// Kills the watcher (if still running) and returns its stderr.
    fn stderr(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut s = String::new();
        let _ = self.child.stderr.as_mut().unwrap().read_to_string(&mut s);
        s
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn seq_of(line: &str) -> Option<u64> {
    serde_json::from_str::<serde_json::Value>(line).ok()?["seq"].as_u64()
}

/// Stops the watcher, publishes 600 big events behind its back, resumes it: it has printed
/// seq 1 only, and 2..=601 are published while it cannot read.
fn fall_behind(agent: &Agent, w: &mut Watcher) -> Vec<String> {
    publish_big(agent, 1);
    let first = w.next_line(Duration::from_secs(10));
    let Some(first) = first else {
        panic!(
            "the watcher printed nothing for seq 1; it said: {}",
            w.stderr()
        );
    };
    assert_eq!(seq_of(&first), Some(1), "{first:.100}");
    signal(w.child.id(), "STOP");
    publish_big(agent, 600);
    signal(w.child.id(), "CONT");
    vec![first]
}

#[test]
fn a_cli_watcher_that_fell_behind_a_rotation_exits_65_naming_the_lost_range() {
    // Item 1: `event watch --since 0` stopped while 600 x 10 KiB events rotate the log.
    let agent = Agent::start(&[]);
    let mut w = Watcher::start(&agent, &[]);
    let mut printed = fall_behind(&agent, &mut w);
    // Drain everything it prints now that it runs again, until it exits (or 10 s).
    let t0 = Instant::now();
    let mut status = None;
    while t0.elapsed() < Duration::from_secs(10) {
        while let Some(l) = w.next_line(Duration::from_millis(50)) {
            printed.push(l);
        }
        status = w.child.try_wait().unwrap();
        if status.is_some() {
            break;
        }
    }
    while let Some(l) = w.next_line(Duration::from_millis(200)) {
        printed.push(l);
    }
    let seqs: Vec<u64> = printed.iter().filter_map(|l| seq_of(l)).collect();
    let last = seqs.last().copied().unwrap_or(0);
    let err = w.stderr();
    let gap = seqs.windows(2).find(|p| p[1] != p[0] + 1);
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(65),
        "the watcher did not exit 65 (EVENTS_LOST) after falling behind a rotation; it \
         printed {} events up to seq {last}, with the gap {gap:?}, and said: {err:?}",
        seqs.len()
    );
    assert!(err.contains("lost"), "no `lost` on stderr: {err}");
    assert!(
        err.contains(&(last + 1).to_string()),
        "stderr does not name the lost range (from {}): {err}",
        last + 1
    );
    for pair in seqs.windows(2) {
        assert_eq!(pair[1], pair[0] + 1, "a silent gap in what it printed");
    }
    assert!(
        last < 601,
        "it printed everything: there was no gap to report"
    );
}

#[test]
fn a_cli_watcher_with_on_gap_continue_prints_the_lost_range_and_goes_on() {
    // Item 1: `--on-gap continue` prints {"lost":{"from":A,"to":B}} and continues at B+1.
    let agent = Agent::start(&[]);
    let mut w = Watcher::start(&agent, &["--on-gap", "continue"]);
    // An unknown flag ends it at once: `fall_behind` then reports its stderr.
    let mut printed = fall_behind(&agent, &mut w);
    // Read until seq 601 (the last published) is printed.
    let done = http_support::eventually(Duration::from_secs(10), || {
        while let Some(l) = w.next_line(Duration::from_millis(10)) {
            printed.push(l);
        }
        printed.last().and_then(|l| seq_of(l)) == Some(601)
    });
    let err = w.stderr();
    assert!(
        done,
        "the watcher never printed seq 601 ({} lines); stderr: {err}",
        printed.len()
    );
    let lost: Vec<(usize, serde_json::Value)> = printed
        .iter()
        .enumerate()
        .filter_map(|(i, l)| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            v.get("lost").cloned().map(|lost| (i, lost))
        })
        .collect();
    assert_eq!(lost.len(), 1, "exactly one lost line expected: {lost:?}");
    let (at, range) = &lost[0];
    let (from, to) = (
        range["from"].as_u64().unwrap(),
        range["to"].as_u64().unwrap(),
    );
    let before: Vec<u64> = printed[..*at].iter().filter_map(|l| seq_of(l)).collect();
    let after: Vec<u64> = printed[at + 1..].iter().filter_map(|l| seq_of(l)).collect();
    assert_eq!(before.first(), Some(&1));
    assert_eq!(before.last().map(|s| s + 1), Some(from), "lost.from");
    assert_eq!(after.first(), Some(&(to + 1)), "continues with lost.to + 1");
    for seqs in [&before, &after] {
        for pair in seqs.windows(2) {
            assert_eq!(pair[1], pair[0] + 1, "a silent gap");
        }
    }
    assert!(!err.trim().is_empty(), "no warning on stderr");
}

/// A raw SSE client whose socket buffer is small, so that when it stops reading, the agent
/// cannot keep sending (the kernel does not buffer megabytes for it).
struct SseClient {
    r: BufReader<TcpStream>,
    body: Vec<u8>,
}

/// One SSE message: `event:` (if any), `id:` and `data:` lines.
#[derive(Debug, Default)]
struct Message {
    event: Option<String>,
    data: Option<String>,
}

impl SseClient {
    fn open(agent: &Agent, query: &str) -> SseClient {
        use rustix::net::{AddressFamily, SocketFlags, SocketType, connect, socket_with, sockopt};
        // Close-on-exec, as std's are: the processes parallel tests spawn must not inherit it.
        let fd = socket_with(
            AddressFamily::INET,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        // Before connect: the window is then small from the handshake on.
        sockopt::set_socket_recv_buffer_size(&fd, 4096).unwrap();
        connect(
            &fd,
            &SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, agent.port),
        )
        .unwrap();
        let mut s = TcpStream::from(fd);
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        write!(
            s,
            "GET /v1/events/stream{query} HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n"
        )
        .unwrap();
        let mut r = BufReader::new(s);
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        assert!(line.contains(" 200 "), "{line}");
        loop {
            line.clear();
            r.read_line(&mut line).unwrap();
            if line.trim().is_empty() {
                break;
            }
        }
        SseClient {
            r,
            body: Vec::new(),
        }
    }

    /// Decodes one more chunk of the chunked body into `self.body`; false at the end.
    fn more(&mut self) -> bool {
        let mut size = String::new();
        if self.r.read_line(&mut size).unwrap() == 0 {
            return false;
        }
        let n = usize::from_str_radix(size.trim(), 16).unwrap();
        if n == 0 {
            return false;
        }
        let mut chunk = vec![0; n + 2];
        self.r.read_exact(&mut chunk).unwrap();
        self.body.extend_from_slice(&chunk[..n]);
        true
    }

    /// The next complete message (blank-line terminated); None when the stream ends.
    fn next(&mut self) -> Option<Message> {
        loop {
            if let Some(end) = self.body.windows(2).position(|w| w == b"\n\n") {
                let raw: Vec<u8> = self.body.drain(..end + 2).collect();
                let text = String::from_utf8_lossy(&raw).into_owned();
                let mut m = Message::default();
                for line in text.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        m.event = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        m.data = Some(v.trim().to_owned());
                    }
                }
                return Some(m);
            }
            if !self.more() {
                return None;
            }
        }
    }
}

const PUBLISHED: usize = 1200;
const PUBLISHED_SEQ: u64 = PUBLISHED as u64;

#[test]
fn a_stopped_sse_reader_is_told_about_the_gap() {
    // Item 1: an SSE client reads its first message, stops reading while 600 x 10 KiB events
    // rotate the log, then reads everything: an `events_rotated` error marks the gap.
    let agent = Agent::start(&[]);
    let mut sse = SseClient::open(&agent, "?since=0");
    // The id-only first message: the stream is established.
    assert!(sse.next().is_some(), "no first message");
    // The contract says 600; the agent may buffer a few hundred events per stream (today a
    // 256-event channel), which would hide the gap. 1200 (~12 MiB, ~400 kept) loses more
    // than any buffer that is not itself the bug.
    publish_big(&agent, PUBLISHED);
    let mut seqs_before = Vec::new();
    let mut seqs_after = Vec::new();
    let mut error = None;
    while seqs_after.last().or(seqs_before.last()) != Some(&PUBLISHED_SEQ) {
        let Some(m) = sse.next() else {
            panic!("the stream ended early after {seqs_before:?} / {seqs_after:?}")
        };
        match (m.event.as_deref(), m.data) {
            (Some("error"), Some(d)) if error.is_none() => error = Some(d),
            (Some("error"), Some(d)) => panic!("a second error: {d}"),
            (None, Some(d)) => {
                let seq = json(&d)["seq"].as_u64().unwrap();
                if error.is_none() {
                    seqs_before.push(seq);
                } else {
                    seqs_after.push(seq);
                }
            }
            _ => {}
        }
    }
    let all: Vec<u64> = seqs_before.iter().chain(&seqs_after).copied().collect();
    let gap = all.windows(2).find(|p| p[1] != p[0] + 1);
    assert!(
        error.is_some(),
        "no `event: error` in the stream; gap {gap:?} in {} events (first {:?}, last {:?})",
        all.len(),
        all.first(),
        all.last()
    );
    assert_eq!(code(error.as_deref().unwrap()), "events_rotated");
    for seqs in [&seqs_before, &seqs_after] {
        for pair in seqs.windows(2) {
            assert_eq!(pair[1], pair[0] + 1, "a silent gap: {pair:?}");
        }
    }
    assert!(
        seqs_after.first() > seqs_before.last().map(|s| s + 1).as_ref(),
        "the error marks no gap: {:?} .. {:?}",
        seqs_before.last(),
        seqs_after.first()
    );
}

#[test]
fn a_strict_list_after_rotated_events_is_410_and_a_lax_one_names_the_lost_range() {
    // Item 1: `GET /v1/events?since=N&strict=true` (with or without wait) answers 410; without
    // strict, 200 from the oldest kept and `podsignal-events-lost: A-B`.
    let agent = Agent::start(&[]);
    publish_big(&agent, 600);
    let (s, body) = agent.get("/v1/events?since=5&strict=true&limit=5");
    assert_eq!(
        (s, code(&body)),
        (410, "events_rotated".to_owned()),
        "{body}"
    );
    let (s, body) = agent.get("/v1/events?since=5&strict=true&wait=5s&limit=5");
    assert_eq!(
        (s, code(&body)),
        (410, "events_rotated".to_owned()),
        "with wait: {body:.300}"
    );
    let r = request(agent.port, "GET", "/v1/events?since=5&limit=5", None);
    assert_eq!(r.status, 200, "{:.300}", r.body);
    let oldest = json(&r.body)[0]["seq"].as_u64().unwrap();
    assert!(oldest > 6, "nothing was rotated away (oldest {oldest})");
    assert_eq!(
        r.header("podsignal-events-lost"),
        Some(format!("6-{}", oldest - 1).as_str()),
        "headers: {:?}",
        r.headers
    );
}

#[test]
fn a_one_gib_sparse_segment_is_not_read_into_memory() {
    // Item 14: `truncate -s 1G events/00000000000000000001.jsonl` under a running agent.
    let agent = Agent::start(&[]);
    let (s, _) = agent.json("POST", "/v1/events", r#"{"kind":"before"}"#);
    assert_eq!(s, 201);
    let seg = agent.dir.join("events/00000000000000000001.jsonl");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let port = agent.port;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(http_support::raw(
            port,
            "GET",
            "/v1/events?since=0",
            &[("Host", "127.0.0.1")],
            None,
        ));
    });
    let pid = agent.child.id();
    let answer = rx.recv_timeout(Duration::from_secs(30));
    let hwm_kb = proc_status(pid, "VmHWM");
    let (status, body) =
        answer.expect("GET /v1/events?since=0 did not answer (in 30 s, or the connection broke)");
    assert!(status < 500, "{status}: {body:.300}");
    let hwm_kb = hwm_kb.expect("the agent is gone (killed by the OOM killer?)");
    assert!(
        hwm_kb < 200 * 1024,
        "the agent's peak memory reached {} MB reading a sparse segment",
        hwm_kb / 1024
    );
}
