//! The timeline model: what each container did when, built from events and tombstones by a
//! pure function (no I/O, no clock), so the renderers and their golden tests are deterministic.

use podsignal_proto::{Event, ReadinessRecord, ReadinessState, TombstoneRecord};

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
    let start = if n == 1 {
        0
    } else {
        markers.iter().find(|(_, g)| *g == Some(n))?.0
    };
    let end = markers
        .iter()
        .map(|(i, _)| *i)
        .find(|i| *i > start)
        .unwrap_or(events.len());
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
    let mut b = Builder::default();
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

fn data_str<'a>(e: &'a Event, key: &str) -> Option<&'a str> {
    e.data.as_ref()?.get(key)?.as_str()
}

fn data_u64(e: &Event, key: &str) -> Option<u64> {
    e.data.as_ref()?.get(key)?.as_u64()
}

fn data_bool(e: &Event, key: &str) -> Option<bool> {
    e.data.as_ref()?.get(key)?.as_bool()
}

/// A run being built: its spans have no end until the next one starts.
#[derive(Debug, Default)]
struct OpenRun {
    incarnation: String,
    spans: Vec<(State, u64, Option<u64>, String)>,
    points: Vec<Point>,
    stopping: bool,
    exited: bool,
    first_ms: u64,
    left_out: usize,
}

impl OpenRun {
    fn state(&self) -> Option<State> {
        self.spans.last().filter(|s| s.2.is_none()).map(|s| s.0)
    }

    fn set(&mut self, state: State, t: u64, detail: String) {
        if self.spans.len() + self.points.len() >= MAX_ITEMS_PER_LANE {
            self.left_out += 1;
            return;
        }
        self.close(t);
        self.spans.push((state, t, None, detail));
    }

    fn close(&mut self, t: u64) {
        if let Some(last) = self.spans.last_mut()
            && last.2.is_none()
        {
            last.2 = Some(t.max(last.1));
        }
    }

    fn point(&mut self, time_ms: u64, kind: PointKind, detail: String) {
        if self.spans.len() + self.points.len() >= MAX_ITEMS_PER_LANE {
            self.left_out += 1;
            return;
        }
        self.points.push(Point {
            time_ms,
            kind,
            detail,
        });
    }
}

#[derive(Debug, Default)]
struct Builder {
    /// Lane names in order of first appearance, with their runs.
    lanes: Vec<(String, Vec<OpenRun>)>,
    lanes_left_out: Vec<String>,
    markers: Vec<Marker>,
    markers_left_out: usize,
    /// Open tenures by (scope, name): holder, token, since.
    tenures: Vec<Tenure>,
    tenures_left_out: usize,
    other_kinds: usize,
    malformed: usize,
    ignored_after_exit: usize,
    times: Vec<u64>,
}

impl Builder {
    fn apply(&mut self, e: &Event) {
        let t = e.time_ms;
        let kind = e.kind.as_str();
        match kind {
            "waiting" | "start" | "ready" | "unready" | "stop" | "exit" | "watchdog" => {
                self.container(e, kind, t)
            }
            "phase" => {
                let Some(phase) = data_str(e, "phase") else {
                    self.malformed += 1;
                    return;
                };
                let phase = clean(phase, MAX_NAME);
                let mut detail = format!("phase {phase}");
                if let Some(p) = data_str(e, "previous") {
                    detail.push_str(&format!(" (was {})", clean(p, MAX_NAME)));
                }
                if let Some(r) = data_str(e, "reason") {
                    detail.push_str(&format!(": {}", clean(r, MAX_TEXT)));
                }
                detail.push_str(&format!(", set by {}", clean(&e.source, MAX_NAME)));
                self.marker(t, MarkerKind::Phase, phase, detail);
            }
            "generation" => {
                let label = match data_u64(e, "generation") {
                    Some(n) => format!("generation {n}"),
                    None => "generation ?".to_owned(),
                };
                let detail = format!("{label} started by {}", clean(&e.source, MAX_NAME));
                self.marker(t, MarkerKind::Generation, label, detail);
            }
            "lock" | "leader" => self.tenure(e, if kind == "lock" { "lock" } else { "leader" }),
            _ => {
                self.other_kinds += 1;
                return;
            }
        }
        self.times.push(t);
    }

    fn marker(&mut self, time_ms: u64, kind: MarkerKind, label: String, detail: String) {
        if self.markers.len() >= MAX_MARKERS {
            self.markers_left_out += 1;
            return;
        }
        self.markers.push(Marker {
            time_ms,
            kind,
            label,
            detail,
        });
    }

    fn tenure(&mut self, e: &Event, scope: &'static str) {
        let (Some(name), Some(held)) = (data_str(e, "name"), data_bool(e, "held")) else {
            self.malformed += 1;
            return;
        };
        let name = clean(name, MAX_NAME);
        let token = data_u64(e, "token");
        let open = self
            .tenures
            .iter_mut()
            .rev()
            .find(|x| x.scope == scope && x.name == name && x.open);
        if held {
            if let Some(o) = open {
                // A new holder without a release seen: the old tenure ended then.
                o.to_ms = e.time_ms;
                o.open = false;
            }
            let known = self
                .tenures
                .iter()
                .any(|x| x.scope == scope && x.name == name);
            let mut names: Vec<(&str, &str)> = Vec::new();
            for x in &self.tenures {
                if !names.contains(&(x.scope, x.name.as_str())) {
                    names.push((x.scope, x.name.as_str()));
                }
            }
            let lanes = names.len();
            if self.tenures.len() >= MAX_TENURES || (!known && lanes >= MAX_TENURE_LANES) {
                self.tenures_left_out += 1;
                return;
            }
            self.tenures.push(Tenure {
                scope,
                name,
                holder: clean(&e.source, MAX_NAME),
                token,
                from_ms: e.time_ms,
                to_ms: e.time_ms,
                open: true,
            });
        } else if let Some(o) = open {
            o.to_ms = e.time_ms;
            o.open = false;
        }
    }

    fn container(&mut self, e: &Event, kind: &str, t: u64) {
        let Some(name) = data_str(e, "name") else {
            self.malformed += 1;
            return;
        };
        let name = clean(name, MAX_NAME);
        let incarnation = data_str(e, "incarnation").map(|i| clean(i, 32));
        let reason = data_str(e, "reason").map(|r| clean(r, MAX_TEXT));
        let Some(lane) = self.lane(&name) else {
            return;
        };
        let runs = &mut self.lanes[lane].1;
        // The run this event is about: by incarnation; an event without one (older logs, the
        // watchdog) is about the newest run.
        let found = match &incarnation {
            Some(i) => runs.iter().rposition(|r| &r.incarnation == i),
            None => runs.len().checked_sub(1),
        };
        let index = match found {
            Some(i) => i,
            None => {
                // One container runs one incarnation at a time: a new one means the one before
                // ended without saying so (SIGKILLed with `run`, OOM-killed, its exit event
                // given up).
                if let Some(before) = runs.last_mut().filter(|r| !r.exited) {
                    before.close(t);
                    before.exited = true;
                    before.points.push(Point {
                        time_ms: t,
                        kind: PointKind::Exited {
                            exit_code: None,
                            stopped: false,
                        },
                        detail: "ended unrecorded (killed with run, or its exit event was lost)"
                            .into(),
                    });
                }
                // A new run; for a change of a run whose start was not read (rotated away,
                // or before --generation's marker), it starts here.
                runs.push(OpenRun {
                    incarnation: incarnation.clone().unwrap_or_default(),
                    first_ms: t,
                    ..OpenRun::default()
                });
                runs.len() - 1
            }
        };
        let run = &mut runs[index];
        if run.exited {
            self.ignored_after_exit += 1;
            return;
        }
        match kind {
            "waiting" => {
                let what = data_str(e, "for").map_or_else(String::new, |w| clean(w, MAX_TEXT));
                run.set(State::Waiting, t, format!("waiting for {what}"));
            }
            "start" => {
                let detail = match data_u64(e, "pid") {
                    Some(pid) => format!("started as pid {pid}"),
                    None => "started".to_owned(),
                };
                run.set(State::Started, t, detail);
            }
            "ready" => {
                if !run.stopping {
                    run.set(State::Ready, t, reason.unwrap_or_else(|| "ready".into()));
                }
            }
            "unready" => {
                let draining = data_bool(e, "draining") == Some(true);
                let state = if draining {
                    State::Draining
                } else if run.stopping {
                    // Unready while stopping is part of the stop, whatever the reason.
                    return;
                } else {
                    State::Unready
                };
                if run.state() != Some(state) {
                    run.set(state, t, reason.unwrap_or_else(|| "unready".into()));
                }
            }
            "stop" => {
                let why = reason.unwrap_or_else(|| "stop requested".into());
                if !run.stopping {
                    run.stopping = true;
                    if run.state() != Some(State::Draining) {
                        run.set(State::Stopping, t, why.clone());
                    }
                }
                run.point(t, PointKind::StopRequested, why);
            }
            "exit" => {
                let exit_code = data_u64(e, "exit_code").and_then(|c| u8::try_from(c).ok());
                let stopped = data_bool(e, "stopped") == Some(true);
                run.close(t);
                let why = reason.unwrap_or_else(|| match exit_code {
                    Some(c) => format!("exit {c}"),
                    None => "exited".into(),
                });
                run.exited = true;
                run.points.push(Point {
                    time_ms: t,
                    kind: PointKind::Exited { exit_code, stopped },
                    detail: why,
                });
            }
            _ => run.point(t, PointKind::Watchdog, "watchdog deadline missed".into()),
        }
    }

    /// The index of lane `name`, created if there is room.
    fn lane(&mut self, name: &str) -> Option<usize> {
        if let Some(i) = self.lanes.iter().position(|(n, _)| n == name) {
            return Some(i);
        }
        if self.lanes.len() >= MAX_LANES {
            if !self.lanes_left_out.iter().any(|n| n == name) {
                self.lanes_left_out.push(name.to_owned());
            }
            return None;
        }
        self.lanes.push((name.to_owned(), Vec::new()));
        Some(self.lanes.len() - 1)
    }

    fn tombstone(&mut self, t: &TombstoneRecord) {
        let name = clean(t.name.as_str(), MAX_NAME);
        let incarnation = clean(&t.writer.incarnation, 32);
        let known = self
            .lanes
            .iter()
            .find(|(n, _)| *n == name)
            .is_some_and(|(_, runs)| {
                runs.iter()
                    .any(|r| r.incarnation == incarnation && r.exited)
            });
        if known {
            return;
        }
        let Some(lane) = self.lane(&name) else {
            return;
        };
        let runs = &mut self.lanes[lane].1;
        let run = match runs.iter().rposition(|r| r.incarnation == incarnation) {
            Some(i) => &mut runs[i],
            None => {
                let mut run = OpenRun {
                    incarnation,
                    first_ms: t.started_ms,
                    ..OpenRun::default()
                };
                run.set(
                    State::Started,
                    t.started_ms,
                    "started (from its tombstone)".into(),
                );
                self.times.push(t.started_ms);
                runs.push(run);
                let last = runs.len() - 1;
                &mut runs[last]
            }
        };
        run.close(t.exited_ms);
        run.exited = true;
        run.points.push(Point {
            time_ms: t.exited_ms,
            kind: PointKind::Exited {
                exit_code: Some(t.exit_code),
                stopped: t.stopped,
            },
            detail: clean(&t.reason, MAX_TEXT),
        });
        self.times.push(t.exited_ms);
    }

    fn record(&mut self, r: &ReadinessRecord) {
        let name = clean(r.name.as_str(), MAX_NAME);
        if self.lanes.iter().any(|(n, _)| *n == name) {
            return; // `run`'s events tell its story
        }
        let Some(lane) = self.lane(&name) else {
            return;
        };
        let state = match r.state {
            ReadinessState::Ready => State::Ready,
            ReadinessState::Unready => State::Unready,
        };
        let how = if r.held { "held" } else { "sticky" };
        let mut detail = format!("{how} record by {}", clean(&r.writer.label(), MAX_NAME));
        if let Some(reason) = &r.reason {
            detail = format!("{}, {detail}", clean(reason, MAX_TEXT));
        }
        let mut run = OpenRun {
            incarnation: clean(&r.writer.incarnation, 32),
            first_ms: r.since_ms,
            ..OpenRun::default()
        };
        run.set(state, r.since_ms, detail);
        self.lanes[lane].1.push(run);
        self.times.push(r.since_ms);
    }

    fn finish(mut self, from_ms: u64, to_ms: u64, mut notes: Vec<String>) -> Timeline {
        let clip = |a: u64, b: u64| (a.clamp(from_ms, to_ms), b.clamp(from_ms, to_ms));
        let mut lanes = Vec::new();
        // Top to bottom in the order they started (a record's lane among `run`'s).
        let by_start = sorted_by(std::mem::take(&mut self.lanes), |(_, runs)| {
            runs.iter().map(|r| r.first_ms).min().unwrap_or(u64::MAX)
        });
        for (name, runs) in by_start {
            let runs = sorted_by(runs, |r| r.first_ms);
            let mut row_ends: Vec<u64> = Vec::new();
            let mut out: Vec<Run> = Vec::new();
            let mut left_out = 0;
            // The lane's items so far: a crash loop's thousands of short runs are bounded too.
            let mut items = 0;
            for (number, r) in runs.into_iter().enumerate() {
                left_out += r.left_out;
                let size = r.spans.len() + r.points.len();
                if items + size > MAX_ITEMS_PER_LANE {
                    left_out += size;
                    continue;
                }
                let end = if r.exited {
                    r.points.last().map_or(r.first_ms, |p| p.time_ms)
                } else {
                    u64::MAX
                };
                let start = r.spans.first().map_or(r.first_ms, |s| s.1).min(r.first_ms);
                if start > to_ms || (end != u64::MAX && end < from_ms) {
                    continue;
                }
                let row = match row_ends.iter().position(|e| *e <= start) {
                    Some(i) => i,
                    None if row_ends.len() < MAX_ROWS => {
                        row_ends.push(0);
                        row_ends.len() - 1
                    }
                    None => {
                        left_out += r.spans.len() + r.points.len();
                        continue;
                    }
                };
                row_ends[row] = end;
                items += size;
                let spans = r
                    .spans
                    .into_iter()
                    .filter_map(|(state, a, b, detail)| {
                        let open = b.is_none();
                        let (a, b) = clip(a, b.unwrap_or(to_ms));
                        (b > a || (a == b && open)).then_some(Span {
                            state,
                            from_ms: a,
                            to_ms: b,
                            open: open && b == to_ms,
                            detail,
                        })
                    })
                    .collect();
                let points = r
                    .points
                    .into_iter()
                    .filter(|p| (from_ms..=to_ms).contains(&p.time_ms))
                    .collect();
                out.push(Run {
                    incarnation: r.incarnation,
                    number: number + 1,
                    row,
                    spans,
                    points,
                });
            }
            if left_out > 0 {
                notes.push(format!(
                    "{name}: {left_out} change(s) left out (more than {MAX_ITEMS_PER_LANE} a lane, or {MAX_ROWS} overlapping runs)"
                ));
            }
            if !out.is_empty() {
                lanes.push(Lane {
                    name,
                    rows: row_ends.len().max(1),
                    runs: out,
                });
            }
        }
        if !self.lanes_left_out.is_empty() {
            let n = self.lanes_left_out.len();
            let some: Vec<&str> = self
                .lanes_left_out
                .iter()
                .take(3)
                .map(String::as_str)
                .collect();
            notes.push(format!(
                "{n} more container(s) left out (at most {MAX_LANES} lanes): {}{}",
                some.join(", "),
                if n > 3 { ", …" } else { "" }
            ));
        }
        if self.markers_left_out > 0 {
            notes.push(format!(
                "{} phase or generation marker(s) left out (at most {MAX_MARKERS})",
                self.markers_left_out
            ));
        }
        if self.tenures_left_out > 0 {
            notes.push(format!(
                "{} lock or leader tenure(s) left out (at most {MAX_TENURES}, {MAX_TENURE_LANES} names)",
                self.tenures_left_out
            ));
        }
        if self.malformed > 0 {
            notes.push(format!(
                "{} event(s) without the data their kind needs were skipped",
                self.malformed
            ));
        }
        if self.ignored_after_exit > 0 {
            notes.push(format!(
                "{} event(s) about runs that had already exited were skipped",
                self.ignored_after_exit
            ));
        }
        if self.other_kinds > 0 {
            notes.push(format!(
                "{} application event(s) not drawn",
                self.other_kinds
            ));
        }
        let markers = self
            .markers
            .into_iter()
            .filter(|m| (from_ms..=to_ms).contains(&m.time_ms))
            .collect();
        let tenures: Vec<Tenure> = self
            .tenures
            .into_iter()
            .filter_map(|mut t| {
                if t.open {
                    t.to_ms = to_ms.max(t.from_ms);
                }
                if t.from_ms > to_ms || t.to_ms < from_ms {
                    return None;
                }
                (t.from_ms, t.to_ms) = clip(t.from_ms, t.to_ms);
                t.open = t.open && t.to_ms == to_ms;
                Some(t)
            })
            .collect();
        // Grouped by lock (in order of first tenure), each lock's in time order.
        let mut names: Vec<(&str, String)> = Vec::new();
        for t in &tenures {
            if !names.iter().any(|(s, n)| *s == t.scope && *n == t.name) {
                names.push((t.scope, t.name.clone()));
            }
        }
        // (the lane, then the start: lanes are few, times fit in 48 bits until 10889 AD)
        let keyed: Vec<(u64, Tenure)> = tenures
            .into_iter()
            .map(|t| {
                let lane = names
                    .iter()
                    .position(|(s, n)| *s == t.scope && *n == t.name)
                    .unwrap_or(0) as u64;
                ((lane << 48) | (t.from_ms & ((1 << 48) - 1)), t)
            })
            .collect();
        let tenures = sorted_by(keyed, |(key, _)| *key)
            .into_iter()
            .map(|(_, t)| t)
            .collect();
        Timeline {
            from_ms,
            to_ms,
            lanes,
            markers,
            tenures,
            notes,
        }
    }
}
