//! Protocol probes (`postgres://`, `redis://`, `mysql://`) against the real servers from
//! Debian's packages, started here as processes in temp dirs on free ports; and against
//! loopback servers that answer something else.
//!
//! A missing server fails the test under CI (`.ci/run` installs them); elsewhere it is
//! skipped with a loud message on stderr.

// Helpers outside #[test] fns unwrap too: in a test, a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

/// The first of `candidates` that exists. Under CI a missing server is a broken environment
/// (panic); elsewhere the test says loudly that it skips, and returns `None`.
fn server_binary(what: &str, candidates: &[PathBuf]) -> Option<PathBuf> {
    if let Some(found) = candidates.iter().find(|p| p.exists()) {
        return Some(found.clone());
    }
    let msg = format!(
        "{what} is not installed (looked for {candidates:?}): apt-get install it (.ci/run does)"
    );
    assert!(std::env::var_os("CI").is_none(), "{msg}");
    eprintln!("\n!!! SKIPPED: {msg} !!!\n");
    None
}

/// Every `/usr/lib/postgresql/VERSION/bin/NAME`, newest first.
fn postgres_tool(name: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|v| v.path().join("bin").join(name))
        .collect();
    found.sort();
    found.reverse();
    found
}

/// A server process: SIGTERM (a clean shutdown, so that nothing is left behind, shared
/// memory included) and reaped when dropped, SIGKILL if it takes over 20 s.
struct Server(Child);

impl Server {
    fn start(cmd: &mut Command, log: &Path) -> Server {
        let log = std::fs::File::create(log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        Server(child)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        signal(self.0.id(), "TERM");
        if wait_exit(&mut self.0, Duration::from_secs(20)).is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// `podsignal wait URL --timeout 60s`, started before the server.
fn start_waiting(pod: &mut Pod, url: &str) -> Child {
    let w = pod.spawn(&["wait", url, "--timeout", "60s"]);
    let mut waiter = pod.take(w);
    assert!(
        !eventually(Duration::from_millis(200), || waiter
            .try_wait()
            .unwrap()
            .is_some()),
        "{url} held before its server started"
    );
    waiter
}

/// Asserts the waiter ends with 0 once the server answers; shows its stderr and the
/// server's log if not.
fn assert_ready(mut waiter: Child, log: &Path) {
    let code = wait_exit(&mut waiter, Duration::from_secs(60));
    if code != Some(0) {
        let _ = waiter.kill();
        let out = waiter.wait_with_output().unwrap();
        panic!(
            "wait ended with {code:?}: {}\nserver log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(log).unwrap_or_default()
        );
    }
}

#[test]
fn postgres_waits_for_a_server_started_later_then_holds() {
    let Some(initdb) = server_binary("PostgreSQL (initdb)", &postgres_tool("initdb")) else {
        return;
    };
    let postgres = initdb.with_file_name("postgres");
    let mut pod = Pod::new();
    let tmp = pod.tmp.path().to_owned();
    // PostgreSQL refuses to run as root: its files and process belong to `postgres`.
    let as_postgres = |program: &Path| {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=postgres",
            "--regid=postgres",
            "--clear-groups",
            "--",
        ])
        .arg(program);
        c
    };
    assert!(
        Command::new("chown")
            .args(["postgres:postgres"])
            .arg(&tmp)
            .status()
            .unwrap()
            .success()
    );
    let data = tmp.join("pgdata");
    let out = as_postgres(&initdb)
        .arg("-D")
        .arg(&data)
        .args(["-A", "trust", "-U", "postgres", "--no-sync"])
        .output()
        .unwrap();
    assert!(out.status.success(), "initdb: {out:?}");
    let port = free_port();
    let url = format!("postgres://127.0.0.1:{port}");
    let waiter = start_waiting(&mut pod, &url);
    let log = tmp.join("postgres.log");
    let _server = Server::start(
        as_postgres(&postgres)
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(&tmp)
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"]),
        &log,
    );
    assert_ready(waiter, &log);
    // Default port: postgres://127.0.0.1 means 5432 (nothing of ours listens there).
    let out = pod.run(&["wait", "postgres://127.0.0.1", "--timeout", "100ms"]);
    assert!(
        stderr(&out).contains("postgres://127.0.0.1:5432"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn redis_waits_for_a_server_started_later_then_holds_and_a_full_one_does_not() {
    let Some(redis) = server_binary("redis-server", &["/usr/bin/redis-server".into()]) else {
        return;
    };
    let mut pod = Pod::new();
    let tmp = pod.tmp.path().to_owned();
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let waiter = start_waiting(&mut pod, &url);
    let log = tmp.join("redis.log");
    let server = Server::start(
        Command::new(&redis)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--maxclients", "1"])
            .arg("--dir")
            .arg(&tmp),
        &log,
    );
    assert_ready(waiter, &log);
    // Its one client slot taken, Redis answers an error: not ready, saying it. (The probe's
    // own connection may hold the slot for a moment after it closed: try until served.)
    let mut only_client = None;
    let served = eventually(Duration::from_secs(10), || {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.write_all(b"PING\r\n").unwrap();
        let mut pong = [0u8; 7];
        let ok = c.read_exact(&mut pong).is_ok() && &pong == b"+PONG\r\n";
        if ok {
            only_client = Some(c);
        }
        ok
    });
    assert!(served, "redis never served a client");
    let out = pod.run(&["wait", &url, "--timeout", "300ms"]);
    assert_eq!(out.status.code(), Some(124), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("server says: ERR max number of clients reached"),
        "{}",
        stderr(&out)
    );
    drop((only_client, server));

    // A password required: -NOAUTH is ready (the server serves clients that have it).
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let waiter = start_waiting(&mut pod, &url);
    let _server = Server::start(
        Command::new(&redis)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--requirepass",
                "s3cret",
            ])
            .arg("--dir")
            .arg(&tmp),
        &log,
    );
    assert_ready(waiter, &log);
}

#[test]
fn mysql_waits_for_a_server_started_later_and_not_while_it_has_too_many_connections() {
    let Some(mariadbd) = server_binary(
        "MariaDB (mariadbd)",
        &["/usr/sbin/mariadbd".into(), "/usr/sbin/mysqld".into()],
    ) else {
        return;
    };
    let mut pod = Pod::new();
    let tmp = pod.tmp.path().to_owned();
    let data = tmp.join("mysql");
    let out = Command::new("mariadb-install-db")
        .arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .args(["--user=root", "--skip-test-db"])
        .output()
        .unwrap();
    assert!(out.status.success(), "mariadb-install-db: {out:?}");
    let port = free_port();
    let url = format!("mysql://127.0.0.1:{port}");
    let waiter = start_waiting(&mut pod, &url);
    let log = tmp.join("mariadb.log");
    let _server = Server::start(
        Command::new(&mariadbd)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", tmp.join("mysql.sock").display()))
            .arg(format!("--pid-file={}", tmp.join("mysql.pid").display()))
            .arg(format!("--port={port}"))
            .args(["--bind-address=127.0.0.1", "--user=root", "--skip-log-bin"])
            .args(["--innodb-buffer-pool-size=16M", "--max-connections=10"]),
        &log,
    );
    assert_ready(waiter, &log);
    // max_connections, and the one more MariaDB keeps for an administrator, taken: the next
    // connection gets an ERR packet instead of the handshake. The slots are filled until one
    // is refused (the probe's own closed connection may still count for a moment), and filled
    // again if one was freed before the probe.
    let mut taken = Vec::new();
    let mut out = None;
    for _ in 0..3 {
        loop {
            let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
            let mut first = [0u8; 5];
            c.read_exact(&mut first).unwrap();
            if first[4] == 0xff {
                break;
            }
            assert_eq!(first[4], 10, "a handshake");
            taken.push(c);
            assert!(taken.len() <= 20, "max_connections=10 never refused");
        }
        let o = pod.run(&["wait", &url, "--timeout", "300ms"]);
        if o.status.code() != Some(0) {
            out = Some(o);
            break;
        }
    }
    let out = out.expect("a slot was freed three times over");
    assert_eq!(out.status.code(), Some(124), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("server says: ERROR 1040: Too many connections"),
        "{}",
        stderr(&out)
    );
    drop(taken);
    let out = pod.run(&["wait", &url, "--timeout", "20s"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// A loopback server that answers every connection with `answer` after reading what the
/// client sends first (when `read_first`), then closes.
fn answering(answer: &'static [u8], read_first: bool) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { return };
            if read_first {
                let mut buf = [0u8; 512];
                let _ = c.read(&mut buf);
            }
            let _ = c.write_all(answer);
        }
    });
    port
}

#[test]
fn a_server_answering_another_protocol_is_not_ready_and_the_reason_shows_what_it_sent() {
    let pod = Pod::new();
    let http = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
    for (scheme, protocol, read_first) in [
        ("postgres", "PostgreSQL", true),
        ("redis", "Redis", true),
        ("mysql", "MySQL", false),
    ] {
        let port = answering(http, read_first);
        let url = format!("{scheme}://127.0.0.1:{port}");
        let out = pod.run(&["wait", &url, "--timeout", "300ms"]);
        assert_eq!(out.status.code(), Some(124), "{url}: {}", stderr(&out));
        let want = format!("{url}: answered \"HTTP/1.1 400 Bad Request");
        let err = stderr(&out);
        assert!(err.contains(&want), "{want:?} missing: {err}");
        assert!(err.contains(&format!("(not {protocol}'s hello)")), "{err}");
    }
    // Nothing at all: the server closes at once.
    let port = answering(b"", true);
    let url = format!("redis://127.0.0.1:{port}");
    let out = pod.run(&["wait", &url, "--timeout", "300ms"]);
    assert!(
        stderr(&out).contains("closed the connection without answering"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_not_now_answers_of_each_protocol_are_not_ready() {
    let pod = Pod::new();
    // PostgreSQL: no TLS (N), then "the database system is starting up" (57P03).
    let fields = b"SFATAL\0C57P03\0Mthe database system is starting up\0\0";
    let mut starting = b"E".to_vec();
    starting.extend_from_slice(&(4 + fields.len() as u32).to_be_bytes());
    starting.extend_from_slice(fields);
    let pg = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut c) = conn else { return };
                let mut ssl_request = [0u8; 8];
                if c.read_exact(&mut ssl_request).is_err() {
                    continue;
                }
                let _ = c.write_all(b"N");
                let mut startup = [0u8; 512];
                let _ = c.read(&mut startup);
                let _ = c.write_all(&starting);
            }
        });
        port
    };
    let redis = answering(b"-LOADING Redis is loading the dataset in memory\r\n", true);
    for (url, want) in [
        (
            format!("postgres://127.0.0.1:{pg}"),
            "server says: the database system is starting up (SQLSTATE 57P03)",
        ),
        (
            format!("redis://127.0.0.1:{redis}"),
            "server says: LOADING Redis is loading the dataset in memory",
        ),
    ] {
        let out = pod.run(&["wait", &url, "--timeout", "300ms"]);
        assert_eq!(out.status.code(), Some(124), "{url}: {}", stderr(&out));
        assert!(stderr(&out).contains(want), "{want:?}: {}", stderr(&out));
    }
}
