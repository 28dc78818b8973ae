//! `wait --unready`: until readiness records are not ready (absent, unready, or their holder
//! gone), watched by inotify, and until probes fail: a port nobody listens on any more (the
//! old process released it), an HTTP endpoint that no longer answers as the condition wants
//! (2xx by default: a 503 from a draining server, or no answer at all), a unix socket that
//! refuses, a database that no longer answers its protocol's hello. A probe counts once it has
//! been seen failing, as probes count once they pass in a wait for them to hold.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use podsignal_client::WaitMode;
use podsignal_proto::{Condition, Name};

use super::{ProbeTiming, Records, Reminders, check_once, read_from};
use crate::exit::{Exit, ExitCode};

/// Waits until every condition does not hold (or one, with [`WaitMode::Any`]): readiness
/// NAMEs and probes; other conditions are a usage error. A timeout is an [`Exit`] with code
/// 124 naming what still holds.
pub async fn wait_unready(
    volume: &dyn Records,
    conditions: &[Condition],
    mode: WaitMode,
    timeout: Option<Duration>,
    timing: ProbeTiming,
    reminders: Option<Reminders>,
) -> anyhow::Result<()> {
    let mut names = Vec::new();
    let mut probes = Vec::new();
    for c in conditions {
        match c {
            Condition::Ready(n) => names.push(n.clone()),
            Condition::Tcp(_) | Condition::Http(_) | Condition::Unix(_) | Condition::Service(_) => {
                probes.push(c)
            }
            other => {
                return Err(crate::exit::usage(format!(
                    "--unready takes readiness NAMEs and probes (tcp:, http://, unix:, postgres://, redis://, mysql://), not {other}"
                )));
            }
        }
    }
    super::check_supported(conditions)?;
    let failed: Vec<AtomicBool> = probes.iter().map(|_| AtomicBool::new(false)).collect();
    let mut waits: FuturesUnordered<BoxFuture<'_, anyhow::Result<()>>> = FuturesUnordered::new();
    if !names.is_empty() {
        waits.push(Box::pin(async { volume.unready(&names, mode).await }));
    }
    for (probe, failed) in probes.iter().zip(&failed) {
        waits.push(Box::pin(async move {
            let mut delays = timing.delays_for(probe);
            while check_once(probe).await.is_ok() {
                tokio::time::sleep(delays.next_delay()).await;
            }
            tracing::info!("{probe} no longer holds");
            failed.store(true, Ordering::Relaxed);
            Ok(())
        }));
    }
    let all = async {
        while let Some(done) = waits.next().await {
            done?;
            if mode == WaitMode::Any {
                break;
            }
        }
        anyhow::Ok(())
    };
    let list: Vec<String> = conditions.iter().map(ToString::to_string).collect();
    let intro = format!(
        "waiting for {} to be unready{}",
        list.join(", "),
        read_from(volume, conditions)
    );
    let failed = &failed;
    let missing = || async {
        let mut held = still_ready(volume, &names).await;
        for (probe, failed) in probes.iter().zip(failed) {
            if !failed.load(Ordering::Relaxed) {
                held.push(format!("{probe}: {}", still_holds(probe)));
            }
        }
        format!("{}{}", held.join("; "), read_from(volume, conditions))
    };
    let waited = super::while_waiting(all, &intro, reminders, missing);
    match timeout {
        None => waited.await,
        Some(limit) => match tokio::time::timeout(limit, waited).await {
            Ok(r) => r,
            Err(_) => Err(Exit::with(
                ExitCode::TIMEOUT,
                format!(
                    "timed out after {}: {}",
                    podsignal_proto::format_duration(limit),
                    missing().await
                ),
            )),
        },
    }
}

/// The names still ready, and why: "web: still ready: serving".
async fn still_ready(volume: &dyn Records, names: &[Name]) -> Vec<String> {
    let mut ready = Vec::new();
    for n in names {
        match volume.readiness(n).await {
            Ok(r) if r.ready => ready.push(format!("{n}: still ready: {}", r.why)),
            Ok(_) => {}
            Err(e) => ready.push(format!("{n}: {}", podsignal_client::error_chain(&e))),
        }
    }
    ready
}

/// What a probe last seen passing still does.
fn still_holds(probe: &Condition) -> String {
    match probe {
        Condition::Tcp(t) if t.is_local() => "something still listens".into(),
        Condition::Http(h) => format!("still answers {}", h.status),
        Condition::Service(s) => format!("still answers {}'s hello", s.service.protocol()),
        _ => "still accepts connections".into(),
    }
}
