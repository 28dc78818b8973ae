//! `podsignal stop NAME`: ask the container running `run --name NAME` to stop.

use podsignal_client::Volume;

use crate::cli::StopArgs;
use crate::exit::ExitCode;

pub async fn stop(volume: &Volume, args: StopArgs) -> anyhow::Result<ExitCode> {
    volume
        .request_stop(&args.name, args.reason.as_deref())
        .await?;
    tracing::info!("asked {} to stop", args.name);
    if args.wait {
        let t = volume.wait_exit(&args.name, None, args.timeout).await?;
        eprintln!("{}: {}", args.name, t.reason);
    }
    Ok(ExitCode::SUCCESS)
}
