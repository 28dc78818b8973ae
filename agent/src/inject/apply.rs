//! Changing a pod template: [`apply`] carries out a [`Plan`] and records what it had to
//! create in the `PODSIGNAL_INJECTED` env var of the init container it adds (a place inject
//! owns, so the user's metadata is untouched, and with no length limit, unlike annotations
//! under podman); [`revert`] reads that record and undoes exactly that, so
//! `uninject(inject(x)) == x`, key order included.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::plan::{Plan, Wrap};
use super::{
    BIN_DIR, BIN_VOLUME, BINARY, INSTALL_CONTAINER, RECORD_ENV, SHARED_DIR, SHARED_VOLUME,
};

/// What `apply` did that `revert` must undo (the installer's `PODSIGNAL_INJECTED`, as JSON).
#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
struct Record {
    /// The format.
    v: u32,
    /// Containers whose command was wrapped.
    wrapped: Vec<String>,
    /// Wrapped containers that had no `command` (an entrypoint was supplied), with what
    /// stood there: `absent`, `null` or `empty` (`[]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    entrypoint: Vec<(String, String)>,
    /// Native sidecars given a startupProbe (`podsignal wait NAME`), so the kubelet starts
    /// the next containers only once they are ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    probes: Vec<String>,
    /// Regular containers moved to `initContainers`, with their index in `containers`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    native: Vec<(String, usize)>,
    /// Lists that did not exist: `volumes`, `initContainers`, and `volumeMounts:NAME` per
    /// container; `LIST=null` when it stood there as an explicit null.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    created: Vec<String>,
}

const VERSION: u32 = 1;

/// Whether `template` carries inject's record.
pub fn is_injected(template: &Value) -> bool {
    record_text(template).is_some()
}

/// The record's text: the env var of our installer.
fn record_text(template: &Value) -> Option<&str> {
    template["spec"]["initContainers"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == INSTALL_CONTAINER)?["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == RECORD_ENV)?["value"]
        .as_str()
}

/// Carries out `plan` on `template` (which must not be injected already).
pub fn apply(template: &mut Value, plan: &Plan) -> Result<(), String> {
    let mut record = Record {
        v: VERSION,
        ..Record::default()
    };
    let spec = template
        .get_mut("spec")
        .and_then(Value::as_object_mut)
        .ok_or("spec is not a mapping")?;

    // Regular containers that become native sidecars, in their order, after the installer;
    // each remembers its index in the original `containers`.
    let containers = spec
        .get_mut("containers")
        .and_then(Value::as_array_mut)
        .ok_or("no containers")?;
    let mut moved = Vec::new();
    let mut index = 0;
    let mut original_index = 0;
    while index < containers.len() {
        let name = containers[index]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if plan.wraps.iter().any(|w| w.make_native && w.name == name) {
            let mut c = containers.remove(index);
            if let Some(c) = c.as_object_mut() {
                c.insert("restartPolicy".into(), json!("Always"));
            }
            record.native.push((name, original_index));
            moved.push(c);
        } else {
            index += 1;
        }
        original_index += 1;
    }
    let runs_as_root = spec
        .get("securityContext")
        .is_some_and(|s| s["runAsUser"] == 0);
    let inits = array(spec, "initContainers", &mut record, "initContainers")?;
    let mut at = 0;
    inits.insert(at, installer(&plan.image, runs_as_root));
    for c in moved {
        at += 1;
        inits.insert(at, c);
    }

    for list in ["initContainers", "containers"] {
        let Some(Value::Array(containers)) = spec.get_mut(list) else {
            continue;
        };
        for c in containers.iter_mut() {
            let name = c["name"].as_str().unwrap_or_default().to_string();
            if name == INSTALL_CONTAINER {
                continue;
            }
            if let Some(wrap) = plan.wraps.iter().find(|w| w.name == name) {
                wrap_command(c, wrap, &mut record)?;
                if list == "initContainers" && c["startupProbe"].is_null() {
                    add_startup_probe(c, &name, &mut record)?;
                }
            }
            let created = format!("volumeMounts:{name}");
            let c = c
                .as_object_mut()
                .ok_or_else(|| format!("container {name:?} is not a mapping"))?;
            let mounts = array(c, "volumeMounts", &mut record, &created)?;
            mounts.push(json!({"name": SHARED_VOLUME, "mountPath": SHARED_DIR}));
            mounts.push(json!({"name": BIN_VOLUME, "mountPath": BIN_DIR, "readOnly": true}));
        }
    }
    let volumes = array(spec, "volumes", &mut record, "volumes")?;
    volumes.push(json!({"name": SHARED_VOLUME, "emptyDir": {}}));
    volumes.push(json!({"name": BIN_VOLUME, "emptyDir": {}}));

    let text = serde_json::to_string(&record).map_err(|e| e.to_string())?;
    let installer = spec
        .get_mut("initContainers")
        .and_then(Value::as_array_mut)
        .and_then(|i| i.first_mut())
        .and_then(Value::as_object_mut)
        .ok_or("the installer vanished")?;
    installer.insert("env".into(), json!([{"name": RECORD_ENV, "value": text}]));
    Ok(())
}

/// Undoes what `apply` did, as its record says; `Err` when the template was changed since in
/// a way that cannot be undone exactly (e.g. a wrapped command edited by hand).
pub fn revert(template: &mut Value) -> Result<(), String> {
    let text = record_text(template).unwrap_or_default().to_string();
    let record: Record = serde_json::from_str(&text).map_err(|e| {
        format!("{INSTALL_CONTAINER}'s {RECORD_ENV} is not inject's record ({e}): remove the injection by hand")
    })?;
    if record.v != VERSION {
        return Err(format!(
            "{INSTALL_CONTAINER}'s {RECORD_ENV}: format {} is not {VERSION}: use the podsignal that injected it",
            record.v
        ));
    }
    let spec = template
        .get_mut("spec")
        .and_then(Value::as_object_mut)
        .ok_or("no spec")?;

    for list in ["initContainers", "containers"] {
        for c in spec
            .get_mut(list)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            let name = c["name"].as_str().unwrap_or_default().to_string();
            if record.wrapped.contains(&name) {
                let before = record.entrypoint.iter().find(|(n, _)| *n == name);
                unwrap_command(c, &name, before.map(|(_, b)| b.as_str()))?;
            }
            let Some(c) = c.as_object_mut() else { continue };
            if record.probes.contains(&name) {
                c.shift_remove("startupProbe");
            }
            if let Some(Value::Array(mounts)) = c.get_mut("volumeMounts") {
                mounts.retain(|m| m["name"] != SHARED_VOLUME && m["name"] != BIN_VOLUME);
            }
            restore_if_created(c, "volumeMounts", &format!("volumeMounts:{name}"), &record);
        }
    }
    if let Some(Value::Array(inits)) = spec.get_mut("initContainers") {
        inits.retain(|c| c["name"] != INSTALL_CONTAINER);
        let mut moved = Vec::new();
        for (name, index) in &record.native {
            if let Some(i) = inits.iter().position(|c| c["name"] == name.as_str()) {
                let mut c = inits.remove(i);
                if let Some(c) = c.as_object_mut() {
                    c.shift_remove("restartPolicy");
                }
                moved.push((*index, c));
            }
        }
        moved.sort_by_key(|(i, _)| *i);
        let containers = spec
            .get_mut("containers")
            .and_then(Value::as_array_mut)
            .ok_or("no containers")?;
        for (index, c) in moved {
            containers.insert(index.min(containers.len()), c);
        }
    }
    if let Some(Value::Array(volumes)) = spec.get_mut("volumes") {
        volumes.retain(|v| v["name"] != SHARED_VOLUME && v["name"] != BIN_VOLUME);
    }
    for key in ["initContainers", "volumes"] {
        restore_if_created(spec, key, key, &record);
    }
    Ok(())
}

/// The init container that copies the binary into the `podsignal-bin` volume, then starts a
/// new generation of the shared directory (`install --reset`): it runs first, also when the
/// Pod restarts in place keeping its emptyDirs, so no container sees the last run's
/// tombstones or readiness. It runs as its image's user, not the app's, so what it creates
/// in the shared directory is for every user (`--access all`). Not root (the image's user is
/// 65532), except in a Pod that asks for root for all its containers: `runAsNonRoot` would
/// then keep the Pod from starting.
fn installer(image: &str, pod_runs_as_root: bool) -> Value {
    let mut installer = json!({
        "name": INSTALL_CONTAINER,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "args": ["install", format!("{BIN_DIR}/"), "--reset", "--access", "all"],
        "resources": {
            "requests": {"cpu": "10m", "memory": "8Mi"},
            "limits": {"cpu": "100m", "memory": "16Mi"},
        },
        "securityContext": {
            "runAsNonRoot": true,
            "readOnlyRootFilesystem": true,
            "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": BIN_VOLUME, "mountPath": BIN_DIR},
            {"name": SHARED_VOLUME, "mountPath": SHARED_DIR},
        ],
    });
    if pod_runs_as_root && let Some(s) = installer["securityContext"].as_object_mut() {
        s.shift_remove("runAsNonRoot");
    }
    installer
}

/// `command: [podsignal, run, FLAGS..., --, ORIGINAL...]`; `args` stay as they are.
fn wrap_command(c: &mut Value, wrap: &Wrap, record: &mut Record) -> Result<(), String> {
    let before = match &c["command"] {
        Value::Array(command) if !command.is_empty() => None,
        Value::Array(_) => Some("empty"),
        Value::Null if c.get("command").is_some() => Some("null"),
        Value::Null => Some("absent"),
        _ => return Err(format!("container {:?}: command is not a list", wrap.name)),
    };
    let original: Vec<Value> = match (before, &wrap.entrypoint) {
        (None, _) => c["command"].as_array().cloned().unwrap_or_default(),
        (Some(before), Some(words)) => {
            record.entrypoint.push((wrap.name.clone(), before.into()));
            words.iter().map(|w| json!(w)).collect()
        }
        (Some(_), None) => return Err(format!("container {:?} has no command", wrap.name)),
    };
    let mut command = vec![json!(BINARY), json!("run")];
    command.extend(wrap.flags.iter().map(|f| json!(f)));
    command.push(json!("--"));
    command.extend(original);
    let c = c
        .as_object_mut()
        .ok_or_else(|| format!("container {:?} is not a mapping", wrap.name))?;
    c.insert("command".into(), Value::Array(command));
    record.wrapped.push(wrap.name.clone());
    Ok(())
}

/// A native sidecar is "started", for the kubelet, once its startupProbe passes: make that
/// its podsignal readiness, so the next containers start only when it is ready.
fn add_startup_probe(c: &mut Value, name: &str, record: &mut Record) -> Result<(), String> {
    let c = c
        .as_object_mut()
        .ok_or_else(|| format!("container {name:?} is not a mapping"))?;
    c.insert(
        "startupProbe".into(),
        json!({
            "exec": {"command": [BINARY, "wait", name, "--timeout=1s"]},
            "periodSeconds": 1,
            "timeoutSeconds": 2,
            "failureThreshold": 600,
        }),
    );
    record.probes.push(name.to_string());
    Ok(())
}

/// Restores the command `wrap_command` wrapped; `before` is what stood there when an
/// entrypoint was supplied instead.
fn unwrap_command(c: &mut Value, name: &str, before: Option<&str>) -> Result<(), String> {
    let edited = || {
        format!(
            "container {name:?}: its command no longer starts with `{BINARY} run ... --`: it was edited after inject; restore it by hand"
        )
    };
    let command = c["command"].as_array().ok_or_else(edited)?;
    if command.first() != Some(&json!(BINARY)) || command.get(1) != Some(&json!("run")) {
        return Err(edited());
    }
    let dashes = command.iter().position(|w| w == "--").ok_or_else(edited)?;
    let original: Vec<Value> = command[dashes + 1..].to_vec();
    let c = c.as_object_mut().ok_or_else(edited)?;
    match before {
        None => drop(c.insert("command".into(), Value::Array(original))),
        Some("empty") => drop(c.insert("command".into(), json!([]))),
        Some("null") => drop(c.insert("command".into(), Value::Null)),
        Some(_) => drop(c.shift_remove("command")),
    }
    Ok(())
}

/// `parent[key]`, a list inject created (`what` in the record) and has emptied again: gone,
/// or back to the explicit null it was.
fn restore_if_created(parent: &mut Map<String, Value>, key: &str, what: &str, record: &Record) {
    if !matches!(parent.get(key), Some(Value::Array(items)) if items.is_empty()) {
        return;
    }
    if record.created.iter().any(|c| c == what) {
        parent.shift_remove(key);
    } else if record.created.iter().any(|c| *c == format!("{what}=null")) {
        parent.insert(key.into(), Value::Null);
    }
}

fn array<'a>(
    parent: &'a mut Map<String, Value>,
    key: &str,
    record: &mut Record,
    what: &str,
) -> Result<&'a mut Vec<Value>, String> {
    match parent.get(key) {
        None => record.created.push(what.to_string()),
        Some(Value::Null) => record.created.push(format!("{what}=null")),
        Some(_) => {}
    }
    if parent.get(key).is_none_or(Value::is_null) {
        parent.insert(key.into(), json!([]));
    }
    parent
        .get_mut(key)
        .and_then(Value::as_array_mut)
        .ok_or_else(|| format!("{key} is not a list"))
}
