//! `podsignal completions SHELL`: a completion script generated from the clap definitions,
//! so it completes exactly the subcommands and options this binary has.

use std::io::Write;

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::{Cli, CompletionShell, CompletionsArgs};
use crate::exit::ExitCode;

pub fn completions(args: CompletionsArgs) -> anyhow::Result<ExitCode> {
    let shell = match args.shell {
        CompletionShell::Bash => Shell::Bash,
        CompletionShell::Zsh => Shell::Zsh,
        CompletionShell::Fish => Shell::Fish,
    };
    // Into a buffer first: clap_complete panics on a failed write (a closed pipe), and a
    // write error must be an error line and exit 1 like everywhere else.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut visible_command(), "podsignal", &mut script);
    let mut out = std::io::stdout().lock();
    out.write_all(&script)
        .and_then(|()| out.flush())
        .map_err(|e| anyhow::anyhow!("writing the completion script: {e}"))?;
    Ok(ExitCode::SUCCESS)
}

/// The command line without its hidden subcommands (`guard`, internal): clap_complete
/// completes hidden subcommands too, and clap cannot remove one, so this is a copy of the
/// top level with the visible ones only.
fn visible_command() -> clap::Command {
    let full = Cli::command();
    let mut cmd = clap::Command::new("podsignal")
        .version(env!("CARGO_PKG_VERSION"))
        .args(full.get_arguments().cloned())
        .subcommands(full.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
    if let Some(about) = full.get_about() {
        cmd = cmd.about(about.clone());
    }
    cmd
}
