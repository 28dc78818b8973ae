//! Adoption: `inject` (add podsignal to manifests) and `lint` (find multi-container
//! anti-patterns). Both read Kubernetes YAML and never touch a shared directory.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

/// `inject`.
#[derive(Debug, Args)]
pub struct InjectArgs {
    /// Manifests: files, directories (their *.yaml, *.yml, *.json) or - for stdin (the
    /// default, as a Helm --post-renderer).
    #[arg(value_name = "FILE|DIR|-")]
    pub inputs: Vec<PathBuf>,
    /// The image of the init container that installs podsignal.
    #[arg(
        long,
        env = "PODSIGNAL_IMAGE",
        value_name = "IMAGE",
        help_heading = "What to add"
    )]
    pub image: Option<String>,
    /// These containers are sidecars: ready before the others start (their --ready-when
    /// comes from their own startup/readiness probe or first containerPort), stopped after
    /// the others exit. Comma-separated or repeated.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "NAME",
        help_heading = "What to add"
    )]
    pub sidecar: Vec<String>,
    /// Wrap only these containers (default: all, and native sidecars).
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "NAME",
        help_heading = "What to add"
    )]
    pub containers: Vec<String>,
    /// The Pod runs to completion (default for Job and CronJob): sidecars exit 0 when the
    /// main container has exited, so the Pod's result is the main container's.
    #[arg(long, help_heading = "What to add")]
    pub job: bool,
    /// Emit sidecars as native sidecars (initContainers with restartPolicy: Always,
    /// Kubernetes >= 1.29); still wrapped, so they publish readiness and tombstones.
    #[arg(long, help_heading = "What to add")]
    pub native_sidecar: bool,
    /// CONTAINER=CONDS: `run --wait-for` for that container (default for main containers:
    /// the sidecars).
    #[arg(long, value_name = "CONTAINER=CONDS", help_heading = "Per container")]
    pub wait_for: Vec<String>,
    /// CONTAINER=PROBE: `run --ready-when`.
    #[arg(long, value_name = "CONTAINER=PROBE", help_heading = "Per container")]
    pub ready_when: Vec<String>,
    /// CONTAINER=CONDS: `run --exit-with`.
    #[arg(long, value_name = "CONTAINER=CONDS", help_heading = "Per container")]
    pub exit_with: Vec<String>,
    /// CONTAINER=CONDS: `run --stop-after` (default for sidecars: the main containers'
    /// exit).
    #[arg(long, value_name = "CONTAINER=CONDS", help_heading = "Per container")]
    pub stop_after: Vec<String>,
    /// CONTAINER=true|DELAY: `run --drain` (or `--drain-delay DELAY`).
    #[arg(
        long,
        value_name = "CONTAINER=true|DUR",
        help_heading = "Per container"
    )]
    pub drain: Vec<String>,
    /// CONTAINER=DUR: `run --grace` (default: a little below terminationGracePeriodSeconds).
    #[arg(long, value_name = "CONTAINER=DUR", help_heading = "Per container")]
    pub grace: Vec<String>,
    /// CONTAINER=child|zero|on-stop-zero: `run --exit-code` (default for sidecars:
    /// on-stop-zero).
    #[arg(long, value_name = "CONTAINER=POLICY", help_heading = "Per container")]
    pub exit_code: Vec<String>,
    /// CONTAINER='CMD ARGS...': the image's entrypoint, for a container with no `command`
    /// (inject cannot read images). Shell-style words or a JSON array; no expansion.
    #[arg(long, value_name = "CONTAINER=CMD", help_heading = "Per container")]
    pub entrypoint: Vec<String>,
    /// Undo a previous inject exactly, as its record (the PODSIGNAL_INJECTED env var of the
    /// podsignal-install init container) says.
    #[arg(long, conflicts_with_all = ["dry_run"], help_heading = "Mode")]
    pub uninject: bool,
    /// Print what would change, one line per workload, instead of the YAML.
    #[arg(long, help_heading = "Mode")]
    pub dry_run: bool,
}

/// `lint`.
#[derive(Debug, Args)]
pub struct LintArgs {
    /// Manifests: files, directories (their *.yaml, *.yml, *.json) or - for stdin (the
    /// default).
    #[arg(value_name = "FILE|DIR|-")]
    pub inputs: Vec<PathBuf>,
    /// Output format: plain (one finding per line), json, or sarif (SARIF 2.1.0, for
    /// code-scanning UIs).
    #[arg(long, value_enum, default_value_t = LintFormat::Plain)]
    pub format: LintFormat,
    /// Exit 1 when a finding at or above this severity exists.
    #[arg(long, value_enum, default_value_t = Severity::Warning, value_name = "SEVERITY")]
    pub fail_on: Severity,
    /// Print every rule (id, severity, what it finds) and exit.
    #[arg(long)]
    pub list_rules: bool,
}

/// `lint --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LintFormat {
    /// `SEVERITY RULE OBJECT PATH: advice (docs link)`, one per line.
    Plain,
    /// A JSON array of findings.
    Json,
    /// SARIF 2.1.0.
    Sarif,
}

/// A finding's severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum Severity {
    /// Worth knowing.
    Info,
    /// Likely to hurt.
    Warning,
    /// Breaks the Pod.
    Error,
}
