//! The supervisor behind `podsignal run`: one task that owns the child and everything that
//! can happen to it, in one `select!` (the watchexec model: a handle, a task, a state).
//!
//! - `notify`: the sd_notify socket for `--ready-when notify`.
//! - `ready_fd`: the pipe for `--ready-when fd:N` (s6's notification-fd).
//! - `readiness`: probing `--ready-when`, and publishing `--name`'s readiness from a task of
//!   its own (a slow write never holds up a signal).
//! - `shutdown`: the stop's budget, its bookkeeping and the pre-stop steps.
//! - `termination_log`: why CMD ended, after what CMD wrote, where Kubernetes reads it.
//!
//! The state carries its data ([`State::Stopping`] holds the trigger and the deadline), so
//! the budget lives in one place. Stopping is always: drain (unready) → bookkeeping (the
//! stop event, `--on-term-phase`) and pre-stop steps, all bounded by `--grace` less
//! `--stop-timeout` → the stop signal → SIGKILL at the end of `--grace`, counted from the
//! decision to stop. Nothing a neighbour does to a file (holding the events lock, say) can
//! move the stop signal or SIGKILL: whatever bookkeeping has not finished by then is given up.
//! A second `--stop-on` signal skips the rest of the pre-stop steps.

pub mod notify;
mod readiness;
pub mod ready_fd;
pub mod shutdown;
pub mod termination_log;

use std::process::ExitStatus;
use std::time::Duration;

use podsignal_client::{Coordinator, WaitMode};
use podsignal_proto::{Condition, Name, Phase, ReadyProbe};
use rustix::process::Signal;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::child::{self, Child, ChildSpec, Group, SpawnOptions};
use crate::condition::{self, ProbeTiming};
use crate::reaper::Reaper;
use crate::signals::{self, SignalStream};
use notify::{NotifyMessage, NotifySocket, NotifyState};
use readiness::Update;
use shutdown::{PreStop, Trigger};

/// What `run` was asked to do once the child runs.
#[derive(Debug, Clone)]
pub struct Plan {
    /// `--name`: whose readiness, stop requests and tombstone.
    pub name: Option<Name>,
    /// What publishes `name`'s readiness: `--ready-when`, `started` when it is not given;
    /// `None` publishes nothing (no name, or `--ready-when never`).
    pub ready_when: Option<ReadyProbe>,
    /// `--probe-interval`: keep probing after the first success.
    pub probe_interval: Option<Duration>,
    /// `--exit-with`: any of these stops the child.
    pub exit_with: Vec<Condition>,
    /// `--stop-on`: the signals that start a stop; others are forwarded. Never empty.
    pub stop_on: Vec<i32>,
    /// `--stop-signal`; `None` forwards the signal `run` received (the first of `stop_on`
    /// otherwise).
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
    /// `--pgroup`: forward signals to the child's process group, not only the child.
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
    /// Its process group, whose leftovers are still to be stopped.
    pub group: Option<Group>,
    /// Why podsignal stopped it, if it did.
    pub stopped: Option<String>,
    /// When podsignal stopped it: the end of the `--grace` budget (what the child left
    /// behind gets no longer than that).
    pub stop_deadline: Option<Instant>,
    /// What the child said about its end over sd_notify (`EXIT_STATUS=`, `ERRNO=`).
    pub said: Option<String>,
}

/// Where the child is in its life; each state holds what only exists in it.
#[derive(Debug)]
enum State {
    /// Running; nobody asked it to stop.
    Running,
    /// Stopping, for `trigger`; SIGKILL comes at `deadline` (the end of `--grace`, or later
    /// if the child asked with `EXTEND_TIMEOUT_USEC`).
    Stopping {
        trigger: Trigger,
        deadline: Instant,
        step: Step,
    },
}

/// How far a stop has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Bookkeeping and pre-stop steps under way; no signal sent yet.
    PreStop,
    /// The stop signal was sent; SIGKILL at `kill_at` (the deadline, unless the child asked
    /// for more with `EXTEND_TIMEOUT_USEC`).
    Signalled { kill_at: Instant },
    /// SIGKILL was sent.
    Killed,
}

/// Waits (forever) while an arm of the loop does not apply.
async fn never<T>() -> T {
    std::future::pending().await
}

/// Runs until the child has exited, and says how.
pub async fn supervise<C: Coordinator>(
    c: &C,
    plan: &Plan,
    child: Child,
    signals: &mut SignalStream,
    reaper: &Reaper,
    notify: Option<NotifySocket>,
    ready_fd: Option<oneshot::Receiver<bool>>,
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

    let publish = readiness::start_publisher(c.clone(), plan.name.clone());
    let mut notify_rx = None;
    let mut main_pid = None;
    let mut flush = None;
    if let Some(n) = notify {
        main_pid = Some(n.main_pid_setter());
        flush = Some(n.flush_marker());
        notify_rx = Some(n.messages);
    }
    let probe = tokio::spawn(readiness::probe_task(
        c.clone(),
        plan.clone(),
        reaper.clone(),
        publish.clone(),
        ready_fd,
    ));
    let mut notify_state = NotifyState::new(plan.watchdog);

    let stop_request = async {
        let Some(n) = &plan.name else {
            return never().await;
        };
        take_stop_request(c, n).await
    };
    tokio::pin!(stop_request);
    let exit_with = async {
        if plan.exit_with.is_empty() {
            return never().await;
        }
        wait_exit_with(c, plan).await
    };
    tokio::pin!(exit_with);

    let mut state = State::Running;
    let mut pre_stop: std::pin::Pin<Box<dyn Future<Output = ()> + Send + '_>> = Box::pin(never());

    let (status, group) = loop {
        let kill_at = match &state {
            State::Stopping {
                step: Step::Signalled { kill_at },
                ..
            } => Some(*kill_at),
            _ => None,
        };
        let watchdog_at = notify_state.watchdog_deadline().map(Instant::from_std);
        let running = matches!(state, State::Running);
        // An arm that decides to stop yields its trigger; the stop begins after the select.
        let stop: Option<Trigger> = tokio::select! {
            waited = &mut exited => break waited?,
            Some(signo) = signals.recv() => match &mut state {
                _ if !plan.stop_on.contains(&signo) => {
                    tracing::debug!("forwarding {}", signals::name(signo));
                    send(signo);
                    None
                }
                State::Running => Some(Trigger::Signal(signo)),
                State::Stopping { trigger, deadline, step: step @ Step::PreStop } => {
                    tracing::info!("{} again: skipping the rest of the pre-stop steps", signals::name(signo));
                    pre_stop = Box::pin(never());
                    send(stop_signal(plan, trigger));
                    *step = Step::Signalled { kill_at: *deadline };
                    None
                }
                State::Stopping { .. } => {
                    tracing::debug!("forwarding {}", signals::name(signo));
                    send(signo);
                    None
                }
            },
            request = &mut stop_request, if running => {
                Some(Trigger::StopRequest(format!(
                    "by {}{}",
                    request.writer.label(),
                    request.reason.map(|x| format!(": {x}")).unwrap_or_default()
                )))
            }
            holds = &mut exit_with, if running => Some(Trigger::ExitWith(holds)),
            () = &mut pre_stop => {
                pre_stop = Box::pin(never());
                if let State::Stopping { trigger, deadline, step } = &mut state {
                    let sig = stop_signal(plan, trigger);
                    let left = deadline.saturating_duration_since(Instant::now());
                    tracing::info!(
                        "stopping the child with {} (SIGKILL in {}, the rest of --grace)",
                        signals::name(sig),
                        podsignal_proto::format_duration(round_ms(left))
                    );
                    send(sig);
                    *step = Step::Signalled { kill_at: *deadline };
                }
                None
            }
            () = tokio::time::sleep_until(kill_at.unwrap_or_else(Instant::now)), if kill_at.is_some() => {
                tracing::warn!("the child outlived --grace {}: sending SIGKILL", podsignal_proto::format_duration(plan.grace));
                send(signal_hook::consts::SIGKILL);
                if let State::Stopping { step, .. } = &mut state {
                    *step = Step::Killed;
                }
                None
            }
            Some(message) = recv_opt(&mut notify_rx) => {
                match &message {
                    NotifyMessage::ExtendTimeout(d) => extend(&mut state, *d),
                    NotifyMessage::MainPid(pid) => {
                        if let Some(setter) = &main_pid { setter(*pid); }
                    }
                    _ => {}
                }
                if let Some((ready, why)) = notify_state.apply(&message) {
                    let _ = publish.send(Update::Set(ready, why));
                }
                if let NotifyMessage::Barrier(fds) = message {
                    // Answering BARRIER=1: closed after every earlier message was applied.
                    drop(fds);
                }
                None
            }
            () = tokio::time::sleep_until(watchdog_at.unwrap_or_else(Instant::now)), if watchdog_at.is_some() => {
                let (ready, why) = notify_state.watchdog_fired();
                tracing::warn!("the child missed its watchdog deadline");
                let _ = publish.send(Update::Set(ready, why));
                if let Some(n) = &plan.name {
                    spawn_bookkeeping(c, "watchdog", serde_json::json!({"name": n}), BOOKKEEPING_BOUND);
                }
                None
            }
        };
        if let Some(trigger) = stop {
            let deadline = podsignal_client::deadline_after(Instant::now(), plan.grace);
            let why = trigger.describe();
            tracing::info!("stopping: {why}");
            if plan.drain {
                let _ = publish.send(Update::Freeze(format!("draining: {why}")));
            }
            let signal_at = deadline.checked_sub(plan.stop_timeout).unwrap_or(deadline);
            pre_stop = Box::pin(shutdown::bounded(
                plan,
                signal_at,
                shutdown::steps(c, plan, trigger.clone(), reaper),
            ));
            state = State::Stopping {
                trigger,
                deadline,
                step: Step::PreStop,
            };
        }
    };
    probe.abort();
    if let (Some(rx), Some(flush)) = (&mut notify_rx, &flush) {
        drain_notify(rx, flush, &mut notify_state).await;
    }
    let (stopped, stop_deadline) = match state {
        State::Running => (None, None),
        State::Stopping {
            trigger, deadline, ..
        } => (Some(trigger.describe()), Some(deadline)),
    };
    // Retract readiness: best-effort, bounded.
    let (ack_tx, ack_rx) = oneshot::channel();
    let why = format!("exited ({})", child::exit_code_of(status).0);
    if publish.send(Update::Retract(why, ack_tx)).is_ok() {
        let bound = stop_deadline
            .unwrap_or_else(Instant::now)
            .max(Instant::now() + Duration::from_secs(1));
        let _ = tokio::time::timeout_at(bound, ack_rx).await;
    }
    Ok(Outcome {
        status,
        group,
        stopped,
        stop_deadline,
        said: notify_state.said(),
    })
}

/// `EXTEND_TIMEOUT_USEC`: systemd extends the timeout of the state the service is in. While
/// stopping, that is SIGKILL (before the stop signal too: the pre-stop steps keep their
/// share, the child gets the rest). While running there is none: `run` puts no limit on a
/// start once CMD runs (`--timeout` bounds `--wait-for`, before CMD exists; `--ready-when`
/// probes for as long as CMD lives), nor on a run.
fn extend(state: &mut State, d: Duration) {
    let at = podsignal_client::deadline_after(Instant::now(), d);
    let kill_at = match state {
        State::Stopping {
            step: Step::Signalled { kill_at },
            ..
        } => kill_at,
        State::Stopping {
            step: Step::PreStop,
            deadline,
            ..
        } => deadline,
        // Killed already; or running, where there is nothing to extend.
        State::Stopping {
            step: Step::Killed, ..
        }
        | State::Running => return,
    };
    if at > *kill_at {
        *kill_at = at;
        tracing::info!(
            "EXTEND_TIMEOUT_USEC: SIGKILL postponed to {} from now",
            podsignal_proto::format_duration(round_ms(d))
        );
    }
}

/// After the child exited: applies what it sent just before (`EXIT_STATUS=` then `exit`)
/// that was not read yet. Datagrams keep their order, so once the marker `run` sends itself
/// comes back, everything the child sent has been read; bounded, in case the reading thread
/// is gone.
async fn drain_notify(
    rx: &mut mpsc::UnboundedReceiver<NotifyMessage>,
    flush: &notify::FlushMarker,
    state: &mut NotifyState,
) {
    if flush.send().is_err() {
        return;
    }
    let drain = async {
        while let Some(m) = rx.recv().await {
            if matches!(m, NotifyMessage::Flushed) {
                return;
            }
            state.apply(&m);
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}

/// The signal that stops the child: `--stop-signal`, else the one run received, else the
/// first `--stop-on` signal (SIGTERM by default).
fn stop_signal(plan: &Plan, trigger: &Trigger) -> i32 {
    match (trigger, plan.stop_signal) {
        (_, Some(s)) => s,
        (Trigger::Signal(s), None) => *s,
        _ => plan
            .stop_on
            .first()
            .copied()
            .unwrap_or(signal_hook::consts::SIGTERM),
    }
}

/// How long a piece of bookkeeping run outside a stop may take (an event, say).
pub const BOOKKEEPING_BOUND: Duration = Duration::from_secs(10);

/// The completion of the last event handed to [`spawn_bookkeeping`]: the next one waits for
/// it, so this process's events are published in the order they happened (`waiting` before
/// `start`, `ready` before `unready`), as the timeline reads them.
static LAST_BOOKKEEPING: std::sync::Mutex<Option<oneshot::Receiver<()>>> =
    std::sync::Mutex::new(None);

/// Publishes an event in the background, giving up after `bound`: an event is bookkeeping,
/// never in the way of the child or a signal. Events handed over here are published in
/// order, each after the one before (published or given up).
pub fn spawn_bookkeeping<C: Coordinator>(
    c: &C,
    kind: &str,
    data: serde_json::Value,
    bound: Duration,
) {
    drop(spawn_in_order(c, kind, data, bound));
}

/// [`spawn_bookkeeping`], waited for: returns once the event is published or given up.
pub async fn bookkeeping_now<C: Coordinator>(
    c: &C,
    kind: &str,
    data: serde_json::Value,
    bound: Duration,
) {
    let _ = spawn_in_order(c, kind, data, bound).await;
}

fn spawn_in_order<C: Coordinator>(
    c: &C,
    kind: &str,
    data: serde_json::Value,
    bound: Duration,
) -> tokio::task::JoinHandle<()> {
    let c = c.clone();
    let kind = event_kind(kind);
    let (done, next) = oneshot::channel::<()>();
    let before = LAST_BOOKKEEPING
        .lock()
        .map(|mut last| last.replace(next))
        .unwrap_or_default();
    tokio::spawn(async move {
        let _done = done; // dropped when this one is over: the next may go
        if let Some(before) = before {
            let _ = before.await;
        }
        match tokio::time::timeout(bound, c.publish(&kind, Some(data))).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(
                "publishing the {kind} event: {}",
                podsignal_client::error_chain(&e)
            ),
            Err(_) => tracing::warn!(
                "publishing the {kind} event: gave up after {} (is the events lock held?)",
                podsignal_proto::format_duration(bound)
            ),
        }
    })
}

/// The next valid stop request for `name`. Errors (an agent that went away) are logged and
/// retried; a hostile or broken request file is never one (see `Coordinator::take_stop_request`).
async fn take_stop_request<C: Coordinator>(c: &C, name: &Name) -> podsignal_proto::StopRequest {
    let mut logged = false;
    loop {
        match c.take_stop_request(name).await {
            Ok(r) => return r,
            Err(e) => {
                if !logged {
                    tracing::warn!(
                        "watching for stop requests for {name}: {} (retrying)",
                        podsignal_client::error_chain(&e)
                    );
                    logged = true;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Resolves when one `--exit-with` condition holds, with their description. An error while
/// waiting (a broken file, an agent that went away) is logged and the wait goes on: only a
/// condition that holds stops the child.
async fn wait_exit_with<C: Coordinator>(c: &C, plan: &Plan) -> String {
    let mut logged = false;
    loop {
        match condition::wait_all(c, &plan.exit_with, WaitMode::Any, None, plan.timing, None).await
        {
            Ok(()) => {
                return plan
                    .exit_with
                    .iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(" or ");
            }
            Err(e) => {
                if !logged {
                    tracing::warn!("--exit-with: {e:#} (retrying)");
                    logged = true;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

async fn recv_opt<T>(rx: &mut Option<mpsc::UnboundedReceiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// `d` to whole milliseconds, for logs.
fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

pub fn event_kind(kind: &str) -> Name {
    Name::new(kind).unwrap_or_else(|_| unreachable!("{kind:?} is a valid name"))
}

/// Spawns the child with the reaper (in its own process group, guarded); with notify,
/// records its pid for credential checks.
pub async fn spawn_child(
    argv: &[std::ffi::OsString],
    env: Vec<(String, String)>,
    reaper: &Reaper,
    notify: Option<&NotifySocket>,
    ready_fd: Option<&ready_fd::ReadyPipe>,
) -> anyhow::Result<Child> {
    let spec = ChildSpec {
        argv,
        env,
        inherit: None,
        pass: ready_fd.map(|p| p.for_child()),
    };
    let c = child::spawn_with(spec, SpawnOptions::command(reaper)).await?;
    if let Some(n) = notify {
        let _ = n.child_pid.set(c.pid().as_raw_nonzero().get());
    }
    Ok(c)
}
