//! Probes: readiness from touch files with no liveness; HTTP probes the kubelet sends to a
//! loopback-only agent.

use podsignal_proto::{Condition, ReadyProbe};
use serde_json::Value;

use super::on;
use crate::lint::Hit;
use crate::lint::pod::{Container, Pod};

/// The probes a container may have.
const PROBES: [&str; 3] = ["startupProbe", "readinessProbe", "livenessProbe"];

/// How the container's readiness comes from a file, if it does.
fn file_readiness(c: &Container) -> Option<String> {
    if let Some(Some(ReadyProbe::Check(Condition::File(path)))) =
        c.run.as_ref().map(|r| &r.ready_when)
    {
        return Some(format!("--ready-when file:{path}"));
    }
    let command: Vec<&str> = c.value["readinessProbe"]["exec"]["command"]
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let script = match command.as_slice() {
        [shell, "-c", script, ..] if shell.ends_with("sh") => script.to_string(),
        words => words.join(" "),
    };
    let words: Vec<&str> = script.split_whitespace().collect();
    let first = words.first()?.rsplit('/').next()?;
    let tests_a_file = match first {
        "test" | "[" => words
            .get(1)
            .is_some_and(|f| matches!(*f, "-f" | "-e" | "-s")),
        "cat" | "ls" | "stat" => true,
        _ => false,
    };
    tests_a_file.then(|| format!("a readinessProbe `{}`", words.join(" ")))
}

/// `touch-file-readiness`.
pub fn touch_file(pod: &Pod) -> Vec<Hit> {
    pod.containers
        .iter()
        .enumerate()
        .filter(|(_, c)| c.value["livenessProbe"].is_null())
        .filter_map(|(i, c)| {
            let how = file_readiness(c)?;
            Some(on(
                i,
                c,
                format!(
                    "readiness comes from a file ({how}) and there is no livenessProbe: a file stays when its writer hangs, so a stuck container looks ready forever; hold readiness on a live check (`run --ready-when tcp:PORT`/`http://...`, `podsignal ready --hold`) or add a livenessProbe"
                ),
            ))
        })
        .collect()
}

/// The number of a probe's port (a number, or the name of one of the container's ports).
fn port_number(c: &Container, port: &Value) -> Option<u64> {
    match port {
        Value::Number(n) => n.as_u64(),
        Value::String(name) => c.value["ports"]
            .as_array()?
            .iter()
            .find(|p| p["name"] == *name)?["containerPort"]
            .as_u64(),
        _ => None,
    }
}

/// `httpget-probe-on-agent`: only ports a `podsignal agent` of this Pod listens on, on
/// loopback (no `--allow-remote`).
pub fn agent_probe(pod: &Pod) -> Vec<Hit> {
    let agent_ports: Vec<u16> = pod
        .containers
        .iter()
        .filter_map(|c| c.agent_port())
        .collect();
    let mut hits = Vec::new();
    for (i, c) in pod.containers.iter().enumerate() {
        for probe in PROBES {
            let http = &c.value[probe]["httpGet"];
            let Some(port) = port_number(c, &http["port"]) else {
                continue;
            };
            if !agent_ports.iter().any(|p| u64::from(*p) == port) {
                continue;
            }
            let path = http["path"].as_str().unwrap_or("/readyz");
            hits.push(on(
                i,
                c,
                format!(
                    "{probe}.httpGet port {port} is the podsignal agent's, which listens on loopback only, and the kubelet probes the Pod IP: the probe always fails; use `exec: {{command: [podsignal, wait, http://127.0.0.1:{port}{path}, --timeout=1s]}}` (or `[podsignal, wait, NAME, --timeout=1s]`)"
                ),
            ));
        }
    }
    hits
}
