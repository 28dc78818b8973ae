//! Prometheus metrics, written by hand: requests by route and status, open waiters and
//! streams, lock wait time, events published, and the watcher's rescans and overflows.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

use super::AppState;

/// Upper bounds of the lock wait histogram, in seconds.
const WAIT_BUCKETS: [f64; 8] = [0.001, 0.01, 0.1, 0.5, 1.0, 5.0, 30.0, 300.0];

/// Requests of one route: method → status → count.
type ByMethod = BTreeMap<String, BTreeMap<u16, u64>>;

/// The agent's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// route → method → status → count. Nested so that counting a request looks its key
    /// up by reference and allocates only the first time. A std mutex: held for one map
    /// update, never across an await.
    requests: Mutex<BTreeMap<String, ByMethod>>,
    /// Lock and leader wait times: one counter per bucket, then +Inf.
    wait_buckets: [AtomicU64; WAIT_BUCKETS.len() + 1],
    wait_sum_micros: AtomicU64,
    events_published: AtomicU64,
    holds: AtomicU64,
    connections: AtomicU64,
}

impl Metrics {
    /// Records how long an acquisition waited.
    pub fn observe_lock_wait(&self, waited: Duration) {
        let secs = waited.as_secs_f64();
        let i = WAIT_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(WAIT_BUCKETS.len());
        self.wait_buckets[i].fetch_add(1, Ordering::Relaxed);
        self.wait_sum_micros
            .fetch_add(waited.as_micros() as u64, Ordering::Relaxed);
    }

    /// Counts one published event.
    pub fn event_published(&self) {
        self.events_published.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a hold stream opening.
    pub fn hold_opened(&self) {
        self.holds.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a hold stream closing.
    pub fn hold_closed(&self) {
        self.holds.fetch_sub(1, Ordering::Relaxed);
    }

    /// Open hold streams.
    pub fn holds(&self) -> u64 {
        self.holds.load(Ordering::Relaxed)
    }

    /// Counts a connection opening.
    pub fn connection_opened(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a connection closing.
    pub fn connection_closed(&self) {
        self.connections.fetch_sub(1, Ordering::Relaxed);
    }

    /// Open connections.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }
}

/// Where the route middleware leaves the matched route for the request counter.
#[derive(Debug, Clone, Default)]
struct RouteSlot(Arc<Mutex<Option<MatchedPath>>>);

/// A request being counted: started by the front middleware before anything can refuse it,
/// finished with its response.
pub struct Counting {
    slot: RouteSlot,
    method: Method,
}

impl Counting {
    /// Starts counting `request` (and leaves a slot in it for [`record_route`]).
    pub fn start(request: &mut Request) -> Counting {
        let slot = RouteSlot::default();
        request.extensions_mut().insert(slot.clone());
        Counting {
            slot,
            method: request.method().clone(),
        }
    }

    /// Counts the request by route template (`unmatched` if none), method and `response`'s
    /// status.
    pub fn finish(self, metrics: &Metrics, response: &Response) {
        let route = self.slot.0.lock().ok().and_then(|s| s.clone());
        let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
        let Ok(mut requests) = metrics.requests.lock() else {
            return;
        };
        if !requests.contains_key(route) {
            requests.insert(route.to_owned(), BTreeMap::new());
        }
        let Some(methods) = requests.get_mut(route) else {
            return;
        };
        let method = self.method.as_str();
        if !methods.contains_key(method) {
            methods.insert(method.to_owned(), BTreeMap::new());
        }
        let Some(statuses) = methods.get_mut(method) else {
            return;
        };
        *statuses.entry(response.status().as_u16()).or_default() += 1;
    }
}

/// Route middleware: tells the counter which route matched.
pub async fn record_route(request: Request, next: Next) -> Response {
    if let (Some(path), Some(slot)) = (
        request.extensions().get::<MatchedPath>(),
        request.extensions().get::<RouteSlot>(),
    ) && let Ok(mut s) = slot.0.lock()
    {
        *s = Some(path.clone());
    }
    next.run(request).await
}

/// The metrics in Prometheus text format.
pub fn render(state: &AppState) -> String {
    let m = state.metrics();
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# HELP podsignal_http_requests_total HTTP requests answered, by route template, method and status.\n# TYPE podsignal_http_requests_total counter"
    );
    if let Ok(requests) = m.requests.lock() {
        for (route, methods) in requests.iter() {
            let route = route.replace('"', "");
            for (method, statuses) in methods {
                for (status, n) in statuses {
                    let _ = writeln!(
                        o,
                        "podsignal_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}} {n}"
                    );
                }
            }
        }
    }
    let gauge = |o: &mut String, name: &str, help: &str, v: u64| {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
    };
    let counter = |o: &mut String, name: &str, help: &str, v: u64| {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
    };
    gauge(
        &mut o,
        "podsignal_waiters",
        "Long-polls and waiting acquisitions open now.",
        state.waiters_in_use() as u64,
    );
    gauge(
        &mut o,
        "podsignal_event_streams",
        "Server-Sent Event streams open now.",
        state.streams_in_use() as u64,
    );
    gauge(
        &mut o,
        "podsignal_holds",
        "Hold streams (locks, leaderships, held readiness tied to a connection) open now.",
        m.holds(),
    );
    gauge(
        &mut o,
        "podsignal_connections",
        "HTTP connections open now (at most --max-connections).",
        m.connections(),
    );
    let _ = writeln!(
        o,
        "# HELP podsignal_lock_wait_seconds Time lock and leader acquisitions waited.\n# TYPE podsignal_lock_wait_seconds histogram"
    );
    let mut cumulative = 0;
    for (i, bound) in WAIT_BUCKETS.iter().enumerate() {
        cumulative += m.wait_buckets[i].load(Ordering::Relaxed);
        let _ = writeln!(
            o,
            "podsignal_lock_wait_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
        );
    }
    cumulative += m.wait_buckets[WAIT_BUCKETS.len()].load(Ordering::Relaxed);
    let _ = writeln!(
        o,
        "podsignal_lock_wait_seconds_bucket{{le=\"+Inf\"}} {cumulative}\npodsignal_lock_wait_seconds_sum {}\npodsignal_lock_wait_seconds_count {cumulative}",
        m.wait_sum_micros.load(Ordering::Relaxed) as f64 / 1e6
    );
    counter(
        &mut o,
        "podsignal_events_published_total",
        "Events published through the agent.",
        m.events_published.load(Ordering::Relaxed),
    );
    let watch = state.volume().watch_stats();
    counter(
        &mut o,
        "podsignal_rescans_total",
        "Rescans: re-checks because the rescan interval passed (readiness: once per interval for all its waiters).",
        watch.rescans,
    );
    counter(
        &mut o,
        "podsignal_inotify_overflows_total",
        "Times the inotify queue overflowed (every waiter re-checks).",
        watch.overflows,
    );
    gauge(
        &mut o,
        "podsignal_inotify_watching",
        "1 if inotify is running, 0 if waiters rely on the rescan alone.",
        u64::from(watch.watching),
    );
    o
}
