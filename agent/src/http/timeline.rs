//! `/v1/timeline`: the picture `podsignal timeline --format svg` draws, of this agent's
//! directory (read and drawn by the same code, `cmd::timeline` and `timeline/`). The page
//! shows it and fetches it again whenever the directory changes.

use std::borrow::Cow;

use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use podsignal_proto::api::ErrorCode;
use podsignal_proto::duration::{DURATION_PATTERN, parse_duration_capped};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer};

use super::error::ApiQuery;
use super::{Answer, ApiError, AppState, Doc, Routes, schema};
use crate::cmd::timeline::{Sources, read_sources, window};
use crate::timeline::{self, TimeArg};

pub fn routes(r: Routes) -> Routes {
    r.get(
        "/v1/timeline",
        picture,
        Doc::new(
            "The timeline of the directory as an SVG picture (as podsignal timeline --format svg): a lane per container, phase markers, lock and leader tenures.",
            Answer::File("image/svg+xml"),
        )
        .query(schema::<TimelineQuery>),
    )
}

/// Query of the timeline.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct TimelineQuery {
    /// From this time (default: the first event).
    since: Option<Time>,
    /// Up to this time (default: the last event).
    until: Option<Time>,
}

/// A time parameter, as `podsignal timeline --since` takes it.
#[derive(Debug, Clone, Copy)]
struct Time(TimeArg);

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Time, D::Error> {
        let s = <Cow<'de, str>>::deserialize(d)?;
        // A duration is capped, as every duration parameter is (`+99999h` is ten years, not
        // an error); the rest is what `--since` reads.
        let capped = |d: &str| parse_duration_capped(d).ok();
        let duration = match s.strip_prefix('+') {
            Some(after_start) => capped(after_start).map(TimeArg::AfterStart),
            None => capped(&s).map(TimeArg::BeforeEnd),
        };
        duration
            .map_or_else(|| TimeArg::parse(&s), Ok)
            .map(Time)
            .map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Time {
    fn schema_name() -> Cow<'static, str> {
        "TimelineTime".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let duration = DURATION_PATTERN
            .trim_start_matches('^')
            .trim_end_matches('$');
        let utc = r"(19[7-9][0-9]|[2-9][0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]{1,9})?Z";
        json_schema!({
            "type": "string",
            // Unix milliseconds: 13 digits or more, and what fits in 64 bits.
            "pattern": format!(r"^(\+?{duration}|[0-9]{{13,19}}|{utc})$"),
            "description": "A UTC time (2025-11-24T16:00:00Z), Unix milliseconds, +DUR after the first event, or DUR before the last (5m: the last five minutes).",
        })
    }
}

async fn picture(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<TimelineQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let sources = read_sources(state.volume()).await?;
    // Up to the whole log (thousands of events): drawn off the runtime.
    let svg = tokio::task::spawn_blocking(move || {
        let Sources {
            events,
            tombstones,
            records,
        } = sources;
        let window = window(&events, q.since.map(|t| t.0), q.until.map(|t| t.0), None);
        timeline::svg(&timeline::build_with(
            &events,
            &tombstones,
            &records,
            window,
        ))
    })
    .await
    .map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            format!("drawing the timeline failed: {e}"),
        )
    })?;
    let headers: [(HeaderName, HeaderValue); 3] = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("image/svg+xml"),
        ),
        // Opened on its own (not through the page), an SVG is a document of this origin:
        // nothing in it may run or load anything.
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'"),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
    ];
    Ok((headers, svg))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(s: &str) -> Result<TimeArg, serde_json::Error> {
        serde_json::from_value::<Time>(serde_json::Value::from(s)).map(|t| t.0)
    }

    #[test]
    fn times_read_as_timeline_since_reads_them_with_durations_capped() {
        assert_eq!(
            time("2025-11-24T16:00:00Z").unwrap(),
            TimeArg::At(1_764_000_000_000)
        );
        assert_eq!(
            time("1764000000250").unwrap(),
            TimeArg::At(1_764_000_000_250)
        );
        assert_eq!(
            time("+30s").unwrap(),
            TimeArg::AfterStart(std::time::Duration::from_secs(30))
        );
        assert_eq!(
            time("5m").unwrap(),
            TimeArg::BeforeEnd(std::time::Duration::from_secs(300))
        );
        assert!(matches!(
            time("999999999999h").unwrap(),
            TimeArg::BeforeEnd(d) if d >= std::time::Duration::from_secs(86_400 * 365)
        ));
        for bad in ["", "+", "yesterday", "2025-13-01T00:00:00Z"] {
            assert!(time(bad).is_err(), "{bad}");
        }
    }
}
