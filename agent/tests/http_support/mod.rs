//! Shared by the `http_*` tests: start a real `podsignal agent` on a real port over a fresh
//! directory, and talk to it with raw HTTP/1.1 (so every header is exactly what the test
//! says) or with the real client.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_podsignal");

/// A running agent; killed when dropped.
pub struct Agent {
    pub child: Child,
    pub port: u16,
    pub dir: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Agent {
    /// Starts an agent with `extra` arguments and waits until `/healthz` answers.
    pub fn start(extra: &[&str]) -> Agent {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("shared");
        for _attempt in 0..5 {
            let port = free_port();
            let mut child = Command::new(BIN)
                .args(["agent", "--listen", &format!("127.0.0.1:{port}")])
                .args(extra)
                .env("PODSIGNAL_DIR", &dir)
                .env("PODSIGNAL_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            // Listening, or exited (the port was taken in the meantime: try another).
            let mut exited = false;
            let listening = eventually(Duration::from_secs(10), || {
                exited = matches!(child.try_wait(), Ok(Some(_)));
                exited || TcpStream::connect(("127.0.0.1", port)).is_ok()
            });
            if listening && !exited {
                return Agent {
                    child,
                    port,
                    dir,
                    _tmp: tmp,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("the agent never started listening");
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// One request with `Host: 127.0.0.1:PORT` and `headers`; returns status and body.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> (u16, String) {
        let host = format!("127.0.0.1:{}", self.port);
        let mut all = vec![("Host", host.as_str())];
        all.extend_from_slice(headers);
        raw(self.port, method, path, &all, body)
    }

    /// A JSON request (`Content-Type: application/json`).
    pub fn json(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        self.call(
            method,
            path,
            &[("Content-Type", "application/json")],
            Some(body),
        )
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        self.call("GET", path, &[], None)
    }

    /// Runs the CLI on the agent's directory, directly (no --agent).
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(BIN)
            .args(args)
            .env("PODSIGNAL_DIR", &self.dir)
            .output()
            .unwrap()
    }

    /// Sends SIGTERM and waits up to `limit` for the exit status.
    pub fn terminate(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        signal(self.child.id(), "TERM");
        let mut status = None;
        eventually(limit, || {
            status = self.child.try_wait().ok().flatten();
            status.is_some()
        });
        status
    }

    /// The agent's stderr so far (after it exited).
    pub fn stderr(&mut self) -> String {
        let mut s = String::new();
        if let Some(e) = self.child.stderr.as_mut() {
            let _ = e.read_to_string(&mut s);
        }
        s
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {pid} failed");
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP/1.1 request with exactly these headers (plus Content-Length and
/// Connection: close); returns the status and the body.
pub fn raw(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    let body = body.unwrap_or("");
    req.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    s.write_all(req.as_bytes()).unwrap();
    let mut r = BufReader::new(s);
    let mut status_line = String::new();
    r.read_line(&mut status_line).unwrap();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let mut chunked = false;
    let mut length = None;
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if lower == "transfer-encoding: chunked" {
            chunked = true;
        }
        if let Some(l) = lower.strip_prefix("content-length: ") {
            length = l.parse::<usize>().ok();
        }
    }
    let mut out = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).unwrap();
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).unwrap();
            out.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(n) = length {
        out.resize(n, 0);
        r.read_exact(&mut out).unwrap();
    } else {
        r.read_to_end(&mut out).unwrap();
    }
    (status, String::from_utf8_lossy(&out).into_owned())
}

/// The status of a request whose response may never end (a hold, a stream): reads the
/// status line only, then closes the connection.
pub fn status_only(port: u16, method: &str, path: &str) -> u16 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let req =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    line.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// The `error` code of an error body.
pub fn code(body: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    v["error"].as_str().unwrap_or_default().to_owned()
}

pub fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// Polls `f` until it returns true or `limit` passes.
pub fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn dir_of(agent: &Agent) -> &Path {
    &agent.dir
}
