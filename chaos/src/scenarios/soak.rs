//! A soak of one agent: six client threads mix, for the whole budget, leases, lock holds,
//! sticky and held readiness, events published, listed and streamed (SSE), long-polls with
//! short waits, bursts of connections (some dropped before or amid their request) and CLI
//! commands through `--agent`. Every request gets an HTTP answer with a documented status,
//! tokens increase, and the agent's RSS and descriptors, measured quiet (nothing in flight,
//! `/metrics` showing nothing open) after the warm-up and at the end, stay flat.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use serde_json::Value;

use crate::agent::{self, Agent, Response};
use crate::harness::{Ctx, Proc, Report, Rng, alive, eventually, fd_count, proc_status};

/// Client threads.
const THREADS: u64 = 6;
/// The locks they share.
const LOCKS: [&str; 2] = ["soak-a", "soak-b"];
/// No answer in this long is a hang (the longest wait asked for is 1 s).
const TIMEOUT: Duration = Duration::from_secs(15);
/// Descriptors the agent may hold at the end beyond its count after the warm-up (event log
/// segments, lock files it keeps open); a leak per connection, hold or stream shows as 100s.
const FD_SLACK: usize = 8;
/// Resident memory may grow by half again plus 10 MiB between the warm-up and the end:
/// allocator arenas and caches are warm by then, and a few MiB of fragmentation is noise; a
/// leak of even a few hundred bytes per request (tens of thousands of them) is not.
const RSS_SLACK_KB: u64 = 10 * 1024;

/// What the client threads share.
#[derive(Default)]
struct Shared {
    /// The agent's port.
    port: u16,
    /// Held (read) by every operation; taken (write) to measure the agent quiet.
    gate: RwLock<()>,
    /// Requests per kind.
    ops: Mutex<BTreeMap<&'static str, u64>>,
    /// What failed (the first 20), and how many did.
    failures: Mutex<(Vec<String>, u64)>,
    /// The largest event seq seen.
    last_seq: AtomicU64,
    /// The largest fencing token granted per lock.
    tokens: [AtomicU64; 2],
    /// Connections opened and dropped without a whole request.
    dropped: AtomicU64,
}

/// One client thread.
struct Client<'a> {
    /// What they share.
    sh: &'a Shared,
    /// Its number.
    i: u64,
    /// Its random source.
    rng: Rng,
    /// The kind of operation under way (counted per request).
    op: &'static str,
}

/// Runs the scenario.
pub fn run(ctx: &Ctx) -> Result<Report> {
    let agent = Agent::start(ctx, &ctx.path("shared"), &[])?;
    let (pid, mut sh) = (agent.proc.pid(), Shared::default());
    sh.port = agent.port;
    let deadline = Instant::now() + ctx.budget();
    let start = std::thread::scope(|s| {
        for i in 0..THREADS {
            let (sh, rng) = (&sh, Rng::new(ctx.seed.wrapping_add(i * 7919)));
            let mut c = Client { sh, i, rng, op: "" };
            s.spawn(move || c.work(ctx, deadline));
        }
        std::thread::sleep(ctx.budget() / 10);
        let _quiet = sh.gate.write().unwrap_or_else(PoisonError::into_inner);
        settle(&sh, pid)
    });
    let (end, mut report) = (settle(&sh, pid), Report::default());
    report.check(alive(pid), || "the agent died".into());
    let ((rss0, fds0), (rss1, fds1)) = (start?, end?);
    let ops = inner(sh.ops);
    let total: u64 = ops.values().sum();
    let by_kind: Vec<String> = ops.iter().map(|(op, n)| format!("{op} {n}")).collect();
    let (failures, failed) = inner(sh.failures);
    report.count("requests", format!("{total} ({})", by_kind.join(" ")));
    report.count("errors", failed);
    report.count("dropped connections", sh.dropped.into_inner());
    report.count("rss kB start/end", format!("{rss0}/{rss1}"));
    report.count("fds start/end", format!("{fds0}/{fds1}"));
    failures.into_iter().for_each(|f| report.violation(f));
    if failed > 20 {
        report.violation(format!("{failed} failures in all (the first 20 above)"));
    }
    let msg = || format!("agent descriptors (quiet) from {fds0} to {fds1}");
    report.check(fds1 <= fds0 + FD_SLACK, msg);
    let msg = || format!("agent RSS (quiet) from {rss0} kB to {rss1} kB");
    report.check(rss1 <= rss0 * 3 / 2 + RSS_SLACK_KB, msg);
    report.check(total >= 100, || format!("only {total} requests"));
    Ok(report)
}

/// Waits until the agent is quiet (`/metrics`: only this connection, no waiter, hold or
/// stream), then samples its RSS (kB) and descriptors: the fewest over 300 ms, as a
/// connection just closed here may not be closed on its side yet (and the allocator gives
/// memory back 100 ms after a burst of closes ends).
fn settle(sh: &Shared, pid: u32) -> Result<(u64, usize)> {
    let mut seen = String::new();
    let quiet = eventually(Duration::from_secs(10), || {
        let Ok((200, m)) = agent::get(sh.port, "/metrics") else {
            return false;
        };
        let busy = ["connections", "waiters", "holds", "event_streams"].map(|n| metric(&m, n));
        seen = format!("{busy:?}");
        busy == [Some(1), Some(0), Some(0), Some(0)]
    });
    if !quiet {
        sh.fail(format!(
            "not quiet: connections, waiters, holds, streams: {seen}"
        ));
    }
    let (mut rss, mut fds) = (u64::MAX, usize::MAX);
    for _ in 0..15 {
        fds = fds.min(fd_count(pid).context("the agent's descriptors")?);
        rss = rss.min(proc_status(pid, "VmRSS").context("the agent's VmRSS")?);
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((rss, fds))
}

/// What a mutex holds, even if a thread panicked holding it.
fn inner<T>(m: Mutex<T>) -> T {
    m.into_inner().unwrap_or_else(PoisonError::into_inner)
}

/// `podsignal_NAME VALUE` from Prometheus text.
fn metric(text: &str, name: &str) -> Option<u64> {
    let prefix = format!("podsignal_{name} ");
    let mut lines = text.lines();
    lines.find_map(|l| l.strip_prefix(&prefix)?.trim().parse().ok())
}

impl Shared {
    /// Records a failure (keeping the first 20).
    fn fail(&self, f: String) {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        failures.1 += 1;
        if failures.0.len() < 20 {
            failures.0.push(f);
        }
    }
}

impl Client<'_> {
    /// Random operations until `deadline`.
    fn work(&mut self, ctx: &Ctx, deadline: Instant) {
        while Instant::now() < deadline {
            let _op = self.sh.gate.read().unwrap_or_else(PoisonError::into_inner);
            let lock = self.rng.below(LOCKS.len() as u64) as usize;
            match self.rng.below(17) {
                0..=2 => self.lease(lock),
                3..=4 => self.hold(lock),
                5..=6 => self.readiness(),
                7..=9 => self.events(),
                10..=12 => self.long_poll(),
                13 => self.sse(),
                14..=15 => self.cli(ctx, lock),
                _ => self.burst(),
            }
        }
    }

    /// Counts a request of the operation under way.
    fn count(&self) {
        let mut ops = self.sh.ops.lock().unwrap_or_else(PoisonError::into_inner);
        *ops.entry(self.op).or_default() += 1;
    }

    /// Records a failure of the operation under way.
    fn fail(&self, f: impl std::fmt::Display) {
        self.sh.fail(format!("{}: {f}", self.op));
    }

    /// Sends `METHOD PATH [JSON BODY]` (counted); the response if its status is one of `ok`,
    /// else a failure (no answer, or another status, with its body).
    fn open(&self, req: &str, ok: &[u16]) -> Option<Response> {
        self.count();
        let mut parts = req.splitn(3, ' ');
        let (method, path, body) = (parts.next(), parts.next(), parts.next());
        let (method, path) = (method.unwrap_or_default(), path.unwrap_or_default());
        let failure = match agent::send(self.sh.port, method, path, body, TIMEOUT) {
            Ok(r) if ok.contains(&r.status) => return Some(r),
            Ok(mut r) => {
                let mut b = String::new();
                let _ = r.read_to_string(&mut b);
                format!("{} {b}", r.status)
            }
            Err(e) => format!("no answer: {e:#}"),
        };
        self.fail(format_args!("{req}: {failure}"));
        None
    }

    /// [`Client::open`], then the whole body: status and body.
    fn call(&self, req: &str, ok: &[u16]) -> Option<(u16, Value)> {
        let mut r = self.open(req, ok)?;
        let mut text = String::new();
        if let Err(e) = r.read_to_string(&mut text) {
            self.fail(format_args!("{req}: the body cut short: {e}"));
            return None;
        }
        Some((r.status, serde_json::from_str(&text).unwrap_or_default()))
    }

    /// A fencing token granted on `lock`, seen while it is held: above every one before.
    fn granted(&self, lock: usize, grant: &Value) {
        let Some(token) = grant["token"].as_u64() else {
            return self.fail(format_args!("a grant without a token: {grant}"));
        };
        let before = self.sh.tokens[lock].fetch_max(token, Relaxed);
        if before >= token {
            let lock = LOCKS[lock];
            self.fail(format_args!("{lock}: token {token} after {before}"));
        }
    }

    /// A lease: acquire (waiting up to 1 s), maybe renew, release.
    fn lease(&mut self, lock: usize) {
        self.op = "lease";
        let name = LOCKS[lock];
        let req = format!("POST /v1/locks/{name}?ttl=5s&wait=1s");
        let Some((200, grant)) = self.call(&req, &[200, 408]) else {
            return;
        };
        self.granted(lock, &grant);
        let lease = grant["lease"].as_str().unwrap_or_default();
        std::thread::sleep(Duration::from_millis(self.rng.below(20)));
        if self.rng.percent(30) {
            let req = format!("POST /v1/locks/{name}/renew?lease={lease}&ttl=5s");
            self.call(&req, &[200]);
        }
        self.call(&format!("DELETE /v1/locks/{name}?lease={lease}"), &[204]);
    }

    /// A lock held while a connection stays open, dropped after a few milliseconds.
    fn hold(&mut self, lock: usize) {
        self.op = "hold";
        let req = format!("POST /v1/locks/{}/hold?wait=1s", LOCKS[lock]);
        let Some(mut r) = self.open(&req, &[200, 408]) else {
            return;
        };
        if r.status == 200 {
            self.granted(lock, &first_json(&mut r));
            std::thread::sleep(Duration::from_millis(self.rng.below(30)));
        }
    }

    /// Sticky readiness written and read, or held readiness (changed through its hold id).
    fn readiness(&mut self) {
        self.op = "ready";
        let name = format!("soak-r{}", self.rng.below(3));
        if self.rng.percent(60) {
            let ready = self.rng.percent(50);
            let body = format!(r#"{{"ready":{ready},"reason":"soak {}"}}"#, self.i);
            self.call(&format!("PUT /v1/readiness/{name} {body}"), &[200]);
            self.call(&format!("GET /v1/readiness/{name}"), &[200]);
            return;
        }
        self.op = "ready hold";
        let held = format!("soak-h{}", self.i);
        let req = format!("POST /v1/readiness/{held}/hold");
        let Some(mut r) = self.open(&req, &[200]) else {
            return;
        };
        let line = first_json(&mut r);
        let Some(id) = line["hold"].as_str() else {
            return self.fail(format_args!("first line {line}"));
        };
        if self.rng.percent(40) {
            let body = format!(r#"{{"ready":false,"reason":"draining","hold":"{id}"}}"#);
            self.call(&format!("PUT /v1/readiness/{held} {body}"), &[200]);
        }
        std::thread::sleep(Duration::from_millis(self.rng.below(30)));
    }

    /// An event published, or the latest ones listed.
    fn events(&mut self) {
        self.op = "event";
        if self.rng.percent(60) {
            let i = self.i;
            let req = format!(r#"POST /v1/events {{"kind":"soak","data":{{"n":{i}}}}}"#);
            if let Some((_, e)) = self.call(&req, &[201]) {
                let seq = e["seq"].as_u64().unwrap_or(0);
                self.sh.last_seq.fetch_max(seq, Relaxed);
            }
            return;
        }
        let since = self.sh.last_seq.load(Relaxed).saturating_sub(20);
        self.call(&format!("GET /v1/events?since={since}&limit=50"), &[200]);
    }

    /// A long-poll with a short wait (most time out).
    fn long_poll(&mut self) {
        self.op = "long-poll";
        let wait = 20 + self.rng.below(180);
        let since = self.sh.last_seq.load(Relaxed);
        let (path, ok) = match self.rng.below(4) {
            0 => (format!("readiness/soak-never?wait={wait}ms"), 408),
            1 => (format!("events?since={since}&wait={wait}ms"), 200),
            2 => (format!("exits/soak-app?wait={wait}ms"), 408),
            _ => (format!("phase?wait={wait}ms"), 408),
        };
        self.call(&format!("GET /v1/{path}"), &[ok]);
    }

    /// An SSE stream: its first message, then an event published and read from it; dropped.
    fn sse(&mut self) {
        self.op = "sse";
        let Some(mut r) = self.open("GET /v1/events/stream", &[200]) else {
            return;
        };
        let first = r.line().ok().flatten().unwrap_or_default();
        if !first.starts_with("id:") {
            return self.fail(format_args!("first line {first:?}"));
        }
        let marker = format!("sse-{}", self.rng.next_u64());
        let req = format!(r#"POST /v1/events {{"kind":"soak","data":{{"marker":"{marker}"}}}}"#);
        self.call(&req, &[201]);
        for _ in 0..100_000 {
            match r.line() {
                Ok(Some(l)) if l.contains(&marker) => return,
                Ok(Some(_)) => {}
                Ok(None) => return self.fail("the stream ended"),
                Err(e) => return self.fail(format_args!("{e:#} before our event came")),
            };
        }
    }

    /// A burst: 8 to 32 connections at once, a quarter dropped before or in their request.
    fn burst(&mut self) {
        self.op = "burst";
        let n = 8 + self.rng.below(25);
        let plans: Vec<u64> = (0..n).map(|_| self.rng.below(8)).collect();
        let this = &*self;
        std::thread::scope(|s| {
            for plan in plans {
                s.spawn(move || match plan {
                    0 | 1 => {
                        let Ok(mut c) = TcpStream::connect(("127.0.0.1", this.sh.port)) else {
                            return this.fail("cannot connect");
                        };
                        if plan == 1 {
                            let _ = c.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n");
                        }
                        this.sh.dropped.fetch_add(1, Relaxed);
                    }
                    _ => {
                        let paths = ["healthz", "metrics", "v1/status", "v1/locks", "readyz"];
                        this.call(&format!("GET /{}", paths[plan as usize % 5]), &[200]);
                    }
                });
            }
        });
    }

    /// A CLI command through `--agent`: ready, lock, publish, status, a wait that times out.
    fn cli(&mut self, ctx: &Ctx, lock: usize) {
        self.op = "cli";
        let (args, expected) = match self.rng.below(5) {
            0 => ("ready soak-cli --reason cli".to_owned(), 0),
            1 => ("wait exit:soak-app --timeout 100ms".to_owned(), 124),
            2 => (format!("lock {} --timeout 10s -- true", LOCKS[lock]), 0),
            3 => (r#"event publish soak --data {"cli":1}"#.to_owned(), 0),
            _ => ("status".to_owned(), 0),
        };
        self.count();
        let mut cmd = ctx.podsignal(&ctx.path("shared"));
        let url = format!("http://127.0.0.1:{}", self.sh.port);
        cmd.args(["--agent", &url]).args(args.split(' '));
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        let Ok(mut p) = Proc::spawn(&mut cmd, format!("podsignal {args}")) else {
            return self.fail(format_args!("{args}: cannot start"));
        };
        match p.wait_for(TIMEOUT).map(|s| s.code()) {
            Some(Some(c)) if c == expected => {}
            Some(c) => self.fail(format_args!("{args}: exit {c:?}, expected {expected}")),
            None => self.fail(format_args!("{args}: still running after {TIMEOUT:?}")),
        }
    }
}

/// The first line of a stream as JSON (`Null` if none).
fn first_json(r: &mut Response) -> Value {
    let line = r.line().ok().flatten().unwrap_or_default();
    serde_json::from_str(&line).unwrap_or_default()
}
