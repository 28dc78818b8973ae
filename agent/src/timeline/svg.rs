//! The SVG picture: one self-contained document (no script, no external reference), every
//! string from the log escaped, a `<title>` on everything with the exact times and reasons.

use std::fmt::Write;

use super::model::{MarkerKind, PointKind, State, Timeline};
use super::scale::{self, Scale};

const WIDTH: f64 = 960.0;
const LABEL: f64 = 150.0;
/// Room after the axis for the last exit code.
const RIGHT: f64 = 34.0;
const ROW: f64 = 20.0;
const LANE_GAP: f64 = 6.0;
const TOP: f64 = 74.0;
const BREAK: f64 = 14.0;

/// `v` to a tenth of a pixel, which prints short (`179.9`, `180`).
fn r(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// The fill of each state.
pub fn colour(state: State) -> &'static str {
    match state {
        State::Waiting => "#d0d0d0",
        State::Started => "#9ecae1",
        State::Ready => "#41ab5d",
        State::Unready => "#fdae6b",
        State::Draining => "#e6550d",
        State::Stopping => "#9e9ac8",
    }
}

/// `s` escaped for XML text and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Not allowed in XML 1.0 at all (the model already replaced control characters).
            c if c.is_control() => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

/// The picture of `t` as a standalone SVG document.
pub fn svg(t: &Timeline) -> String {
    let plot = WIDTH - LABEL - RIGHT;
    let scale = Scale::new(t, plot, BREAK);
    let x = |ms: u64| r(LABEL + scale.x(ms));
    let mut o = String::new();
    let rows: usize = t.lanes.iter().map(|l| l.rows).sum();
    let tenure_lanes = tenure_lanes(t);
    let lanes_h = rows as f64 * ROW
        + (t.lanes.len() + tenure_lanes.len()) as f64 * LANE_GAP
        + tenure_lanes.len() as f64 * ROW;
    let bottom = TOP + lanes_h.max(ROW);
    let height = bottom + 40.0 + 14.0 * t.notes.len() as f64;
    let _ = write!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="11">"#
    );
    o.push_str("\n<title>podsignal timeline</title>\n");
    let _ = writeln!(
        o,
        r##"<rect width="100%" height="100%" fill="#ffffff"/><text x="8" y="16" font-size="13" font-weight="bold">podsignal timeline</text><text x="160" y="16">{} to {} ({})</text>"##,
        scale::utc(t.from_ms),
        scale::utc(t.to_ms),
        scale::duration(t.to_ms - t.from_ms)
    );
    if t.is_empty() {
        let _ = writeln!(
            o,
            r##"<text x="{LABEL}" y="{}" fill="#666666">no lifecycle events to draw</text>"##,
            TOP + 14.0
        );
    }
    // The axis: ticks as offsets from the start, grid lines under everything.
    let mut previous = String::new();
    for tick in scale.ticks(t.from_ms, 8) {
        let tx = x(tick);
        let label = scale::offset(tick - t.from_ms);
        if label == previous {
            continue; // days or hours into the log, seconds apart: one label says it
        }
        let _ = writeln!(
            o,
            r##"<line x1="{tx}" y1="34" x2="{tx}" y2="{bottom}" stroke="#eeeeee"/><text x="{tx}" y="30" text-anchor="middle" fill="#555555">{label}</text>"##
        );
        previous = label;
    }
    // Phase and generation markers: a line across every lane, labels staggered on two rows.
    for (i, m) in t.markers.iter().enumerate() {
        let mx = x(m.time_ms);
        let (colour, dash) = match m.kind {
            MarkerKind::Phase => ("#3182bd", "4 3"),
            MarkerKind::Generation => ("#000000", "none"),
        };
        let ly = 46.0 + 12.0 * (i % 2) as f64;
        // Near the right edge the label goes left of its line.
        let (lx, anchor) = if mx > WIDTH - 120.0 {
            (r(mx - 2.0), "end")
        } else {
            (r(mx + 2.0), "start")
        };
        let _ = writeln!(
            o,
            r#"<g><title>{}: {}</title><line x1="{mx}" y1="{}" x2="{mx}" y2="{bottom}" stroke="{colour}" stroke-dasharray="{dash}"/><text x="{lx}" y="{ly}" fill="{colour}" text-anchor="{anchor}">{}</text></g>"#,
            scale::utc(m.time_ms),
            escape(&m.detail),
            r(ly + 2.0),
            escape(&clip_to(&m.label, 40))
        );
    }
    let mut y = TOP;
    for lane in &t.lanes {
        let h = lane.rows as f64 * ROW;
        let _ = writeln!(
            o,
            r##"<g><title>{0}</title><text x="8" y="{1}">{2}</text></g><line x1="{LABEL}" y1="{3}" x2="{4}" y2="{3}" stroke="#dddddd"/>"##,
            escape(&lane.name),
            r(y + h / 2.0 + 4.0),
            escape(&clip_label(&lane.name)),
            y + h + LANE_GAP / 2.0,
            WIDTH - RIGHT
        );
        let restarts = lane.runs.len() > 1;
        for run in &lane.runs {
            let ry = y + run.row as f64 * ROW + 3.0;
            let rh = ROW - 6.0;
            let inc = if run.incarnation.is_empty() {
                String::new()
            } else {
                format!(" (incarnation {})", run.incarnation)
            };
            for s in &run.spans {
                let (a, b) = (x(s.from_ms), x(s.to_ms));
                let to = if s.open {
                    format!("{} (still so)", scale::utc(s.to_ms))
                } else {
                    scale::utc(s.to_ms)
                };
                let _ = writeln!(
                    o,
                    r#"<rect x="{a}" y="{ry}" width="{}" height="{rh}" fill="{}"><title>{} run {}{}: {} {} to {} ({}): {}</title></rect>"#,
                    r((b - a).max(1.0)),
                    colour(s.state),
                    escape(&lane.name),
                    run.number,
                    escape(&inc),
                    s.state.word(),
                    scale::utc(s.from_ms),
                    to,
                    scale::duration(s.to_ms - s.from_ms),
                    escape(&s.detail)
                );
            }
            if restarts && let Some(first) = run.spans.first() {
                let _ = writeln!(
                    o,
                    r##"<text x="{}" y="{}" font-size="9" fill="#333333">#{}</text>"##,
                    r(x(first.from_ms) + 1.0),
                    r(ry + rh - 3.0),
                    run.number
                );
            }
            for p in &run.points {
                let px = x(p.time_ms);
                let what = match &p.kind {
                    PointKind::StopRequested => "stop requested".to_owned(),
                    PointKind::Watchdog => "watchdog missed".to_owned(),
                    PointKind::Exited { exit_code, .. } => match exit_code {
                        Some(c) => format!("exited {c}"),
                        None => "exited".to_owned(),
                    },
                };
                let title = format!(
                    "<title>{} run {}: {what} at {}: {}</title>",
                    escape(&lane.name),
                    run.number,
                    scale::utc(p.time_ms),
                    escape(&p.detail)
                );
                match &p.kind {
                    PointKind::StopRequested | PointKind::Watchdog => {
                        let c = if p.kind == PointKind::Watchdog {
                            "#d62728"
                        } else {
                            "#54278f"
                        };
                        let _ = writeln!(
                            o,
                            r#"<path d="M{} {}h8l-4 7z" fill="{c}">{title}</path>"#,
                            r(px - 4.0),
                            r(ry - 3.0)
                        );
                    }
                    PointKind::Exited { exit_code, .. } => {
                        let c = if p.kind.is_failure() {
                            "#d62728"
                        } else {
                            "#333333"
                        };
                        let label = exit_code.map_or_else(|| "?".to_owned(), |c| c.to_string());
                        let _ = writeln!(
                            o,
                            r#"<g>{title}<rect x="{}" y="{}" width="2" height="{}" fill="{c}"/><text x="{}" y="{}" font-size="9" fill="{c}">{label}</text></g>"#,
                            r(px - 1.0),
                            r(ry - 1.0),
                            r(rh + 2.0),
                            r(px + 3.0),
                            r(ry + rh - 3.0)
                        );
                    }
                }
            }
        }
        y += h + LANE_GAP;
    }
    for (scope, name) in &tenure_lanes {
        let _ = writeln!(
            o,
            r#"<g><title>{scope} {0}</title><text x="8" y="{1}" font-style="italic">{scope} {2}</text></g>"#,
            escape(name),
            y + ROW / 2.0 + 4.0,
            escape(&clip_label(name))
        );
        for te in t
            .tenures
            .iter()
            .filter(|te| te.scope == *scope && te.name == *name)
        {
            let (a, b) = (x(te.from_ms), x(te.to_ms));
            let token = te
                .token
                .map_or_else(String::new, |k| format!(", token {k}"));
            let until = if te.open {
                format!("{} (still held)", scale::utc(te.to_ms))
            } else {
                scale::utc(te.to_ms)
            };
            let _ = writeln!(
                o,
                r##"<g><title>{scope} {} held by {}{token}: {} to {} ({})</title><rect x="{a}" y="{}" width="{}" height="{}" fill="#fee391" stroke="#cc9a06"/><text x="{}" y="{}" font-size="9">{}</text></g>"##,
                escape(name),
                escape(&te.holder),
                scale::utc(te.from_ms),
                until,
                scale::duration(te.to_ms - te.from_ms),
                y + 4.0,
                r((b - a).max(1.0)),
                ROW - 8.0,
                r(a + 2.0),
                y + ROW - 7.0,
                escape(&clip_to(&te.holder, ((b - a) / 6.0) as usize))
            );
        }
        y += ROW + LANE_GAP;
    }
    // Axis breaks: a white band with two slanted strokes, across the lanes.
    for (i, br) in scale.breaks.iter().enumerate() {
        let bx = r(LABEL + scale.break_x(i));
        let _ = writeln!(
            o,
            r##"<g><title>nothing happened for {} ({} to {} left out): not drawn to scale</title><rect x="{bx}" y="34" width="{BREAK}" height="{}" fill="#ffffff"/><path d="M{} {}l4 -8M{} {}l4 -8" stroke="#777777"/></g>"##,
            scale::duration(br.quiet_ms),
            scale::utc(br.from_ms),
            scale::utc(br.to_ms),
            bottom - 34.0,
            r(bx + 3.0),
            40.0,
            r(bx + 7.0),
            40.0,
        );
    }
    // The legend, then what was left out.
    let mut lx = 8.0;
    let ly = bottom + 18.0;
    for s in State::ALL {
        let _ = write!(
            o,
            r#"<rect x="{lx}" y="{}" width="10" height="10" fill="{}"/><text x="{}" y="{ly}">{}</text>"#,
            ly - 9.0,
            colour(s),
            lx + 13.0,
            s.word()
        );
        lx += 13.0 + 7.0 * s.word().len() as f64 + 12.0;
    }
    let _ = writeln!(
        o,
        r##"<path d="M{lx} {}h8l-4 7z" fill="#54278f"/><text x="{}" y="{ly}">stop requested</text><rect x="{}" y="{}" width="2" height="12" fill="#d62728"/><text x="{}" y="{ly}">exit code (red: failed)</text>"##,
        ly - 9.0,
        lx + 11.0,
        lx + 110.0,
        ly - 10.0,
        lx + 115.0
    );
    for (i, n) in t.notes.iter().enumerate() {
        let _ = writeln!(
            o,
            r##"<text x="8" y="{}" fill="#a50f15">{}</text>"##,
            ly + 16.0 + 14.0 * i as f64,
            escape(n)
        );
    }
    o.push_str("</svg>\n");
    o
}

/// The (scope, name) of each lock or leader lane, in order.
pub(super) fn tenure_lanes(t: &Timeline) -> Vec<(&'static str, String)> {
    let mut v: Vec<(&'static str, String)> = t
        .tenures
        .iter()
        .map(|x| (x.scope, x.name.clone()))
        .collect();
    v.dedup();
    v
}

/// A lane label that fits the label column.
fn clip_label(name: &str) -> String {
    clip_to(name, 22)
}

/// At most `n` characters of `s`, `…` marking a cut.
pub(super) fn clip_to(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(n.saturating_sub(1)).collect();
    out.push('…');
    out
}
