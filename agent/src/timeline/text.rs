//! The terminal Gantt: one line per lane row, `width` columns at most, ASCII only (names from
//! the log are already one line without control characters: see `model::clean`).

use super::model::{MarkerKind, PointKind, State, Timeline};
use super::scale::{self, Scale};
use super::svg::{clip_to, tenure_lanes};

/// The narrowest picture drawn (a smaller width is raised to this).
pub const MIN_WIDTH: usize = 40;
/// The widest.
pub const MAX_WIDTH: usize = 400;
/// The label column.
const LABEL: usize = 14;
/// The most stops and exits listed under the picture.
const MAX_LISTED: usize = 40;

/// The character of each state.
fn glyph(s: State) -> char {
    match s {
        State::Waiting => '.',
        State::Started => '-',
        State::Ready => '#',
        State::Unready => '~',
        State::Draining => '=',
        State::Stopping => '>',
    }
}

/// The timeline of `t` in at most `width` columns a line.
pub fn text(t: &Timeline, width: usize) -> String {
    let width = width.clamp(MIN_WIDTH, MAX_WIDTH);
    let cols = width - LABEL - 1;
    let scale = Scale::new(t, cols as f64, 2.0);
    let col = |ms: u64| (scale.x(ms).floor() as usize).min(cols - 1);
    let mut o = String::new();
    let mut line = |s: String| {
        let mut s = clip_to(&s, width);
        while s.ends_with(' ') {
            s.pop();
        }
        o.push_str(&s);
        o.push('\n');
    };
    line(format!(
        "podsignal timeline  {} to {} ({})",
        scale::utc(t.from_ms),
        scale::utc(t.to_ms),
        scale::duration(t.to_ms - t.from_ms)
    ));
    // The axis: tick offsets where they fit, breaks as `//`.
    let mut axis = vec![' '; cols];
    let mut free = 0;
    for tick in scale.ticks(t.from_ms, (cols / 12).max(2)) {
        let c = col(tick);
        let label = scale::offset(tick - t.from_ms);
        if c >= free && c + label.len() <= cols && !axis_has(&axis, &label) {
            for (i, ch) in label.chars().enumerate() {
                axis[c + i] = ch;
            }
            free = c + label.len() + 1;
        }
    }
    let mut breaks = vec![false; cols];
    for i in 0..scale.breaks.len() {
        let c = (scale.break_x(i).floor() as usize).min(cols - 2);
        breaks[c] = true;
        breaks[c + 1] = true;
        axis[c] = '/';
        axis[c + 1] = '/';
    }
    line(format!("{:LABEL$} {}", "", axis.iter().collect::<String>()));
    // Markers: a numbered caret each, listed under the picture.
    if !t.markers.is_empty() {
        let mut row = vec![' '; cols];
        for (i, m) in t.markers.iter().enumerate() {
            row[col(m.time_ms)] = marker_glyph(i);
        }
        line(format!(
            "{:LABEL$} {}",
            "markers",
            row.iter().collect::<String>()
        ));
    }
    for lane in &t.lanes {
        for r in 0..lane.rows {
            let mut row = vec![' '; cols];
            for run in lane.runs.iter().filter(|x| x.row == r) {
                for s in &run.spans {
                    for c in row.iter_mut().take(col(s.to_ms) + 1).skip(col(s.from_ms)) {
                        *c = glyph(s.state);
                    }
                }
                if lane.runs.len() > 1
                    && let Some(first) = run.spans.first()
                {
                    row[col(first.from_ms)] = match run.number {
                        n @ 1..=9 => char::from(b'0' + n as u8),
                        _ => '+',
                    };
                }
                for p in &run.points {
                    row[col(p.time_ms)] = match &p.kind {
                        PointKind::StopRequested => '!',
                        PointKind::Watchdog => 'W',
                        k if k.is_failure() => 'X',
                        _ => '|',
                    };
                }
            }
            for (c, b) in row.iter_mut().zip(&breaks) {
                if *b {
                    *c = '/';
                }
            }
            let label = if r == 0 {
                clip_to(&lane.name, LABEL)
            } else {
                String::new()
            };
            line(format!("{label:LABEL$} {}", row.iter().collect::<String>()));
        }
    }
    for (scope, name) in tenure_lanes(t) {
        let mut row = vec![' '; cols];
        for te in t
            .tenures
            .iter()
            .filter(|x| x.scope == scope && x.name == name)
        {
            let (a, b) = (col(te.from_ms), col(te.to_ms));
            for c in row.iter_mut().take(b + 1).skip(a) {
                *c = '%';
            }
            for (c, ch) in row.iter_mut().take(b).skip(a + 1).zip(te.holder.chars()) {
                *c = ch;
            }
        }
        let label = clip_to(&format!("{scope} {name}"), LABEL);
        line(format!("{label:LABEL$} {}", row.iter().collect::<String>()));
    }
    line(String::new());
    line(". waiting  - started  # ready  ~ unready  = draining  > stopping".to_owned());
    line("! stop requested  | exited  X failed  2 run #2 (restart)  % held  // gap".to_owned());
    for (i, m) in t.markers.iter().enumerate() {
        let kind = match m.kind {
            MarkerKind::Phase => "",
            MarkerKind::Generation => "[gen] ",
        };
        line(format!(
            "{} {} {kind}{}",
            marker_glyph(i),
            scale::offset(m.time_ms - t.from_ms),
            m.detail
        ));
    }
    // Stops and exits in time order, with their reasons: the most telling lines, bounded.
    let listed: Vec<(u64, &str, &super::model::Point)> = t
        .lanes
        .iter()
        .flat_map(|l| l.runs.iter().map(move |r| (l, r)))
        .flat_map(|(l, r)| {
            r.points
                .iter()
                .map(move |p| (p.time_ms, l.name.as_str(), p))
        })
        .filter(|(_, _, p)| p.kind != PointKind::Watchdog)
        .collect();
    let listed = super::model::sorted_by(listed, |(time_ms, _, _)| *time_ms);
    for (time_ms, name, p) in listed.iter().take(MAX_LISTED) {
        let what = match &p.kind {
            PointKind::Exited {
                exit_code: Some(c), ..
            } => format!("exit {c}"),
            PointKind::Exited { .. } => "exit".to_owned(),
            _ => "stop".to_owned(),
        };
        line(format!(
            "  {} {name} {what}: {}",
            scale::offset(time_ms - t.from_ms),
            p.detail
        ));
    }
    if listed.len() > MAX_LISTED {
        line(format!(
            "  ... {} more stops and exits",
            listed.len() - MAX_LISTED
        ));
    }
    for n in &t.notes {
        line(format!("note: {n}"));
    }
    o
}

/// The caret of marker `i`: `1`..`9`, then `a`..`z`, then `*`.
fn marker_glyph(i: usize) -> char {
    match i {
        0..9 => char::from(b'1' + i as u8),
        9..35 => char::from(b'a' + (i - 9) as u8),
        _ => '*',
    }
}

/// Whether `label` is already on the axis (ticks seconds apart days into the log read alike).
fn axis_has(axis: &[char], label: &str) -> bool {
    axis.iter().collect::<String>().contains(label)
}
