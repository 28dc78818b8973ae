//! Sockets as `/proc/net/tcp` and `/proc/net/tcp6` list them: who listens on a port, and how
//! many connections are established on a port (for `--drain-ports`). Reading these files
//! opens no connection, so probing leaves no trace in the server's logs. The files list the
//! sockets of this network namespace: in a Pod, every container's.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use tokio::net::TcpStream;

const TABLES: [&str; 2] = ["/proc/net/tcp", "/proc/net/tcp6"];
const LISTEN: &str = "0A";
const ESTABLISHED: &str = "01";

/// True when `/proc/net/tcp` can be read (else local ports are probed by connecting).
pub fn proc_net_readable() -> bool {
    Path::new(TABLES[0]).exists()
}

/// True if some socket listens on `port` on a loopback or wildcard address.
pub fn is_listening(port: u16) -> bool {
    sockets().any(|s| s.state == LISTEN && s.port == port && (s.wildcard || s.loopback))
}

/// How many connections are established with `port` as their local port.
pub fn established_on(ports: &[u16]) -> usize {
    sockets()
        .filter(|s| s.state == ESTABLISHED && ports.contains(&s.port))
        .count()
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

struct Socket {
    port: u16,
    state: String,
    wildcard: bool,
    loopback: bool,
}

fn sockets() -> impl Iterator<Item = Socket> {
    TABLES
        .iter()
        .filter_map(|t| std::fs::read_to_string(t).ok())
        .flat_map(|text| {
            text.lines()
                .skip(1)
                .filter_map(parse_line)
                .collect::<Vec<_>>()
        })
}

/// `  0: 0100007F:1F90 00000000:0000 0A ...`: local address (hex, in the kernel's byte
/// order per 32-bit word), port (hex), remote address, state.
fn parse_line(line: &str) -> Option<Socket> {
    let mut fields = line.split_whitespace();
    let local = fields.nth(1)?;
    let state = fields.nth(1)?.to_owned();
    let (addr, port) = local.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let wildcard = addr.bytes().all(|b| b == b'0');
    let loopback = match addr.len() {
        // IPv4 127.x.x.x: the first octet is the last byte of the little-endian word.
        8 => addr.ends_with("7F"),
        // IPv6 ::1, or ::ffff:127.x.x.x.
        32 => {
            addr == "00000000000000000000000001000000"
                || (addr.starts_with("0000000000000000FFFF0000") && addr.ends_with("7F"))
        }
        _ => false,
    };
    Some(Socket {
        port,
        state,
        wildcard,
        loopback,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kernel_lines() {
        let s = parse_line("   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0").unwrap();
        assert_eq!(
            (s.port, s.state.as_str(), s.loopback, s.wildcard),
            (8080, "0A", true, false)
        );
        let s = parse_line("   1: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 0").unwrap();
        assert!(s.wildcard && s.port == 80);
        let s = parse_line("   2: 0500000A:0050 00000000:0000 0A 0").unwrap();
        assert!(!s.wildcard && !s.loopback);
    }

    #[test]
    fn sees_a_real_listener() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert!(is_listening(port));
        drop(l);
        assert!(!is_listening(port));
    }
}
