//! What `inject` is told, by annotations on the pod template (`podsignal.io/...`) or by
//! flags that override them. Every value is checked with the parser `podsignal run` uses, so
//! a typo fails here, not in the Pod.

use std::collections::BTreeMap;

use podsignal_proto::{Condition, ReadyProbe};
use serde_json::Value;

/// The annotation prefix.
pub const PREFIX: &str = "podsignal.io/";

/// A per-container setting: `podsignal.io/CONTAINER.KEY` or `--KEY CONTAINER=VALUE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Key {
    /// `--wait-for`: conditions before the command starts.
    WaitFor,
    /// `--ready-when`: the readiness probe.
    ReadyWhen,
    /// `--exit-with`: stop when any holds.
    ExitWith,
    /// `--stop-after`: on SIGTERM, keep running until these hold.
    StopAfter,
    /// `--drain` (`true`) or `--drain-delay` (a duration).
    Drain,
    /// `--grace`.
    Grace,
    /// `--exit-code`.
    ExitCode,
    /// The image's entrypoint, for a container with no `command`.
    Entrypoint,
}

impl Key {
    /// Every key, in the order the wrapped command lists them.
    pub const ALL: [Key; 8] = [
        Key::WaitFor,
        Key::ReadyWhen,
        Key::ExitWith,
        Key::StopAfter,
        Key::Drain,
        Key::Grace,
        Key::ExitCode,
        Key::Entrypoint,
    ];

    /// The key as annotations and flags spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Key::WaitFor => "wait-for",
            Key::ReadyWhen => "ready-when",
            Key::ExitWith => "exit-with",
            Key::StopAfter => "stop-after",
            Key::Drain => "drain",
            Key::Grace => "grace",
            Key::ExitCode => "exit-code",
            Key::Entrypoint => "entrypoint",
        }
    }

    fn parse(s: &str) -> Option<Key> {
        Key::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Pod-level annotation keys (after the prefix).
pub const POD_KEYS: [&str; 7] = [
    "inject",
    "sidecars",
    "job",
    "native-sidecars",
    "containers",
    "image",
    "lint-ignore",
];

/// A checked setting value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Setting {
    /// A `run` flag value, as written (`--KEY=VALUE`).
    Flag(String),
    /// `drain: true`: the bare `--drain`.
    DrainOn,
    /// `drain: false`, `exit-code` unset...: nothing.
    Off,
    /// The entrypoint's words.
    Words(Vec<String>),
}

/// Checks `value` for `key`; the error is one line saying what is expected.
pub fn check(key: Key, value: &str) -> Result<Setting, String> {
    let value = value.trim();
    // Written back as `run` will split them: `proxy, tcp:5432` becomes `proxy,tcp:5432`.
    let conditions = |v: &str| -> Result<Setting, String> {
        let items: Vec<&str> = v.split(',').map(str::trim).collect();
        for c in &items {
            Condition::parse(c).map_err(|e| format!("{c:?}: {e}"))?;
        }
        Ok(Setting::Flag(items.join(",")))
    };
    match key {
        Key::WaitFor | Key::ExitWith | Key::StopAfter => conditions(value),
        Key::ReadyWhen => ReadyProbe::parse(value)
            .map(|_| Setting::Flag(value.to_string()))
            .map_err(|e| e.to_string()),
        Key::Grace => podsignal_proto::parse_duration(value)
            .map(|_| Setting::Flag(value.to_string()))
            .map_err(|e| e.to_string()),
        Key::Drain => match value {
            "true" => Ok(Setting::DrainOn),
            "false" => Ok(Setting::Off),
            d => podsignal_proto::parse_duration(d)
                .map(|_| Setting::Flag(d.to_string()))
                .map_err(|_| format!("{d:?}: expected true, false or a delay like 5s")),
        },
        Key::ExitCode => match value {
            "child" | "zero" | "on-stop-zero" => Ok(Setting::Flag(value.to_string())),
            v => Err(format!("{v:?}: expected child, zero or on-stop-zero")),
        },
        Key::Entrypoint => super::words::split(value).map(Setting::Words),
    }
}

/// Settings per container, and the pod-level annotations, of one pod template.
#[derive(Debug, Default)]
pub struct Told {
    /// `podsignal.io/KEY` (pod level), values as strings.
    pub pod: BTreeMap<String, String>,
    /// `(container, key)` → value.
    pub containers: BTreeMap<(String, Key), Setting>,
}

/// Reads the `podsignal.io/` annotations of a pod template's metadata. Unknown keys are an
/// error (a typo would otherwise be ignored in silence); so are values that do not parse.
pub fn from_annotations(annotations: Option<&Value>) -> Result<Told, String> {
    let mut told = Told::default();
    let Some(Value::Object(map)) = annotations else {
        return Ok(told);
    };
    for (name, value) in map {
        let Some(key) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let value = match value {
            Value::String(s) => s.clone(),
            Value::Bool(_) | Value::Number(_) => value.to_string(),
            _ => return Err(format!("annotation {name}: its value must be a string")),
        };
        match key.split_once('.') {
            None if POD_KEYS.contains(&key) => {
                told.pod.insert(key.to_string(), value);
            }
            Some((container, k)) => {
                let k = Key::parse(k).ok_or_else(|| unknown(name))?;
                let setting = check(k, &value).map_err(|e| format!("annotation {name}: {e}"))?;
                told.containers.insert((container.to_string(), k), setting);
            }
            None => return Err(unknown(name)),
        }
    }
    Ok(told)
}

fn unknown(name: &str) -> String {
    let per_container: Vec<_> = Key::ALL.iter().map(|k| k.as_str()).collect();
    format!(
        "annotation {name}: unknown key (pod: {}; per container: {PREFIX}CONTAINER.{{{}}})",
        POD_KEYS.join(", "),
        per_container.join(",")
    )
}

/// A boolean pod-level annotation (`true`/`false`); `None` when absent.
pub fn flag(told: &Told, key: &str) -> Result<Option<bool>, String> {
    match told.pod.get(key).map(String::as_str) {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(v) => Err(format!(
            "annotation {PREFIX}{key}: {v:?}: expected true or false"
        )),
    }
}

/// A comma-separated list annotation.
pub fn list(told: &Told, key: &str) -> Option<Vec<String>> {
    told.pod.get(key).map(|v| {
        v.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn annotations_are_read_and_checked() {
        let a = json!({"podsignal.io/sidecars": "proxy", "podsignal.io/app.wait-for": "proxy,tcp:5432",
            "podsignal.io/proxy.drain": "true", "other.io/x": "y"});
        let told = from_annotations(Some(&a)).expect("valid");
        assert_eq!(list(&told, "sidecars"), Some(vec!["proxy".to_string()]));
        assert_eq!(
            told.containers.get(&("app".into(), Key::WaitFor)),
            Some(&Setting::Flag("proxy,tcp:5432".into()))
        );
        assert_eq!(
            told.containers.get(&("proxy".into(), Key::Drain)),
            Some(&Setting::DrainOn)
        );
    }

    #[test]
    fn typos_and_bad_values_are_errors_naming_the_annotation() {
        let e =
            from_annotations(Some(&json!({"podsignal.io/app.wiat-for": "x"}))).expect_err("typo");
        assert!(
            e.starts_with("annotation podsignal.io/app.wiat-for: unknown key"),
            "{e}"
        );
        let e =
            from_annotations(Some(&json!({"podsignal.io/app.grace": "soon"}))).expect_err("bad");
        assert!(e.starts_with("annotation podsignal.io/app.grace: "), "{e}");
        let e =
            from_annotations(Some(&json!({"podsignal.io/sidecar": "x"}))).expect_err("pod typo");
        assert!(e.contains("unknown key"), "{e}");
        assert!(check(Key::ExitCode, "sometimes").is_err());
        assert!(check(Key::WaitFor, "proxy,,db").is_err());
        assert!(check(Key::ReadyWhen, "tcp:8080").is_ok());
    }
}
