//! The coordination subcommands: ready, unready, wait, lock, leader, event, phase, status,
//! timeline.

use std::ffi::OsString;

use std::time::Duration;

use clap::{Args, Subcommand};
use podsignal_proto::{Condition, Name, Phase};

use super::parse::*;

use super::ProbeArgs;
use crate::condition::OnTimeout;

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
    /// tcp:HOST:PORT, http://... (https:// is refused: no TLS), unix:PATH,
    /// postgres://HOST[:PORT], redis://HOST[:PORT], mysql://HOST[:PORT].
    #[arg(required = true, value_parser = parse_condition, value_name = "COND")]
    pub conditions: Vec<Condition>,
    /// Give up after this long (e.g. 500ms, 1.5s, 30s, 2m) with exit code 124.
    #[arg(long, value_parser = parse_duration, value_name = "DUR")]
    pub timeout: Option<Duration>,
    /// What a --timeout does: fail (exit 124) or continue (exit 0 after a warning naming
    /// what was missing: the same script with and without the dependency).
    #[arg(long, value_enum, default_value_t = OnTimeout::Fail, requires = "timeout", value_name = "WHAT")]
    pub on_timeout: OnTimeout,
    /// Return when any one condition holds, instead of all.
    #[arg(long)]
    pub any: bool,
    /// The conditions must hold for this long in a row; one that stops holding meanwhile (a
    /// dependency that went unready, or restarted) starts the wait over.
    #[arg(long, value_parser = parse_duration, value_name = "DUR", conflicts_with = "unready")]
    pub stable: Option<Duration>,
    /// Wait for the conditions NOT to hold: NAMEs absent, unready, or their holder gone;
    /// probes (tcp:, http://, unix:, postgres://, ...) failing: nothing listens on the port,
    /// the URL answers no 2xx (or not what its #options want), the server does not answer.
    #[arg(long)]
    pub unready: bool,
    /// How probes are timed.
    #[command(flatten)]
    pub probe: ProbeArgs,
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
    /// When CMD exits, what it left running (its process group, its orphans) gets SIGTERM,
    /// then SIGKILL after this long; the lock is released once they are gone.
    #[arg(long, default_value = "5s", value_parser = parse_duration, value_name = "DUR")]
    pub grace: Duration,
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
    /// When CMD exits, what it left running (its process group, its orphans) gets SIGTERM,
    /// then SIGKILL after this long; leadership passes on once they are gone.
    #[arg(long, default_value = "5s", value_parser = parse_duration, value_name = "DUR")]
    pub grace: Duration,
    /// The command to run as leader.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// `leader show`.
#[derive(Debug, Subcommand)]
pub enum LeaderCommand {
    /// Show the current leader of NAME and its fencing token (exit 1 if nobody leads)
    ///
    /// Prints `NAME: led by HOLDER, fencing token N`; with --json, {"name":..,"leader":..}
    /// (leader null when nobody leads).
    ///
    ///   $ podsignal leader show scheduler
    ///   $ podsignal leader show scheduler --json
    #[command(verbatim_doc_comment)]
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
    /// follows; without it, only events published from now on. The log keeps about 4 MiB:
    /// if events are rotated away before the watcher read them (it was paused, or too slow),
    /// it says so on stderr and exits 65; with --on-gap continue it prints a line
    /// {"lost":{"from":A,"to":B}} instead and goes on.
    ///
    /// --timeout ends the watch: exit 0 (a time-boxed look), or with --count, exit 124 when
    /// fewer than --count events arrived.
    ///
    ///   $ podsignal event watch --since 0 --kind phase --count 1 --timeout 30s
    ///   $ podsignal event watch --since 0 --timeout 2s > recent.jsonl
    ///   $ podsignal event watch --since 41 --on-gap continue | ./consume
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
        /// Stop watching after this long and exit 0; with --count, exit 124 if fewer than
        /// --count events arrived by then.
        #[arg(long, value_parser = parse_duration, value_name = "DUR")]
        timeout: Option<Duration>,
        /// When events were lost (rotated away unread): fail (exit 65) or continue (print a
        /// `{"lost":{...}}` line and go on).
        #[arg(long, value_enum, default_value_t = OnGap::Fail, value_name = "WHAT")]
        on_gap: OnGap,
    },
}

/// `event watch --on-gap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnGap {
    /// Say so on stderr and exit 65.
    Fail,
    /// Print a `{"lost":{"from":A,"to":B}}` line and go on.
    Continue,
}

/// `phase`.
#[derive(Debug, Subcommand)]
pub enum PhaseCommand {
    /// Set the pod phase (and publish a `phase` event)
    ///
    /// Phases only move forward (starting, running, draining, stopping); --force moves back.
    ///
    ///   $ podsignal phase set running
    ///   $ podsignal phase set draining --reason "node drain"
    ///   $ podsignal phase set running --force     # back from draining
    #[command(verbatim_doc_comment)]
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
    /// Print the pod phase (starting if never set)
    ///
    /// Prints the phase's name on stdout; with --json, {"phase":..,"record":..} (record null
    /// when no phase was ever set).
    ///
    ///   $ podsignal phase get
    ///   $ podsignal phase get --json
    #[command(verbatim_doc_comment)]
    Get {
        /// Print the whole record as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Wait until the pod phase is PHASE or later
    ///
    /// Prints the phase it found on stdout, which may be later than PHASE (`draining` when
    /// waiting for `running` in a pod already draining). Exit 124 after --timeout.
    ///
    ///   $ podsignal phase wait running --timeout 2m && ./serve
    ///   $ podsignal phase wait draining; ./flush-caches
    #[command(verbatim_doc_comment)]
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

/// `timeline`.
#[derive(Debug, Args)]
pub struct TimelineArgs {
    /// What to draw: a text chart, an SVG picture, or an HTML page (the picture and a table).
    #[arg(long, value_enum, default_value_t = TimelineFormat::Text)]
    pub format: TimelineFormat,
    /// From this time: 2025-11-24T16:00:00Z, Unix ms, +DUR after the first event, or DUR
    /// before the last.
    #[arg(long, value_parser = parse_time_arg, value_name = "TIME")]
    pub since: Option<crate::timeline::TimeArg>,
    /// Up to this time (same forms as --since); default: now while something still runs or is
    /// held, else the last event.
    #[arg(long, value_parser = parse_time_arg, value_name = "TIME")]
    pub until: Option<crate::timeline::TimeArg>,
    /// Only generation N: from `podsignal reset`'s N-th generation event to the next (1: up
    /// to the first reset).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub generation: Option<u64>,
    /// The text chart's width in columns (40 to 400).
    #[arg(long, default_value_t = 100, value_name = "COLUMNS", value_parser = clap::value_parser!(u16).range(40..=400))]
    pub width: u16,
}

/// `timeline --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TimelineFormat {
    /// An ASCII Gantt chart.
    Text,
    /// A self-contained SVG document.
    Svg,
    /// An HTML page: the SVG and a table of every change.
    Html,
}

/// `reset`.
#[derive(Debug, Args)]
pub struct ResetArgs {
    /// Why (kept in generation.json and the `generation` event).
    #[arg(long)]
    pub reason: Option<String>,
    /// Print what the reset did as JSON (the `generation` event's data) instead of the new
    /// generation's number.
    #[arg(long)]
    pub json: bool,
}
