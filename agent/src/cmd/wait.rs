//! `podsignal wait`.

use podsignal_client::{Volume, WaitMode};

use crate::cli::WaitArgs;
use crate::exit::ExitCode;

pub async fn wait(volume: &Volume, args: WaitArgs) -> anyhow::Result<ExitCode> {
    let mode = if args.any {
        WaitMode::Any
    } else {
        WaitMode::All
    };
    if args.unready {
        volume.wait_unready(&args.names, mode, args.timeout).await?;
    } else {
        volume.wait_ready(&args.names, mode, args.timeout).await?;
    }
    Ok(ExitCode::SUCCESS)
}
