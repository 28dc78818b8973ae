//! The live page at `/`: readiness, locks, leaders, phase, the timeline (`/v1/timeline`) and
//! recent events of the shared directory, for a person with `kubectl port-forward POD 7781`
//! and a browser.
//!
//! Three static files embedded in the binary (no CDN, nothing fetched from elsewhere), served
//! without a token: they hold no data. The script then reads the API like any client, with
//! `fetch` and the bearer token the page asks for (kept in the tab's `sessionStorage`), so
//! the API's guards are the page's guards: the Host check, the token, and the refusal of
//! anything with an `Origin` header. A browser sends `Origin` on every `POST`, `PUT` and
//! `DELETE`, so the page cannot change anything, and it does not try: it only reads.
//!
//! It stays live by long-polling `/v1/status` with its `ETag` (see `status`): any change in
//! the directory answers at once.

use axum::http::{HeaderName, HeaderValue, Uri, header};
use axum::response::IntoResponse;

use super::{Answer, Doc, Routes};

const HTML: &str = include_str!("page/index.html");
const SCRIPT: &str = include_str!("page/page.js");
const STYLE: &str = include_str!("page/page.css");

/// The page's files: path, media type, contents.
const FILES: [(&str, &str, &str); 3] = [
    ("/", "text/html; charset=utf-8", HTML),
    ("/page.js", "text/javascript; charset=utf-8", SCRIPT),
    ("/page.css", "text/css; charset=utf-8", STYLE),
];

/// True for the page's files: static, so they need no token (see [`super::guard`]).
pub fn is_page_file(path: &str) -> bool {
    FILES.iter().any(|(p, _, _)| *p == path)
}

/// Only this agent's own script, style sheet and API; no inline script, no frames, no forms
/// sent anywhere. Inline `style` attributes stay refused too: the timeline's SVG is styled by
/// attributes.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub fn routes(r: Routes) -> Routes {
    // One handler for the three: each handler type costs its own copy of axum's plumbing in
    // the binary.
    r.get(
        FILES[0].0,
        file,
        Doc::new(
            "The live page: readiness, locks, leaders, phase, timeline and events (asks for the token if the agent has one).",
            Answer::File("text/html"),
        ),
    )
    .get(
        FILES[1].0,
        file,
        Doc::new("The page's script.", Answer::File("text/javascript")),
    )
    .get(
        FILES[2].0,
        file,
        Doc::new("The page's style sheet.", Answer::File("text/css")),
    )
}

async fn file(uri: Uri) -> impl IntoResponse {
    let (_, media, body) = FILES
        .into_iter()
        .find(|(p, _, _)| *p == uri.path())
        .unwrap_or(FILES[0]);
    let headers: [(HeaderName, HeaderValue); 6] = [
        (header::CONTENT_TYPE, HeaderValue::from_static(media)),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        // A new agent serves a new page: never keep an old one.
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ];
    (headers, body)
}
