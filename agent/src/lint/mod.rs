//! `podsignal lint`: multi-container anti-patterns in Kubernetes manifests.
//!
//! - this file: documents in, findings out; `podsignal.io/lint-ignore`;
//! - `pod`: the pod view every rule reads (containers, roles, parsed `podsignal run` flags);
//! - `invocation`: a `podsignal` command line, its flags and names; `shell`: commands and
//!   `sh -c` scripts as words; `known`: mesh proxies and sidecars known by name or image;
//! - `rules/`: the rules, one small function each, and their registry;
//! - `report`: plain, JSON and SARIF output.

pub(crate) mod invocation;
mod known;
mod pod;
pub mod report;
pub mod rules;
mod shell;

use crate::cli::Severity;
use crate::manifest::{Document, workloads};
pub use pod::Pod;
pub use rules::{RULES, Rule};

/// The rule reporting a `podsignal.io/lint-ignore` entry that names no rule.
const UNKNOWN_IGNORE: &str = "unknown-lint-ignore";

/// What a rule found in one pod template, before it is placed in the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// Where in the template: 0 for the pod itself, 1 + the container's index.
    pub order: usize,
    /// The dotted path of the container or field (`spec.containers[1] (proxy)`).
    pub path: String,
    /// One line: what is wrong and what to do.
    pub message: String,
}

/// One finding.
#[derive(Debug, Clone)]
pub struct Finding {
    /// The rule.
    pub rule: &'static Rule,
    /// `FILE#N`.
    pub document: String,
    /// `Kind/name`.
    pub object: String,
    /// The dotted path of the container or field.
    pub path: String,
    /// One line of advice.
    pub message: String,
}

impl Finding {
    /// The file the finding is in (the document's origin without `#N`).
    pub fn file(&self) -> &str {
        self.document
            .rsplit_once('#')
            .map_or(self.document.as_str(), |(file, _)| file)
    }
}

/// The findings of every document, in input order; `Err` names a document whose workload
/// has no pod spec.
pub fn lint(documents: &[Document]) -> Result<Vec<Finding>, String> {
    let mut findings = Vec::new();
    for doc in documents {
        for workload in workloads(&doc.value).map_err(|m| format!("{}: {m}", doc.origin))? {
            let Some(template) = doc.value.pointer(&workload.pointer) else {
                continue;
            };
            // Inside a List, the item is the object: its metadata, not the List's.
            let object = doc.value.pointer(&workload.object).unwrap_or(&doc.value);
            let pod = Pod::new(object, &workload, template);
            let mut hits = lint_pod(&pod);
            hits.sort_by_key(|(_, hit)| hit.order);
            findings.extend(hits.into_iter().map(|(rule, hit)| Finding {
                rule,
                document: doc.origin.clone(),
                object: workload.label(),
                path: hit.path,
                message: hit.message,
            }));
        }
    }
    Ok(findings)
}

/// Every rule's hits on one pod, less those its `podsignal.io/lint-ignore` silences, plus
/// one hit per ignore entry that names no rule.
fn lint_pod(pod: &Pod) -> Vec<(&'static Rule, Hit)> {
    let ignored: Vec<(&str, String)> = pod
        .annotations
        .iter()
        .filter(|(k, _, _)| k == "lint-ignore")
        .flat_map(|(_, v, path)| v.split(',').map(move |id| (id.trim(), path.clone())))
        .filter(|(id, _)| !id.is_empty())
        .collect();
    let mut hits = Vec::new();
    for rule in RULES {
        if ignored.iter().any(|(id, _)| *id == rule.id) {
            continue;
        }
        hits.extend((rule.check)(pod).into_iter().map(|h| (rule, h)));
    }
    if let Some(unknown) = rules::find(UNKNOWN_IGNORE) {
        for (id, path) in ignored {
            if rules::find(id).is_none() {
                let message = format!(
                    "podsignal.io/lint-ignore names {id:?}, which is no rule: it silences nothing (podsignal lint --list-rules)"
                );
                hits.push((
                    unknown,
                    Hit {
                        order: 0,
                        path,
                        message,
                    },
                ));
            }
        }
    }
    hits
}

/// How a severity is written.
pub fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Info => "info",
        Severity::Warning => "warning",
        Severity::Error => "error",
    }
}
