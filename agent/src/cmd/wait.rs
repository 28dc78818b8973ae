//! `podsignal wait`.

use std::time::Duration;

use podsignal_client::{Coordinator, WaitMode};

use crate::cli::WaitArgs;
use crate::exit::ExitCode;

pub async fn wait<C: Coordinator>(
    c: &C,
    args: WaitArgs,
    rescan: Duration,
) -> anyhow::Result<ExitCode> {
    let mode = if args.any {
        WaitMode::Any
    } else {
        WaitMode::All
    };
    if args.unready {
        let names = args
            .plain_names()
            .ok_or_else(|| crate::exit::usage("--unready takes readiness NAMEs only"))?;
        c.wait_unready(&names, mode, args.timeout).await?;
    } else {
        let timing = args.probe.timing(rescan);
        crate::condition::wait_all(c, &args.conditions, mode, args.timeout, timing).await?;
    }
    Ok(ExitCode::SUCCESS)
}
