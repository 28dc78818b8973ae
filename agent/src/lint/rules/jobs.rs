//! Sidecars in Pods that run to completion (Job, CronJob): they must exit, with code 0, once
//! the main container is done.

use podsignal_proto::Condition;

use super::on;
use crate::lint::Hit;
use crate::lint::pod::{Kind, Pod, is_podsignal_binary};

/// The regular containers of a Job's Pod that are sidecars: those `Pod::is_sidecar` finds,
/// and those another container waits for; when none is marked, every container but the main
/// one (`kubectl.kubernetes.io/default-container`, else the first).
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
    let marked: Vec<usize> = regular
        .iter()
        .copied()
        .filter(|&i| pod.is_sidecar(&pod.containers[i]) || waited_on(i))
        .collect();
    if !marked.is_empty() {
        return marked;
    }
    let main = regular
        .iter()
        .copied()
        .find(|&i| Some(&pod.containers[i].name) == pod.default_container.as_ref())
        .unwrap_or(regular[0]);
    regular.into_iter().filter(|&i| i != main).collect()
}

/// The name to write in `exit:NAME` for the main containers.
fn mains(pod: &Pod, sidecars: &[usize]) -> String {
    let names: Vec<String> = pod
        .containers
        .iter()
        .enumerate()
        .filter(|(i, c)| c.kind == Kind::Regular && !sidecars.contains(i))
        .map(|(_, c)| format!("exit:{}", c.run_name().unwrap_or(&c.name)))
        .collect();
    if names.is_empty() {
        "exit:MAIN".into()
    } else {
        names.join(",")
    }
}

/// Whether another container stops it by hand (`podsignal stop NAME`, `/quitquitquit`).
fn stopped_by_hand(pod: &Pod, index: usize) -> bool {
    let name = pod.containers[index]
        .run_name()
        .unwrap_or(&pod.containers[index].name)
        .to_string();
    pod.containers.iter().enumerate().any(|(i, c)| {
        if i == index {
            return false;
        }
        let text = c.text();
        let words: Vec<&str> = text.split_whitespace().collect();
        text.contains("/quitquitquit")
            || words
                .windows(3)
                .any(|w| is_podsignal_binary(w[0]) && w[1] == "stop" && w[2] == name)
    })
}

/// `job-sidecar-never-exits`.
pub fn never_exits(pod: &Pod) -> Vec<Hit> {
    let sidecars = job_sidecars(pod);
    sidecars
        .iter()
        .copied()
        .filter(|&i| {
            let c = &pod.containers[i];
            c.run.as_ref().is_none_or(|r| r.exit_with.is_empty()) && !stopped_by_hand(pod, i)
        })
        .map(|i| {
            let c = &pod.containers[i];
            on(
                i,
                c,
                format!(
                    "sidecar {:?} keeps running when the main container exits, so the {} never completes: run it as `podsignal run --name {} --exit-with {} --exit-code on-stop-zero -- ...` (or make it a native sidecar)",
                    c.name,
                    pod.workload.kind,
                    c.run_name().unwrap_or(&c.name),
                    mains(pod, &sidecars)
                ),
            )
        })
        .collect()
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
                && !run.remap_exit.iter().any(|r| r.starts_with("143:0"));
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
