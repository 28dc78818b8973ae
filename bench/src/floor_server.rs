//! The floor for the agent: the least an HTTP long-poll server can do. `GET
//! /v1/readiness/NAME?wait=DUR` answers at once when NAME is ready, else waits on a
//! `tokio::sync::watch` until it is (200) or the wait runs out (408); `POST
//! /v1/readiness/NAME` flips it (`?ready=false` flips it back); `GET /waiters` counts the
//! open long-polls. No files, no limits, no auth: what is left is tokio + hyper + axum, the
//! stack the agent is built on, on the same two worker threads.

use anyhow::{Context, Result};
use axum::{
    Router,
    extract::{Path, Query, State},
    http::StatusCode,
    routing::get,
};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// The server's state: one watch channel per name, and the number of open long-polls.
#[derive(Clone, Default)]
struct Floor {
    /// Per name: `true` once ready. A std `Mutex`: held only to look up a channel, never
    /// across an await.
    names: Arc<Mutex<HashMap<String, watch::Sender<bool>>>>,
    /// Open long-polls (for the harness: "everyone is waiting now").
    waiting: Arc<AtomicUsize>,
}

impl Floor {
    fn channel(&self, name: &str) -> watch::Sender<bool> {
        let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        names
            .entry(name.to_string())
            .or_insert_with(|| watch::channel(false).0)
            .clone()
    }
}

/// Decrements the waiter count when a long-poll ends, however it ends.
struct WaitingSlot(Arc<AtomicUsize>);

impl Drop for WaitingSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// `?wait=DUR` and `?ready=BOOL`.
#[derive(Deserialize)]
struct Params {
    wait: Option<String>,
    ready: Option<bool>,
}

/// `500ms`, `30s`, `2m`: the subset of podsignal's durations the harness sends.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => Some(Duration::from_secs(n * 60)),
        _ => None,
    }
}

async fn get_readiness(
    State(floor): State<Floor>,
    Path(name): Path<String>,
    Query(params): Query<Params>,
) -> (StatusCode, String) {
    let mut rx = floor.channel(&name).subscribe();
    let wait = params
        .wait
        .as_deref()
        .and_then(parse_duration)
        .unwrap_or_default();
    if !*rx.borrow_and_update() && !wait.is_zero() {
        floor.waiting.fetch_add(1, Ordering::Relaxed);
        let _slot = WaitingSlot(floor.waiting.clone());
        let _ = tokio::time::timeout(wait, rx.wait_for(|ready| *ready)).await;
    }
    let ready = *rx.borrow();
    let status = if ready || wait.is_zero() {
        StatusCode::OK
    } else {
        StatusCode::REQUEST_TIMEOUT
    };
    (status, format!("{{\"name\":\"{name}\",\"ready\":{ready}}}"))
}

async fn post_readiness(
    State(floor): State<Floor>,
    Path(name): Path<String>,
    Query(params): Query<Params>,
) -> StatusCode {
    floor
        .channel(&name)
        .send_replace(params.ready.unwrap_or(true));
    StatusCode::NO_CONTENT
}

async fn waiters(State(floor): State<Floor>) -> String {
    floor.waiting.load(Ordering::Relaxed).to_string()
}

/// Serves the floor on `listen` until the process is killed.
pub fn run(listen: &str) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async {
        let app = Router::new()
            .route(
                "/v1/readiness/{name}",
                get(get_readiness).post(post_readiness),
            )
            .route("/waiters", get(waiters))
            .with_state(Floor::default());
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        axum::serve(listener, app).await.context("serving")
    })
}
