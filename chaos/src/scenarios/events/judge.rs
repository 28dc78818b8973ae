//! The verdict of the `events` scenario: the publishes (dense, unique `seq`), the log left on
//! disk, and what each watcher saw (every event once, in order, as published, or an explicit
//! loss report naming exactly the gap; a watcher paused past rotation must report its loss).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::pauses::{self, Pauses};
use super::publishers::Via;
use super::watchers::{Log, Seen};
use super::{CliWatcher, Run, WATCHERS};
use crate::harness::Report;

/// What one watcher saw, checked.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Events seen.
    pub events: u64,
    /// Loss reports.
    pub losses: u64,
    /// Events reported lost.
    pub lost_events: u64,
    /// The loss reports `(from, to, when)`.
    pub lost_ranges: Vec<(u64, u64, Instant)>,
    /// The position reached: the last `seq` seen or reported lost.
    pub last: u64,
    /// What broke, at most a few lines, then a count.
    pub violations: Vec<String>,
}

/// Checks `seen` against `truth` (`seq` -> hash, of every event published): every event
/// once, in order, `seq` by `seq`, except across a loss report that names exactly the gap
/// (from the event after the last one seen to the one before the next); each event byte for
/// byte as its publisher got it back.
pub fn check(who: &str, seen: &[Seen], truth: &HashMap<u64, u64>) -> Verdict {
    let mut v = Verdict::default();
    let mut broken = Vec::new();
    for item in seen {
        match *item {
            Seen::Event(seq, h) => {
                v.events += 1;
                if seq != v.last + 1 {
                    broken.push(format!("event {seq} after {} with no loss report", v.last));
                }
                match truth.get(&seq) {
                    Some(t) if *t == h => {}
                    Some(_) => broken.push(format!("event {seq} differs from what was published")),
                    None => broken.push(format!("event {seq} was never published")),
                }
                v.last = v.last.max(seq);
            }
            Seen::Lost(from, to, at) => {
                v.losses += 1;
                v.lost_ranges.push((from, to, at));
                if from != v.last + 1 || to < from {
                    broken.push(format!("loss {from}-{to} reported at position {}", v.last));
                }
                v.lost_events += (to + 1).saturating_sub(from);
                v.last = v.last.max(to);
            }
            Seen::Odd(ref what) => broken.push(what.clone()),
        }
    }
    let n = broken.len();
    v.violations = broken
        .into_iter()
        .take(5)
        .map(|b| format!("{who}: {b}"))
        .collect();
    if n > 5 {
        v.violations.push(format!("{who}: ... and {} more", n - 5));
    }
    v
}

/// Checks and counts everything: the publishes, the log on disk, each watcher (`logs` in the
/// order of [`WATCHERS`], the CLI ones first).
pub fn judge(
    run: &Run,
    clis: &[CliWatcher],
    logs: &[Log],
    pauses: &mut Pauses,
    report: &mut Report,
) {
    let truth = run.truth.lock().map(|t| t.clone()).unwrap_or_default();
    // The segments left are still there now, after every loss report.
    let _ = pauses.sample(&run.dir.join("events"));
    let last = truth.keys().max().copied().unwrap_or(0);
    judge_publishes(run, &truth, pauses, report);
    let disk = pauses::check_disk(&run.dir, &truth);
    report.count("segments kept", disk.segments);
    for v in disk.violations {
        report.violation(v);
    }
    report.count("pauses past rotation", pauses.forced().count());
    for (i, (name, log)) in WATCHERS.iter().zip(logs).enumerate() {
        judge_watcher(i, name, log, clis.get(i), (&truth, last), pauses, report);
    }
}

/// Watcher `i`: what it saw (see [`check`]), its losses (each covering a pause past rotation,
/// each ending where a segment starts), how it ended.
fn judge_watcher(
    i: usize,
    name: &str,
    log: &Log,
    cli: Option<&CliWatcher>,
    (truth, last): (&HashMap<u64, u64>, u64),
    pauses: &Pauses,
    report: &mut Report,
) {
    let v = check(name, &log.seen, truth);
    match cli {
        Some(c) => judge_cli(
            c,
            &v,
            pauses.forced().any(|p| p.paused.contains(&i)),
            report,
        ),
        None => count_requests(name, log, report),
    }
    if !cli.is_some_and(|c| c.on_gap_fail) {
        judge_pauses(name, i, &v, pauses, report);
    }
    for loss in &v.lost_ranges {
        judge_loss(name, *loss, pauses, report);
    }
    let mut what = format!("{} seen", v.events);
    if v.losses > 0 {
        what += &format!(" + {} lost in {} reports", v.lost_events, v.losses);
    }
    report.count(name, what);
    let failed = cli.is_some_and(|c| c.on_gap_fail && c.code() == Some(65));
    report.check(v.last >= last || failed, || {
        format!("{name}: stopped at event {} of {last}", v.last)
    });
    v.violations.into_iter().for_each(|m| report.violation(m));
}

/// A loss report must name events that were gone: rotation deletes whole segments, so what
/// follows a loss starts a segment, and the segment that held the first event lost was no
/// longer on disk when the watcher got the report.
fn judge_loss(
    name: &str,
    (from, to, at): (u64, u64, Instant),
    pauses: &Pauses,
    report: &mut Report,
) {
    report.check(pauses.segments.contains_key(&(to + 1)), || {
        format!(
            "{name}: loss {from}-{to} reported, but no segment starts at {}",
            to + 1
        )
    });
    if let Some((first, seen)) = pauses.segments.range(..=from).next_back() {
        report.check(*seen < at, || {
            format!(
                "{name}: loss {from}-{to} reported, yet segment {first} holding event {from} was still on disk {:?} later",
                seen.duration_since(at)
            )
        });
    }
}

/// How many requests (long-poll) or connections (SSE) an HTTP watcher made.
fn count_requests(name: &str, log: &Log, report: &mut Report) {
    let what = if name == "long-poll" {
        "requests"
    } else {
        "connections"
    };
    let failed = if log.errors > 0 {
        format!(" ({} failed)", log.errors)
    } else {
        String::new()
    };
    report.count(
        &format!("{name} {what}"),
        format!("{}{failed}", log.requests),
    );
}

/// The publishes: counted; every one succeeded with a `seq` of its own, together dense.
fn judge_publishes(run: &Run, truth: &HashMap<u64, u64>, pauses: &Pauses, report: &mut Report) {
    let failures = run.failures.lock().map(|f| f.clone()).unwrap_or_default();
    let last = truth.keys().max().copied().unwrap_or(0);
    let p = |v: Via| run.published[v as usize].load(Ordering::Relaxed);
    report.count("events published", last);
    report.count(
        "by cli/agent-cli/http",
        format!("{}/{}/{}", p(Via::Cli), p(Via::AgentCli), p(Via::Http)),
    );
    let mib = run.bytes.load(Ordering::Relaxed) as f64 / (1024.0 * 1024.0);
    report.count("MiB", format!("{mib:.1}"));
    report.count("segments created", pauses.segments.len());
    for f in failures.iter().take(5) {
        report.violation(f.clone());
    }
    if failures.len() > 5 {
        report.violation(format!(
            "... and {} more failed publishes",
            failures.len() - 5
        ));
    }
    let missing = (1..=last).filter(|s| !truth.contains_key(s)).count();
    report.check(missing == 0 || !failures.is_empty(), || {
        format!("{missing} seq numbers up to {last} were never given to a publish")
    });
}

/// What a CLI watcher must have done beyond the order of its lines: exited as documented
/// (0 on SIGTERM; under `--on-gap fail`, 65 with the loss on stderr if it lost events, as it
/// must have if it was paused past rotation).
fn judge_cli(c: &CliWatcher, v: &Verdict, forced: bool, report: &mut Report) {
    let status = c.code();
    let stderr = std::fs::read_to_string(&c.err).unwrap_or_default();
    if !c.on_gap_fail {
        report.check(status == Some(0), || {
            format!(
                "{}: exited {status:?} on SIGTERM, not 0: {stderr:.300}",
                c.name
            )
        });
        return;
    }
    let reported = status == Some(65) && stderr.contains("lost");
    report.check(reported || (!forced && status == Some(0)), || {
        let why = if forced {
            "65 (paused past rotation)"
        } else {
            "0 on SIGTERM or 65"
        };
        format!(
            "{}: exited {status:?}, not {why} with the loss on stderr: {stderr:.300}",
            c.name
        )
    });
    report.check(v.losses == 0, || {
        format!("{}: printed a loss marker under --on-gap fail", c.name)
    });
}

/// Each pause past rotation of watcher `i` must show in a loss report that covers what
/// rotation deleted meanwhile.
fn judge_pauses(name: &str, i: usize, v: &Verdict, pauses: &Pauses, report: &mut Report) {
    for p in pauses.forced().filter(|p| p.paused.contains(&i)) {
        let gone = p.oldest_at_resume.unwrap_or(0).saturating_sub(1);
        let covered = v
            .lost_ranges
            .iter()
            .any(|(from, to, _)| *from <= p.next_segment && *to >= gone);
        report.check(covered, || {
            format!(
                "{name}: paused at event {} until events {}..={gone} were rotated away, yet no loss report covers them (reports: {:?})",
                p.last_before, p.next_segment, v.lost_ranges
            )
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn truth(n: u64) -> HashMap<u64, u64> {
        (1..=n).map(|s| (s, s * 10)).collect()
    }

    fn ev(seq: u64) -> Seen {
        Seen::Event(seq, seq * 10)
    }

    #[test]
    fn every_event_once_in_order_holds() {
        let v = check("w", &[ev(1), ev(2), ev(3)], &truth(3));
        assert!(v.violations.is_empty(), "{:?}", v.violations);
        assert_eq!((v.events, v.last), (3, 3));
    }

    #[test]
    fn a_loss_naming_the_gap_exactly_holds() {
        let seen = [ev(1), Seen::Lost(2, 4, Instant::now()), ev(5)];
        let v = check("w", &seen, &truth(5));
        assert!(v.violations.is_empty(), "{:?}", v.violations);
        assert_eq!((v.losses, v.lost_events), (1, 3));
    }

    #[test]
    fn silent_gaps_duplicates_wrong_losses_and_changed_events_break() {
        let t = truth(6);
        assert_eq!(check("w", &[ev(1), ev(3)], &t).violations.len(), 1);
        assert_eq!(check("w", &[ev(1), ev(2), ev(2)], &t).violations.len(), 1);
        assert_eq!(check("w", &[ev(2), ev(1)], &t).violations.len(), 2);
        let late = [ev(1), Seen::Lost(3, 4, Instant::now()), ev(5)];
        assert_eq!(check("w", &late, &t).violations.len(), 1);
        let short = [ev(1), Seen::Lost(2, 3, Instant::now()), ev(5)];
        assert_eq!(check("w", &short, &t).violations.len(), 1);
        assert_eq!(check("w", &[Seen::Event(1, 99)], &t).violations.len(), 1);
        assert_eq!(check("w", &[ev(1), ev(2), ev(7)], &t).violations.len(), 2);
    }
}
