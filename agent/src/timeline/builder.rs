//! How the timeline model is built: events applied in order to one [`Builder`], which keeps
//! each container's open run (its last span has no end until the next one starts), the
//! markers and the lock and leader tenures, every list capped as `MAX_*` in `model` says, and
//! finishes into a [`Timeline`] for a window.

use podsignal_proto::{Event, ReadinessRecord, ReadinessState, TombstoneRecord};

use super::model::*;

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
pub(super) struct Builder {
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
    pub(super) times: Vec<u64>,
}

impl Builder {
    pub(super) fn apply(&mut self, e: &Event) {
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

    pub(super) fn tombstone(&mut self, t: &TombstoneRecord) {
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

    pub(super) fn record(&mut self, r: &ReadinessRecord) {
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

    pub(super) fn finish(mut self, from_ms: u64, to_ms: u64, mut notes: Vec<String>) -> Timeline {
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
