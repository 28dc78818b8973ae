//! `--stable DUR`: once the conditions hold, they must go on holding for DUR in a row; one
//! that stops holding in the window (a dependency that went unready, or crashed and
//! restarted) starts the wait over. Readiness records are watched by inotify, as any wait on
//! them (a holder's death is seen at once); `exit:`, `phase:` and `file:` are read again
//! every `--rescan`; probes are sent again at their usual interval.

use std::sync::Mutex;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use podsignal_client::WaitMode;
use podsignal_proto::{Condition, format_duration};
use tokio::time::Instant;

use super::{ProbeTiming, Records, Why, check_once};

/// Resolves when one of `conditions` stops holding: which one, and why.
pub async fn lapse(
    volume: &dyn Records,
    conditions: &[&Condition],
    timing: ProbeTiming,
) -> anyhow::Result<(String, String)> {
    let mut watches: FuturesUnordered<BoxFuture<'_, anyhow::Result<(String, String)>>> = conditions
        .iter()
        .map(|c| Box::pin(lapse_of(volume, c, timing)) as BoxFuture<'_, _>)
        .collect();
    match watches.next().await {
        Some(lapsed) => lapsed,
        None => std::future::pending().await,
    }
}

async fn lapse_of(
    volume: &dyn Records,
    condition: &Condition,
    timing: ProbeTiming,
) -> anyhow::Result<(String, String)> {
    let why = match condition {
        Condition::Ready(name) => {
            volume
                .unready(std::slice::from_ref(name), WaitMode::All)
                .await?;
            volume.why_not(condition, &Why::default()).await
        }
        Condition::Exit { .. } | Condition::Phase(_) | Condition::File(_) => loop {
            tokio::time::sleep(timing.rescan).await;
            if !volume.holds_now(condition).await {
                break match condition {
                    Condition::File(_) => "no longer exists".to_owned(),
                    _ => volume.why_not(condition, &Why::default()).await,
                };
            }
        },
        probe => {
            let mut delays = timing.delays_for(probe);
            loop {
                tokio::time::sleep(delays.next_delay()).await;
                if let Err(why) = check_once(probe).await {
                    break why;
                }
            }
        }
    };
    Ok((condition.to_string(), why))
}

/// The current stability window, for reminders and the timeout message.
#[derive(Debug, Default)]
pub struct Window(Mutex<WindowState>);

#[derive(Debug, Default)]
struct WindowState {
    opened: Option<Instant>,
    lapses: u32,
    last: Option<String>,
}

impl Window {
    /// Everything holds: the window starts now.
    pub fn open(&self) {
        if let Ok(mut w) = self.0.lock() {
            w.opened = Some(Instant::now());
        }
    }

    /// Something stopped holding (`why`): returns how long the window lasted.
    pub fn close(&self, why: String) -> Duration {
        let Ok(mut w) = self.0.lock() else {
            return Duration::ZERO;
        };
        w.lapses += 1;
        w.last = Some(why);
        w.opened.take().map_or(Duration::ZERO, |t| t.elapsed())
    }

    /// "holding for 2s of --stable 10s (1 lapse, the last: db: unready: restarting)".
    pub fn describe(&self, stable: Duration) -> String {
        let Ok(w) = self.0.lock() else {
            return String::new();
        };
        let held = w.opened.map_or(Duration::ZERO, |t| t.elapsed());
        let mut said = format!(
            "holding for {} of --stable {}",
            format_duration(held),
            format_duration(stable)
        );
        if let Some(last) = &w.last {
            let s = if w.lapses == 1 { "" } else { "s" };
            said.push_str(&format!(" ({} lapse{s}, the last: {last})", w.lapses));
        }
        said
    }
}
