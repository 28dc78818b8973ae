//! Running a command while something is held (`lock`, `leader`): the command inherits the
//! hold's descriptor (the locked file, or the connection to the agent that holds it), so the
//! hold lasts as long as any process of it lives; it runs in its own process group with a
//! guard; signals are forwarded to it; and when it exits, what it left running is stopped
//! before the hold is released.

use std::ffi::OsString;
use std::time::Duration;

use podsignal_client::{Coordinator, Hold, LockHold, Name};
use rustix::process::Signal;
use tokio::time::Instant;

use crate::child::{self, ChildSpec, SpawnOptions};
use crate::exit::ExitCode;
use crate::reaper::Reaper;
use crate::signals::SignalStream;

/// What to run, and how.
pub struct Holding<'a> {
    /// How messages name what is held ("lock m", "leadership of m").
    pub what: String,
    /// The command.
    pub command: &'a [OsString],
    /// Its extra environment.
    pub env: Vec<(String, String)>,
    /// How long what it leaves behind gets between SIGTERM and SIGKILL.
    pub grace: Duration,
}

/// How long the event saying a lock or leadership was released may hold up the exit.
const RELEASE_EVENT_BOUND: Duration = Duration::from_secs(1);

/// [`run`] for a lock or leadership `name` (`kind`: `lock` or `leader`), told in the event log
/// for the timeline: a `kind` event with `"held": true` and the fencing token once the
/// command runs, `"held": false` once it is released.
pub async fn run_told<C: Coordinator, H: LockHold>(
    c: &C,
    kind: &str,
    name: &Name,
    hold: H,
    how: Holding<'_>,
    signals: &mut SignalStream,
) -> anyhow::Result<ExitCode> {
    let token = hold.token();
    let data = |held: bool| serde_json::json!({"name": name, "token": token, "held": held});
    let bound = crate::supervisor::BOOKKEEPING_BOUND;
    crate::supervisor::spawn_bookkeeping(c, kind, data(true), bound);
    let result = run(hold, how, signals).await;
    crate::supervisor::bookkeeping_now(c, kind, data(false), RELEASE_EVENT_BOUND).await;
    result
}

/// Runs the command while `hold` lives; releases it (drops it) only once the command and
/// everything it started are gone. Exits with the command's code.
pub async fn run<H: Hold>(
    hold: H,
    how: Holding<'_>,
    signals: &mut SignalStream,
) -> anyhow::Result<ExitCode> {
    let reaper = Reaper::start()?;
    let spec = ChildSpec {
        argv: how.command,
        env: how.env,
        inherit: Some(hold.descriptor()),
        pass: None,
    };
    let child = child::spawn_with(spec, SpawnOptions::command(&reaper)).await?;
    let signaller = child.signaller();
    let exited = child.wait();
    tokio::pin!(exited);
    let (waited, lost_why) = {
        let lost = hold.lost();
        tokio::pin!(lost);
        loop {
            tokio::select! {
                waited = &mut exited => break (waited?, None),
                Some(signo) = signals.recv() => {
                    if let Some(s) = Signal::from_named_raw(signo) {
                        tracing::debug!("forwarding {}", crate::signals::name(signo));
                        signaller.send(s);
                    }
                }
                why = &mut lost => {
                    // No longer held: the command must not go on as if it were. At once.
                    tracing::warn!("{} lost while the command ran: {why}; killing it", how.what);
                    signaller.send_group(Signal::KILL);
                    signaller.send(Signal::KILL);
                    break (exited.await?, Some(why));
                }
            }
        }
    };
    let (status, group) = waited;
    let deadline = match lost_why {
        Some(_) => Instant::now(),
        None => podsignal_client::deadline_after(Instant::now(), how.grace),
    };
    crate::leftovers::stop(&reaper, deadline, group).await;
    drop(hold);
    if let Some(why) = lost_why {
        anyhow::bail!("{} lost while the command ran: {why}", how.what);
    }
    Ok(child::exit_code_of(status))
}
