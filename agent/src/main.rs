//! `podsignal`: the one binary. `main` parses the command line, sets up logging and the
//! runtime, and dispatches to `cmd/`; errors become one line on stderr and an exit code.
//!
//! - `cli`: clap definitions (the `--help` text lives there).
//! - `cmd/`: one module per subcommand, written against the `Coordinator` trait, so each
//!   works the same on the volume and through `--agent`.
//! - `signals`: the one signal path, installed first thing.
//! - `child`, `reaper`, `guard`, `leftovers`: running a command that cannot outlive us and
//!   leaves nothing behind (lock, leader, run).
//! - `condition/`: evaluating conditions (`wait`, `run --wait-for`, `--ready-when`).
//! - `supervisor/`: `run`'s child supervision: sd_notify, shutdown steps, the state machine.
//! - `http/`: the agent's HTTP API (`podsignal agent`).
//! - `timeline/`: the timeline model and its pictures (SVG, text, HTML), without I/O.
//! - `manifest`, `inject/`, `lint/`: Kubernetes manifests in, injected YAML or findings out.
//! - `transport`: the directory or an agent, one `Coordinator` for the subcommands.
//! - `exit`: exit codes; `stderr`: writing to a stderr that may be gone.

/// `eprintln!` that never panics: a line for stderr, dropped if stderr is gone
/// ([`stderr`]).
macro_rules! say {
    ($($arg:tt)*) => { $crate::stderr::line(format_args!($($arg)*)) };
}

mod child;
mod cli;
mod cmd;
mod condition;
mod exit;
mod guard;
mod http;
mod inject;
mod leftovers;
mod lint;
mod manifest;
mod memory;
mod reaper;
mod signals;
mod stderr;
mod supervisor;
mod timeline;
mod transport;

use crate::cli::LogFormat;
use crate::exit::ExitCode;

fn main() -> std::process::ExitCode {
    // `run --watchdog` starts its command through this binary again (supervisor::notify):
    // answered before clap, which has nothing to add to an exec.
    if let Some(argv) = supervisor::notify::watchdog_exec_argv() {
        let code = supervisor::notify::exec_with_watchdog_pid(&argv);
        return std::process::ExitCode::from(code.0);
    }
    let cli = cli::parse();
    if let cli::Command::Guard = &cli.command {
        return std::process::ExitCode::from(guard::run().0);
    }
    let format = cli.global.log_format;
    init_logging(format, cli.command.default_log_level());
    let result = match &cli.command {
        // `PODSIGNAL_DISABLED=1`: CMD replaces this process, before the signal handlers and
        // the runtime open descriptors of their own, so that it finds free every number it
        // would find free without podsignal (`--ready-when fd:N` gets /dev/null as N).
        cli::Command::Run(args) if cmd::run::disabled() => cmd::run::exec_disabled(args),
        _ => {
            // Before anything else: a signal that arrives from now on is handled, never lost.
            let signals = if cli.command.catches_signals() {
                match signals::SignalStream::install() {
                    Ok(s) => Some(s),
                    Err(e) => {
                        say!("podsignal: cannot install signal handlers: {e}");
                        return std::process::ExitCode::from(ExitCode::ERROR.0);
                    }
                }
            } else {
                None
            };
            // Servers and supervisors get two workers; a one-shot command (ready, status, wait, ...)
            // runs on this thread alone: no worker threads to start for a few file operations.
            let runtime = if cli.command.is_long_running() {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
            } else {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
            };
            let runtime = match runtime {
                Ok(rt) => rt,
                Err(e) => {
                    say!("podsignal: cannot start the async runtime: {e}");
                    return std::process::ExitCode::from(ExitCode::ERROR.0);
                }
            };
            let result = runtime.block_on(cmd::dispatch(cli, signals));
            // Threads blocked in flock(2) for an abandoned wait must not hold up the exit.
            runtime.shutdown_background();
            result
        }
    };
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            let code = exit::code_of(&e);
            let message = format!("{e:#}");
            let json = matches!(format, LogFormat::Json);
            if message.is_empty() {
                // Nothing to add: the code says it all (an Exit with no message).
            } else if json && tracing::enabled!(tracing::Level::ERROR) {
                // A log collector reading JSON lines gets the last one as JSON too.
                tracing::error!("{message}");
            } else {
                say!("podsignal: {message}");
            }
            code
        }
    };
    std::process::ExitCode::from(code.0)
}

fn init_logging(format: LogFormat, default_level: &str) {
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    // PODSIGNAL_LOG: a level (`debug`) or per-target levels (`podsignal_client=debug,info`).
    // `Targets` rather than `EnvFilter`: the same syntax for that, without a regex engine
    // (200 KiB of binary).
    let default = || default_level.parse::<Targets>().unwrap_or_default();
    let filter = match std::env::var("PODSIGNAL_LOG") {
        Ok(spec) if !spec.trim().is_empty() => spec.parse::<Targets>().unwrap_or_else(|e| {
            say!(
                "podsignal: PODSIGNAL_LOG={spec:?} is not a log filter ({e}); using {default_level}"
            );
            default()
        }),
        _ => default(),
    };
    let builder = tracing_subscriber::fmt()
        .with_ansi(colour())
        .with_writer(|| stderr::Stderr);
    match format {
        LogFormat::Human => builder.with_target(false).finish().with(filter).init(),
        LogFormat::Json => builder.json().finish().with(filter).init(),
    }
}

/// Colour only on a terminal, and never with `NO_COLOR` set to anything (no-color.org):
/// `kubectl logs` and log collectors get plain text.
fn colour() -> bool {
    let refused = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    !refused && std::io::IsTerminal::is_terminal(&std::io::stderr())
}
