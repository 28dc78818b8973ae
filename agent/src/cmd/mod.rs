//! One module per subcommand; [`dispatch`] opens the transport (the shared directory, or the
//! agent with `--agent`) once and routes to them. Every subcommand is written against
//! [`Coordinator`], so it behaves the same on either transport.

pub mod agent;
mod completions;
mod event;
mod hold;
mod inject;
mod install;
mod leader;
mod lint;
mod lock;
mod phase;
mod ready;
mod reset;
pub mod run;
mod status;
mod stop;
pub mod timeline;
mod wait;

use podsignal_client::{Coordinator, Volume};
use podsignal_proto::Condition;

use crate::cli::{Cli, Command, EventCommand, GlobalOpts, PhaseCommand};
use crate::exit::{Exit, ExitCode};
use crate::signals::SignalStream;
use crate::transport::{Transport, open_transport};

/// Runs the subcommand and returns the exit code. `signals` is the stream `main` installed
/// first thing, for the subcommands that catch signals.
pub async fn dispatch(cli: Cli, signals: Option<SignalStream>) -> anyhow::Result<ExitCode> {
    let Cli { global, command } = cli;
    let command = match command {
        Command::Install(args) if args.reset => {
            install::install(args)?;
            Command::Reset(crate::cli::ResetArgs {
                reason: Some("podsignal install --reset".into()),
                json: false,
            })
        }
        Command::Install(args) => return install::install(args),
        Command::Inject(args) => return inject::inject(args),
        Command::Lint(args) => return lint::lint(args),
        Command::Completions(args) => return completions::completions(args),
        Command::Guard => return Ok(crate::guard::run()),
        Command::Agent(args) => return agent::agent(&global, args, stream(signals)?).await,
        other => other,
    };
    let source = match &command {
        // `run --name` is this container's identity: its readiness, tombstone and events
        // say NAME as their writer, not `pid@hostname`.
        Command::Run(args) => args.name.as_ref().map(|n| n.to_string()),
        _ => None,
    };
    let missing = when_missing(&command);
    // A command that is not long-running runs alone on a current-thread runtime (`main`):
    // nothing else needs that thread while it reads or writes a file.
    let one_shot = !command.is_long_running();
    let create = missing == WhenMissing::Create;
    let transport = open_transport(&global, source, create, one_shot).await?;
    if let Transport::Volume(v) = &transport {
        check_exists(v, missing)?;
        // What an init container does to the directory it mounts, before anyone uses it.
        if let Command::Reset(args) = command {
            return reset::reset(v, args).await;
        }
    }
    on(&transport, command, &global, signals).await
}

/// What a subcommand does when the shared directory does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WhenMissing {
    /// It writes: it creates the directory.
    Create,
    /// It only shows what is there: a missing directory is an error (a mistyped `--dir` must
    /// neither be created nor read as "nothing there").
    Refuse,
    /// It waits: in an init container it may start before anyone created the directory, so
    /// it says so once and waits for it, without creating it.
    Wait,
    /// It waits only for probes (`tcp:`, `http://`, `unix:`, `file:`, `postgres://`, ...),
    /// or for probes not to hold (`--unready`): the directory does not matter, and is
    /// neither created nor mentioned.
    Unused,
}

fn when_missing(command: &Command) -> WhenMissing {
    match command {
        Command::Status(_) | Command::Timeline(_) | Command::Phase(PhaseCommand::Get { .. }) => {
            WhenMissing::Refuse
        }
        Command::Leader(l) if l.show.is_some() => WhenMissing::Refuse,
        Command::Wait(w) if w.conditions.iter().all(is_probe) => WhenMissing::Unused,
        Command::Wait(_)
        | Command::Phase(PhaseCommand::Wait { .. })
        | Command::Event(EventCommand::Watch { .. }) => WhenMissing::Wait,
        _ => WhenMissing::Create,
    }
}

/// A condition that does not read the shared directory.
fn is_probe(c: &Condition) -> bool {
    match c {
        Condition::Ready(_) | Condition::Exit { .. } | Condition::Phase(_) => false,
        Condition::File(_)
        | Condition::Tcp(_)
        | Condition::Http(_)
        | Condition::Unix(_)
        | Condition::Service(_) => true,
    }
}

fn check_exists(v: &Volume, missing: WhenMissing) -> anyhow::Result<()> {
    let dir = v.path();
    if matches!(missing, WhenMissing::Create | WhenMissing::Unused) || dir.exists() {
        return Ok(());
    }
    match missing {
        WhenMissing::Refuse => Err(Exit::with(
            ExitCode::ERROR,
            format!(
                "{} does not exist: nothing was ever written there (check --dir or PODSIGNAL_DIR)",
                dir.display()
            ),
        )),
        _ => {
            tracing::warn!(
                "{} does not exist yet; waiting for it to be created",
                dir.display()
            );
            Ok(())
        }
    }
}

async fn on<C: Coordinator>(
    c: &C,
    command: Command,
    global: &GlobalOpts,
    signals: Option<SignalStream>,
) -> anyhow::Result<ExitCode> {
    match command {
        Command::Ready(args) => ready::ready(c, args, signals).await,
        Command::Unready(args) => ready::unready(c, args).await,
        Command::Wait(args) => wait::wait(c, args, global.rescan).await,
        Command::Lock(args) => lock::lock(c, args, stream(signals)?).await,
        Command::Leader(args) => leader::leader(c, args, signals).await,
        Command::Event(cmd) => event::event(c, cmd, signals).await,
        Command::Phase(cmd) => phase::phase(c, cmd).await,
        Command::Status(args) => status::status(c, args).await,
        Command::Timeline(args) => timeline::timeline(c, args).await,
        Command::Reset(_) => Err(crate::exit::usage(
            "reset works on the shared directory itself, not through --agent: run it where the directory is mounted (an init container)",
        )),
        Command::Stop(args) => stop::stop(c, args).await,
        Command::Run(args) => run::run(c, global, *args, stream(signals)?).await,
        Command::Install(_)
        | Command::Inject(_)
        | Command::Lint(_)
        | Command::Completions(_)
        | Command::Agent(_)
        | Command::Guard => {
            anyhow::bail!("internal error: this subcommand is dispatched before the transport")
        }
    }
}

/// The signal stream of a subcommand that catches signals (`Command::catches_signals`).
fn stream(signals: Option<SignalStream>) -> anyhow::Result<SignalStream> {
    signals.ok_or_else(|| anyhow::anyhow!("internal error: no signal stream for this subcommand"))
}
