//! What `inject` will do to one pod template: which containers it wraps, in which role, with
//! which `podsignal run` flags. Pure: reads the template, changes nothing.

use std::collections::BTreeMap;

use serde_json::Value;

use super::Options;
use super::settings::{self, Key, Setting, Told};
use crate::manifest::Workload;

/// A container's part in the Pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Does the Pod's work; waits for the sidecars.
    Main,
    /// Serves the main containers: ready before they start, stops after they exit.
    Sidecar,
}

/// One container to wrap.
#[derive(Debug, Clone)]
pub struct Wrap {
    /// The container's name.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// A regular container to move to `initContainers` with `restartPolicy: Always`.
    pub make_native: bool,
    /// The `podsignal run` flags, before `--`.
    pub flags: Vec<String>,
    /// The entrypoint to run when the container has no `command`.
    pub entrypoint: Option<Vec<String>>,
}

/// The whole plan for one template.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The installer image.
    pub image: String,
    /// The containers to wrap, in the Pod's order.
    pub wraps: Vec<Wrap>,
}

/// A container as the plan sees it.
struct Found<'a> {
    name: &'a str,
    value: &'a Value,
    /// In `initContainers` with `restartPolicy: Always` already.
    native: bool,
}

/// The plan for `template`, told by its annotations and `opts`; `Err` is one line naming the
/// container or annotation at fault.
pub fn plan(
    template: &Value,
    workload: &Workload,
    told: &Told,
    opts: &Options,
) -> Result<Plan, String> {
    let spec = &template["spec"];
    let mut found: Vec<Found> = Vec::new();
    for c in spec["containers"].as_array().into_iter().flatten() {
        found.push(Found {
            name: name_of(c)?,
            value: c,
            native: false,
        });
    }
    for c in spec["initContainers"].as_array().into_iter().flatten() {
        if c["restartPolicy"] == "Always" {
            found.push(Found {
                name: name_of(c)?,
                value: c,
                native: true,
            });
        }
    }
    let exists = |n: &str| found.iter().any(|f| f.name == n);
    let check_names = |what: &str, names: &[String]| -> Result<(), String> {
        match names.iter().find(|n| !exists(n)) {
            Some(n) => Err(format!(
                "{what}: no container named {n:?} (containers: {})",
                names_of(&found)
            )),
            None => Ok(()),
        }
    };

    let mut settings: BTreeMap<(String, Key), Setting> = told.containers.clone();
    for ((container, key), value) in &opts.settings {
        settings.insert((container.clone(), *key), value.clone());
    }
    for (container, key) in settings.keys() {
        if !exists(container) {
            return Err(format!(
                "{}: no container named {container:?} (containers: {})",
                key.as_str(),
                names_of(&found)
            ));
        }
    }
    let sidecars: Vec<String> = match &opts.sidecars {
        Some(s) => s.clone(),
        None => settings::list(told, "sidecars").unwrap_or_default(),
    };
    check_names("sidecars", &sidecars)?;
    let selected: Option<Vec<String>> = opts
        .containers
        .clone()
        .or_else(|| settings::list(told, "containers"));
    if let Some(s) = &selected {
        check_names("containers", s)?;
    }
    let job = opts.job || settings::flag(told, "job")?.unwrap_or(workload.runs_to_completion());
    let native = opts.native_sidecars || settings::flag(told, "native-sidecars")?.unwrap_or(false);
    let is_sidecar = |f: &Found| f.native || sidecars.iter().any(|s| s == f.name);
    let wrapped = |f: &Found| {
        selected
            .as_ref()
            .is_none_or(|s| s.iter().any(|n| n == f.name))
    };
    // Conditions name only wrapped containers: only `run` publishes readiness and
    // tombstones, so a condition on another container would never hold.
    let mains: Vec<&str> = found
        .iter()
        .filter(|f| !is_sidecar(f) && wrapped(f))
        .map(|f| f.name)
        .collect();
    let waited: Vec<&str> = found
        .iter()
        .filter(|f| is_sidecar(f) && wrapped(f))
        .map(|f| f.name)
        .collect();
    if !found.iter().any(|f| !f.native) || found.iter().filter(|f| !f.native).all(&is_sidecar) {
        return Err(format!(
            "every container is a sidecar ({}): a Pod needs a main container for them to serve",
            sidecars.join(", ")
        ));
    }
    let grace = default_grace(spec);

    let mut wraps = Vec::new();
    for f in &found {
        if selected
            .as_ref()
            .is_some_and(|s| !s.iter().any(|n| n == f.name))
        {
            continue;
        }
        let role = if is_sidecar(f) {
            Role::Sidecar
        } else {
            Role::Main
        };
        let make_native = role == Role::Sidecar && native && !f.native;
        if make_native && !f.value["restartPolicy"].is_null() {
            return Err(format!(
                "container {:?} has its own restartPolicy: it cannot become a native sidecar \
                 (restartPolicy: Always) without losing it; leave out --native-sidecar",
                f.name
            ));
        }
        let will_be_native = f.native || make_native;
        let get = |k: Key| settings.get(&(f.name.to_string(), k)).cloned();
        let value = |k: Key, default: Option<String>| -> Option<Setting> {
            get(k).or(default.map(Setting::Flag))
        };
        let main_conditions = |kind: &str| {
            let list: Vec<String> = mains.iter().map(|m| format!("{kind}:{m}")).collect();
            (!list.is_empty()).then(|| list.join(","))
        };
        let (wait_for, ready_when, exit_with, stop_after, exit_code) = match role {
            Role::Main => (
                value(Key::WaitFor, (!waited.is_empty()).then(|| waited.join(","))),
                value(Key::ReadyWhen, None),
                value(Key::ExitWith, None),
                value(Key::StopAfter, None),
                value(Key::ExitCode, None),
            ),
            Role::Sidecar => {
                let ready = match get(Key::ReadyWhen) {
                    Some(r) => Some(r),
                    None => Some(derived_probe(f)?),
                };
                // A native sidecar is stopped by the kubelet after the main containers
                // (and at once when a Job's main containers are done): no need to watch them.
                if job && !will_be_native && mains.is_empty() && get(Key::ExitWith).is_none() {
                    return Err(format!(
                        "job: sidecar {:?} must exit when the main container does, but no main \
                         container is wrapped (--containers): wrap it too",
                        f.name
                    ));
                }
                let exit_with = if job && !will_be_native {
                    if mains.len() > 1 && get(Key::ExitWith).is_none() {
                        return Err(format!(
                            "job: sidecar {:?} would stop when the first of the main containers \
                             ({}) exits: name the one that ends the Job with --exit-with {0}=exit:MAIN",
                            f.name,
                            mains.join(", ")
                        ));
                    }
                    value(Key::ExitWith, main_conditions("exit"))
                } else {
                    value(Key::ExitWith, None)
                };
                let stop_after = if will_be_native {
                    value(Key::StopAfter, None)
                } else {
                    value(Key::StopAfter, main_conditions("exit"))
                };
                (
                    value(Key::WaitFor, None),
                    ready,
                    exit_with,
                    stop_after,
                    value(Key::ExitCode, Some("on-stop-zero".into())),
                )
            }
        };
        let mut flags = vec![format!("--name={}", f.name)];
        let mut push = |name: &str, s: Option<Setting>| match s {
            Some(Setting::Flag(v)) => flags.push(format!("--{name}={v}")),
            Some(Setting::DrainOn) => flags.push("--drain".into()),
            _ => {}
        };
        push("wait-for", wait_for);
        push("ready-when", ready_when);
        push("exit-with", exit_with);
        push("stop-after", stop_after);
        push("drain-delay", get(Key::Drain));
        push("grace", value(Key::Grace, Some(grace.clone())));
        push("exit-code", exit_code);
        if let Some(signals) = stop_on(f)? {
            flags.push(format!("--stop-on={signals}"));
        }
        if let Some(log) = termination_log(f.value) {
            flags.push(format!("--termination-log={log}"));
        }

        let entrypoint = match get(Key::Entrypoint) {
            Some(Setting::Words(w)) => Some(w),
            _ => None,
        };
        let command = &f.value["command"];
        if !matches!(command, Value::Array(_) | Value::Null)
            || command
                .as_array()
                .is_some_and(|c| c.iter().any(|w| !w.is_string()))
        {
            return Err(format!(
                "container {:?}: command is not a list of strings",
                f.name
            ));
        }
        if entrypoint.is_none() && !matches!(command, Value::Array(c) if !c.is_empty()) {
            return Err(format!(
                "container {:?} has no command: podsignal cannot wrap its image's entrypoint \
                 without knowing it: give --entrypoint {0}='CMD ...' or the annotation \
                 podsignal.io/{0}.entrypoint",
                f.name
            ));
        }
        wraps.push(Wrap {
            name: f.name.to_string(),
            role,
            make_native,
            flags,
            entrypoint,
        });
    }
    let image = opts
        .image
        .clone()
        .or_else(|| told.pod.get("image").cloned())
        .unwrap_or_else(|| super::DEFAULT_IMAGE.to_string());
    Ok(Plan { image, wraps })
}

/// `--stop-on` for a container whose `lifecycle.stopSignal` is not SIGTERM: that signal, and
/// TERM and INT too, since a kubelet without the ContainerStopSignals feature (or podman)
/// sends SIGTERM (or the image's STOPSIGNAL) instead. Either way the stop is graceful, and
/// CMD gets the signal run received, as it would without podsignal.
fn stop_on(f: &Found) -> Result<Option<String>, String> {
    let Some(signal) = f.value["lifecycle"]["stopSignal"].as_str() else {
        return Ok(None);
    };
    let signo = crate::signals::parse_caught(signal).map_err(|e| {
        format!(
            "container {:?}: lifecycle.stopSignal {signal}: {e}: podsignal run could not stop \
             it gracefully nor record its exit; use another stopSignal, or leave this \
             container out (--containers)",
            f.name
        )
    })?;
    if crate::signals::is_termination(signo) {
        return Ok(None);
    }
    let short = crate::signals::name(signo);
    let short = short.trim_start_matches("SIG");
    Ok(Some(format!("{short},TERM,INT")))
}

/// `--termination-log` for the container's termination message settings: `off` with
/// `terminationMessagePolicy: FallbackToLogsOnError` (anything run writes would make the
/// kubelet skip the log's tail), else its `terminationMessagePath` when not the default.
fn termination_log(container: &Value) -> Option<String> {
    if container["terminationMessagePolicy"] == "FallbackToLogsOnError" {
        return Some("off".into());
    }
    container["terminationMessagePath"]
        .as_str()
        .filter(|p| *p != crate::supervisor::termination_log::K8S_DEFAULT)
        .map(str::to_owned)
}

fn name_of(container: &Value) -> Result<&str, String> {
    container["name"]
        .as_str()
        .ok_or_else(|| "a container has no name".to_string())
}

fn names_of(found: &[Found]) -> String {
    found.iter().map(|f| f.name).collect::<Vec<_>>().join(", ")
}

/// A sidecar's readiness from its own probes, checked as `run` will parse it.
fn derived_probe(f: &Found) -> Result<Setting, String> {
    let advice = format!(
        "give --ready-when {0}=PROBE or the annotation podsignal.io/{0}.ready-when \
         (`started`: ready once it runs, before it serves)",
        f.name
    );
    let probe = probe_of(f.value).ok_or_else(|| {
        format!(
            "sidecar {:?}: nothing says when it is ready (no tcpSocket or httpGet probe, no \
             containerPort): {advice}",
            f.name
        )
    })?;
    settings::check(Key::ReadyWhen, &probe).map_err(|e| {
        format!(
            "sidecar {:?}: its probe makes --ready-when={probe}, which {e}: {advice}",
            f.name
        )
    })
}

/// `--grace` a little below the Pod's terminationGracePeriodSeconds (default 30): the
/// kubelet's SIGKILL comes then, and run needs a moment to record the exit.
fn default_grace(spec: &Value) -> String {
    // Capped at a day: `run` refuses a grace of years, and no kubelet waits that long.
    let seconds = spec["terminationGracePeriodSeconds"]
        .as_u64()
        .unwrap_or(30)
        .min(86_400);
    let ms = seconds.saturating_mul(1000);
    let margin = (ms / 10).max(1000);
    let grace = if ms > 2 * margin { ms - margin } else { ms / 2 };
    if grace % 1000 == 0 {
        format!("{}s", grace / 1000)
    } else {
        format!("{grace}ms")
    }
}

/// The readiness the container itself declares: its startup or readiness probe (tcpSocket,
/// httpGet on the Pod's address), else its first TCP containerPort.
fn probe_of(container: &Value) -> Option<String> {
    let port_number = |port: &Value| -> Option<u64> {
        match port {
            Value::Number(n) => n.as_u64(),
            Value::String(name) => container["ports"]
                .as_array()?
                .iter()
                .find(|p| p["name"] == *name)?["containerPort"]
                .as_u64(),
            _ => None,
        }
    };
    for probe in [&container["startupProbe"], &container["readinessProbe"]] {
        if let Some(port) = probe["tcpSocket"]["port"]
            .as_u64()
            .or_else(|| port_number(&probe["tcpSocket"]["port"]))
        {
            return Some(format!("tcp:{port}"));
        }
        let http = &probe["httpGet"];
        let plain = http["scheme"]
            .as_str()
            .is_none_or(|s| s.eq_ignore_ascii_case("http"));
        if http.is_object()
            && plain
            && http["host"].is_null()
            && let Some(port) = port_number(&http["port"])
        {
            let path = http["path"].as_str().unwrap_or("/");
            let path = if path.starts_with('/') {
                path.to_string()
            } else {
                format!("/{path}")
            };
            return Some(format!("http://127.0.0.1:{port}{path}"));
        }
    }
    container["ports"]
        .as_array()?
        .iter()
        .find(|p| p["protocol"].as_str().is_none_or(|s| s == "TCP"))?["containerPort"]
        .as_u64()
        .map(|p| format!("tcp:{p}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn grace_is_a_little_below_the_pods_grace_period() {
        let g = |s: u64| default_grace(&json!({"terminationGracePeriodSeconds": s}));
        assert_eq!(default_grace(&json!({})), "27s");
        assert_eq!(g(60), "54s");
        assert_eq!(g(10), "9s");
        assert_eq!(g(2), "1s");
        assert_eq!(g(1), "500ms");
        assert_eq!(g(0), "0s");
    }

    #[test]
    fn stop_signal_and_termination_message_settings_become_run_flags() {
        let found = |v: &Value| -> Result<Option<String>, String> {
            stop_on(&Found {
                name: "web",
                value: v,
                native: false,
            })
        };
        let c = json!({"lifecycle": {"stopSignal": "SIGQUIT"}});
        assert_eq!(found(&c), Ok(Some("QUIT,TERM,INT".into())));
        assert_eq!(
            found(&json!({"lifecycle": {"stopSignal": "SIGTERM"}})),
            Ok(None)
        );
        assert_eq!(found(&json!({})), Ok(None));
        let e = found(&json!({"lifecycle": {"stopSignal": "SIGKILL"}})).unwrap_err();
        assert!(e.contains("\"web\"") && e.contains("SIGKILL"), "{e}");

        assert_eq!(termination_log(&json!({})), None);
        let custom = json!({"terminationMessagePath": "/tmp/why"});
        assert_eq!(termination_log(&custom).as_deref(), Some("/tmp/why"));
        let default = json!({"terminationMessagePath": "/dev/termination-log"});
        assert_eq!(termination_log(&default), None);
        let logs = json!({"terminationMessagePath": "/tmp/why",
            "terminationMessagePolicy": "FallbackToLogsOnError"});
        assert_eq!(termination_log(&logs).as_deref(), Some("off"));
    }

    #[test]
    fn a_sidecars_readiness_comes_from_its_own_probes_or_port() {
        let c = json!({"ports": [{"name": "admin", "containerPort": 15000}],
            "readinessProbe": {"httpGet": {"port": "admin", "path": "ready"}}});
        assert_eq!(
            probe_of(&c).as_deref(),
            Some("http://127.0.0.1:15000/ready")
        );
        let c = json!({"startupProbe": {"tcpSocket": {"port": 5432}}});
        assert_eq!(probe_of(&c).as_deref(), Some("tcp:5432"));
        let c = json!({"readinessProbe": {"httpGet": {"port": 8443, "scheme": "HTTPS"}},
            "ports": [{"containerPort": 53, "protocol": "UDP"}, {"containerPort": 8443}]});
        assert_eq!(probe_of(&c).as_deref(), Some("tcp:8443"));
        assert_eq!(
            probe_of(&json!({"readinessProbe": {"exec": {"command": ["x"]}}})),
            None
        );
    }
}
