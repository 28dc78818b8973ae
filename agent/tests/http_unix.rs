//! The agent on a unix socket (`--listen unix:PATH`): the CLI and raw HTTP reach it, the
//! socket's file mode is the access control, and a clean stop removes the socket.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::process::Stdio;
use std::time::Duration;

use common::*;

#[test]
fn the_agent_serves_the_volume_on_a_unix_socket() {
    let pod = Pod::new();
    std::fs::create_dir_all(&pod.dir).unwrap();
    let socket = pod.dir.join("agent.sock");
    let listen = format!("unix:{}", socket.display());
    let mut agent = pod
        .cmd(&["agent", "--listen", &listen])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        eventually(Duration::from_secs(10), || UnixStream::connect(&socket)
            .is_ok()),
        "no socket at {}",
        socket.display()
    );
    let meta = std::fs::symlink_metadata(&socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o600,
        "--access owner: only the agent's UID may connect"
    );

    // The CLI through the socket, with another PODSIGNAL_DIR: only the agent can write it.
    let elsewhere = pod.path("elsewhere");
    let out = pod
        .cmd(&["--agent", &listen, "ready", "viasocket", "--reason", "unix"])
        .env("PODSIGNAL_DIR", &elsewhere)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        pod.run(&["wait", "viasocket", "--timeout", "1s"])
            .status
            .success(),
        "not written to the agent's volume"
    );

    // Raw HTTP over the socket.
    let mut conn = UnixStream::connect(&socket).unwrap();
    conn.write_all(
        b"GET /v1/readiness/viasocket HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"ready\":true"), "{response}");

    std::process::Command::new("kill")
        .args(["-TERM", &agent.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(wait_exit(&mut agent, Duration::from_secs(10)), Some(0));
    assert!(!socket.exists(), "the socket file was left behind");
}

#[test]
fn the_socket_mode_follows_access() {
    let pod = Pod::new();
    std::fs::create_dir_all(&pod.dir).unwrap();
    let socket = pod.dir.join("agent.sock");
    let listen = format!("unix:{}", socket.display());
    let mut agent = pod
        .cmd(&["--access", "group", "agent", "--listen", &listen])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(eventually(Duration::from_secs(10), || UnixStream::connect(
        &socket
    )
    .is_ok()));
    assert_eq!(
        std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777,
        0o660
    );
    agent.kill().unwrap();
    agent.wait().unwrap();
}
