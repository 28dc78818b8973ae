//! The pod phase: `phase.json`. Phases are ordered; a pod moves forward through them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::record::{self, Identity, RecordError};

/// Where the pod is in its life. Ordered: `starting < running < draining < stopping`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Containers are starting; not every dependency is ready yet. The phase of a pod whose
    /// shared directory has no phase record.
    Starting,
    /// The pod is serving.
    Running,
    /// The pod is shutting down: stop taking new work, finish what is in flight.
    Draining,
    /// Containers are stopping now.
    Stopping,
}

impl Phase {
    /// Every phase, in order.
    pub const ALL: [Phase; 4] = [
        Phase::Starting,
        Phase::Running,
        Phase::Draining,
        Phase::Stopping,
    ];

    /// The phase after this one, if any.
    pub fn next(self) -> Option<Phase> {
        Phase::ALL.into_iter().find(|p| *p > self)
    }

    /// The phase's lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Running => "running",
            Phase::Draining => "draining",
            Phase::Stopping => "stopping",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not a phase.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown phase {0:?} (phases: starting, running, draining, stopping)")]
pub struct PhaseError(pub String);
crate::debug_is_display!(PhaseError);

impl FromStr for Phase {
    type Err = PhaseError;
    fn from_str(s: &str) -> Result<Phase, PhaseError> {
        Phase::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| PhaseError(s.to_owned()))
    }
}

/// The phase record, `phase.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PhaseRecord {
    /// Format version.
    pub version: u32,
    /// The current phase.
    pub phase: Phase,
    /// Why it was set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The generation it was written in (`podsignal reset`); absent: generation 1. A record
    /// of an older generation than the directory's reads as absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
    /// Who set it.
    pub writer: Identity,
    /// When, in Unix milliseconds.
    pub updated_ms: u64,
}

impl PhaseRecord {
    /// Decodes a phase record.
    pub fn decode(bytes: &[u8]) -> Result<PhaseRecord, RecordError> {
        record::decode(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_are_ordered_and_parse() {
        assert!(
            Phase::Starting < Phase::Running
                && Phase::Running < Phase::Draining
                && Phase::Draining < Phase::Stopping
        );
        for p in Phase::ALL {
            assert_eq!(p.as_str().parse::<Phase>().unwrap(), p);
        }
        assert!("paused".parse::<Phase>().is_err());
    }
}
