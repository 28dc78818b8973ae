//! `podsignal wait`.

use std::time::Duration;

use podsignal_client::{Coordinator, WaitMode};

use crate::cli::WaitArgs;
use crate::condition::{self, Reminders, WaitPlan};
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
    let reminders = Some(Reminders::from_env());
    let timing = args.probe.timing(rescan)?;
    let waited = if args.unready {
        condition::wait_unready(c, &args.conditions, mode, args.timeout, timing, reminders).await
    } else {
        let plan = WaitPlan {
            mode,
            timeout: args.timeout,
            stable: args.stable,
            timing,
            reminders,
        };
        condition::wait_until(c, &args.conditions, &plan).await
    };
    condition::on_timeout(waited, args.on_timeout)?;
    Ok(ExitCode::SUCCESS)
}
