//! The client's one error type. Every variant names the path or name involved; the message
//! does not repeat its `#[source]`, so `{:#}` prints the whole chain on one line. `Debug`
//! prints that line too: an error returned from `fn main() -> Result<(), Box<dyn Error>>`
//! reads as a sentence, not as a struct.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use podsignal_proto::event::EventTooLarge;
use podsignal_proto::lock::FenceError;
use podsignal_proto::{Name, NameError, Phase, RecordError};

/// Anything a podsignal client call can fail with.
#[derive(thiserror::Error)]
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
    /// A system call was refused for want of permission (`EACCES`, `EPERM`): most often a
    /// directory created by a container of another user. The message says who owns what,
    /// and which `--access` lets several users share the directory.
    #[error("{op} {path}: permission denied{owners}; {ACCESS_HINT}")]
    Denied {
        /// What was being done, e.g. "cannot write".
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// Who owns the directory involved and who this process is, in parentheses (or empty
        /// if it could not be looked up).
        owners: String,
        /// The OS error. (Not a `#[source]`: the message says "permission denied" already.)
        error: io::Error,
    },
    /// A file in the shared directory is not what the protocol allows (a symlink, a FIFO, a
    /// directory, or too large): it is refused, never followed or read.
    #[error("refusing {path}: {why}{}", repair_hint(.repair))]
    Refused {
        /// The offending path.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
        /// How to replace it, when it is a record a command can rewrite.
        repair: Option<String>,
    },
    /// A record's contents are not a valid record.
    #[error("bad record {path}: {why}{}", repair_hint(.repair))]
    BadRecord {
        /// The record's path.
        path: PathBuf,
        /// Why it could not be decoded. (Not a `#[source]`: it is part of the message.)
        why: RecordError,
        /// How to replace it: the command that rewrites this record.
        repair: Option<String>,
    },
    /// A record of an older generation than the directory's (`podsignal reset` ran since it
    /// was written): it reads as absent, and this says why.
    #[error("{path}: {why}")]
    OlderGeneration {
        /// The record.
        path: PathBuf,
        /// What it says and when: `exited with 0 in generation 1, now generation 2 (...)`.
        why: String,
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
    #[error("cannot grant a fencing token from {path}: {why}{}", fence_repair(.why, .path))]
    Fence {
        /// The counter file.
        path: PathBuf,
        /// What is wrong. (Not a `#[source]`: it is part of the message, before the repair.)
        why: FenceError,
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

/// What to do about a permission error in the shared directory.
const ACCESS_HINT: &str = "when the containers of a Pod run as different users, start \
    every podsignal with --access group (and give the Pod a securityContext.fsGroup) or \
    --access all (env PODSIGNAL_ACCESS)";

impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        podsignal_proto::write_error_chain(self, f)
    }
}

/// How to repair a corrupt fencing counter: by hand, on purpose (a token must never go
/// backwards, so nothing resets it).
fn fence_repair(why: &FenceError, path: &Path) -> String {
    match why {
        FenceError::Corrupt(_) => format!(
            "; to repair it, write the last token granted (or any larger one) into it: \
             echo N > {}",
            path.display()
        ),
        FenceError::Exhausted => String::new(),
    }
}

fn repair_hint(repair: &Option<String>) -> String {
    repair
        .as_deref()
        .map(|r| format!("; {r}"))
        .unwrap_or_default()
}

impl Error {
    /// The file or directory involved, when the error is about one.
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            Error::Io { path, .. }
            | Error::Denied { path, .. }
            | Error::Refused { path, .. }
            | Error::BadRecord { path, .. }
            | Error::OlderGeneration { path, .. }
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
            why => Error::BadRecord {
                path,
                why,
                repair: None,
            },
        }
    }

    /// A record at `path` that could not be decoded; `repair` says how to replace it.
    pub(crate) fn bad_record(path: PathBuf, why: RecordError, repair: String) -> Error {
        Error::BadRecord {
            path,
            why,
            repair: Some(repair),
        }
    }

    /// A file refused for being what the protocol does not allow.
    pub(crate) fn refused(path: impl Into<PathBuf>, why: impl Into<String>) -> Error {
        Error::Refused {
            path: path.into(),
            why: why.into(),
            repair: None,
        }
    }

    /// This error, saying how to replace the record it is about if it is a bad or refused
    /// record (`repair`: the command that rewrites it).
    pub(crate) fn with_repair(self, repair: impl FnOnce() -> String) -> Error {
        match self {
            Error::BadRecord { path, why, .. } => Error::bad_record(path, why, repair()),
            Error::Refused { path, why, .. } => Error::Refused {
                path,
                why,
                repair: Some(repair()),
            },
            other => other,
        }
    }

    /// A system call on `path` failed: [`Error::Denied`], naming who owns what, for a
    /// permission error; else [`Error::Io`].
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
        source: impl Into<io::Error>,
    ) -> Error {
        let (path, source) = (path.into(), source.into());
        if source.kind() == io::ErrorKind::PermissionDenied {
            return Error::Denied {
                op,
                owners: owners(&path),
                path,
                error: source,
            };
        }
        Error::Io { op, path, source }
    }

    /// True for a file or directory that does not exist.
    pub(crate) fn is_not_found(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }

    /// The same failure, said of `path` (the record a temporary file was to replace) and as
    /// `op`: a message names the record, not a file the operator never sees.
    pub(crate) fn about(self, op: &'static str, path: PathBuf) -> Error {
        match self {
            Error::Io { source, .. } => Error::io(op, path, source),
            Error::Denied { error, .. } => Error::io(op, path, error),
            other => other,
        }
    }
}

/// ` (DIR belongs to uid U gid G, mode M; this process is uid U gid G)`: the directory
/// `path` is (or the one it is in), and `path` itself when it is an existing file, which is
/// what a permission error is about. Empty if none can be looked up.
fn owners(path: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let describe = |p: &Path, m: &std::fs::Metadata| {
        format!(
            "{} belongs to uid {} gid {}, mode {:04o}",
            p.display(),
            m.uid(),
            m.gid(),
            m.mode() & 0o7777
        )
    };
    let mut found = Vec::new();
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => found.push(describe(path, &m)),
        file => {
            let parent = path.parent().map(|p| (p, std::fs::metadata(p)));
            if let Some((p, Ok(m))) = parent {
                found.push(describe(p, &m));
            }
            if let Ok(m) = file {
                found.push(describe(path, &m));
            }
        }
    }
    if found.is_empty() {
        return String::new();
    }
    format!(
        " ({}; this process is uid {} gid {})",
        found.join("; "),
        rustix::process::geteuid().as_raw(),
        rustix::process::getegid().as_raw()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `fn main() -> Result<(), Box<dyn Error>>` prints after `Error: ` is `Debug`: the
    /// one-line message, never `Timeout { after: 30.0018s, pending: [...] }`.
    #[test]
    fn debug_is_the_one_line_message() {
        let e = Error::Timeout {
            after: Duration::from_micros(30_001_834),
            pending: vec![
                "db: no record in /run/podsignal".into(),
                "web: unready".into(),
            ],
        };
        let want = "timed out after 30.002s: db: no record in /run/podsignal; web: unready";
        assert_eq!(e.to_string(), want);
        let boxed: Box<dyn std::error::Error> = Box::new(e);
        assert_eq!(format!("{boxed:?}"), want);
        let io = Error::io(
            "cannot open",
            "/run/podsignal/ready/db.json",
            io::Error::from_raw_os_error(2),
        );
        assert_eq!(
            format!("{io:?}"),
            "cannot open /run/podsignal/ready/db.json: No such file or directory (os error 2)"
        );
    }

    #[test]
    fn a_permission_error_says_who_owns_what_and_how_to_share() {
        let tmp = tempfile::tempdir().unwrap();
        let e = Error::io(
            "cannot write",
            tmp.path().join("x.json"),
            io::Error::from_raw_os_error(13),
        );
        let text = e.to_string();
        assert!(
            text.starts_with(&format!(
                "cannot write {}: permission denied ({} belongs to uid ",
                tmp.path().join("x.json").display(),
                tmp.path().display()
            )),
            "{text}"
        );
        assert!(text.ends_with(ACCESS_HINT), "{text}");
        assert!(!text.contains("os error"), "said twice: {text}");
    }
}
