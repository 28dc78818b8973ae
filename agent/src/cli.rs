//! The command line: clap definitions only. Each subcommand's behaviour is in `cmd/`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use podsignal_proto::{Condition, HttpCheck, Name, Phase, ReadyProbe};

const EXIT_CODES: &str = podsignal_proto::ExitCode::TABLE;

/// Coordinate the containers of a Kubernetes Pod through a shared directory
///
/// podsignal gives the containers of one Pod readiness, startup ordering, locks with fencing
/// tokens, leader election and lifecycle events, through files in a shared volume (an
/// emptyDir mounted by every container). Waits are event-driven (inotify), and a record can be
/// "held": it counts only while its writer lives, so a crashed container is seen at once.
///
/// Examples:
///   $ podsignal ready db-migrated --reason "schema v42"
///   $ podsignal wait db-migrated proxy --timeout 2m && exec ./server
///   $ podsignal ready web --hold              # ready until this process stops
///   $ podsignal lock migrations -- ./migrate  # PODSIGNAL_FENCING_TOKEN set for ./migrate
///   $ podsignal status
///   $ podsignal run --name app --wait-for proxy,db-migrated --ready-when tcp:8080 -- ./server
#[derive(Debug, Parser)]
#[command(name = "podsignal", version, verbatim_doc_comment, after_long_help = EXIT_CODES, after_help = "Exit codes: 0 ok, 1 error, 2 usage, 75 lock busy, 124 timeout, 128+N killed by signal N (--help for more)")]
pub struct Cli {
    /// Options every subcommand takes.
    #[command(flatten)]
    pub global: GlobalOpts,
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand takes.
#[derive(Debug, Args)]
pub struct GlobalOpts {
    /// The shared directory (an emptyDir every container mounts).
    #[arg(long, global = true, env = "PODSIGNAL_DIR", default_value = podsignal_proto::layout::DEFAULT_DIR, value_name = "PATH", help_heading = "Shared directory")]
    pub dir: PathBuf,

    /// Who may write what podsignal creates: owner (0644/0755), group (0664/2775, for mixed
    /// UIDs sharing an fsGroup), or all (0666/0777, for mixed UIDs with no shared group).
    #[arg(long, global = true, env = "PODSIGNAL_ACCESS", value_enum, default_value_t = AccessArg::Owner, help_heading = "Shared directory")]
    pub access: AccessArg,

    /// fsync every write. Without it only the fencing counter is fsynced: an emptyDir dies
    /// with its pod, so fsync buys nothing there.
    #[arg(
        long,
        global = true,
        env = "PODSIGNAL_DURABLE",
        help_heading = "Shared directory"
    )]
    pub durable: bool,

    /// How often waiters re-check without an inotify event (a safety net; inotify wakes
    /// them at once).
    #[arg(long, global = true, env = "PODSIGNAL_RESCAN", default_value = "1s", value_parser = parse_duration, value_name = "DUR", help_heading = "Shared directory")]
    pub rescan: Duration,

    /// Log format on stderr.
    #[arg(long, global = true, env = "PODSIGNAL_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human, help_heading = "Logging")]
    pub log_format: LogFormat,

    /// Go through a `podsignal agent` at URL (http://HOST:PORT or unix:PATH) instead of
    /// the shared directory: ready, unready, wait (readiness names), lock, leader, event,
    /// phase and status work the same way.
    #[arg(
        long,
        global = true,
        env = "PODSIGNAL_AGENT",
        value_name = "URL",
        help_heading = "Agent"
    )]
    pub agent: Option<String>,

    /// A file holding the agent's bearer token: the agent checks it, `--agent` clients send
    /// it (with `agent --generate-token`, created if missing).
    #[arg(
        long,
        global = true,
        env = "PODSIGNAL_TOKEN_FILE",
        value_name = "PATH",
        help_heading = "Agent"
    )]
    pub token_file: Option<PathBuf>,
}

/// `--access`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum AccessArg {
    /// Files 0644, directories 0755.
    Owner,
    /// Files 0664, directories 2775.
    Group,
    /// Files 0666, directories 0777.
    All,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// One readable line per message.
    Human,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Mark NAME ready (sticky, or held with --hold)
    ///
    /// Without --hold the record is sticky: it stays ready until `podsignal unready NAME`.
    /// With --hold, podsignal stays in the foreground and the record counts only while it
    /// runs: on SIGTERM/SIGINT it retracts the record, and if it is killed (even kill -9)
    /// every waiter sees NAME unready at once.
    ///
    ///   $ podsignal ready db-migrated --reason "schema v42"
    ///   $ podsignal ready proxy --hold &
    #[command(verbatim_doc_comment)]
    Ready(ReadyArgs),
    /// Mark NAME unready (a sticky record with an optional reason).
    Unready(UnreadyArgs),
    /// Wait until every condition holds (or one, with --any)
    ///
    /// A condition is a readiness NAME, exit:NAME[=CODE] (the container running
    /// `run --name NAME` exited), phase:PHASE, file:PATH, tcp:HOST:PORT, http://... or
    /// unix:PATH (docs/conditions.md). Returns 0 as soon as they hold (at once if they already
    /// do), or 124 after --timeout with one line naming each unmet condition and why.
    ///
    ///   $ podsignal wait proxy db-migrated --timeout 2m
    ///   $ podsignal wait tcp:db:5432 http://127.0.0.1:8080/healthz --timeout 30s
    ///   $ podsignal wait exit:app=0
    ///   $ podsignal wait --unready web        # until web's holder is gone
    #[command(verbatim_doc_comment)]
    Wait(WaitArgs),
    /// Run a command holding a lock, with a fencing token
    ///
    /// The lock is locks/NAME.lock in the shared directory, a plain flock(2) file:
    /// `flock DIR/locks/NAME.lock CMD` and `podsignal lock NAME -- CMD` exclude each other.
    /// CMD inherits the locked descriptor (as with flock(1)) and gets the token in
    /// PODSIGNAL_FENCING_TOKEN. If podsignal is killed, CMD is killed with it, so the lock is
    /// free only once its holder and everything it started are gone. Exits with CMD's code.
    ///
    ///   $ podsignal lock migrations --timeout 5m -- ./migrate
    ///   $ podsignal lock cron --no-wait -- ./job || echo "another replica runs it"
    #[command(verbatim_doc_comment)]
    Lock(LockArgs),
    /// Campaign for leadership, then run a command as leader; or show the leader
    ///
    /// `podsignal leader NAME -- CMD` blocks until this process leads NAME, then runs CMD with
    /// PODSIGNAL_FENCING_TOKEN set; leadership ends when CMD exits (or podsignal dies), and
    /// the next campaigner takes over within milliseconds with a higher token.
    ///
    ///   $ podsignal leader scheduler -- ./schedule-jobs
    ///   $ podsignal leader show scheduler
    #[command(verbatim_doc_comment)]
    Leader(LeaderArgs),
    /// Publish or watch lifecycle events.
    #[command(subcommand)]
    Event(EventCommand),
    /// Set, get or wait for the pod phase (starting < running < draining < stopping).
    #[command(subcommand)]
    Phase(PhaseCommand),
    /// Show everything in the shared directory: phase, readiness, locks, leaders, events.
    Status(StatusArgs),
    /// Run a container's command: wait for its dependencies, publish its readiness, stop
    /// it in step with the others, and exit with its code
    ///
    /// The entrypoint that replaces wait-for-it, linkerd-await, kubexit, scuttle and tini:
    /// --wait-for blocks until conditions hold (docs/conditions.md); --ready-when publishes
    /// the readiness of --name, held while CMD runs; when CMD exits, a tombstone
    /// (exit:NAME) and an `exit` event tell the others. Signals are forwarded to CMD; zombies
    /// are reaped (as PID 1, or as a child subreaper); if run is killed, CMD dies with it.
    /// Stopping is: drain and pre-stop steps (bounded by --grace), the stop signal, --grace,
    /// SIGKILL. run exits with CMD's code, 128+N if a signal N killed it, 124 if --wait-for
    /// timed out, 143/130 if SIGTERM/SIGINT arrived while waiting.
    ///
    ///   $ podsignal run --name app --wait-for proxy,db-migrated --ready-when tcp:8080 -- ./server
    ///   $ podsignal run --name proxy --ready-when http://127.0.0.1:15021/ready \
    ///         --exit-with exit:app --exit-code on-stop-zero -- ./proxy
    ///   $ podsignal run --name web --drain --drain-ports 8080 --grace 20s -- ./web
    ///   $ podsignal run --name api --ready-when notify -- ./api   # the child sends READY=1
    #[command(verbatim_doc_comment)]
    Run(Box<RunArgs>),
    /// Ask the container running `run --name NAME` to stop gracefully
    ///
    /// Writes stop/NAME.json in the shared directory; that `run` stops its command as it
    /// would on SIGTERM (without --stop-after) and exits. With --wait, waits for its
    /// tombstone. A /quitquitquit for every sidecar, with no HTTP server or curl needed.
    ///
    ///   $ podsignal stop proxy --reason "job finished" --wait --timeout 30s
    #[command(verbatim_doc_comment)]
    Stop(StopArgs),
    /// Copy this podsignal binary into DEST (a directory or a file path)
    ///
    /// For an init container sharing a volume with images that do not ship podsignal.
    ///
    ///   $ podsignal install /podsignal-bin/        # then: /podsignal-bin/podsignal run ...
    #[command(verbatim_doc_comment)]
    Install(InstallArgs),
    /// Serve the shared directory over HTTP on localhost (the agent)
    ///
    /// A versioned JSON API under /v1 (readiness, locks, leaders, events with Server-Sent
    /// Events, phase, shutdown), plus /healthz, /readyz, /metrics and /openapi.json. The
    /// directory stays the source of truth: the API and `podsignal` on the volume agree.
    /// Binds loopback only, unless --allow-remote with a --token-file. SIGTERM/SIGINT: open
    /// long-polls get 503, streams end, everything held is released, exit 0. See
    /// docs/http-api.md.
    ///
    ///   $ podsignal agent --listen 127.0.0.1:7781
    ///   $ podsignal agent --listen unix:/run/podsignal/agent.sock
    ///   $ curl -s localhost:7781/v1/readiness/db?wait=30s
    #[command(verbatim_doc_comment)]
    Agent(AgentArgs),
}

/// `agent`.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Where to listen: HOST:PORT (loopback unless --allow-remote) or unix:PATH.
    #[arg(
        long,
        env = "PODSIGNAL_LISTEN",
        default_value = "127.0.0.1:7781",
        value_name = "ADDR"
    )]
    pub listen: String,
    /// Allow a non-loopback --listen address (requires --token-file).
    #[arg(long)]
    pub allow_remote: bool,
    /// Create --token-file with a random token (mode 0640) if it does not exist.
    #[arg(long, requires = "token_file")]
    pub generate_token: bool,
    /// The largest request body accepted, in bytes (413 above).
    #[arg(long, default_value_t = 64 * 1024, value_name = "BYTES", help_heading = "Limits")]
    pub max_body: usize,
    /// How many long-polls, waiting acquisitions and holds may be open at once (503 above).
    #[arg(
        long,
        default_value_t = 1024,
        value_name = "N",
        help_heading = "Limits"
    )]
    pub max_waiters: usize,
    /// How many event streams may be open at once (503 above).
    #[arg(long, default_value_t = 64, value_name = "N", help_heading = "Limits")]
    pub max_streams: usize,
    /// The longest single long-poll; a longer ?wait= is cut to this (clients poll again).
    #[arg(long, default_value = "5m", value_parser = parse_duration, value_name = "DUR", help_heading = "Limits")]
    pub max_wait: Duration,
    /// How long any request may take beyond its own wait (503 after).
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DUR", help_heading = "Limits")]
    pub request_timeout: Duration,
    /// How often hold streams send a heartbeat line.
    #[arg(long, default_value = "5s", value_parser = parse_duration, value_name = "DUR", help_heading = "Limits")]
    pub heartbeat: Duration,
    /// On shutdown, how long to wait for open connections to finish before exiting anyway.
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DUR", help_heading = "Limits")]
    pub drain_timeout: Duration,
}

/// `ready`.
#[derive(Debug, Args)]
pub struct ReadyArgs {
    /// The name to mark ready.
    #[arg(value_parser = parse_name)]
    pub name: Name,
    /// Why (shown by status and in timeout messages).
    #[arg(long)]
    pub reason: Option<String>,
    /// Stay in the foreground holding liveness; retract on SIGTERM/SIGINT.
    #[arg(long)]
    pub hold: bool,
}

/// `unready`.
#[derive(Debug, Args)]
pub struct UnreadyArgs {
    /// The name to mark unready.
    #[arg(value_parser = parse_name)]
    pub name: Name,
    /// Why.
    #[arg(long)]
    pub reason: Option<String>,
}

/// `wait`.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// The conditions to wait for: NAME, exit:NAME[=CODE], phase:PHASE, file:PATH,
    /// tcp:HOST:PORT, http(s)://..., unix:PATH.
    #[arg(required = true, value_parser = parse_condition, value_name = "COND")]
    pub conditions: Vec<Condition>,
    /// Give up after this long (e.g. 500ms, 30s, 2m) with exit code 124.
    #[arg(long, value_parser = parse_duration, value_name = "DUR")]
    pub timeout: Option<Duration>,
    /// Return when any one name holds, instead of all.
    #[arg(long)]
    pub any: bool,
    /// Wait for the names to be NOT ready (absent, unready, or their holder gone).
    #[arg(long)]
    pub unready: bool,
    /// How probes are timed.
    #[command(flatten)]
    pub probe: ProbeArgs,
}

impl WaitArgs {
    /// The readiness names, when every condition is a plain NAME (as before conditions).
    pub fn plain_names(&self) -> Option<Vec<Name>> {
        self.conditions
            .iter()
            .map(|c| match c {
                Condition::Ready(n) => Some(n.clone()),
                _ => None,
            })
            .collect()
    }
}

/// How probing conditions are timed (`wait`, `run`).
#[derive(Debug, Clone, Args)]
pub struct ProbeArgs {
    /// How often a local tcp: port is looked up in /proc/net/tcp{,6} (no connection).
    #[arg(long, default_value = "5ms", value_parser = parse_duration, value_name = "DUR", help_heading = "Probes")]
    pub tcp_interval: Duration,
    /// First delay between http:, unix: and remote tcp: attempts (doubling, with jitter).
    #[arg(long, default_value = "10ms", value_parser = parse_duration, value_name = "DUR", help_heading = "Probes")]
    pub backoff_min: Duration,
    /// Longest delay between attempts.
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

    /// Before starting CMD, wait until these hold (comma-separated or repeated).
    #[arg(long, value_delimiter = ',', value_parser = parse_condition, value_name = "COND", help_heading = "Startup")]
    pub wait_for: Vec<Condition>,
    /// --wait-for: one condition is enough.
    #[arg(long, help_heading = "Startup")]
    pub any: bool,
    /// --wait-for: give up after this long, exit 124 naming what is missing.
    #[arg(long, value_parser = parse_duration, value_name = "DUR", help_heading = "Startup")]
    pub timeout: Option<Duration>,
    /// How probes are timed.
    #[command(flatten)]
    pub probe: ProbeArgs,

    /// Publish --name ready when this passes: tcp:PORT, http://127.0.0.1:PORT/PATH,
    /// exec:CMD, file:PATH, unix:PATH or notify (sd_notify READY=1). Held: gone at once if
    /// run dies, retracted when CMD exits.
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
    /// With --ready-when notify: CMD must send WATCHDOG=1 this often (WATCHDOG_USEC is set
    /// for it); a missed deadline marks it unready and publishes a `watchdog` event.
    #[arg(long, value_parser = parse_duration, value_name = "DUR", help_heading = "Readiness")]
    pub watchdog: Option<Duration>,

    /// Stop CMD and exit when any of these holds (e.g. exit:app, phase:stopping).
    #[arg(long, value_delimiter = ',', value_parser = parse_condition, value_name = "COND", help_heading = "Shutdown")]
    pub exit_with: Vec<Condition>,
    /// On SIGTERM, keep CMD running until these hold (e.g. exit:app), bounded by --grace
    /// less --stop-timeout.
    #[arg(long, value_delimiter = ',', value_parser = parse_condition, value_name = "COND", help_heading = "Shutdown")]
    pub stop_after: Vec<Condition>,
    /// The signal that stops CMD (default: the one run received, else SIGTERM).
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
    /// On SIGTERM/SIGINT, set the pod phase (e.g. draining), so `--exit-with phase:...`
    /// elsewhere follows.
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
    /// Write why CMD ended here, in Kubernetes' terminationMessage format (default:
    /// /dev/termination-log when it is writable).
    #[arg(
        long,
        env = "PODSIGNAL_TERMINATION_LOG",
        value_name = "PATH",
        help_heading = "Exit"
    )]
    pub termination_log: Option<PathBuf>,

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
}

/// `lock`.
#[derive(Debug, Args)]
pub struct LockArgs {
    /// The lock's name.
    #[arg(value_parser = parse_name)]
    pub name: Name,
    /// Give up waiting after this long, with exit code 124.
    #[arg(long, value_parser = parse_duration, value_name = "DUR", conflicts_with = "no_wait")]
    pub timeout: Option<Duration>,
    /// Do not wait: exit 75 at once if the lock is held.
    #[arg(long)]
    pub no_wait: bool,
    /// The command to run holding the lock.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// `leader`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct LeaderArgs {
    /// `leader show NAME`.
    #[command(subcommand)]
    pub show: Option<LeaderCommand>,
    /// The campaign's name.
    #[arg(value_parser = parse_name, required = true)]
    pub name: Option<Name>,
    /// Give up campaigning after this long, with exit code 124.
    #[arg(long, value_parser = parse_duration, value_name = "DUR")]
    pub timeout: Option<Duration>,
    /// The command to run as leader.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// `leader show`.
#[derive(Debug, Subcommand)]
pub enum LeaderCommand {
    /// Show the current leader of NAME and its fencing token (exit 1 if nobody leads).
    Show {
        /// The campaign's name.
        #[arg(value_parser = parse_name)]
        name: Name,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `event`.
#[derive(Debug, Subcommand)]
pub enum EventCommand {
    /// Append an event of kind KIND; prints it (with its seq) as JSON
    ///
    ///   $ podsignal event publish cache-warmed --data '{"keys": 1200}'
    #[command(verbatim_doc_comment)]
    Publish {
        /// The event's kind (a name, e.g. cache-warmed).
        #[arg(value_parser = parse_name)]
        kind: Name,
        /// A JSON payload.
        #[arg(long, value_parser = parse_json)]
        data: Option<serde_json::Value>,
    },
    /// Print events as JSON lines, waiting for new ones
    ///
    /// --since N prints the events after sequence number N (0: from the oldest kept), then
    /// follows; without it, only events published from now on.
    ///
    ///   $ podsignal event watch --since 0 --kind phase --count 1
    #[command(verbatim_doc_comment)]
    Watch {
        /// Print the events after this sequence number.
        #[arg(long, value_name = "SEQ")]
        since: Option<u64>,
        /// Only events of this kind (repeatable).
        #[arg(long, value_parser = parse_name)]
        kind: Vec<Name>,
        /// Exit after this many events.
        #[arg(long)]
        count: Option<u64>,
        /// Exit with 124 if --count events have not arrived after this long.
        #[arg(long, value_parser = parse_duration, value_name = "DUR")]
        timeout: Option<Duration>,
    },
}

/// `phase`.
#[derive(Debug, Subcommand)]
pub enum PhaseCommand {
    /// Set the pod phase (and publish a `phase` event)
    ///
    /// Phases only move forward (starting, running, draining, stopping); --force moves back.
    Set {
        /// The new phase.
        phase: Phase,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
        /// Allow moving to an earlier phase.
        #[arg(long)]
        force: bool,
    },
    /// Print the pod phase (starting if never set).
    Get {
        /// Print the whole record as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Wait until the pod phase is PHASE or later.
    Wait {
        /// The phase to reach.
        phase: Phase,
        /// Give up after this long, with exit code 124.
        #[arg(long, value_parser = parse_duration, value_name = "DUR")]
        timeout: Option<Duration>,
    },
}

/// `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

fn parse_name(s: &str) -> Result<Name, String> {
    Name::new(s).map_err(|e| e.to_string())
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    podsignal_proto::parse_duration(s).map_err(|e| e.to_string())
}

fn parse_condition(s: &str) -> Result<Condition, String> {
    Condition::parse(s).map_err(|e| e.to_string())
}

fn parse_probe(s: &str) -> Result<ReadyProbe, String> {
    ReadyProbe::parse(s).map_err(|e| e.to_string())
}

fn parse_http(s: &str) -> Result<HttpCheck, String> {
    HttpCheck::parse(s).map_err(|e| e.to_string())
}

fn parse_signal(s: &str) -> Result<i32, String> {
    crate::supervisor::signals::parse(s)
}

fn parse_remap(s: &str) -> Result<(u8, u8), String> {
    let (from, to) = s.split_once(':').ok_or("expected FROM:TO, e.g. 143:0")?;
    let code = |c: &str| {
        c.parse::<u8>()
            .map_err(|_| format!("{c:?} is not an exit code 0-255"))
    };
    Ok((code(from)?, code(to)?))
}

fn parse_json(s: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(s).map_err(|e| format!("not valid JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
