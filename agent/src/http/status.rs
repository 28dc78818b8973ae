//! `/v1/status`: everything in the shared directory at once, with an `ETag` naming this
//! state. A client that has a state asks with `If-None-Match: ETAG` and `?wait=DUR` to be
//! answered the moment anything changes (readiness, locks, leaders, phase, events: the
//! watcher sees every area), or `304` when the wait runs out. That is how the agent's page
//! stays live: changes of readiness or locks publish no event, so the event stream alone
//! would miss them.

use std::hash::{DefaultHasher, Hasher};

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use podsignal_client::{Coordinator, Status};
use schemars::JsonSchema;
use serde::Deserialize;

use super::error::ApiQuery;
use super::params::Dur;
use super::{Answer, ApiError, AppState, Doc, Routes, schema};

pub fn routes(r: Routes) -> Routes {
    r.get(
        "/v1/status",
        status,
        Doc::new(
            "Everything in the shared directory, with an ETag. With If-None-Match naming the ETag a client has: 304 while unchanged; with wait, long-poll until it changes.",
            Answer::Json(200, schema::<Status>),
        )
        .query(schema::<StatusQuery>)
        .errors(&[304]),
    )
}

/// Query of the status.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct StatusQuery {
    /// With `If-None-Match`: wait up to this long (capped by --max-wait) for the status to
    /// differ from that ETag; 304 if it did not. Without `If-None-Match` it answers at once.
    wait: Option<Dur>,
}

async fn status(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<StatusQuery>,
) -> Result<Response, ApiError> {
    let seen = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let volume = state.volume();
    let status = match (state.wait_param(q.wait), &seen) {
        (Some(wait), Some(seen)) => {
            let _slot = state.waiter()?;
            let next = volume.next_status(|s| matches(seen, &etag(s)));
            let waited = state
                .until_shutdown(async { Ok::<_, ApiError>(tokio::time::timeout(wait, next).await) })
                .await?;
            match waited {
                Ok(status) => status?,
                Err(_elapsed) => volume.status().await?,
            }
        }
        _ => volume.status().await?,
    };
    let tag = etag(&status);
    let mut response = if seen.as_deref().is_some_and(|s| matches(s, &tag)) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        axum::Json(status).into_response()
    };
    if let Ok(v) = HeaderValue::from_str(&tag) {
        response.headers_mut().insert(header::ETAG, v);
    }
    Ok(response)
}

/// The strong ETag of a status: a hash of its JSON. Equal states have equal tags (within
/// one build: a new agent may tag the same state differently, which costs one refresh).
fn etag(status: &Status) -> String {
    let mut hasher = DefaultHasher::new();
    hasher.write(&serde_json::to_vec(status).unwrap_or_default());
    format!("\"{:016x}\"", hasher.finish())
}

/// True if an `If-None-Match` value names `tag` (RFC 9110: a list, weak tags compare weakly,
/// `*` matches any).
fn matches(if_none_match: &str, tag: &str) -> bool {
    if_none_match
        .split(',')
        .map(|t| t.trim())
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_lists_and_weak_tags_match() {
        let tag = "\"00ff\"";
        for yes in ["\"00ff\"", "W/\"00ff\"", "\"a\", \"00ff\"", "*"] {
            assert!(matches(yes, tag), "{yes}");
        }
        for no in ["\"00fe\"", "00ff", "", "\"00ff"] {
            assert!(!matches(no, tag), "{no}");
        }
    }
}
