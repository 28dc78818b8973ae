//! How often probes run: the intervals for local targets, and the backoff with jitter for
//! remote ones (`--tcp-interval`, `--local-interval`, `--backoff-min`, `--backoff-max`).

use std::time::Duration;

use podsignal_proto::Condition;

/// How often probes run.
#[derive(Debug, Clone, Copy)]
pub struct ProbeTiming {
    /// How often a local TCP port's listeners are looked up (netlink, or `/proc/net/tcp`).
    pub tcp_interval: Duration,
    /// The delay between attempts at a loopback target (HTTP, unix, TCP by connecting).
    pub local_interval: Duration,
    /// First delay between attempts at a remote target.
    pub backoff_min: Duration,
    /// Longest delay between attempts at a remote target.
    pub backoff_max: Duration,
    /// How often `file:` re-checks without an inotify event (the volume's `--rescan`).
    pub rescan: Duration,
}

impl Default for ProbeTiming {
    fn default() -> Self {
        ProbeTiming {
            tcp_interval: Duration::from_millis(5),
            local_interval: Duration::from_millis(10),
            backoff_min: Duration::from_millis(10),
            backoff_max: Duration::from_millis(250),
            rescan: Duration::from_secs(1),
        }
    }
}

impl crate::cli::ProbeArgs {
    /// The timing these options ask for; `file:` rescans as often as the volume does. A
    /// first delay longer than the longest is a usage error (exit 2), not quietly raised.
    pub fn timing(&self, rescan: Duration) -> anyhow::Result<ProbeTiming> {
        if self.backoff_min > self.backoff_max {
            return Err(crate::exit::usage(format!(
                "--backoff-min ({}) is longer than --backoff-max ({}): the first delay cannot exceed the longest",
                podsignal_proto::format_duration(self.backoff_min),
                podsignal_proto::format_duration(self.backoff_max)
            )));
        }
        Ok(ProbeTiming {
            tcp_interval: self.tcp_interval,
            local_interval: self.local_interval,
            backoff_min: self.backoff_min,
            backoff_max: self.backoff_max,
            rescan,
        })
    }
}

impl ProbeTiming {
    /// The delays between attempts at `condition`. A loopback target (127.0.0.0/8, `::1`,
    /// `localhost`, a unix socket) answers in well under a millisecond, so it
    /// is asked every `local_interval`; a remote one is backed off from. So is every protocol
    /// probe: a server that listens but is not ready logs each attempt it refuses.
    pub fn delays_for(&self, condition: &Condition) -> Backoff {
        let loopback = match condition {
            Condition::Tcp(t) => t.is_local(),
            Condition::Http(h) => podsignal_proto::is_loopback_host(&h.host),
            Condition::Unix(_) => true,
            _ => false,
        };
        if loopback {
            Backoff::fixed(self.local_interval)
        } else {
            Backoff::new(*self)
        }
    }
}

/// Exponential backoff with jitter: each delay is 1.5-2.5x the previous, capped; or, for a
/// loopback target, one fixed delay.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    /// Starts at `timing.backoff_min`.
    pub fn new(timing: ProbeTiming) -> Backoff {
        Backoff {
            next: timing.backoff_min,
            max: timing.backoff_max.max(timing.backoff_min),
        }
    }

    /// The same delay every time.
    pub fn fixed(delay: Duration) -> Backoff {
        Backoff {
            next: delay,
            max: delay,
        }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let now = self.next;
        let factor = 1.5 + (jitter() % 1000) as f64 / 1000.0;
        self.next = self.next.mul_f64(factor).min(self.max);
        now
    }
}

/// A random number (std's per-process hasher keys are random: no RNG crate needed).
fn jitter() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::Instant::now().elapsed().as_nanos());
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_the_cap() {
        let mut b = Backoff::new(ProbeTiming::default());
        assert_eq!(b.next_delay(), Duration::from_millis(10));
        let mut last = Duration::ZERO;
        for _ in 0..20 {
            last = b.next_delay();
            assert!(last <= Duration::from_millis(250));
        }
        assert_eq!(last, Duration::from_millis(250));
    }

    #[test]
    fn each_backoff_delay_is_one_and_a_half_to_two_and_a_half_times_the_last() {
        // What --backoff-min's help and docs/conditions.md promise.
        let timing = ProbeTiming {
            backoff_max: Duration::from_secs(3600),
            ..ProbeTiming::default()
        };
        for _ in 0..50 {
            let mut b = Backoff::new(timing);
            let mut last = b.next_delay();
            for _ in 0..10 {
                let next = b.next_delay();
                // In nanoseconds, allowing the one that `mul_f64` rounds away.
                let (l, n) = (last.as_nanos(), next.as_nanos());
                assert!(
                    2 * (n + 1) >= 3 * l && 2 * n <= 5 * l,
                    "{last:?} -> {next:?}"
                );
                last = next;
            }
        }
    }

    #[test]
    fn loopback_targets_are_asked_at_a_fixed_interval_remote_ones_backed_off_from() {
        let timing = ProbeTiming::default();
        let c = |s: &str| Condition::parse(s).unwrap();
        for local in [
            "http://127.0.0.1:9901/ready",
            "http://[::1]:80/",
            "http://localhost:4191/ready",
            "unix:/run/app.sock",
            "tcp:localhost:5432",
        ] {
            let mut d = timing.delays_for(&c(local));
            let delays: Vec<_> = (0..10).map(|_| d.next_delay()).collect();
            assert!(
                delays.iter().all(|d| *d == timing.local_interval),
                "{local}"
            );
        }
        for remote in [
            "http://db:8080/",
            "tcp:10.0.0.7:5432",
            "http://[fe80::1]:80/",
            // Protocol probes, even of a loopback server: each refused hello is logged.
            "postgres://127.0.0.1",
            "mysql://localhost",
        ] {
            let mut d = timing.delays_for(&c(remote));
            assert_eq!(d.next_delay(), timing.backoff_min, "{remote}");
            assert!(d.next_delay() > timing.backoff_min, "{remote}");
        }
    }
}
