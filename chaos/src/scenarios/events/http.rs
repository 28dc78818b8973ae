//! A small HTTP/1.1 client for the event watchers, beyond what [`crate::agent::send`] does:
//! request headers of their own (`Last-Event-ID`), the response's headers
//! (`podsignal-events-lost`), a chunked body read line by line, and a socket with a tiny
//! receive buffer (the slow reader, so that the agent, not the kernel, holds the backlog).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

/// A response being read: status, headers, then the body line by line.
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The headers, names in lower case.
    pub headers: Vec<(String, String)>,
    body: BufReader<Body>,
}

/// The body of a response, decoded (chunked or not).
struct Body {
    conn: BufReader<TcpStream>,
    /// Bytes left in the current chunk; `None` for a body that is not chunked.
    chunk_left: Option<usize>,
    done: bool,
}

/// A `GET` to the agent on `port` with extra `headers`; `rcvbuf` shrinks the socket's receive
/// buffer first (before connecting, so the window is small from the start). Reads time out
/// after `timeout` (an error the caller may treat as "nothing yet").
pub fn get(
    port: u16,
    path: &str,
    headers: &[(&str, String)],
    rcvbuf: Option<usize>,
    timeout: Duration,
) -> Result<Response> {
    let mut conn = connect(port, rcvbuf)?;
    conn.set_read_timeout(Some(timeout))?;
    conn.set_write_timeout(Some(timeout))?;
    let mut head =
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes()).context("send")?;
    let mut conn = BufReader::new(conn);
    let mut line = String::new();
    conn.read_line(&mut line).context("status line")?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("bad status line {line:?}"))?;
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if conn.read_line(&mut h)? == 0 {
            bail!("connection closed in the headers");
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((name, value)) = h.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = Body {
        conn,
        chunk_left: chunked.then_some(0),
        done: false,
    };
    Ok(Response {
        status,
        headers,
        body: BufReader::new(body),
    })
}

/// A TCP connection to 127.0.0.1:`port`, with a receive buffer of `rcvbuf` bytes if given.
fn connect(port: u16, rcvbuf: Option<usize>) -> Result<TcpStream> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Some(size) = rcvbuf else {
        return TcpStream::connect(addr).context("connect");
    };
    use rustix::net::{AddressFamily, SocketFlags, SocketType, connect, socket_with, sockopt};
    // Close-on-exec, as std's are: the processes the scenario spawns must not inherit it.
    let fd = socket_with(
        AddressFamily::INET,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .context("socket")?;
    sockopt::set_socket_recv_buffer_size(&fd, size).context("SO_RCVBUF")?;
    connect(&fd, &addr).context("connect")?;
    Ok(TcpStream::from(fd))
}

impl Response {
    /// The value of header `name` (lower case), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The next line of the body without its line end; `None` at its end.
    pub fn line(&mut self) -> std::io::Result<Option<String>> {
        let mut out = String::new();
        if self.body.read_line(&mut out)? == 0 {
            return Ok(None);
        }
        let trimmed = out.trim_end_matches(['\n', '\r']).len();
        out.truncate(trimmed);
        Ok(Some(out))
    }

    /// The whole (rest of the) body.
    pub fn text(mut self) -> std::io::Result<String> {
        let mut out = String::new();
        self.body.read_to_string(&mut out)?;
        Ok(out)
    }
}

impl Read for Body {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.done {
            return Ok(0);
        }
        let Some(left) = self.chunk_left else {
            return self.conn.read(buf);
        };
        if left == 0 {
            let mut size = String::new();
            self.conn.read_line(&mut size)?;
            if size.trim().is_empty() {
                // The line end after the previous chunk's data.
                size.clear();
                self.conn.read_line(&mut size)?;
            }
            let n = usize::from_str_radix(size.trim(), 16).map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, "bad chunk size")
            })?;
            if n == 0 {
                self.done = true;
                return Ok(0);
            }
            self.chunk_left = Some(n);
        }
        let want = buf.len().min(self.chunk_left.unwrap_or(0));
        let n = self.conn.read(&mut buf[..want])?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.chunk_left = self.chunk_left.map(|l| l - n);
        Ok(n)
    }
}
