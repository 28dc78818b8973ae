//! A real `podsignal agent` for a scenario, on a port of its own, that the scenario may kill
//! and start again on the same port; and a small HTTP/1.1 client for it that never panics
//! (every failure is an error the scenario counts), and a hold through it whose loss shows
//! without blocking ([`RawHold`]).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use crate::harness::{Ctx, Proc, eventually};

/// A running agent (killed with its group when dropped).
pub struct Agent {
    /// The process.
    pub proc: Proc,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The shared directory it serves.
    pub dir: PathBuf,
    extra: Vec<String>,
}

impl Agent {
    /// Starts an agent on `dir` with `extra` arguments on a free port, and waits until it
    /// answers `/healthz`.
    pub fn start(ctx: &Ctx, dir: &Path, extra: &[&str]) -> Result<Agent> {
        let extra: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
        for _attempt in 0..5 {
            let port = free_port()?;
            match Agent::start_on(ctx, dir, port, &extra) {
                Ok(a) => return Ok(a),
                Err(e) => eprintln!("chaos: agent on port {port}: {e:#}; another port"),
            }
        }
        bail!("the agent never started listening")
    }

    fn start_on(ctx: &Ctx, dir: &Path, port: u16, extra: &[String]) -> Result<Agent> {
        let mut cmd = ctx.podsignal(dir);
        cmd.args(["agent", "--listen", &format!("127.0.0.1:{port}")])
            .args(extra)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let mut proc = Proc::spawn(&mut cmd, "podsignal agent")?;
        let mut exited = false;
        let up = eventually(Duration::from_secs(15), || {
            exited = proc.exited().is_some();
            exited || get(port, "/healthz").is_ok_and(|(s, _)| s == 200)
        });
        if !up || exited {
            bail!("not answering /healthz (exited: {exited})");
        }
        Ok(Agent {
            proc,
            port,
            dir: dir.to_path_buf(),
            extra: extra.to_vec(),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `kill -9` of the agent, then a new one on the same port and directory (waiting for the
    /// port to be free again).
    pub fn restart_after_kill9(&mut self, ctx: &Ctx) -> Result<()> {
        self.proc.kill9();
        let mut last = None;
        for _ in 0..100 {
            match Agent::start_on(ctx, &self.dir, self.port, &self.extra) {
                Ok(new) => {
                    *self = new;
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("no attempt")))
            .context("restarting the agent on its port")
    }
}

/// A port nobody listens on now.
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

/// `GET path`: status and body.
pub fn get(port: u16, path: &str) -> Result<(u16, String)> {
    request(port, "GET", path, None)
}

/// One request (JSON body if any, `Connection: close`); status and body. Times out after 60 s.
pub fn request(port: u16, method: &str, path: &str, body: Option<&str>) -> Result<(u16, String)> {
    let mut r = send(port, method, path, body, Duration::from_secs(60))?;
    let status = r.status;
    let mut out = Vec::new();
    r.read_to_end(&mut out)?;
    Ok((status, String::from_utf8_lossy(&out).into_owned()))
}

/// A response being read: its status, then its body (chunked or not) through `Read`.
pub struct Response {
    /// The status code.
    pub status: u16,
    reader: BufReader<TcpStream>,
    body: Body,
}

enum Body {
    Chunked { left: usize, done: bool },
    Length(usize),
    UntilClose,
}

/// Sends a request and reads the status line and headers.
pub fn send(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&str>,
    timeout: Duration,
) -> Result<Response> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).context("connect")?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let body = body.unwrap_or("");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(head.as_bytes()).context("send")?;
    let mut reader = BufReader::new(s);
    let mut line = String::new();
    reader.read_line(&mut line).context("status line")?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("bad status line {line:?}"))?;
    let mut chunked = false;
    let mut length = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 {
            bail!("connection closed in the headers");
        }
        let h = h.trim_end().to_ascii_lowercase();
        if h.is_empty() {
            break;
        }
        if h == "transfer-encoding: chunked" {
            chunked = true;
        } else if let Some(l) = h.strip_prefix("content-length:") {
            length = l.trim().parse().ok();
        }
    }
    let body = match (chunked, length) {
        (true, _) => Body::Chunked {
            left: 0,
            done: false,
        },
        (false, Some(n)) => Body::Length(n),
        (false, None) => Body::UntilClose,
    };
    Ok(Response {
        status,
        reader,
        body,
    })
}

impl Response {
    /// The next line of the body (without its newline); `None` at the end of the body.
    pub fn line(&mut self) -> Result<Option<String>> {
        let mut out = Vec::new();
        let mut byte = [0u8; 1];
        loop {
            match self.read(&mut byte)? {
                0 if out.is_empty() => return Ok(None),
                0 => break,
                _ if byte[0] == b'\n' => break,
                _ => out.push(byte[0]),
            }
        }
        Ok(Some(String::from_utf8_lossy(&out).into_owned()))
    }
}

impl Read for Response {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match &mut self.body {
            Body::UntilClose => self.reader.read(buf),
            Body::Length(left) => {
                let n = buf.len().min(*left);
                let n = self.reader.read(&mut buf[..n])?;
                *left -= n;
                Ok(n)
            }
            Body::Chunked { left, done } => {
                if *done {
                    return Ok(0);
                }
                if *left == 0 {
                    let mut size = String::new();
                    self.reader.read_line(&mut size)?;
                    if size.trim().is_empty() {
                        size.clear();
                        self.reader.read_line(&mut size)?;
                    }
                    let n = usize::from_str_radix(size.trim(), 16).map_err(|_| {
                        std::io::Error::new(std::io::ErrorKind::InvalidData, "bad chunk size")
                    })?;
                    if n == 0 {
                        *done = true;
                        return Ok(0);
                    }
                    *left = n;
                }
                let n = buf.len().min(*left);
                let n = self.reader.read(&mut buf[..n])?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                *left -= n;
                Ok(n)
            }
        }
    }
}

/// A hold through the agent on a plain socket (`POST PATH`, read byte by byte up to the
/// `held` line so that nothing after it is buffered away), so that its loss (the agent died)
/// shows at once without blocking: see [`RawHold::lost`]. Dropping it closes the connection.
pub struct RawHold {
    stream: TcpStream,
    /// The fencing token of the grant.
    pub token: u64,
}

impl RawHold {
    /// `POST path` and the `held` line; an error says what went wrong in a few words
    /// (`connect: refused`, `read: closed`, `read: timed out`, `status 408`, ...).
    pub fn open(port: u16, path: &str, timeout: Duration) -> Result<RawHold, String> {
        let head = format!("POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n");
        let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| io_kind("connect", &e))?;
        s.set_read_timeout(Some(timeout))
            .and_then(|()| s.write_all(head.as_bytes()))
            .map_err(|e| io_kind("send", &e))?;
        let status = read_line(&s)?;
        while !read_line(&s)?.is_empty() {}
        let code = status.split(' ').nth(1).unwrap_or("?").to_owned();
        if code != "200" {
            return Err(format!("status {code}"));
        }
        // The body is chunked: a size line, then the first JSON line.
        let mut line = read_line(&s)?;
        if !line.starts_with('{') {
            line = read_line(&s)?;
        }
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        match (v["type"].as_str(), v["token"].as_u64()) {
            (Some("held"), Some(token)) => Ok(RawHold { stream: s, token }),
            _ => Err(format!("not a held line: {line:?}")),
        }
    }

    /// A copy of its socket (shutting it down drops the hold, as its client's death does).
    pub fn socket(&self) -> Option<TcpStream> {
        self.stream.try_clone().ok()
    }

    /// True once the connection ended (the agent died or released): reads what is there
    /// (heartbeats) without blocking.
    pub fn lost(&mut self) -> bool {
        let mut buf = [0u8; 512];
        let _ = self.stream.set_nonblocking(true);
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) => return e.kind() != std::io::ErrorKind::WouldBlock,
            }
        }
    }
}

/// One line (without its CRLF or LF), byte by byte; the end of the stream is an error.
#[expect(
    clippy::unbuffered_bytes,
    reason = "nothing after the line may be consumed"
)]
fn read_line(stream: &TcpStream) -> Result<String, String> {
    let mut out = Vec::new();
    for b in stream.bytes().take(64 * 1024) {
        match b.map_err(|e| io_kind("read", &e))? {
            b'\n' => {
                return Ok(String::from_utf8_lossy(&out)
                    .trim_end_matches('\r')
                    .to_owned());
            }
            b => out.push(b),
        }
    }
    Err("read: closed".into())
}

/// An I/O error in a few words, for counting errors by kind.
pub fn io_kind(what: &str, e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    let kind = match e.kind() {
        K::ConnectionRefused => "refused",
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => "closed",
        K::WouldBlock | K::TimedOut => "timed out",
        _ => "other",
    };
    format!("{what}: {kind}")
}
