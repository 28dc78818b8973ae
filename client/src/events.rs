//! Lifecycle events: an append-only, rotated log of JSON lines under `events/`.
//!
//! Publishing takes the flock `events/events.lock` (waited for on the volume's flock thread,
//! so a publish can be abandoned, e.g. by a deadline, without leaving anything behind), finds
//! the last sequence number at the tail of the newest segment, rotates if that segment is
//! full, and appends one line with a single `write(2)` on an `O_APPEND` descriptor.
//!
//! Reading follows [`podsignal_proto::event::cursor`]: this module only lists segments, opens
//! them and reads bounded chunks on the blocking pool; the cursor decides what to read and
//! reports every loss ([`Error::EventsRotated`]), never skipping one in silence.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use podsignal_proto::event::cursor::{Cursor, Item, Step};
use podsignal_proto::event::{
    MAX_EVENT_BYTES, SEGMENT_MAX_BYTES, SEGMENT_READ_LIMIT, SEGMENTS_KEPT,
};
use podsignal_proto::{Event, EventSegment, Name, layout};
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::identity::now_ms;
use crate::safe_dir::SafeDir;
use crate::volume::Volume;
use crate::watch::Area;

/// The most bytes read from a segment at once.
const READ_CHUNK: usize = 64 * 1024;
/// The most events a stream reads in one go; with [`STREAM_QUEUE`], what a stalled consumer
/// can make a stream hold in memory: at most 96 events (1.5 MiB of 16 KiB events), so 64
/// stalled SSE clients of the agent cost ~100 MiB, not gigabytes. A consumer that falls
/// further behind reads on from the log, or is told what rotation took.
const STREAM_BATCH: usize = 64;
/// How many events wait in a stream's channel for its consumer.
const STREAM_QUEUE: usize = 32;

/// Events read, and the events lost on the way (rotated away before they could be read).
#[derive(Debug, Default)]
pub struct EventPage {
    /// The events, in order.
    pub events: Vec<Event>,
    /// The first loss met: the first and last sequence numbers lost.
    pub lost: Option<(u64, u64)>,
}

/// Work to run holding the events flock.
type EventsJob<T> = Box<dyn FnOnce(&EventLog<'_>) -> Result<T> + Send>;

impl Volume {
    /// Runs `f` holding the events flock, so that what it writes is ordered with events:
    /// on the blocking pool if the lock is free, else on the lock file's flock thread the
    /// moment it is ([`Volume::with_flock`]). The lock is checked to be the file at its path
    /// (a neighbour who replaced it must not split publishers in two). Waiting can be
    /// abandoned (drop the future); once `f` runs it completes.
    pub(crate) async fn with_events_lock<T: Send + 'static>(
        &self,
        f: impl FnOnce(&EventLog<'_>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.with_events_lock_boxed(Box::new(f)).await
    }

    /// [`Volume::with_events_lock`], compiled once per result type rather than once per
    /// caller: the flock machinery under it (a blocking task, a flock-thread job, their
    /// futures) is large, and publishing, the phase and `reset` share it.
    async fn with_events_lock_boxed<T: Send + 'static>(&self, f: EventsJob<T>) -> Result<T> {
        let mut f = f;
        loop {
            let volume = self.clone();
            let outcome = self
                .with_flock(&self.inner.events, layout::EVENTS_LOCK_FILE, move |lock| {
                    let dir = &volume.inner.events;
                    if !dir.is_current(layout::EVENTS_LOCK_FILE, &lock)? {
                        return Ok(Err(f)); // replaced meanwhile: again, on the file now there
                    }
                    let result = f(&EventLog {
                        volume: &volume,
                        dir,
                    });
                    drop(lock); // unlocked after the write
                    result.map(Ok)
                })
                .await?;
            match outcome {
                Ok(t) => return Ok(t),
                Err(back) => f = back,
            }
        }
    }

    pub(crate) async fn publish_now(
        &self,
        kind: &Name,
        data: Option<serde_json::Value>,
    ) -> Result<Event> {
        let kind = kind.clone();
        self.with_events_lock(move |log| log.append(kind, data))
            .await
    }

    /// The sequence number of the newest event, 0 if there is none.
    pub(crate) fn last_event_seq_now(&self) -> Result<u64> {
        let segments = segments(&self.inner.events)?;
        match segments.last() {
            Some(s) => last_seq_in(&self.inner.events, *s),
            None => Ok(0),
        }
    }

    /// The events after `since`, at most `limit`, and the first loss met. With `stop_at_loss`
    /// the page ends at the first loss (the events before it are returned). For servers
    /// that report losses their own way (the agent's `podsignal-events-lost` header).
    pub async fn read_events_page(
        &self,
        since: u64,
        limit: usize,
        stop_at_loss: bool,
    ) -> Result<EventPage> {
        let dir = self.inner.events.clone();
        self.blocking(move || {
            let mut reader = EventReader::new(since);
            let mut page = EventPage::default();
            let mut items = Vec::new();
            while page.events.len() < limit {
                items.clear();
                let want = limit - page.events.len();
                let more = reader.read_available(&dir, want, &mut items)?;
                for item in items.drain(..) {
                    match item {
                        Item::Event(e) => page.events.push(e),
                        Item::Lost { from, to } => {
                            page.lost.get_or_insert((from, to));
                            if stop_at_loss {
                                return Ok(page);
                            }
                        }
                    }
                }
                if !more {
                    break;
                }
            }
            page.events.truncate(limit);
            Ok(page)
        })
        .await
    }

    /// Waits up to `timeout` until there are events after `since` (or a loss), and returns
    /// the first page of them; an empty page when the time ran out.
    pub async fn wait_events_page(
        &self,
        since: u64,
        limit: usize,
        stop_at_loss: bool,
        timeout: Duration,
    ) -> Result<EventPage> {
        let deadline = crate::deadline_after(tokio::time::Instant::now(), timeout);
        let mut changes = self.watcher().subscribe(&[Area::Events]);
        loop {
            changes.mark_seen();
            let page = self.read_events_page(since, limit, stop_at_loss).await?;
            if !page.events.is_empty() || page.lost.is_some() || limit == 0 {
                return Ok(page);
            }
            if tokio::time::timeout_at(deadline, changes.changed())
                .await
                .is_err()
            {
                return Ok(page);
            }
        }
    }

    /// A stream of events after `since` (`None`: from now on) that waits for new ones.
    pub(crate) fn watch_events_now(&self, since: Option<u64>) -> Result<EventStream> {
        let since = match since {
            Some(s) => s,
            None => self.last_event_seq_now()?,
        };
        let (tx, rx) = mpsc::channel(STREAM_QUEUE);
        let volume = self.clone();
        let task = tokio::spawn(async move { volume.feed_events(since, tx).await });
        Ok(EventStream {
            rx,
            task: task.abort_handle(),
        })
    }

    async fn feed_events(self, since: u64, tx: mpsc::Sender<Result<Event>>) {
        let mut changes = self.watcher().subscribe(&[Area::Events]);
        let mut reader = Some(EventReader::new(since));
        let dir = self.inner.events.clone();
        loop {
            changes.mark_seen();
            let Some(mut r) = reader.take() else { return };
            let dir = dir.clone();
            let read = self
                .blocking(move || {
                    let mut items = Vec::new();
                    let read = r.read_available(&dir, STREAM_BATCH, &mut items);
                    Ok((r, items, read))
                })
                .await;
            let (r, items, read) = match read {
                Ok(x) => x,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            reader = Some(r);
            let more = matches!(read, Ok(true));
            for item in items {
                let item = match item {
                    Item::Event(e) => Ok(e),
                    Item::Lost { from, to } => Err(Error::EventsRotated {
                        wanted: from,
                        available: to + 1,
                    }),
                };
                if tx.send(item).await.is_err() {
                    return;
                }
            }
            if let Err(e) = read
                && tx.send(Err(e)).await.is_err()
            {
                return;
            }
            if more {
                continue;
            }
            tokio::select! {
                () = changes.changed() => {}
                () = tx.closed() => return,
            }
        }
    }
}

/// Events as they are published: see [`crate::Coordinator::watch_events`]. Dropping it
/// stops watching.
#[derive(Debug)]
pub struct EventStream {
    rx: mpsc::Receiver<Result<Event>>,
    task: tokio::task::AbortHandle,
}

impl EventStream {
    /// A stream fed by `task` through `rx` (the HTTP transport feeds one from the agent).
    pub(crate) fn from_channel(
        rx: mpsc::Receiver<Result<Event>>,
        task: tokio::task::AbortHandle,
    ) -> EventStream {
        EventStream { rx, task }
    }
}

impl futures_core::Stream for EventStream {
    type Item = Result<Event>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The event log, with its flock held.
pub(crate) struct EventLog<'a> {
    volume: &'a Volume,
    dir: &'a Arc<SafeDir>,
}

impl EventLog<'_> {
    /// Appends one event; the flock must be held (it is, by construction).
    pub(crate) fn append(&self, kind: Name, data: Option<serde_json::Value>) -> Result<Event> {
        let segs = segments(self.dir)?;
        let (mut segment, last) = match segs.last() {
            Some(s) => (*s, last_seq_in(self.dir, *s)?),
            None => (EventSegment { first_seq: 1 }, 0),
        };
        // A segment a neighbour named for the largest sequence number leaves nowhere to go:
        // refuse (naming it) rather than wrap around to numbers every reader skips.
        let seq = last.checked_add(1).ok_or_else(|| {
            Error::refused(
                self.dir.path_of(&segment.file_name()),
                "it claims the largest sequence number, so no event can follow; remove it",
            )
        })?;
        let event = Event {
            seq,
            time_ms: now_ms(),
            kind,
            source: self.volume.identity().label(),
            data,
        };
        let line = event.to_line()?;
        let size = self
            .dir
            .open_regular(&segment.file_name())?
            .and_then(|f| f.metadata().ok())
            .map_or(0, |m| m.len());
        if size >= SEGMENT_MAX_BYTES {
            segment = EventSegment {
                first_seq: event.seq,
            };
            let mut all = segs.clone();
            all.push(segment);
            for old in &all[..all.len().saturating_sub(SEGMENTS_KEPT)] {
                self.dir.remove(&old.file_name())?;
            }
        }
        let name = segment.file_name();
        let mut file = self.dir.open_append(&name, self.volume.access())?;
        let mut buf = Vec::with_capacity(line.len() + 1);
        if ends_without_newline(&file) {
            // A torn line left by someone else: end it, so ours stands on its own.
            buf.push(b'\n');
        }
        buf.extend_from_slice(&line);
        file.write_all(&buf)
            .map_err(|e| Error::io("cannot append to", self.dir.path_of(&name), e))?;
        if self.volume.write_options().durable {
            file.sync_data()
                .map_err(|e| Error::io("cannot fsync", self.dir.path_of(&name), e))?;
        }
        Ok(event)
    }

    /// The volume whose log this is.
    pub(crate) fn volume(&self) -> &Volume {
        self.volume
    }
}

fn ends_without_newline(file: &File) -> bool {
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut last = [0u8; 1];
    len > 0 && file.read_at(&mut last, len - 1).is_ok() && last[0] != b'\n'
}

/// The event segments present, oldest first.
pub(crate) fn segments(dir: &SafeDir) -> Result<Vec<EventSegment>> {
    let mut s: Vec<EventSegment> = dir
        .list()?
        .iter()
        .filter_map(|n| EventSegment::parse(n))
        .collect();
    s.sort();
    Ok(s)
}

/// The last valid sequence number in a segment: scan its tail, else the whole segment (up to
/// the read limit), else the segment's first sequence number minus one.
fn last_seq_in(dir: &SafeDir, segment: EventSegment) -> Result<u64> {
    let name = segment.file_name();
    let Some(mut file) = dir.open_regular(&name)? else {
        return Ok(segment.first_seq.saturating_sub(1));
    };
    let len = file
        .metadata()
        .map_err(|e| Error::io("cannot stat", dir.path_of(&name), e))?
        .len();
    // Most events are small: the last 4 KiB nearly always hold a whole line; else two of
    // the largest events; else the whole segment.
    let near = 4096.min(len);
    let tail = (2 * MAX_EVENT_BYTES as u64).min(len);
    for start in [len - near, len - tail, 0] {
        file.seek(SeekFrom::Start(start))
            .map_err(|e| Error::io("cannot read", dir.path_of(&name), e))?;
        let mut buf = Vec::new();
        Read::by_ref(&mut file)
            .take(SEGMENT_READ_LIMIT)
            .read_to_end(&mut buf)
            .map_err(|e| Error::io("cannot read", dir.path_of(&name), e))?;
        if let Some(seq) = buf
            .split(|b| *b == b'\n')
            .rev()
            .filter_map(Event::from_line)
            .map(|e| e.seq)
            .next()
        {
            return Ok(seq);
        }
    }
    Ok(segment.first_seq.saturating_sub(1))
}

/// A [`Cursor`] and the segment file it reads (kept open: a segment rotated away while it is
/// being read stays readable through its descriptor).
struct EventReader {
    cursor: Cursor,
    open: Option<(EventSegment, File)>,
    listing: Option<Vec<EventSegment>>,
    buf: Vec<u8>,
}

impl EventReader {
    fn new(since: u64) -> EventReader {
        EventReader {
            cursor: Cursor::new(since),
            open: None,
            listing: None,
            buf: Vec::new(),
        }
    }

    /// Reads what is there, pushing up to `limit` events (and the losses among them) to
    /// `out`. Returns whether there may be more to read right now.
    fn read_available(&mut self, dir: &SafeDir, limit: usize, out: &mut Vec<Item>) -> Result<bool> {
        self.buf.resize(READ_CHUNK, 0);
        let events = |out: &Vec<Item>| out.iter().filter(|i| matches!(i, Item::Event(_))).count();
        // A fresh listing where the cursor decides by it (starting, at the end of a segment);
        // in the middle of a segment the last one serves.
        self.listing = None;
        loop {
            if events(out) >= limit {
                return Ok(true);
            }
            if self.listing.is_none() || self.cursor.needs_listing() {
                self.listing = Some(segments(dir)?);
            }
            let listing = self.listing.as_deref().unwrap_or_default();
            match self.cursor.next(listing, out) {
                Step::CaughtUp => return Ok(false),
                Step::Read { segment, offset } => {
                    if self.open.as_ref().map(|(s, _)| *s) != Some(segment) {
                        self.open = None;
                        match dir.open_regular(&segment.file_name())? {
                            Some(f) => self.open = Some((segment, f)),
                            None => {
                                self.cursor.vanished(segment);
                                continue;
                            }
                        }
                    }
                    let Some((_, file)) = &self.open else {
                        continue;
                    };
                    let n = file.read_at(&mut self.buf, offset).map_err(|e| {
                        Error::io("cannot read", dir.path_of(&segment.file_name()), e)
                    })?;
                    self.cursor.feed(segment, &self.buf[..n], out);
                }
            }
        }
    }
}

/// Calls `f` with every event kept in the log, oldest first (losses to a concurrent rotation
/// are skipped: the caller scans for what it can find, `reset` for the last generation).
pub(crate) fn for_each_event(dir: &SafeDir, mut f: impl FnMut(Event)) -> Result<()> {
    let mut reader = EventReader::new(0);
    let mut items = Vec::new();
    loop {
        let more = reader.read_available(dir, STREAM_BATCH, &mut items)?;
        for item in items.drain(..) {
            if let Item::Event(e) = item {
                f(e);
            }
        }
        if !more {
            return Ok(());
        }
    }
}
