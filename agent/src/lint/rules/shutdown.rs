//! Shutdown: preStop sleeps as ordering or past the grace period; stop signals `run` does
//! not treat as a stop.

use super::on;
use crate::lint::Hit;
use crate::lint::pod::{Container, Pod};
use crate::lint::shell;

/// A preStop sleep this short (seconds) in a container nothing depends on is the
/// endpoint-propagation sleep Kubernetes recommends (`preStop: {sleep: {seconds: 5}}`), not
/// ordering between containers.
const ENDPOINT_SLEEP: u64 = 10;

/// How long the container's preStop hook sleeps, when that is all it does:
/// `sleep: {seconds}`, or an exec hook of bare `sleep N` commands (`[sleep, "20"]`,
/// `[sh, -c, "sleep 20"]`, `1m` allowed; their sum, saturating). A hook that does anything
/// else (a drain loop with `sleep 1` inside) waits for a fact, not for time.
fn prestop_sleep(c: &Container) -> Option<u64> {
    let hook = &c.value["lifecycle"]["preStop"];
    if let Some(s) = hook["sleep"]["seconds"].as_u64() {
        return Some(s);
    }
    let argv: Vec<String> = hook["exec"]["command"]
        .as_array()?
        .iter()
        .filter_map(|w| w.as_str())
        .map(String::from)
        .collect();
    let commands = shell::commands(&argv);
    let programs: Vec<&[String]> = commands
        .iter()
        .map(|c| shell::program(c))
        .filter(|p| !p.is_empty())
        .collect();
    let shell_only = |p: &&[String]| {
        p.len() <= 2
            && p.first()
                .is_some_and(|w| w.rsplit('/').next().is_some_and(|b| b.ends_with("sh")))
    };
    let mut total: Option<u64> = None;
    for program in programs.iter().filter(|p| !shell_only(p)) {
        let seconds = match program {
            [sleep, n] if sleep.rsplit('/').next() == Some("sleep") => shell::sleep_seconds(n)?,
            _ => return None,
        };
        total = Some(total.unwrap_or(0).saturating_add(seconds));
    }
    total.filter(|s| *s > 0)
}

/// `prestop-sleep-ordering`.
pub fn prestop_sleep_ordering(pod: &Pod) -> Vec<Hit> {
    let others = pod.long_running().count() > 1;
    let period = pod.grace_period();
    let mut hits = Vec::new();
    for (i, c) in pod.long_running() {
        let Some(sleep) = prestop_sleep(c) else {
            continue;
        };
        let grace = c.run.as_ref().map(|r| r.grace.as_secs());
        let total = sleep.saturating_add(grace.unwrap_or(0));
        let orders = sleep > ENDPOINT_SLEEP || pod.is_sidecar(c) || c.looks_like_sidecar();
        if total > period {
            let stop = match grace {
                Some(g) => {
                    format!(", then the container needs up to {g}s (--grace) to stop: {total}s")
                }
                None => String::new(),
            };
            hits.push(on(
                i,
                c,
                format!(
                    "preStop sleeps {sleep}s{stop} > terminationGracePeriodSeconds {period}, and the kubelet's countdown starts before preStop, so SIGKILL cuts the shutdown short; drop the sleep (run --drain-delay is part of --grace) or raise the grace period"
                ),
            ));
        } else if others && orders {
            hits.push(on(
                i,
                c,
                format!(
                    "a {sleep}s preStop sleep orders the shutdown by time, not by fact: to outlive the app use `podsignal run --stop-after exit:APP`; to let endpoints update use `run --drain --drain-delay`"
                ),
            ));
        }
    }
    hits
}

/// `stop-signal-not-term`.
pub fn stop_signal(pod: &Pod) -> Vec<Hit> {
    pod.containers
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let run = c.run.as_ref()?;
            let signal = c.value["lifecycle"]["stopSignal"].as_str()?;
            let stops = crate::signals::parse(signal).is_ok_and(|s| run.stop_on.contains(&s));
            (!stops).then(|| {
                let short = signal.trim_start_matches("SIG");
                on(
                    i,
                    c,
                    format!(
                        "lifecycle.stopSignal {signal}: podsignal run stops (drain, --stop-after, --grace, tombstone) only on its --stop-on signals (SIGTERM, SIGINT by default), and forwards {signal} to the command as is; add `run --stop-on {short},TERM,INT` (or PODSIGNAL_STOP_ON)"
                    ),
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sleep_of(hook: serde_json::Value) -> Option<u64> {
        let value = json!({"name": "c", "lifecycle": {"preStop": hook}});
        let c = Container::for_test(&value);
        prestop_sleep(&c)
    }

    #[test]
    fn only_bare_sleeps_are_sleeps_and_none_overflows() {
        assert_eq!(sleep_of(json!({"sleep": {"seconds": 5}})), Some(5));
        assert_eq!(
            sleep_of(json!({"exec": {"command": ["/bin/sleep", "1m"]}})),
            Some(60)
        );
        assert_eq!(
            sleep_of(json!({"exec": {"command": ["sh", "-c", "sleep 5 && sleep 10"]}})),
            Some(15)
        );
        assert_eq!(
            sleep_of(
                json!({"exec": {"command": ["sh", "-c", "sleep 18446744073709551615; sleep 1"]}})
            ),
            Some(u64::MAX)
        );
        assert_eq!(
            sleep_of(
                json!({"exec": {"command": ["/bin/sh", "-c", "nginx -s quit; while pgrep -x nginx; do sleep 1; done"]}})
            ),
            None
        );
        assert_eq!(
            sleep_of(json!({"exec": {"command": ["sh", "-c", "sleep $((20))"]}})),
            None
        );
    }
}
