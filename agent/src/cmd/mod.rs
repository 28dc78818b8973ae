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
mod run;
mod status;
mod stop;
mod wait;

use podsignal_client::Coordinator;

use crate::Transport;
use crate::cli::{Cli, Command, GlobalOpts};
use crate::exit::ExitCode;
use crate::signals::SignalStream;

/// Runs the subcommand and returns the exit code. `signals` is the stream `main` installed
/// first thing, for the subcommands that catch signals.
pub async fn dispatch(cli: Cli, signals: Option<SignalStream>) -> anyhow::Result<ExitCode> {
    let Cli { global, command } = cli;
    let command = match command {
        Command::Install(args) => return install::install(args),
        Command::Inject(args) => return inject::inject(args),
        Command::Lint(args) => return lint::lint(args),
        Command::Completions(args) => return completions::completions(args),
        Command::Guard(args) => return Ok(crate::guard::run(args.pgid)),
        Command::Agent(args) => return agent::agent(&global, args, stream(signals)?).await,
        Command::Run(args) if run::disabled() => return run::exec_disabled(&args),
        other => other,
    };
    let source = match &command {
        // `run --name` is this container's identity: its readiness, tombstone and events
        // say NAME as their writer, not `pid@hostname`.
        Command::Run(args) => args.name.as_ref().map(|n| n.to_string()),
        _ => None,
    };
    match crate::open_transport(&global, source).await? {
        Transport::Volume(v) => on(&v, command, &global, signals).await,
        Transport::Agent(a) => on(&a, command, &global, signals).await,
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
        Command::Stop(args) => stop::stop(c, args).await,
        Command::Run(args) => run::run(c, global, *args, stream(signals)?).await,
        Command::Install(_)
        | Command::Inject(_)
        | Command::Lint(_)
        | Command::Completions(_)
        | Command::Agent(_)
        | Command::Guard(_) => {
            anyhow::bail!("internal error: this subcommand is dispatched before the transport")
        }
    }
}

/// The signal stream of a subcommand that catches signals (`Command::catches_signals`).
fn stream(signals: Option<SignalStream>) -> anyhow::Result<SignalStream> {
    signals.ok_or_else(|| anyhow::anyhow!("internal error: no signal stream for this subcommand"))
}
