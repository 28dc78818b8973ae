//! Sidecars in Pods that run to completion (Job, CronJob): they must exit, with code 0, once
//! the main container is done.

use podsignal_proto::Condition;

use super::on;
use crate::lint::Hit;
use crate::lint::pod::{Container, Kind, Pod};
use crate::lint::shell;

/// The regular containers of a Job's Pod that are sidecars: those `Pod::is_sidecar` finds,
/// those another container waits for, and, besides the main one
/// (`kubectl.kubernetes.io/default-container`, else the first unmarked), those with a
/// server's shape (containerPorts, a proxy's, exporter's or log shipper's name or image).
/// Two workers that both run to completion are no sidecars.
fn job_sidecars(pod: &Pod) -> Vec<usize> {
    if !pod.runs_to_completion() {
        return Vec::new();
    }
    let regular: Vec<usize> = pod
        .containers
        .iter()
        .enumerate()
        .filter(|(_, c)| c.kind == Kind::Regular)
        .map(|(i, _)| i)
        .collect();
    if regular.len() < 2 {
        return Vec::new();
    }
    let waited_on =
        |i: usize| {
            let names = pod.containers[i].publishes();
            regular.iter().any(|&w| {
                pod.containers[w].run.iter().flat_map(|r| &r.wait_for).any(
                    |c| matches!(c, Condition::Ready(n) if names.iter().any(|p| p == n.as_str())),
                )
            })
        };
    let marked = |i: usize| pod.is_sidecar(&pod.containers[i]) || waited_on(i);
    let main = regular
        .iter()
        .copied()
        .find(|&i| Some(&pod.containers[i].name) == pod.default_container.as_ref())
        .or_else(|| regular.iter().copied().find(|&i| !marked(i)));
    regular
        .iter()
        .copied()
        .filter(|&i| marked(i) || (Some(i) != main && pod.containers[i].looks_like_server()))
        .collect()
}

/// The `exit:NAME` conditions of the main containers, if every one runs `podsignal run
/// --name` (else an `exit:` would never fire).
fn mains(pod: &Pod, sidecars: &[usize]) -> Option<String> {
    let names: Option<Vec<String>> = pod
        .containers
        .iter()
        .enumerate()
        .filter(|(i, c)| c.kind == Kind::Regular && !sidecars.contains(i))
        .map(|(_, c)| c.run_name().map(|n| format!("exit:{n}")))
        .collect();
    names.filter(|n| !n.is_empty()).map(|n| n.join(","))
}

/// The ports a container's command calls to stop a sidecar: `/quitquitquit` and
/// `/shutdown` URLs (Istio, Envoy, cloud-sql-proxy, Linkerd), `pilot-agent request POST
/// quitquitquit` (Istio's Envoy admin, 15000), `linkerd-await --shutdown` (Linkerd's
/// admin, 4191).
fn quit_ports(c: &Container) -> Vec<u16> {
    let text = c.text();
    let mut ports = Vec::new();
    for endpoint in ["/quitquitquit", "/shutdown"] {
        for (at, _) in text.match_indices(endpoint) {
            // The host before the path: `http://127.0.0.1:15020`, `localhost:15020`.
            let word = text[..at].rsplit(char::is_whitespace).next().unwrap_or("");
            let (scheme, host) = match word.split_once("://") {
                Some((_, host)) => (true, host),
                None => (false, word),
            };
            let port = match host.rsplit_once(':') {
                Some((_, port)) => port.parse().ok(),
                None if scheme && !host.contains('/') => Some(80),
                None => None,
            };
            ports.extend(port);
        }
    }
    for command in shell::commands(&c.argv) {
        let program = shell::program(&command);
        let base = |w: &String| w.rsplit('/').next().unwrap_or(w).to_string();
        match program.first().map(base).as_deref() {
            Some("pilot-agent")
                if program.iter().any(|w| w == "request")
                    && program.iter().any(|w| w.contains("quitquitquit")) =>
            {
                ports.push(15000);
            }
            Some("linkerd-await") if program.iter().any(|w| w == "--shutdown" || w == "-S") => {
                ports.push(4191);
            }
            _ => {}
        }
    }
    ports
}

/// Whether another container stops it by hand: `podsignal stop NAME` (flags anywhere), or a
/// quit call to a port it serves.
fn stopped_by_hand(pod: &Pod, index: usize) -> bool {
    let target = &pod.containers[index];
    let name = target.run_name().unwrap_or(&target.name);
    let ports = target.stop_ports();
    pod.containers.iter().enumerate().any(|(i, c)| {
        i != index
            && (c
                .calls
                .iter()
                .any(|call| call.subcommand == "stop" && call.positional.iter().any(|n| n == name))
                || quit_ports(c).iter().any(|p| ports.contains(p)))
    })
}

/// `job-sidecar-never-exits`.
pub fn never_exits(pod: &Pod) -> Vec<Hit> {
    let sidecars = job_sidecars(pod);
    let mains = mains(pod, &sidecars);
    sidecars
        .iter()
        .copied()
        .filter(|&i| {
            let c = &pod.containers[i];
            c.run.as_ref().is_none_or(|r| r.exit_with.is_empty()) && !stopped_by_hand(pod, i)
        })
        .map(|i| {
            let c = &pod.containers[i];
            let kind = &pod.workload.kind;
            let fix = match (c.mesh(), &mains) {
                (Some(mesh), _) => mesh.stop.to_string(),
                (None, Some(mains)) => format!(
                    "run it as `podsignal run --name {} --exit-with {mains} --exit-code on-stop-zero -- ...` (or make it a native sidecar)",
                    c.run_name().unwrap_or(&c.name)
                ),
                (None, None) => format!(
                    "`podsignal inject --sidecar {}` wraps the main container in `podsignal run --name MAIN` and this one in `podsignal run --exit-with exit:MAIN --exit-code on-stop-zero` (or make it a native sidecar)",
                    c.name
                ),
            };
            on(
                i,
                c,
                format!(
                    "sidecar {:?} keeps running when the main container exits, so the {kind} never completes: {fix}",
                    c.name
                ),
            )
        })
        .collect()
}

/// Whether a `--remap-exit` maps 143 (SIGTERM) to 0.
fn remaps_sigterm_to_zero(remap: &str) -> bool {
    remap
        .split_once(':')
        .is_some_and(|(from, to)| from.trim() == "143" && to.trim() == "0")
}

/// `job-sidecar-exit-code`.
pub fn exit_code(pod: &Pod) -> Vec<Hit> {
    job_sidecars(pod)
        .into_iter()
        .filter_map(|i| {
            let c = &pod.containers[i];
            let run = c.run.as_ref()?;
            let fails = !run.exit_with.is_empty()
                && run.exit_code == "child"
                && !run.remap_exit.iter().any(|r| remaps_sigterm_to_zero(r));
            fails.then(|| {
                on(
                    i,
                    c,
                    "--exit-with stops this sidecar with SIGTERM and run exits with its code (143), which fails the Pod and the Job: add `--exit-code on-stop-zero`",
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_143_to_0_is_a_remap_to_zero() {
        assert!(remaps_sigterm_to_zero("143:0"));
        assert!(!remaps_sigterm_to_zero("143:0x"));
        assert!(!remaps_sigterm_to_zero("143:01"));
        assert!(!remaps_sigterm_to_zero("1:0"));
    }
}
