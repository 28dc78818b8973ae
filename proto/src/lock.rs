//! Locks and leader campaigns: `locks/NAME.{lock,fence,holder.json}` and the same under
//! `leaders/`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::name::Name;
use crate::record::{self, Identity, RecordError};

/// A fencing token: strictly increasing per lock name, across holders and restarts. Hand it to
/// the resource you protect and have it reject writes carrying a smaller token than it has seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FencingToken(pub u64);

impl fmt::Display for FencingToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FencingToken {
    /// Parses the contents of a `.fence` file: a decimal number and an optional newline.
    /// An empty file counts as 0 (created, never granted).
    pub fn parse_counter(text: &str) -> Result<FencingToken, RecordError> {
        let t = text.trim_end_matches('\n');
        if t.is_empty() {
            return Ok(FencingToken(0));
        }
        t.parse::<u64>().map(FencingToken).map_err(|_| {
            RecordError::Invalid(format!(
                "fencing counter {:?} is not a decimal number",
                truncate(t)
            ))
        })
    }

    /// The counter file's contents for this token.
    pub fn to_counter(self) -> String {
        format!("{}\n", self.0)
    }

    /// The next token, or `None` at `u64::MAX`.
    pub fn next(self) -> Option<FencingToken> {
        self.0.checked_add(1).map(FencingToken)
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Who holds (or last held) a lock or leadership: `NAME.holder.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HolderRecord {
    /// Format version.
    pub version: u32,
    /// The lock or campaign name.
    pub name: Name,
    /// The fencing token granted with this acquisition.
    pub token: FencingToken,
    /// The holder.
    pub holder: Identity,
    /// When it was acquired, in Unix milliseconds.
    pub acquired_ms: u64,
    /// When it was released, if it was released cleanly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released_ms: Option<u64>,
}

impl HolderRecord {
    /// Decodes and checks a holder record read from the file of `expected`.
    pub fn decode(bytes: &[u8], expected: &Name) -> Result<HolderRecord, RecordError> {
        let r: HolderRecord = record::decode(bytes)?;
        if &r.name != expected {
            return Err(RecordError::Invalid(format!(
                "holder record names {:?}, but its file is {expected:?}",
                r.name.as_str()
            )));
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_parses_strictly() {
        assert_eq!(FencingToken::parse_counter("").unwrap(), FencingToken(0));
        assert_eq!(
            FencingToken::parse_counter("41\n").unwrap(),
            FencingToken(41)
        );
        assert!(FencingToken::parse_counter("-1").is_err());
        assert!(FencingToken::parse_counter("garbage").is_err());
        assert_eq!(
            FencingToken::parse_counter(&FencingToken(7).to_counter()).unwrap(),
            FencingToken(7)
        );
        assert_eq!(FencingToken(u64::MAX).next(), None);
    }
}
