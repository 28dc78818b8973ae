//! `podsignal wait`.

use std::time::Duration;

use podsignal_client::{Coordinator, WaitMode};
use podsignal_proto::Name;

use crate::cli::WaitArgs;
use crate::condition::{self, Reminders};
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
    if args.unready {
        let names = args
            .plain_names()
            .ok_or_else(|| crate::exit::usage("--unready takes readiness NAMEs only"))?;
        let list = names.iter().map(Name::as_str).collect::<Vec<_>>();
        let intro = format!(
            "waiting for {} to be unready{}",
            list.join(", "),
            condition::read_from(c, &args.conditions)
        );
        let work = c.wait_unready(&names, mode, args.timeout);
        let missing = || still_ready(c, &names, &args.conditions);
        condition::while_waiting(work, &intro, reminders, missing).await?;
    } else {
        let timing = args.probe.timing(rescan);
        condition::wait_all(c, &args.conditions, mode, args.timeout, timing, reminders).await?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The names still ready, and why: "web: still ready: serving (read from /run/podsignal)".
async fn still_ready<C: Coordinator>(
    c: &C,
    names: &[Name],
    conditions: &[podsignal_proto::Condition],
) -> String {
    let mut ready = Vec::new();
    for n in names {
        match c.readiness(n).await {
            Ok(r) if r.ready => ready.push(format!("{n}: still ready: {}", r.why)),
            Ok(_) => {}
            Err(e) => ready.push(format!("{n}: {}", podsignal_client::error_chain(&e))),
        }
    }
    format!(
        "{}{}",
        ready.join("; "),
        condition::read_from(c, conditions)
    )
}
