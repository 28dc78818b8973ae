//! Limits: how many waiters and event streams may be open, how long one long-poll may last,
//! and how long any request may take. Each answers with a clear JSON error when reached.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use podsignal_proto::api::ErrorCode;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::params::Dur;
use super::{ApiError, AppState, Config};

/// The semaphores behind `--max-waiters` and `--max-streams`.
#[derive(Debug)]
pub struct Limits {
    waiters: Arc<Semaphore>,
    streams: Arc<Semaphore>,
}

/// A slot taken from a limit; released when dropped.
#[derive(Debug)]
pub struct Slot {
    _permit: OwnedSemaphorePermit,
}

impl Limits {
    pub fn new(config: &Config) -> Limits {
        Limits {
            waiters: Arc::new(Semaphore::new(config.max_waiters)),
            streams: Arc::new(Semaphore::new(config.max_streams)),
        }
    }
}

impl AppState {
    /// A waiter slot (long-polls, waiting acquisitions, holds): 503 `too_many_waiters`
    /// when `--max-waiters` are taken.
    pub fn waiter(&self) -> Result<Slot, ApiError> {
        let limits = &self.inner.limits;
        limits
            .waiters
            .clone()
            .try_acquire_owned()
            .map(|p| Slot { _permit: p })
            .map_err(|_| {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::TooManyWaiters,
                    format!(
                        "{} requests are already waiting (--max-waiters); retry later",
                        self.config().max_waiters
                    ),
                )
            })
    }

    /// An event-stream slot: 503 `too_many_streams` when `--max-streams` are open.
    pub fn stream_slot(&self) -> Result<Slot, ApiError> {
        let limits = &self.inner.limits;
        limits
            .streams
            .clone()
            .try_acquire_owned()
            .map(|p| Slot { _permit: p })
            .map_err(|_| {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::TooManyStreams,
                    format!(
                        "{} event streams are already open (--max-streams); retry later",
                        self.config().max_streams
                    ),
                )
            })
    }

    /// How many waiter slots are taken (for `/metrics`).
    pub fn waiters_in_use(&self) -> usize {
        self.config().max_waiters - self.inner.limits.waiters.available_permits()
    }

    /// How many event streams are open (for `/metrics`).
    pub fn streams_in_use(&self) -> usize {
        self.config().max_streams - self.inner.limits.streams.available_permits()
    }

    /// The `wait` parameter, capped at `--max-wait`; `None` if absent (do not wait).
    pub fn wait_param(&self, wait: Option<Dur>) -> Option<Duration> {
        wait.map(|w| w.0.min(self.config().max_wait))
    }

    /// Runs `fut` unless the agent shuts down first, which answers 503 `shutting_down`.
    pub async fn until_shutdown<T, E: Into<ApiError>>(
        &self,
        fut: impl Future<Output = Result<T, E>>,
    ) -> Result<T, ApiError> {
        tokio::select! {
            r = fut => r.map_err(Into::into),
            _ = self.shutdown().cancelled() => Err(ApiError::shutting_down()),
        }
    }
}

/// The per-request timeout: any request that has no response after its longest possible
/// wait plus `--request-timeout` is answered 503. (Streams count until their headers.)
pub async fn within_time(config: &Config, answer: impl Future<Output = Response>) -> Response {
    let limit = config.max_wait + config.request_timeout;
    match tokio::time::timeout(limit, answer).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Internal,
            format!(
                "no answer within {} (--request-timeout)",
                podsignal_proto::format_duration(limit)
            ),
        )
        .into_response(),
    }
}
