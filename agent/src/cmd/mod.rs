//! One module per subcommand; [`dispatch`] routes to them.

mod event;
mod leader;
mod lock;
mod phase;
mod ready;
mod status;
mod wait;

use crate::cli::{Cli, Command};
use crate::exit::ExitCode;

/// Runs the subcommand and returns the exit code.
pub async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let volume = crate::open_volume(&cli.global).await?;
    match cli.command {
        Command::Ready(args) => ready::ready(&volume, args).await,
        Command::Unready(args) => ready::unready(&volume, args).await,
        Command::Wait(args) => wait::wait(&volume, args).await,
        Command::Lock(args) => lock::lock(&volume, args).await,
        Command::Leader(args) => leader::leader(&volume, args).await,
        Command::Event(cmd) => event::event(&volume, cmd).await,
        Command::Phase(cmd) => phase::phase(&volume, cmd).await,
        Command::Status(args) => status::status(&volume, args).await,
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
