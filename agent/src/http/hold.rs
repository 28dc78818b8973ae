//! Holding something for as long as one response stays open: `POST .../hold` answers with
//! a stream of JSON lines (`held`, then a heartbeat every `--heartbeat`), and the stream owns
//! the guard. When the client goes away (it closed the connection, crashed, was killed, or
//! shut down its sending side) hyper drops the stream, and with it the guard: the lock,
//! leadership or readiness is released at once, on the blocking pool (releasing writes a
//! record). A heartbeat write failing is the backstop when the kernel has not told us yet.
//! A client that is stopped (SIGSTOP) keeps its hold, as a stopped process keeps a flock.
//! On shutdown the stream sends `released` and ends.

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use podsignal_proto::api::{Grant, HoldMessage};
use tokio_util::sync::CancellationToken;

use super::AppState;
use super::limits::Slot;

/// The stream's state: it owns what is held.
struct Holding<G: Send + 'static> {
    guard: Option<G>,
    grant: Grant,
    sent_held: bool,
    shutdown: CancellationToken,
    heartbeat: tokio::time::Interval,
    state: AppState,
    done: bool,
    _slot: Slot,
}

impl<G: Send + 'static> Drop for Holding<G> {
    fn drop(&mut self) {
        self.state.metrics().hold_closed();
        if let Some(guard) = self.guard.take() {
            tracing::info!(
                "hold on {} released: the connection closed",
                self.grant.name
            );
            release(guard);
        }
    }
}

/// Drops `guard` on the blocking pool: releasing writes a record, and may not run on the
/// runtime (nor under any lock).
pub fn release<G: Send + 'static>(guard: G) {
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => drop(rt.spawn_blocking(move || drop(guard))),
        Err(_) => drop(guard),
    }
}

/// Drops `guard` on the blocking pool and returns once it is dropped: for an answer that
/// says "released" (a client may act on it at once, e.g. acquire again).
pub async fn released<G: Send + 'static>(guard: G) {
    // A join error is the drop having panicked: nothing is held any more either way.
    let _ = tokio::task::spawn_blocking(move || drop(guard)).await;
}

/// The response that keeps `guard` for as long as the client keeps it open. The `held` line
/// carries `grant` and the heartbeat period.
pub fn respond<G: Send + 'static>(
    state: &AppState,
    slot: Slot,
    guard: G,
    mut grant: Grant,
) -> Response {
    let period = state.config().heartbeat.max(Duration::from_millis(10));
    grant.heartbeat_ms = Some(u64::try_from(period.as_millis()).unwrap_or(u64::MAX));
    let mut heartbeat = tokio::time::interval(period);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    state.metrics().hold_opened();
    let holding = Holding {
        guard: Some(guard),
        grant,
        sent_held: false,
        shutdown: state.shutdown().clone(),
        heartbeat,
        state: state.clone(),
        done: false,
        _slot: slot,
    };
    let stream = futures_util::stream::unfold(holding, |mut h| async move {
        if h.done {
            return None;
        }
        let message = if !h.sent_held {
            // The interval's first tick is immediate: restart it so heartbeats begin one
            // period after `held`.
            h.sent_held = true;
            h.heartbeat.reset();
            HoldMessage::Held(h.grant.clone())
        } else {
            tokio::select! {
                _ = h.heartbeat.tick() => HoldMessage::Heartbeat,
                _ = h.shutdown.cancelled() => {
                    h.done = true;
                    if let Some(g) = h.guard.take() {
                        // Released before saying so: a client that reads `released` may
                        // count on it.
                        released(g).await;
                    }
                    HoldMessage::Released { reason: "the agent is shutting down".into() }
                }
            }
        };
        Some((Ok::<_, std::convert::Infallible>(line(&message)), h))
    });
    let mut response = Body::from_stream(stream.boxed()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn line(message: &HoldMessage) -> Bytes {
    let mut v = serde_json::to_vec(message).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}
