//! `podsignal phase set|get|wait`.

use podsignal_client::{Coordinator, Phase};

use crate::cli::PhaseCommand;
use crate::condition::{self, Reminders};
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
            let intro = format!("waiting for phase {phase} (or later)");
            let now = || async {
                match c.phase().await {
                    Ok(r) => format!(
                        "phase is {}",
                        r.as_ref().map_or(Phase::Starting, |r| r.phase)
                    ),
                    Err(e) => podsignal_client::error_chain(&e),
                }
            };
            let work = c.wait_phase(phase, timeout);
            let reached =
                condition::while_waiting(work, &intro, Some(Reminders::from_env()), now).await?;
            println!("{reached}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
