//! podsignal's protocol, with no I/O: what the files in the shared directory are called, what
//! they contain, and how the CLI and HTTP API spell the same ideas.
//!
//! - [`name`]: the names of records, locks, leaders and event kinds, and their validation.
//! - [`layout`]: where each record lives, relative to the shared directory.
//! - [`record`]: the envelope every JSON record shares (format version, size cap, decoding).
//! - [`readiness`], [`lock`], [`event`], [`phase`]: one module per protocol concept.
//! - [`condition`]: the condition grammar of `wait` and `run --wait-for`/`--ready-when`.
//! - [`tombstone`], [`stop`]: how a `run` container exited, and requests that it stop.
//! - [`generation`]: which run of the Pod a record belongs to (`podsignal reset`).
//! - [`duration`]: `500ms`, `30s`, `2m` and back.
//! - [`exit`]: the process exit codes every subcommand uses.
//! - [`api`]: the HTTP API's request, response and error bodies.
//!
//! The volume engine and the HTTP client in `podsignal-client` do the I/O; this crate only
//! parses and serializes over `&[u8]` and `&str`, so both transports agree by construction.

pub mod api;
pub mod condition;
pub mod duration;
pub mod event;
pub mod exit;
pub mod generation;
pub mod layout;
pub mod lock;
pub mod name;
pub mod phase;
pub mod readiness;
pub mod record;
pub mod stop;
pub mod tombstone;

pub use condition::{
    Condition, ConditionError, Grammar, HttpCheck, ReadyProbe, Service, ServiceCheck, StatusMatch,
    TcpTarget, is_loopback_host, is_loopback_ip, is_loopback_name, is_loopback_or_wildcard,
    loopback_addresses,
};
pub use duration::{DurationError, format_duration, parse_duration};
pub use event::{Event, EventSegment};
pub use exit::ExitCode;
pub use generation::GenerationRecord;
pub use lock::{FencingToken, HolderRecord};
pub use name::{Name, NameError};
pub use phase::{Phase, PhaseRecord};
pub use readiness::{ReadinessRecord, ReadinessState};
pub use record::{FORMAT_VERSION, Identity, MAX_RECORD_BYTES, RecordError};
pub use stop::StopRequest;
pub use tombstone::TombstoneRecord;

/// Writes an error and its sources on one line, `outer: inner: innermost`: how every error
/// type of podsignal implements `Debug`, so that one returned from
/// `fn main() -> Result<(), Box<dyn Error>>` (which prints `Debug`) reads as a sentence, not
/// as a struct.
pub fn write_error_chain(
    e: &(dyn std::error::Error + 'static),
    f: &mut std::fmt::Formatter<'_>,
) -> std::fmt::Result {
    write!(f, "{e}")?;
    let mut source = e.source();
    while let Some(s) = source {
        write!(f, ": {s}")?;
        source = s.source();
    }
    Ok(())
}

/// `impl Debug` as [`write_error_chain`], for this crate's error types.
macro_rules! debug_is_display {
    ($t:ty) => {
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                $crate::write_error_chain(self, f)
            }
        }
    };
}
pub(crate) use debug_is_display;

#[cfg(test)]
mod tests {
    /// An error returned from `main` as `Box<dyn Error>` prints its `Debug`: the message, not
    /// the struct (`Invalid { name: "A", ch: 'A' }`).
    #[test]
    fn every_error_debugs_as_its_message() {
        let errors: Vec<Box<dyn std::error::Error>> = vec![
            Box::new(crate::Name::new("A/").unwrap_err()),
            Box::new(crate::parse_duration("1d").unwrap_err()),
            Box::new("sleeping".parse::<crate::Phase>().unwrap_err()),
            Box::new(crate::Condition::parse("bogus:x").unwrap_err()),
            Box::new(crate::record::decode::<crate::PhaseRecord>(b"{").unwrap_err()),
            Box::new(crate::lock::FenceError::Exhausted),
        ];
        for e in errors {
            assert_eq!(format!("{e:?}"), e.to_string());
            assert!(!e.to_string().contains('{'), "{e}");
        }
    }
}
