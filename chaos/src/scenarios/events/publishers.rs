//! The publishers of the `events` scenario: each appends padded events, `(publisher, n)` in
//! their data, paced together at [`RATE`], and records the event it got back as the truth for
//! its `seq`.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::{Value, json};

use super::{Run, watchers};
use crate::agent;
use crate::harness::{Ctx, Rng};

/// How a publisher publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// `podsignal event publish` on the volume.
    Cli = 0,
    /// `podsignal --agent URL event publish`.
    AgentCli = 1,
    /// `POST /v1/events`.
    Http = 2,
}

impl Via {
    /// Its publishers' name prefix.
    fn label(self) -> &'static str {
        match self {
            Via::Cli => "cli",
            Via::AgentCli => "agentcli",
            Via::Http => "http",
        }
    }
}

/// The publishers.
pub const PUBLISHERS: [Via; 8] = [
    Via::Cli,
    Via::Cli,
    Via::Cli,
    Via::Cli,
    Via::AgentCli,
    Via::AgentCli,
    Via::Http,
    Via::Http,
];

/// Bytes of padding per second, all publishers together, at most: the whole log (four
/// segments of 1 MiB) in about two seconds. Two cores running debug builds publish about
/// half of it, which still rotates a segment every second.
const RATE: f64 = 2.0 * 1024.0 * 1024.0;

/// Publishes event 1, before any watcher starts.
pub fn first(ctx: &Ctx, run: &Run) -> Result<()> {
    let data = json!({"start": true});
    let event = publish(ctx, run, Via::Cli, "start", &data)?;
    record(run, &event, "start", &data);
    anyhow::ensure!(
        event.starts_with("{\"seq\":1,"),
        "the first event: {event:.200}"
    );
    Ok(())
}

/// One publisher: padded events until told to stop.
pub fn publisher(ctx: &Ctx, run: &Run, i: usize, began: Instant, rng: &mut Rng) {
    let via = PUBLISHERS[i];
    let name = format!("{}{i}", via.label());
    let kind = format!("chaos-{name}");
    let mut n = 0u64;
    while !run.stop.load(Ordering::SeqCst) {
        n += 1;
        let pad = padding(rng);
        // Paced together: whoever is free publishes the next bytes when they are due.
        let size = pad.len() as u64;
        let reserved = run.reserved.fetch_add(size, Ordering::SeqCst) + size;
        let due = began + Duration::from_secs_f64(reserved as f64 / RATE);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let data = json!({"p": name, "n": n, "pad": pad});
        match publish(ctx, run, via, &kind, &data) {
            Ok(event) => {
                record(run, &event, &kind, &data);
                run.published[via as usize].fetch_add(1, Ordering::Relaxed);
                run.bytes.fetch_add(event.len() as u64, Ordering::Relaxed);
            }
            Err(e) => failure(run, format!("{name}: publish {n}: {e:#}")),
        }
    }
}

/// 512 B to 11 KiB of padding (at most about 14 KiB as JSON: under the 16 KiB limit), with
/// characters JSON must escape and some that are not ASCII.
fn padding(rng: &mut Rng) -> String {
    const ALPHABET: &[&str] = &["a", "b", "z", "0", " ", "\"", "\\", "\n", "é", "☃", "/"];
    let len = 512 + rng.below(11 * 1024 - 512);
    let mut s = String::with_capacity(len as usize + 4);
    while (s.len() as u64) < len {
        let piece: &&str = rng.pick(ALPHABET);
        s.push_str(piece);
    }
    s
}

/// Publishes one event as `via` does; the event it answers with, as written.
fn publish(ctx: &Ctx, run: &Run, via: Via, kind: &str, data: &Value) -> Result<String> {
    let text = match via {
        Via::Cli | Via::AgentCli => {
            let mut cmd = ctx.podsignal(&run.dir);
            if via == Via::AgentCli {
                cmd.args(["--agent", &run.url]);
            }
            let out = cmd
                .args(["event", "publish", kind, "--data", &data.to_string()])
                .output()?;
            anyhow::ensure!(
                out.status.success(),
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
        Via::Http => {
            let body = json!({"kind": kind, "data": data}).to_string();
            let (status, text) = agent::request(run.port, "POST", "/v1/events", Some(&body))?;
            anyhow::ensure!(status == 201, "{status} {text:.200}");
            text
        }
    };
    Ok(text.trim().to_owned())
}

/// Records a published event as the truth for its `seq`: it must carry what was published,
/// and its `seq` must be new.
fn record(run: &Run, raw: &str, kind: &str, data: &Value) {
    let event = serde_json::from_str::<Value>(raw).unwrap_or_default();
    if event["kind"] != kind || event["data"] != *data {
        failure(run, format!("publish answered another event: {raw:.200}"));
    }
    let fp = watchers::fingerprint(raw).filter(|(s, _)| event["seq"] == *s);
    let Some((seq, hash)) = fp else {
        return failure(run, format!("publish answered no seq: {raw:.200}"));
    };
    let mut truth = run
        .truth
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if truth.insert(seq, hash).is_some() {
        drop(truth);
        failure(run, format!("seq {seq} was given to two publishes"));
    }
}

/// A publish that went wrong (each a violation).
fn failure(run: &Run, what: String) {
    eprintln!("chaos: events: {what}");
    run.failures
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(what);
}
