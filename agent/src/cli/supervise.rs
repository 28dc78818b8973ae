//! The supervisor's subcommands: run, stop, install, and the probe timing `wait` shares.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use podsignal_proto::{Condition, HttpCheck, Name, Phase, ReadyProbe};

use super::parse::*;
use crate::condition::OnTimeout;
use crate::supervisor::termination_log::TerminationLog;

/// How probing conditions are timed (`wait`, `run`).
#[derive(Debug, Clone, Args)]
pub struct ProbeArgs {
    /// How often a local tcp: port's listeners are looked up (netlink sock_diag, else
    /// /proc/net/tcp{,6}; no connection is made).
    #[arg(long, default_value = "5ms", value_parser = parse_duration, value_name = "DUR", help_heading = "Probes")]
    pub tcp_interval: Duration,
    /// The delay between http:, unix: and tcp: attempts at a loopback target (127.0.0.0/8,
    /// ::1, localhost, unix sockets).
    ///
    /// Remote targets are backed off from instead (--backoff-min, --backoff-max). A
    /// loopback request costs ~0.2 ms of CPU: every 10ms is ~2% of a core while waiting,
    /// and a readiness endpoint turning ready (503, then 200) is noticed within ~5 ms.
    #[arg(long, default_value = "10ms", value_parser = parse_duration, value_name = "DUR", help_heading = "Probes")]
    pub local_interval: Duration,
    /// First delay between attempts at a remote target (growing 1.5-2.5x, with jitter).
    #[arg(long, default_value = "10ms", value_parser = parse_duration, value_name = "DUR", help_heading = "Probes")]
    pub backoff_min: Duration,
    /// Longest delay between attempts at a remote target.
    #[arg(long, default_value = "250ms", value_parser = parse_duration, value_name = "DUR", help_heading = "Probes")]
    pub backoff_max: Duration,
}

/// `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// This container's name: its readiness record, tombstone (exit:NAME), stop requests
    /// and events. Exported to CMD as PODSIGNAL_NAME.
    #[arg(long, env = "PODSIGNAL_NAME", value_parser = parse_name, help_heading = "Identity")]
    pub name: Option<Name>,

    /// Before starting CMD, wait until these hold (comma-separated or repeated); what is
    /// still missing, and why, is logged after 5s, 10s more, 20s more, ... (every minute at
    /// most).
    #[arg(long, value_delimiter = ',', value_parser = parse_condition, value_name = "COND", help_heading = "Startup")]
    pub wait_for: Vec<Condition>,
    /// --wait-for: one condition is enough.
    #[arg(long, help_heading = "Startup")]
    pub any: bool,
    /// --wait-for: give up after this long, exit 124 naming what is missing.
    #[arg(long, value_parser = parse_duration, value_name = "DUR", help_heading = "Startup")]
    pub timeout: Option<Duration>,
    /// --wait-for: what --timeout does: fail (exit 124) or continue (start CMD after a
    /// warning naming what was missing: one image for clusters with and without it).
    #[arg(long, value_enum, default_value_t = OnTimeout::Fail, requires = "timeout", value_name = "WHAT", help_heading = "Startup")]
    pub on_timeout: OnTimeout,
    /// --wait-for: the conditions must hold for this long in a row; one that stops holding
    /// meanwhile (a dependency that went unready, or restarted) starts the wait over.
    #[arg(long, value_parser = parse_duration, value_name = "DUR", help_heading = "Startup")]
    pub stable: Option<Duration>,
    /// How probes are timed.
    #[command(flatten)]
    pub probe: ProbeArgs,

    /// Publish --name ready when this passes: tcp:PORT, http://127.0.0.1:PORT/PATH,
    /// exec:CMD, file:PATH, unix:PATH, notify (sd_notify READY=1), fd:N (CMD writes a newline
    /// to its descriptor N, s6's notification-fd), started (once CMD has started: the
    /// default with --name, as Kubernetes does without a readinessProbe) or never (not
    /// published). Held: gone at once if run dies, retracted when CMD exits.
    ///
    /// fd:N: CMD starts with descriptor N (3 or more) open on a pipe; a newline written to it
    /// means ready, and CMD may close it then. Closed before a newline: never ready (logged).
    /// E.g. `--ready-when fd:3 -- sh -c 'prepare && echo >&3 && exec serve'`.
    #[arg(long, value_parser = parse_probe, value_name = "PROBE", help_heading = "Readiness")]
    pub ready_when: Option<ReadyProbe>,
    /// Keep probing this often after the first success; a failure marks --name unready
    /// with the reason.
    #[arg(long, value_parser = parse_duration, value_name = "DUR", help_heading = "Readiness")]
    pub probe_interval: Option<Duration>,
    /// With --ready-when notify: bind NOTIFY_SOCKET at this path (default: an abstract
    /// socket).
    #[arg(long, value_name = "PATH", help_heading = "Readiness")]
    pub notify_socket: Option<PathBuf>,
    /// With --ready-when notify: CMD must send WATCHDOG=1 this often (WATCHDOG_USEC, and
    /// WATCHDOG_PID with CMD's own pid, are set for it); a missed deadline marks it unready
    /// and publishes a `watchdog` event.
    #[arg(long, value_parser = parse_duration, value_name = "DUR", help_heading = "Readiness")]
    pub watchdog: Option<Duration>,

    /// Stop CMD and exit when any of these holds (e.g. exit:app, phase:stopping).
    #[arg(long, value_delimiter = ',', value_parser = parse_condition, value_name = "COND", help_heading = "Shutdown")]
    pub exit_with: Vec<Condition>,
    /// On a --stop-on signal (SIGTERM), keep CMD running until these hold (e.g. exit:app),
    /// bounded by --grace less --stop-timeout.
    #[arg(long, value_delimiter = ',', value_parser = parse_condition, value_name = "COND", help_heading = "Shutdown")]
    pub stop_after: Vec<Condition>,
    /// The signals that start the stop (drain, --stop-after, pre-stop steps, --grace); any
    /// other signal is forwarded to CMD as it comes.
    ///
    /// Match the container's lifecycle.stopSignal (what the kubelet sends), e.g. QUIT for
    /// nginx: `--stop-on QUIT,TERM,INT` (`inject` does this). The stop signal CMD gets is
    /// the one run received, unless --stop-signal says otherwise.
    #[arg(
        long,
        env = "PODSIGNAL_STOP_ON",
        value_delimiter = ',',
        default_value = "TERM,INT",
        value_parser = parse_caught_signal,
        value_name = "SIG",
        help_heading = "Shutdown"
    )]
    pub stop_on: Vec<i32>,
    /// The signal that stops CMD (default: the --stop-on signal run received; for a stop
    /// request or --exit-with, the first --stop-on signal, SIGTERM by default).
    #[arg(long, value_parser = parse_signal, value_name = "SIG", help_heading = "Shutdown")]
    pub stop_signal: Option<i32>,
    /// The whole stop, from the decision to stop (SIGTERM, --exit-with, podsignal stop) to
    /// SIGKILL: drain, --stop-after and pre-stop steps use it first, but end early enough
    /// to leave CMD --stop-timeout after the stop signal. Set it below the pod's
    /// terminationGracePeriodSeconds (the kubelet's SIGKILL comes then).
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DUR", help_heading = "Shutdown")]
    pub grace: Duration,
    /// The part of --grace kept for CMD between the stop signal and SIGKILL (default: a
    /// third of --grace, at most 5s). CMD gets more when the pre-stop steps end sooner.
    #[arg(long, value_parser = parse_duration, value_name = "DUR", help_heading = "Shutdown")]
    pub stop_timeout: Option<Duration>,
    /// When stopping, first mark --name unready (then --drain-delay, --drain-ports).
    #[arg(long, help_heading = "Shutdown")]
    pub drain: bool,
    /// When stopping, wait this long before the stop signal (implies --drain).
    #[arg(long, value_parser = parse_duration, value_name = "DUR", help_heading = "Shutdown")]
    pub drain_delay: Option<Duration>,
    /// When stopping, wait until no connection is established on these local ports
    /// (implies --drain).
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "PORT",
        help_heading = "Shutdown"
    )]
    pub drain_ports: Vec<u16>,
    /// Run `sh -c CMD` before the stop signal.
    #[arg(long, value_name = "CMD", help_heading = "Shutdown")]
    pub pre_stop: Option<String>,
    /// POST to this URL before the stop signal.
    #[arg(long, value_parser = parse_http, value_name = "URL", help_heading = "Shutdown")]
    pub pre_stop_http: Option<HttpCheck>,
    /// On a --stop-on signal (SIGTERM, SIGINT), set the pod phase (e.g. draining), so
    /// `--exit-with phase:...` elsewhere follows.
    #[arg(long, value_name = "PHASE", help_heading = "Shutdown")]
    pub on_term_phase: Option<Phase>,
    /// Put CMD in its own process group and signal the whole group.
    #[arg(long, help_heading = "Shutdown")]
    pub pgroup: bool,

    /// run's exit code: child (CMD's), zero (always 0), on-stop-zero (0 when podsignal
    /// stopped CMD on purpose: --exit-with, podsignal stop, a SIGTERM; else CMD's).
    #[arg(long, value_enum, default_value_t = ExitCodePolicy::Child, help_heading = "Exit")]
    pub exit_code: ExitCodePolicy,
    /// Exit with TO when CMD exits with FROM (repeatable), e.g. 143:0.
    #[arg(long, value_parser = parse_remap, value_name = "FROM:TO", help_heading = "Exit")]
    pub remap_exit: Vec<(u8, u8)>,
    /// Add why CMD ended to this file, where Kubernetes reads the terminationMessage
    /// (default: /dev/termination-log when it is writable); `off`: write nothing.
    ///
    /// What CMD wrote there is kept: run's line goes after it, cut to fit Kubernetes' 4096
    /// bytes (CMD's text is never cut). Give the container's terminationMessagePath when it
    /// is not the default. With terminationMessagePolicy FallbackToLogsOnError, `off` keeps
    /// the file empty when CMD wrote nothing, so a failed container's message is the tail of
    /// its log (which ends with run's own line saying why CMD ended).
    #[arg(
        long,
        env = "PODSIGNAL_TERMINATION_LOG",
        value_parser = parse_termination_log,
        value_name = "PATH|off",
        help_heading = "Exit"
    )]
    pub termination_log: Option<TerminationLog>,

    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// `run --exit-code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExitCodePolicy {
    /// CMD's exit code (128+N if killed by signal N).
    Child,
    /// Always 0.
    Zero,
    /// 0 when podsignal stopped CMD on purpose, else CMD's code.
    OnStopZero,
}

/// `stop`.
#[derive(Debug, Args)]
pub struct StopArgs {
    /// The `run --name` of the container to stop.
    #[arg(value_parser = parse_name)]
    pub name: Name,
    /// Why (logged by the stopped container, in its stop event and tombstone).
    #[arg(long)]
    pub reason: Option<String>,
    /// Wait until it has exited (its tombstone appears).
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up after this long, with exit code 124.
    #[arg(long, value_parser = parse_duration, value_name = "DUR", requires = "wait")]
    pub timeout: Option<Duration>,
}

/// `install`.
#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Where to copy the binary: a directory (gets DEST/podsignal) or a file path.
    pub dest: PathBuf,
    /// Then start a new generation of the shared directory, as `podsignal reset` does (the
    /// init container `podsignal inject` adds runs first, also when the Pod restarts in
    /// place).
    #[arg(long)]
    pub reset: bool,
}
