//! Fuzzes the event log's formats: one line (`Event::from_line`, `Event::to_line`) and a
//! segment's file name (`EventSegment::parse`, `EventSegment::file_name`).
//!
//! Properties checked on every input:
//! - A line that decodes is at most `MAX_EVENT_BYTES` long and its kind is a valid name.
//! - Its event re-encodes (`to_line`) to exactly one line: JSON, one `\n`, at the end, at most
//!   `MAX_EVENT_BYTES`; that line decodes to an equal event, and re-encoding that gives the
//!   same bytes (the encoding is canonical). `to_line` refuses only events over the limit.
//! - A file name that `EventSegment::parse` accepts is exactly the one `file_name` writes for
//!   it (20 digits, `.jsonl`), and segments sort by name as by sequence number.
#![no_main]

use libfuzzer_sys::fuzz_target;
use podsignal_proto::Name;
use podsignal_proto::event::{Event, EventSegment, MAX_EVENT_BYTES};

fuzz_target!(|data: &[u8]| {
    check_line(data);
    check_segment_name(&String::from_utf8_lossy(data));
});

fn check_line(line: &[u8]) {
    let Some(event) = Event::from_line(line) else {
        return;
    };
    assert!(line.len() <= MAX_EVENT_BYTES);
    assert_eq!(Name::new(event.kind.as_str()).as_ref(), Ok(&event.kind));
    match event.to_line() {
        Ok(encoded) => {
            assert!(encoded.len() <= MAX_EVENT_BYTES);
            assert_eq!(encoded.last(), Some(&b'\n'));
            let body = &encoded[..encoded.len() - 1];
            let text = String::from_utf8_lossy(body);
            assert!(!body.contains(&b'\n'), "a newline inside {text:?}");
            let back = Event::from_line(body);
            assert_eq!(
                back.as_ref(),
                Some(&event),
                "decoding the encoded line {text}"
            );
            if let Some(back) = back {
                let again = back.to_line().ok();
                assert_eq!(again, Some(encoded), "the encoding is not canonical");
            }
        }
        Err(e) => {
            assert!(e.size > MAX_EVENT_BYTES, "{e}");
            assert_eq!(e.kind, event.kind.as_str());
        }
    }
}

fn check_segment_name(name: &str) {
    let Some(segment) = EventSegment::parse(name) else {
        return;
    };
    assert_eq!(segment.file_name(), name);
    for other in [0, 1, segment.first_seq / 2, u64::MAX] {
        let other = EventSegment { first_seq: other };
        assert_eq!(
            other.cmp(&segment),
            other.file_name().as_str().cmp(name),
            "{other:?} vs {name:?}"
        );
        assert_eq!(EventSegment::parse(&other.file_name()), Some(other));
    }
}
