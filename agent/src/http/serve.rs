//! The accept loop: HTTP/1.1 connections with every resource bounded, so hostile or broken
//! clients cannot lock good ones out.
//!
//! - **A connection cap** below the process's descriptor limit ([`Budget`]): at the cap the
//!   loop stops accepting (new connections wait in the kernel's backlog) instead of failing
//!   `accept` with `EMFILE` and leaving no descriptor for the volume or a good client.
//! - **A header-read timeout** (`--header-timeout`): a client must send a whole request head
//!   within it, and a kept-alive connection must start its next request within it, or the
//!   connection is closed. Slowloris clients and idle connections therefore hold a slot for
//!   seconds, not forever, and slots keep freeing up for good clients.
//! - **Bounded buffers**: request heads over [`MAX_HEAD_BYTES`] are refused (431) and a
//!   connection's read buffer never grows past it; bodies are capped by `--max-body`.
//!
//! On shutdown the loop stops accepting, in-flight requests get their answer (long-polls and
//! streams end on the shutdown token), and kept-alive connections are closed.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{AppState, Listener};

/// The largest request head (request line and headers) accepted.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// The most headers a request may have.
const MAX_HEADERS: usize = 100;
/// Descriptors kept out of the connection budget: the volume's directories and lock files,
/// inotify, flock threads, logs, a margin.
const RESERVED_FDS: u64 = 64;

/// How many connections and waiters the descriptor limit leaves room for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// The most connections open at once.
    pub connections: usize,
    /// The default `--max-waiters`: a hold uses a connection and a lock file, so waiters get a
    /// quarter of the budget (at most 1024) and connections three quarters.
    pub waiters: usize,
}

impl Budget {
    /// The budget for a soft `RLIMIT_NOFILE` of `limit`.
    pub fn for_fd_limit(limit: u64) -> Budget {
        let budget = limit.saturating_sub(RESERVED_FDS).max(16);
        let to_usize = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        Budget {
            connections: to_usize(budget / 4 * 3),
            waiters: to_usize((budget / 4).min(1024)),
        }
    }

    /// The budget for this process's soft `RLIMIT_NOFILE`.
    pub fn of_this_process() -> Budget {
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .unwrap_or(1024);
        Budget::for_fd_limit(limit)
    }
}

/// Serves `app` on `listener` until `shutdown` is cancelled; then stops accepting and waits
/// for open connections to finish.
pub async fn serve(
    listener: Listener,
    app: Router,
    state: AppState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let config = state.config().clone();
    let slots = Arc::new(Semaphore::new(config.max_connections));
    let tracker = TaskTracker::new();
    let mut full_logged = false;
    loop {
        if slots.available_permits() == 0 && !full_logged {
            tracing::warn!(
                "{} connections open (--max-connections): new ones wait until one closes",
                config.max_connections
            );
        }
        full_logged = slots.available_permits() == 0;
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = shutdown.cancelled() => break,
        };
        let accepted = tokio::select! {
            a = accept(&listener) => a,
            () = shutdown.cancelled() => break,
        };
        let io = match accepted {
            Ok(io) => io,
            Err(e) => {
                // EMFILE and friends: the budget leaves descriptors, but other processes
                // share limits (ENFILE) and kernels run out of memory; back off, never spin.
                tracing::warn!("accept: {e}; retrying in 100 ms");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        state.metrics().connection_opened();
        let service = TowerToHyperService::new(app.clone());
        let shutdown = shutdown.clone();
        let state = state.clone();
        let header_timeout = config.header_timeout;
        tracker.spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .max_buf_size(MAX_HEAD_BYTES)
                .max_headers(MAX_HEADERS);
            let conn = builder.serve_connection(io, service);
            tokio::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                () = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!("connection ended: {e}");
            }
            state.metrics().connection_closed();
            drop(permit);
            crate::memory::connection_closed();
        });
    }
    tracker.close();
    tracker.wait().await;
    Ok(())
}

/// One accepted connection, TCP or unix.
enum Io {
    Tcp(TokioIo<tokio::net::TcpStream>),
    Unix(TokioIo<tokio::net::UnixStream>),
}

async fn accept(listener: &Listener) -> std::io::Result<Io> {
    match listener {
        Listener::Tcp(l) => {
            let (s, _) = l.accept().await?;
            let _ = s.set_nodelay(true);
            Ok(Io::Tcp(TokioIo::new(s)))
        }
        Listener::Unix(l) => Ok(Io::Unix(TokioIo::new(l.accept().await?.0))),
    }
}

impl hyper::rt::Read for Io {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Tcp(s) => hyper::rt::Read::poll_read(std::pin::Pin::new(s), cx, buf),
            Io::Unix(s) => hyper::rt::Read::poll_read(std::pin::Pin::new(s), cx, buf),
        }
    }
}

impl hyper::rt::Write for Io {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Io::Tcp(s) => hyper::rt::Write::poll_write(std::pin::Pin::new(s), cx, buf),
            Io::Unix(s) => hyper::rt::Write::poll_write(std::pin::Pin::new(s), cx, buf),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Tcp(s) => hyper::rt::Write::poll_flush(std::pin::Pin::new(s), cx),
            Io::Unix(s) => hyper::rt::Write::poll_flush(std::pin::Pin::new(s), cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Tcp(s) => hyper::rt::Write::poll_shutdown(std::pin::Pin::new(s), cx),
            Io::Unix(s) => hyper::rt::Write::poll_shutdown(std::pin::Pin::new(s), cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_leaves_room_for_the_volume_and_fits_the_limit() {
        let b = Budget::for_fd_limit(1024);
        assert_eq!(
            b,
            Budget {
                connections: 720,
                waiters: 240
            }
        );
        // Every connection a hold, every hold a lock file: still under the limit.
        assert!((b.connections + b.waiters) as u64 <= 1024 - RESERVED_FDS);
        let big = Budget::for_fd_limit(1 << 20);
        assert_eq!(big.waiters, 1024, "waiters are capped");
        let tiny = Budget::for_fd_limit(10);
        assert!(tiny.connections >= 1 && tiny.waiters >= 1);
    }
}
