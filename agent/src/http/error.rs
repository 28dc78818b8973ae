//! [`ApiError`]: every error answer, as a status and an [`ErrorBody`]; and the extractors
//! that route bad JSON and bad query strings through it, so no error is ever plain text.

use axum::Json;
use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use podsignal_client::Error as ClientError;
use podsignal_proto::Name;
use podsignal_proto::api::{ErrorBody, ErrorCode};
use serde::de::DeserializeOwned;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The JSON body (boxed: it is large, and results carrying it are everywhere).
    pub body: Box<ErrorBody>,
}

impl ApiError {
    /// An error with a status, a code and a message.
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: Box::new(ErrorBody::new(code, message)),
        }
    }

    /// 400 `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::BadRequest, message)
    }

    /// 503 `shutting_down`.
    pub fn shutting_down() -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ShuttingDown,
            "the agent is shutting down",
        )
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message)
    }

    /// 409 `conflict`.
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, ErrorCode::Conflict, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(&self.body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        if self.status.is_server_error() && self.body.error != ErrorCode::ShuttingDown {
            tracing::warn!("{} {}", self.status.as_u16(), self.body.message);
        }
        response
    }
}

impl From<ClientError> for ApiError {
    fn from(e: ClientError) -> ApiError {
        let message = podsignal_client::error_chain(&e);
        let mut err = match &e {
            ClientError::Name(_) => ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::BadName, ""),
            ClientError::Invalid(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::BadRequest, "")
            }
            ClientError::Timeout { after, pending } => {
                let mut err = ApiError::new(StatusCode::REQUEST_TIMEOUT, ErrorCode::Timeout, "");
                err.body.after_ms = Some(after.as_millis() as u64);
                err.body.pending = pending.clone();
                err
            }
            ClientError::LockBusy { name, holder } => {
                let mut err = ApiError::new(StatusCode::CONFLICT, ErrorCode::LockBusy, "");
                err.body.name = Some(name.clone());
                err.body.holder = holder.clone();
                err
            }
            ClientError::PhaseBackwards { current, requested } => {
                let mut err = ApiError::new(StatusCode::CONFLICT, ErrorCode::PhaseBackwards, "");
                err.body.current = Some(*current);
                err.body.requested = Some(*requested);
                err
            }
            ClientError::EventsRotated { wanted, available } => {
                let mut err = ApiError::new(StatusCode::GONE, ErrorCode::EventsRotated, "");
                err.body.wanted = Some(*wanted);
                err.body.available = Some(*available);
                err
            }
            ClientError::AgentShutdown { .. } => ApiError::shutting_down(),
            // A file in the shared directory is hostile or broken: not a server bug, and not
            // the caller's; the message names it.
            ClientError::Refused { .. }
            | ClientError::BadRecord { .. }
            | ClientError::OlderGeneration { .. }
            | ClientError::Fence { .. } => {
                ApiError::new(StatusCode::CONFLICT, ErrorCode::BadFile, "")
            }
            // The directory cannot be used (read-only, full, permission denied, I/O errors).
            ClientError::Io { .. } | ClientError::Denied { .. } => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Storage, "")
            }
            ClientError::TooLarge { .. } | ClientError::EventTooLarge(_) => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::PayloadTooLarge,
                "",
            ),
            ClientError::TooManyWaits { .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::TooManyWaiters,
                "",
            ),
            ClientError::Agent { .. } => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal, "")
            }
        };
        err.body.message = message;
        err
    }
}

/// Parses a name from a path segment or parameter; 400 `bad_name` naming it if invalid.
pub fn parse_name(what: &str, s: &str) -> Result<Name, ApiError> {
    Name::new(s).map_err(|e| {
        let mut err = ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadName,
            format!("{what} {s:?}: {e}"),
        );
        err.body.name = None;
        err
    })
}

/// A JSON object body; a bad one answers 400 `bad_json` (415 without a JSON content type, 413
/// when over `--max-body`).
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<serde_json::Map<String, serde_json::Value>>::from_request(req, state).await {
            Ok(Json(object)) => object_into(object).map(ApiJson),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

/// Every body is a JSON object: serde alone would also take `[]` or `["x"]` for a struct.
fn object_into<T: DeserializeOwned>(
    object: serde_json::Map<String, serde_json::Value>,
) -> Result<T, ApiError> {
    serde_json::from_value(serde_json::Value::Object(object))
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::BadJson, e.to_string()))
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    let status = rejection.status();
    let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
        ErrorCode::PayloadTooLarge
    } else {
        ErrorCode::BadJson
    };
    let status = if status == StatusCode::UNPROCESSABLE_ENTITY {
        StatusCode::BAD_REQUEST
    } else {
        status
    };
    ApiError::new(status, code, rejection.body_text())
}

fn bytes_rejection(rejection: BytesRejection) -> ApiError {
    let status = rejection.status();
    let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
        ErrorCode::PayloadTooLarge
    } else {
        ErrorCode::BadRequest
    };
    ApiError::new(status, code, rejection.body_text())
}

/// An optional JSON object body: an empty body is `T::default()`.
#[derive(Debug)]
pub struct OptionalJson<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = bytes::Bytes::from_request(req, state)
            .await
            .map_err(bytes_rejection)?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::BadJson, e.to_string()))
            .and_then(object_into)
            .map(OptionalJson)
    }
}

/// A path parameter (a name); one that cannot be decoded (`%ff`, not UTF-8) answers 400
/// `bad_name` in JSON, like every other error.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(ApiPath(v)),
            Err(rejection) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::BadName,
                format!("the path: {}", rejection.body_text()),
            )),
        }
    }
}

/// A query string; a bad one answers 400 `bad_request` naming the parameter.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(rejection) => Err(query_rejection(rejection)),
        }
    }
}

fn query_rejection(rejection: QueryRejection) -> ApiError {
    ApiError::bad_request(rejection.body_text())
}

/// The fallback for unknown routes.
pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no route {}", uri.path()))
}

/// The fallback for a known route with another method.
pub async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MethodNotAllowed,
        format!("{method} is not allowed on {}", uri.path()),
    )
}
