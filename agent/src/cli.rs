//! The command line: clap definitions only. Each subcommand's behaviour is in `cmd/`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use podsignal_proto::{Name, Phase};

const EXIT_CODES: &str = podsignal_proto::ExitCode::TABLE;

/// Coordinate the containers of a Kubernetes Pod through a shared directory.
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
#[derive(Debug, Parser)]
#[command(name = "podsignal", version, after_long_help = EXIT_CODES, after_help = "Exit codes: 0 ok, 1 error, 2 usage, 75 lock busy, 124 timeout, 128+N killed by signal N (--help for more)")]
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
    /// Mark NAME ready (sticky, or held with --hold).
    ///
    /// Without --hold the record is sticky: it stays ready until `podsignal unready NAME`.
    /// With --hold, podsignal stays in the foreground and the record counts only while it
    /// runs: on SIGTERM/SIGINT it retracts the record, and if it is killed (even kill -9)
    /// every waiter sees NAME unready at once.
    ///
    ///   $ podsignal ready db-migrated --reason "schema v42"
    ///   $ podsignal ready proxy --hold &
    Ready(ReadyArgs),
    /// Mark NAME unready (a sticky record with an optional reason).
    Unready(UnreadyArgs),
    /// Wait until every NAME is ready (or one, with --any).
    ///
    /// Returns 0 as soon as the condition holds (at once if it already does), or 124 after
    /// --timeout with one line naming what is still missing and why.
    ///
    ///   $ podsignal wait proxy db-migrated --timeout 2m
    ///   $ podsignal wait --unready web        # until web's holder is gone
    Wait(WaitArgs),
    /// Run a command holding a lock, with a fencing token.
    ///
    /// The lock is locks/NAME.lock in the shared directory, a plain flock(2) file:
    /// `flock DIR/locks/NAME.lock CMD` and `podsignal lock NAME -- CMD` exclude each other.
    /// CMD inherits the locked descriptor (as with flock(1)) and gets the token in
    /// PODSIGNAL_FENCING_TOKEN. If podsignal is killed, CMD is killed with it, so the lock is
    /// free only once its holder and everything it started are gone. Exits with CMD's code.
    ///
    ///   $ podsignal lock migrations --timeout 5m -- ./migrate
    ///   $ podsignal lock cron --no-wait -- ./job || echo "another replica runs it"
    Lock(LockArgs),
    /// Campaign for leadership, then run a command as leader; or show the leader.
    ///
    /// `podsignal leader NAME -- CMD` blocks until this process leads NAME, then runs CMD with
    /// PODSIGNAL_FENCING_TOKEN set; leadership ends when CMD exits (or podsignal dies), and
    /// the next campaigner takes over within milliseconds with a higher token.
    ///
    ///   $ podsignal leader scheduler -- ./schedule-jobs
    ///   $ podsignal leader show scheduler
    Leader(LeaderArgs),
    /// Publish or watch lifecycle events.
    #[command(subcommand)]
    Event(EventCommand),
    /// Set, get or wait for the pod phase (starting < running < draining < stopping).
    #[command(subcommand)]
    Phase(PhaseCommand),
    /// Show everything in the shared directory: phase, readiness, locks, leaders, events.
    Status(StatusArgs),
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
    /// The names to wait for.
    #[arg(required = true, value_parser = parse_name)]
    pub names: Vec<Name>,
    /// Give up after this long (e.g. 500ms, 30s, 2m) with exit code 124.
    #[arg(long, value_parser = parse_duration, value_name = "DUR")]
    pub timeout: Option<Duration>,
    /// Return when any one name holds, instead of all.
    #[arg(long)]
    pub any: bool,
    /// Wait for the names to be NOT ready (absent, unready, or their holder gone).
    #[arg(long)]
    pub unready: bool,
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
    /// Append an event of kind KIND; prints it (with its seq) as JSON.
    ///
    ///   $ podsignal event publish cache-warmed --data '{"keys": 1200}'
    Publish {
        /// The event's kind (a name, e.g. cache-warmed).
        #[arg(value_parser = parse_name)]
        kind: Name,
        /// A JSON payload.
        #[arg(long, value_parser = parse_json)]
        data: Option<serde_json::Value>,
    },
    /// Print events as JSON lines, waiting for new ones.
    ///
    /// --since N prints the events after sequence number N (0: from the oldest kept), then
    /// follows; without it, only events published from now on.
    ///
    ///   $ podsignal event watch --since 0 --kind phase --count 1
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
    /// Set the pod phase (and publish a `phase` event).
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
