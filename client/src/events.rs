//! Lifecycle events: an append-only, rotated log of JSON lines under `events/`.
//!
//! Publishing takes the flock `events/events.lock`, finds the last sequence number at the
//! tail of the newest segment, rotates if that segment is full, and appends one line with a
//! single `write(2)` on an `O_APPEND` descriptor. Readers consume complete lines only, skip
//! lines that are not events, and never yield a sequence number twice or out of order.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::pin::Pin;
use std::task::{Context, Poll};

use podsignal_proto::event::{MAX_EVENT_BYTES, SEGMENT_MAX_BYTES, SEGMENTS_KEPT};
use podsignal_proto::{Event, EventSegment, Name, layout};
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::identity::now_ms;
use crate::safe_dir::SafeDir;
use crate::volume::Volume;
use crate::watch::Area;

impl Volume {
    /// Appends an event and returns it with its sequence number.
    ///
    /// ```no_run
    /// # async fn demo(volume: podsignal_client::Volume) -> podsignal_client::Result<()> {
    /// let event = volume.publish(&"cache-warmed".parse()?, Some(serde_json::json!({"keys": 1200}))).await?;
    /// println!("published as seq {}", event.seq);
    /// # Ok(()) }
    /// ```
    pub async fn publish(&self, kind: &Name, data: Option<serde_json::Value>) -> Result<Event> {
        let volume = self.clone();
        let kind = kind.clone();
        tokio::task::spawn_blocking(move || volume.with_events_lock(|log| log.append(kind, data)))
            .await
            .map_err(|e| Error::Invalid(format!("publishing task failed: {e}")))?
    }

    /// Runs `f` holding the events flock, so that what it writes is ordered with events.
    pub(crate) fn with_events_lock<T>(
        &self,
        f: impl FnOnce(&EventLog<'_>) -> Result<T>,
    ) -> Result<T> {
        let dir = &self.inner.events;
        let lock = dir.open_lockable(layout::EVENTS_LOCK_FILE, self.access())?;
        lock.lock()
            .map_err(|e| Error::io("cannot lock", dir.path_of(layout::EVENTS_LOCK_FILE), e))?;
        f(&EventLog { volume: self, dir })
        // `lock` drops here: unlocked.
    }

    /// The sequence number of the newest event, 0 if there is none.
    pub fn last_event_seq(&self) -> Result<u64> {
        let segments = segments(&self.inner.events)?;
        match segments.last() {
            Some(s) => last_seq_in(&self.inner.events, *s),
            None => Ok(0),
        }
    }

    /// The events after sequence number `since` (0: from the oldest kept), at most `limit`.
    /// If events after `since` were already rotated away, returns [`Error::EventsRotated`]
    /// only when `strict`; otherwise starts at the oldest kept event.
    pub fn read_events(&self, since: u64, limit: usize, strict: bool) -> Result<Vec<Event>> {
        let mut reader = EventReader::new(since);
        let mut out = Vec::new();
        reader.read_available(&self.inner.events, &mut |item| {
            match item {
                Ok(e) => out.push(e),
                Err(e) if strict => return Err(e),
                Err(e) => tracing::warn!("{e}"),
            }
            Ok(out.len() < limit)
        })?;
        Ok(out)
    }

    /// A stream of events after `since` (`None`: only events published from now on), that
    /// waits for new ones. If events were rotated away before they could be read, the stream
    /// yields one [`Error::EventsRotated`] and goes on with the oldest kept event.
    ///
    /// ```no_run
    /// # async fn demo(volume: podsignal_client::Volume) -> podsignal_client::Result<()> {
    /// use futures_util::StreamExt;
    /// let mut events = volume.watch_events(Some(0))?;
    /// while let Some(event) = events.next().await {
    ///     let event = event?;
    ///     println!("{} {} from {}", event.seq, event.kind, event.source);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn watch_events(&self, since: Option<u64>) -> Result<EventStream> {
        let since = match since {
            Some(s) => s,
            None => self.last_event_seq()?,
        };
        let (tx, rx) = mpsc::channel(256);
        let volume = self.clone();
        let task = tokio::spawn(async move { volume.feed_events(since, tx).await });
        Ok(EventStream {
            rx,
            task: task.abort_handle(),
        })
    }

    async fn feed_events(self, since: u64, tx: mpsc::Sender<Result<Event>>) {
        let (mut rx, rescan, mut watching) = self.inner.watcher.subscribe();
        let mut reader = EventReader::new(since);
        loop {
            let seen = rx.borrow_and_update()[Area::Events as usize];
            let mut batch = Vec::new();
            let read = reader.read_available(&self.inner.events, &mut |item| {
                batch.push(item);
                Ok(batch.len() < 1024)
            });
            let more = batch.len() >= 1024;
            if let Err(e) = read {
                batch.push(Err(e));
            }
            for item in batch {
                if tx.send(item).await.is_err() {
                    return;
                }
            }
            if more {
                continue;
            }
            loop {
                tokio::select! {
                    changed = rx.changed(), if watching => {
                        if changed.is_err() { watching = false; continue; }
                        if rx.borrow_and_update()[Area::Events as usize] != seen { break; }
                    }
                    _ = tokio::time::sleep(rescan) => {
                        self.inner.watcher.count_rescan();
                        break
                    }
                    _ = tx.closed() => return,
                }
            }
        }
    }
}

/// Events as they are published: see [`Volume::watch_events`]. Dropping it stops watching.
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
    dir: &'a SafeDir,
}

impl EventLog<'_> {
    /// Appends one event; the flock must be held (it is, by construction).
    pub(crate) fn append(&self, kind: Name, data: Option<serde_json::Value>) -> Result<Event> {
        let segs = segments(self.dir)?;
        let (mut segment, last) = match segs.last() {
            Some(s) => (*s, last_seq_in(self.dir, *s)?),
            None => (EventSegment { first_seq: 1 }, 0),
        };
        let event = Event {
            seq: last + 1,
            time_ms: now_ms(),
            kind,
            source: self.volume.identity().label(),
            data,
        };
        let line = event.to_line().map_err(|e| Error::Invalid(e.to_string()))?;
        let file_name = segment.file_name();
        let size = self
            .dir
            .open_regular(&file_name)?
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
}

fn ends_without_newline(file: &File) -> bool {
    use std::os::unix::fs::FileExt;
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

/// The last valid sequence number in a segment: scan its tail, else the whole segment, else
/// the segment's first sequence number minus one.
fn last_seq_in(dir: &SafeDir, segment: EventSegment) -> Result<u64> {
    let name = segment.file_name();
    let Some(mut file) = dir.open_regular(&name)? else {
        return Ok(segment.first_seq.saturating_sub(1));
    };
    let len = file
        .metadata()
        .map_err(|e| Error::io("cannot stat", dir.path_of(&name), e))?
        .len();
    let tail = (2 * MAX_EVENT_BYTES as u64).min(len);
    for start in [len - tail, 0] {
        file.seek(SeekFrom::Start(start))
            .map_err(|e| Error::io("cannot read", dir.path_of(&name), e))?;
        let mut buf = Vec::new();
        Read::by_ref(&mut file)
            .take(SEGMENT_MAX_BYTES * 2)
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

/// Reads events in order from a position, across segments, remembering where it stopped.
struct EventReader {
    last_seq: u64,
    current: Option<(EventSegment, File, u64)>,
    partial: Vec<u8>,
}

impl EventReader {
    fn new(since: u64) -> EventReader {
        EventReader {
            last_seq: since,
            current: None,
            partial: Vec::new(),
        }
    }

    /// Calls `sink` with every complete event after the last one seen, until the end of the
    /// log or until `sink` returns `Ok(false)`.
    fn read_available(
        &mut self,
        dir: &SafeDir,
        sink: &mut dyn FnMut(Result<Event>) -> Result<bool>,
    ) -> Result<()> {
        loop {
            if self.current.is_none() {
                let segs = segments(dir)?;
                // The segment holding last_seq + 1: the newest whose first_seq <= it.
                let want = self.last_seq + 1;
                let pick = segs
                    .iter()
                    .rev()
                    .find(|s| s.first_seq <= want)
                    .or(segs.first())
                    .copied();
                let Some(seg) = pick else { return Ok(()) };
                if seg.first_seq > want
                    && !sink(Err(Error::EventsRotated {
                        wanted: want,
                        available: seg.first_seq,
                    }))?
                {
                    return Ok(());
                }
                let Some(file) = dir.open_regular(&seg.file_name())? else {
                    continue;
                };
                self.current = Some((seg, file, 0));
                self.partial.clear();
            }
            let Some((seg, file, offset)) = self.current.as_mut() else {
                return Ok(());
            };
            let mut buf = Vec::new();
            file.seek(SeekFrom::Start(*offset))
                .map_err(|e| Error::io("cannot read", dir.path_of(&seg.file_name()), e))?;
            file.read_to_end(&mut buf)
                .map_err(|e| Error::io("cannot read", dir.path_of(&seg.file_name()), e))?;
            *offset += buf.len() as u64;
            self.partial.extend_from_slice(&buf);
            // Consume complete lines only, and only as far as the sink takes them: what it
            // does not take stays in `partial` for the next call.
            let complete = self
                .partial
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |i| i + 1);
            let mut consumed = 0;
            let mut stop = false;
            while consumed < complete {
                let len = self.partial[consumed..complete]
                    .iter()
                    .position(|b| *b == b'\n')
                    .unwrap_or(complete - consumed);
                let event = Event::from_line(&self.partial[consumed..consumed + len]);
                consumed += len + 1;
                let Some(event) = event else { continue };
                if event.seq <= self.last_seq {
                    continue;
                }
                self.last_seq = event.seq;
                if !sink(Ok(event))? {
                    stop = true;
                    break;
                }
            }
            self.partial.drain(..consumed);
            if stop {
                return Ok(());
            }
            // At the end of this segment. If a newer one exists, this one is final (rotation
            // happens under the publish flock, after the last append here): move on.
            let seg_now = *seg;
            let newer = segments(dir)?.into_iter().find(|s| *s > seg_now);
            match newer {
                Some(next) if buf.is_empty() => {
                    // Open the next segment directly: re-picking by sequence number could
                    // land on this one again if its tail is garbage.
                    self.partial.clear();
                    self.current = dir.open_regular(&next.file_name())?.map(|f| (next, f, 0));
                }
                Some(_) => continue, // re-read to EOF once more before switching
                None => return Ok(()),
            }
        }
    }
}
