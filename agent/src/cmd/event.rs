//! `podsignal event publish` and `podsignal event watch`.

use std::io::Write;

use futures_util::StreamExt;
use podsignal_client::{Client, Error as ClientError};

use crate::cli::EventCommand;
use crate::exit::{Exit, ExitCode};

pub async fn event(volume: &Client, cmd: EventCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        EventCommand::Publish { kind, data } => {
            let event = volume.publish(&kind, data).await?;
            println!("{}", serde_json::to_string(&event)?);
            Ok(ExitCode::SUCCESS)
        }
        EventCommand::Watch {
            since,
            kind,
            count,
            timeout,
        } => {
            let watch = async {
                let mut stream = volume.watch_events(since).await?;
                let mut printed = 0u64;
                let mut out = std::io::stdout().lock();
                if count == Some(0) {
                    return Ok(ExitCode::SUCCESS);
                }
                while let Some(item) = stream.next().await {
                    let event = match item {
                        Ok(e) => e,
                        Err(e @ ClientError::EventsRotated { .. }) => {
                            tracing::warn!("{e}");
                            continue;
                        }
                        Err(e) => return Err(e.into()),
                    };
                    if !kind.is_empty() && !kind.contains(&event.kind) {
                        continue;
                    }
                    let line = serde_json::to_string(&event)?;
                    if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                        return Ok(ExitCode::SUCCESS); // the reader went away (e.g. `| head`)
                    }
                    printed += 1;
                    if count.is_some_and(|c| printed >= c) {
                        return Ok(ExitCode::SUCCESS);
                    }
                }
                Ok(ExitCode::SUCCESS)
            };
            let far = std::time::Duration::from_secs(86_400 * 365);
            tokio::select! {
                r = watch => r,
                _ = tokio::time::sleep(timeout.unwrap_or(far)) => Err(Exit::with(ExitCode::TIMEOUT, "event watch: timed out before --count events arrived")),
                signo = super::termination_signal() => { signo?; Ok(ExitCode::SUCCESS) }
            }
        }
    }
}
