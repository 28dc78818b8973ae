//! `podsignal ready` and `podsignal unready`.

use podsignal_client::Client;

use crate::cli::{ReadyArgs, UnreadyArgs};
use crate::exit::ExitCode;

pub async fn ready(volume: &Client, args: ReadyArgs) -> anyhow::Result<ExitCode> {
    if !args.hold {
        volume.set_ready(&args.name, args.reason.as_deref()).await?;
        return Ok(ExitCode::SUCCESS);
    }
    // Install the handlers before announcing readiness, so a signal that follows at once
    // retracts cleanly instead of killing us with the record in place.
    let signal = tokio::spawn(super::termination_signal());
    let guard = volume
        .hold_ready(&args.name, args.reason.as_deref())
        .await?;
    tracing::info!(
        "{} is ready, held by pid {}; SIGTERM or SIGINT retracts it",
        args.name,
        std::process::id()
    );
    let signo = tokio::select! {
        signo = signal => signo??,
        why = guard.lost() => anyhow::bail!("readiness {} is no longer held: {why}", args.name),
    };
    guard.retract(&format!("holder stopped by signal {signo}"))?;
    Ok(ExitCode::SUCCESS)
}

pub async fn unready(volume: &Client, args: UnreadyArgs) -> anyhow::Result<ExitCode> {
    volume
        .set_unready(&args.name, args.reason.as_deref())
        .await?;
    Ok(ExitCode::SUCCESS)
}
