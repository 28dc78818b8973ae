//! [`AgentHold`]: a lock, leadership or held readiness record that the agent keeps for as
//! long as one HTTP response stays open. The response is a stream of JSON lines
//! ([`HoldMessage`]): `held` first, then heartbeats. Dropping the hold closes the connection,
//! and the agent releases at once; if the agent goes away, [`AgentHold::lost`] says so.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use http::Method;
use http_body_util::BodyExt;
use podsignal_proto::api::{Grant, HoldMessage, SetReadiness};
use podsignal_proto::{FencingToken, Name};
use tokio::sync::watch;

use super::AgentClient;
use super::request::PooledBody;
use crate::coordinator::{Hold, LockHold, ReadinessHold};
use crate::error::{Error, Result};
use crate::readiness::Readiness;

/// With no line from the agent for this many heartbeat periods, the connection is taken for
/// dead and the hold lost.
const SILENT_PERIODS: u32 = 3;
/// ... but never less than this (an agent that did not say its period sends every 5 s).
const MIN_SILENCE: Duration = Duration::from_secs(30);
/// The longest line accepted.
const MAX_LINE: usize = 64 * 1024;

/// Something the agent holds for this client while the hold lives: see the module docs.
#[derive(Debug)]
pub struct AgentHold {
    client: AgentClient,
    grant: Grant,
    lost: watch::Receiver<Option<String>>,
    task: tokio::task::AbortHandle,
    /// A copy of the connection's socket: the hold lasts while any copy is open.
    socket: OwnedFd,
}

impl AgentHold {
    /// The grant as the agent sent it.
    pub fn grant(&self) -> &Grant {
        &self.grant
    }
}

impl Hold for AgentHold {
    fn name(&self) -> &Name {
        &self.grant.name
    }

    fn descriptor(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }

    /// Resolves when the hold is lost without being dropped: the agent released it (it is
    /// shutting down) or the connection broke. Returns why.
    async fn lost(&self) -> String {
        let mut rx = self.lost.clone();
        match rx.wait_for(Option::is_some).await {
            Ok(why) => why.clone().unwrap_or_default(),
            Err(_) => "the connection to the agent ended".into(),
        }
    }
}

impl LockHold for AgentHold {
    fn token(&self) -> FencingToken {
        self.grant.token.unwrap_or(FencingToken(0))
    }
}

impl ReadinessHold for AgentHold {
    async fn set(&self, ready: bool, reason: Option<&str>) -> Result<()> {
        let name = &self.grant.name;
        let body = SetReadiness {
            ready,
            reason: reason.map(str::to_owned),
            hold: self.grant.hold.clone(),
        };
        let _: Readiness = self
            .client
            .json(Method::PUT, format!("/v1/readiness/{name}"), Some(&body))
            .await?;
        Ok(())
    }

    async fn retract(self, reason: &str) -> Result<()> {
        // Marked unready with the reason first (still held: only our own record changes),
        // then the connection closes and the agent ends the hold.
        let result = self.set(false, Some(reason)).await;
        drop(self);
        result
    }
}

impl Drop for AgentHold {
    fn drop(&mut self) {
        // Aborting the reader drops the response body, which closes the connection (with
        // the socket copy, closed after this): the agent sees it and releases.
        self.task.abort();
    }
}

/// Reads the first line of a hold response and starts watching the rest.
pub(crate) async fn start(
    client: AgentClient,
    response: http::Response<PooledBody>,
    socket: OwnedFd,
) -> Result<AgentHold> {
    let url = client.url().to_owned();
    let mut lines = Lines {
        body: response.into_body(),
        buf: BytesMut::new(),
    };
    let first = tokio::time::timeout(MIN_SILENCE, lines.next())
        .await
        .map_err(|_| agent_error(&url, "no answer on the hold stream".into()))?
        .map_err(|e| agent_error(&url, e))?;
    let grant = match first {
        Some(HoldMessage::Held(grant)) => grant,
        Some(HoldMessage::Released { .. }) => return Err(Error::AgentShutdown { url }),
        Some(HoldMessage::Heartbeat) | None => {
            return Err(agent_error(
                &url,
                "the hold stream did not start with `held`".into(),
            ));
        }
    };
    // The agent says how often it sends a heartbeat: silence for several periods means the
    // connection is dead.
    let silence = grant
        .heartbeat_ms
        .map(|ms| Duration::from_millis(ms).saturating_mul(SILENT_PERIODS))
        .map_or(MIN_SILENCE, |s| s.max(MIN_SILENCE));
    let (tx, rx) = watch::channel(None);
    let task = tokio::spawn(async move {
        let why = loop {
            match tokio::time::timeout(silence, lines.next()).await {
                Err(_) => break "the agent stopped sending heartbeats".to_owned(),
                Ok(Ok(Some(HoldMessage::Heartbeat | HoldMessage::Held(_)))) => continue,
                Ok(Ok(Some(HoldMessage::Released { reason }))) => {
                    break format!("the agent released it: {reason}");
                }
                Ok(Ok(None)) => break "the agent closed the connection".to_owned(),
                Ok(Err(e)) => break e,
            }
        };
        tracing::warn!("hold on {url} lost: {why}");
        let _ = tx.send(Some(why));
    });
    Ok(AgentHold {
        client,
        grant,
        lost: rx,
        task: task.abort_handle(),
        socket,
    })
}

fn agent_error(url: &str, message: String) -> Error {
    Error::Agent {
        url: url.to_owned(),
        status: None,
        code: None,
        message,
    }
}

/// JSON lines from a response body.
struct Lines {
    body: PooledBody,
    buf: BytesMut,
}

impl Lines {
    /// The next message; `Ok(None)` at the end of the body.
    async fn next(&mut self) -> Result<Option<HoldMessage>, String> {
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let line = self.buf.split_to(i + 1);
                let line = &line[..i];
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return serde_json::from_slice(line)
                    .map(Some)
                    .map_err(|e| format!("bad line on the hold stream: {e}"));
            }
            if self.buf.len() > MAX_LINE {
                return Err("a line on the hold stream is too long".into());
            }
            match self.body.frame().await {
                None => return Ok(None),
                Some(Err(e)) => return Err(e.to_string()),
                Some(Ok(frame)) => {
                    if let Ok(mut data) = frame.into_data() {
                        while data.has_remaining() {
                            let chunk = data.chunk();
                            self.buf.extend_from_slice(chunk);
                            let n = chunk.len();
                            data.advance(n);
                        }
                    }
                }
            }
        }
    }
}
