//! `podsignal stop NAME`: ask the container running `run --name NAME` to stop.

use podsignal_client::Coordinator;

use crate::cli::StopArgs;
use crate::condition::{self, Reminders};
use crate::exit::ExitCode;

pub async fn stop<C: Coordinator>(c: &C, args: StopArgs) -> anyhow::Result<ExitCode> {
    c.request_stop(&args.name, args.reason.as_deref()).await?;
    tracing::info!("asked {} to stop", args.name);
    if args.wait {
        let intro = format!("waiting for {} to exit", args.name);
        let missing = || async { format!("{} has not exited", args.name) };
        let work = c.wait_exit(&args.name, None, args.timeout);
        let t =
            condition::while_waiting(work, &intro, Some(Reminders::from_env()), missing).await?;
        say!(
            "{}: {}",
            args.name,
            crate::cmd::status::terminal_safe(&t.reason)
        );
    }
    Ok(ExitCode::SUCCESS)
}
