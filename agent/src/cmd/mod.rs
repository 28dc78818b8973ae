//! One module per subcommand; [`dispatch`] routes to them.

pub mod agent;
mod event;
mod install;
mod leader;
mod lock;
mod phase;
mod ready;
mod run;
mod status;
mod stop;
mod wait;

use crate::cli::{Cli, Command};
use crate::exit::ExitCode;

/// Runs the subcommand and returns the exit code.
pub async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    // `run` installs its signal handlers before anything else, the volume included.
    let command = match cli.command {
        Command::Run(args) => return run::run(&cli.global, *args).await,
        Command::Install(args) => return install::install(args),
        Command::Agent(args) => return agent::agent(&cli.global, args).await,
        other => other,
    };
    let cli = Cli { command, ..cli };
    let client = crate::open_client(&cli.global).await?;
    match cli.command {
        Command::Ready(args) => ready::ready(&client, args).await,
        Command::Unready(args) => ready::unready(&client, args).await,
        Command::Wait(args) => wait::wait(&client, args).await,
        Command::Lock(args) => lock::lock(&client, args).await,
        Command::Leader(args) => leader::leader(&client, args).await,
        Command::Event(cmd) => event::event(&client, cmd).await,
        Command::Phase(cmd) => phase::phase(&client, cmd).await,
        Command::Status(args) => status::status(&client, args).await,
        Command::Stop(args) => stop::stop(volume_only(&client, "stop")?, args).await,
        Command::Run(_) | Command::Install(_) | Command::Agent(_) => {
            unreachable!("dispatched above")
        }
    }
}

/// Runs `run` (a command under a lock or leadership) while the hold lasts. A hold through
/// the agent can be lost (the agent stopped or the connection broke): then the command no
/// longer has the lock, so podsignal fails at once, and the command, which cannot outlive
/// podsignal (see `child`), is killed as the process exits.
pub async fn run_while_held(
    run: impl std::future::Future<Output = anyhow::Result<ExitCode>>,
    lost: impl std::future::Future<Output = String>,
    what: &str,
) -> anyhow::Result<ExitCode> {
    tokio::select! {
        code = run => code,
        why = lost => anyhow::bail!("{what} lost while the command ran: {why}"),
    }
}

/// The volume, for subcommands that do not work through `--agent`.
fn volume_only<'a>(
    client: &'a podsignal_client::Client,
    subcommand: &str,
) -> anyhow::Result<&'a podsignal_client::Volume> {
    match client {
        podsignal_client::Client::Volume(v) => Ok(v),
        podsignal_client::Client::Agent(a) => Err(crate::exit::Exit::with(
            ExitCode::USAGE,
            format!(
                "{subcommand} works on the shared directory only, not through --agent {}",
                a.url()
            ),
        )),
    }
}

/// Waits for SIGTERM or SIGINT and returns the signal number.
pub async fn termination_signal() -> anyhow::Result<i32> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = term.recv() => signal_hook::consts::SIGTERM,
        _ = int.recv() => signal_hook::consts::SIGINT,
    })
}
