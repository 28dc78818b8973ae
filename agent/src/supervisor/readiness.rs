//! `run --ready-when`: probing the child, and publishing `--name`'s readiness through one
//! held record.

use std::time::Duration;

use podsignal_client::{Coordinator, ReadinessHold};
use podsignal_proto::{Condition, Name, ReadyProbe};
use rustix::process::Signal;
use tokio::sync::{mpsc, oneshot};

use crate::child::{self, ChildSpec, SpawnOptions};
use crate::condition::{self, Backoff, Why};
use crate::reaper::Reaper;

use super::Plan;

/// What the publisher is asked to do.
#[derive(Debug)]
pub enum Update {
    /// Ready or not, and why (from a probe or sd_notify).
    Set(bool, String),
    /// Unready with this reason, and stay so whatever the probes say (draining).
    Freeze(String),
    /// The child exited: retract, then say so.
    Retract(String, oneshot::Sender<()>),
}

/// How long one readiness write may take before it is given up (logged).
const WRITE_BOUND: Duration = Duration::from_secs(10);

/// Starts the task that publishes `name`'s readiness through one held record, off the
/// supervisor's loop: a slow agent or filesystem never holds up a signal. Without a name it
/// publishes nothing (and acknowledges retractions at once).
pub fn start_publisher<C: Coordinator>(c: C, name: Option<Name>) -> mpsc::UnboundedSender<Update> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut held: Option<C::ReadinessHold> = None;
        // What the last `ready`/`unready` event said: an event per change, not per probe.
        let mut told: Option<bool> = None;
        let mut frozen = false;
        while let Some(update) = rx.recv().await {
            let Some(name) = &name else {
                if let Update::Retract(_, ack) = update {
                    let _ = ack.send(());
                }
                continue;
            };
            match update {
                Update::Set(_, _) if frozen => {}
                Update::Set(ready, why) => {
                    if set(&c, name, &mut held, ready, &why).await && told != Some(ready) {
                        told = Some(ready);
                        tell(&c, name, ready, &why, false);
                    }
                }
                Update::Freeze(why) => {
                    frozen = true;
                    set(&c, name, &mut held, false, &why).await;
                    told = Some(false);
                    tell(&c, name, false, &why, true);
                }
                Update::Retract(why, ack) => {
                    if let Some(h) = held.take() {
                        match tokio::time::timeout(WRITE_BOUND, h.retract(&why)).await {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => tracing::warn!(
                                "retracting readiness of {name}: {}",
                                podsignal_client::error_chain(&e)
                            ),
                            Err(_) => {
                                tracing::warn!("retracting readiness of {name}: no answer in time")
                            }
                        }
                    }
                    let _ = ack.send(());
                    return;
                }
            }
        }
    });
    tx
}

/// Publishes the `ready` or `unready` event of a change (`draining`: unready on purpose, while
/// stopping), in the background and in order with `run`'s other events.
fn tell<C: Coordinator>(c: &C, name: &Name, ready: bool, why: &str, draining: bool) {
    let kind = if ready { "ready" } else { "unready" };
    let mut data = serde_json::json!({
        "name": name, "reason": why, "incarnation": podsignal_client::identity::incarnation(),
    });
    if draining {
        data["draining"] = true.into();
    }
    super::spawn_bookkeeping(c, kind, data, super::BOOKKEEPING_BOUND);
}

/// Writes the readiness; whether it was written (not when the write failed, nor when there
/// was nothing to write: unready before ever being ready).
async fn set<C: Coordinator>(
    c: &C,
    name: &Name,
    held: &mut Option<C::ReadinessHold>,
    ready: bool,
    why: &str,
) -> bool {
    let work = async {
        match (&*held, ready) {
            (None, false) => Ok(false),
            (None, true) => {
                *held = Some(c.hold_ready(name, Some(why)).await?);
                tracing::info!("{name} is ready: {why}");
                Ok(true)
            }
            (Some(h), true) => h.set(true, Some(why)).await.map(|()| true),
            (Some(h), false) => {
                tracing::info!("{name} is unready: {why}");
                h.set(false, Some(why)).await.map(|()| true)
            }
        }
    };
    match tokio::time::timeout(WRITE_BOUND, work).await {
        Ok(Ok(written)) => written,
        Ok(Err(e)) => {
            tracing::warn!(
                "publishing readiness of {name}: {}",
                podsignal_client::error_chain(&e)
            );
            false
        }
        Err(_) => {
            tracing::warn!("publishing readiness of {name}: no answer in time");
            false
        }
    }
}

/// Probes `--ready-when` (except `notify`) and reports readiness changes. `ready_fd`: the
/// answer of the `fd:N` pipe's reader.
pub async fn probe_task<C: Coordinator>(
    c: C,
    plan: Plan,
    reaper: Reaper,
    tx: mpsc::UnboundedSender<Update>,
    ready_fd: Option<oneshot::Receiver<bool>>,
) {
    let Some(probe) = plan.ready_when.clone() else {
        return;
    };
    let why = Why::default();
    let mut last: Option<bool> = None;
    let mut report = |ok: bool, reason: String| {
        if last != Some(ok) || !ok {
            last = Some(ok);
            let _ = tx.send(Update::Set(ok, reason));
        }
    };
    match &probe {
        ReadyProbe::Notify | ReadyProbe::Never => {}
        // The probe task starts once the child has been spawned.
        ReadyProbe::Started => report(true, format!("{probe}")),
        ReadyProbe::Fd(n) => match ready_fd {
            Some(answer) => match answer.await {
                Ok(true) => report(true, format!("{probe}: CMD wrote a newline")),
                Ok(false) => tracing::warn!(
                    "--ready-when {probe}: CMD closed descriptor {n} without writing a newline: {} will not be published ready",
                    plan.name
                        .as_ref()
                        .map_or_else(String::new, |n| n.to_string())
                ),
                Err(_) => {}
            },
            None => tracing::warn!("--ready-when {probe}: no pipe was set up"),
        },
        ReadyProbe::Check(cond) => {
            match condition::hold(&c, cond, plan.timing, &why).await {
                Ok(()) => report(true, format!("{probe} passed")),
                Err(e) => tracing::warn!("--ready-when {probe}: {e:#}"),
            }
            let probeable = !matches!(
                cond,
                Condition::Ready(_) | Condition::Exit { .. } | Condition::Phase(_)
            );
            let Some(every) = plan.probe_interval.filter(|_| probeable) else {
                return;
            };
            loop {
                tokio::time::sleep(every).await;
                match condition::check_once(cond).await {
                    Ok(()) => report(true, format!("{probe} passed")),
                    Err(e) => report(false, format!("{probe} failed: {e}")),
                }
            }
        }
        ReadyProbe::Exec(cmd) => {
            let mut backoff = Backoff::new(plan.timing);
            loop {
                match exec_once(cmd, &reaper).await {
                    Ok(()) => break report(true, format!("{probe} passed")),
                    Err(_) => tokio::time::sleep(backoff.next_delay()).await,
                }
            }
            let Some(every) = plan.probe_interval else {
                return;
            };
            loop {
                tokio::time::sleep(every).await;
                match exec_once(cmd, &reaper).await {
                    Ok(()) => report(true, format!("{probe} passed")),
                    Err(e) => report(false, format!("{probe} failed: {e}")),
                }
            }
        }
    }
}

/// Runs `sh -c CMD` once (10 s at most): `Err` says how it failed.
pub async fn exec_once(cmd: &str, reaper: &Reaper) -> Result<(), String> {
    let argv = ["sh".into(), "-c".into(), cmd.into()];
    let spec = ChildSpec {
        argv: &argv,
        env: Vec::new(),
        inherit: None,
        pass: None,
    };
    let c = child::spawn_with(spec, SpawnOptions::helper(reaper))
        .await
        .map_err(|e| format!("{e:#}"))?;
    let signaller = c.signaller();
    match tokio::time::timeout(Duration::from_secs(10), c.wait()).await {
        Ok(Ok((s, _))) if s.success() => Ok(()),
        Ok(Ok((s, _))) => Err(format!("exited with {}", child::exit_code_of(s).0)),
        Ok(Err(e)) => Err(format!("{e:#}")),
        Err(_) => {
            signaller.send(Signal::KILL);
            Err("timed out after 10s".into())
        }
    }
}
