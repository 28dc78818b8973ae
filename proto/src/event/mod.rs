//! Lifecycle events: an append-only log of JSON lines in `events/SEQ.jsonl` segments.
//!
//! Publishers append one line each while holding the flock `events/events.lock`, so sequence
//! numbers are dense, strictly increasing and in file order. When the newest segment reaches
//! [`SEGMENT_MAX_BYTES`] the next event starts a new segment named by its sequence number, and
//! segments beyond the newest [`SEGMENTS_KEPT`] are deleted: the log is bounded.
//!
//! [`cursor`] holds the rules of reading it (where a reader is, what to read next, when
//! events were lost), as a state machine without I/O.

pub mod cursor;

use serde::{Deserialize, Serialize};

use crate::name::Name;

/// A segment is closed once it reaches this many bytes.
pub const SEGMENT_MAX_BYTES: u64 = 1024 * 1024;
/// How many segments are kept; older ones are deleted on rotation.
pub const SEGMENTS_KEPT: usize = 4;
/// The largest encoded event line accepted (and the largest `data` is a little less).
pub const MAX_EVENT_BYTES: usize = 16 * 1024;
/// How much of one segment a reader reads at most. A publisher starts a new segment once the
/// newest reaches [`SEGMENT_MAX_BYTES`], so no segment it writes is larger than that plus one
/// event (and a newline ending a torn line); anything beyond is a neighbour's doing and is not
/// read, so a huge or sparse file cannot make a reader read (or allocate) gigabytes.
pub const SEGMENT_READ_LIMIT: u64 = SEGMENT_MAX_BYTES + 2 * MAX_EVENT_BYTES as u64;

/// One lifecycle event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Event {
    /// Sequence number: 1 for the first event, then +1 per event, never reused.
    pub seq: u64,
    /// When it was published, in Unix milliseconds.
    pub time_ms: u64,
    /// What happened, e.g. `phase`, `ready`, `exit`, or an application's own kind.
    pub kind: Name,
    /// Who published it (`PODSIGNAL_NAME`, else `pid@hostname`).
    pub source: String,
    /// Optional JSON payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

/// Why an event could not be encoded.
#[derive(thiserror::Error)]
#[error("event of kind {kind:?} is {size} bytes encoded, over the {MAX_EVENT_BYTES}-byte limit")]
pub struct EventTooLarge {
    /// The event's kind.
    pub kind: String,
    /// Its encoded size.
    pub size: usize,
}
crate::debug_is_display!(EventTooLarge);

impl Event {
    /// Encodes the event as one JSON line, newline included.
    pub fn to_line(&self) -> Result<Vec<u8>, EventTooLarge> {
        let mut line = serde_json::to_vec(self).unwrap_or_default();
        line.push(b'\n');
        if line.len() > MAX_EVENT_BYTES {
            return Err(EventTooLarge {
                kind: self.kind.to_string(),
                size: line.len(),
            });
        }
        Ok(line)
    }

    /// Decodes one line (without its newline). `None` for anything that is not an event: a
    /// reader skips such lines (a neighbour's garbage) rather than stopping the log.
    pub fn from_line(line: &[u8]) -> Option<Event> {
        if line.len() > MAX_EVENT_BYTES {
            return None;
        }
        serde_json::from_slice(line).ok()
    }
}

/// A segment file name: its first sequence number, zero-padded to 20 digits, then `.jsonl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct EventSegment {
    /// Sequence number of the first event in the segment.
    pub first_seq: u64,
}

impl EventSegment {
    /// The segment's file name.
    pub fn file_name(self) -> String {
        format!("{:020}.jsonl", self.first_seq)
    }

    /// Parses a segment file name; `None` for any other file.
    pub fn parse(file_name: &str) -> Option<EventSegment> {
        let digits = file_name.strip_suffix(".jsonl")?;
        if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits
            .parse()
            .ok()
            .map(|first_seq| EventSegment { first_seq })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_round_trip_and_sort() {
        let s = EventSegment { first_seq: 42 };
        assert_eq!(EventSegment::parse(&s.file_name()), Some(s));
        assert!(
            EventSegment { first_seq: 9 }.file_name() < EventSegment { first_seq: 10 }.file_name()
        );
        assert_eq!(EventSegment::parse("42.jsonl"), None);
        assert_eq!(EventSegment::parse("events.lock"), None);
    }

    #[test]
    fn lines_round_trip_and_garbage_is_skipped() {
        let e = Event {
            seq: 3,
            time_ms: 9,
            kind: Name::new("test").unwrap(),
            source: "me".into(),
            data: Some(serde_json::json!({"p":1})),
        };
        let line = e.to_line().unwrap();
        assert_eq!(Event::from_line(&line[..line.len() - 1]), Some(e));
        assert_eq!(Event::from_line(b"{\"seq\":"), None);
        assert_eq!(Event::from_line(b"\x00\xff"), None);
    }

    #[test]
    fn numbers_in_data_read_back_exactly() {
        // Found by `cargo fuzz` (fuzz/corpus/event/float-data-roundtrip): without exact float
        // parsing, each write and read moved the last digit.
        let line = br#"{"seq":1,"time_ms":0,"kind":"k","source":"s","data":5.555555555555555e43}"#;
        let e = Event::from_line(line).unwrap();
        let again = e.to_line().unwrap();
        assert_eq!(Event::from_line(&again[..again.len() - 1]), Some(e));
        let read = Event::from_line(&again[..again.len() - 1]).unwrap();
        assert_eq!(
            read.data.and_then(|d| d.as_f64()),
            Some(5.555_555_555_555_555e43)
        );
    }

    #[test]
    fn oversized_events_are_refused() {
        let big = "x".repeat(MAX_EVENT_BYTES);
        let e = Event {
            seq: 1,
            time_ms: 0,
            kind: Name::new("k").unwrap(),
            source: "s".into(),
            data: Some(big.into()),
        };
        assert!(e.to_line().is_err());
    }
}
