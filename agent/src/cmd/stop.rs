//! `podsignal stop NAME`: ask the container running `run --name NAME` to stop.

use podsignal_client::Coordinator;

use crate::cli::StopArgs;
use crate::exit::ExitCode;

pub async fn stop<C: Coordinator>(c: &C, args: StopArgs) -> anyhow::Result<ExitCode> {
    c.request_stop(&args.name, args.reason.as_deref()).await?;
    tracing::info!("asked {} to stop", args.name);
    if args.wait {
        let t = c.wait_exit(&args.name, None, args.timeout).await?;
        say!(
            "{}: {}",
            args.name,
            crate::cmd::status::terminal_safe(&t.reason)
        );
    }
    Ok(ExitCode::SUCCESS)
}
