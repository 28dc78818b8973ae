//! Stop requests: `stop/NAME.json`, written by `podsignal stop NAME`. The container running
//! `run --name NAME` sees it (inotify), stops its command gracefully and removes it; a new
//! `run --name NAME` removes a request left from before it started.

use serde::{Deserialize, Serialize};

use crate::name::Name;
use crate::record::{self, Identity, RecordError};

/// A request that the container running `run --name NAME` stop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct StopRequest {
    /// Format version.
    pub version: u32,
    /// Whom to stop; must match the file name.
    pub name: Name,
    /// Why, in the requester's words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The generation it was written in (`podsignal reset`); absent: generation 1. A record
    /// of an older generation than the directory's reads as absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
    /// Who asked.
    pub writer: Identity,
    /// When, in Unix milliseconds.
    pub requested_ms: u64,
}

impl StopRequest {
    /// Decodes and checks a request read from the file of `expected`.
    pub fn decode(bytes: &[u8], expected: &Name) -> Result<StopRequest, RecordError> {
        let r: StopRequest = record::decode(bytes)?;
        if &r.name != expected {
            // Both are valid names (a-z, 0-9, '.', '_', '-'): no quotes needed.
            return Err(RecordError::Invalid(format!(
                "stop request names {}, but its file is for {expected}",
                r.name
            )));
        }
        Ok(r)
    }
}
