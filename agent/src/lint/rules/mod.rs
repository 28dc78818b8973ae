//! The rules: each is a function from a pod view to hits; the registry gives each its id,
//! severity and one-line summary. docs/patterns.md has a section per rule, its anchor the id.
//!
//! - `startup`: polling loops, unordered localhost calls, dangling and cyclic `--wait-for`,
//!   init containers waiting for later ones, native sidecars others wait on without a
//!   startupProbe;
//! - `jobs`: sidecars that keep a Job running or fail it;
//! - `shutdown`: preStop sleeps, stop signals `run` does not treat as a stop;
//! - `security`: shared volumes with mixed UIDs, sidecar limits and privileges, image tags,
//!   the installed binary's volume;
//! - `probes`: touch-file readiness, HTTP probes aimed at the loopback-only agent;
//! - `shape`: a Pod used as a VM.

mod jobs;
mod probes;
mod security;
mod shape;
mod shutdown;
mod startup;

use super::Hit;
use super::pod::{Container, Pod};
use crate::cli::Severity;

/// A rule.
#[derive(Debug)]
pub struct Rule {
    /// The stable id (`job-sidecar-never-exits`), also the docs anchor.
    pub id: &'static str,
    /// How bad a finding is.
    pub severity: Severity,
    /// What it finds, in one line.
    pub summary: &'static str,
    /// The check.
    pub check: fn(&Pod) -> Vec<Hit>,
}

/// A hit on container number `index` of the pod.
fn on(index: usize, c: &Container, message: impl Into<String>) -> Hit {
    Hit {
        order: index + 1,
        path: c.path.clone(),
        message: message.into(),
    }
}

/// Every rule, in the order `--list-rules` prints them.
pub static RULES: &[Rule] = &[
    Rule {
        id: "shell-polling-loop",
        severity: Severity::Warning,
        summary: "a shell loop (until/while/for ... sleep), wait-for-it or curl --retry waits for a dependency",
        check: startup::polling_loops,
    },
    Rule {
        id: "localhost-port-without-ordering",
        severity: Severity::Warning,
        summary: "a container calls a localhost port another container serves, with nothing making it wait",
        check: startup::unordered_localhost,
    },
    Rule {
        id: "wait-for-dangling",
        severity: Severity::Error,
        summary: "a --wait-for, --exit-with, --stop-after or podsignal wait names a readiness or exit:NAME no container of the Pod publishes",
        check: startup::dangling_wait_for,
    },
    Rule {
        id: "init-waits-for-later",
        severity: Severity::Error,
        summary: "an init container (or a native sidecar with a startupProbe) waits for what only a later container provides: the Pod never starts",
        check: startup::init_waits_for_later,
    },
    Rule {
        id: "wait-for-cycle",
        severity: Severity::Error,
        summary: "containers wait for each other in a cycle (--wait-for): none ever starts",
        check: startup::wait_for_cycle,
    },
    Rule {
        id: "native-sidecar-without-startup-probe",
        severity: Severity::Warning,
        summary: "a native sidecar others wait for has no startupProbe, so the kubelet starts them at once",
        check: startup::native_without_startup_probe,
    },
    Rule {
        id: "job-sidecar-never-exits",
        severity: Severity::Error,
        summary: "a Job's sidecar keeps running after the main container exits: the Job never completes",
        check: jobs::never_exits,
    },
    Rule {
        id: "job-sidecar-exit-code",
        severity: Severity::Warning,
        summary: "a Job sidecar stopped by --exit-with exits 143 (SIGTERM) and fails the Job: no --exit-code on-stop-zero",
        check: jobs::exit_code,
    },
    Rule {
        id: "prestop-sleep-ordering",
        severity: Severity::Warning,
        summary: "a preStop sleep orders shutdown between containers, or preStop sleep + --grace exceed terminationGracePeriodSeconds",
        check: shutdown::prestop_sleep_ordering,
    },
    Rule {
        id: "stop-signal-not-term",
        severity: Severity::Warning,
        summary: "lifecycle.stopSignal is not one of the --stop-on signals of a podsignal run container (SIGTERM, SIGINT by default)",
        check: shutdown::stop_signal,
    },
    Rule {
        id: "shared-volume-mixed-users",
        severity: Severity::Warning,
        summary: "containers with different runAsUser write one volume with no fsGroup and no --access group|all",
        check: security::mixed_users,
    },
    Rule {
        id: "sidecar-without-limits",
        severity: Severity::Warning,
        summary: "a sidecar has no memory limit",
        check: security::sidecar_limits,
    },
    Rule {
        id: "privileged-or-root-sidecar",
        severity: Severity::Warning,
        summary: "a sidecar is privileged, runs as root, or may run as root (runAsNonRoot not true, no runAsUser)",
        check: security::root_sidecar,
    },
    Rule {
        id: "latest-tag",
        severity: Severity::Warning,
        summary: "an image is :latest or has no tag (a digest is fine)",
        check: security::latest_tag,
    },
    Rule {
        id: "podsignal-binary-volume",
        severity: Severity::Error,
        summary: "podsignal install writes into a volume that is not an emptyDir, or that another container mounts writable",
        check: security::binary_volume,
    },
    Rule {
        id: "touch-file-readiness",
        severity: Severity::Warning,
        summary: "readiness comes from a file (--ready-when file:, a test -f/cat probe) and there is no livenessProbe",
        check: probes::touch_file,
    },
    Rule {
        id: "httpget-probe-on-agent",
        severity: Severity::Error,
        summary: "an httpGet probe targets a podsignal agent of the Pod listening on loopback only: it always fails",
        check: probes::agent_probe,
    },
    Rule {
        id: "pod-as-vm",
        severity: Severity::Warning,
        summary: "more than 4 regular containers, or 3+ containers serving ports with no ordering between them (sidecars aside)",
        check: shape::pod_as_vm,
    },
    Rule {
        id: "unknown-lint-ignore",
        severity: Severity::Error,
        summary: "podsignal.io/lint-ignore names a rule that does not exist, so it silences nothing",
        check: |_| Vec::new(),
    },
];

/// The rule with this id.
pub fn find(id: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.id == id)
}
