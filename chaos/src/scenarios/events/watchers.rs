//! The watchers of the `events` scenario, each recording what it saw ([`Seen`]): the output of
//! `podsignal event watch` processes (read from their pipe as it comes) and a long-poll loop
//! here, the SSE clients in [`super::sse`]; and what they share with the scenario.

use std::hash::{DefaultHasher, Hash as _, Hasher as _};
use std::io::{BufRead as _, BufReader};
use std::process::ChildStdout;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::http;

/// One thing a watcher saw, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// An event: its `seq` and the hash of its JSON ([`hash`]).
    Event(u64, u64),
    /// An explicit loss report: the events `from..=to` are gone (said when the watcher got
    /// the report).
    Lost(u64, u64, Instant),
    /// Something that is not an event nor a loss (an error, a malformed line).
    Odd(String),
}

/// What the watcher threads and the scenario share.
pub struct Shared {
    /// The agent's port.
    pub port: u16,
    /// The last `seq` published, once the publishers are done (`u64::MAX` until then).
    pub final_seq: AtomicU64,
    /// Give up now (the catch-up wait ran out).
    pub abort: AtomicBool,
    /// Per watcher: the position it reached (the last `seq` seen or reported lost).
    pub pos: Vec<AtomicU64>,
    /// The HTTP watchers that can be held should stop reading (between two requests).
    pub hold: AtomicBool,
    /// Per watcher: it is holding (it reads nothing until `hold` is cleared).
    pub holding: Vec<AtomicBool>,
}

impl Shared {
    /// For `watchers` watchers of the agent on `port`.
    pub fn new(port: u16, watchers: usize) -> Shared {
        Shared {
            port,
            final_seq: AtomicU64::new(u64::MAX),
            abort: AtomicBool::new(false),
            pos: (0..watchers).map(|_| AtomicU64::new(0)).collect(),
            hold: AtomicBool::new(false),
            holding: (0..watchers).map(|_| AtomicBool::new(false)).collect(),
        }
    }

    /// While `hold` is set (and the run goes on), watcher `i` waits here, saying so.
    pub fn hold_here(&self, i: usize) {
        if !self.hold.load(Ordering::SeqCst) {
            return;
        }
        self.holding[i].store(true, Ordering::SeqCst);
        while self.hold.load(Ordering::SeqCst) && !self.abort.load(Ordering::SeqCst) {
            std::thread::sleep(ms(10));
        }
        self.holding[i].store(false, Ordering::SeqCst);
    }

    /// The positions every watcher reached.
    pub fn positions(&self) -> Vec<u64> {
        self.pos.iter().map(|p| p.load(Ordering::SeqCst)).collect()
    }

    /// Whether a watcher at `pos` may stop: it saw everything, or the run gave up.
    pub fn done(&self, pos: u64) -> bool {
        pos >= self.final_seq.load(Ordering::SeqCst) || self.abort.load(Ordering::SeqCst)
    }

    /// Whether publishing goes on (the slow reader is slow only then).
    pub fn publishing(&self) -> bool {
        self.final_seq.load(Ordering::SeqCst) == u64::MAX
    }
}

/// What a watcher saw, and how much work it took.
#[derive(Debug, Default)]
pub struct Log {
    /// Everything it saw, in order.
    pub seen: Vec<Seen>,
    /// Connections (SSE) or requests (long-poll) made.
    pub requests: u64,
    /// Connections or requests that failed (reconnected after).
    pub errors: u64,
}

/// The hash an event is compared by: of its JSON exactly as podsignal wrote it. The CLI,
/// the HTTP answers, SSE `data:` and the segment lines all serialize an event the same way
/// (compact, fields in one order), so the same event is the same bytes everywhere.
pub fn hash(raw: &str) -> u64 {
    let mut h = DefaultHasher::new();
    raw.hash(&mut h);
    h.finish()
}

/// An event's `seq` and [`hash`], from its JSON (`{"seq":N,...}`) without parsing all of it.
pub fn fingerprint(raw: &str) -> Option<(u64, u64)> {
    let rest = raw.strip_prefix("{\"seq\":")?;
    let digits = rest.find(|c: char| !c.is_ascii_digit())?;
    let seq = rest[..digits].parse().ok()?;
    (rest[digits..].starts_with(',') && raw.ends_with('}')).then(|| (seq, hash(raw)))
}

/// An event as a watcher saw it: its fingerprint, or why it is not an event.
pub fn seen_event(raw: &str) -> Seen {
    match fingerprint(raw) {
        Some((seq, h)) => Seen::Event(seq, h),
        None => Seen::Odd(format!("not an event: {raw:.120}")),
    }
}

/// One line of `podsignal event watch` output: an event, a loss marker, or something odd.
pub fn parse_cli_line(line: &str) -> Seen {
    if !line.starts_with("{\"lost\"") {
        return seen_event(line);
    }
    let v = serde_json::from_str::<Value>(line).unwrap_or_default();
    match (v["lost"]["from"].as_u64(), v["lost"]["to"].as_u64()) {
        (Some(from), Some(to)) => Seen::Lost(from, to, Instant::now()),
        _ => Seen::Odd(format!("bad loss marker {line:.200}")),
    }
}

/// Reads a `podsignal event watch` process's output until it ends, as `watcher` `i`.
pub fn cli_reader(out: ChildStdout, shared: &Shared, i: usize) -> Log {
    let mut log = Log::default();
    let mut out = BufReader::new(out);
    let mut line = String::new();
    loop {
        line.clear();
        match out.read_line(&mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                log.seen.push(Seen::Odd(format!("reading its output: {e}")));
                break;
            }
        }
        let seen = parse_cli_line(line.trim_end_matches('\n'));
        if let Seen::Event(seq, _) | Seen::Lost(_, seq, _) = seen {
            shared.pos[i].store(seq, Ordering::SeqCst);
        }
        log.seen.push(seen);
    }
    log
}

/// A long-poll loop: `GET /v1/events?since=POS&wait=5s`, honouring `podsignal-events-lost`;
/// it stops polling while told to hold.
pub fn long_poll(shared: &Shared, i: usize) -> Log {
    let mut log = Log::default();
    let mut pos = 0u64;
    while !shared.done(pos) {
        shared.hold_here(i);
        log.requests += 1;
        let path = format!("/v1/events?since={pos}&wait=5s&limit=200");
        match poll_once(shared.port, &path) {
            Ok((lost, body)) => {
                let events = split_array(&body);
                if let Some((from, to)) = lost {
                    log.seen.push(Seen::Lost(from, to, Instant::now()));
                    pos = pos.max(to);
                }
                for raw in events {
                    let seen = seen_event(raw);
                    if let Seen::Event(seq, _) = seen {
                        pos = seq;
                    }
                    log.seen.push(seen);
                }
            }
            Err(e) => {
                eprintln!("chaos: events: long-poll: {e:#}");
                log.errors += 1;
                std::thread::sleep(ms(50));
            }
        }
        shared.pos[i].store(pos, Ordering::SeqCst);
    }
    log
}

/// One long-poll: the loss its header reports, and the JSON array of events (`[]` on 408).
type Page = (Option<(u64, u64)>, String);

/// `GET path` as a long-poll.
fn poll_once(port: u16, path: &str) -> anyhow::Result<Page> {
    let r = http::get(port, path, &[], None, Duration::from_secs(30))?;
    let status = r.status;
    let lost = match r.header(podsignal_lost_header()) {
        None => None,
        Some(h) => {
            let parsed = h
                .split_once('-')
                .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)));
            Some(parsed.ok_or_else(|| anyhow::anyhow!("bad lost header {h:?}"))?)
        }
    };
    let body = r.text()?;
    match status {
        200 => Ok((lost, body)),
        408 => Ok((lost, "[]".into())),
        s => anyhow::bail!("{s} {body:.200}"),
    }
}

/// The elements of a JSON array of objects, as written (a small scanner: strings and
/// nesting, no parsing). Anything that is not an array of objects yields what it can.
fn split_array(text: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for (i, b) in text.bytes().enumerate() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth == 2 && b == b'{' {
                    start = i;
                }
            }
            b'}' | b']' => {
                if depth == 2 && b == b'}' {
                    out.push(&text[start..=i]);
                }
                depth = depth.saturating_sub(1);
            }
            _ => {}
        }
    }
    out
}

/// The header a non-strict list reports a loss in.
fn podsignal_lost_header() -> &'static str {
    "podsignal-events-lost"
}

/// `n` milliseconds.
pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_array_keeps_each_event_as_written() {
        let a = r#"{"seq":1,"data":{"s":"}{\"]"}}"#;
        let b = r#"{"seq":2,"data":null}"#;
        assert_eq!(split_array(&format!("[{a},{b}]")), vec![a, b]);
        assert!(split_array("[]").is_empty());
    }

    #[test]
    fn fingerprint_reads_the_seq_and_hashes_the_bytes() {
        let e = r#"{"seq":42,"time_ms":1,"kind":"k","source":"s"}"#;
        assert_eq!(fingerprint(e), Some((42, hash(e))));
        assert_eq!(fingerprint(r#"{"lost":{"from":1,"to":2}}"#), None);
        assert_eq!(fingerprint(r#"{"seq":4"#), None);
        assert!(matches!(
            parse_cli_line(r#"{"lost":{"from":3,"to":9}}"#),
            Seen::Lost(3, 9, _)
        ));
    }
}
