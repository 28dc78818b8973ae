//! What happens between "stop" and the stop signal: drain, `--stop-after`, pre-stop hooks.
//!
//! One budget, `--grace`, covers the whole stop, from the moment `run` decides to stop to
//! SIGKILL, so that it fits in a pod's terminationGracePeriodSeconds (the kubelet SIGKILLs
//! the container that long after its SIGTERM, whatever `run` is doing). The pre-stop steps
//! get `--grace` less `--stop-timeout`; the stop signal follows at once, and SIGKILL comes
//! at the end of `--grace`: CMD has at least `--stop-timeout` for its own graceful stop,
//! and more when the pre-stop steps end early.

use std::time::Duration;

use podsignal_client::{Volume, WaitMode};
use podsignal_proto::{Condition, HttpCheck};

use crate::child::{self, ChildSpec, SpawnOptions};
use crate::condition::{self, ProbeTiming};

use super::reaper::Reaper;

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
            Trigger::Signal(s) => format!("received {}", super::signals::name(*s)),
            Trigger::StopRequest(r) => format!("stop requested ({r})"),
            Trigger::ExitWith(c) => format!("--exit-with {c} holds"),
        }
    }
}

impl PreStop {
    /// Runs the steps that apply to `trigger`, in order, each logged.
    pub async fn run(
        &self,
        volume: &Volume,
        trigger: Trigger,
        timing: ProbeTiming,
        reaper: &Reaper,
    ) {
        let trigger = &trigger;
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
                condition::wait_all(volume, &self.stop_after, WaitMode::All, None, timing).await
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
/// `/proc/net/tcp{,6}` is read every 20 ms.
async fn drain_ports(ports: &[u16]) {
    let mut logged = false;
    loop {
        let n = condition::net::established_on(ports);
        if n == 0 {
            return;
        }
        if !logged {
            tracing::info!("draining: {n} connection(s) open on {ports:?}");
            logged = true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn run_pre_stop_command(cmd: &str, reaper: &Reaper) {
    tracing::info!("--pre-stop: running {cmd:?}");
    let argv = ["sh".into(), "-c".into(), cmd.into()];
    let spawned = child::spawn_with(
        ChildSpec {
            argv: &argv,
            env: Vec::new(),
            inherit: None,
        },
        SpawnOptions {
            reaper: Some(reaper.clone()),
            process_group: false,
        },
    );
    match spawned {
        Ok(c) => match c.wait().await {
            Ok(status) if status.success() => {}
            Ok(status) => tracing::warn!("--pre-stop {cmd:?} failed: {status}"),
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
