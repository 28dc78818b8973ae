//! The event stream over Server-Sent Events (`GET /v1/events/stream`). Each SSE message
//! carries one event, its `id` is the event's `seq`; after a dropped connection the client
//! reconnects with `Last-Event-ID`, so the stream has no gap and no duplicate.

use std::time::Duration;

use bytes::{Buf, BytesMut};
use http::Method;
use http_body_util::BodyExt;
use podsignal_proto::Event;
use podsignal_proto::api::{ErrorBody, ErrorCode};
use tokio::sync::mpsc;

use super::AgentClient;
use super::request::{Call, PooledBody};
use crate::error::{Error, Result};
use crate::events::EventStream;

/// Reconnection gives up after this many failures in a row.
const MAX_RECONNECTS: u32 = 8;
/// The longest line accepted.
const MAX_LINE: usize = 256 * 1024;

pub(crate) async fn watch(client: AgentClient, since: Option<u64>) -> Result<EventStream> {
    let body = open(&client, since).await?;
    let (tx, rx) = mpsc::channel(256);
    let task = tokio::spawn(feed(client, since, body, tx));
    Ok(EventStream::from_channel(rx, task.abort_handle()))
}

async fn open(client: &AgentClient, after: Option<u64>) -> Result<PooledBody> {
    let mut call = Call::new(Method::GET, "/v1/events/stream".into(), Duration::ZERO);
    let last;
    if let Some(seq) = after {
        last = seq.to_string();
        call.headers.push(("last-event-id", &last));
    }
    call.headers.push(("accept", "text/event-stream"));
    Ok(client.send_on(call, false).await?.into_body())
}

/// One SSE message being assembled.
#[derive(Default)]
struct Message {
    id: Option<u64>,
    event: String,
    data: String,
}

async fn feed(
    client: AgentClient,
    mut last: Option<u64>,
    mut body: PooledBody,
    tx: mpsc::Sender<Result<Event>>,
) {
    let mut failures = 0u32;
    loop {
        match read(&mut body, &mut last, &tx).await {
            Flow::ReceiverGone => return,
            Flow::Ended(why) => tracing::debug!("event stream from {} ended: {why}", client.url()),
        }
        // Reconnect after the last event seen.
        loop {
            let delay = Duration::from_millis(100 * 2u64.pow(failures.min(5)));
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = tx.closed() => return,
            }
            match open(&client, last).await {
                Ok(b) => {
                    body = b;
                    failures = 0;
                    break;
                }
                Err(e) => {
                    failures += 1;
                    if failures >= MAX_RECONNECTS {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                }
            }
        }
    }
}

enum Flow {
    ReceiverGone,
    Ended(String),
}

async fn read(
    body: &mut PooledBody,
    last: &mut Option<u64>,
    tx: &mpsc::Sender<Result<Event>>,
) -> Flow {
    let mut buf = BytesMut::new();
    let mut message = Message::default();
    loop {
        while let Some(i) = buf.iter().position(|b| *b == b'\n') {
            let raw = buf.split_to(i + 1);
            let line = String::from_utf8_lossy(&raw[..i]);
            let line = line.strip_suffix('\r').unwrap_or(&line);
            if !line.is_empty() {
                field(&mut message, line);
                continue;
            }
            let done = std::mem::take(&mut message);
            if let Some(id) = done.id {
                *last = Some(id);
            }
            let item = match done.event.as_str() {
                "" | "message" if !done.data.is_empty() => {
                    match serde_json::from_str::<Event>(&done.data) {
                        Ok(e) => Ok(e),
                        Err(e) => {
                            tracing::warn!("skipping a bad event on the stream: {e}");
                            continue;
                        }
                    }
                }
                "error" => match serde_json::from_str::<ErrorBody>(&done.data) {
                    Ok(ErrorBody {
                        error: ErrorCode::EventsRotated,
                        wanted: Some(wanted),
                        available: Some(available),
                        ..
                    }) => Err(Error::EventsRotated { wanted, available }),
                    Ok(b) => return Flow::Ended(b.message),
                    Err(e) => return Flow::Ended(e.to_string()),
                },
                "shutdown" => return Flow::Ended("the agent is shutting down".into()),
                _ => continue,
            };
            if tx.send(item).await.is_err() {
                return Flow::ReceiverGone;
            }
        }
        if buf.len() > MAX_LINE {
            return Flow::Ended("a line on the event stream is too long".into());
        }
        let frame = tokio::select! {
            f = body.frame() => f,
            _ = tx.closed() => return Flow::ReceiverGone,
        };
        match frame {
            None => return Flow::Ended("end of stream".into()),
            Some(Err(e)) => return Flow::Ended(e.to_string()),
            Some(Ok(frame)) => {
                if let Ok(mut data) = frame.into_data() {
                    while data.has_remaining() {
                        let chunk = data.chunk();
                        buf.extend_from_slice(chunk);
                        let n = chunk.len();
                        data.advance(n);
                    }
                }
            }
        }
    }
}

fn field(message: &mut Message, line: &str) {
    if line.starts_with(':') {
        return; // a comment (keep-alive)
    }
    let (name, value) = line.split_once(':').unwrap_or((line, ""));
    let value = value.strip_prefix(' ').unwrap_or(value);
    match name {
        "id" => message.id = value.parse().ok(),
        "event" => message.event = value.to_owned(),
        "data" => {
            if !message.data.is_empty() {
                message.data.push('\n');
            }
            message.data.push_str(value);
        }
        _ => {}
    }
}
