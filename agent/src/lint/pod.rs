//! One pod template as the rules see it: its containers with their role, their effective
//! command, and the `podsignal` invocation (subcommand, flags, `run`'s conditions) parsed
//! once, so that no rule parses a command line again.

use std::time::Duration;

use podsignal_proto::{Condition, ReadyProbe};
use serde_json::Value;

use super::invocation::Invocation;
pub use super::invocation::is_podsignal_binary;
use super::known;
use crate::inject::settings::PREFIX;
use crate::manifest::Workload;

/// Where a container is in the Pod's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An init container: runs to completion before the others start.
    Init,
    /// A native sidecar: an init container with `restartPolicy: Always`.
    Native,
    /// A regular container (`spec.containers`).
    Regular,
}

/// `podsignal run`'s flags, parsed with the protocol's own parsers (values that do not
/// parse are left out: `run` itself would refuse them).
#[derive(Debug, Clone, Default)]
pub struct Run {
    /// `--name` (or the container's `PODSIGNAL_NAME`).
    pub name: Option<String>,
    /// `--wait-for`.
    pub wait_for: Vec<Condition>,
    /// `--ready-when` (absent: ready once started, as `run` does).
    pub ready_when: Option<ReadyProbe>,
    /// `--exit-with`.
    pub exit_with: Vec<Condition>,
    /// `--stop-after`.
    pub stop_after: Vec<Condition>,
    /// `--exit-code` (`child` when absent).
    pub exit_code: String,
    /// `--remap-exit FROM:TO`.
    pub remap_exit: Vec<String>,
    /// `--grace` (10 s when absent).
    pub grace: Duration,
    /// `--stop-on` (or the container's `PODSIGNAL_STOP_ON`; TERM and INT when absent), as
    /// signal numbers.
    pub stop_on: Vec<i32>,
}

/// One container of the Pod.
#[derive(Debug)]
pub struct Container<'a> {
    /// Its name.
    pub name: String,
    /// Its definition.
    pub value: &'a Value,
    /// `spec.template.spec.containers[1] (proxy)`, for messages.
    pub path: String,
    /// Init, native sidecar or regular.
    pub kind: Kind,
    /// What runs: `command` and `args`; with no `command` in an image named `podsignal`,
    /// `podsignal` followed by `args`.
    pub argv: Vec<String>,
    /// The `podsignal` invocation, when the container's command is podsignal.
    pub podsignal: Option<Invocation>,
    /// Every podsignal command line in its command: the command itself, and those of its
    /// `sh -c` scripts (`exec podsignal run ...`, `podsignal stop proxy`).
    pub calls: Vec<Invocation>,
    /// `podsignal run`'s flags, when the container's command is `podsignal run` or a
    /// script that runs it.
    pub run: Option<Run>,
}

impl Container<'_> {
    /// The value of environment variable `name` (literal values only).
    pub fn env(&self, name: &str) -> Option<&str> {
        self.value["env"]
            .as_array()?
            .iter()
            .find(|e| e["name"] == name)?["value"]
            .as_str()
    }

    /// The command, its arguments and the literal env values, as one text to search.
    pub fn text(&self) -> String {
        let env = self.value["env"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["value"].as_str());
        self.argv
            .iter()
            .map(String::as_str)
            .chain(env)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// A field of its `securityContext`, else of the Pod's.
    pub fn security<'v>(&'v self, pod: &'v Pod, field: &str) -> Option<&'v Value> {
        let own = &self.value["securityContext"][field];
        if own.is_null() {
            pod.spec["securityContext"]
                .get(field)
                .filter(|v| !v.is_null())
        } else {
            Some(own)
        }
    }

    /// The readiness names it publishes: its `run --name` (unless `--ready-when never`;
    /// without `--ready-when` it is ready once started), and every `podsignal ready NAME` or
    /// agent `/v1/readiness/NAME` its command mentions.
    pub fn publishes(&self) -> Vec<String> {
        self.published(true)
    }

    /// The readiness names it publishes that say more than "the command started": without
    /// `--ready-when` (or with `started`), its `run --name` is ready before it listens.
    pub fn publishes_past_start(&self) -> Vec<String> {
        self.published(false)
    }

    fn published(&self, started_counts: bool) -> Vec<String> {
        let mut names = Vec::new();
        if let Some(Run {
            name: Some(n),
            ready_when,
            ..
        }) = &self.run
        {
            let counts = match ready_when {
                Some(ReadyProbe::Never) => false,
                None | Some(ReadyProbe::Started) => started_counts,
                Some(_) => true,
            };
            if counts {
                names.push(n.clone());
            }
        }
        for call in self.calls.iter().filter(|c| c.subcommand == "ready") {
            names.extend(call.positional.iter().take(1).cloned());
        }
        let text = self.text();
        for part in text.split("/v1/readiness/").skip(1) {
            let name: String = part
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                .collect();
            if !name.is_empty() {
                names.push(name);
            }
        }
        names
    }

    /// The `run --name` (the `exit:NAME` it writes), if it runs `podsignal run`.
    pub fn run_name(&self) -> Option<&str> {
        self.run.as_ref()?.name.as_deref()
    }

    /// The TCP ports it serves: containerPorts, and the loopback port of its `--ready-when`.
    pub fn serves(&self) -> Vec<u16> {
        let mut ports: Vec<u16> = self.value["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["protocol"].as_str().is_none_or(|s| s == "TCP"))
            .filter_map(|p| p["containerPort"].as_u64())
            .filter_map(|p| u16::try_from(p).ok())
            .collect();
        if let Some(Some(ReadyProbe::Check(c))) = self.run.as_ref().map(|r| &r.ready_when) {
            ports.extend(local_port(c));
        }
        ports.extend(self.agent_port());
        ports
    }

    /// The loopback port of the `podsignal agent` it runs (`--listen`, `PODSIGNAL_LISTEN`,
    /// default 127.0.0.1:7781); none for a unix socket or a non-loopback address.
    pub fn agent_port(&self) -> Option<u16> {
        let inv = self.runs("agent")?;
        if inv.value("allow-remote").is_some() {
            // Bound where --listen says, for the kubelet too (/readyz needs no token).
            return None;
        }
        let listen = inv
            .value("listen")
            .or_else(|| self.env("PODSIGNAL_LISTEN"))
            .unwrap_or("127.0.0.1:7781");
        let (host, port) = listen.rsplit_once(':')?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        // A wildcard --listen is refused by the agent without --allow-remote.
        podsignal_proto::is_loopback_name(host)
            .then(|| port.parse().ok())
            .flatten()
    }

    /// A regular container from its definition alone, for unit tests.
    #[cfg(test)]
    pub fn for_test(value: &Value) -> Container<'_> {
        container(value, Kind::Regular, "spec.containers[0]".to_string())
    }

    /// The `podsignal SUBCOMMAND` command line, if its command or one of its scripts runs it.
    pub fn runs(&self, subcommand: &str) -> Option<&Invocation> {
        self.calls.iter().find(|inv| inv.subcommand == subcommand)
    }

    /// The mesh proxy it is, if an injector's (`istio-proxy`, `linkerd-proxy`).
    pub fn mesh(&self) -> Option<&'static known::Mesh> {
        known::mesh(&self.name, self.value)
    }

    /// Whether its name or image is a mesh proxy's, a proxy's, an exporter's or a log
    /// shipper's: it serves the app next to it.
    pub fn looks_like_sidecar(&self) -> bool {
        self.mesh().is_some() || known::looks_like_sidecar(&self.name, self.value)
    }

    /// Whether it has a server's shape: it declares containerPorts, or it looks like a
    /// sidecar.
    pub fn looks_like_server(&self) -> bool {
        self.value["ports"]
            .as_array()
            .is_some_and(|p| !p.is_empty())
            || self.looks_like_sidecar()
    }

    /// The ports a call can stop it on: those it serves, its mesh's admin ports, and
    /// cloud-sql-proxy's `--quitquitquit` admin port (`--admin-port`, 9091).
    pub fn stop_ports(&self) -> Vec<u16> {
        let mut ports = self.serves();
        ports.extend(self.mesh().into_iter().flat_map(|m| m.ports));
        if self.argv.iter().any(|w| w == "--quitquitquit") {
            let admin = self
                .argv
                .iter()
                .find_map(|w| w.strip_prefix("--admin-port="))
                .or_else(|| {
                    let at = self.argv.iter().position(|w| w == "--admin-port")?;
                    self.argv.get(at + 1).map(String::as_str)
                })
                .and_then(|p| p.parse().ok());
            ports.push(admin.unwrap_or(9091));
        }
        ports
    }
}

/// The loopback port a condition probes, if any.
pub fn local_port(c: &Condition) -> Option<u16> {
    match c {
        Condition::Tcp(t) if t.is_local() => Some(t.port),
        Condition::Service(s) if s.target.is_local() => Some(s.target.port),
        Condition::Http(h) if podsignal_proto::is_loopback_host(&h.host) => Some(h.port),
        _ => None,
    }
}

/// A pod template and its containers.
#[derive(Debug)]
pub struct Pod<'a> {
    /// Where the template is.
    pub workload: &'a Workload,
    /// The template's `spec`.
    pub spec: &'a Value,
    /// The template's and the object's `podsignal.io/` annotations (template wins): key,
    /// value, and where (`spec.template.metadata.annotations`).
    pub annotations: Vec<(String, String, String)>,
    /// Init containers (native sidecars among them), then regular containers: the order
    /// of the manifest.
    pub containers: Vec<Container<'a>>,
    /// The `kubectl.kubernetes.io/default-container` annotation: the main container.
    pub default_container: Option<String>,
}

impl<'a> Pod<'a> {
    /// The view of `template` (the object holding `metadata` and `spec`) inside `object`
    /// (the workload itself: a List's item, not the List).
    pub fn new(object: &'a Value, workload: &'a Workload, template: &'a Value) -> Pod<'a> {
        let spec = &template["spec"];
        let mut annotations = Vec::new();
        // For a Pod the template is the object: read its metadata once.
        let object_meta = (workload.object != workload.pointer).then(|| {
            (
                &object["metadata"],
                workload.object_path("/metadata/annotations"),
            )
        });
        let template_meta = (
            &template["metadata"],
            workload.path("/metadata/annotations"),
        );
        for (meta, path) in std::iter::once(template_meta).chain(object_meta) {
            for (k, v) in meta["annotations"].as_object().into_iter().flatten() {
                if let (Some(key), Some(v)) = (k.strip_prefix(PREFIX), v.as_str()) {
                    annotations.push((key.to_string(), v.to_string(), path.clone()));
                }
            }
        }
        let mut containers = Vec::new();
        for list in ["initContainers", "containers"] {
            for (i, c) in spec[list].as_array().into_iter().flatten().enumerate() {
                let kind = match (list, c["restartPolicy"].as_str()) {
                    ("containers", _) => Kind::Regular,
                    (_, Some("Always")) => Kind::Native,
                    _ => Kind::Init,
                };
                containers.push(container(
                    c,
                    kind,
                    workload.path(&format!("/spec/{list}/{i}")),
                ));
            }
        }
        let default_container =
            template["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"]
                .as_str()
                .map(String::from);
        Pod {
            workload,
            spec,
            annotations,
            containers,
            default_container,
        }
    }

    /// A `podsignal.io/KEY` annotation of the template or the object.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations
            .iter()
            .find(|(k, _, _)| k == key)
            .map(|(_, v, _)| v.as_str())
    }

    /// The names listed in `podsignal.io/KEY` (comma-separated).
    pub fn annotation_list(&self, key: &str) -> Vec<String> {
        self.annotation(key)
            .into_iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    }

    /// Whether the Pod runs to completion: a Job or CronJob, or `podsignal.io/job: "true"`.
    pub fn runs_to_completion(&self) -> bool {
        match self.annotation("job") {
            Some(v) => v == "true",
            None => self.workload.runs_to_completion(),
        }
    }

    /// Whether `c` is a sidecar: a native sidecar, named in `podsignal.io/sidecars`, or a
    /// `podsignal run` with `--exit-with` or `--stop-after` (it serves the others).
    pub fn is_sidecar(&self, c: &Container) -> bool {
        c.kind == Kind::Native
            || self.annotation_list("sidecars").contains(&c.name)
            || c.run
                .as_ref()
                .is_some_and(|r| !r.exit_with.is_empty() || !r.stop_after.is_empty())
    }

    /// The containers that run alongside each other: native sidecars and regular ones.
    pub fn long_running(&self) -> impl Iterator<Item = (usize, &Container<'a>)> {
        self.containers
            .iter()
            .enumerate()
            .filter(|(_, c)| c.kind != Kind::Init)
    }

    /// `terminationGracePeriodSeconds` (30 when absent).
    pub fn grace_period(&self) -> u64 {
        self.spec["terminationGracePeriodSeconds"]
            .as_u64()
            .unwrap_or(30)
    }
}

fn container<'a>(value: &'a Value, kind: Kind, path: String) -> Container<'a> {
    let name = value["name"].as_str().unwrap_or("").to_string();
    let words = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .map(|w| match w {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect()
    };
    let command = words(&value["command"]);
    let args = words(&value["args"]);
    let argv: Vec<String> = if command.is_empty() && image_is_podsignal(value) {
        std::iter::once("podsignal".to_string())
            .chain(args)
            .collect()
    } else {
        command.into_iter().chain(args).collect()
    };
    let podsignal = argv
        .first()
        .filter(|w| is_podsignal_binary(w))
        .map(|_| Invocation::parse(&argv[1..]));
    let calls = Invocation::all_in(&argv);
    let mut c = Container {
        path: format!("{path} ({name})"),
        name,
        value,
        kind,
        argv,
        podsignal,
        calls,
        run: None,
    };
    c.run = c.runs("run").map(|inv| run_flags(inv, &c));
    c
}

/// An image named `podsignal` (any registry, tag or digest): its entrypoint is podsignal.
fn image_is_podsignal(container: &Value) -> bool {
    let image = container["image"].as_str().unwrap_or("");
    let last = image.rsplit('/').next().unwrap_or("");
    let name = last.split(['@', ':']).next().unwrap_or("");
    name == "podsignal"
}

fn run_flags(inv: &Invocation, c: &Container) -> Run {
    let conditions = |flag: &str| -> Vec<Condition> {
        inv.values(flag)
            .filter_map(|v| Condition::parse(v).ok())
            .collect()
    };
    Run {
        name: inv
            .value("name")
            .or_else(|| c.env("PODSIGNAL_NAME"))
            .map(String::from),
        wait_for: conditions("wait-for"),
        ready_when: inv
            .value("ready-when")
            .and_then(|v| ReadyProbe::parse(v).ok()),
        exit_with: conditions("exit-with"),
        stop_after: conditions("stop-after"),
        exit_code: inv.value("exit-code").unwrap_or("child").to_string(),
        remap_exit: inv.values("remap-exit").map(String::from).collect(),
        grace: inv
            .value("grace")
            .and_then(|v| podsignal_proto::parse_duration(v).ok())
            .unwrap_or(Duration::from_secs(10)),
        stop_on: stop_on(inv, c),
    }
}

/// `--stop-on`, else `PODSIGNAL_STOP_ON`, else run's default.
fn stop_on(inv: &Invocation, c: &Container) -> Vec<i32> {
    let parse = |words: Vec<&str>| -> Vec<i32> {
        words
            .into_iter()
            .filter_map(|w| crate::signals::parse_caught(w).ok())
            .collect()
    };
    let flags = parse(inv.values("stop-on").collect());
    if !flags.is_empty() {
        return flags;
    }
    match c.env("PODSIGNAL_STOP_ON") {
        Some(v) => parse(v.split(',').map(str::trim).collect()),
        None => crate::signals::DEFAULT_STOP_ON.to_vec(),
    }
}
