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
    /// Starts an agent with `extra` arguments and waits until it listens.
    pub fn start(extra: &[&str]) -> Agent {
        Agent::start_via(
            extra,
            |_| {},
            |_, argv| {
                let mut c = Command::new(&argv[0]);
                c.args(&argv[1..]);
                c
            },
        )
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

/// Whether an HTTP server on `port` answers `GET /healthz` (any status).
fn answers_healthz(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let request =
        format!("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    let mut head = [0u8; 12];
    s.write_all(request.as_bytes()).is_ok()
        && s.read_exact(&mut head).is_ok()
        && head.starts_with(b"HTTP/1.1 ")
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

impl Agent {
    /// Starts an agent through `wrap`, which gets the shared directory (after `prepare` has
    /// filled it) and the agent's own argv (`podsignal agent --listen ... EXTRA`) and returns
    /// the command to spawn (e.g. the agent under `unshare`). Waits until it listens.
    pub fn start_via(
        extra: &[&str],
        prepare: impl FnOnce(&Path),
        wrap: impl Fn(&Path, Vec<String>) -> Command,
    ) -> Agent {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("shared");
        prepare(&dir);
        for _attempt in 0..5 {
            let port = free_port();
            let mut argv = vec![
                BIN.to_owned(),
                "agent".to_owned(),
                "--listen".to_owned(),
                format!("127.0.0.1:{port}"),
            ];
            argv.extend(extra.iter().map(|s| (*s).to_owned()));
            let mut child = wrap(&dir, argv)
                .env("PODSIGNAL_DIR", &dir)
                .env("PODSIGNAL_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let mut exited = false;
            // Listening means answering: a bare connect can succeed with nothing listening
            // (a TCP self-connect, when the connection's ephemeral port happens to be `port`),
            // and the agent then fails to bind it.
            let listening = eventually(Duration::from_secs(10), || {
                exited = matches!(child.try_wait(), Ok(Some(_)));
                exited || answers_healthz(port)
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
            if exited {
                let mut err = String::new();
                if let Some(e) = child.stderr.as_mut() {
                    let _ = e.read_to_string(&mut err);
                }
                if !err.contains("in use") {
                    panic!("the agent exited at start: {err}");
                }
            }
        }
        panic!("the agent never started listening");
    }

    /// The CLI through this agent (`--agent URL`), with PODSIGNAL_DIR pointing at a directory
    /// that is NOT the volume: whatever it does, it can only do through the agent.
    pub fn remote(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--agent")
            .arg(self.url())
            .args(args)
            .env("PODSIGNAL_DIR", self.dir.with_file_name("not-the-volume"))
            .env_remove("PODSIGNAL_AGENT")
            .env_remove("PODSIGNAL_NAME")
            .stdin(Stdio::null());
        c
    }

    /// The value of an unlabelled metric (e.g. `podsignal_holds`).
    pub fn metric(&self, name: &str) -> f64 {
        let (s, body) = self.get("/metrics");
        assert_eq!(s, 200, "{body}");
        body.lines()
            .find_map(|l| {
                let (k, v) = l.split_once(' ')?;
                (k == name).then(|| v.trim().parse().ok())?
            })
            .unwrap_or_else(|| panic!("no metric {name} in {body}"))
    }
}

/// A response with its headers (names lower-cased).
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Like [`raw`] (with `Host: 127.0.0.1:PORT`), keeping the response headers.
pub fn request(port: u16, method: &str, path: &str, body: Option<&str>) -> Response {
    request_with(port, method, path, &[], body)
}

/// Like [`request`], with these headers too.
pub fn request_with(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Response {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let body = body.unwrap_or("");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() {
        req.push_str("Content-Type: application/json\r\n");
    }
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
    let mut headers = Vec::new();
    let mut chunked = false;
    let mut length = None;
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_owned());
        if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
            chunked = true;
        }
        if k == "content-length" {
            length = v.parse::<usize>().ok();
        }
        headers.push((k, v));
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
    Response {
        status,
        headers,
        body: String::from_utf8_lossy(&out).into_owned(),
    }
}

/// An open hold (`POST PATH`, e.g. `/v1/locks/m/hold`): the connection, positioned after
/// the first JSON line, and that line. Panics unless the answer is 200 with a JSON line.
pub fn open_hold(port: u16, path: &str) -> (BufReader<TcpStream>, serde_json::Value) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(line.contains(" 200 "), "hold {path}: {line}");
    loop {
        line.clear();
        assert!(r.read_line(&mut line).unwrap() > 0, "hold {path}: closed");
        // Chunk-size lines and headers are skipped: the first JSON line is the answer.
        if line.trim_start().starts_with('{') {
            return (r, json(line.trim()));
        }
    }
}

/// A numeric field of /proc/PID/status (e.g. "Threads", "VmHWM" in kB); None once gone.
pub fn proc_status(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}
