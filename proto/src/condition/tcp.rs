//! TCP targets: `HOST:PORT`, `[V6]:PORT`, and loopback names resolved without a resolver.

use std::fmt;

/// A TCP endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpTarget {
    /// Host name or address, without brackets (`::1`, not `[::1]`).
    pub host: String,
    /// Port.
    pub port: u16,
}

impl TcpTarget {
    /// True when the host is this pod's own network namespace (loopback or wildcard), so a
    /// listening socket can be seen by asking the kernel, without connecting.
    pub fn is_local(&self) -> bool {
        is_loopback_host(&self.host)
    }
}

/// True when `host` names this network namespace: a loopback name or address
/// ([`is_loopback_name`]) or a wildcard address (`0.0.0.0`, `::`), which reaches this host
/// when connected to.
pub fn is_loopback_host(host: &str) -> bool {
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => is_loopback_or_wildcard(ip),
        Err(_) => loopback_addresses(host).is_some(),
    }
}

/// True when `host` is a loopback name ([`loopback_addresses`]) or a loopback address
/// (127.0.0.0/8, `::1`, `::ffff:127.x.x.x`); not a wildcard address: what a process in this
/// network namespace may be told to connect to, or to listen on, to stay on loopback.
pub fn is_loopback_name(host: &str) -> bool {
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => is_loopback_ip(ip),
        Err(_) => loopback_addresses(host).is_some(),
    }
}

/// True for a loopback address: 127.0.0.0/8, `::1`, `::ffff:127.x.x.x`.
pub fn is_loopback_ip(ip: std::net::IpAddr) -> bool {
    unmapped(ip).is_loopback()
}

/// True for a loopback address (127.0.0.0/8, `::1`, `::ffff:127.x.x.x`) or a wildcard one
/// (`0.0.0.0`, `::`): connecting to it reaches this host, and a socket bound to it accepts
/// connections to a loopback address.
pub fn is_loopback_or_wildcard(ip: std::net::IpAddr) -> bool {
    let ip = unmapped(ip);
    ip.is_loopback() || ip.is_unspecified()
}

/// An IPv4-mapped IPv6 address as the IPv4 address it maps; any other unchanged.
fn unmapped(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
        v4 => v4,
    }
}

/// The addresses of a loopback host name, known without a resolver: `localhost` is
/// 127.0.0.1 then ::1, `ip6-localhost` and `ip6-loopback` are ::1 (case-insensitive, a
/// trailing dot allowed). `None` for any other name: that one needs the system's resolver.
///
/// Why not ask the resolver: a static glibc binary resolves through NSS modules loaded at run
/// time, which a `FROM scratch` image does not have, so even `localhost` would not resolve.
pub fn loopback_addresses(host: &str) -> Option<Vec<std::net::IpAddr>> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    match host.as_str() {
        "localhost" => Some(vec![
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ]),
        "ip6-localhost" | "ip6-loopback" => Some(vec![IpAddr::V6(Ipv6Addr::LOCALHOST)]),
        _ => None,
    }
}

impl fmt::Display for TcpTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Splits `host:port`, `[v6]:port`, or (with a default) a bare host.
pub(super) fn split_host_port(
    s: &str,
    default_port: Option<u16>,
) -> Result<(String, u16), &'static str> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or("unclosed [ in the host")?;
        match after.strip_prefix(':') {
            Some(p) => (h, Some(p)),
            None if after.is_empty() => (h, None),
            None => return Err("expected :PORT after ]"),
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, _)) if h.contains(':') => {
                return Err("write an IPv6 host in brackets: [::1]:PORT");
            }
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if host.is_empty() {
        return Err("missing host");
    }
    if !host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b".-_:%".contains(&b))
    {
        return Err("the host has characters a host name cannot have");
    }
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or("the port must be 1-65535")?,
        None => default_port.ok_or("missing :PORT")?,
    };
    Ok((host.to_owned(), port))
}
