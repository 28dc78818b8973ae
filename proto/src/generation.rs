//! Generations of the shared directory: `generation.json`, written by `podsignal reset`.
//!
//! A Pod restarted in place (Kubernetes' RestartAllContainers) keeps its `emptyDir`: without
//! generations, the previous run's tombstones, sticky readiness, stop requests and phase
//! would still be there, and a sidecar with `--exit-with exit:app` would see app's old
//! tombstone and exit at once. `podsignal reset` (in an init container, which runs again on
//! such a restart) starts a new generation: every record carries the generation it was
//! written in, and a record of an older generation reads as absent.
//!
//! A directory where `reset` never ran is generation [`FIRST`]; a record without a
//! `generation` field is of generation [`FIRST`] too (written before generations existed).

use serde::{Deserialize, Serialize};

use crate::name::Name;
use crate::phase::Phase;
use crate::record::{self, Identity, RecordError};

/// The generation of a directory where `reset` never ran, and of a record without a
/// `generation` field.
pub const FIRST: u64 = 1;

/// The kind of the event `reset` appends.
pub const EVENT_KIND: &str = "generation";

/// The generation record, `generation.json` at the root of the shared directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GenerationRecord {
    /// Format version.
    pub version: u32,
    /// The current generation: 2 after the first reset, then one more per reset.
    pub generation: u64,
    /// Why it was started, in the resetter's words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Who started it.
    pub writer: Identity,
    /// When, in Unix milliseconds.
    pub updated_ms: u64,
}

impl GenerationRecord {
    /// The generation in a generation record's bytes, checked: at least 2 (only `reset` writes
    /// one, and the first reset makes generation 2). Readers need the number alone, so only
    /// it is decoded (through the JSON value every reader decodes already: a record type of
    /// its own costs the binary more than the check).
    pub fn decode_generation(bytes: &[u8]) -> Result<u64, RecordError> {
        let v: serde_json::Value = record::decode(bytes)?;
        match v.get("generation") {
            Some(g) => match g.as_u64() {
                Some(g) if g > FIRST => Ok(g),
                _ => Err(RecordError::Invalid(format!(
                    "generation {g} is not a generation reset writes (a number, 2 or more)"
                ))),
            },
            None => Err(RecordError::Invalid("no generation field".into())),
        }
    }
}

/// The generation a record was written in: its `generation` field, [`FIRST`] without one.
pub fn of(field: Option<u64>) -> u64 {
    field.unwrap_or(FIRST)
}

/// Whether a record stamped `field` counts in generation `current`: it was written in this
/// generation (or a later one: `reset` re-stamps the records it carries over just before it
/// switches generation, so they never read as absent).
pub fn counts(field: Option<u64>, current: u64) -> bool {
    of(field) >= current
}

/// Why a record of an older generation reads as absent, for messages: `ready in generation
/// 3, now generation 4`.
pub fn stale_why(what: &str, field: Option<u64>, current: u64) -> String {
    format!(
        "{what} in generation {}, now generation {current} (podsignal reset since)",
        of(field)
    )
}

/// The data of the `generation` event `reset` appends: the new number first (what readers of
/// the log select generations by), then what the reset did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct GenerationEvent {
    /// The new generation.
    pub generation: u64,
    /// The generation it replaced.
    pub previous: u64,
    /// Why, in the resetter's words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The phase before the reset (it is `starting` after).
    pub previous_phase: Phase,
    /// The records removed, by kind.
    pub removed: Removed,
    /// Held readiness records whose holder was alive: carried into the new generation.
    pub carried: Vec<Name>,
    /// True when a list was cut to [`Removed::MAX_LISTED`] names (the event stays small).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

/// Records a reset removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Removed {
    /// Readiness records: sticky ones, and held ones whose holder was gone.
    pub ready: Vec<Name>,
    /// Tombstones.
    pub exits: Vec<Name>,
    /// Stop requests.
    pub stop: Vec<Name>,
}

impl Removed {
    /// The most names an event lists per kind: 4 lists of 40 names of at most 63 bytes stay
    /// well under the event size limit.
    pub const MAX_LISTED: usize = 40;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(generation: u64) -> GenerationRecord {
        GenerationRecord {
            version: 1,
            generation,
            reason: None,
            writer: Identity {
                pid: 1,
                hostname: "h".into(),
                source: None,
                incarnation: "00000000000000ff".into(),
            },
            updated_ms: 1,
        }
    }

    #[test]
    fn round_trips_and_refuses_generations_reset_never_writes() {
        let bytes = record::encode(&sample(4)).unwrap();
        assert_eq!(GenerationRecord::decode_generation(&bytes).unwrap(), 4);
        for g in [0, 1] {
            let bytes = record::encode(&sample(g)).unwrap();
            let err = GenerationRecord::decode_generation(&bytes).unwrap_err();
            assert!(err.to_string().contains("2 or more"), "{err}");
        }
        for bad in [
            &b"{\"version\":1,\"generation\":-1}"[..],
            b"{\"version\":1,\"generation\":\"4\"}",
            b"{\"version\":1}",
            b"{\"version\":9,\"generation\":4}",
            b"[4]",
            b"4",
        ] {
            assert!(GenerationRecord::decode_generation(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_record_counts_from_its_generation_on() {
        assert!(counts(None, 1), "no field: generation 1");
        assert!(!counts(None, 2));
        assert!(counts(Some(3), 3));
        assert!(counts(Some(4), 3), "carried over just before the switch");
        assert!(!counts(Some(3), 4));
        assert_eq!(
            stale_why("ready", Some(3), 4),
            "ready in generation 3, now generation 4 (podsignal reset since)"
        );
    }
}
