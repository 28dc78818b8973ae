//! `podsignal inject`: adds podsignal to the workloads of Kubernetes manifests.
//!
//! For each pod template: a `podsignal` emptyDir mounted at /run/podsignal in every
//! container, a `podsignal-bin` emptyDir the `podsignal-install` init container copies the
//! binary into, and each selected container's command wrapped in `podsignal run`, told by
//! `podsignal.io/` annotations and flags. What it created is recorded in the
//! installer's `PODSIGNAL_INJECTED` env var, so injecting again first undoes the last injection
//! (idempotent) and `--uninject` restores the original exactly.
//!
//! - `settings`: annotation and flag keys, checked with `run`'s own parsers;
//! - `plan`: roles and `run` flags per container (pure);
//! - `apply`: the changes and their undo;
//! - `words`: entrypoints given as text.

mod apply;
mod plan;
pub mod settings;
mod words;

#[cfg(test)]
mod properties;

use std::collections::BTreeMap;

use serde_json::Value;

use crate::manifest::{Document, workloads};
pub use settings::{Key, Setting};

/// The shared directory's volume.
pub const SHARED_VOLUME: &str = "podsignal";
/// The volume the binary is installed into.
pub const BIN_VOLUME: &str = "podsignal-bin";
/// The init container that installs it.
pub const INSTALL_CONTAINER: &str = "podsignal-install";
/// Where the shared directory is mounted (podsignal's default `--dir`).
pub const SHARED_DIR: &str = podsignal_proto::layout::DEFAULT_DIR;
/// Where the binary's volume is mounted.
pub const BIN_DIR: &str = "/podsignal-bin";
/// The installed binary.
pub const BINARY: &str = "/podsignal-bin/podsignal";
/// The installer's env var recording what inject created.
pub const RECORD_ENV: &str = "PODSIGNAL_INJECTED";
/// The image the installer runs by default (the one the README builds).
pub const DEFAULT_IMAGE: &str = "localhost/podsignal:0.1.0";

/// What the command line says; it overrides the annotations.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--image`.
    pub image: Option<String>,
    /// `--sidecar`.
    pub sidecars: Option<Vec<String>>,
    /// `--containers`: wrap only these.
    pub containers: Option<Vec<String>>,
    /// `--job`.
    pub job: bool,
    /// `--native-sidecar`.
    pub native_sidecars: bool,
    /// `--wait-for C=...` and the others: `(container, key)` → value.
    pub settings: BTreeMap<(String, Key), Setting>,
}

/// What happened to one pod template, for `--dry-run` and notes on stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// `FILE#N Deployment/web`.
    pub target: String,
    /// One line: what was (or would be) done, or why nothing was.
    pub what: String,
    /// Whether the template was changed.
    pub changed: bool,
}

/// An input `inject` refuses: one line naming the document, the object and the place.
#[derive(Debug, thiserror::Error)]
#[error("{target}: {message}")]
pub struct InjectError {
    /// `FILE#N Deployment/web`, with the path inside when known.
    pub target: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// Injects every workload of `doc`; other objects are left as they are.
pub fn inject(doc: &mut Document, opts: &Options) -> Result<Vec<Change>, InjectError> {
    each_template(doc, |template, target, workload| {
        let meta_path = workload.path("/metadata/annotations");
        let reverted = apply::is_injected(template);
        if reverted {
            apply::revert(template).map_err(|m| (meta_path.clone(), m))?;
        }
        let told = settings::from_annotations(template["metadata"].get("annotations"))
            .map_err(|m| (meta_path.clone(), m))?;
        if settings::flag(&told, "inject").map_err(|m| (meta_path.clone(), m))? == Some(false) {
            return Ok(Change {
                target,
                what: "left as is: podsignal.io/inject is false".into(),
                changed: false,
            });
        }
        if let Some(why) = uses_podsignal_by_hand(template) {
            return Ok(Change {
                target,
                what: format!("left as is: {why}"),
                changed: false,
            });
        }
        check_clashes(template, workload)?;
        let plan =
            plan::plan(template, workload, &told, opts).map_err(|m| (workload.path("/spec"), m))?;
        let what = describe(&plan);
        apply::apply(template, &plan).map_err(|m| (workload.path("/spec"), m))?;
        Ok(Change {
            target,
            what,
            changed: true,
        })
    })
}

/// Undoes `inject` on every workload of `doc` that carries its record.
pub fn uninject(doc: &mut Document) -> Result<Vec<Change>, InjectError> {
    each_template(doc, |template, target, workload| {
        if !apply::is_injected(template) {
            return Ok(Change {
                target,
                what: "not injected".into(),
                changed: false,
            });
        }
        apply::revert(template).map_err(|m| (workload.path("/spec"), m))?;
        Ok(Change {
            target,
            what: "restored".into(),
            changed: true,
        })
    })
}

type Failure = (String, String);

fn each_template(
    doc: &mut Document,
    mut f: impl FnMut(&mut Value, String, &crate::manifest::Workload) -> Result<Change, Failure>,
) -> Result<Vec<Change>, InjectError> {
    let found = workloads(&doc.value).map_err(|message| InjectError {
        target: doc.origin.clone(),
        message,
    })?;
    let mut changes = Vec::new();
    for workload in found {
        let target = format!("{} {}", doc.origin, workload.label());
        let template = doc
            .value
            .pointer_mut(&workload.pointer)
            .ok_or_else(|| InjectError {
                target: target.clone(),
                message: "internal error: the template moved".into(),
            })?;
        let change =
            f(template, target.clone(), &workload).map_err(|(path, message)| InjectError {
                target: format!("{target} {path}"),
                message,
            })?;
        changes.push(change);
    }
    Ok(changes)
}

/// A template that already runs podsignal without inject (a container mounting its
/// directories, or running it) is the author's work: inject leaves it alone.
fn uses_podsignal_by_hand(template: &Value) -> Option<String> {
    let spec = &template["spec"];
    let all = ["initContainers", "containers"]
        .iter()
        .flat_map(|l| spec[*l].as_array().into_iter().flatten());
    for c in all {
        let name = c["name"].as_str().unwrap_or("?");
        for m in c["volumeMounts"].as_array().into_iter().flatten() {
            if m["mountPath"] == SHARED_DIR || m["mountPath"] == BIN_DIR {
                return Some(format!(
                    "already uses podsignal (container {name:?} mounts {})",
                    m["mountPath"].as_str().unwrap_or("")
                ));
            }
        }
        // command + args, read the way lint reads them (also `sh -c "... podsignal run ..."`).
        let argv: Vec<String> = ["command", "args"]
            .iter()
            .flat_map(|k| c[*k].as_array().into_iter().flatten())
            .filter_map(|w| w.as_str().map(String::from))
            .collect();
        if !crate::lint::invocation::Invocation::all_in(&argv).is_empty() {
            return Some(format!(
                "already uses podsignal (container {name:?} runs it)"
            ));
        }
    }
    None
}

fn check_clashes(template: &Value, workload: &crate::manifest::Workload) -> Result<(), Failure> {
    let spec = &template["spec"];
    for (i, v) in spec["volumes"].as_array().into_iter().flatten().enumerate() {
        if v["name"] == SHARED_VOLUME || v["name"] == BIN_VOLUME {
            return Err((
                workload.path(&format!("/spec/volumes/{i}")),
                format!(
                    "a volume named {} exists already: rename it, inject adds its own",
                    v["name"]
                ),
            ));
        }
    }
    for list in ["initContainers", "containers"] {
        for (i, c) in spec[list].as_array().into_iter().flatten().enumerate() {
            if c["name"] == INSTALL_CONTAINER {
                return Err((
                    workload.path(&format!("/spec/{list}/{i}")),
                    format!(
                        "a container named {INSTALL_CONTAINER} exists already: rename it, inject adds its own"
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn describe(plan: &plan::Plan) -> String {
    let wraps: Vec<String> = plan
        .wraps
        .iter()
        .map(|w| {
            let role = match (w.role, w.make_native) {
                (plan::Role::Main, _) => "",
                (plan::Role::Sidecar, true) => " (sidecar, made native)",
                (plan::Role::Sidecar, false) => " (sidecar)",
            };
            format!("{}{role}: run {}", w.name, w.flags[1..].join(" "))
        })
        .collect();
    format!(
        "adds volumes {SHARED_VOLUME}, {BIN_VOLUME} and init container {INSTALL_CONTAINER} ({}); wraps {}",
        plan.image,
        if wraps.is_empty() {
            "nothing".to_string()
        } else {
            wraps.join("; ")
        }
    )
}
