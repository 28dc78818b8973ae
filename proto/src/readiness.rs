//! Readiness records: `ready/NAME.json`.

use serde::{Deserialize, Serialize};

use crate::name::Name;
use crate::record::{self, Identity, RecordError};

/// Whether a readiness record says ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum ReadinessState {
    /// The named component is ready.
    Ready,
    /// The named component is not ready (the reason says why).
    Unready,
}

/// A readiness record as stored in `ready/NAME.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ReadinessRecord {
    /// Format version ([`record::FORMAT_VERSION`]).
    pub version: u32,
    /// The record's name; must match its file name.
    pub name: Name,
    /// Ready or unready.
    pub state: ReadinessState,
    /// Why, in the writer's words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// True when the writer holds the liveness file `ready/NAME.HOLD.live`: the record counts
    /// only while that flock is held. False: a "sticky" record that stays until changed.
    pub held: bool,
    /// The id of this hold (16 hex digits), chosen afresh for every hold: it names the
    /// liveness file, and a holder retracts the record only while it still carries its own
    /// hold id (two holds in one process, e.g. one agent serving two clients, never retract
    /// each other's records). Records written before hold ids existed name their liveness file
    /// by the writer's incarnation instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(regex(pattern = r"^[0-9a-f]{16}$")))]
    pub hold: Option<String>,
    /// The generation it was written in (`podsignal reset`); absent: generation 1. A record
    /// of an older generation than the directory's reads as absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
    /// Who wrote it.
    pub writer: Identity,
    /// When the state last changed, in Unix milliseconds.
    pub since_ms: u64,
    /// When the record was last written, in Unix milliseconds.
    pub updated_ms: u64,
}

impl ReadinessRecord {
    /// Decodes and checks a record read from the file of `expected`.
    pub fn decode(bytes: &[u8], expected: &Name) -> Result<ReadinessRecord, RecordError> {
        let r: ReadinessRecord = record::decode(bytes)?;
        if &r.name != expected {
            // Both are valid names (a-z, 0-9, '.', '_', '-'): no quotes needed.
            return Err(RecordError::Invalid(format!(
                "record names {}, but its file is for {expected}",
                r.name
            )));
        }
        if let Some(h) = r.hold.as_deref().filter(|h| !record::is_incarnation(h)) {
            return Err(RecordError::Invalid(format!(
                "hold id {h:?} is not 16 hex digits"
            )));
        }
        Ok(r)
    }

    /// The id in the name of this record's liveness file (`ready/NAME.ID.live`): its hold id,
    /// or for records written before hold ids, the writer's incarnation.
    pub fn liveness_id(&self) -> &str {
        self.hold.as_deref().unwrap_or(&self.writer.incarnation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ReadinessRecord {
        ReadinessRecord {
            version: 1,
            name: Name::new("db").unwrap(),
            state: ReadinessState::Ready,
            reason: Some("migrated".into()),
            held: false,
            hold: None,
            generation: None,
            writer: Identity {
                pid: 1,
                hostname: "h".into(),
                source: None,
                incarnation: "00000000000000ff".into(),
            },
            since_ms: 1,
            updated_ms: 2,
        }
    }

    #[test]
    fn round_trips_and_checks_the_name() {
        let bytes = record::encode(&sample()).unwrap();
        assert_eq!(
            ReadinessRecord::decode(&bytes, &Name::new("db").unwrap()).unwrap(),
            sample()
        );
        let err = ReadinessRecord::decode(&bytes, &Name::new("other").unwrap()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "malformed record: record names db, but its file is for other"
        );
    }

    #[test]
    fn refuses_a_path_as_incarnation_or_hold_id() {
        let mut r = sample();
        r.writer.incarnation = "../../x".into();
        assert!(ReadinessRecord::decode(&record::encode(&r).unwrap(), &r.name).is_err());
        let mut r = sample();
        r.hold = Some("../../etc/passwd".into());
        assert!(ReadinessRecord::decode(&record::encode(&r).unwrap(), &r.name).is_err());
    }

    #[test]
    fn the_liveness_file_is_named_by_the_hold_else_the_incarnation() {
        let mut r = sample();
        assert_eq!(r.liveness_id(), "00000000000000ff");
        r.hold = Some("0123456789abcdef".into());
        assert_eq!(r.liveness_id(), "0123456789abcdef");
    }
}
