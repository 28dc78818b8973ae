//! HTTP checks: `http://HOST:PORT/PATH#status=...&body=...&header=...`.

use std::fmt;

use super::ConditionError;
use super::tcp::split_host_port;

/// What HTTP status counts as success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusMatch {
    /// Any 2xx (the default).
    Success,
    /// Exactly this code.
    Exact(u16),
    /// Any code of this class: `4xx` is `Class(4)`.
    Class(u8),
}

impl StatusMatch {
    /// True if `status` matches.
    pub fn matches(self, status: u16) -> bool {
        match self {
            StatusMatch::Success => (200..300).contains(&status),
            StatusMatch::Exact(c) => status == c,
            StatusMatch::Class(c) => status / 100 == u16::from(c),
        }
    }
}

impl fmt::Display for StatusMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StatusMatch::Success => f.write_str("2xx"),
            StatusMatch::Exact(c) => write!(f, "{c}"),
            StatusMatch::Class(c) => write!(f, "{c}xx"),
        }
    }
}

/// An HTTP check: `GET path` on `host:port`, matched on status, body and one header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCheck {
    /// `https://` rather than `http://`.
    pub tls: bool,
    /// Host, without brackets.
    pub host: String,
    /// Port (80 or 443 when the URL has none).
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
    /// Which status counts (`#status=`).
    pub status: StatusMatch,
    /// A substring the body must contain (`#body=`).
    pub body: Option<String>,
    /// A header that must be present, with a substring of its value (`#header=NAME:VALUE`);
    /// the name is matched case-insensitively and stored lowercase.
    pub header: Option<(String, String)>,
}

impl HttpCheck {
    /// The URL without the matching options: what is requested.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!("{scheme}://{host}:{}{}", self.port, self.path)
    }

    /// Parses `http(s)://HOST[:PORT][/PATH][#OPTIONS]`.
    pub fn parse(input: &str) -> Result<HttpCheck, ConditionError> {
        let err = |why: &str| ConditionError::new(input, why);
        let (tls, rest) = if let Some(r) = input.strip_prefix("http://") {
            (false, r)
        } else if let Some(r) = input.strip_prefix("https://") {
            (true, r)
        } else {
            return Err(err("expected http:// or https://"));
        };
        let (rest, options) = match rest.split_once('#') {
            Some((r, o)) => (r, Some(o)),
            None => (rest, None),
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest[i..].starts_with('/') => (&rest[..i], rest[i..].to_owned()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_owned()),
        };
        if authority.contains('@') {
            return Err(err("user:password@ in the URL is not supported"));
        }
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = split_host_port(authority, Some(default_port)).map_err(err)?;
        if path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(err(
                "the path has spaces or control characters (percent-encode them)",
            ));
        }
        let mut check = HttpCheck {
            tls,
            host,
            port,
            path,
            status: StatusMatch::Success,
            body: None,
            header: None,
        };
        for opt in options
            .into_iter()
            .flat_map(|o| o.split('&'))
            .filter(|o| !o.is_empty())
        {
            let (key, value) = opt
                .split_once('=')
                .ok_or_else(|| err("options read #status=CODE&body=TEXT&header=NAME:VALUE"))?;
            let value = percent_decode(value).ok_or_else(|| err("bad %-escape in an option"))?;
            match key {
                "status" => {
                    check.status = parse_status(&value)
                        .ok_or_else(|| err("status= takes a code (200) or a class (2xx)"))?
                }
                "body" => check.body = Some(value),
                "header" => {
                    let (n, v) = value
                        .split_once(':')
                        .ok_or_else(|| err("header= takes NAME:VALUE"))?;
                    let n = n.trim().to_ascii_lowercase();
                    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_graphic()) {
                        return Err(err("header= needs a header name"));
                    }
                    check.header = Some((n, v.trim().to_owned()));
                }
                _ => return Err(err("unknown option (known: status, body, header)")),
            }
        }
        Ok(check)
    }
}

impl fmt::Display for HttpCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url())?;
        let mut opts = Vec::new();
        if self.status != StatusMatch::Success {
            opts.push(format!("status={}", self.status));
        }
        if let Some(b) = &self.body {
            opts.push(format!("body={}", percent_encode(b)));
        }
        if let Some((n, v)) = &self.header {
            opts.push(format!("header={}", percent_encode(&format!("{n}:{v}"))));
        }
        if !opts.is_empty() {
            write!(f, "#{}", opts.join("&"))?;
        }
        Ok(())
    }
}

fn parse_status(s: &str) -> Option<StatusMatch> {
    if let Some(c) = s.strip_suffix("xx") {
        let c: u8 = c.parse().ok()?;
        return (1..=5).contains(&c).then_some(StatusMatch::Class(c));
    }
    let c: u16 = s.parse().ok()?;
    (100..=599).contains(&c).then_some(StatusMatch::Exact(c))
}

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}
