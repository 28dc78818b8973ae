//! How the binary turns results into exit codes ([`ExitCode`] constants from the protocol).

use podsignal_client::Error as ClientError;
pub use podsignal_proto::ExitCode;

/// An error that ends the process with a specific code (not the generic 1).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Exit {
    /// The exit code.
    pub code: ExitCode,
    /// The one-line message printed on stderr; empty prints nothing.
    pub message: String,
}

impl Exit {
    /// Ends the process with `code`, printing `message` (if not empty).
    pub fn with(code: ExitCode, message: impl Into<String>) -> anyhow::Error {
        Exit {
            code,
            message: message.into(),
        }
        .into()
    }
}

/// Bad input, found before anything was done: exit 2 (usage), printing `message`. The one
/// way the binary reports a usage error of its own (clap reports its parse errors with 2
/// too; a client error the input caused is told by [`ClientError::is_bad_input`]).
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    Exit::with(ExitCode::USAGE, message)
}

/// The exit code an error stands for: an [`Exit`]'s own (usage errors are [`usage`]), then
/// for client errors: bad input 2, events lost 65, a busy lock 75, timeouts 124; else 1.
pub fn code_of(e: &anyhow::Error) -> ExitCode {
    if let Some(exit) = e.downcast_ref::<Exit>() {
        return exit.code;
    }
    for cause in e.chain() {
        match cause.downcast_ref::<ClientError>() {
            Some(c) if c.is_bad_input() => return ExitCode::USAGE,
            Some(ClientError::Timeout { .. }) => return ExitCode::TIMEOUT,
            Some(ClientError::LockBusy { .. }) => return ExitCode::LOCK_BUSY,
            Some(ClientError::EventsRotated { .. }) => return ExitCode::EVENTS_LOST,
            _ => {}
        }
    }
    ExitCode::ERROR
}
