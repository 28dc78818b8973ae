//! Fuzzes the event log reader's rules (`event::cursor::Cursor`) against a model of the log
//! on disk: publishers append lines (some torn, finished at the next write), rotate to new
//! segments and delete old ones, while a reader built like the client's `EventReader` (a
//! listing only when the cursor needs one or a new read starts, a segment kept open while it
//! is read, reads of any size) takes steps in between. Neighbours may also append garbage or
//! forged events, forge segments and truncate files.
//!
//! Properties, always (hostile neighbours included):
//! - What the reader is handed is contiguous: every item starts one past where the last one
//!   ended (`since + 1` for the first; only a reader from `since = 0` may start later, at the
//!   oldest event kept), a loss `from..=to` has `to >= from`, and nothing follows `u64::MAX`.
//!   `Cursor::last` is always the end of the last item.
//! - The cursor only asks to read a segment that was listed or is open.
//! - On a log that does not change, reading to the end terminates: `CaughtUp` within a number
//!   of steps bounded by the bytes and segments present.
//!
//! And with honest publishers only, once the log stops changing and the reader has read to
//! the end (after the wake-up the last change caused): every event after `since` was handed
//! out once, in order, equal to the one published, or it is covered by a reported loss (or,
//! from `since = 0`, skipped as older than the oldest kept), and an event is lost only if
//! the segment it was published in was deleted.
#![no_main]

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use podsignal_proto::Name;
use podsignal_proto::event::cursor::{Cursor, Item, Step};
use podsignal_proto::event::{Event, EventSegment};

/// At most this many events are published: enough for every rule, quick to run.
const MAX_PUBLISHED: usize = 300;

#[derive(Arbitrary, Debug)]
struct Input {
    /// The reader's `since`; 255 stands for `u64::MAX`.
    since: u8,
    ops: Vec<Op>,
    /// The read size of the last read to the end.
    final_chunk: u8,
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// Publish 1 to 4 events to the newest segment (creating one if there is none).
    Publish(u8),
    /// Publish one event whose line is written in two parts: this much of it now, the rest at
    /// the next change a publisher makes (the writer holds the lock in between).
    Torn(u8),
    /// Start a new segment, named by the next sequence number (empty until a publish).
    Rotate,
    /// Delete the oldest segments, keeping the newest 1 to 4.
    Retain(u8),
    /// One turn of the reader's loop, reading at most `chunk` bytes; `relist`: a new read
    /// starts (the client lists afresh on each).
    Step { chunk: u8, relist: bool },
    /// The reader reads until caught up.
    Drain { chunk: u8 },
    /// A neighbour appends bytes to a segment.
    Garbage { segment: u8, bytes: Vec<u8> },
    /// A neighbour appends a well-formed event with a sequence number of its choosing.
    Forged {
        segment: u8,
        seq: u8,
        near_max: bool,
    },
    /// A neighbour creates (or appends to) a segment of its choosing.
    ForgedSegment {
        first_seq: u8,
        near_max: bool,
        bytes: Vec<u8>,
    },
    /// A neighbour truncates a segment.
    Truncate { segment: u8, len: u16 },
}

fuzz_target!(|input: Input| {
    let since = if input.since == u8::MAX {
        u64::MAX
    } else {
        u64::from(input.since)
    };
    let mut log = Log::new();
    let mut reader = Reader::new(since);
    for op in input.ops {
        log.apply(&op, &mut reader);
    }
    log.finish_torn_line();
    // The log stops changing. The read in progress ends (a `CaughtUp` may answer an end of
    // file that a publisher has since written past), then the wake-up the last changes caused
    // reads to the end.
    reader.drain(&log, chunk(input.final_chunk));
    reader.drain(&log, chunk(input.final_chunk));
    if log.honest {
        reader.check_complete(&log);
    }
});

fn chunk(c: u8) -> usize {
    if c == 0 { 65_536 } else { usize::from(c) }
}

fn near(seq: u8, near_max: bool) -> u64 {
    if near_max {
        u64::MAX - u64::from(seq)
    } else {
        u64::from(seq)
    }
}

fn event(seq: u64) -> Event {
    Event {
        seq,
        time_ms: seq.wrapping_mul(1000),
        kind: Name::new(if seq.is_multiple_of(2) { "even" } else { "odd" })
            .unwrap_or_else(|e| panic!("{e}")),
        source: "fuzz".to_owned(),
        data: seq
            .is_multiple_of(3)
            .then(|| serde_json::json!({ "seq": seq })),
    }
}

fn line(seq: u64) -> Vec<u8> {
    event(seq).to_line().unwrap_or_else(|e| panic!("{e}"))
}

type File = Rc<RefCell<Vec<u8>>>;

/// The events directory: segment files by name, and what the publishers did.
#[derive(Default)]
struct Log {
    segments: BTreeMap<EventSegment, File>,
    /// Events published: sequence number `i + 1` at `i`, with the segment it went to.
    published: Vec<(Event, EventSegment)>,
    /// The segments deleted by rotation.
    deleted: Vec<EventSegment>,
    /// The rest of a torn line, written at the publishers' next change.
    torn: Option<(File, Vec<u8>)>,
    /// No neighbour touched the log.
    honest: bool,
}

impl Log {
    fn new() -> Log {
        Log {
            honest: true,
            ..Log::default()
        }
    }

    fn apply(&mut self, op: &Op, reader: &mut Reader) {
        match op {
            Op::Publish(n) => {
                self.finish_torn_line();
                for _ in 0..=(n % 4) {
                    self.publish(None);
                }
            }
            Op::Torn(cut) => {
                self.finish_torn_line();
                self.publish(Some(usize::from(*cut)));
            }
            Op::Rotate => {
                self.finish_torn_line();
                let next = EventSegment {
                    first_seq: self.next_seq(),
                };
                let newest_used = self
                    .segments
                    .last_key_value()
                    .is_some_and(|(_, f)| !f.borrow().is_empty());
                if newest_used && !self.segments.contains_key(&next) {
                    self.segments.insert(next, File::default());
                }
            }
            Op::Retain(keep) => {
                self.finish_torn_line();
                let keep = 1 + usize::from(keep % 4);
                while self.segments.len() > keep {
                    if let Some((s, _)) = self.segments.pop_first() {
                        self.deleted.push(s);
                    }
                }
            }
            Op::Step { chunk: c, relist } => {
                if *relist {
                    reader.listing = None;
                }
                reader.step(self, chunk(*c));
            }
            Op::Drain { chunk: c } => reader.drain(self, chunk(*c)),
            Op::Garbage { segment, bytes } => {
                self.honest = false;
                if let Some(f) = self.nth(*segment) {
                    f.borrow_mut().extend(bytes.iter().take(512));
                }
            }
            Op::Forged {
                segment,
                seq,
                near_max,
            } => {
                self.honest = false;
                if let Some(f) = self.nth(*segment) {
                    f.borrow_mut().extend(line(near(*seq, *near_max)));
                }
            }
            Op::ForgedSegment {
                first_seq,
                near_max,
                bytes,
            } => {
                self.honest = false;
                let s = EventSegment {
                    first_seq: near(*first_seq, *near_max),
                };
                let f = self.segments.entry(s).or_default();
                f.borrow_mut().extend(bytes.iter().take(512));
            }
            Op::Truncate { segment, len } => {
                self.honest = false;
                if let Some(f) = self.nth(*segment) {
                    f.borrow_mut().truncate(usize::from(*len));
                }
            }
        }
    }

    fn nth(&self, i: u8) -> Option<File> {
        let n = self.segments.len();
        (n > 0).then(|| {
            self.segments
                .values()
                .nth(usize::from(i) % n)
                .cloned()
                .unwrap_or_default()
        })
    }

    fn next_seq(&self) -> u64 {
        self.published.len() as u64 + 1
    }

    /// Appends the next event to the newest segment; with `cut`, only part of its line.
    fn publish(&mut self, cut: Option<usize>) {
        if self.published.len() >= MAX_PUBLISHED {
            return;
        }
        let seq = self.next_seq();
        if self.segments.is_empty() {
            let first = EventSegment { first_seq: seq };
            self.segments.insert(first, File::default());
        }
        let Some((&segment, file)) = self.segments.last_key_value() else {
            return;
        };
        let mut bytes = line(seq);
        if let Some(cut) = cut {
            let rest = bytes.split_off(cut % bytes.len());
            self.torn = Some((file.clone(), rest));
        }
        file.borrow_mut().extend(bytes);
        self.published.push((event(seq), segment));
    }

    fn finish_torn_line(&mut self) {
        if let Some((file, rest)) = self.torn.take() {
            file.borrow_mut().extend(rest);
        }
    }

    fn listing(&self) -> Vec<EventSegment> {
        self.segments.keys().copied().collect()
    }

    fn open(&self, segment: EventSegment) -> Option<File> {
        self.segments.get(&segment).cloned()
    }

    /// The bytes present, in listed segments and in the reader's open one.
    fn size(&self, reader: &Reader) -> usize {
        let listed: usize = self.segments.values().map(|f| f.borrow().len()).sum();
        listed + reader.open.as_ref().map_or(0, |(_, f)| f.borrow().len())
    }
}

/// The client's `EventReader`, one loop turn at a time.
struct Reader {
    since: u64,
    cursor: Cursor,
    open: Option<(EventSegment, File)>,
    listing: Option<Vec<EventSegment>>,
    /// Everything handed out, in order.
    items: Vec<Item>,
    /// Where the next item must start.
    expected: u128,
}

impl Reader {
    fn new(since: u64) -> Reader {
        Reader {
            since,
            cursor: Cursor::new(since),
            open: None,
            listing: None,
            items: Vec::new(),
            expected: u128::from(since) + 1,
        }
    }

    /// One turn of the reader's loop; true when caught up.
    fn step(&mut self, log: &Log, chunk: usize) -> bool {
        if self.listing.is_none() || self.cursor.needs_listing() {
            self.listing = Some(log.listing());
        }
        let listing = self.listing.clone().unwrap_or_default();
        let mut out = Vec::new();
        let caught_up = match self.cursor.next(&listing, &mut out) {
            Step::CaughtUp => {
                // The client returns; its next read starts with a fresh listing.
                self.listing = None;
                true
            }
            Step::Read { segment, offset } => {
                let is_open = self.open.as_ref().is_some_and(|(s, _)| *s == segment);
                assert!(
                    is_open || listing.contains(&segment),
                    "told to read {segment:?}, neither listed ({listing:?}) nor open"
                );
                if !is_open {
                    self.open = log.open(segment).map(|f| (segment, f));
                }
                match &self.open {
                    None => self.cursor.vanished(segment),
                    Some((_, file)) => {
                        let bytes = file.borrow();
                        let start = usize::try_from(offset).unwrap_or(usize::MAX);
                        let start = start.min(bytes.len());
                        let end = start.saturating_add(chunk).min(bytes.len());
                        self.cursor.feed(segment, &bytes[start..end], &mut out);
                    }
                }
                false
            }
        };
        self.take(out);
        caught_up
    }

    /// Reads until caught up, as the client does after a wake-up; on a log that does not
    /// change this must end.
    fn drain(&mut self, log: &Log, chunk: usize) {
        self.listing = None;
        let bound = 2 * (log.size(self) + 8 * (log.segments.len() + 2));
        for _ in 0..bound {
            if self.step(log, chunk) {
                return;
            }
        }
        panic!(
            "not caught up after {bound} steps on a log that does not change: {:?}",
            self.cursor
        );
    }

    fn take(&mut self, out: Vec<Item>) {
        for item in out {
            let (from, to) = match &item {
                Item::Event(e) => (e.seq, e.seq),
                Item::Lost { from, to } => (*from, *to),
            };
            // From `since = 0` the reader starts at the oldest event kept, whatever came first.
            let from_oldest = self.since == 0 && self.items.is_empty();
            let start = u128::from(from);
            assert!(
                start == self.expected || (from_oldest && start > self.expected),
                "{item:?} handed out where {} was due; before it: {:?}",
                self.expected,
                self.items.last()
            );
            assert!(to >= from, "{item:?}");
            self.expected = u128::from(to) + 1;
            self.items.push(item);
        }
        let last = u128::from(self.cursor.last());
        if self.items.is_empty() {
            assert!(last >= u128::from(self.since), "last {last} < since");
        } else {
            assert_eq!(last + 1, self.expected, "Cursor::last disagrees");
        }
    }

    /// After the last read to the end of an honest log: every event after `since` was handed
    /// out as published, or lost with the segment it was in.
    fn check_complete(&self, log: &Log) {
        let published = log.published.len() as u64;
        assert_eq!(
            self.cursor.last(),
            self.since.max(published),
            "{:?}",
            self.items
        );
        let mut handed = vec![false; log.published.len()];
        for item in &self.items {
            if let Item::Event(e) = item {
                let i = usize::try_from(e.seq - 1).unwrap_or(usize::MAX);
                let want = log.published.get(i).map(|(e, _)| e);
                assert_eq!(Some(e), want, "not the event published");
                handed[i] = true;
            }
        }
        let after_since = usize::try_from(self.since).unwrap_or(usize::MAX);
        for (i, (e, segment)) in log.published.iter().enumerate().skip(after_since) {
            assert!(
                handed[i] || log.deleted.contains(segment),
                "event {} (in {segment:?}, never deleted) was not handed out: {:?}",
                e.seq,
                self.items
            );
        }
    }
}
