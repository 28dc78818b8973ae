//! Connections to the agent: HTTP/1.1 over TCP or a unix socket, with a small pool of idle
//! connections so that consecutive calls reuse one.

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Mutex;

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;

use crate::error::{Error, Result};

/// Where the agent listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `http://HOST:PORT`: `authority` is `HOST:PORT`, sent as the `Host` header too.
    Tcp { authority: String },
    /// `unix:PATH`.
    Unix(PathBuf),
}

impl Endpoint {
    /// Parses `http://HOST[:PORT][/]` or `unix:PATH`.
    pub(crate) fn parse(url: &str) -> Result<Endpoint> {
        let bad = |why: &str| Error::Invalid(format!("agent URL {url:?}: {why}"));
        if let Some(path) = url.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(bad(
                    "unix: needs a socket path, e.g. unix:/run/podsignal/agent.sock",
                ));
            }
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| bad("expected http://HOST:PORT or unix:PATH (https is not served)"))?;
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
            return Err(bad("expected http://HOST:PORT with no path"));
        }
        let authority = match authority.rsplit_once(':') {
            Some((host, port)) if !port.contains(']') => {
                // Checked here, so that a bad port is bad input, not a failed connection.
                if host.is_empty() || !port.parse::<u16>().is_ok_and(|p| p > 0) {
                    return Err(bad("expected http://HOST:PORT, PORT 1-65535"));
                }
                authority.to_owned()
            }
            _ => format!("{authority}:80"),
        };
        Ok(Endpoint::Tcp { authority })
    }

    /// The `Host` header to send.
    pub(crate) fn host(&self) -> &str {
        match self {
            Endpoint::Tcp { authority } => authority,
            Endpoint::Unix(_) => "localhost",
        }
    }
}

/// A request sender on one connection.
pub(crate) type Sender = SendRequest<Full<Bytes>>;

/// Idle connections to one endpoint.
#[derive(Debug)]
pub(crate) struct Pool {
    endpoint: Endpoint,
    /// A std mutex: it is held only to push or pop, never across an await.
    idle: Mutex<Vec<Sender>>,
}

/// How many idle connections are kept.
const MAX_IDLE: usize = 8;

impl Pool {
    pub(crate) fn new(endpoint: Endpoint) -> Pool {
        Pool {
            endpoint,
            idle: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// An idle connection that is still open, if there is one.
    pub(crate) async fn take_idle(&self) -> Option<Sender> {
        loop {
            let mut sender = self.idle.lock().ok()?.pop()?;
            if sender.is_closed() {
                continue;
            }
            if sender.ready().await.is_ok() {
                return Some(sender);
            }
        }
    }

    /// Returns a connection whose last response was read completely.
    pub(crate) fn put_back(&self, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < MAX_IDLE
        {
            idle.push(sender);
        }
    }

    /// Opens a new connection.
    pub(crate) async fn connect(&self, url: &str) -> Result<Sender> {
        Ok(self.connect_with_fd(url).await?.0)
    }

    /// Opens a new connection, and returns a duplicate of its socket too: a hold is held
    /// while any copy of it stays open (a child that inherits it keeps the hold).
    pub(crate) async fn connect_with_fd(&self, url: &str) -> Result<(Sender, OwnedFd)> {
        let unreachable = |e: std::io::Error| Error::Agent {
            url: url.to_owned(),
            status: None,
            code: None,
            message: format!("cannot connect: {e}"),
        };
        let handshake_failed = |e: hyper::Error| Error::Agent {
            url: url.to_owned(),
            status: None,
            code: None,
            message: format!("HTTP handshake failed: {e}"),
        };
        match &self.endpoint {
            Endpoint::Tcp { authority } => {
                let stream = match loopback_socket_addrs(authority) {
                    // localhost without getaddrinfo: a static binary in a scratch image has
                    // no NSS modules, so even `localhost` would not resolve there.
                    Some(addrs) => tokio::net::TcpStream::connect(&addrs[..]).await,
                    None => tokio::net::TcpStream::connect(authority.as_str()).await,
                }
                .map_err(unreachable)?;
                let _ = stream.set_nodelay(true);
                let fd = stream.as_fd().try_clone_to_owned().map_err(unreachable)?;
                Ok((handshake(stream).await.map_err(handshake_failed)?, fd))
            }
            Endpoint::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(unreachable)?;
                let fd = stream.as_fd().try_clone_to_owned().map_err(unreachable)?;
                Ok((handshake(stream).await.map_err(handshake_failed)?, fd))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        assert_eq!(
            Endpoint::parse("http://127.0.0.1:7781/").unwrap(),
            Endpoint::Tcp {
                authority: "127.0.0.1:7781".into()
            }
        );
        assert_eq!(
            Endpoint::parse("http://localhost").unwrap().host(),
            "localhost:80"
        );
        assert_eq!(Endpoint::parse("http://[::1]:9").unwrap().host(), "[::1]:9");
        assert_eq!(
            Endpoint::parse("unix:/run/a.sock").unwrap(),
            Endpoint::Unix("/run/a.sock".into())
        );
        for bad in [
            "https://x:1",
            "x:1",
            "http://h:1/v1",
            "unix:",
            "http://",
            "http://h:99999",
            "http://h:0",
            "http://h:",
            "http://:80",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }
}

/// Starts HTTP/1.1 on a connected stream; the connection is driven by its own task.
async fn handshake<S>(stream: S) -> Result<Sender, hyper::Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("agent connection ended: {e}");
        }
    });
    Ok(sender)
}

/// The addresses of `HOST:PORT` when HOST is a loopback name (`localhost`), else `None`.
fn loopback_socket_addrs(authority: &str) -> Option<Vec<std::net::SocketAddr>> {
    let (host, port) = authority.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let addrs = podsignal_proto::condition::loopback_addresses(host)?;
    Some(
        addrs
            .into_iter()
            .map(|ip| std::net::SocketAddr::new(ip, port))
            .collect(),
    )
}

#[cfg(test)]
mod loopback_tests {
    use super::*;

    #[test]
    fn localhost_is_resolved_here_and_other_names_are_not() {
        let addrs = loopback_socket_addrs("localhost:7781").unwrap();
        assert_eq!(addrs[0], "127.0.0.1:7781".parse().unwrap());
        assert_eq!(addrs[1], "[::1]:7781".parse().unwrap());
        assert_eq!(loopback_socket_addrs("agent.example:7781"), None);
        assert_eq!(
            loopback_socket_addrs("127.0.0.1:7781"),
            None,
            "IP literals need no lookup"
        );
    }
}
