//! `podsignal reset`: a new generation of the shared directory.

use podsignal_client::{Coordinator, Volume};

use crate::cli::ResetArgs;
use crate::exit::ExitCode;

pub async fn reset(c: &Volume, args: ResetArgs) -> anyhow::Result<ExitCode> {
    let event = c.reset(args.reason.as_deref()).await?;
    // The event's data is what reset did (`GenerationEvent`, docs/protocol.md).
    let done = event.data.unwrap_or_default();
    if args.json {
        println!("{done}");
        return Ok(ExitCode::SUCCESS);
    }
    let count = |list: &serde_json::Value| list.as_array().map_or(0, Vec::len);
    let removed = &done["removed"];
    // Counts here; the names are in the event (and --json).
    tracing::info!(
        "generation {} started in {} (was {}, phase was {}): removed {} readiness records, {} tombstones, {} stop requests; carried over {} held readiness records whose holder lives",
        done["generation"],
        c.describe(),
        done["previous"],
        done["previous_phase"].as_str().unwrap_or_default(),
        count(&removed["ready"]),
        count(&removed["exits"]),
        count(&removed["stop"]),
        count(&done["carried"]),
    );
    println!("{}", done["generation"]);
    Ok(ExitCode::SUCCESS)
}
