//! TCP sockets of this network namespace (in a Pod, every container's): who listens on a
//! port, asked of the kernel over netlink ([`super::sock_diag`]) or, where netlink cannot
//! answer, read from `/proc/net/tcp{,6}` ([`super::proc_net`]); how many connections are
//! established on a port (for `--drain-ports`); and connecting, for remote `tcp:` targets
//! and HTTP. Looking a listener up opens no connection, so nothing shows in the server's logs.

use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::TcpStream;

use super::{proc_net, sock_diag};

/// `TCP_ESTABLISHED` in the kernel's `tcp_states.h`.
pub const TCP_ESTABLISHED: u8 = 1;
/// `TCP_LISTEN` in the kernel's `tcp_states.h`.
pub const TCP_LISTEN: u8 = 10;

/// A TCP socket as the kernel lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSocket {
    /// Its local address and port.
    pub local: SocketAddr,
    /// Its state (`TCP_LISTEN`, `TCP_ESTABLISHED`, ...).
    pub state: u8,
}

/// True when listeners can be looked up without connecting: netlink answers, or
/// `/proc/net/tcp` can be read (else local ports are probed by connecting).
pub fn listeners_visible() -> bool {
    static VISIBLE: OnceLock<bool> = OnceLock::new();
    *VISIBLE.get_or_init(|| sock_diag::listeners_on(0).is_ok() || proc_net::readable())
}

/// True if some socket listens on `port` on a loopback or wildcard address.
pub fn is_listening(port: u16) -> bool {
    listeners_on(port).iter().any(|s| {
        s.state == TCP_LISTEN
            && s.local.port() == port
            && podsignal_proto::is_loopback_or_wildcard(s.local.ip())
    })
}

/// The sockets listening on `port`, from netlink; from `/proc/net/tcp{,6}` if it fails.
fn listeners_on(port: u16) -> Vec<TcpSocket> {
    sockets_on(port, TCP_LISTEN)
}

/// The sockets in `state` on local `port` from netlink (which filters by both); where it
/// cannot answer, every socket in `/proc/net/tcp{,6}` (callers check port and state).
fn sockets_on(port: u16, state: u8) -> Vec<TcpSocket> {
    static FELL_BACK: AtomicBool = AtomicBool::new(false);
    match sock_diag::sockets_on(port, state) {
        Ok(found) => found,
        Err(e) => {
            if !FELL_BACK.swap(true, Ordering::Relaxed) {
                tracing::debug!("netlink sock_diag: {e}; reading /proc/net/tcp{{,6}} instead");
            }
            proc_net::sockets().collect()
        }
    }
}

/// How many connections are established with one of `ports` as their local port.
pub fn established_on(ports: &[u16]) -> usize {
    ports
        .iter()
        .map(|&port| {
            sockets_on(port, TCP_ESTABLISHED)
                .iter()
                .filter(|s| s.state == TCP_ESTABLISHED && s.local.port() == port)
                .count()
        })
        .sum()
}

/// Connects to `host:port`. IP addresses and loopback names (`localhost`, ...) need no
/// resolver ([`podsignal_proto::loopback_addresses`]: a static binary in a `FROM scratch`
/// image has none that works); other names go through the system's. Each address is tried
/// in turn; `Err` says why in a few words, naming the host when it cannot be resolved.
pub async fn connect(host: &str, port: u16) -> Result<TcpStream, String> {
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => match podsignal_proto::loopback_addresses(host) {
            Some(ips) => ips
                .into_iter()
                .map(|ip| SocketAddr::new(ip, port))
                .collect(),
            None => tokio::net::lookup_host((host, port))
                .await
                .map_err(|e| cannot_resolve(host, &e))?
                .collect(),
        },
    };
    let mut first_error = None;
    for addr in &addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => return Ok(s),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(match first_error {
        Some(e) => super::io_why(&e),
        None => format!("{host} resolves to no address"),
    })
}

fn cannot_resolve(host: &str, e: &std::io::Error) -> String {
    let why = e.to_string();
    let why = why
        .strip_prefix("failed to lookup address information: ")
        .unwrap_or(&why);
    // A static glibc build loads its NSS modules at run time: in a FROM scratch image they
    // are missing and every name fails. Say so, since the error alone does not.
    let hint = if cfg!(target_feature = "crt-static") {
        " (this static podsignal resolves names other than localhost through the image's NSS \
         libraries and /etc/nsswitch.conf: without them, use an IP address)"
    } else {
        ""
    };
    format!("cannot resolve {host}: {why}{hint}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_real_listeners_of_both_families_and_only_while_they_listen() {
        for loopback in ["127.0.0.1:0", "[::1]:0"] {
            let l = std::net::TcpListener::bind(loopback).unwrap();
            let port = l.local_addr().unwrap().port();
            assert!(is_listening(port), "{loopback}");
            drop(l);
            assert!(!is_listening(port), "{loopback}");
        }
    }

    /// Counted while `l` listens: once it is closed, another test of this process may bind
    /// its port (with `SO_REUSEADDR`, beside the accepted socket) and add connections to it.
    #[test]
    fn a_connection_is_not_a_listener() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (accepted, _) = l.accept().unwrap();
        assert!(!is_listening(conn.local_addr().unwrap().port()));
        assert_eq!(established_on(&[port]), 1);
        drop((conn, accepted));
        assert_eq!(established_on(&[port]), 0);
        drop(l);
        assert!(!is_listening(port));
    }
}
