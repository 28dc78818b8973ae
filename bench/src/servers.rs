//! The two HTTP servers under test, each its own process so its memory and CPU are its own:
//! `podsignal agent` over a fresh directory, and the floor (`podsignal-bench floor-server`).
//! Plus the smallest HTTP/1.1 client there is: write the request bytes, read the head.

use crate::procfs;
use anyhow::{Context, Result, bail};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Which server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `podsignal agent`.
    Agent,
    /// The minimal axum long-poll server.
    Floor,
}

impl Kind {
    /// The label in tables and plots.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Agent => "podsignal agent",
            Kind::Floor => "floor (axum + watch)",
        }
    }
}

/// A running server process; killed (SIGKILL) and reaped when dropped.
pub struct Server {
    /// Which server it is.
    pub kind: Kind,
    /// Where it listens.
    pub addr: SocketAddr,
    /// The shared directory (agent only; removed on drop).
    pub dir: Option<tempfile::TempDir>,
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

impl Server {
    /// Starts `kind` and waits until it answers. `max` sizes the agent's connection and
    /// waiter limits (they default to far fewer than the benchmarks open).
    pub async fn start(kind: Kind, podsignal: &Path, max: usize) -> Result<Server> {
        let port = free_port()?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let listen = addr.to_string();
        let (mut cmd, dir) = match kind {
            Kind::Agent => {
                let dir = tempfile::tempdir().context("creating the shared directory")?;
                let mut cmd = Command::new(podsignal);
                let limit = (max + 256).to_string();
                cmd.arg("--dir")
                    .arg(dir.path())
                    .args(["agent", "--listen", &listen])
                    .args(["--max-connections", &limit, "--max-waiters", &limit])
                    .args(["--max-streams", &limit]);
                (cmd, Some(dir))
            }
            Kind::Floor => {
                let mut cmd = Command::new(std::env::current_exe()?);
                cmd.args(["floor-server", "--listen", &listen]);
                (cmd, None)
            }
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", kind.label()))?;
        let mut server = Server {
            kind,
            addr,
            dir,
            child,
        };
        server.wait_serving(Duration::from_secs(20)).await?;
        Ok(server)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The shared directory (agent only).
    pub fn dir_path(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.path().to_path_buf())
    }

    /// Polls (1 ms) until a request gets an answer; returns how long that took from now.
    pub async fn wait_serving(&mut self, within: Duration) -> Result<Duration> {
        let start = Instant::now();
        let path = match self.kind {
            Kind::Agent => "/healthz",
            Kind::Floor => "/waiters",
        };
        loop {
            if let Ok((200, _)) = request(self.addr, "GET", path).await {
                return Ok(start.elapsed());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("{} exited before serving: {status}", self.kind.label());
            }
            if start.elapsed() > within {
                bail!("{} not serving after {within:?}", self.kind.label());
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// How many long-polls the server says are open.
    pub async fn waiting(&self) -> Result<usize> {
        match self.kind {
            Kind::Floor => {
                let (_, body) = request(self.addr, "GET", "/waiters").await?;
                Ok(body.trim().parse()?)
            }
            Kind::Agent => {
                let (_, body) = request(self.addr, "GET", "/metrics").await?;
                let line = body
                    .lines()
                    .find(|l| l.starts_with("podsignal_waiters"))
                    .context("no podsignal_waiters in /metrics")?;
                let n: f64 = line.split_whitespace().last().unwrap_or("").parse()?;
                Ok(n as usize)
            }
        }
    }

    /// Resident memory, bytes.
    pub fn rss(&self) -> Result<u64> {
        procfs::rss_bytes(self.pid())
    }

    /// Peak resident memory so far, bytes.
    pub fn peak_rss(&self) -> Result<u64> {
        procfs::peak_rss_bytes(self.pid())
    }

    /// CPU time so far.
    pub fn cpu(&self) -> Result<Duration> {
        procfs::cpu_time(self.pid())
    }
}

/// The request head the raw client sends.
pub fn request_head(method: &str, path: &str) -> String {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n"
    )
}

/// Reads one response head from `stream` into `buf` (cleared first); returns the status and
/// how many bytes of `buf` the head took. Whatever follows (a body) stays in `buf`.
pub async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<(u16, usize)> {
    buf.clear();
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            bail!("connection closed before a response head");
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end]).context("non-UTF-8 head")?;
            let status = head
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .context("no status in the response head")?;
            return Ok((status, end + 4));
        }
    }
}

/// Reads the rest of a response whose head is in `buf[..head_len]`: a `Content-Length` body
/// or a chunked one. Returns the body.
pub async fn read_body(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    head_len: usize,
) -> Result<String> {
    let head = String::from_utf8_lossy(&buf[..head_len]).to_ascii_lowercase();
    let mut chunk = [0u8; 4096];
    if let Some(len) = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
    {
        while buf.len() < head_len + len {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                bail!("connection closed inside a body");
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        return Ok(String::from_utf8_lossy(&buf[head_len..head_len + len]).into_owned());
    }
    if head.contains("transfer-encoding: chunked") {
        // Read until the last chunk, then de-chunk.
        while !buf[head_len..].ends_with(b"0\r\n\r\n") {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                bail!("connection closed inside a chunked body");
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let mut body = String::new();
        let mut rest = &buf[head_len..];
        while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
            let size = usize::from_str_radix(std::str::from_utf8(&rest[..eol])?.trim(), 16)?;
            if size == 0 {
                break;
            }
            let data = rest
                .get(eol + 2..eol + 2 + size)
                .context("a chunk longer than the body")?;
            body.push_str(&String::from_utf8_lossy(data));
            rest = rest.get(eol + 2 + size + 2..).unwrap_or_default();
        }
        return Ok(body);
    }
    Ok(String::new())
}

/// One request on a fresh connection: status and body.
pub async fn request(addr: SocketAddr, method: &str, path: &str) -> Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr).await?;
    stream
        .write_all(request_head(method, path).as_bytes())
        .await?;
    let mut buf = Vec::new();
    let (status, head_len) = read_head(&mut stream, &mut buf).await?;
    let body = read_body(&mut stream, &mut buf, head_len).await?;
    Ok((status, body))
}

/// A blocking keep-alive HTTP/1.1 connection (for the latency benchmarks, whose writers and
/// waiters are plain loops).
pub struct SyncConn {
    stream: std::net::TcpStream,
    buf: Vec<u8>,
}

impl SyncConn {
    /// Connects to `addr` (HOST:PORT).
    pub fn connect(addr: &str) -> Result<SyncConn> {
        let stream =
            std::net::TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(SyncConn {
            stream,
            buf: Vec::new(),
        })
    }

    /// Sends one request (with a JSON body if given) and reads the whole response: status
    /// and body. Only `Content-Length` bodies (every answer but a stream's).
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        json: Option<&str>,
    ) -> Result<(u16, String)> {
        use std::io::{Read, Write};
        let body = json.unwrap_or("");
        let content_type = if json.is_some() {
            "Content-Type: application/json\r\n"
        } else {
            ""
        };
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{content_type}Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.stream.write_all(req.as_bytes())?;
        self.buf.clear();
        let mut chunk = [0u8; 4096];
        let head_len = loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                bail!("connection closed before a response head");
            }
            self.buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&self.buf[..head_len]).to_ascii_lowercase();
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .context("no status in the response head")?;
        let len = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        while self.buf.len() < head_len + len {
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                bail!("connection closed inside a body");
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
        let body = String::from_utf8_lossy(&self.buf[head_len..head_len + len]).into_owned();
        Ok((status, body))
    }
}
