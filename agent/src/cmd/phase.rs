//! `podsignal phase set|get|wait`.

use podsignal_client::{Coordinator, Phase};

use crate::cli::PhaseCommand;
use crate::exit::ExitCode;

pub async fn phase<C: Coordinator>(c: &C, cmd: PhaseCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PhaseCommand::Set {
            phase,
            reason,
            force,
        } => {
            c.set_phase(phase, reason.as_deref(), force).await?;
        }
        PhaseCommand::Get { json } => {
            let record = c.phase().await?;
            let phase = record.as_ref().map_or(Phase::Starting, |r| r.phase);
            if json {
                println!(
                    "{}",
                    serde_json::to_string(
                        &serde_json::json!({ "phase": phase, "record": record })
                    )?
                );
            } else {
                println!("{phase}");
            }
        }
        PhaseCommand::Wait { phase, timeout } => {
            let reached = c.wait_phase(phase, timeout).await?;
            println!("{reached}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
