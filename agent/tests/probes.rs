//! Probes against real sockets: `wait tcp:PORT` sees listeners (IPv4 and IPv6) through the
//! kernel, and only listeners, however many connections there are; `wait http://...` on a
//! loopback server that answers 503 until it is ready returns once it answers 200.

// Helpers outside #[test] fns unwrap too: in a test, a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::*;

/// A TCP socket that the processes parallel tests spawn do not inherit (std's sockets are
/// close-on-exec too; an inherited one would keep listening in someone else's child).
fn cloexec_socket(family: rustix::net::AddressFamily) -> rustix::fd::OwnedFd {
    use rustix::net::{SocketFlags, SocketType, socket_with};
    socket_with(family, SocketType::STREAM, SocketFlags::CLOEXEC, None).unwrap()
}

/// A TCP socket bound to a free port of `loopback` but not listening: the port stays ours
/// (no parallel test can take it), and nothing listens on it until [`rustix::net::listen`].
fn bound_socket(loopback: &str) -> (rustix::fd::OwnedFd, u16) {
    use rustix::net::{AddressFamily, bind, getsockname};
    let ip: IpAddr = loopback.parse().unwrap();
    let family = if ip.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let fd = cloexec_socket(family);
    bind(&fd, &SocketAddr::new(ip, 0)).unwrap();
    let addr = SocketAddr::try_from(getsockname(&fd).unwrap()).unwrap();
    (fd, addr.port())
}

/// True if the waiter is still waiting after 100 ms (it cannot have seen what is not there).
fn still_waiting(waiter: &mut Child) -> bool {
    !eventually(Duration::from_millis(100), || {
        waiter.try_wait().unwrap().is_some()
    })
}

#[test]
fn wait_tcp_holds_once_a_late_listener_binds_on_ipv4_or_ipv6() {
    for (loopback, cond) in [
        ("127.0.0.1", "tcp:{port}"),
        ("::1", "tcp:{port}"),
        ("::1", "tcp:[::1]:{port}"),
    ] {
        let mut pod = Pod::new();
        let (socket, port) = bound_socket(loopback);
        let cond = cond.replace("{port}", &port.to_string());
        let w = pod.spawn(&["wait", &cond, "--timeout", "5s"]);
        let mut waiter = pod.take(w);
        assert!(
            still_waiting(&mut waiter),
            "{cond} held before {loopback} listened"
        );
        rustix::net::listen(&socket, 16).unwrap();
        assert_eq!(
            wait_exit(&mut waiter, Duration::from_secs(5)),
            Some(0),
            "{cond} on {loopback}"
        );
    }
}

#[test]
fn wait_tcp_exits_124_while_the_port_is_bound_but_not_listening() {
    let pod = Pod::new();
    let (_bound, port) = bound_socket("127.0.0.1");
    let out = pod.run(&["wait", &format!("tcp:{port}"), "--timeout", "300ms"]);
    assert_eq!(out.status.code(), Some(124), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("nothing listening"),
        "{}",
        stderr(&out)
    );
}

/// A loopback listener without `SO_REUSEADDR` (std sets it): its accepted connections do
/// not have it either, so while they last no other socket of this process's parallel tests
/// can bind their port (a bind beside established sockets needs the option on both sides).
fn listener_keeping_its_port() -> TcpListener {
    use rustix::net::{AddressFamily, bind, listen};
    let fd = cloexec_socket(AddressFamily::INET);
    bind(&fd, &SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    listen(&fd, 128).unwrap();
    TcpListener::from(fd)
}

#[test]
fn established_connections_are_not_mistaken_for_a_listener() {
    let pod = Pod::new();
    let listener = listener_keeping_its_port();
    let port = listener.local_addr().unwrap().port();
    // Each accepted before the next connects, so the backlog never fills.
    // A parallel test's `[::1]:0` listener could be given the same port number (another
    // address): `tcp:PORT` would rightly see it. Hold [::1]:PORT too, bound, not listening.
    let v6 = cloexec_socket(rustix::net::AddressFamily::INET6);
    rustix::net::bind(
        &v6,
        &SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port)),
    )
    .unwrap();
    let (clients, accepted): (Vec<TcpStream>, Vec<TcpStream>) = (0..300)
        .map(|_| {
            let client = TcpStream::connect(("127.0.0.1", port)).unwrap();
            (client, listener.accept().unwrap().0)
        })
        .unzip();
    let wait = |port: u16| {
        pod.run(&["wait", &format!("tcp:{port}"), "--timeout", "300ms"])
            .status
            .code()
    };
    assert_eq!(wait(port), Some(0), "the listener among 300 connections");
    let client_port = clients[0].local_addr().unwrap().port();
    assert_eq!(wait(client_port), Some(124), "a client's port");
    drop(listener);
    // 300 connections stay established on the port, with nothing listening on it.
    assert_eq!(wait(port), Some(124), "established, no longer listening");
    drop((clients, accepted, v6));
}

/// A loopback HTTP server that answers `/ready` with 503 until `ready` is set, then 200,
/// counting requests.
fn readiness_endpoint(listener: TcpListener, ready: Arc<AtomicBool>, asked: Arc<AtomicUsize>) {
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { return };
            let mut buf = [0u8; 1024];
            let _ = c.read(&mut buf);
            asked.fetch_add(1, Ordering::SeqCst);
            let status = if ready.load(Ordering::SeqCst) {
                "200 OK"
            } else {
                "503 Service Unavailable"
            };
            let _ = write!(c, "HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n");
        }
    });
}

#[test]
fn wait_http_on_loopback_holds_once_503_turns_200() {
    for host in ["127.0.0.1", "localhost", "[::1]"] {
        let mut pod = Pod::new();
        let bind = if host == "[::1]" { "::1" } else { "127.0.0.1" };
        let listener = TcpListener::bind((bind, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let (ready, asked) = (Arc::default(), Arc::default());
        readiness_endpoint(listener, Arc::clone(&ready), Arc::clone(&asked));
        let w = pod.spawn(&[
            "wait",
            &format!("http://{host}:{port}/ready"),
            "--timeout",
            "10s",
        ]);
        let mut waiter = pod.take(w);
        assert!(
            eventually(Duration::from_secs(5), || asked.load(Ordering::SeqCst) >= 3),
            "{host}: never asked three times"
        );
        assert!(
            waiter.try_wait().unwrap().is_none(),
            "{host}: held on a 503"
        );
        ready.store(true, Ordering::SeqCst);
        assert_eq!(
            wait_exit(&mut waiter, Duration::from_secs(5)),
            Some(0),
            "{host}"
        );
    }
}

#[test]
fn run_wait_for_http_starts_the_command_once_503_turns_200() {
    let mut pod = Pod::new();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (ready, asked) = (Arc::default(), Arc::default());
    readiness_endpoint(listener, Arc::clone(&ready), Arc::clone(&asked));
    let marker = pod.path("started");
    let w = pod.spawn(&[
        "run",
        "--wait-for",
        &format!("http://127.0.0.1:{port}/ready"),
        "--timeout",
        "10s",
        "--",
        "touch",
        marker.to_str().unwrap(),
    ]);
    let mut run = pod.take(w);
    assert!(eventually(Duration::from_secs(5), || asked
        .load(Ordering::SeqCst)
        >= 3));
    assert!(!marker.exists(), "the command started on a 503");
    ready.store(true, Ordering::SeqCst);
    assert_eq!(wait_exit(&mut run, Duration::from_secs(5)), Some(0));
    assert!(marker.exists());
}
