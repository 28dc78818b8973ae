//! When a wait reminds: `wait` and `run --wait-for` say at once what they wait for, then
//! repeat what is still missing after 5 s, 10 s more, 20 s more, 40 s more, and every 60 s
//! from then on, so that a container stuck on a dependency says so in `kubectl logs` without
//! filling them.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// For tests: the delay before the first reminder (a duration, `50ms`), instead of 5 s.
pub const REMIND_AFTER_ENV: &str = "PODSIGNAL_REMIND_AFTER";

/// The first reminder comes after this long.
const FIRST: Duration = Duration::from_secs(5);
/// Reminders never come further apart than this.
const LONGEST: Duration = Duration::from_secs(60);

/// The delays between reminders: each twice the last, up to a minute.
#[derive(Debug, Clone, Copy)]
pub struct Reminders {
    next: Duration,
}

impl Reminders {
    /// The first reminder after `first`.
    pub fn after(first: Duration) -> Reminders {
        Reminders {
            next: first.max(Duration::from_millis(1)),
        }
    }

    /// After 5 s, or after `PODSIGNAL_REMIND_AFTER` (for tests).
    pub fn from_env() -> Reminders {
        let first = std::env::var(REMIND_AFTER_ENV)
            .ok()
            .and_then(|v| podsignal_proto::parse_duration(&v).ok())
            .unwrap_or(FIRST);
        Reminders::after(first)
    }

    /// The delay before the next reminder.
    pub fn next_delay(&mut self) -> Duration {
        let now = self.next;
        self.next = (self.next * 2).min(LONGEST.max(now));
        now
    }
}

/// Awaits `work`. With `reminders`, logs `intro` first, then at each reminder how long it
/// has waited and what `missing` says is still missing (and why).
pub async fn while_waiting<T, M, F>(
    work: impl Future<Output = T>,
    intro: &str,
    reminders: Option<Reminders>,
    missing: M,
) -> T
where
    M: Fn() -> F,
    F: Future<Output = String>,
{
    let Some(mut reminders) = reminders else {
        return work.await;
    };
    tracing::info!("{intro}");
    let started = Instant::now();
    let remind = async {
        loop {
            tokio::time::sleep(reminders.next_delay()).await;
            let missing = missing().await;
            let waited = podsignal_proto::format_duration(rounded(started.elapsed()));
            tracing::info!("still waiting after {waited}: {missing}");
        }
    };
    tokio::select! {
        done = work => done,
        () = remind => unreachable!("reminders never end"),
    }
}

/// How long a wait has lasted, as a reminder says it: whole seconds from one second on.
fn rounded(elapsed: Duration) -> Duration {
    if elapsed >= Duration::from_secs(1) {
        Duration::from_secs(elapsed.as_secs())
    } else {
        Duration::from_millis(elapsed.as_millis() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reminders_double_from_five_seconds_up_to_a_minute() {
        let mut r = Reminders::after(FIRST);
        let delays: Vec<u64> = (0..7).map(|_| r.next_delay().as_secs()).collect();
        assert_eq!(delays, [5, 10, 20, 40, 60, 60, 60]);
    }

    #[test]
    fn a_first_delay_longer_than_a_minute_stays_as_it_is() {
        let mut r = Reminders::after(Duration::from_secs(90));
        assert_eq!(r.next_delay(), Duration::from_secs(90));
        assert_eq!(r.next_delay(), Duration::from_secs(90));
    }

    #[test]
    fn elapsed_time_is_said_in_whole_seconds() {
        assert_eq!(
            rounded(Duration::from_millis(15_004)),
            Duration::from_secs(15)
        );
        assert_eq!(
            rounded(Duration::from_micros(50_700)),
            Duration::from_millis(50)
        );
    }
}
