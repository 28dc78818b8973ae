//! A tiny HTTP/1.1 client, enough for health checks (`GET`) and `--pre-stop-http` (`POST`):
//! one request per connection (`Connection: close`), a 64 KiB cap on what is read, chunked
//! bodies decoded. No TLS: `https://` is refused before anything waits on it.

use std::time::Duration;

use podsignal_proto::HttpCheck;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MAX_RESPONSE: usize = 64 * 1024;

/// A response, as far as health checks care.
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Headers, names lowercase.
    pub headers: Vec<(String, String)>,
    /// The body (decoded if chunked; cut at 64 KiB).
    pub body: Vec<u8>,
}

/// Sends `METHOD path` to `host:port` and reads the response, within `limit`.
pub async fn request(
    method: &str,
    host: &str,
    port: u16,
    path: &str,
    limit: Duration,
) -> Result<Response, String> {
    tokio::time::timeout(limit, exchange(method, host, port, path))
        .await
        .map_err(|_| {
            format!(
                "no answer within {}",
                podsignal_proto::format_duration(limit)
            )
        })?
}

async fn exchange(method: &str, host: &str, port: u16, path: &str) -> Result<Response, String> {
    let mut stream = super::net::connect(host, port).await?;
    let host_header = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: podsignal/{}\r\nAccept: */*\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    );
    stream
        .write_all(req.as_bytes())
        .await
        .map_err(|e| super::io_why(&e))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| super::io_why(&e))?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() >= MAX_RESPONSE || complete(&buf) {
            break;
        }
    }
    parse(&buf)
}

/// True once the response is whole by its Content-Length (servers that ignore
/// `Connection: close` would otherwise keep us reading).
fn complete(buf: &[u8]) -> bool {
    let Ok(r) = parse(buf) else { return false };
    match header(&r.headers, "content-length").and_then(|v| v.parse::<usize>().ok()) {
        Some(len) => r.body.len() >= len,
        None => false,
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn parse(buf: &[u8]) -> Result<Response, String> {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("incomplete response (no end of headers)")?;
    let head = String::from_utf8_lossy(&buf[..end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|_| status_line.starts_with("HTTP/"))
        .ok_or_else(|| {
            format!(
                "not an HTTP response: {:?}",
                status_line.chars().take(40).collect::<String>()
            )
        })?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let raw = &buf[end + 4..];
    let body = if header(&headers, "transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        dechunk(raw)
    } else {
        raw.to_vec()
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// Decodes as much of a chunked body as has arrived.
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&raw[..eol]);
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let Ok(size) = usize::from_str_radix(size_text, 16) else {
            break;
        };
        let start = eol + 2;
        if size == 0 || start + size > raw.len() {
            out.extend_from_slice(&raw[start.min(raw.len())..(start + size).min(raw.len())]);
            break;
        }
        out.extend_from_slice(&raw[start..start + size]);
        raw = &raw[(start + size + 2).min(raw.len())..];
    }
    out
}

/// Checks an HTTP condition once.
pub async fn check(h: &HttpCheck) -> Result<(), String> {
    let r = request("GET", &h.host, h.port, &h.path, Duration::from_secs(2)).await?;
    if !h.status.matches(r.status) {
        return Err(format!("status {}, want {}", r.status, h.status));
    }
    if let Some(want) = &h.body
        && !String::from_utf8_lossy(&r.body).contains(want.as_str())
    {
        return Err(format!("status {} but the body lacks {want:?}", r.status));
    }
    if let Some((name, want)) = &h.header {
        match header(&r.headers, name) {
            Some(v) if v.contains(want.as_str()) => {}
            Some(v) => return Err(format!("header {name} is {v:?}, want {want:?}")),
            None => return Err(format!("no header {name}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_chunked_responses() {
        let r =
            parse(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\nX-A: b\r\n\r\ndown")
                .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (503, &b"down"[..]));
        assert_eq!(header(&r.headers, "x-a"), Some("b"));
        let r = parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").unwrap();
        assert_eq!(r.body, b"abcde");
        assert!(parse(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
        assert!(parse(b"HTTP/1.1 200 OK\r\n").is_err());
    }
}
