//! `/v1/timeline`: the picture `podsignal timeline --format svg` draws, of this agent's
//! directory (read and drawn by the same code, `cmd::timeline` and `timeline/`). The page
//! shows it and fetches it again whenever the directory changes.

use std::borrow::Cow;

use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use podsignal_proto::api::ErrorCode;
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
        TimeArg::parse(&s)
            .map(Time)
            .map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Time {
    fn schema_name() -> Cow<'static, str> {
        "TimelineTime".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
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
