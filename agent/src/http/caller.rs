//! Who is calling. A client names itself in the `podsignal-caller` header (its identity:
//! pid, hostname, source, incarnation); what the agent writes on its behalf (holder records,
//! readiness, events, phase, stop requests) then names the caller, not the agent. Without the
//! header (curl) the agent writes as itself.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use podsignal_client::Volume;
use podsignal_proto::api::{CALLER_HEADER, parse_caller_header};

use super::{ApiError, AppState};

/// The shared directory, writing as the caller.
#[derive(Debug, Clone)]
pub struct Caller(pub Volume);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Caller, ApiError> {
        let Some(value) = parts.headers.get(CALLER_HEADER) else {
            return Ok(Caller(state.volume().clone()));
        };
        let identity = value
            .to_str()
            .ok()
            .and_then(parse_caller_header)
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "{CALLER_HEADER}: expected the caller's identity as JSON (pid, hostname, incarnation)"
                ))
            })?;
        Ok(Caller(state.volume().as_caller(identity)))
    }
}
