//! `podsignal ready` and `podsignal unready`.

use podsignal_client::{Coordinator, Hold, ReadinessHold};

use crate::cli::{ReadyArgs, UnreadyArgs};
use crate::exit::ExitCode;
use crate::signals::SignalStream;

pub async fn ready<C: Coordinator>(
    c: &C,
    args: ReadyArgs,
    signals: Option<SignalStream>,
) -> anyhow::Result<ExitCode> {
    if !args.hold {
        c.set_ready(&args.name, args.reason.as_deref()).await?;
        return Ok(ExitCode::SUCCESS);
    }
    // The signal stream exists since the process started: a signal that arrives while the
    // record is being written retracts it cleanly once it is.
    let mut signals = super::stream(signals)?;
    let held = c.hold_ready(&args.name, args.reason.as_deref()).await?;
    // In the foreground with nothing else to say: without this line it looks hung.
    let pid = std::process::id();
    tracing::info!(
        "holding {} ready while this process runs (pid {pid}); release it with Ctrl-C or `kill {pid}` (SIGTERM)",
        args.name
    );
    let signo = tokio::select! {
        signo = signals.termination() => signo,
        why = held.lost() => anyhow::bail!("readiness {} is no longer held: {why}", args.name),
    };
    held.retract(&format!(
        "holder stopped by {}",
        crate::signals::name(signo)
    ))
    .await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn unready<C: Coordinator>(c: &C, args: UnreadyArgs) -> anyhow::Result<ExitCode> {
    c.set_unready(&args.name, args.reason.as_deref()).await?;
    Ok(ExitCode::SUCCESS)
}
