//! `podsignal completions` options.

use clap::{Args, ValueEnum};

/// `completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to print a completion script for.
    #[arg(value_enum)]
    pub shell: CompletionShell,
}

/// `completions SHELL`: the shells a script is generated for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompletionShell {
    /// Bash (bash-completion, or `source` it).
    Bash,
    /// Zsh (a `_podsignal` file in `$fpath`).
    Zsh,
    /// Fish (`~/.config/fish/completions/podsignal.fish`).
    Fish,
}
