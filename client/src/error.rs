//! The client's one error type. Every variant names the path or name involved; the message
//! does not repeat its `#[source]`, so `{:#}` prints the whole chain on one line.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use podsignal_proto::event::EventTooLarge;
use podsignal_proto::lock::FenceError;
use podsignal_proto::{Name, NameError, Phase, RecordError};

/// Anything a podsignal client call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call on a path failed.
    #[error("{op} {path}")]
    Io {
        /// What was being done, e.g. "cannot open".
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A file in the shared directory is not what the protocol allows (a symlink, a FIFO, a
    /// directory, or too large): it is refused, never followed or read.
    #[error("refusing {path}: {why}")]
    Refused {
        /// The offending path.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// A record's contents are not a valid record.
    #[error("bad record {path}")]
    BadRecord {
        /// The record's path.
        path: PathBuf,
        /// Why it could not be decoded.
        #[source]
        source: RecordError,
    },
    /// A record would be larger than every reader accepts: refused before it could replace
    /// the record in place.
    #[error("refusing to write {path}: {size} bytes, over the {limit}-byte record limit")]
    TooLarge {
        /// The record.
        path: PathBuf,
        /// Its encoded size.
        size: u64,
        /// The limit ([`podsignal_proto::MAX_RECORD_BYTES`]).
        limit: u64,
    },
    /// An event is larger than the log accepts.
    #[error(transparent)]
    EventTooLarge(#[from] EventTooLarge),
    /// No fencing token can be granted: the counter is corrupt with nothing to continue from,
    /// or exhausted.
    #[error("cannot grant a fencing token from {path}")]
    Fence {
        /// The counter file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: FenceError,
    },
    /// A name is not valid.
    #[error(transparent)]
    Name(#[from] NameError),
    /// Event data or another argument is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// A wait ran out of time; `pending` says what was still missing and why.
    #[error("timed out after {}: {}", podsignal_proto::format_duration(*.after), .pending.join("; "))]
    Timeout {
        /// How long was waited.
        after: Duration,
        /// One line per unmet condition: the name and why it is not met.
        pending: Vec<String>,
    },
    /// Waiting for a lock would need one more waiting thread than allowed
    /// ([`crate::VolumeOptions::max_lock_waits`]).
    #[error("{limit} locks are waited for already (the limit); retry later")]
    TooManyWaits {
        /// The limit.
        limit: usize,
    },
    /// `try_acquire` found the lock held.
    #[error("lock {name} is held{}", .holder.as_deref().map(|h| format!(" by {h}")).unwrap_or_default())]
    LockBusy {
        /// The lock.
        name: Name,
        /// Who holds it, if the holder record says.
        holder: Option<String>,
    },
    /// `phase set` to an earlier phase than the current one, without force.
    #[error("phase is {current} already; moving back to {requested} needs --force")]
    PhaseBackwards {
        /// The current phase.
        current: Phase,
        /// The requested phase.
        requested: Phase,
    },
    /// Events `wanted` to `available - 1` were lost: rotated away before they could be read.
    #[error("events {wanted} to {} were lost: rotated away before they could be read", .available.saturating_sub(1))]
    EventsRotated {
        /// The first sequence number lost.
        wanted: u64,
        /// The next sequence number there is.
        available: u64,
    },
    /// The HTTP agent answered with an error or could not be reached.
    #[error("agent {url}: {message}")]
    Agent {
        /// The URL called.
        url: String,
        /// The HTTP status the agent answered with; `None` if it could not be reached.
        status: Option<u16>,
        /// The agent's error code (e.g. `bad_name`, `not_found`), when it sent one.
        code: Option<String>,
        /// The agent's error message, or the transport error.
        message: String,
    },
    /// The agent is shutting down: it answered an in-flight request with 503, or closed a
    /// held lock, leadership or readiness because it is stopping.
    #[error("agent {url} is shutting down")]
    AgentShutdown {
        /// The URL called.
        url: String,
    },
}

/// The client's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The file or directory involved, when the error is about one.
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            Error::Io { path, .. }
            | Error::Refused { path, .. }
            | Error::BadRecord { path, .. }
            | Error::TooLarge { path, .. }
            | Error::Fence { path, .. } => Some(path),
            _ => None,
        }
    }

    /// True when the caller's input is what is wrong, found before anything was done: a name,
    /// a record or an event over its size limit, or what an agent refused as such
    /// ([`podsignal_proto::api::ErrorCode::is_bad_input`]). The CLI exits 2 (usage) on these.
    pub fn is_bad_input(&self) -> bool {
        match self {
            Error::Name(_) | Error::TooLarge { .. } | Error::EventTooLarge(_) => true,
            Error::Agent {
                code: Some(code), ..
            } => serde_json::from_value::<podsignal_proto::api::ErrorCode>(
                serde_json::Value::String(code.clone()),
            )
            .is_ok_and(|c| c.is_bad_input()),
            _ => false,
        }
    }

    /// An error encoding the record at `path`.
    pub(crate) fn record(path: PathBuf, e: RecordError) -> Error {
        match e {
            RecordError::TooLarge { size } => Error::TooLarge {
                path,
                size,
                limit: podsignal_proto::MAX_RECORD_BYTES,
            },
            source => Error::BadRecord { path, source },
        }
    }

    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
        source: impl Into<io::Error>,
    ) -> Error {
        Error::Io {
            op,
            path: path.into(),
            source: source.into(),
        }
    }
}
