//! The timeline model: what each container did when, built from events and tombstones by a
//! pure function (no I/O, no clock), so the renderers and their golden tests are deterministic.
//! The types and the entry points are here; the builder they use is in `builder`.

use podsignal_proto::{Event, ReadinessRecord, TombstoneRecord};

/// The most container lanes drawn; the others are named in [`Timeline::notes`].
pub const MAX_LANES: usize = 32;
/// The most rows (overlapping incarnations) in one lane.
pub const MAX_ROWS: usize = 3;
/// The most spans and points in one lane (a readiness flapping thousands of times).
pub const MAX_ITEMS_PER_LANE: usize = 400;
/// The most phase and generation markers.
pub const MAX_MARKERS: usize = 64;
/// The most lock and leader tenures, and the most lock or leader names given a lane.
pub const MAX_TENURES: usize = 200;
/// The most lock and leader lanes.
pub const MAX_TENURE_LANES: usize = 8;
/// Strings from the log are cut to this many characters (a reason of 16 KiB is one title).
pub const MAX_TEXT: usize = 200;
/// Names (lane labels) are cut to this many characters.
pub const MAX_NAME: usize = 48;

/// What a container was doing during a [`Span`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum State {
    /// `run --wait-for`: waiting for its conditions (the span's detail says which).
    Waiting,
    /// Its command started; not (yet) ready.
    Started,
    /// Ready.
    Ready,
    /// Unready after having started (a probe failed, sd_notify said so).
    Unready,
    /// Unready on purpose while stopping (`--drain`).
    Draining,
    /// Asked to stop (a signal, `podsignal stop`, `--exit-with`); not yet exited.
    Stopping,
}

impl State {
    /// The word the pictures and docs use.
    pub fn word(self) -> &'static str {
        match self {
            State::Waiting => "waiting",
            State::Started => "started",
            State::Ready => "ready",
            State::Unready => "unready",
            State::Draining => "draining",
            State::Stopping => "stopping",
        }
    }

    /// Every state, in legend order.
    pub const ALL: [State; 6] = [
        State::Waiting,
        State::Started,
        State::Ready,
        State::Unready,
        State::Draining,
        State::Stopping,
    ];
}

/// A time during which a container was in one state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// The state.
    pub state: State,
    /// From (Unix ms).
    pub from_ms: u64,
    /// To (Unix ms); for an open span, the end of the timeline.
    pub to_ms: u64,
    /// Still so at the end of what was read (no later change known).
    pub open: bool,
    /// Why, from the event (`waiting for ready:db`, a probe's reason).
    pub detail: String,
}

/// Something that happened at one moment in a container's life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PointKind {
    /// A stop was decided (the reason says by whom: a signal, `podsignal stop`, a condition).
    StopRequested,
    /// The command ended.
    Exited {
        /// Its exit code in the shell's convention, when known.
        exit_code: Option<u8>,
        /// Whether podsignal stopped it on purpose.
        stopped: bool,
    },
    /// A `--watchdog` deadline was missed.
    Watchdog,
}

impl PointKind {
    /// Whether this is an exit that was neither clean nor asked for.
    pub fn is_failure(&self) -> bool {
        matches!(self, PointKind::Exited { exit_code, stopped: false } if *exit_code != Some(0))
    }
}

/// A moment in a container's life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Point {
    /// When (Unix ms).
    pub time_ms: u64,
    /// What.
    pub kind: PointKind,
    /// The event's reason, in one line.
    pub detail: String,
}

/// One start of a container (`run`'s incarnation): a restart is a new run in the same lane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// `run`'s incarnation id (empty when the events did not say).
    pub incarnation: String,
    /// Its number in the lane: 1 for the first start seen, 2 for the first restart...
    pub number: usize,
    /// The row of the lane it is drawn in (runs that overlap in time get rows of their own).
    pub row: usize,
    /// What it did, in time order, not overlapping.
    pub spans: Vec<Span>,
    /// Stop requests, exits, watchdog misses, in time order.
    pub points: Vec<Point>,
}

/// One container (`run --name NAME`), on its own lane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lane {
    /// The container's name (control characters replaced, cut to [`MAX_NAME`]).
    pub name: String,
    /// How many rows it needs (1 unless runs overlap).
    pub rows: usize,
    /// Its runs, by start.
    pub runs: Vec<Run>,
}

/// What a vertical marker marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerKind {
    /// The pod's phase changed.
    Phase,
    /// `podsignal reset` started a generation.
    Generation,
}

/// A pod-wide moment, drawn across every lane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    /// When (Unix ms).
    pub time_ms: u64,
    /// What.
    pub kind: MarkerKind,
    /// A short label (`running`, `generation 2`).
    pub label: String,
    /// The whole story (`phase running (was starting): all ready`).
    pub detail: String,
}

/// A time during which one holder held a lock or a leadership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenure {
    /// `lock` or `leader`.
    pub scope: &'static str,
    /// The lock's or campaign's name.
    pub name: String,
    /// Who held it.
    pub holder: String,
    /// Its fencing token, when the event said.
    pub token: Option<u64>,
    /// From (Unix ms).
    pub from_ms: u64,
    /// To (Unix ms); for an open tenure, the end of the timeline.
    pub to_ms: u64,
    /// Still held at the end of what was read.
    pub open: bool,
}

/// Which part of the log to draw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    /// From this time on (Unix ms); default: the first event.
    pub since_ms: Option<u64>,
    /// Up to this time (Unix ms); default: the last event (or exit).
    pub until_ms: Option<u64>,
    /// Only this generation's events (see [`generation_events`]).
    pub generation: Option<u64>,
}

/// Everything a picture shows, already bounded: at most [`MAX_LANES`] lanes,
/// [`MAX_ITEMS_PER_LANE`] items a lane, [`MAX_MARKERS`] markers, [`MAX_TENURES`] tenures;
/// what did not fit is counted in [`Timeline::notes`], which every renderer shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeline {
    /// The start of the time axis (Unix ms).
    pub from_ms: u64,
    /// The end of the time axis (Unix ms).
    pub to_ms: u64,
    /// One lane per container name, in order of first appearance.
    pub lanes: Vec<Lane>,
    /// Phase changes and generations, in time order.
    pub markers: Vec<Marker>,
    /// Lock and leader tenures, by scope and name, then time.
    pub tenures: Vec<Tenure>,
    /// What was left out or lost, one line each (shown under every picture).
    pub notes: Vec<String>,
}

impl Timeline {
    /// Something is still so at the end: a run not exited, a lock still held.
    pub fn is_live(&self) -> bool {
        let open_run = |l: &Lane| {
            l.runs
                .iter()
                .any(|r| r.spans.last().is_some_and(|s| s.open))
        };
        self.lanes.iter().any(open_run) || self.tenures.iter().any(|t| t.open)
    }

    /// Nothing to draw: no lane, no marker, no tenure.
    pub fn is_empty(&self) -> bool {
        self.lanes.is_empty() && self.markers.is_empty() && self.tenures.is_empty()
    }
}

/// The events of generation `n` (1 = from the start to the first `generation` event; N = from
/// the `generation` event whose data says `"generation": N` to the next `generation` event), or
/// `None` when the log has no such generation.
pub fn generation_events(events: &[Event], n: u64) -> Option<&[Event]> {
    let markers: Vec<(usize, Option<u64>)> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.kind.as_str() == "generation")
        .map(|(i, e)| (i, data_u64(e, "generation")))
        .collect();
    let (start, end) = if n == 1 {
        if events
            .first()
            .is_some_and(|e| e.kind.as_str() == "generation")
        {
            return None; // its events were rotated away: the log starts with a later one
        }
        (0, markers.first().map_or(events.len(), |(i, _)| *i))
    } else {
        let start = markers.iter().find(|(_, g)| *g == Some(n))?.0;
        let next = markers.iter().map(|(i, _)| *i).find(|i| *i > start);
        (start, next.unwrap_or(events.len()))
    };
    Some(&events[start..end])
}

/// The generations the log has markers for (1 is always there when it has events).
pub fn generations(events: &[Event]) -> Vec<u64> {
    let mut g: Vec<u64> = events
        .iter()
        .filter(|e| e.kind.as_str() == "generation")
        .filter_map(|e| data_u64(e, "generation"))
        .collect();
    if !events.is_empty()
        && events
            .first()
            .is_some_and(|e| e.kind.as_str() != "generation")
    {
        g.insert(0, 1);
    }
    g
}

/// Builds the timeline of `events` (in log order, as read) and `tombstones` (for exits whose
/// event was rotated away), within `window`. Pure: the same input gives the same timeline.
#[allow(
    dead_code,
    reason = "the API the agent's GET /v1/timeline is written against"
)]
pub fn build(events: &[Event], tombstones: &[TombstoneRecord], window: Window) -> Timeline {
    build_with(events, tombstones, &[], window)
}

/// [`build`], with the readiness records there now: a name that no `run` published events for
/// (`podsignal ready NAME` from a script, an application's own record) gets a lane showing its
/// record's state since it was set (records keep no history; `run`'s events do).
pub fn build_with(
    events: &[Event],
    tombstones: &[TombstoneRecord],
    records: &[ReadinessRecord],
    window: Window,
) -> Timeline {
    let mut notes = Vec::new();
    let events = match window.generation {
        Some(n) => generation_events(events, n).unwrap_or_else(|| {
            notes.push(format!("generation {n} is not in the event log"));
            &[]
        }),
        None => events,
    };
    let mut b = super::builder::Builder::default();
    if let Some(first) = events.first()
        && first.seq > 1
        && window.generation.is_none_or(|g| g == 1)
    {
        notes.push(format!(
            "events 1 to {} were rotated away (the log keeps its newest 4 segments)",
            first.seq - 1
        ));
    }
    let mut last_seq = None;
    let mut jumps = 0u64;
    for e in events {
        if let Some(l) = last_seq
            && e.seq != l + 1
        {
            jumps += 1;
        }
        last_seq = Some(e.seq);
        b.apply(e);
    }
    if jumps > 0 {
        notes.push(format!(
            "the sequence numbers jump {jumps} time(s): events are missing"
        ));
    }
    // Tombstones only for what the events know nothing of: an exit rotated away, or a log
    // that was never read from the start.
    if window.generation.is_none() {
        for t in tombstones {
            b.tombstone(t);
        }
        for r in records {
            b.record(r);
        }
    }
    let first = b.times.iter().min().copied().unwrap_or(0);
    let last = b.times.iter().max().copied().unwrap_or(first);
    let from_ms = window.since_ms.unwrap_or(first);
    let to_ms = window.until_ms.unwrap_or(last).max(from_ms);
    b.finish(from_ms, to_ms, notes)
}

/// `items` in ascending order of `key`, equal keys in their order: every ordering in the
/// timeline goes through here, one sort of `(u64, usize)` pairs, because each `sort_by_key`
/// call would add its own copy of the sort code to the binary.
pub fn sorted_by<T>(items: Vec<T>, key: impl Fn(&T) -> u64) -> Vec<T> {
    let mut order: Vec<(u64, usize)> = items.iter().map(&key).zip(0..).collect();
    order.sort_unstable();
    let mut slots: Vec<Option<T>> = items.into_iter().map(Some).collect();
    order
        .into_iter()
        .filter_map(|(_, i)| slots.get_mut(i).and_then(Option::take))
        .collect()
}

/// A string from the log made safe to show: one line (control characters become `?`), at most
/// `max` characters (`…` marks a cut).
pub fn clean(s: &str, max: usize) -> String {
    let mut out: String = s
        .chars()
        .take(max)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if s.chars().nth(max).is_some() {
        out.pop();
        out.push('…');
    }
    out
}

/// Fields of an event's data, if present and of the type asked for.
pub(super) fn data_str<'a>(e: &'a Event, key: &str) -> Option<&'a str> {
    e.data.as_ref()?.get(key)?.as_str()
}

/// See [`data_str`].
pub(super) fn data_u64(e: &Event, key: &str) -> Option<u64> {
    e.data.as_ref()?.get(key)?.as_u64()
}

/// See [`data_str`].
pub(super) fn data_bool(e: &Event, key: &str) -> Option<bool> {
    e.data.as_ref()?.get(key)?.as_bool()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: u64, kind: &str, data: serde_json::Value) -> Event {
        Event {
            seq,
            time_ms: seq * 1000,
            kind: podsignal_proto::Name::new(kind).unwrap(),
            source: "s".into(),
            data: Some(data),
        }
    }

    #[test]
    fn generations_are_cut_at_their_markers() {
        let log = [
            event(1, "start", serde_json::json!({"name": "a"})),
            event(2, "generation", serde_json::json!({"generation": 2})),
            event(3, "start", serde_json::json!({"name": "a"})),
            event(4, "generation", serde_json::json!({"generation": 3})),
        ];
        assert_eq!(generations(&log), [1, 2, 3]);
        let seqs =
            |n| generation_events(&log, n).map(|e| e.iter().map(|e| e.seq).collect::<Vec<_>>());
        assert_eq!(seqs(1), Some(vec![1]));
        assert_eq!(seqs(2), Some(vec![2, 3]));
        assert_eq!(seqs(3), Some(vec![4]));
        assert_eq!(seqs(4), None);
        // Generation 1 rotated away: the log starts with generation 2's marker.
        assert_eq!(generations(&log[1..]), [2, 3]);
        assert_eq!(generation_events(&log[1..], 1), None);
        assert_eq!(generation_events(&[], 1).map(<[Event]>::len), Some(0));
    }

    #[test]
    fn a_new_incarnation_ends_the_one_before_that_never_said_it_exited() {
        let log = [
            event(
                1,
                "start",
                serde_json::json!({"name": "a", "incarnation": "1"}),
            ),
            event(
                2,
                "start",
                serde_json::json!({"name": "a", "incarnation": "2"}),
            ),
        ];
        let t = build(&log, &[], Window::default());
        let runs = &t.lanes[0].runs;
        assert_eq!(t.lanes[0].rows, 1, "one container runs once at a time");
        assert_eq!(runs[0].points[0].time_ms, 2000);
        assert!(runs[0].points[0].detail.contains("ended unrecorded"));
        assert!(runs[1].spans[0].open);
    }
}
