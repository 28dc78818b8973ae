//! The SSE watchers of the `events` scenario: one that drops its connection at random and
//! resumes with `Last-Event-ID` (or `?since=`), and a slow reader on a socket with a tiny
//! receive buffer.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::http;
use super::watchers::{Log, Seen, Shared, ms, seen_event};
use crate::harness::Rng;

/// An SSE watcher (`GET /v1/events/stream`) until it saw the last event. With `slow`, it
/// reads through a tiny receive buffer and sleeps after each event while publishing goes
/// on, and never drops its connection by choice; otherwise it drops it at random, stays
/// away while told to hold, and resumes after the last `id` it saw (by `Last-Event-ID`,
/// sometimes by `?since=`).
pub fn sse(shared: &Shared, i: usize, slow: bool, rng: &mut Rng) -> Log {
    let mut log = Log::default();
    let mut pos = 0u64;
    while !shared.done(pos) {
        if !slow {
            shared.hold_here(i);
        }
        log.requests += 1;
        let by_header = slow || rng.percent(70);
        let (path, headers) = if by_header {
            let h = vec![("Last-Event-ID", pos.to_string())];
            ("/v1/events/stream".to_owned(), h)
        } else {
            (format!("/v1/events/stream?since={pos}"), Vec::new())
        };
        let rcvbuf = slow.then_some(2048);
        let timeout = Duration::from_secs(3);
        let conn = http::get(shared.port, &path, &headers, rcvbuf, timeout);
        let Ok(mut conn) = conn.map_err(|e| eprintln!("chaos: events: sse{i}: {e:#}")) else {
            log.errors += 1;
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        if conn.status != 200 {
            log.seen
                .push(Seen::Odd(format!("stream answered {}", conn.status)));
            log.errors += 1;
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        let drop_after = (!slow).then(|| Instant::now() + rng.between(ms(50), ms(700)));
        let start = pos;
        let how = Reading {
            start,
            slow,
            drop_after,
        };
        if !read_sse(shared, i, &mut conn, &mut log, &mut pos, &how) {
            log.errors += 1;
        }
    }
    log
}

/// How to read one SSE connection.
struct Reading {
    /// Where the stream must say it starts (its first, id-only message).
    start: u64,
    /// Sleep after each event while publishing goes on.
    slow: bool,
    /// Drop the connection at this time.
    drop_after: Option<Instant>,
}

/// Reads one SSE connection until the end of the run, `drop_after`, or an error (false).
fn read_sse(
    shared: &Shared,
    i: usize,
    conn: &mut http::Response,
    log: &mut Log,
    pos: &mut u64,
    how: &Reading,
) -> bool {
    let mut first = true;
    let (mut id, mut event, mut data) = (None::<String>, None::<String>, String::new());
    loop {
        let line = match conn.line() {
            Ok(Some(l)) => l,
            Ok(None) | Err(_) => return false,
        };
        if let Some(v) = line.strip_prefix("id:") {
            id = Some(v.trim().to_owned());
        } else if let Some(v) = line.strip_prefix("event:") {
            event = Some(v.trim().to_owned());
        } else if let Some(v) = line.strip_prefix("data:") {
            data.push_str(v.strip_prefix(' ').unwrap_or(v));
        } else if line.is_empty() && (id.is_some() || event.is_some() || !data.is_empty()) {
            let message = (id.take(), event.take(), std::mem::take(&mut data));
            if first {
                check_start(&message, how.start, log);
                first = false;
            }
            on_message(message, log, pos);
            shared.pos[i].store(*pos, Ordering::SeqCst);
            if shared.done(*pos) || how.drop_after.is_some_and(|t| Instant::now() >= t) {
                return true;
            }
            if how.slow && shared.publishing() && !message_was_empty(log) {
                std::thread::sleep(ms(200));
            }
        }
    }
}

/// The first message of a stream must be id-only, with the position it starts after.
fn check_start(message: &(Option<String>, Option<String>, String), start: u64, log: &mut Log) {
    let (id, event, data) = message;
    if event.is_some() || !data.is_empty() || id.as_deref() != Some(&start.to_string()) {
        log.seen.push(Seen::Odd(format!(
            "stream resumed after {start} starts with id {id:?} event {event:?} data {data:.80}"
        )));
    }
}

/// Whether the last thing seen was not an event (the slow reader does not linger then).
fn message_was_empty(log: &Log) -> bool {
    !matches!(log.seen.last(), Some(Seen::Event(..)))
}

/// One SSE message `(id, event, data)`: an event, a loss (`event: error`,
/// `events_rotated`), an id-only message (the start), or something odd.
fn on_message(
    (id, event, data): (Option<String>, Option<String>, String),
    log: &mut Log,
    pos: &mut u64,
) {
    match event.as_deref() {
        None | Some("message") if data.is_empty() => {}
        None | Some("message") => {
            let seen = seen_event(&data);
            if let Seen::Event(seq, _) = seen {
                if id.as_deref() != Some(&seq.to_string()) {
                    log.seen
                        .push(Seen::Odd(format!("id {id:?} on event {seq}")));
                }
                *pos = seq;
            }
            log.seen.push(seen);
        }
        Some("error") => {
            let v = serde_json::from_str::<Value>(&data).unwrap_or(Value::Null);
            match (
                v["error"].as_str(),
                v["wanted"].as_u64(),
                v["available"].as_u64(),
            ) {
                (Some("events_rotated"), Some(from), Some(available)) if available > 0 => {
                    log.seen
                        .push(Seen::Lost(from, available - 1, Instant::now()));
                    *pos = (*pos).max(available - 1);
                }
                _ => log.seen.push(Seen::Odd(format!("error event {data:.200}"))),
            }
        }
        Some(other) => log
            .seen
            .push(Seen::Odd(format!("event: {other} {data:.80}"))),
    }
}
