//! Locks and leader campaigns: `locks/NAME.{lock,fence,holder.json}` and the same under
//! `leaders/`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::name::Name;
use crate::record::{self, Identity, RecordError};

/// A fencing token: strictly increasing per lock name, across holders and restarts. Hand it to
/// the resource you protect and have it reject writes carrying a smaller token than it has seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(transparent)]
pub struct FencingToken(pub u64);

impl fmt::Display for FencingToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FencingToken {
    /// The counter file's contents for this token.
    pub fn to_counter(self) -> String {
        format!("{}\n", self.0)
    }

    /// The next token, or `None` at `u64::MAX`.
    pub fn next(self) -> Option<FencingToken> {
        self.0.checked_add(1).map(FencingToken)
    }
}

/// A lock's fencing counter (`NAME.fence`) as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Counter {
    /// No counter file: no podsignal process granted this lock yet (or it was deleted).
    Missing,
    /// A decimal number and an optional newline: the last token granted.
    Valid(FencingToken),
    /// Anything else, an empty file included: podsignal writes counters atomically, so this
    /// was not written by it. Says what is wrong.
    Corrupt(String),
}

impl Counter {
    /// Parses the contents of a counter file; `None` when there is no file.
    pub fn parse(bytes: Option<&[u8]>) -> Counter {
        let Some(bytes) = bytes else {
            return Counter::Missing;
        };
        let text = String::from_utf8_lossy(bytes);
        let t = text.strip_suffix('\n').unwrap_or(&text);
        if t.is_empty() {
            return Counter::Corrupt("the fencing counter is empty".into());
        }
        match t.parse::<u64>() {
            Ok(n) if t.bytes().all(|b| b.is_ascii_digit()) => Counter::Valid(FencingToken(n)),
            _ => Counter::Corrupt(format!(
                "fencing counter {:?} is not a decimal number",
                truncate(t)
            )),
        }
    }

    /// The last token granted, as far as the counter says (`None` if missing or corrupt).
    pub fn last(&self) -> Option<FencingToken> {
        match self {
            Counter::Valid(t) => Some(*t),
            Counter::Missing | Counter::Corrupt(_) => None,
        }
    }
}

/// Why no token can be granted.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
pub enum FenceError {
    /// The counter is corrupt and no holder record says what the last token was.
    #[error("{0}, and there is no holder record to continue from")]
    Corrupt(String),
    /// The counter reached `u64::MAX`.
    #[error("the fencing counter is exhausted")]
    Exhausted,
}
crate::debug_is_display!(FenceError);

/// The token to grant next: one past the highest token ever granted, which is the larger of
/// the counter and `last_known` (the last holder record's token, and the copy the lock file
/// keeps). Every grant writes the counter (fsynced) and then the holder record before it is
/// reported, so the holder record's token is the last one anyone was given: even if the
/// counter was emptied, deleted or garbled, tokens continue from there and never go
/// backwards. Only with a corrupt counter and nothing else to go on is no token granted.
pub fn next_token(
    counter: &Counter,
    last_holder: Option<FencingToken>,
) -> Result<FencingToken, FenceError> {
    let last = match (counter, last_holder) {
        (Counter::Corrupt(why), None) => return Err(FenceError::Corrupt(why.clone())),
        (c, h) => c.last().max(h).unwrap_or(FencingToken(0)),
    };
    last.next().ok_or(FenceError::Exhausted)
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Who holds (or last held) a lock or leadership: `NAME.holder.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct HolderRecord {
    /// Format version.
    pub version: u32,
    /// The lock or campaign name.
    pub name: Name,
    /// The fencing token granted with this acquisition.
    pub token: FencingToken,
    /// The holder.
    pub holder: Identity,
    /// The process that holds the flock for the holder, when that is not the holder itself:
    /// the agent, holding for an HTTP caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<Identity>,
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
            // Both are valid names (a-z, 0-9, '.', '_', '-'): no quotes needed.
            return Err(RecordError::Invalid(format!(
                "holder record names {}, but its file is for {expected}",
                r.name
            )));
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Counter {
        Counter::parse(Some(s.as_bytes()))
    }

    #[test]
    fn counter_parses_strictly() {
        assert_eq!(parse("41\n"), Counter::Valid(FencingToken(41)));
        assert_eq!(
            parse(&FencingToken(7).to_counter()),
            Counter::Valid(FencingToken(7))
        );
        assert_eq!(Counter::parse(None), Counter::Missing);
        for bad in [
            "",
            "\n",
            "-1",
            "+1",
            " 1",
            "garbage",
            "1\n\n",
            "99999999999999999999",
        ] {
            assert!(matches!(parse(bad), Counter::Corrupt(_)), "{bad:?}");
        }
    }

    #[test]
    fn tokens_continue_from_the_highest_known_and_never_go_back() {
        let t = FencingToken;
        let next = |c: &str, h: Option<u64>| next_token(&parse(c), h.map(t));
        assert_eq!(next_token(&Counter::Missing, None), Ok(t(1)), "a new lock");
        assert_eq!(next("3\n", Some(3)), Ok(t(4)));
        assert_eq!(
            next("4\n", Some(3)),
            Ok(t(5)),
            "crashed after the bump, before the record"
        );
        assert_eq!(next("", Some(3)), Ok(t(4)), "an emptied counter continues");
        assert_eq!(
            next("junk", Some(3)),
            Ok(t(4)),
            "a garbled counter continues"
        );
        assert_eq!(
            next_token(&Counter::Missing, Some(t(3))),
            Ok(t(4)),
            "a deleted counter continues"
        );
        assert_eq!(
            next("9\n", Some(3)),
            Ok(t(10)),
            "a lowered holder record does not lower it"
        );
        assert!(
            matches!(next("", None), Err(FenceError::Corrupt(_))),
            "nothing to go on"
        );
        assert_eq!(
            next(&u64::MAX.to_string(), None),
            Err(FenceError::Exhausted)
        );
    }
}
