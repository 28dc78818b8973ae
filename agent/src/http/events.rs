//! `/v1/events`: publish, list after `?since=SEQ` (long-polling with `?wait=` while there is
//! nothing new), and `/v1/events/stream`, Server-Sent Events whose `id` is the event's `seq`:
//! a client that reconnects with `Last-Event-ID: N` (or `?since=N`) gets every event after N,
//! with no gap and no duplicate.

use std::convert::Infallible;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt};
use podsignal_client::{Coordinator, Error as ClientError, Event};
use podsignal_proto::api::{EVENTS_LOST_HEADER, Publish};
use schemars::JsonSchema;
use serde::Deserialize;

use super::caller::Caller;
use super::error::{ApiJson, ApiQuery};
use super::params::{Dur, Names};
use super::{Answer, ApiError, AppState, Doc, Routes, schema};

/// The most events one list answers with (read on the blocking pool, never on the runtime).
const MAX_LIMIT: usize = 10_000;

pub fn routes(r: Routes) -> Routes {
    r.get(
        "/v1/events",
        list,
        Doc::new(
            "The events after since (0: from the oldest kept); with wait, long-poll while there is none. Without strict, a loss is said in the podsignal-events-lost header.",
            Answer::Json(200, schema::<Vec<Event>>),
        )
        .query(schema::<ListQuery>)
        .errors(&[410]),
    )
    .post(
        "/v1/events",
        publish,
        Doc::new(
            "Publish an event; answers it with its seq.",
            Answer::Json(201, schema::<Event>),
        )
        .body(schema::<Publish>, true)
        .errors(&[413, 415]),
    )
    .get(
        "/v1/events/stream",
        stream,
        Doc::new(
            "Server-Sent Events: each message's id is the event's seq and its data the event; Last-Event-ID resumes; a loss is an `event: error` (events_rotated), shutdown an `event: shutdown`.",
            Answer::Stream("text/event-stream", "Server-Sent Events."),
        )
        .query(schema::<StreamQuery>),
    )
}

async fn publish(
    State(state): State<AppState>,
    Caller(volume): Caller,
    ApiJson(body): ApiJson<Publish>,
) -> Result<(StatusCode, Json<Event>), ApiError> {
    let event = volume.publish(&body.kind, body.data).await?;
    state.metrics().event_published();
    Ok((StatusCode::CREATED, Json(event)))
}

/// Query of the list.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Events after this sequence number (0: from the oldest kept).
    #[serde(default)]
    since: u64,
    /// At most this many (default 10000; more is cut to 10000).
    limit: Option<u64>,
    /// 410 `events_rotated` if the events right after `since` were rotated away (instead of
    /// starting at the oldest kept one).
    #[serde(default)]
    strict: bool,
    /// If there is nothing after `since`, wait up to this long (capped by --max-wait) for an
    /// event: `[]` if none came.
    wait: Option<Dur>,
}

async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    let limit = q.limit.map_or(MAX_LIMIT, |l| {
        usize::try_from(l).unwrap_or(MAX_LIMIT).min(MAX_LIMIT)
    });
    let volume = state.volume();
    let strict = q.strict && q.since > 0;
    let page = match state.wait_param(q.wait) {
        None => volume.read_events_page(q.since, limit, strict).await?,
        Some(wait) => {
            let _slot = state.waiter()?;
            state
                .until_shutdown(async {
                    Ok::<_, ApiError>(
                        volume
                            .wait_events_page(q.since, limit, strict, wait)
                            .await?,
                    )
                })
                .await?
        }
    };
    match page.lost {
        Some((from, to)) if strict && page.events.is_empty() => Err(ClientError::EventsRotated {
            wanted: from,
            available: to + 1,
        }
        .into()),
        lost => {
            let mut response = Json(page.events).into_response();
            if let Some((from, to)) = lost
                && let Ok(v) = HeaderValue::from_str(&format!("{from}-{to}"))
            {
                response.headers_mut().insert(EVENTS_LOST_HEADER, v);
            }
            Ok(response)
        }
    }
}

/// Query of the stream.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct StreamQuery {
    /// Events after this sequence number; `Last-Event-ID` takes precedence. Absent: only
    /// events published from now on.
    since: Option<u64>,
    /// Only these kinds (comma-separated).
    kinds: Option<Names>,
}

async fn stream(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<StreamQuery>,
) -> Result<Response, ApiError> {
    let last_event_id = headers
        .get("last-event-id")
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    ApiError::bad_request("Last-Event-ID must be an event's seq (a number)")
                })
        })
        .transpose()?;
    let kinds = q.kinds.map(|k| k.0);
    let slot = state.stream_slot()?;
    let volume = state.volume();
    let since = match last_event_id.or(q.since) {
        Some(s) => s,
        None => volume.last_event_seq().await?,
    };
    let events = volume.watch_events(Some(since)).await?;
    // First an id-only message: it sets the position a reconnecting client resumes from,
    // even before any event arrives (an SSE message without data is not dispatched).
    let start = futures_util::stream::once(async move {
        Ok::<_, Infallible>(
            SseEvent::default()
                .id(since.to_string())
                .comment("podsignal events"),
        )
    });
    let shutdown = state.shutdown().clone();
    let body = events
        .filter_map(move |item| {
            let kinds = kinds.clone();
            async move { to_sse(item, kinds.as_deref()) }
        })
        .take_until(shutdown.cancelled_owned())
        .chain(futures_util::stream::once(async {
            SseEvent::default()
                .event("shutdown")
                .data(r#"{"reason":"the agent is shutting down"}"#)
        }))
        .map(Ok::<_, Infallible>);
    let body = start.chain(body).map(move |e| {
        let _ = &slot; // the stream slot is released with the stream
        e
    });
    Ok(
        Sse::new(body.boxed() as std::pin::Pin<Box<dyn Stream<Item = _> + Send>>)
            .keep_alive(KeepAlive::default())
            .into_response(),
    )
}

fn to_sse(
    item: Result<Event, ClientError>,
    kinds: Option<&[podsignal_client::Name]>,
) -> Option<SseEvent> {
    match item {
        Ok(e) => {
            if kinds.is_some_and(|k| !k.contains(&e.kind)) {
                // Still move the client's position forward, so a resume skips it too.
                return Some(
                    SseEvent::default()
                        .id(e.seq.to_string())
                        .comment("filtered"),
                );
            }
            let data = serde_json::to_string(&e).unwrap_or_default();
            Some(SseEvent::default().id(e.seq.to_string()).data(data))
        }
        Err(e) => {
            let body = ApiError::from(e).body;
            Some(
                SseEvent::default()
                    .event("error")
                    .data(serde_json::to_string(&body).unwrap_or_default()),
            )
        }
    }
}
