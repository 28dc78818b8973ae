//! The HTML page: the SVG, then every change as a table row (bounded), in one document with
//! no script and no external reference.

use std::fmt::Write;

use super::model::{PointKind, Timeline};
use super::scale;
use super::svg::{escape, svg};

/// The most table rows (the picture has the rest, and the notes say what was left out).
pub const MAX_ROWS: usize = 2000;

/// One table row: when, where, what, why.
struct Row<'a> {
    time_ms: u64,
    lane: &'a str,
    what: String,
    detail: &'a str,
}

/// The page of `t`: its picture and a table of every change.
pub fn html(t: &Timeline) -> String {
    let mut rows: Vec<Row<'_>> = Vec::new();
    for lane in &t.lanes {
        for run in &lane.runs {
            for s in &run.spans {
                rows.push(Row {
                    time_ms: s.from_ms,
                    lane: &lane.name,
                    what: format!("{} (run {})", s.state.word(), run.number),
                    detail: &s.detail,
                });
            }
            for p in &run.points {
                let what = match &p.kind {
                    PointKind::StopRequested => "stop requested".to_owned(),
                    PointKind::Watchdog => "watchdog missed".to_owned(),
                    PointKind::Exited {
                        exit_code: Some(c), ..
                    } => format!("exited {c}"),
                    PointKind::Exited { .. } => "exited".to_owned(),
                };
                rows.push(Row {
                    time_ms: p.time_ms,
                    lane: &lane.name,
                    what,
                    detail: &p.detail,
                });
            }
        }
    }
    for m in &t.markers {
        rows.push(Row {
            time_ms: m.time_ms,
            lane: "(pod)",
            what: m.label.clone(),
            detail: &m.detail,
        });
    }
    for te in &t.tenures {
        rows.push(Row {
            time_ms: te.from_ms,
            lane: &te.name,
            what: format!("{} taken", te.scope),
            detail: &te.holder,
        });
    }
    let rows = super::model::sorted_by(rows, |r| r.time_ms);
    let mut o = String::from(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>podsignal timeline</title>\n<style>body{font-family:sans-serif;margin:1em}table{border-collapse:collapse;font-size:13px}td,th{border-bottom:1px solid #ddd;padding:2px 8px;text-align:left;vertical-align:top}td:nth-child(2){white-space:nowrap}</style></head><body>\n",
    );
    o.push_str(&svg(t));
    o.push_str("<table><thead><tr><th>time (UTC)</th><th>offset</th><th>container</th><th>what</th><th>detail</th></tr></thead><tbody>\n");
    for r in rows.iter().take(MAX_ROWS) {
        let _ = writeln!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            scale::utc(r.time_ms),
            scale::offset(r.time_ms - t.from_ms),
            escape(r.lane),
            escape(&r.what),
            escape(r.detail)
        );
    }
    o.push_str("</tbody></table>\n");
    if rows.len() > MAX_ROWS {
        let _ = writeln!(
            o,
            "<p>{} more rows left out (at most {MAX_ROWS}).</p>",
            rows.len() - MAX_ROWS
        );
    }
    o.push_str("</body></html>\n");
    o
}
