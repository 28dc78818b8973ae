//! `podsignal reset`: a new generation of the shared directory.

use podsignal_client::{Coordinator, Volume};

use crate::cli::ResetArgs;
use crate::exit::ExitCode;

pub async fn reset(c: &Volume, args: ResetArgs) -> anyhow::Result<ExitCode> {
    let done = c.reset(args.reason.as_deref()).await?;
    if args.json {
        // Through a JSON value, the event's own encoding: no second serializer for it.
        println!("{}", serde_json::to_value(&done)?);
        return Ok(ExitCode::SUCCESS);
    }
    let names = |list: &[podsignal_client::Name]| {
        let all: Vec<&str> = list.iter().map(|n| n.as_str()).collect();
        if all.is_empty() {
            "none".to_owned()
        } else {
            all.join(", ")
        }
    };
    tracing::info!(
        "generation {} started in {} (was {}, phase was {}); removed readiness: {}; tombstones: {}; stop requests: {}; carried over (holder alive): {}{}",
        done.generation,
        c.describe(),
        done.previous,
        done.previous_phase,
        names(&done.removed.ready),
        names(&done.removed.exits),
        names(&done.removed.stop),
        names(&done.carried),
        if done.truncated { " (lists cut)" } else { "" },
    );
    println!("{}", done.generation);
    Ok(ExitCode::SUCCESS)
}
