//! The command line: clap definitions only. Each subcommand's behaviour is in `cmd/`.
//!
//! - this file: the top level (global options, the subcommand list);
//! - `coordinate`: ready, unready, wait, lock, leader, event, phase, status;
//! - `supervise`: run, stop, install (and the probe timing `wait` shares);
//! - `agent`: the HTTP agent's options;
//! - `adopt`: inject and lint (manifests in, YAML or findings out);
//! - `completions`: the shell completion scripts' options;
//! - `man` (tests only): docs/man/*.1, rendered from these definitions;
//! - `parse`: value parsers (names, durations, conditions, JSON).

mod adopt;
mod agent;
mod completions;
mod coordinate;
#[cfg(test)]
mod man;
mod parse;
mod supervise;

pub use adopt::*;
pub use agent::*;
pub use completions::*;
pub use coordinate::*;
pub use supervise::*;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use parse::parse_duration;

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
#[command(name = "podsignal", version, verbatim_doc_comment, after_long_help = EXIT_CODES, after_help = "Exit codes: 0 ok, 1 error, 2 usage, 65 events lost, 75 lock busy, 124 timeout, 128+N killed by signal N (--help for more)")]
pub struct Cli {
    /// Options every subcommand takes.
    #[command(flatten)]
    pub global: GlobalOpts,
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// Parses the command line, exiting 2 with clap's message on bad usage.
///
/// Each command's usage line is fixed to the one its `--help` shows
/// (`podsignal ready [OPTIONS] <NAME>`): on a missing argument, clap would otherwise write
/// every option that was given, from the environment too, into the usage line as if it were
/// required (`podsignal ready --dir <PATH> <NAME>` whenever PODSIGNAL_DIR is set, as in every
/// injected container).
pub fn parse() -> Cli {
    use clap::{CommandFactory, FromArgMatches};
    let mut command = Cli::command();
    command.build();
    fix_usage(&mut command);
    let matches = command.get_matches_mut();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.format(&mut command).exit())
}

/// Sets `command`'s usage line, and its subcommands', to the one clap derives from the
/// definition alone (what `--help` shows).
fn fix_usage(command: &mut clap::Command) {
    let usage = command.render_usage().to_string();
    let line = usage.strip_prefix("Usage: ").unwrap_or(&usage).to_owned();
    *command = std::mem::take(command).override_usage(line);
    for sub in command.get_subcommands_mut() {
        fix_usage(sub);
    }
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

    /// Log format on stderr: human (coloured only on a terminal, and never with NO_COLOR
    /// set), or json (one object per line, the final error too).
    ///
    /// Levels come from PODSIGNAL_LOG: a level (debug, info, warn, error, off) or per-target
    /// levels (podsignal_client=debug,info). By default agent, run, lock, leader, wait,
    /// ready --hold and reset log at info (what they wait for, hold, start, stop and reset);
    /// the other subcommands, which do one thing and return, only warn.
    #[arg(long, global = true, env = "PODSIGNAL_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human, help_heading = "Logging")]
    pub log_format: LogFormat,

    /// Go through a `podsignal agent` at URL (http://HOST:PORT or unix:PATH) instead of
    /// the shared directory: every subcommand but agent, install and reset works the same way
    /// (file:, tcp:, http:// and unix: conditions are checked here, where the command runs).
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
    /// With --hold, podsignal stays in the foreground (saying so on stderr, with its pid)
    /// and the record counts only while it runs: on SIGTERM/SIGINT (Ctrl-C) it retracts the
    /// record, and if it is killed (even kill -9) every waiter sees NAME unready at once.
    ///
    ///   $ podsignal ready db-migrated --reason "schema v42"
    ///   $ podsignal ready proxy --hold &
    #[command(verbatim_doc_comment)]
    Ready(ReadyArgs),
    /// Mark NAME unready (a sticky record with an optional reason)
    ///
    /// Waiters on NAME keep waiting, and `status` and timeout messages show the reason. A
    /// record held by `ready --hold` or `run --ready-when` is its holder's: this overwrites
    /// it until the holder writes again.
    ///
    ///   $ podsignal unready db-migrated --reason "rolling back to v41"
    #[command(verbatim_doc_comment)]
    Unready(UnreadyArgs),
    /// Wait until every condition holds (or one, with --any)
    ///
    /// A condition is a readiness NAME, exit:NAME[=CODE] (the container running
    /// `run --name NAME` exited), phase:PHASE, file:PATH, tcp:HOST:PORT, http://...,
    /// unix:PATH, or a server answering its own protocol: postgres://HOST[:PORT],
    /// redis://HOST[:PORT], mysql://HOST[:PORT] (docs/conditions.md). Returns 0 as soon as
    /// they hold (at once if they already do), or 124 after --timeout with one line naming
    /// each unmet condition and why (--on-timeout continue: that line as a warning, and 0).
    /// --stable DUR: they must hold DUR in a row, a lapse starts over. --unready: wait for
    /// NAMEs not ready and probes failing (a port nobody listens on). While it waits, it logs
    /// what is still missing and why after 5s, 10s more, 20s more, ... (every minute at most).
    ///
    ///   $ podsignal wait proxy db-migrated --timeout 2m
    ///   $ podsignal wait tcp:db:5432 http://127.0.0.1:8080/healthz --timeout 30s
    ///   $ podsignal wait postgres://db redis://cache:6380 --timeout 2m
    ///   $ podsignal wait tcp:4191 --timeout 30s --on-timeout continue   # mesh or not
    ///   $ podsignal wait db --stable 10s      # db ready for 10s in a row
    ///   $ podsignal wait exit:app=0
    ///   $ podsignal wait --unready web        # until web's holder is gone
    ///   $ podsignal wait --unready tcp:8080   # until the old server let go of the port
    #[command(verbatim_doc_comment)]
    Wait(WaitArgs),
    /// Run a command holding a lock, with a fencing token
    ///
    /// The lock is locks/NAME.lock in the shared directory, a plain flock(2) file:
    /// `flock DIR/locks/NAME.lock CMD` and `podsignal lock NAME -- CMD` exclude each other.
    /// CMD inherits the locked descriptor (as with flock(1); its number is in
    /// PODSIGNAL_LOCK_FD) and gets the token in PODSIGNAL_FENCING_TOKEN and the name in
    /// PODSIGNAL_LOCK. The lock is free only once CMD and everything it started are gone: CMD
    /// runs in its own process group; what it leaves running when it exits gets SIGTERM, then
    /// SIGKILL after --grace; if podsignal is killed, CMD and its process group are killed
    /// with it. Exits with CMD's code. It excludes the processes sharing the directory (the
    /// containers of one Pod), not other Pods: across Pods, use a Kubernetes Lease.
    ///
    ///   $ podsignal lock migrations --timeout 5m -- ./migrate
    ///   $ podsignal lock cron --no-wait -- ./job || echo "another container runs it"
    #[command(verbatim_doc_comment)]
    Lock(LockArgs),
    /// Campaign for leadership, then run a command as leader; or show the leader
    ///
    /// `podsignal leader NAME -- CMD` blocks until this process leads NAME, then runs CMD with
    /// PODSIGNAL_FENCING_TOKEN and PODSIGNAL_LEADER (NAME) set, and the leadership's
    /// descriptor inherited (its number in PODSIGNAL_LOCK_FD); leadership ends when CMD and
    /// everything it started are gone (or podsignal dies, taking them with it), and the next
    /// campaigner takes over within milliseconds with a higher token. Campaigners are the
    /// processes sharing the directory (the containers of one Pod), not a Deployment's
    /// replicas: across Pods, use a Kubernetes Lease.
    ///
    ///   $ podsignal leader scheduler -- ./schedule-jobs
    ///   $ podsignal leader show scheduler
    #[command(verbatim_doc_comment)]
    Leader(LeaderArgs),
    /// Publish or watch lifecycle events
    ///
    /// An append-only log of JSON events in the shared directory, numbered by `seq`, kept to
    /// about 4 MiB (docs/protocol.md).
    ///
    ///   $ podsignal event publish cache-warmed --data '{"keys": 1200}'
    ///   $ podsignal event watch --since 0
    #[command(subcommand, verbatim_doc_comment)]
    Event(EventCommand),
    /// Set, get or wait for the pod phase (starting < running < draining < stopping)
    ///
    /// One phase for the whole pod, in phase.json; it only moves forward unless forced, and
    /// each change is also a `phase` event.
    ///
    ///   $ podsignal phase set draining --reason SIGTERM
    ///   $ podsignal phase get
    ///   $ podsignal phase wait running --timeout 2m
    #[command(subcommand, verbatim_doc_comment)]
    Phase(PhaseCommand),
    /// Start a new generation of the shared directory: for an init container, when a Pod
    /// restarts in place
    ///
    /// A Pod restarted in place (RestartAllContainers) runs its init containers again but
    /// keeps its emptyDir: a sidecar with --exit-with exit:app would find app's last
    /// tombstone and exit at once. reset removes tombstones, stop requests and readiness
    /// (held readiness whose holder lives is carried over), sets the phase to starting and
    /// appends a `generation` event; records of older generations read as absent. Fencing
    /// tokens and the event log go on. Prints the new generation (1 before any reset). Run it
    /// in the first init container, on the directory itself (not through --agent).
    ///
    ///   $ podsignal reset --reason "pod restarted in place"
    ///   $ podsignal install /podsignal-bin/ --reset   # what `podsignal inject` adds
    #[command(verbatim_doc_comment)]
    Reset(ResetArgs),
    /// Show everything in the shared directory: phase, readiness, locks, leaders, events
    ///
    /// Tables on stdout: the phase, each readiness record (held or sticky, its holder alive
    /// or gone), locks and leaders with their holders and fencing tokens, the event log's
    /// sequence numbers, and any broken file found. --json prints the same as one document.
    ///
    ///   $ podsignal status
    ///   $ podsignal status --json | jq '.readiness'
    ///   $ kubectl exec mypod -c app -- podsignal status
    #[command(verbatim_doc_comment)]
    Status(StatusArgs),
    /// Draw what the containers did, when, and who waited on whom: a timeline of the events
    ///
    /// Reads the event log (and the tombstones) of the shared directory and draws one lane per
    /// container (`run --name`): waiting (and on what), started, ready, unready, draining,
    /// stopping, stop requests and exits (code, reason); each restart is a run of its own
    /// (#2, #3); phase changes and generations are vertical markers, lock and leader
    /// tenures are bars. Long quiet stretches are collapsed into axis breaks. Works on the
    /// live directory (a debug container) and on a copy after the Pod is gone. The picture
    /// is bounded (lanes, changes and markers are capped; it says what it left out).
    ///
    /// --since and --until take a time (2025-11-24T16:00:00Z, or Unix milliseconds), an
    /// offset from the first event (+30s), or a duration before the last event (5m: the
    /// last five minutes).
    ///
    ///   $ podsignal timeline                              # a text chart, 100 columns
    ///   $ podsignal timeline --format svg > timeline.svg  # hover for exact times and reasons
    ///   $ podsignal timeline --format html --since 10m > last-10-minutes.html
    ///   $ kubectl debug -it mypod --image=IMAGE --target=app -- podsignal timeline
    #[command(verbatim_doc_comment)]
    Timeline(TimelineArgs),
    /// Run a container's command: wait for its dependencies, publish its readiness, stop
    /// it in step with the others, and exit with its code
    ///
    /// The entrypoint that replaces wait-for-it, linkerd-await, kubexit, scuttle and tini:
    /// --wait-for blocks until conditions hold (docs/conditions.md); --ready-when publishes
    /// the readiness of --name, held while CMD runs (without it: ready once CMD has
    /// started; --ready-when never opts out); when CMD exits, a tombstone
    /// (exit:NAME) and an `exit` event tell the others. Signals are forwarded to CMD; zombies
    /// are reaped (as PID 1, or as a child subreaper); if run is killed, CMD dies with it.
    /// A --stop-on signal (SIGTERM, SIGINT; a container's lifecycle.stopSignal) starts the
    /// stop: drain and pre-stop steps (bounded by --grace), the stop signal, --grace,
    /// SIGKILL. Why CMD ended goes to the tombstone and, after what CMD wrote there, to
    /// /dev/termination-log. run exits with CMD's code, 128+N if a signal N killed it, 124
    /// if --wait-for timed out (--on-timeout continue starts CMD instead, after a warning),
    /// 128+N if stop signal N arrived while waiting.
    ///
    ///   $ podsignal run --name app --wait-for proxy,db-migrated --ready-when tcp:8080 -- ./server
    ///   $ podsignal run --wait-for postgres://db,redis://cache --stable 5s -- ./worker
    ///   $ podsignal run --wait-for tcp:4191 --timeout 30s --on-timeout continue -- ./app
    ///   $ podsignal run --name proxy --ready-when http://127.0.0.1:15021/ready \
    ///         --exit-with exit:app --exit-code on-stop-zero -- ./proxy
    ///   $ podsignal run --name web --drain --drain-ports 8080 --grace 20s -- ./web
    ///   $ podsignal run --name api --ready-when notify -- ./api   # the child sends READY=1
    ///   $ podsignal run --name db --ready-when fd:3 -- ./db       # writes a newline to fd 3
    ///   $ podsignal run --name nginx --stop-on QUIT,TERM,INT -- nginx -g 'daemon off;'
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
    /// Events, phase, shutdown, the timeline as SVG), plus /healthz, /readyz, /metrics and
    /// /openapi.json, and a live page at / for a browser (read-only). The directory stays the source of truth:
    /// the API and `podsignal` on the volume agree. Binds loopback only, unless
    /// --allow-remote with a --token-file. SIGTERM/SIGINT: open long-polls get 503, streams
    /// end, everything held is released, exit 0. See docs/http-api.md.
    ///
    ///   $ podsignal agent --listen 127.0.0.1:7781
    ///   $ kubectl port-forward POD 7781     # then open http://localhost:7781/
    ///   $ podsignal agent --listen unix:/run/podsignal/agent.sock
    ///   $ curl -s localhost:7781/v1/readiness/db?wait=30s
    #[command(verbatim_doc_comment)]
    Agent(AgentArgs),
    /// Add podsignal to Kubernetes manifests: a shared volume, an install init container,
    /// each container's command wrapped in `podsignal run`
    ///
    /// Reads multi-document YAML (Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet,
    /// Job, CronJob, List) and writes the injected YAML to stdout; other objects pass
    /// through unchanged. Told by annotations on the pod template (podsignal.io/sidecars,
    /// podsignal.io/CONTAINER.wait-for, ...: docs/inject.md) or by the flags below, which
    /// override them. Every field it does not touch is kept, in its order; comments are
    /// lost and YAML anchors are expanded. Injecting twice gives the same result;
    /// --uninject restores the original exactly. Bad input: one line naming the document
    /// and the place, exit 2, nothing written.
    ///
    ///   $ podsignal inject app.yaml | kubectl apply -f -
    ///   $ podsignal inject --sidecar proxy deploy.yaml
    ///   $ podsignal inject --job --sidecar cloud-sql-proxy job.yaml
    ///   $ helm install web ./chart --post-renderer podsignal --post-renderer-args inject
    ///   $ podsignal inject --uninject injected.yaml
    #[command(verbatim_doc_comment)]
    Inject(InjectArgs),
    /// Find multi-container anti-patterns in Kubernetes manifests
    ///
    /// Checks how the containers of one Pod depend on each other: polling loops, Job
    /// sidecars that never exit, preStop sleeps used as ordering, dangling or cyclic
    /// --wait-for, mixed UIDs on a shared volume, ... (--list-rules). Each finding has a
    /// rule id, a severity, the object and container, one line of advice and a link to
    /// docs/patterns.md#lint-rules (plain: one line per finding on stdout, a summary line on
    /// stderr). Silence a rule on an object with the annotation
    /// podsignal.io/lint-ignore: RULE[,RULE] (an unknown id is itself a finding). Exit 0
    /// clean, 1 on a finding at or above --fail-on, 2 on bad input.
    ///
    ///   $ podsignal lint k8s/
    ///   $ helm template ./chart | podsignal lint --format sarif > lint.sarif
    #[command(verbatim_doc_comment)]
    Lint(LintArgs),
    /// Print a shell completion script (bash, zsh or fish)
    ///
    /// Generated from this binary's own command line: it completes exactly the subcommands
    /// and options this version has. Load it once, or install it where the shell looks:
    ///
    ///   $ source <(podsignal completions bash)
    ///   $ podsignal completions bash > ~/.local/share/bash-completion/completions/podsignal
    ///   $ podsignal completions zsh > ~/.zfunc/_podsignal    # with fpath+=(~/.zfunc)
    ///   $ podsignal completions fish > ~/.config/fish/completions/podsignal.fish
    #[command(verbatim_doc_comment)]
    Completions(CompletionsArgs),
    /// Kill a process group when the wrapper that started it dies (internal: started by
    /// lock, leader and run, never by hand).
    #[command(hide = true)]
    Guard,
}

impl Command {
    /// Whether the subcommand serves or supervises for long (agent, run, lock, leader): it
    /// gets a multi-threaded runtime; the others run on the main thread alone.
    pub fn is_long_running(&self) -> bool {
        match self {
            Command::Agent(_) | Command::Run(_) | Command::Lock(_) => true,
            Command::Leader(l) => l.show.is_none(),
            _ => false,
        }
    }

    /// The log level when PODSIGNAL_LOG does not say: `info` for the subcommands that wait
    /// or stay in the foreground (their operators read what they wait for, hold, start and
    /// stop in `kubectl logs`), `warn` for those that do one thing and return.
    pub fn default_log_level(&self) -> &'static str {
        let lifecycle = match self {
            Command::Agent(_) | Command::Run(_) | Command::Lock(_) | Command::Wait(_) => true,
            Command::Leader(l) => l.show.is_none(),
            Command::Ready(r) => r.hold,
            // Waits that say what they still wait for (reminders).
            Command::Phase(PhaseCommand::Wait { .. }) => true,
            Command::Stop(s) => s.wait,
            // A new generation, in an init container's log.
            Command::Reset(_) => true,
            Command::Install(i) => i.reset,
            _ => false,
        };
        if lifecycle { "info" } else { "warn" }
    }

    /// Whether the subcommand acts on SIGTERM/SIGINT itself (and forwards signals): then
    /// its signal stream is installed first thing, so that no signal is lost.
    pub fn catches_signals(&self) -> bool {
        match self {
            Command::Run(_) | Command::Lock(_) | Command::Agent(_) => true,
            Command::Leader(l) => l.show.is_none(),
            Command::Ready(r) => r.hold,
            Command::Event(e) => matches!(e, EventCommand::Watch { .. }),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn usage_lines_do_not_list_the_options_given_as_required() {
        let mut command = Cli::command();
        command.build();
        fix_usage(&mut command);
        let err = command
            .try_get_matches_from_mut(["podsignal", "--dir", "/x", "--durable", "ready"])
            .unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
        let text = err.render().to_string();
        assert!(
            text.contains("Usage: podsignal ready [OPTIONS] <NAME>\n"),
            "{text}"
        );
        let sub = command.find_subcommand_mut("event").unwrap();
        let publish = sub.find_subcommand_mut("publish").unwrap();
        assert_eq!(
            publish.render_usage().to_string(),
            "Usage: podsignal event publish [OPTIONS] <KIND>"
        );
    }
}
