//! Process exit codes. Every subcommand uses these; `podsignal --help` and the README list them.

/// A process exit code with a documented meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitCode(pub u8);

impl ExitCode {
    /// Success.
    pub const SUCCESS: ExitCode = ExitCode(0);
    /// An error: bad input that passed parsing, an unreadable directory, a failed write.
    pub const ERROR: ExitCode = ExitCode(1);
    /// Usage: unknown flag, missing argument, malformed value.
    pub const USAGE: ExitCode = ExitCode(2);
    /// `event watch` found that events it had not read yet were rotated away (EX_DATAERR: the
    /// stream it was asked for has a hole). `--on-gap continue` reports the hole and goes on.
    pub const EVENTS_LOST: ExitCode = ExitCode(65);
    /// `lock --no-wait` found the lock held (EX_TEMPFAIL: try again later).
    pub const LOCK_BUSY: ExitCode = ExitCode(75);
    /// A `--timeout` ran out before the condition held (as `timeout(1)`).
    pub const TIMEOUT: ExitCode = ExitCode(124);
    /// The command could not be executed (found but not runnable).
    pub const CANNOT_EXECUTE: ExitCode = ExitCode(126);
    /// The command was not found.
    pub const NOT_FOUND: ExitCode = ExitCode(127);
    /// Base for a child killed by a signal: the code is 128 + the signal number.
    pub const SIGNAL_BASE: u8 = 128;

    /// The code for a child killed by signal `signo` (128 + N, as shells report it).
    pub fn from_signal(signo: i32) -> ExitCode {
        ExitCode(Self::SIGNAL_BASE.saturating_add(u8::try_from(signo).unwrap_or(127)))
    }

    /// The table printed in `--help` and the README.
    pub const TABLE: &'static str = "\
EXIT CODES:
    0      success
    1      error (the message names the path or name involved)
    2      usage error: bad input, found before anything was done (a flag, name,
           duration, URL or JSON; a missing token file; a record or event over its
           size limit)
    65     event watch: events were lost (rotated away before they could be read)
    75     lock --no-wait: the lock is held by someone else
    124    a --timeout ran out before the condition held
    126    the command could not be executed
    127    the command was not found
    128+N  the command was killed by signal N (e.g. 137 = SIGKILL, 143 = SIGTERM)
    other  the command's own exit code (lock, leader, run; run --remap-exit and
           --exit-code change it)";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_codes_add_to_128() {
        assert_eq!(ExitCode::from_signal(9), ExitCode(137));
        assert_eq!(ExitCode::from_signal(15), ExitCode(143));
    }

    #[test]
    fn table_lists_every_constant() {
        for c in [0, 1, 2, 65, 75, 124, 126, 127] {
            assert!(ExitCode::TABLE.contains(&format!("\n    {c} ")), "{c}");
        }
    }
}
