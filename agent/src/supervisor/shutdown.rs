//! What happens between "stop" and the stop signal: bookkeeping (the `stop` event,
//! `--on-term-phase`), drain, `--stop-after`, pre-stop hooks.
//!
//! One budget, `--grace`, covers the whole stop, from the moment `run` decides to stop to
//! SIGKILL, so that it fits in a pod's terminationGracePeriodSeconds (the kubelet SIGKILLs
//! the container that long after its SIGTERM, whatever `run` is doing). The bookkeeping and
//! the pre-stop steps run together and get `--grace` less `--stop-timeout` ([`bounded`]);
//! the stop signal follows at once, and SIGKILL comes at the end of `--grace`: CMD has at
//! least `--stop-timeout` for its own graceful stop, and more when the steps end early.
//! Bookkeeping that has not finished by then (an events lock a neighbour holds) is given up.

use std::time::Duration;

use podsignal_client::{Coordinator, WaitMode};
use podsignal_proto::{Condition, HttpCheck};
use tokio::time::Instant;

use crate::child::{self, ChildSpec, SpawnOptions};
use crate::condition;
use crate::reaper::Reaper;

use super::Plan;

/// The longest default `--stop-timeout`.
const MAX_DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// The default `--stop-timeout`: a third of `--grace`, at most 5 s. Enough for a server to
/// close its listeners and finish short requests; the rest of the budget goes to draining.
pub fn default_stop_timeout(grace: Duration) -> Duration {
    (grace / 3).min(MAX_DEFAULT_STOP_TIMEOUT)
}

/// What to do before the stop signal.
#[derive(Debug, Clone, Default)]
pub struct PreStop {
    /// Wait this long after marking unready (`--drain-delay`).
    pub drain_delay: Option<Duration>,
    /// Then wait until no connection is established on these ports (`--drain-ports`).
    pub drain_ports: Vec<u16>,
    /// Keep the child running until these hold (`--stop-after`); only on a signal.
    pub stop_after: Vec<Condition>,
    /// Run `sh -c CMD` (`--pre-stop`).
    pub command: Option<String>,
    /// POST to this URL (`--pre-stop-http`).
    pub http: Option<HttpCheck>,
}

/// Why the child is being stopped.
#[derive(Debug, Clone)]
pub enum Trigger {
    /// `run` was sent this signal.
    Signal(i32),
    /// `podsignal stop NAME`, with its reason.
    StopRequest(String),
    /// An `--exit-with` condition holds.
    ExitWith(String),
}

impl Trigger {
    /// One line for logs, the tombstone and the termination log.
    pub fn describe(&self) -> String {
        match self {
            Trigger::Signal(s) => format!("received {}", crate::signals::name(*s)),
            Trigger::StopRequest(r) => format!("stop requested {r}"),
            Trigger::ExitWith(c) => format!("--exit-with {c} holds"),
        }
    }
}

/// Everything done between the decision to stop and the stop signal: the bookkeeping and the
/// pre-stop steps, side by side (an event that cannot be published does not delay a drain).
pub async fn steps<C: Coordinator>(c: &C, plan: &Plan, trigger: Trigger, reaper: &Reaper) {
    futures_util::future::join(
        bookkeeping(c, plan, &trigger),
        plan.pre_stop.run(c, &trigger, plan.timing, reaper),
    )
    .await;
}

/// The `stop` event and `--on-term-phase`.
async fn bookkeeping<C: Coordinator>(c: &C, plan: &Plan, trigger: &Trigger) {
    let why = trigger.describe();
    let event = async {
        let Some(n) = &plan.name else { return };
        let incarnation = podsignal_client::identity::incarnation();
        let data = serde_json::json!({"name": n, "reason": why, "incarnation": incarnation});
        if let Err(e) = c.publish(&super::event_kind("stop"), Some(data)).await {
            tracing::warn!(
                "publishing the stop event: {}",
                podsignal_client::error_chain(&e)
            );
        }
    };
    let phase = async {
        let (Trigger::Signal(_), Some(phase)) = (trigger, plan.on_term_phase) else {
            return;
        };
        match c.set_phase(phase, Some(&why), false).await {
            Ok(_) | Err(podsignal_client::Error::PhaseBackwards { .. }) => {}
            Err(e) => tracing::warn!(
                "--on-term-phase {phase}: {}",
                podsignal_client::error_chain(&e)
            ),
        }
    };
    futures_util::future::join(event, phase).await;
}

/// Runs `f` until `signal_at` (the end of `--grace` less `--stop-timeout`); what is not done
/// by then is given up, logged.
pub async fn bounded(plan: &Plan, signal_at: Instant, f: impl Future<Output = ()>) {
    if tokio::time::timeout_at(signal_at, f).await.is_err() {
        tracing::warn!(
            "the stop's bookkeeping and pre-stop steps took longer than {} (--grace {} less --stop-timeout {}): stopping now",
            podsignal_proto::format_duration(plan.grace.saturating_sub(plan.stop_timeout)),
            podsignal_proto::format_duration(plan.grace),
            podsignal_proto::format_duration(plan.stop_timeout)
        );
    }
}

impl PreStop {
    /// Runs the steps that apply to `trigger`, in order, each logged.
    pub async fn run<C: Coordinator>(
        &self,
        c: &C,
        trigger: &Trigger,
        timing: condition::ProbeTiming,
        reaper: &Reaper,
    ) {
        if let Some(d) = self.drain_delay {
            tracing::info!("draining: waiting {}", podsignal_proto::format_duration(d));
            tokio::time::sleep(d).await;
        }
        if !self.drain_ports.is_empty() {
            drain_ports(&self.drain_ports).await;
        }
        if matches!(trigger, Trigger::Signal(_)) && !self.stop_after.is_empty() {
            tracing::info!(
                "--stop-after: keeping the child running until {}",
                join(&self.stop_after)
            );
            if let Err(e) =
                condition::wait_all(c, &self.stop_after, WaitMode::All, None, timing, None).await
            {
                tracing::warn!("--stop-after: {e:#}");
            }
        }
        if let Some(cmd) = &self.command {
            run_pre_stop_command(cmd, reaper).await;
        }
        if let Some(h) = &self.http {
            match condition::request("POST", &h.host, h.port, &h.path, Duration::from_secs(30))
                .await
            {
                Ok(r) => tracing::info!("--pre-stop-http {}: status {}", h.url(), r.status),
                Err(e) => tracing::warn!("--pre-stop-http {}: {e}", h.url()),
            }
        }
    }
}

fn join(c: &[Condition]) -> String {
    c.iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Waits until no connection is established on `ports`. There is no event for this, so
/// the kernel is asked every 20 ms (netlink, filtered by port: the cost follows the
/// connections still open on `ports`, not all of the Pod's).
async fn drain_ports(ports: &[u16]) {
    let mut logged = false;
    loop {
        let n = condition::net::established_on(ports);
        if n == 0 {
            return;
        }
        if !logged {
            let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
            tracing::info!(
                "draining: {n} connection(s) open on port(s) {}",
                ports.join(", ")
            );
            logged = true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn run_pre_stop_command(cmd: &str, reaper: &Reaper) {
    tracing::info!("--pre-stop: running {cmd:?}");
    let argv = ["sh".into(), "-c".into(), cmd.into()];
    let spec = ChildSpec {
        argv: &argv,
        env: Vec::new(),
        inherit: None,
        pass: None,
    };
    match child::spawn_with(spec, SpawnOptions::helper(reaper)).await {
        Ok(c) => match c.wait().await {
            Ok((status, _)) if status.success() => {}
            Ok((status, _)) => tracing::warn!("--pre-stop {cmd:?} failed: {status}"),
            Err(e) => tracing::warn!("--pre-stop {cmd:?}: {e:#}"),
        },
        Err(e) => tracing::warn!("--pre-stop {cmd:?}: {e:#}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_stop_timeout_is_a_third_of_grace_at_most_5s() {
        let s = Duration::from_secs;
        assert_eq!(default_stop_timeout(s(3)), s(1));
        assert_eq!(
            default_stop_timeout(s(10)),
            Duration::from_millis(3333) + Duration::from_nanos(333_333)
        );
        assert_eq!(default_stop_timeout(s(30)), s(5));
        assert_eq!(default_stop_timeout(Duration::ZERO), Duration::ZERO);
    }
}
