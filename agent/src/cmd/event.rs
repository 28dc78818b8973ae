//! `podsignal event publish` and `podsignal event watch`.

use std::io::Write;

use futures_util::StreamExt;
use podsignal_client::{Coordinator, Error as ClientError};

use crate::cli::{EventCommand, OnGap};
use crate::exit::{Exit, ExitCode};
use crate::signals::SignalStream;

pub async fn event<C: Coordinator>(
    c: &C,
    cmd: EventCommand,
    signals: Option<SignalStream>,
) -> anyhow::Result<ExitCode> {
    match cmd {
        EventCommand::Publish { kind, data } => {
            let event = c.publish(&kind, data).await?;
            println!("{}", serde_json::to_string(&event)?);
            Ok(ExitCode::SUCCESS)
        }
        EventCommand::Watch {
            since,
            kind,
            count,
            timeout,
            on_gap,
        } => {
            let mut signals = super::stream(signals)?;
            // Counted outside the watch, so that a timeout can say how many arrived.
            let printed = std::cell::Cell::new(0u64);
            let watch = async {
                let mut stream = c.watch_events(since).await?;
                let mut out = std::io::stdout().lock();
                if count == Some(0) {
                    return Ok(ExitCode::SUCCESS);
                }
                while let Some(item) = stream.next().await {
                    let line = match item {
                        Ok(event) if !kind.is_empty() && !kind.contains(&event.kind) => continue,
                        Ok(event) => serde_json::to_string(&event)?,
                        Err(ClientError::EventsRotated { wanted, available }) => {
                            let to = available.saturating_sub(1);
                            if on_gap == OnGap::Fail {
                                return Err(Exit::with(
                                    ExitCode::EVENTS_LOST,
                                    format!(
                                        "events {wanted} to {to} were lost: rotated away before this watcher read them (it was paused or too slow; --on-gap continue goes on after a marker line)"
                                    ),
                                ));
                            }
                            tracing::warn!(
                                "events {wanted} to {to} were lost: rotated away before this watcher read them"
                            );
                            serde_json::to_string(
                                &serde_json::json!({ "lost": { "from": wanted, "to": to } }),
                            )?
                        }
                        Err(e) => return Err(e.into()),
                    };
                    if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                        return Ok(ExitCode::SUCCESS); // the reader went away (e.g. `| head`)
                    }
                    if !line.starts_with("{\"lost\"") {
                        printed.set(printed.get() + 1);
                    }
                    if count.is_some_and(|c| printed.get() >= c) {
                        return Ok(ExitCode::SUCCESS);
                    }
                }
                Ok(ExitCode::SUCCESS)
            };
            let far = std::time::Duration::from_secs(86_400 * 365);
            tokio::select! {
                r = watch => r,
                _ = tokio::time::sleep(timeout.unwrap_or(far)) => {
                    timed_out(count, printed.get(), timeout, &c.describe())
                }
                _ = signals.termination() => Ok(ExitCode::SUCCESS),
            }
        }
    }
}

/// The end of `event watch --timeout`: without --count, watching until then is the whole job
/// (exit 0); with it, fewer than --count events is a timeout (124).
fn timed_out(
    count: Option<u64>,
    printed: u64,
    timeout: Option<std::time::Duration>,
    watching: &str,
) -> anyhow::Result<ExitCode> {
    let Some(count) = count else {
        return Ok(ExitCode::SUCCESS);
    };
    let after = podsignal_proto::format_duration(timeout.unwrap_or_default());
    Err(Exit::with(
        ExitCode::TIMEOUT,
        format!(
            "event watch: timed out after {after}: {printed} of --count {count} events arrived (watching {watching})"
        ),
    ))
}
