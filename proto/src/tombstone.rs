//! Tombstones: `exits/NAME.json`, written by `podsignal run --name NAME` when its command
//! exits. The `exit:NAME` condition is "this file exists" (and `exit:NAME=CODE` checks
//! `exit_code`). A new `run --name NAME` removes the previous one when it starts.

use serde::{Deserialize, Serialize};

use crate::name::Name;
use crate::record::{self, Identity, RecordError};

/// How the container running `run --name NAME` exited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct TombstoneRecord {
    /// Format version.
    pub version: u32,
    /// The container's `--name`; must match the file name.
    pub name: Name,
    /// The exit code in the shell's convention: the command's code, or 128+N for signal N.
    pub exit_code: u8,
    /// The command's own exit code, when it exited normally.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
    /// The signal that killed the command, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// True when podsignal stopped the command on purpose (`--exit-with`, `podsignal stop`,
    /// a SIGTERM it was sent).
    pub stopped: bool,
    /// Why, in one line (the same text as the termination log).
    pub reason: String,
    /// When the command started, in Unix milliseconds.
    pub started_ms: u64,
    /// When it exited, in Unix milliseconds.
    pub exited_ms: u64,
    /// The generation it was written in (`podsignal reset`); absent: generation 1. A record
    /// of an older generation than the directory's reads as absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
    /// Who wrote it (its incarnation tells restarts apart).
    pub writer: Identity,
}

impl TombstoneRecord {
    /// Decodes and checks a tombstone read from the file of `expected`.
    pub fn decode(bytes: &[u8], expected: &Name) -> Result<TombstoneRecord, RecordError> {
        let t: TombstoneRecord = record::decode(bytes)?;
        if &t.name != expected {
            // Both are valid names (a-z, 0-9, '.', '_', '-'): no quotes needed.
            return Err(RecordError::Invalid(format!(
                "tombstone names {}, but its file is for {expected}",
                t.name
            )));
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_checks_the_name() {
        let t = TombstoneRecord {
            version: 1,
            name: Name::new("app").unwrap(),
            exit_code: 143,
            code: None,
            signal: Some(15),
            stopped: true,
            reason: "stopped".into(),
            started_ms: 1,
            exited_ms: 2,
            generation: None,
            writer: Identity {
                pid: 1,
                hostname: "h".into(),
                source: Some("app".into()),
                incarnation: "00000000000000ff".into(),
            },
        };
        let bytes = record::encode(&t).unwrap();
        assert_eq!(TombstoneRecord::decode(&bytes, &t.name).unwrap(), t);
        assert!(TombstoneRecord::decode(&bytes, &Name::new("x").unwrap()).is_err());
    }
}
