//! Who may call: requests from browsers (an `Origin` header) are refused, the `Host` must be
//! loopback (DNS-rebinding defence: a page on evil.example that resolves to 127.0.0.1 still
//! sends `Host: evil.example`), and when a token is set every request but `/healthz` and
//! `/readyz` must carry it as `Authorization: Bearer TOKEN`.

use std::net::IpAddr;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use podsignal_proto::api::ErrorCode;

use super::{ApiError, AppState};

/// Routes a kubelet probe may call without a token.
const OPEN_PATHS: [&str; 2] = ["/healthz", "/readyz"];

/// The guard middleware.
pub async fn check(State(state): State<AppState>, request: Request, next: Next) -> Response {
    match refuse(&state, &request) {
        Some(err) => err.into_response(),
        None => next.run(request).await,
    }
}

fn refuse(state: &AppState, request: &Request) -> Option<ApiError> {
    let headers = request.headers();
    if headers.contains_key(header::ORIGIN) {
        return Some(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "requests with an Origin header (from browsers) are refused",
        ));
    }
    if state.config().check_host {
        let host = headers
            .get(header::HOST)
            .map(|h| h.to_str().unwrap_or("\u{fffd}"))
            .or_else(|| request.uri().authority().map(|a| a.as_str()));
        if let Some(host) = host
            && !is_loopback_host(host)
        {
            return Some(ApiError::new(
                StatusCode::MISDIRECTED_REQUEST,
                ErrorCode::BadHost,
                format!("Host {host:?} is not loopback (localhost, 127.0.0.1 or [::1])"),
            ));
        }
    }
    if let Some(token) = &state.config().token
        && !OPEN_PATHS.contains(&request.uri().path())
    {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "));
        match given {
            Some(g) if same(g.trim().as_bytes(), token.as_bytes()) => {}
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

/// True for `localhost`, a loopback IP, each with an optional port.
pub fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port or [v6]
        match rest.split_once(']') {
            Some((ip, tail)) if tail.is_empty() || is_port(tail) => ip,
            _ => return false,
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if is_port(&format!(":{port}")) => name,
            Some(_) => return false,
            None => host,
        }
    };
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn is_port(tail: &str) -> bool {
    tail.strip_prefix(':')
        .is_some_and(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()))
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
        ] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:7781",
            "localhost.evil.example",
            "10.0.0.1:7781",
            "[::2]:1",
            "127.0.0.1:",
            "127.0.0.1:x",
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
