//! The agent's HTTP API over the shared directory. The directory stays the source of truth:
//! every handler calls the same [`Volume`] methods the CLI uses, so what the agent serves and
//! what `podsignal` writes directly always agree.
//!
//! - [`app`] builds the router (tests call it with `oneshot`, no socket); [`run`] serves it
//!   on a listener until a shutdown token is cancelled.
//! - `guard`: Host, Origin and bearer-token checks; `limits`: waiter and stream caps, wait
//!   caps, the request timeout; `error`: the one error type and JSON extractors.
//! - `caller`: who is calling, so that what the agent writes for a caller names the caller.
//! - One module per resource: `readiness`, `locks` (and `leader`, which reuses it), `events`,
//!   `phase` (and shutdown), `exits` (tombstones and stop requests), `status` (everything at
//!   once, long-polled for changes), `ops` (healthz, readyz, metrics); `hold` keeps something held for as long as a response stays open,
//!   `leases` for as long as it is renewed.
//! - `page`: the live page at `/` (static HTML, CSS and JS; it reads the API like any client);
//!   `timeline`: the picture it shows, drawn by the same code as `podsignal timeline`.
//! - `openapi`: the served spec, generated from the router's route table by a test.

mod caller;
mod error;
mod events;
mod exits;
mod guard;
mod hold;
mod leader;
mod leases;
mod limits;
mod locks;
pub mod metrics;
mod openapi;
mod ops;
mod page;
mod params;
mod phase;
mod readiness;
mod serve;
mod status;
mod timeline;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use podsignal_client::Volume;
use tokio_util::sync::CancellationToken;

pub use error::ApiError;
use leases::Leases;
use metrics::Metrics;
pub use serve::Budget;

/// Limits and security settings of the server.
#[derive(Debug, Clone)]
pub struct Config {
    /// The largest request body accepted (413 above).
    pub max_body: usize,
    /// How many connections may be open at once (more wait in the kernel's backlog).
    pub max_connections: usize,
    /// A client must send a whole request head within this (and a kept-alive connection
    /// start its next request), or the connection is closed.
    pub header_timeout: Duration,
    /// How many long-polls and waiting acquisitions may be open at once (503 above).
    pub max_waiters: usize,
    /// How many event streams may be open at once (503 above).
    pub max_streams: usize,
    /// The longest single long-poll; a longer `wait` is cut to this and answered 408, and the
    /// client polls again.
    pub max_wait: Duration,
    /// How long any request may take beyond its own `wait` before it is answered 503.
    pub request_timeout: Duration,
    /// How often hold streams send a heartbeat line (and so notice a vanished client).
    pub heartbeat: Duration,
    /// The bearer token every request but `/healthz`, `/readyz` and the page's static files
    /// must carry, if set.
    pub token: Option<String>,
    /// Check that `Host` names a loopback address (off when remote access is allowed: the
    /// token is the defence then).
    pub check_host: bool,
}

impl Default for Config {
    fn default() -> Self {
        let budget = Budget::of_this_process();
        Config {
            max_body: 64 * 1024,
            max_connections: budget.connections,
            header_timeout: Duration::from_secs(10),
            max_waiters: budget.waiters,
            max_streams: 64,
            max_wait: Duration::from_secs(300),
            request_timeout: Duration::from_secs(30),
            heartbeat: Duration::from_secs(5),
            token: None,
            check_host: true,
        }
    }
}

/// What every handler shares. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    volume: Volume,
    config: Config,
    /// Cancelled when the agent shuts down: long-polls answer 503, streams end.
    shutdown: CancellationToken,
    metrics: Metrics,
    limits: limits::Limits,
    leases: Leases,
    /// The readiness records held here, by hold id.
    holds: readiness::Holds,
}

impl AppState {
    /// State over `volume`, shutting down when `shutdown` is cancelled.
    pub fn new(volume: Volume, config: Config, shutdown: CancellationToken) -> AppState {
        let limits = limits::Limits::new(&config);
        AppState {
            inner: Arc::new(Shared {
                volume,
                config,
                shutdown,
                metrics: Metrics::default(),
                limits,
                leases: Leases::default(),
                holds: readiness::Holds::default(),
            }),
        }
    }

    fn volume(&self) -> &Volume {
        &self.inner.volume
    }

    fn config(&self) -> &Config {
        &self.inner.config
    }

    fn shutdown(&self) -> &CancellationToken {
        &self.inner.shutdown
    }

    fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Releases every lease the agent holds (on shutdown).
    pub fn release_all(&self) {
        self.inner.leases.clear();
    }
}

/// The schema of a type, for the OpenAPI document ([`schema`] makes one).
pub(crate) type SchemaFn = fn(&mut schemars::SchemaGenerator) -> schemars::Schema;

/// The schema of `T`, as a [`SchemaFn`].
pub(crate) fn schema<T: schemars::JsonSchema>(
    g: &mut schemars::SchemaGenerator,
) -> schemars::Schema {
    g.subschema_for::<T>()
}

/// What a route answers when it succeeds.
#[derive(Clone, Copy)]
// Read only where the OpenAPI document is generated, a test.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) enum Answer {
    /// JSON of this schema, with this status.
    Json(u16, SchemaFn),
    /// 204, no body.
    NoContent,
    /// A stream of this media type (SSE, JSON lines), described in words.
    Stream(&'static str, &'static str),
    /// Plain text (metrics).
    Text,
    /// A file of this media type (the page and its script and style sheet).
    File(&'static str),
}

/// What the OpenAPI document says of a route: written beside the route, from the same types
/// the handler uses, so the document cannot drift from what is served.
#[derive(Clone, Copy)]
// Read only where the OpenAPI document is generated, a test: the binary serves the committed
// document, and so does not contain `schemars`.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) struct Doc {
    pub(crate) summary: &'static str,
    /// The query string's type: each field is a parameter.
    pub(crate) query: Option<SchemaFn>,
    /// The request body's type, and whether it is required.
    pub(crate) body: Option<(SchemaFn, bool)>,
    pub(crate) ok: Answer,
    /// Statuses this route answers besides the ones every route may (400, 401, 403, 409,
    /// 421, 503).
    pub(crate) errors: &'static [u16],
    /// Operations a success leads to (OpenAPI links), each as (method, this route's path
    /// plus a suffix), given the same `name` and a query parameter from the answer's field of
    /// the same name: `("delete", "", "lease")` for a lease release.
    pub(crate) links: &'static [(&'static str, &'static str, &'static str)],
}

impl Doc {
    /// A route answering `ok`.
    pub(crate) const fn new(summary: &'static str, ok: Answer) -> Doc {
        Doc {
            summary,
            query: None,
            body: None,
            ok,
            errors: &[],
            links: &[],
        }
    }

    /// Its query string is `T`.
    pub(crate) const fn query(mut self, q: SchemaFn) -> Doc {
        self.query = Some(q);
        self
    }

    /// Its body is `T`, required or not.
    pub(crate) const fn body(mut self, b: SchemaFn, required: bool) -> Doc {
        self.body = Some((b, required));
        self
    }

    /// It may also answer these statuses.
    pub(crate) const fn errors(mut self, e: &'static [u16]) -> Doc {
        self.errors = e;
        self
    }

    /// A success leads to these operations (see [`Doc::links`]).
    pub(crate) const fn links(
        mut self,
        l: &'static [(&'static str, &'static str, &'static str)],
    ) -> Doc {
        self.links = l;
        self
    }
}

/// A router under construction that also records its routes and their docs, for the OpenAPI
/// document.
pub(crate) struct Routes {
    router: Router<AppState>,
    /// Only where the document is generated (a test): in the binary the docs are dropped
    /// unread, and with them every reference to the schema code.
    #[cfg(test)]
    table: Vec<(&'static str, &'static str, Doc)>,
}

macro_rules! route_method {
    ($fn:ident, $word:literal) => {
        fn $fn<H, T>(mut self, path: &'static str, handler: H, doc: Doc) -> Self
        where
            H: Handler<T, AppState>,
            T: 'static,
        {
            #[cfg(test)]
            self.table.push(($word, path, doc));
            #[cfg(not(test))]
            let _ = doc;
            self.router = self.router.route(path, axum::routing::$fn(handler));
            self
        }
    };
}

impl Routes {
    route_method!(get, "get");
    route_method!(post, "post");
    route_method!(put, "put");
    route_method!(delete, "delete");
}

/// Every route: (method, path) pairs, and the router serving them.
pub(crate) fn routes() -> Routes {
    let r = Routes {
        router: Router::new(),
        #[cfg(test)]
        table: Vec::new(),
    };
    let r = ops::routes(r);
    let r = page::routes(r);
    let r = status::routes(r);
    let r = timeline::routes(r);
    let r = readiness::routes(r);
    let r = locks::routes(r);
    let r = leader::routes(r);
    let r = events::routes(r);
    let r = exits::routes(r);
    phase::routes(r)
}

/// The application: every route, with the guards, limits and metrics around it.
///
/// What every request goes through is one middleware ([`front`]) around the router as a
/// whole. `Router::layer` would wrap every route in each layer, boxed, and a call clones the
/// whole chain of boxed services below it at every level; and each `from_fn` costs a request
/// a boxed service and a boxed future. Four layers made 25 allocations a request, most of the
/// agent's cost per answer when ten thousand long-polls are answered at once.
pub fn app(state: AppState) -> Router {
    let Routes { router, .. } = routes();
    let routed = router
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .route_layer(axum::middleware::from_fn(metrics::record_route))
        .with_state(state.clone());
    let stack = tower::ServiceBuilder::new()
        .layer(DefaultBodyLimit::max(state.config().max_body))
        .layer(axum::middleware::from_fn_with_state(state, front))
        .service(routed);
    Router::new().fallback_service(stack)
}

/// Every request's way in: counted by route, method and status (refusals too), refused by
/// the guards, or else answered within the time limit.
async fn front(
    axum::extract::State(state): axum::extract::State<AppState>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let counting = metrics::Counting::start(&mut request);
    let response = match guard::refuse(&state, &request) {
        Some(refused) => axum::response::IntoResponse::into_response(refused),
        None => limits::within_time(state.config(), next.run(request)).await,
    };
    counting.finish(state.metrics(), &response);
    response
}

/// Where the agent listens.
#[derive(Debug)]
pub enum Listener {
    /// A TCP socket.
    Tcp(tokio::net::TcpListener),
    /// A unix socket.
    Unix(tokio::net::UnixListener),
}

/// Serves `app(state)` on `listener` until `shutdown` is cancelled, then stops accepting,
/// lets in-flight requests finish (long-polls and streams end at once with a shutdown
/// answer), and releases everything the agent holds. See `serve` for the limits.
pub async fn run(
    listener: Listener,
    state: AppState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = app(state.clone());
    let result = serve::serve(listener, app, state.clone(), shutdown).await;
    state.release_all();
    result
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    use super::*;

    async fn state(dir: &std::path::Path) -> AppState {
        let volume = Volume::open(dir, podsignal_client::VolumeOptions::default())
            .await
            .expect("open volume");
        AppState::new(volume, Config::default(), CancellationToken::new())
    }

    #[tokio::test]
    async fn app_answers_without_a_socket() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let app = app(state(tmp.path()).await);
        let ok = Request::get("/healthz")
            .header("host", "localhost")
            .body(Body::empty());
        let response = app
            .clone()
            .oneshot(ok.expect("request"))
            .await
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
        let evil = Request::get("/healthz")
            .header("host", "evil.example")
            .body(Body::empty());
        let response = app
            .oneshot(evil.expect("request"))
            .await
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::MISDIRECTED_REQUEST);
    }

    #[tokio::test]
    async fn a_long_poll_answers_503_on_shutdown() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let state = state(tmp.path()).await;
        let shutdown = state.shutdown().clone();
        let app = app(state);
        let poll = Request::get("/v1/readiness/x?wait=1m")
            .header("host", "localhost")
            .body(Body::empty());
        let pending = tokio::spawn(app.oneshot(poll.expect("request")));
        shutdown.cancel();
        let response = pending.await.expect("joined").expect("infallible");
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
