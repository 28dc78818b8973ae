//! What a command leaves behind when it exits: processes still in its process group, and
//! orphans reparented to us (every wrapper is a child subreaper). A lock, a leadership or a
//! held readiness is released only after they are gone (the brief's rule: free only once its
//! holder and everything it started are gone).

use std::time::Duration;

use rustix::process::Signal;
use tokio::time::Instant;

use crate::child::Group;
use crate::reaper::{self, Reaper};

/// Stops everything the command left: SIGTERM first, SIGKILL at `deadline`, until nothing is
/// left; then dismisses the group's guard. Logs what it does.
pub async fn stop(reaper: &Reaper, deadline: Instant, mut group: Option<Group>) {
    let mut reaped = reaper.reaped();
    let mut signal = Signal::TERM;
    let mut logged = false;
    loop {
        let guard = group.as_ref().and_then(Group::guard_pid);
        let pids: Vec<_> = reaper::living_children()
            .into_iter()
            .filter(|p| Some(*p) != guard)
            .collect();
        // Our own group (the child shared it, on a terminal) is never signalled as a whole:
        // we are in it. What is left of it are our descendants, which come back to us as
        // orphans (we are a subreaper) and are stopped one by one.
        let group_alive = group
            .as_ref()
            .filter(|g| !g.ours)
            .is_some_and(|g| rustix::process::test_kill_process_group(g.id).is_ok());
        if pids.is_empty() && !group_alive {
            break;
        }
        if !logged {
            let left = deadline.saturating_duration_since(Instant::now());
            tracing::info!(
                "the command left processes running: sending SIGTERM, SIGKILL in {}",
                podsignal_proto::format_duration(Duration::from_millis(
                    u64::try_from(left.as_millis()).unwrap_or(u64::MAX)
                ))
            );
            logged = true;
        }
        for p in &pids {
            let _ = rustix::process::kill_process(*p, signal);
        }
        if let Some(g) = group.as_ref().filter(|_| group_alive) {
            let _ = rustix::process::kill_process_group(g.id, signal);
        }
        let recheck = Instant::now() + Duration::from_millis(100);
        tokio::select! {
            _ = reaped.changed() => {}
            () = tokio::time::sleep_until(deadline), if signal == Signal::TERM => signal = Signal::KILL,
            () = tokio::time::sleep_until(recheck) => {}
        }
    }
    if let Some(g) = group.as_mut() {
        g.dismiss();
    }
}
