//! Reading the event log, as rules without I/O.
//!
//! A [`Cursor`] knows the last sequence number it handed out and where it is in which
//! segment. The reader's loop lists the segments, asks [`Cursor::next`] what to do, reads
//! what it is told to (bytes of one segment from an offset), and gives them to
//! [`Cursor::feed`], which turns complete lines into events. The rules:
//!
//! - **Start**: after `since`, in the newest segment whose first sequence number is at most
//!   `since + 1`. If every segment starts later, the events in between are lost (unless
//!   `since` is 0: "from the oldest kept").
//! - **A segment is final once a newer one exists.** Appends and rotation happen under one
//!   flock, so once a listing shows a newer segment, every append to the older ones has
//!   completed. The reader therefore reads to the end *after* a listing that shows a newer
//!   segment before it moves on; a listing taken before the last read could miss an append
//!   made just before the rotation.
//! - **The next segment must start at `last + 1`.** If it starts later, the events in between
//!   were rotated away before they could be read: that is reported as [`Item::Lost`], never
//!   skipped in silence. The same holds inside a segment: a sequence number that jumps ahead is
//!   a loss; one at or below `last` is a duplicate or a neighbour's garbage, skipped.
//! - **Bounded**: a line longer than [`MAX_EVENT_BYTES`] is skipped without being kept whole,
//!   and at most [`SEGMENT_READ_LIMIT`] bytes of a segment are read.

use super::{Event, EventSegment, MAX_EVENT_BYTES, SEGMENT_READ_LIMIT};

/// What a reader finds in the log.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// The next event.
    Event(Event),
    /// Events `from..=to` are gone: rotated away before this reader got to them.
    Lost {
        /// The first sequence number lost.
        from: u64,
        /// The last sequence number lost.
        to: u64,
    },
}

/// What the reader's loop must do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Read segment `segment` from byte `offset` (open it first if another one is open) and
    /// [`Cursor::feed`] what was read, even nothing (the end of the file).
    Read {
        /// The segment.
        segment: EventSegment,
        /// Where to read from.
        offset: u64,
    },
    /// Nothing more to read until the log changes.
    CaughtUp,
}

/// A reader's position in the event log.
#[derive(Debug, Clone)]
pub struct Cursor {
    /// The last sequence number handed out (or skipped as lost); starts at `since`.
    last: u64,
    /// `since` was 0 and nothing was seen yet: start at the oldest event kept, whatever was
    /// rotated before.
    from_oldest: bool,
    at: Option<Position>,
}

#[derive(Debug, Clone)]
struct Position {
    segment: EventSegment,
    offset: u64,
    /// The end of an incomplete line, kept until its newline arrives.
    partial: Vec<u8>,
    /// Inside a line too long to be an event: drop bytes until its newline.
    discarding: bool,
    /// The listing behind the current read showed a segment newer than this one.
    newer_listed: bool,
    /// The last read found the end of the segment.
    at_end: bool,
    /// Read to the end after a listing showed a newer segment: move on.
    finished: bool,
}

impl Position {
    fn new(segment: EventSegment) -> Position {
        Position {
            segment,
            offset: 0,
            partial: Vec::new(),
            discarding: false,
            newer_listed: false,
            at_end: false,
            finished: false,
        }
    }
}

impl Cursor {
    /// A cursor that hands out the events after sequence number `since` (0: from the oldest
    /// event kept).
    pub fn new(since: u64) -> Cursor {
        Cursor {
            last: since,
            from_oldest: since == 0,
            at: None,
        }
    }

    /// The last sequence number handed out (or reported lost).
    pub fn last(&self) -> u64 {
        self.last
    }

    /// Whether [`Cursor::next`] needs a fresh listing of the segments: when it starts, or at
    /// the end of a segment (whether a newer one exists decides what comes next). In the
    /// middle of a segment an older listing does as well.
    pub fn needs_listing(&self) -> bool {
        self.at.as_ref().is_none_or(|p| p.at_end || p.finished)
    }

    /// The segment the cursor reads, if it has started.
    pub fn segment(&self) -> Option<EventSegment> {
        self.at.as_ref().map(|p| p.segment)
    }

    /// What to do next, given the segments present now (any order). A [`Item::Lost`] found
    /// while deciding (the next segment starts too late) is pushed to `out`.
    pub fn next(&mut self, segments: &[EventSegment], out: &mut Vec<Item>) -> Step {
        if self.last == u64::MAX {
            return Step::CaughtUp; // nothing can follow the largest sequence number
        }
        let mut sorted = segments.to_vec();
        sorted.sort();
        sorted.dedup();
        // At most one switch per call, plus one start: each loop turn changes the position.
        for _ in 0..3 {
            let Some(pos) = self.at.as_mut() else {
                match self.start(&sorted, out) {
                    Some(()) => continue,
                    None => return Step::CaughtUp,
                }
            };
            let newer = sorted.iter().find(|s| **s > pos.segment).copied();
            if pos.finished || (pos.at_end && pos.offset >= SEGMENT_READ_LIMIT && newer.is_some()) {
                match newer {
                    Some(next) => self.switch_to(next, out),
                    // Every newer segment vanished: only rotation deletes, oldest first, so
                    // this is a neighbour's doing. Start over from what is there.
                    None => self.at = None,
                }
                continue;
            }
            if pos.at_end && newer.is_none() {
                // Read to the end with no newer segment listed: caught up. The next call
                // (after a wake-up) reads again from the same offset.
                pos.at_end = false;
                return Step::CaughtUp;
            }
            if pos.offset >= SEGMENT_READ_LIMIT {
                // A segment larger than any publisher writes: what is beyond is not read.
                pos.newer_listed = newer.is_some();
                if pos.newer_listed {
                    pos.finished = true;
                    continue;
                }
                return Step::CaughtUp;
            }
            pos.at_end = false;
            pos.newer_listed = newer.is_some();
            return Step::Read {
                segment: pos.segment,
                offset: pos.offset,
            };
        }
        Step::CaughtUp
    }

    /// Takes the bytes read from `segment` at the offset [`Cursor::next`] gave (empty: the end
    /// of the file), and pushes the events in its complete lines (and any loss) to `out`.
    pub fn feed(&mut self, segment: EventSegment, bytes: &[u8], out: &mut Vec<Item>) {
        let Some(pos) = self.at.as_mut().filter(|p| p.segment == segment) else {
            return;
        };
        if bytes.is_empty() {
            pos.at_end = true;
            if pos.newer_listed {
                // Final: what is left in `partial` is a torn line that will never end.
                pos.finished = true;
                pos.partial.clear();
                pos.discarding = false;
            }
            return;
        }
        let take = bytes.len().min(
            usize::try_from(SEGMENT_READ_LIMIT - pos.offset.min(SEGMENT_READ_LIMIT))
                .unwrap_or(usize::MAX),
        );
        pos.offset += bytes.len() as u64;
        let bytes = &bytes[..take];
        let mut rest = bytes;
        while let Some(nl) = rest.iter().position(|b| *b == b'\n') {
            let (head, tail) = (&rest[..nl], &rest[nl + 1..]);
            rest = tail;
            if pos.discarding {
                pos.discarding = false;
                continue;
            }
            let event = if pos.partial.is_empty() {
                Event::from_line(head)
            } else {
                pos.partial.extend_from_slice(head);
                let e = Event::from_line(&pos.partial);
                pos.partial.clear();
                e
            };
            let Some(event) = event else { continue };
            if event.seq <= self.last {
                continue;
            }
            // `event.seq > last` here, so `last + 1` cannot overflow.
            if event.seq > self.last + 1 && !(self.from_oldest && self.last == 0) {
                out.push(Item::Lost {
                    from: self.last + 1,
                    to: event.seq - 1,
                });
            }
            self.last = event.seq;
            self.from_oldest = false;
            out.push(Item::Event(event));
        }
        if pos.discarding {
            return;
        }
        if pos.partial.len() + rest.len() > MAX_EVENT_BYTES {
            pos.partial.clear();
            pos.discarding = true;
        } else {
            pos.partial.extend_from_slice(rest);
        }
    }

    /// `segment` could not be opened: it was deleted (rotated away) between the listing and
    /// the open. What it held is lost unless it can be found elsewhere.
    pub fn vanished(&mut self, segment: EventSegment) {
        if let Some(pos) = self.at.as_mut().filter(|p| p.segment == segment) {
            if self.from_oldest && self.last == 0 {
                self.at = None; // nothing read yet: start again at the oldest kept
            } else {
                pos.finished = true;
            }
        }
    }

    fn start(&mut self, sorted: &[EventSegment], out: &mut Vec<Item>) -> Option<()> {
        if sorted.is_empty() {
            // "From the oldest kept" means what is kept at the first look: an empty log then
            // means everything from seq 1 on is wanted, and losing it later is a loss.
            self.from_oldest = false;
            return None;
        }
        // After the largest sequence number nothing can follow.
        let want = self.last.checked_add(1)?;
        let pick = sorted
            .iter()
            .rev()
            .find(|s| s.first_seq <= want)
            .or(sorted.first())
            .copied()?;
        if pick.first_seq > want {
            self.lose_until(pick.first_seq, out);
        }
        self.at = Some(Position::new(pick));
        Some(())
    }

    fn switch_to(&mut self, next: EventSegment, out: &mut Vec<Item>) {
        if next.first_seq > self.last.saturating_add(1) {
            self.lose_until(next.first_seq, out);
        }
        self.at = Some(Position::new(next));
    }

    /// Everything before `first` that was not handed out is lost (not when starting from the
    /// oldest kept: then nothing was asked for before it). Called with `first > last + 1`.
    fn lose_until(&mut self, first: u64, out: &mut Vec<Item>) {
        if !(self.from_oldest && self.last == 0) {
            out.push(Item::Lost {
                from: self.last + 1,
                to: first - 1,
            });
        }
        self.last = first - 1;
    }
}

#[cfg(test)]
mod tests;
