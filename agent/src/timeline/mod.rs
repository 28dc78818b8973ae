//! `podsignal timeline`: a picture of what the Pod's containers did, when, and who waited on
//! whom, drawn from the event log and the tombstones.
//!
//! The API (stable; the agent's `GET /v1/timeline` uses it too):
//!
//! - [`build`]`(&events, &tombstones, Window) -> model::Timeline`: the model, a pure function of
//!   what was read (no I/O, no clock). One [`model::Lane`] per container name (`run --name`), each
//!   with its [`model::Run`]s (one per incarnation: a restart is a new run), each a list of
//!   [`model::Span`]s in a [`model::State`] (waiting, started, ready, unready, draining, stopping) and
//!   [`model::Point`]s (stop requested, exited, watchdog missed); pod-wide [`model::Marker`]s (phase
//!   changes, generations) and lock/leader [`model::Tenure`]s. Bounded: lanes, rows, items, markers
//!   and tenures are capped (`MAX_*` in `model`), strings cut and stripped of control
//!   characters; what did not fit is counted in [`model::Timeline::notes`].
//! - [`build_with`]: [`build`] with the readiness records there now, for names no `run`
//!   published events for (a lane showing each record's state since it was set).
//! - [`svg`]`(&Timeline) -> String`: a self-contained SVG document (no script, no external
//!   reference, every string escaped, `<title>` tooltips with exact UTC times and reasons);
//!   quiet stretches of 30 s or more that dominate the axis are collapsed into axis breaks.
//! - [`text`]`(&Timeline, width) -> String`: an ASCII Gantt chart, at most `width` columns.
//! - [`html`]`(&Timeline) -> String`: the SVG and a table of every change.
//! - [`TimeArg`]: `--since`/`--until` values, resolved against the log's first and last
//!   event.
//! - [`generations`] and [`generation_events`]: the generation markers (`podsignal reset`'s
//!   `generation` events) and one generation's events.
//!
//! The renderers do no I/O; reading the log is the caller's (`cmd/timeline.rs`).

mod builder;
mod html;
pub mod model;
mod scale;
mod svg;
mod text;
mod time_arg;

pub use html::html;
#[allow(
    unused_imports,
    reason = "the API the agent's GET /v1/timeline is written against"
)]
pub use model::build;
pub use model::{MAX_LANES, Window, build_with, generation_events, generations};
pub use svg::svg;
pub use text::text;
pub use time_arg::TimeArg;
