//! The cursor's rules, one test per rule, and a property over rotations and pauses.

use super::*;
use crate::name::Name;
use proptest::prelude::*;

fn seg(first_seq: u64) -> EventSegment {
    EventSegment { first_seq }
}

fn line(seq: u64) -> Vec<u8> {
    Event {
        seq,
        time_ms: 0,
        kind: Name::new("k").unwrap(),
        source: "s".into(),
        data: None,
    }
    .to_line()
    .unwrap()
}

fn lines(seqs: std::ops::RangeInclusive<u64>) -> Vec<u8> {
    seqs.flat_map(line).collect()
}

/// A log on "disk": segments and their bytes.
#[derive(Default, Clone)]
struct Log(Vec<(EventSegment, Vec<u8>)>);

impl Log {
    fn with(mut self, first: u64, bytes: Vec<u8>) -> Log {
        self.0.push((seg(first), bytes));
        self
    }
    fn segments(&self) -> Vec<EventSegment> {
        self.0.iter().map(|(s, _)| *s).collect()
    }
    fn bytes(&self, s: EventSegment) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|(x, _)| *x == s)
            .map(|(_, b)| b.as_slice())
    }
}

/// Runs the cursor over `log` until caught up, reading at most `chunk` bytes at a time;
/// returns what it found.
fn drain(cursor: &mut Cursor, log: &Log, chunk: usize) -> Vec<Item> {
    let mut out = Vec::new();
    for _ in 0..100_000 {
        match cursor.next(&log.segments(), &mut out) {
            Step::CaughtUp => return out,
            Step::Read { segment, offset } => match log.bytes(segment) {
                None => cursor.vanished(segment),
                Some(b) => {
                    let start = (offset as usize).min(b.len());
                    let end = (start + chunk).min(b.len());
                    cursor.feed(segment, &b[start..end], &mut out);
                }
            },
        }
    }
    panic!("the cursor never caught up");
}

fn seqs(items: &[Item]) -> Vec<u64> {
    items
        .iter()
        .filter_map(|i| match i {
            Item::Event(e) => Some(e.seq),
            Item::Lost { .. } => None,
        })
        .collect()
}

fn losses(items: &[Item]) -> Vec<(u64, u64)> {
    items
        .iter()
        .filter_map(|i| match i {
            Item::Lost { from, to } => Some((*from, *to)),
            Item::Event(_) => None,
        })
        .collect()
}

#[test]
fn reads_across_segments_after_since() {
    let log = Log::default()
        .with(1, lines(1..=3))
        .with(4, lines(4..=6))
        .with(7, lines(7..=7));
    for since in 0..=7 {
        let items = drain(&mut Cursor::new(since), &log, 7);
        assert_eq!(seqs(&items), ((since + 1)..=7).collect::<Vec<_>>());
        assert!(losses(&items).is_empty());
    }
}

#[test]
fn a_segment_that_starts_late_is_a_reported_loss() {
    // The reader stopped in segment 1 at seq 2; segments 4 was rotated away meanwhile.
    let mut c = Cursor::new(0);
    let before = Log::default().with(1, lines(1..=2));
    assert_eq!(seqs(&drain(&mut c, &before, 1000)), vec![1, 2]);
    let after = Log::default().with(1, lines(1..=3)).with(7, lines(7..=9));
    let items = drain(&mut c, &after, 1000);
    assert_eq!(seqs(&items), vec![3, 7, 8, 9]);
    assert_eq!(losses(&items), vec![(4, 6)]);
    assert_eq!(
        items.iter().position(|i| matches!(i, Item::Lost { .. })),
        Some(1),
        "the loss is reported where it happened: {items:?}"
    );
}

#[test]
fn the_issues_reproduction_1_to_105_then_210_is_a_loss_not_a_skip() {
    // What `event watch` printed before the fix: 1..105, then 210..601, stderr empty.
    let mut c = Cursor::new(0);
    let first = Log::default().with(1, lines(1..=105));
    assert_eq!(seqs(&drain(&mut c, &first, 4096)).len(), 105);
    let rotated = Log::default()
        .with(1, lines(1..=105)) // the open segment: still readable through its fd
        .with(210, lines(210..=300))
        .with(301, lines(301..=601));
    let items = drain(&mut c, &rotated, 4096);
    assert_eq!(losses(&items), vec![(106, 209)]);
    assert_eq!(seqs(&items), (210..=601).collect::<Vec<_>>());
}

#[test]
fn starting_after_rotated_events_is_a_loss_but_since_0_means_oldest_kept() {
    let log = Log::default().with(10, lines(10..=12));
    let items = drain(&mut Cursor::new(3), &log, 100);
    assert_eq!(losses(&items), vec![(4, 9)]);
    assert_eq!(seqs(&items), vec![10, 11, 12]);
    let items = drain(&mut Cursor::new(0), &log, 100);
    assert!(losses(&items).is_empty());
    assert_eq!(seqs(&items), vec![10, 11, 12]);
}

#[test]
fn an_append_before_a_rotation_is_read_before_moving_on() {
    // The listing that shows the new segment comes before the last read of the old one:
    // the event appended just before the rotation is not lost.
    let mut c = Cursor::new(0);
    let mut out = Vec::new();
    let old = Log::default().with(1, lines(1..=2));
    assert_eq!(seqs(&drain(&mut c, &old, 1000)), vec![1, 2]);
    // Now seq 3 was appended to segment 1, then segment 4 created with seq 4.
    let log = Log::default().with(1, lines(1..=3)).with(4, lines(4..=4));
    let step = c.next(&log.segments(), &mut out);
    assert_eq!(
        step,
        Step::Read {
            segment: seg(1),
            offset: lines(1..=2).len() as u64
        },
        "the old segment is read again first"
    );
    let items = drain(&mut c, &log, 1000);
    assert_eq!(seqs(&items), vec![3, 4]);
    assert!(losses(&items).is_empty());
}

#[test]
fn partial_lines_wait_for_their_newline() {
    let full = lines(1..=2);
    let cut = full.len() - 5;
    let mut c = Cursor::new(0);
    let log = Log::default().with(1, full[..cut].to_vec());
    assert_eq!(seqs(&drain(&mut c, &log, 3)), vec![1]);
    let log = Log::default().with(1, full.clone());
    assert_eq!(seqs(&drain(&mut c, &log, 3)), vec![2]);
}

#[test]
fn a_torn_line_at_the_end_of_a_final_segment_is_dropped() {
    let mut torn = lines(1..=1);
    torn.extend_from_slice(b"{\"seq\":2,\"ti");
    let log = Log::default().with(1, torn).with(2, lines(2..=3));
    let items = drain(&mut Cursor::new(0), &log, 5);
    assert_eq!(seqs(&items), vec![1, 2, 3]);
    assert!(losses(&items).is_empty());
}

#[test]
fn garbage_and_duplicates_are_skipped_and_jumps_are_losses() {
    let mut b = lines(1..=2);
    b.extend_from_slice(b"not an event\n\x00\xff\n");
    b.extend(line(2)); // a duplicate
    b.extend(line(1)); // going back
    b.extend(line(5)); // a jump: 3 and 4 are not in the log
    let items = drain(&mut Cursor::new(0), &Log::default().with(1, b), 4);
    assert_eq!(seqs(&items), vec![1, 2, 5]);
    assert_eq!(losses(&items), vec![(3, 4)]);
}

#[test]
fn an_overlong_line_is_skipped_without_being_kept() {
    let mut b = lines(1..=1);
    b.extend(std::iter::repeat_n(b'x', MAX_EVENT_BYTES * 3));
    b.push(b'\n');
    b.extend(line(2));
    let mut c = Cursor::new(0);
    let items = drain(&mut c, &Log::default().with(1, b), 1000);
    assert_eq!(seqs(&items), vec![1, 2]);
    assert!(c.at.as_ref().unwrap().partial.capacity() <= 2 * MAX_EVENT_BYTES);
}

#[test]
fn a_huge_segment_is_read_only_to_the_limit() {
    let mut b = lines(1..=1);
    b.resize((SEGMENT_READ_LIMIT * 3) as usize, 0);
    let log = Log::default().with(1, b).with(5000, lines(5000..=5001));
    let mut c = Cursor::new(0);
    let mut out = Vec::new();
    let mut read = 0u64;
    for _ in 0..10_000 {
        match c.next(&log.segments(), &mut out) {
            Step::CaughtUp => break,
            Step::Read { segment, offset } => {
                let bytes = log.bytes(segment).unwrap();
                let start = (offset as usize).min(bytes.len());
                let end = (start + 65536).min(bytes.len());
                read += (end - start) as u64;
                c.feed(segment, &bytes[start..end], &mut out);
            }
        }
    }
    assert!(
        read <= SEGMENT_READ_LIMIT + 65536 + 100,
        "read {read} bytes"
    );
    assert_eq!(seqs(&out), vec![1, 5000, 5001]);
    assert_eq!(losses(&out), vec![(2, 4999)]);
}

#[test]
fn a_segment_that_vanishes_before_it_is_opened_is_a_loss() {
    let mut c = Cursor::new(0);
    let log = Log::default().with(1, lines(1..=2));
    assert_eq!(seqs(&drain(&mut c, &log, 100)), vec![1, 2]);
    // Listing shows 3 and 5; 3 is gone by the time it is opened.
    let mut out = Vec::new();
    let listed = vec![seg(1), seg(3), seg(5)];
    let later = Log::default().with(1, lines(1..=2)).with(5, lines(5..=6));
    loop {
        match c.next(&listed, &mut out) {
            Step::Read { segment, offset } => match later.bytes(segment) {
                None => {
                    c.vanished(segment);
                    break;
                }
                Some(b) => c.feed(segment, &b[(offset as usize).min(b.len())..], &mut out),
            },
            Step::CaughtUp => panic!("should read on"),
        }
    }
    let items = drain(&mut c, &later, 100);
    assert_eq!(seqs(&items), vec![5, 6]);
    assert_eq!(losses(&items), vec![(3, 4)]);
}

#[test]
fn an_empty_log_is_caught_up_and_follows_later_appends() {
    let mut c = Cursor::new(0);
    assert!(drain(&mut c, &Log::default(), 10).is_empty());
    let log = Log::default().with(1, lines(1..=1));
    assert_eq!(seqs(&drain(&mut c, &log, 10)), vec![1]);
    assert!(drain(&mut c, &log, 10).is_empty(), "nothing new");
    let log = Log::default().with(1, lines(1..=2));
    assert_eq!(seqs(&drain(&mut c, &log, 10)), vec![2]);
}

proptest! {
    /// Whatever the chunking, the rotation and where the reader pauses: every event is
    /// handed out once, in order, or covered by exactly one reported loss.
    #[test]
    fn every_event_is_read_once_or_reported_lost(
        per_segment in 1u64..6,
        total in 1u64..40,
        pause_at in 0u64..40,
        kept in 1usize..4,
        chunk in 1usize..200,
    ) {
        let build = |upto: u64, keep: usize| {
            let mut log = Log::default();
            let mut first = 1;
            while first <= upto {
                let last = (first + per_segment - 1).min(upto);
                log = log.with(first, lines(first..=last));
                first = last + 1;
            }
            let n = log.0.len();
            log.0.drain(..n.saturating_sub(keep));
            log
        };
        let mut c = Cursor::new(0);
        let pause = pause_at.min(total);
        let mut items = drain(&mut c, &build(pause, usize::MAX), chunk);
        // While paused, rotation deleted all but `kept` segments; the open segment stays
        // readable through its descriptor, which the log models by keeping it.
        let mut after = build(total, kept);
        if let Some(s) = c.segment().filter(|s| after.bytes(*s).is_none()) {
            let full = build(total, usize::MAX);
            after.0.push((s, full.bytes(s).unwrap().to_vec()));
        }
        items.extend(drain(&mut c, &after, chunk));
        let mut next = 1;
        for item in &items {
            match item {
                Item::Event(e) => { prop_assert_eq!(e.seq, next); next += 1; }
                Item::Lost { from, to } => {
                    prop_assert_eq!(*from, next);
                    prop_assert!(to >= from);
                    next = to + 1;
                }
            }
        }
        prop_assert_eq!(next, total + 1, "{:?}", items);
    }
}

#[test]
fn after_the_largest_sequence_number_nothing_follows() {
    let log = Log::default().with(1, lines(1..=3));
    let items = drain(&mut Cursor::new(u64::MAX), &log, 100);
    assert!(items.is_empty(), "{items:?}");
    // A hostile segment claiming the largest seq: read, and nothing wraps.
    let mut c = Cursor::new(0);
    let log = Log::default()
        .with(1, lines(1..=2))
        .with(u64::MAX, lines(u64::MAX..=u64::MAX));
    let items = drain(&mut c, &log, 100);
    assert_eq!(seqs(&items), vec![1, 2, u64::MAX]);
    assert_eq!(losses(&items), vec![(3, u64::MAX - 1)]);
    assert!(drain(&mut c, &log, 100).is_empty());
}
