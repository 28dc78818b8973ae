//! The HTTP API's wire types: request bodies, responses and the error body, shared by the
//! agent (which serves them) and the client's HTTP transport (which sends and decodes them),
//! so the two agree by construction. `docs/http-api.md` describes the routes.

use serde::{Deserialize, Serialize};

use crate::lock::FencingToken;
use crate::name::Name;
use crate::phase::{Phase, PhaseRecord};
use crate::record::Identity;
use crate::tombstone::TombstoneRecord;

/// The header carrying an idempotency key on lock and leader acquisition.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

/// The header in which a client names itself (its [`Identity`] as JSON): the agent records
/// the caller, not itself, as the writer of what it writes on the caller's behalf (holder
/// records, readiness, events, tombstones). Without it the agent writes as itself.
pub const CALLER_HEADER: &str = "podsignal-caller";

/// The header on a non-strict `GET /v1/events` whose answer skips events that were rotated
/// away: `FIRST-LAST`, the sequence numbers lost.
pub const EVENTS_LOST_HEADER: &str = "podsignal-events-lost";

/// The value of [`CALLER_HEADER`] for `identity`; `None` if it cannot be sent as a header
/// (a hostname or source with bytes outside visible ASCII).
pub fn caller_header(identity: &Identity) -> Option<String> {
    let json = serde_json::to_string(identity).ok()?;
    json.bytes()
        .all(|b| (0x20..0x7f).contains(&b))
        .then_some(json)
}

/// Parses a [`CALLER_HEADER`] value.
pub fn parse_caller_header(value: &str) -> Option<Identity> {
    serde_json::from_str(value).ok()
}

/// What went wrong, as a stable machine-readable code (the `error` field of [`ErrorBody`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// A malformed query parameter or request (400).
    BadRequest,
    /// A name in the path, query or body is not a valid name (400).
    BadName,
    /// The body is not the JSON expected (400), or not JSON at all (415).
    BadJson,
    /// No token, or the wrong one (401).
    Unauthorized,
    /// The request carries an `Origin` header: browsers are refused (403).
    Forbidden,
    /// No such route, or no such lease (404).
    NotFound,
    /// The route exists, the method does not (405).
    MethodNotAllowed,
    /// A `wait` ran out before the condition held (408).
    Timeout,
    /// The lock or leadership is held by someone else and the request did not wait (409).
    LockBusy,
    /// The request conflicts with one in progress, e.g. the same `Idempotency-Key` (409).
    Conflict,
    /// A file in the shared directory is not what the protocol allows: a symlink, a FIFO, over
    /// the size limit, or not a valid record (409). The message names it; repair or remove it.
    BadFile,
    /// Moving the phase back without `force` (409).
    PhaseBackwards,
    /// The events asked for were rotated away (410).
    EventsRotated,
    /// The request body is over the agent's `--max-body`, or the record it would write is over
    /// the 64 KiB record limit (413).
    PayloadTooLarge,
    /// The `Host` header is not loopback (421): a DNS-rebinding defence.
    BadHost,
    /// The agent's directory failed its self-test (503, from `/readyz`).
    NotReady,
    /// `--max-waiters` long-polls and acquisitions are already waiting (503).
    TooManyWaiters,
    /// `--max-streams` event streams are already open (503).
    TooManyStreams,
    /// The agent is shutting down (503).
    ShuttingDown,
    /// The shared directory cannot be written: read-only, full, or permission denied (503).
    Storage,
    /// Anything else (500).
    Internal,
    /// A code this version does not know.
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// True when what the caller sent is at fault (a name, a body, or a body or record over a
    /// size limit): sending it again cannot succeed. The CLI exits 2 (usage) on these, as it
    /// does when it finds the same input bad before sending it. (`bad_request` is not among
    /// them: the agent also answers it for failures that are not the caller's.)
    pub fn is_bad_input(self) -> bool {
        matches!(
            self,
            ErrorCode::BadName | ErrorCode::BadJson | ErrorCode::PayloadTooLarge
        )
    }
}

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ErrorBody {
    /// The error code.
    pub error: ErrorCode,
    /// One line for a human, naming the path, name or parameter involved.
    pub message: String,
    /// The lock, leader, readiness or event kind involved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Name>,
    /// `timeout`: what was still missing, one line per condition.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<String>,
    /// `timeout`: how long the agent waited, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_ms: Option<u64>,
    /// `lock_busy`: who holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
    /// `phase_backwards`: the current phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<Phase>,
    /// `phase_backwards`: the phase asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested: Option<Phase>,
    /// `events_rotated`: the first sequence number asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wanted: Option<u64>,
    /// `events_rotated`: the oldest sequence number still kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available: Option<u64>,
}

impl ErrorBody {
    /// An error body with only a code and a message.
    pub fn new(error: ErrorCode, message: impl Into<String>) -> ErrorBody {
        ErrorBody {
            error,
            message: message.into(),
            name: None,
            pending: Vec::new(),
            after_ms: None,
            holder: None,
            current: None,
            requested: None,
            wanted: None,
            available: None,
        }
    }
}

/// `PUT /v1/readiness/{name}`: a sticky readiness record, or with `hold`, a change of state of
/// a record this agent holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct SetReadiness {
    /// Ready (true) or unready (false).
    pub ready: bool,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The hold id from a readiness hold's grant: change the held record (it stays held)
    /// instead of writing a sticky one. 404 if the agent holds no such hold of this name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(regex(pattern = r"^[0-9a-f]{16}$")))]
    pub hold: Option<String>,
}

/// The optional body of `POST .../hold` and `POST /v1/shutdown`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Reason {
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `POST /v1/events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Publish {
    /// The event's kind.
    pub kind: Name,
    /// An optional JSON payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

/// `PUT /v1/phase`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct SetPhase {
    /// The new phase.
    pub phase: Phase,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Allow moving to an earlier phase.
    #[serde(default)]
    pub force: bool,
}

/// `GET /v1/phase`: the phase (`starting` if never set) and its record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PhaseView {
    /// The current phase.
    pub phase: Phase,
    /// The record, if a phase was ever set.
    pub record: Option<PhaseRecord>,
}

/// `GET /v1/exits/{name}`: the tombstone of the container running `run --name NAME`, if it
/// exited since its last start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ExitView {
    /// The container's name.
    pub name: Name,
    /// Its tombstone, or `null` if it has not exited.
    pub tombstone: Option<TombstoneRecord>,
}

/// A lock or leadership granted by the agent (or a held readiness record, without a token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Grant {
    /// The lock, campaign or readiness name.
    pub name: Name,
    /// The fencing token of this grant (locks and leaders).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<FencingToken>,
    /// The lease id to renew or release with (lease grants only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<String>,
    /// The lease's time to live in milliseconds; renew before it runs out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_ms: Option<u64>,
    /// Hold streams: how often the agent sends a heartbeat line, in milliseconds. A client
    /// that hears nothing for several periods may take the connection for dead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_ms: Option<u64>,
    /// Readiness holds: the hold id the record carries (for [`SetReadiness::hold`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<String>,
}

/// One line of a hold stream (`POST .../hold`): newline-delimited JSON, open while held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HoldMessage {
    /// The first line: what is now held.
    Held(Grant),
    /// Sent periodically so that either side notices a dead connection.
    Heartbeat,
    /// The last line: the agent released the hold (it is shutting down).
    Released {
        /// Why.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_snake_case_and_unknown_codes_decode() {
        let body = ErrorBody::new(ErrorCode::TooManyWaiters, "x");
        let json = serde_json::to_string(&body).unwrap();
        assert!(json.contains("\"too_many_waiters\""), "{json}");
        let back: ErrorBody =
            serde_json::from_str(r#"{"error":"from_the_future","message":"m"}"#).unwrap();
        assert_eq!(back.error, ErrorCode::Unknown);
    }

    #[test]
    fn the_caller_header_round_trips_and_refuses_what_is_not_a_header() {
        let id = Identity {
            pid: 7,
            hostname: "pod-1".into(),
            source: Some("app".into()),
            incarnation: "0123456789abcdef".into(),
        };
        let v = caller_header(&id).unwrap();
        assert_eq!(parse_caller_header(&v), Some(id.clone()));
        let odd = Identity {
            hostname: "pod\u{e9}".into(),
            ..id.clone()
        };
        assert_eq!(caller_header(&odd), None);
        let forged = v.replace("0123456789abcdef", "../../etc/passwd");
        assert_eq!(parse_caller_header(&forged), None);
    }

    #[test]
    fn hold_messages_are_tagged() {
        let m = HoldMessage::Released {
            reason: "bye".into(),
        };
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"type":"released","reason":"bye"}"#
        );
        let g: HoldMessage =
            serde_json::from_str(r#"{"type":"held","name":"db","token":3}"#).unwrap();
        assert!(matches!(
            g,
            HoldMessage::Held(Grant {
                token: Some(FencingToken(3)),
                ..
            })
        ));
    }
}
