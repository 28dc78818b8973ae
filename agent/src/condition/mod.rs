//! Evaluating conditions (the grammar is `podsignal_proto::condition`): waiting until they
//! hold, for `wait` and `run --wait-for`, and checking them once, for `run --ready-when`.
//!
//! File-backed conditions (`NAME`, `exit:`, `phase:`) wait on the volume's inotify watcher;
//! `file:` watches the file's own directory. Nothing there polls. Probes cannot be woken by
//! an event: a local `tcp:` port's listeners are asked of the kernel every `--tcp-interval`
//! (5 ms; netlink `sock_diag`, else `/proc/net/tcp{,6}`; no connection, so nothing in the
//! server's logs); `http:`, `unix:` and `tcp:` probes of a loopback target are sent every
//! `--local-interval` (10 ms: such a request costs ~0.2 ms of CPU), and those of a remote target
//! back off from 10 ms to 250 ms with jitter.
//!
//! `wait` and `run --wait-for` say what they wait for, then remind what is still missing at
//! growing intervals (`remind`); `--exit-with` and `--stop-after` wait silently.

mod file;
mod http;
pub mod net;
mod proc_net;
mod remind;
mod service;
mod sock_diag;
mod stable;
mod timing;
mod unix;
mod unready;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use podsignal_client::{Coordinator, WaitMode};
use podsignal_proto::{Condition, HttpCheck, Name};

use crate::exit::{Exit, ExitCode};

pub use http::request;
pub use remind::{Reminders, while_waiting};
pub use timing::{Backoff, ProbeTiming};
pub use unready::wait_unready;

/// Refuses conditions this build cannot evaluate, before anything waits on them.
pub fn check_supported(conditions: &[Condition]) -> anyhow::Result<()> {
    for c in conditions {
        if let Condition::Http(HttpCheck { tls: true, .. }) = c {
            return Err(crate::exit::usage(format!(
                "{c}: https:// is not supported (this build has no TLS); probe the plain-HTTP port, or use tcp:HOST:PORT"
            )));
        }
    }
    Ok(())
}

/// The shared directory (or the agent) as the waits here read it, behind one vtable: the
/// waits are compiled once, not once per [`Coordinator`] (the binary has a size budget).
pub trait Records: Sync {
    /// [`hold`]: resolves once `condition` holds.
    fn hold<'a>(
        &'a self,
        condition: &'a Condition,
        timing: ProbeTiming,
        why: &'a Why,
    ) -> BoxFuture<'a, anyhow::Result<()>>;
    /// [`holds_now`].
    fn holds_now<'a>(&'a self, condition: &'a Condition) -> BoxFuture<'a, bool>;
    /// [`describe`]: why it does not hold now.
    fn why_not<'a>(&'a self, condition: &'a Condition, why: &'a Why) -> BoxFuture<'a, String>;
    /// Resolves once every name (or one) is not ready.
    fn unready<'a>(
        &'a self,
        names: &'a [Name],
        mode: WaitMode,
    ) -> BoxFuture<'a, anyhow::Result<()>>;
    /// One readiness record, evaluated.
    fn readiness<'a>(
        &'a self,
        name: &'a Name,
    ) -> BoxFuture<'a, podsignal_client::Result<podsignal_client::Readiness>>;
    /// Where records are read: the directory, or the agent.
    fn location(&self) -> String;
}

impl<C: Coordinator> Records for C {
    fn hold<'a>(
        &'a self,
        condition: &'a Condition,
        timing: ProbeTiming,
        why: &'a Why,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(hold(self, condition, timing, why))
    }

    fn holds_now<'a>(&'a self, condition: &'a Condition) -> BoxFuture<'a, bool> {
        Box::pin(holds_now(self, condition))
    }

    fn why_not<'a>(&'a self, condition: &'a Condition, why: &'a Why) -> BoxFuture<'a, String> {
        Box::pin(describe(self, condition, why))
    }

    fn unready<'a>(
        &'a self,
        names: &'a [Name],
        mode: WaitMode,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move { Ok(self.wait_unready(names, mode, None).await?) })
    }

    fn readiness<'a>(
        &'a self,
        name: &'a Name,
    ) -> BoxFuture<'a, podsignal_client::Result<podsignal_client::Readiness>> {
        Box::pin(Coordinator::readiness(self, name))
    }

    fn location(&self) -> String {
        self.describe()
    }
}

/// How a wait for conditions ends, besides their holding.
#[derive(Debug, Clone, Copy)]
pub struct WaitPlan {
    /// Every condition, or one.
    pub mode: WaitMode,
    /// Give up after this long (exit 124).
    pub timeout: Option<Duration>,
    /// They must hold for this long in a row (`--stable`).
    pub stable: Option<Duration>,
    /// How probes are timed.
    pub timing: ProbeTiming,
    /// Say what is waited for, and remind what is missing.
    pub reminders: Option<Reminders>,
}

/// [`wait_until`] without `--stable`, for `--exit-with` and `--stop-after`.
pub async fn wait_all(
    volume: &dyn Records,
    conditions: &[Condition],
    mode: WaitMode,
    timeout: Option<Duration>,
    timing: ProbeTiming,
    reminders: Option<Reminders>,
) -> anyhow::Result<()> {
    let plan = WaitPlan {
        mode,
        timeout,
        stable: None,
        timing,
        reminders,
    };
    wait_until(volume, conditions, &plan).await
}

/// Waits until every condition holds (or one, in [`WaitMode::Any`]). Each is waited for on
/// its own; once all have been seen holding, the file-backed ones (readiness, tombstones,
/// phase, files) are checked again together, and any that stopped holding meanwhile (a
/// dependency that crashed) is waited for again: the wait ends on a state in which all hold,
/// not on a sequence of edges. Probes (tcp, http, unix, protocols) count once they pass.
/// With `stable`, they must then go on holding for that long ([`stable::lapse`] watches
/// them), or the wait starts over. A timeout is an [`Exit`] with code 124 naming every unmet
/// condition and why. With `reminders`, it says what it waits for when it starts, and what
/// is still missing and why at each reminder.
pub async fn wait_until(
    volume: &dyn Records,
    conditions: &[Condition],
    plan: &WaitPlan,
) -> anyhow::Result<()> {
    check_supported(conditions)?;
    if conditions.is_empty() {
        return Ok(());
    }
    let (mode, timing) = (plan.mode, plan.timing);
    let whys: Vec<Why> = conditions.iter().map(|_| Why::default()).collect();
    let met: Vec<AtomicBool> = conditions.iter().map(|_| AtomicBool::new(false)).collect();
    let window = stable::Window::default();
    let (whys, met, window) = (&whys, &met, &window);
    // One closure makes every wait the same future type, so a lapsed one can be re-queued.
    let wait_one = move |i: usize| {
        let (c, why) = (&conditions[i], &whys[i]);
        async move { (i, volume.hold(c, timing, why).await) }
    };
    // Resolves with the conditions that hold: all of them, or the first one, with `Any`.
    let reach = move || async move {
        let mut pending: FuturesUnordered<_> = (0..conditions.len()).map(wait_one).collect();
        loop {
            while let Some((i, result)) = pending.next().await {
                result?;
                tracing::info!("condition {} holds", conditions[i]);
                met[i].store(true, Ordering::Relaxed);
                if mode == WaitMode::Any {
                    return anyhow::Ok(vec![i]);
                }
            }
            let mut lapsed = Vec::new();
            for (i, c) in conditions.iter().enumerate() {
                if !volume.holds_now(c).await {
                    lapsed.push(i);
                }
            }
            if lapsed.is_empty() {
                return Ok((0..conditions.len()).collect());
            }
            for i in lapsed {
                tracing::info!(
                    "condition {} no longer holds; waiting for it again",
                    conditions[i]
                );
                met[i].store(false, Ordering::Relaxed);
                pending.push(wait_one(i));
            }
        }
    };
    let all = async {
        loop {
            let holding = reach().await?;
            let Some(stable) = plan.stable else {
                return Ok(());
            };
            let watched: Vec<&Condition> = holding.iter().map(|&i| &conditions[i]).collect();
            window.open();
            tokio::select! {
                () = tokio::time::sleep(stable) => return Ok(()),
                lapse = stable::lapse(volume, &watched, timing) => {
                    let (c, why) = lapse?;
                    let held = window.close(format!("{c}: {why}"));
                    tracing::info!(
                        "condition {c} stopped holding after {} of --stable {}: {why}; waiting again",
                        podsignal_proto::format_duration(held),
                        podsignal_proto::format_duration(stable),
                    );
                    for m in met {
                        m.store(false, Ordering::Relaxed);
                    }
                }
            }
        }
    };
    let far = Duration::from_secs(86_400 * 365);
    let limit = plan.timeout.unwrap_or(far);
    let list = conditions.iter().map(|c| c.to_string());
    let stable_for = plan.stable.map_or(String::new(), |d| {
        format!(", stable for {}", podsignal_proto::format_duration(d))
    });
    let intro = format!(
        "waiting for {}{stable_for}{}",
        list.collect::<Vec<_>>().join(", "),
        read_from(volume, conditions)
    );
    let missing = || async move {
        let unmet = unmet(volume, conditions, whys, met).await;
        match (plan.stable, unmet.is_empty()) {
            (Some(stable), true) => window.describe(stable),
            _ => unmet,
        }
    };
    let waited = remind::while_waiting(all, &intro, plan.reminders, missing);
    match tokio::time::timeout(limit, waited).await {
        Ok(r) => r,
        Err(_) => Err(Exit::with(
            ExitCode::TIMEOUT,
            format!(
                "timed out after {}: {}",
                podsignal_proto::format_duration(limit),
                missing().await
            ),
        )),
    }
}

/// What `--on-timeout` does when the wait times out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnTimeout {
    /// Exit 124, naming what is missing (the default).
    Fail,
    /// Log one warning naming what is missing, and carry on as if it held.
    Continue,
}

/// `result`, except that with [`OnTimeout::Continue`] a timeout (exit 124) becomes a warning
/// (the timeout's own line, naming what was missing) and success.
pub fn on_timeout(result: anyhow::Result<()>, on_timeout: OnTimeout) -> anyhow::Result<()> {
    match result {
        Err(e)
            if on_timeout == OnTimeout::Continue
                && crate::exit::code_of(&e) == ExitCode::TIMEOUT =>
        {
            tracing::warn!("{e}; continuing (--on-timeout continue)");
            Ok(())
        }
        other => other,
    }
}

/// Every condition not (or no longer) seen holding, and why: "db: no record in
/// /run/podsignal; tcp:5432: connection refused" (a record's reason names the directory).
async fn unmet(
    volume: &dyn Records,
    conditions: &[Condition],
    whys: &[Why],
    met: &[AtomicBool],
) -> String {
    let mut missing = Vec::new();
    for ((c, why), m) in conditions.iter().zip(whys).zip(met) {
        if !m.load(Ordering::Relaxed) {
            missing.push(format!("{c}: {}", volume.why_not(c, why).await));
        }
    }
    missing.join("; ")
}

/// " (read from DIR)" when some of `conditions` are records in the shared directory (or
/// through the agent): a wrong `--dir` is the first thing to rule out.
pub fn read_from(volume: &dyn Records, conditions: &[Condition]) -> String {
    let records = conditions.iter().any(|c| {
        matches!(
            c,
            Condition::Ready(_) | Condition::Exit { .. } | Condition::Phase(_)
        )
    });
    if records {
        format!(" (read from {})", volume.location())
    } else {
        String::new()
    }
}

/// True unless a file-backed condition is known not to hold right now. Probes are not
/// repeated here: they count once they have passed.
async fn holds_now<C: Coordinator>(volume: &C, condition: &Condition) -> bool {
    match condition {
        Condition::Ready(name) => volume.readiness(name).await.is_ok_and(|r| r.ready),
        Condition::Exit { name, code } => {
            podsignal_client::exits::exit_state(volume.tombstone(name).await, *code).is_ok()
        }
        Condition::Phase(p) => volume.current_phase().await.is_ok_and(|now| now >= *p),
        Condition::File(path) => std::path::Path::new(path).exists(),
        Condition::Tcp(_) | Condition::Http(_) | Condition::Unix(_) | Condition::Service(_) => true,
    }
}

/// The latest reason a probe gave for failing, for the timeout message.
#[derive(Debug, Clone, Default)]
pub struct Why(Arc<Mutex<String>>);

impl Why {
    fn set(&self, why: impl Into<String>) {
        if let Ok(mut w) = self.0.lock() {
            *w = why.into();
        }
    }

    fn get(&self) -> String {
        self.0.lock().map(|w| w.clone()).unwrap_or_default()
    }
}

/// Resolves once `condition` holds.
pub async fn hold<C: Coordinator>(
    volume: &C,
    condition: &Condition,
    timing: ProbeTiming,
    why: &Why,
) -> anyhow::Result<()> {
    match condition {
        Condition::Ready(name) => {
            volume
                .wait_ready(std::slice::from_ref(name), WaitMode::All, None)
                .await?
        }
        Condition::Exit { name, code } => {
            volume.wait_exit(name, *code, None).await?;
        }
        Condition::Phase(p) => {
            volume.wait_phase(*p, None).await?;
        }
        Condition::File(path) => file::wait_exists(path.as_ref(), timing.rescan, why).await,
        Condition::Service(s) => {
            // Until a local port listens, the kernel says so without a connection (nothing
            // in the server's log); then the hello, backed off from.
            let mut delays = timing.delays_for(condition);
            loop {
                if s.target.is_local()
                    && net::listeners_visible()
                    && !net::is_listening(s.target.port)
                {
                    why.set("nothing listening");
                    tokio::time::sleep(timing.tcp_interval).await;
                    continue;
                }
                match service::check(s).await {
                    Ok(()) => return Ok(()),
                    Err(e) => why.set(e),
                }
                tokio::time::sleep(delays.next_delay()).await;
            }
        }
        Condition::Tcp(t) if t.is_local() && net::listeners_visible() => loop {
            if net::is_listening(t.port) {
                return Ok(());
            }
            why.set("nothing listening");
            tokio::time::sleep(timing.tcp_interval).await;
        },
        _ => {
            let mut delays = timing.delays_for(condition);
            loop {
                match check_once(condition).await {
                    Ok(()) => return Ok(()),
                    Err(e) => why.set(e),
                }
                tokio::time::sleep(delays.next_delay()).await;
            }
        }
    }
    Ok(())
}

/// Checks a condition once: `Err` says why it does not hold.
pub async fn check_once(condition: &Condition) -> Result<(), String> {
    match condition {
        Condition::Tcp(t) if t.is_local() && net::listeners_visible() => {
            if net::is_listening(t.port) {
                Ok(())
            } else {
                Err("nothing listening".into())
            }
        }
        Condition::Tcp(t) => {
            let attempt = net::connect(&t.host, t.port);
            match tokio::time::timeout(Duration::from_secs(2), attempt).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(why)) => Err(why),
                Err(_) => Err("connect timed out".into()),
            }
        }
        Condition::Http(h) => http::check(h).await,
        Condition::Unix(p) => unix::check(p.as_ref()).await,
        Condition::Service(s) => service::check(s).await,
        Condition::File(p) => match std::fs::symlink_metadata(p) {
            Ok(_) => Ok(()),
            Err(e) => Err(io_why(&e)),
        },
        // Volume conditions are not probed: they are waited for with inotify.
        other => Err(format!("{other} cannot be probed")),
    }
}

/// Why a volume condition does not hold now (probes report through `why`). A record that
/// is not there is said to be missing from the directory (or agent) looked in: a mistyped
/// `--dir` shows.
async fn describe<C: Coordinator>(volume: &C, condition: &Condition, why: &Why) -> String {
    match condition {
        Condition::Ready(name) => match volume.readiness(name).await {
            Ok(r) if r.is_missing() => format!("{} in {}", r.why, volume.describe()),
            Ok(r) => r.why,
            Err(e) => podsignal_client::error_chain(&e),
        },
        Condition::Exit { name, code } => {
            let read = volume.tombstone(name).await;
            let missing = matches!(read, Ok(None));
            match podsignal_client::exits::exit_state(read, *code) {
                Ok(_) => "holds now".into(),
                Err(why) if missing => format!("{why} in {}", volume.describe()),
                Err(why) => why,
            }
        }
        Condition::Phase(p) => match volume.phase().await {
            Ok(None) => format!(
                "phase is {}, not yet {p}: never set in {}",
                podsignal_proto::Phase::Starting,
                volume.describe()
            ),
            Ok(Some(now)) => format!("phase is {}, not yet {p}", now.phase),
            Err(e) => podsignal_client::error_chain(&e),
        },
        _ => {
            let w = why.get();
            if w.is_empty() {
                "not checked yet".into()
            } else {
                w
            }
        }
    }
}

/// An I/O error in a few words: "connection refused", "no such file".
pub fn io_why(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        std::io::ErrorKind::NotFound => "no such file".into(),
        _ => {
            let s = e.to_string();
            s.split(" (os error").next().unwrap_or(&s).to_lowercase()
        }
    }
}
