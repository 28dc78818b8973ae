//! `podsignal phase set|get|wait`.

use podsignal_client::Client;

use crate::cli::PhaseCommand;
use crate::exit::ExitCode;

pub async fn phase(volume: &Client, cmd: PhaseCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PhaseCommand::Set {
            phase,
            reason,
            force,
        } => {
            volume.set_phase(phase, reason.as_deref(), force).await?;
        }
        PhaseCommand::Get { json } => {
            let record = volume.phase().await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string(
                        &serde_json::json!({ "phase": record.as_ref().map_or(podsignal_client::Phase::Starting, |r| r.phase), "record": record })
                    )?
                );
            } else {
                println!(
                    "{}",
                    record.map_or(podsignal_client::Phase::Starting, |r| r.phase)
                );
            }
        }
        PhaseCommand::Wait { phase, timeout } => {
            let reached = volume.wait_phase(phase, timeout).await?;
            println!("{reached}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
