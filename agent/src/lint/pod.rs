//! One pod template as the rules see it: its containers with their role, their effective
//! command, and the `podsignal` invocation (subcommand, flags, `run`'s conditions) parsed
//! once, so that no rule parses a command line again.

use std::time::Duration;

use podsignal_proto::{Condition, ReadyProbe};
use serde_json::Value;

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

/// A `podsignal` command line: `podsignal [GLOBAL] SUBCOMMAND [FLAGS] [POSITIONAL] [-- CMD]`.
#[derive(Debug, Clone, Default)]
pub struct Invocation {
    /// The subcommand (`run`, `install`, `agent`, ...).
    pub subcommand: String,
    /// Every `--flag value` / `--flag=value` (bare flags have an empty value), in order.
    pub flags: Vec<(String, String)>,
    /// Words that are not flags, after the subcommand.
    pub positional: Vec<String>,
}

/// Flags of podsignal's subcommands that take no value.
const BARE_FLAGS: &[&str] = &[
    "any",
    "drain",
    "pgroup",
    "durable",
    "hold",
    "allow-remote",
    "wait",
    "json",
    "generate-token",
    "unready",
    "no-wait",
    "uninject",
    "dry-run",
    "help",
    "version",
];

impl Invocation {
    /// Parses the words after the binary.
    fn parse(words: &[String]) -> Invocation {
        let mut inv = Invocation::default();
        let mut words = words.iter();
        while let Some(word) = words.next() {
            if word == "--" {
                break;
            }
            if let Some(flag) = word.strip_prefix("--") {
                let (name, value) = match flag.split_once('=') {
                    Some((n, v)) => (n.to_string(), v.to_string()),
                    None if BARE_FLAGS.contains(&flag) => (flag.to_string(), String::new()),
                    None => (flag.to_string(), words.next().cloned().unwrap_or_default()),
                };
                inv.flags.push((name, value));
            } else if inv.subcommand.is_empty() {
                inv.subcommand = word.clone();
            } else {
                inv.positional.push(word.clone());
            }
        }
        inv
    }

    /// Every value of `--name` (repeated flags, comma lists split).
    pub fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.flags
            .iter()
            .filter(move |(n, _)| n == name)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
    }

    /// The last value of `--name`.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.flags
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `podsignal run`'s flags, parsed with the protocol's own parsers (values that do not
/// parse are left out: `run` itself would refuse them).
#[derive(Debug, Clone, Default)]
pub struct Run {
    /// `--name` (or the container's `PODSIGNAL_NAME`).
    pub name: Option<String>,
    /// `--wait-for`.
    pub wait_for: Vec<Condition>,
    /// `--ready-when`.
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
    /// `podsignal run`'s flags, when the container's command is `podsignal run`.
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

    /// The readiness names it publishes: its `run --name` with `--ready-when`, and every
    /// `podsignal ready NAME` or agent `/v1/readiness/NAME` its command mentions.
    pub fn publishes(&self) -> Vec<String> {
        let mut names = Vec::new();
        if let Some(Run {
            name: Some(n),
            ready_when: Some(_),
            ..
        }) = &self.run
        {
            names.push(n.clone());
        }
        let text = self.text();
        let words: Vec<&str> = text.split_whitespace().collect();
        for (i, w) in words.iter().enumerate() {
            if is_podsignal_binary(w)
                && words.get(i + 1) == Some(&"ready")
                && let Some(n) = words[i + 2..].iter().find(|w| !w.starts_with('-'))
            {
                names.push(unquote(n));
            }
        }
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
        let listen = inv
            .value("listen")
            .or_else(|| self.env("PODSIGNAL_LISTEN"))
            .unwrap_or("127.0.0.1:7781");
        let (host, port) = listen.rsplit_once(':')?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        is_loopback(host).then(|| port.parse().ok()).flatten()
    }

    /// The whole `podsignal` word, if this container runs a podsignal subcommand.
    pub fn runs(&self, subcommand: &str) -> Option<&Invocation> {
        self.podsignal
            .as_ref()
            .filter(|inv| inv.subcommand == subcommand)
    }
}

/// The loopback port a condition probes, if any.
pub fn local_port(c: &Condition) -> Option<u16> {
    match c {
        Condition::Tcp(t) if t.is_local() => Some(t.port),
        Condition::Http(h) if is_loopback(&h.host) => Some(h.port),
        _ => None,
    }
}

/// Whether `host` is this Pod's loopback.
pub fn is_loopback(host: &str) -> bool {
    host == "localhost" || host == "::1" || host.starts_with("127.")
}

fn unquote(word: &str) -> String {
    word.trim_matches(|c| c == '"' || c == '\'').to_string()
}

/// A pod template and its containers.
#[derive(Debug)]
pub struct Pod<'a> {
    /// Where the template is.
    pub workload: &'a Workload,
    /// The template's `spec`.
    pub spec: &'a Value,
    /// The template's and the object's `podsignal.io/` annotations (template wins).
    pub annotations: Vec<(String, String)>,
    /// Init containers (native sidecars among them), then regular containers: the order
    /// of the manifest.
    pub containers: Vec<Container<'a>>,
    /// The `kubectl.kubernetes.io/default-container` annotation: the main container.
    pub default_container: Option<String>,
}

impl<'a> Pod<'a> {
    /// The view of `template` (the object holding `metadata` and `spec`) inside `object`.
    pub fn new(object: &'a Value, workload: &'a Workload, template: &'a Value) -> Pod<'a> {
        let spec = &template["spec"];
        let mut annotations = Vec::new();
        // For a Pod the template is the object: read its metadata once.
        let object_meta = (!workload.pointer.is_empty()).then(|| &object["metadata"]);
        for meta in std::iter::once(&template["metadata"]).chain(object_meta) {
            for (k, v) in meta["annotations"].as_object().into_iter().flatten() {
                if let (Some(key), Some(v)) = (k.strip_prefix(PREFIX), v.as_str()) {
                    annotations.push((key.to_string(), v.to_string()));
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
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
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
    let mut c = Container {
        path: format!("{path} ({name})"),
        name,
        value,
        kind,
        argv,
        podsignal,
        run: None,
    };
    c.run = c
        .podsignal
        .as_ref()
        .filter(|inv| inv.subcommand == "run")
        .map(|inv| run_flags(inv, &c));
    c
}

/// `podsignal` or a path ending in `/podsignal`.
pub fn is_podsignal_binary(word: &str) -> bool {
    word == "podsignal" || word.ends_with("/podsignal")
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn flags_are_read_in_both_spellings() {
        let inv = Invocation::parse(&words(
            "--access group run --name app --wait-for=a,b --wait-for c --drain --grace 5s -- ./x --y",
        ));
        assert_eq!(inv.subcommand, "run");
        assert_eq!(inv.values("wait-for").collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(inv.value("access"), Some("group"));
        assert_eq!(inv.value("drain"), Some(""));
        assert_eq!(inv.value("grace"), Some("5s"));
        assert!(inv.positional.is_empty());
    }
}
