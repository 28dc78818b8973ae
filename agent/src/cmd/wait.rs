//! `podsignal wait`.

use podsignal_client::{Client, WaitMode};

use crate::cli::WaitArgs;
use crate::exit::{Exit, ExitCode};

pub async fn wait(client: &Client, args: WaitArgs) -> anyhow::Result<ExitCode> {
    let mode = if args.any {
        WaitMode::Any
    } else {
        WaitMode::All
    };
    let volume = match client {
        Client::Volume(v) => v,
        Client::Agent(agent) => {
            // Through the agent: readiness names only (it long-polls them).
            let names = args.plain_names().ok_or_else(|| {
                Exit::with(
                    ExitCode::USAGE,
                    "through --agent, wait takes readiness NAMEs only",
                )
            })?;
            if args.unready {
                agent.wait_unready(&names, mode, args.timeout).await?;
            } else {
                agent.wait_ready(&names, mode, args.timeout).await?;
            }
            return Ok(ExitCode::SUCCESS);
        }
    };
    if args.unready {
        let names = args
            .plain_names()
            .ok_or_else(|| Exit::with(ExitCode::USAGE, "--unready takes readiness NAMEs only"))?;
        volume.wait_unready(&names, mode, args.timeout).await?;
    } else {
        let timing = args.probe.timing(volume.rescan());
        crate::condition::wait_all(volume, &args.conditions, mode, args.timeout, timing).await?;
    }
    Ok(ExitCode::SUCCESS)
}
