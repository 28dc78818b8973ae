//! Who may call: requests from browsers (an `Origin` header) are refused, the `Host` must be
//! loopback (DNS-rebinding defence: a page on evil.example that resolves to 127.0.0.1 still
//! sends `Host: evil.example`), and when a token is set every request but `/healthz`,
//! `/readyz` and the page's static files must carry it as `Authorization: Bearer TOKEN` (the scheme in any case, RFC
//! 9110).
//!
//! The host check looks at every place a request can name its host: exactly one `Host`
//! header is required (none, or two, is a 400, as RFC 9112 says; a second one would
//! otherwise go unchecked), and an absolute-form target (`GET http://evil.example/ ...`)
//! must name a loopback host too. A port must be a port (1 to 65535).

use axum::extract::Request;
use axum::http::{StatusCode, header};

use podsignal_proto::api::ErrorCode;

use super::{ApiError, AppState};

/// Routes callable without a token: the kubelet's probes, and the page's static files (they
/// hold no data; the page asks for the token before it reads anything).
fn is_open(path: &str) -> bool {
    ["/healthz", "/readyz"].contains(&path) || super::page::is_page_file(path)
}

/// Why `request` is refused, if it is.
pub fn refuse(state: &AppState, request: &Request) -> Option<ApiError> {
    let headers = request.headers();
    if headers.contains_key(header::ORIGIN) {
        return Some(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "requests with an Origin header (from browsers) are refused",
        ));
    }
    if state.config().check_host
        && let Some(err) = host_problem(request)
    {
        return Some(err);
    }
    if let Some(token) = &state.config().token
        && !is_open(request.uri().path())
    {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim());
        match given {
            Some(g) if same(g.as_bytes(), token.as_bytes()) => {}
            Some(_) => {
                return Some(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    ErrorCode::Unauthorized,
                    "wrong bearer token",
                ));
            }
            None => {
                return Some(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    ErrorCode::Unauthorized,
                    "this agent needs Authorization: Bearer TOKEN (see --token-file)",
                ));
            }
        }
    }
    None
}

/// Why the request's host is not acceptable, if it is not: see the module docs.
fn host_problem(request: &Request) -> Option<ApiError> {
    let hosts: Vec<_> = request.headers().get_all(header::HOST).iter().collect();
    let bad_request = |m: &str| {
        Some(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadHost,
            m.to_owned(),
        ))
    };
    let host = match hosts.as_slice() {
        [] => return bad_request("a request needs exactly one Host header; it has none"),
        [one] => one.to_str().unwrap_or("\u{fffd}"),
        _ => return bad_request("a request needs exactly one Host header; it has several"),
    };
    let misdirected = |h: &str| {
        Some(ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            ErrorCode::BadHost,
            format!("Host {h:?} is not loopback (localhost, 127.0.0.1 or [::1])"),
        ))
    };
    if !is_loopback_host(host) {
        return misdirected(host);
    }
    if let Some(authority) = request.uri().authority()
        && !is_loopback_host(authority.as_str())
    {
        return misdirected(authority.as_str());
    }
    None
}

/// True for `localhost` (any case, a trailing dot allowed) or a loopback address
/// ([`podsignal_proto::is_loopback_ip`]: 127.0.0.0/8, `[::1]`, `[::ffff:127.x.x.x]`), each
/// with an optional port. Not `0.0.0.0` or `[::]` (a page at `http://0.0.0.0:PORT/` reaches a
/// loopback listener on Linux), and no other name: `localhost` is the one name browsers
/// resolve to loopback themselves; `ip6-localhost` and the like come from a hosts file that
/// the browser's machine may not have, and then from DNS, which an attacker can answer
/// (DNS rebinding, e.g. through `kubectl port-forward`).
pub fn is_loopback_host(host: &str) -> bool {
    let (name, bracketed) = if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port or [v6]
        match rest.split_once(']') {
            Some((ip, "")) => (ip, true),
            Some((ip, tail)) if tail.strip_prefix(':').is_some_and(is_port) => (ip, true),
            _ => return false,
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if is_port(port) => (name, false),
            Some(_) => return false,
            None => (host, false),
        }
    };
    if bracketed {
        // Brackets hold an IPv6 address and nothing else (RFC 3986).
        return name
            .parse::<std::net::Ipv6Addr>()
            .is_ok_and(|ip| podsignal_proto::is_loopback_ip(ip.into()));
    }
    // An IPv6 address outside brackets is not a Host, and a bare one was split at its last
    // colon above: only names and IPv4 addresses get here.
    let unrooted = name.strip_suffix('.').unwrap_or(name);
    unrooted.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A port: 1 to 65535, digits only.
fn is_port(p: &str) -> bool {
    p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok_and(|n| n > 0)
}

/// Compares in time independent of where the first difference is.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_recognised() {
        for ok in [
            "localhost",
            "LOCALHOST:7781",
            "127.0.0.1",
            "127.0.0.1:80",
            "127.1.2.3:9",
            "[::1]",
            "[::1]:7781",
            "[::ffff:127.0.0.1]:80",
            "localhost.",
            "LocalHost.:80",
        ] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:7781",
            "localhost.evil.example",
            "10.0.0.1:7781",
            "[::2]:1",
            "0.0.0.0",
            "0.0.0.0:7781",
            "[::]:7781",
            "ip6-localhost",
            "ip6-loopback:1",
            "[localhost]",
            "[127.0.0.1]:80",
            "127.0.0.1.",
            "127.0.0.1:",
            "127.0.0.1:x",
            "127.0.0.1:65536",
            "localhost:99999",
            "127.0.0.1:0",
            "127.0.0.1:+80",
            "[::1]x",
            "",
        ] {
            assert!(!is_loopback_host(bad), "{bad}");
        }
    }

    #[test]
    fn tokens_compare_exactly() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
    }
}
