//! The supervisor behind `podsignal run`: one task that owns the child and everything that
//! can happen to it, in one `select!` (the watchexec model: a handle, a task, a state).
//!
//! - `reaper`: the one waiter for every child and orphan (subreaper / PID 1).
//! - `signals`: which signals are forwarded; handlers are installed first thing.
//! - `notify`: the sd_notify socket for `--ready-when notify`.
//! - `shutdown`: drain, `--stop-after` and pre-stop hooks, before the stop signal.
//!
//! Stopping is always: (mark unready if draining) → pre-stop steps, bounded by `--grace`
//! less `--stop-timeout` → the stop signal → SIGKILL at the end of `--grace`, counted from
//! the decision to stop (one budget: see `shutdown`). A second SIGTERM/SIGINT skips the
//! pre-stop wait.

pub mod notify;
pub mod reaper;
pub mod shutdown;
pub mod signals;

use std::process::ExitStatus;
use std::time::Duration;

use podsignal_client::{ReadinessGuard, Volume, WaitMode};
use podsignal_proto::{Condition, Name, Phase, ReadyProbe};
use rustix::process::Signal;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::child::{self, Child, ChildSpec, Signaller, SpawnOptions};
use crate::condition::{self, Backoff, ProbeTiming, Why};
use notify::{NotifyMessage, NotifySocket, NotifyState};
use reaper::Reaper;
use shutdown::{PreStop, Trigger};
use signals::SignalStream;

/// What `run` was asked to do once the child runs.
#[derive(Debug, Clone)]
pub struct Plan {
    /// `--name`: whose readiness, stop requests and tombstone.
    pub name: Option<Name>,
    /// `--ready-when`.
    pub ready_when: Option<ReadyProbe>,
    /// `--probe-interval`: keep probing after the first success.
    pub probe_interval: Option<Duration>,
    /// `--exit-with`: any of these stops the child.
    pub exit_with: Vec<Condition>,
    /// `--stop-signal`; `None` forwards the signal `run` received (SIGTERM otherwise).
    pub stop_signal: Option<i32>,
    /// `--grace`: the whole stop, from the decision to SIGKILL.
    pub grace: Duration,
    /// `--stop-timeout` (or its default): the part of `grace` kept for the child after the
    /// stop signal. At most `grace`.
    pub stop_timeout: Duration,
    /// `--drain`: mark unready first thing when stopping.
    pub drain: bool,
    /// `--on-term-phase`.
    pub on_term_phase: Option<Phase>,
    /// `--pgroup`: signal the child's process group.
    pub pgroup: bool,
    /// Before the stop signal.
    pub pre_stop: PreStop,
    /// Probe timing.
    pub timing: ProbeTiming,
    /// `--watchdog`.
    pub watchdog: Option<Duration>,
}

/// How the child ended.
#[derive(Debug)]
pub struct Outcome {
    /// Its exit status.
    pub status: ExitStatus,
    /// Why podsignal stopped it, if it did.
    pub stopped: Option<String>,
    /// When podsignal stopped it: the end of the `--grace` budget (what the child left
    /// behind gets no longer than that).
    pub stop_deadline: Option<Instant>,
}

/// Where the child is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Running; nobody asked it to stop.
    Running,
    /// Stopping: pre-stop steps under way, no signal sent yet.
    PreStop,
    /// The stop signal was sent; SIGKILL at the deadline.
    Signalled,
    /// SIGKILL was sent.
    Killed,
}

/// A readiness change from a probe: ready or not, and why.
#[derive(Debug)]
struct Ready(bool, String);

/// Runs until the child has exited, and says how.
pub async fn supervise(
    volume: &Volume,
    plan: &Plan,
    child: Child,
    signals: &mut SignalStream,
    reaper: &Reaper,
    notify: Option<NotifySocket>,
) -> anyhow::Result<Outcome> {
    let signaller = child.signaller();
    let send = |sig: i32| {
        let Some(s) = Signal::from_named_raw(sig) else {
            return;
        };
        if plan.pgroup {
            signaller.send_group(s);
        } else {
            signaller.send(s);
        }
    };
    let exited = child.wait();
    tokio::pin!(exited);

    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<Ready>();
    let mut notify_rx = None;
    let mut notify_socket = None;
    if let Some(n) = notify {
        let setter = n.main_pid_setter();
        notify_socket = Some((n.child_pid.clone(), setter));
        notify_rx = Some(n.messages);
    }
    let probe = probe_task(
        volume.clone(),
        plan.clone(),
        reaper.clone(),
        ready_tx.clone(),
    );
    let probe = tokio::spawn(probe);
    let mut notify_state = NotifyState::new(plan.watchdog);
    let mut readiness = Readiness {
        volume,
        name: plan.name.as_ref(),
        guard: None,
        frozen: false,
    };

    let stop_request = async {
        match &plan.name {
            Some(n) => volume.wait_stop_request(n).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(stop_request);
    let exit_with = async {
        if plan.exit_with.is_empty() {
            return std::future::pending().await;
        }
        condition::wait_all(volume, &plan.exit_with, WaitMode::Any, None, plan.timing).await?;
        let holds = plan
            .exit_with
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(" or ");
        anyhow::Ok(holds)
    };
    tokio::pin!(exit_with);

    let mut state = State::Running;
    let mut trigger: Option<Trigger> = None;
    let mut pre_stop: std::pin::Pin<Box<dyn Future<Output = ()> + Send + '_>> =
        Box::pin(std::future::pending());
    let far = Instant::now() + Duration::from_secs(86_400 * 365);
    let mut kill_at = far;
    // Set when the decision to stop is taken: SIGKILL comes then, whatever the steps before.
    let mut stop_deadline: Option<Instant> = None;

    let status = loop {
        let watchdog_at = notify_state
            .watchdog_deadline()
            .map_or(far, Instant::from_std);
        // An arm that decides to stop yields its trigger; the stop begins after the select.
        let stop: Option<Trigger> = tokio::select! {
            status = &mut exited => break status?,
            Some(signo) = signals.recv() => {
                if !signals::is_termination(signo) || state == State::Signalled || state == State::Killed {
                    tracing::debug!("forwarding {}", signals::name(signo));
                    send(signo);
                    continue;
                }
                if state == State::PreStop {
                    tracing::info!("{} again: skipping the rest of the pre-stop steps", signals::name(signo));
                    pre_stop = Box::pin(std::future::pending());
                    send(plan.stop_signal.unwrap_or(signo));
                    state = State::Signalled;
                    kill_at = stop_deadline.unwrap_or_else(|| Instant::now() + plan.grace);
                    continue;
                }
                Some(Trigger::Signal(signo))
            }
            request = &mut stop_request, if state == State::Running => {
                let t = match request {
                    Ok(r) => Trigger::StopRequest(format!(
                        "by {}{}",
                        r.writer.label(),
                        r.reason.map(|x| format!(": {x}")).unwrap_or_default()
                    )),
                    Err(e) => Trigger::StopRequest(format!("{e:#}")),
                };
                if let Some(n) = &plan.name {
                    let _ = volume.clear_stop_request(n);
                }
                Some(t)
            }
            holds = &mut exit_with, if state == State::Running => {
                let t = Trigger::ExitWith(match holds {
                    Ok(h) => h,
                    Err(e) => format!("{e:#}"),
                });
                Some(t)
            }
            () = &mut pre_stop => {
                pre_stop = Box::pin(std::future::pending());
                let sig = match (&trigger, plan.stop_signal) {
                    (_, Some(s)) => s,
                    (Some(Trigger::Signal(s)), None) => *s,
                    _ => signal_hook::consts::SIGTERM,
                };
                kill_at = stop_deadline.unwrap_or_else(|| Instant::now() + plan.grace);
                let left = kill_at.saturating_duration_since(Instant::now());
                tracing::info!("stopping the child with {} (SIGKILL in {}, the rest of --grace)", signals::name(sig), podsignal_proto::format_duration(round_ms(left)));
                send(sig);
                state = State::Signalled;
                None
            }
            () = tokio::time::sleep_until(kill_at), if state == State::Signalled => {
                tracing::warn!("the child outlived --grace {}: sending SIGKILL", podsignal_proto::format_duration(plan.grace));
                send(signal_hook::consts::SIGKILL);
                state = State::Killed;
                None
            }
            Some(update) = ready_rx.recv() => {
                let Ready(ready, why) = update;
                readiness.set(ready, &why).await;
                None
            }
            Some(message) = recv_opt(&mut notify_rx) => {
                match &message {
                    NotifyMessage::ExtendTimeout(d) if state == State::Signalled => {
                        kill_at = kill_at.max(Instant::now() + *d);
                        tracing::info!("EXTEND_TIMEOUT_USEC: SIGKILL postponed by {}", podsignal_proto::format_duration(*d));
                    }
                    NotifyMessage::MainPid(pid) => {
                        if let Some((_, setter)) = &notify_socket { setter(*pid); }
                    }
                    _ => {}
                }
                if let Some((ready, why)) = notify_state.apply(&message) {
                    readiness.set(ready, &why).await;
                }
                if let NotifyMessage::Barrier(fds) = message {
                    // Answering BARRIER=1: closed after every earlier message was applied.
                    drop(fds);
                }
                None
            }
            () = tokio::time::sleep_until(watchdog_at), if watchdog_at < far => {
                let (ready, why) = notify_state.watchdog_fired();
                tracing::warn!("the child missed its watchdog deadline");
                readiness.set(ready, &why).await;
                if let Some(n) = &plan.name {
                    let _ = volume.publish(&event_kind("watchdog"), Some(serde_json::json!({"name": n}))).await;
                }
                None
            }
        };
        if let Some(t) = stop {
            let deadline = Instant::now() + plan.grace;
            stop_deadline = Some(deadline);
            begin_stop(volume, plan, &t, &mut readiness).await;
            trigger = Some(t.clone());
            state = State::PreStop;
            pre_stop = Box::pin(bounded(
                plan,
                deadline,
                plan.pre_stop.run(volume, t, plan.timing, reaper),
            ));
        }
    };
    probe.abort();
    let _ = notify_socket;
    if let Some(guard) = readiness.guard.take() {
        let why = format!("exited ({})", child::exit_code_of(status).0);
        if let Err(e) = guard.retract(&why) {
            tracing::warn!("retracting readiness: {e:#}");
        }
    }
    Ok(Outcome {
        status,
        stopped: trigger.map(|t| t.describe()),
        stop_deadline,
    })
}

async fn recv_opt<T>(rx: &mut Option<mpsc::UnboundedReceiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Runs the pre-stop steps within their share of `--grace`: all of it but `--stop-timeout`.
/// `deadline` is the end of `--grace` for this stop.
async fn bounded(plan: &Plan, deadline: Instant, f: impl Future<Output = ()>) {
    let budget = plan.grace.saturating_sub(plan.stop_timeout);
    if tokio::time::timeout_at(
        deadline.checked_sub(plan.stop_timeout).unwrap_or(deadline),
        f,
    )
    .await
    .is_err()
    {
        tracing::warn!(
            "pre-stop steps took longer than {} (--grace {} less --stop-timeout {}): stopping now",
            podsignal_proto::format_duration(budget),
            podsignal_proto::format_duration(plan.grace),
            podsignal_proto::format_duration(plan.stop_timeout)
        );
    }
}

/// `d` to whole milliseconds, for logs.
fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The first things done when stopping: log, event, phase, drain (unready).
async fn begin_stop(volume: &Volume, plan: &Plan, t: &Trigger, readiness: &mut Readiness<'_>) {
    let why = t.describe();
    tracing::info!("stopping: {why}");
    if let Some(n) = &plan.name {
        let incarnation = &volume.identity().incarnation;
        let data = serde_json::json!({"name": n, "reason": why, "incarnation": incarnation});
        if let Err(e) = volume.publish(&event_kind("stop"), Some(data)).await {
            tracing::warn!("publishing the stop event: {e:#}");
        }
    }
    if let (Trigger::Signal(_), Some(phase)) = (t, plan.on_term_phase) {
        match volume.set_phase(phase, Some(&why), false).await {
            Ok(_) | Err(podsignal_client::Error::PhaseBackwards { .. }) => {}
            Err(e) => tracing::warn!("--on-term-phase {phase}: {e:#}"),
        }
    }
    if plan.drain {
        readiness.set(false, &format!("draining: {why}")).await;
        readiness.frozen = true;
    }
}

/// Publishes readiness of `--name` through one held guard.
struct Readiness<'a> {
    volume: &'a Volume,
    name: Option<&'a Name>,
    guard: Option<ReadinessGuard>,
    /// Draining: stays unready whatever the probes say.
    frozen: bool,
}

impl Readiness<'_> {
    async fn set(&mut self, ready: bool, why: &str) {
        if self.frozen {
            return;
        }
        let Some(name) = self.name else { return };
        let result = match (&self.guard, ready) {
            (None, false) => return,
            (None, true) => match self.volume.hold_ready(name, Some(why)).await {
                Ok(g) => {
                    tracing::info!("{name} is ready: {why}");
                    self.guard = Some(g);
                    Ok(())
                }
                Err(e) => Err(e),
            },
            (Some(g), true) => g.set_ready(Some(why)),
            (Some(g), false) => {
                tracing::info!("{name} is unready: {why}");
                g.set_unready(Some(why))
            }
        };
        if let Err(e) = result {
            tracing::warn!("publishing readiness of {name}: {e:#}");
        }
    }
}

fn event_kind(kind: &str) -> Name {
    Name::new(kind).unwrap_or_else(|_| unreachable!("{kind:?} is a valid name"))
}

/// Probes `--ready-when` (except `notify`) and reports readiness changes.
async fn probe_task(volume: Volume, plan: Plan, reaper: Reaper, tx: mpsc::UnboundedSender<Ready>) {
    let Some(probe) = plan.ready_when.clone() else {
        return;
    };
    let why = Why::default();
    let mut last: Option<bool> = None;
    let mut report = |ok: bool, reason: String| {
        if last != Some(ok) || !ok {
            last = Some(ok);
            let _ = tx.send(Ready(ok, reason));
        }
    };
    match &probe {
        ReadyProbe::Notify => {}
        ReadyProbe::Check(c) => {
            match condition::hold(&volume, c, plan.timing, &why).await {
                Ok(()) => report(true, format!("{probe} passed")),
                Err(e) => tracing::warn!("--ready-when {probe}: {e:#}"),
            }
            let probeable = !matches!(
                c,
                Condition::Ready(_) | Condition::Exit { .. } | Condition::Phase(_)
            );
            let Some(every) = plan.probe_interval.filter(|_| probeable) else {
                return;
            };
            loop {
                tokio::time::sleep(every).await;
                match condition::check_once(c).await {
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
async fn exec_once(cmd: &str, reaper: &Reaper) -> Result<(), String> {
    let argv = ["sh".into(), "-c".into(), cmd.into()];
    let c = child::spawn_with(
        ChildSpec {
            argv: &argv,
            env: Vec::new(),
            inherit: None,
        },
        SpawnOptions {
            reaper: Some(reaper.clone()),
            process_group: false,
        },
    )
    .map_err(|e| format!("{e:#}"))?;
    let signaller: Signaller = c.signaller();
    match tokio::time::timeout(Duration::from_secs(10), c.wait()).await {
        Ok(Ok(s)) if s.success() => Ok(()),
        Ok(Ok(s)) => Err(format!("exited with {}", child::exit_code_of(s).0)),
        Ok(Err(e)) => Err(format!("{e:#}")),
        Err(_) => {
            signaller.send(Signal::KILL);
            Err("timed out after 10s".into())
        }
    }
}

/// Spawns the child with the reaper; with notify, records its pid for credential checks.
pub fn spawn_child(
    argv: &[std::ffi::OsString],
    env: Vec<(String, String)>,
    plan: &Plan,
    reaper: &Reaper,
    notify: Option<&NotifySocket>,
) -> anyhow::Result<Child> {
    let c = child::spawn_with(
        ChildSpec {
            argv,
            env,
            inherit: None,
        },
        SpawnOptions {
            reaper: Some(reaper.clone()),
            process_group: plan.pgroup,
        },
    )?;
    if let Some(n) = notify {
        let _ = n.child_pid.set(c.pid().as_raw_nonzero().get());
    }
    Ok(c)
}
