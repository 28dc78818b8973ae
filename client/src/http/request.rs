//! Building requests to the agent, sending them, and turning its answers into typed errors.

use std::time::Duration;

use bytes::Bytes;
use std::os::fd::OwnedFd;

use http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use podsignal_proto::api::{CALLER_HEADER, ErrorBody, ErrorCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::hold::{self, AgentHold};
use std::sync::Arc;

use super::conn;
use super::{AgentClient, Inner, MAX_RESPONSE_BYTES, POLL_CHUNK, RESPONSE_SLACK};
use crate::coordinator::Wait;
use crate::error::{Error, Result};

/// A request to the agent, before it is sent.
pub(super) struct Call<'a> {
    pub(super) method: Method,
    pub(super) path: String,
    pub(super) body: Option<Vec<u8>>,
    pub(super) headers: Vec<(&'static str, &'a str)>,
    /// How long to wait for the response headers (a long-poll's duration plus slack).
    pub(super) patience: Duration,
}

impl AgentClient {
    /// Repeats a long-poll `GET` until it succeeds, fails otherwise, or `timeout` passes.
    pub(super) async fn long_poll<T: DeserializeOwned>(
        &self,
        timeout: Option<Duration>,
        path: impl Fn(String) -> String,
    ) -> Result<T> {
        self.long_poll_with(Method::GET, timeout, path).await
    }

    /// Repeats a long-poll until it succeeds, fails otherwise, or `timeout` passes. `path`
    /// gets the `wait` value for each poll.
    pub(super) async fn long_poll_with<T: DeserializeOwned>(
        &self,
        method: Method,
        timeout: Option<Duration>,
        path: impl Fn(String) -> String,
    ) -> Result<T> {
        let started = tokio::time::Instant::now();
        loop {
            let left = timeout.map(|t| t.saturating_sub(started.elapsed()));
            let chunk = left.map_or(POLL_CHUNK, |l| l.min(POLL_CHUNK));
            let call = Call::new(
                method.clone(),
                path(format!("{}ms", chunk.as_millis())),
                chunk,
            );
            match self.send_json(call).await {
                Err(Error::Timeout { pending, .. })
                    if timeout.is_none_or(|t| started.elapsed() < t) =>
                {
                    tracing::debug!(
                        "long-poll ended before the deadline ({}); again",
                        pending.join("; ")
                    );
                }
                Err(Error::Timeout { pending, .. }) => {
                    return Err(Error::Timeout {
                        after: started.elapsed(),
                        pending,
                    });
                }
                other => return other,
            }
        }
    }

    /// A hold request, on a connection of its own: the hold lasts as long as the connection.
    pub(super) async fn hold<B: Serialize>(
        &self,
        path: String,
        body: Option<&B>,
        wait: Wait,
    ) -> Result<AgentHold> {
        let started = tokio::time::Instant::now();
        let timeout = match wait {
            Wait::TryOnce => None,
            Wait::Timeout(t) => Some(Some(t)),
            Wait::Forever => Some(None),
        };
        loop {
            let mut path = path.clone();
            let mut patience = Duration::ZERO;
            if let Some(timeout) = timeout {
                let left = timeout.map(|t| t.saturating_sub(started.elapsed()));
                let chunk = left.map_or(POLL_CHUNK, |l| l.min(POLL_CHUNK));
                path.push_str(&format!("?wait={}ms", chunk.as_millis()));
                patience = chunk;
            }
            let mut call = Call::new(Method::POST, path, patience);
            call.body = body.map(serde_json::to_vec).transpose().map_err(|e| {
                Error::Invalid(format!("cannot encode the request to {}: {e}", self.url()))
            })?;
            match self.send_hold(call).await {
                Ok((response, fd)) => return hold::start(self.clone(), response, fd).await,
                Err(Error::Timeout { pending, .. }) => match timeout {
                    Some(t) if t.is_none_or(|t| started.elapsed() < t) => continue,
                    _ => {
                        return Err(Error::Timeout {
                            after: started.elapsed(),
                            pending,
                        });
                    }
                },
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends a hold request on a fresh connection; returns the response and the socket.
    async fn send_hold(&self, call: Call<'_>) -> Result<(http::Response<PooledBody>, OwnedFd)> {
        let (sender, fd) = self.inner.pool.connect_with_fd(self.url()).await?;
        let response = self.send_with(sender, false, false, call).await?;
        Ok((response, fd))
    }

    pub(super) async fn json<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: String,
        body: Option<&B>,
    ) -> Result<T> {
        let mut call = Call::new(method, path, Duration::ZERO);
        call.body = body.map(serde_json::to_vec).transpose().map_err(|e| {
            Error::Invalid(format!("cannot encode the request to {}: {e}", self.url()))
        })?;
        self.send_json(call).await
    }

    pub(super) async fn send_json<T: DeserializeOwned>(&self, call: Call<'_>) -> Result<T> {
        let path = call.path.clone();
        let bytes = self.send(call).await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| self.error(None, &path, format!("bad response: {e}")))
    }

    /// Sends a call on a pooled connection and reads the whole response body.
    pub(super) async fn send(&self, call: Call<'_>) -> Result<Bytes> {
        Ok(self.send_with_headers(call).await?.1)
    }

    /// [`Self::send`], with the response's headers.
    pub(super) async fn send_with_headers(&self, call: Call<'_>) -> Result<(HeaderMap, Bytes)> {
        let path = call.path.clone();
        let response = self.send_on(call, true).await?;
        let (parts, body) = response.into_parts();
        let bytes = Limited::new(body, MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|e| self.error(None, &path, format!("reading the response: {e}")))?
            .to_bytes();
        Ok((parts.headers, bytes))
    }

    /// Sends a call and returns the response if it is a success; an error response becomes
    /// the matching [`Error`]. With `pooled`, reuses an idle connection and returns it to
    /// the pool once the response body has been read.
    pub(super) async fn send_on(
        &self,
        call: Call<'_>,
        pooled: bool,
    ) -> Result<http::Response<PooledBody>> {
        let pool = &self.inner.pool;
        let reused = if pooled { pool.take_idle().await } else { None };
        let was_reused = reused.is_some();
        let sender = match reused {
            Some(s) => s,
            None => pool.connect(self.url()).await?,
        };
        self.send_with(sender, was_reused, pooled, call).await
    }

    /// Sends a call on `sender`; with `pooled`, the connection goes back to the pool once the
    /// response body has been read to the end.
    async fn send_with(
        &self,
        mut sender: conn::Sender,
        was_reused: bool,
        pooled: bool,
        call: Call<'_>,
    ) -> Result<http::Response<PooledBody>> {
        let pool = &self.inner.pool;
        let request = self.request(&call)?;
        let patience = call.patience + RESPONSE_SLACK;
        let sent = tokio::time::timeout(patience, sender.send_request(request)).await;
        let response = match sent {
            Err(_) => {
                return Err(self.error(None, &call.path, "no response in time".to_owned()));
            }
            Ok(Err(e)) if was_reused && (e.is_canceled() || call.method != Method::POST) => {
                // The idle connection was closed under us: once more on a fresh one.
                tracing::debug!(
                    "pooled connection to {} failed ({e}); reconnecting",
                    self.url()
                );
                let mut fresh = pool.connect(self.url()).await?;
                let request = self.request(&call)?;
                let response = tokio::time::timeout(patience, fresh.send_request(request))
                    .await
                    .map_err(|_| self.error(None, &call.path, "no response in time".to_owned()))?
                    .map_err(|e| self.error(None, &call.path, e.to_string()))?;
                sender = fresh;
                response
            }
            Ok(Err(e)) => return Err(self.error(None, &call.path, e.to_string())),
            Ok(Ok(r)) => r,
        };
        let status = response.status();
        let keep = pooled.then_some(sender);
        let response = response.map(|body| PooledBody {
            body,
            sender: keep,
            pool: self.inner.clone(),
        });
        if status.is_success() {
            return Ok(response);
        }
        let bytes = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        Err(self.error_from(status, &call.path, &bytes))
    }

    pub(super) fn request(&self, call: &Call<'_>) -> Result<Request<Full<Bytes>>> {
        let mut builder = Request::builder()
            .method(call.method.clone())
            .uri(&call.path)
            .header(header::HOST, self.inner.pool.endpoint().host())
            .header(header::ACCEPT, "application/json");
        if let Some(token) = &self.inner.token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if let Some(caller) = &self.inner.caller {
            builder = builder.header(CALLER_HEADER, caller.as_str());
        }
        for (k, v) in &call.headers {
            builder = builder.header(*k, *v);
        }
        let body = match &call.body {
            Some(b) => {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
                Full::new(Bytes::from(b.clone()))
            }
            None => Full::new(Bytes::new()),
        };
        builder
            .body(body)
            .map_err(|e| self.error(None, &call.path, format!("cannot build the request: {e}")))
    }

    pub(super) fn error(&self, status: Option<StatusCode>, path: &str, message: String) -> Error {
        Error::Agent {
            url: format!("{}{}", self.url(), path),
            status: status.map(|s| s.as_u16()),
            code: None,
            message,
        }
    }

    /// Maps an error response to the typed error it stands for.
    pub(super) fn error_from(&self, status: StatusCode, path: &str, bytes: &[u8]) -> Error {
        let Ok(body) = serde_json::from_slice::<ErrorBody>(bytes) else {
            let text = String::from_utf8_lossy(bytes);
            let text = text.trim();
            let message = if text.is_empty() {
                status.to_string()
            } else {
                format!("{status}: {}", text.chars().take(200).collect::<String>())
            };
            return self.error(Some(status), path, message);
        };
        let name = body.name.clone();
        match body.error {
            ErrorCode::Timeout => Error::Timeout {
                after: Duration::from_millis(body.after_ms.unwrap_or(0)),
                pending: if body.pending.is_empty() {
                    vec![body.message]
                } else {
                    body.pending
                },
            },
            ErrorCode::LockBusy if name.is_some() => Error::LockBusy {
                name: name.unwrap_or_else(|| unreachable!("checked above")),
                holder: body.holder,
            },
            ErrorCode::PhaseBackwards => match (body.current, body.requested) {
                (Some(current), Some(requested)) => Error::PhaseBackwards { current, requested },
                _ => self.coded(status, path, body),
            },
            ErrorCode::EventsRotated => match (body.wanted, body.available) {
                (Some(wanted), Some(available)) => Error::EventsRotated { wanted, available },
                _ => self.coded(status, path, body),
            },
            ErrorCode::ShuttingDown => Error::AgentShutdown {
                url: self.url().to_owned(),
            },
            _ => self.coded(status, path, body),
        }
    }

    pub(super) fn coded(&self, status: StatusCode, path: &str, body: ErrorBody) -> Error {
        let code = serde_json::to_value(body.error)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned));
        Error::Agent {
            url: format!("{}{}", self.url(), path),
            status: Some(status.as_u16()),
            code,
            message: body.message,
        }
    }
}

impl<'a> Call<'a> {
    pub(super) fn new(method: Method, path: String, patience: Duration) -> Call<'a> {
        Call {
            method,
            path,
            body: None,
            headers: Vec::new(),
            patience,
        }
    }
}

/// A response body that hands its connection back to the pool once read to the end.
pub(crate) struct PooledBody {
    body: Incoming,
    sender: Option<conn::Sender>,
    pool: Arc<Inner>,
}

impl std::fmt::Debug for PooledBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledBody").finish_non_exhaustive()
    }
}

impl hyper::body::Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, hyper::Error>>> {
        let polled = std::pin::Pin::new(&mut self.body).poll_frame(cx);
        if let std::task::Poll::Ready(None) = polled
            && let Some(sender) = self.sender.take()
        {
            self.pool.pool.put_back(sender);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}
