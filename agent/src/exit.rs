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

/// The exit code an error stands for: timeouts 124, a busy lock 75, input over a size limit
/// (a record, an event) 2, anything else 1.
pub fn code_of(e: &anyhow::Error) -> ExitCode {
    if let Some(exit) = e.downcast_ref::<Exit>() {
        return exit.code;
    }
    for cause in e.chain() {
        match cause.downcast_ref::<ClientError>() {
            Some(ClientError::Timeout { .. }) => return ExitCode::TIMEOUT,
            Some(ClientError::LockBusy { .. }) => return ExitCode::LOCK_BUSY,
            Some(ClientError::TooLarge { .. } | ClientError::EventTooLarge(_)) => {
                return ExitCode::USAGE;
            }
            Some(ClientError::Agent { code: Some(c), .. }) if c == "payload_too_large" => {
                return ExitCode::USAGE;
            }
            Some(ClientError::EventsRotated { .. }) => return ExitCode::EVENTS_LOST,
            _ => {}
        }
    }
    ExitCode::ERROR
}
