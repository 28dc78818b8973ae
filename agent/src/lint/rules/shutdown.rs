//! Shutdown: preStop sleeps as ordering or past the grace period; stop signals `run` does
//! not treat as a stop.

use super::on;
use crate::lint::Hit;
use crate::lint::pod::{Container, Pod};

/// How long the container's preStop hook sleeps: `sleep: {seconds}`, or the `sleep N` of
/// an exec hook (whole seconds).
fn prestop_sleep(c: &Container) -> Option<u64> {
    let hook = &c.value["lifecycle"]["preStop"];
    if let Some(s) = hook["sleep"]["seconds"].as_u64() {
        return Some(s);
    }
    let script: Vec<String> = hook["exec"]["command"]
        .as_array()?
        .iter()
        .filter_map(|w| w.as_str())
        .map(String::from)
        .collect();
    let script = script.join(" ").replace([';', '&', '|', '\n'], " ");
    let words: Vec<&str> = script.split_whitespace().collect();
    let total: u64 = words
        .windows(2)
        .filter(|w| w[0].rsplit('/').next() == Some("sleep"))
        .filter_map(|w| {
            let n = w[1].trim_end_matches('s');
            let whole = n.split('.').next().unwrap_or(n);
            whole.parse::<u64>().ok().map(|s| s.max(1))
        })
        .sum();
    (total > 0).then_some(total)
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
        let grace = c.run.as_ref().map_or(0, |r| r.grace.as_secs());
        if sleep + grace > period {
            hits.push(on(
                i,
                c,
                format!(
                    "preStop sleeps {sleep}s, then the container needs up to {grace}s (--grace) to stop: {}s > terminationGracePeriodSeconds {period}, and the kubelet's countdown starts before preStop, so SIGKILL cuts the shutdown short; drop the sleep (run --drain-delay is part of --grace) or raise the grace period",
                    sleep + grace
                ),
            ));
        } else if others {
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
            c.run.as_ref()?;
            let signal = c.value["lifecycle"]["stopSignal"].as_str()?;
            let stops = matches!(signal, "SIGTERM" | "SIGINT" | "TERM" | "INT");
            (!stops).then(|| {
                on(
                    i,
                    c,
                    format!(
                        "lifecycle.stopSignal {signal}: podsignal run stops (drain, --stop-after, --grace, tombstone) only on SIGTERM or SIGINT, and forwards {signal} to the command as is; remove stopSignal and set `run --stop-signal {signal}` to stop the command with it"
                    ),
                )
            })
        })
        .collect()
}
