//! Protocol probes (`postgres://`, `redis://`, `mysql://`): the server must answer its own
//! protocol's hello, which an open port alone does not show (a server still starting, loading
//! its data, or out of connections listens already). No client library and no credentials:
//! a few bytes each way, then the connection is closed.
//!
//! - PostgreSQL: an `SSLRequest`, answered `S` or `N`; after `N`, a startup packet for the
//!   user `podsignal`. An authentication request, or any refusal of that login, is ready: the
//!   server accepts logins. "Starting up", "shutting down", "in recovery" (SQLSTATE 57P03) and
//!   "too many clients" (53300) are not. After `S` the login would need TLS: `S` is ready.
//! - Redis: `PING`, answered `+PONG`. `-NOAUTH` (a password is required) is ready: the server
//!   serves clients that have one. `-LOADING` and any other error answer are not.
//! - MySQL/MariaDB: the server's first packet, an initial handshake of protocol version 10.
//!   An ERR packet instead ("Too many connections", "Host ... is blocked") is not ready.
//!
//! Anything else is not ready, with what the server sent.

use std::time::Duration;

use podsignal_proto::{Service, ServiceCheck};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The whole exchange, connection included, must end within this.
const LIMIT: Duration = Duration::from_secs(2);
/// The most read of one answer: a hello is far smaller.
const MAX_ANSWER: usize = 4096;

/// Checks once that the server answers `check`'s protocol.
pub async fn check(check: &ServiceCheck) -> Result<(), String> {
    let protocol = check.service.protocol();
    let talk = async {
        let mut stream = super::net::connect(&check.target.host, check.target.port).await?;
        match check.service {
            Service::Postgres => postgres(&mut stream).await,
            Service::Redis => redis(&mut stream).await,
            Service::Mysql => mysql(&mut stream).await,
        }
    };
    tokio::time::timeout(LIMIT, talk).await.unwrap_or_else(|_| {
        Err(format!(
            "no {protocol} answer within {}",
            podsignal_proto::format_duration(LIMIT)
        ))
    })
}

/// `SSLRequest`: length 8, code 80877103.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
/// Protocol 3.0, in a startup packet.
const PROTOCOL_3: [u8; 4] = [0, 3, 0, 0];
const PG: Service = Service::Postgres;
/// SQLSTATEs that say the server does not take logins now: cannot_connect_now (starting
/// up, shutting down, in recovery) and too_many_connections.
const PG_NOT_NOW: [&str; 2] = ["57P03", "53300"];

async fn postgres(stream: &mut TcpStream) -> Result<(), String> {
    send(stream, &SSL_REQUEST).await?;
    let answer = read_at_least(stream, 1, PG).await?;
    match answer.first() {
        Some(b'S') => return Ok(()),
        Some(b'N') => {}
        Some(b'E') => return pg_error(stream, answer).await,
        _ => return Err(garbage(&answer, Service::Postgres)),
    }
    let params = b"user\0podsignal\0application_name\0podsignal probe\0\0";
    let len = u32::try_from(8 + params.len()).unwrap_or(u32::MAX);
    let mut startup = len.to_be_bytes().to_vec();
    startup.extend_from_slice(&PROTOCOL_3);
    startup.extend_from_slice(params);
    send(stream, &startup).await?;
    let answer = read_at_least(stream, 1, PG).await?;
    match answer.first() {
        // An authentication request (or AuthenticationOk), or a protocol downgrade.
        Some(b'R' | b'v') => Ok(()),
        Some(b'E') => pg_error(stream, answer).await,
        _ => Err(garbage(&answer, Service::Postgres)),
    }
}

/// An `ErrorResponse` (`E`, length, fields `Cxxxxx\0`, `Mtext\0`, ...): not ready when it
/// says the server takes no logins now, else ready (the login was refused: no credentials).
async fn pg_error(stream: &mut TcpStream, mut answer: Vec<u8>) -> Result<(), String> {
    if answer.len() < 5 {
        answer.extend(read_at_least(stream, 5 - answer.len(), PG).await?);
    }
    let len = u32::from_be_bytes([answer[1], answer[2], answer[3], answer[4]]) as usize;
    if !(4..=MAX_ANSWER).contains(&len) {
        return Err(garbage(&answer, Service::Postgres));
    }
    while answer.len() < 1 + len {
        answer.extend(read_at_least(stream, 1, PG).await?);
    }
    let field = |tag: u8| {
        answer[5..1 + len]
            .split(|b| *b == 0)
            .find(|f| f.first() == Some(&tag))
            .map(|f| String::from_utf8_lossy(&f[1..]).into_owned())
    };
    let code = field(b'C').unwrap_or_default();
    if PG_NOT_NOW.contains(&code.as_str()) {
        let message = field(b'M').unwrap_or_default();
        return Err(format!("server says: {message} (SQLSTATE {code})"));
    }
    Ok(())
}

async fn redis(stream: &mut TcpStream) -> Result<(), String> {
    send(stream, b"*1\r\n$4\r\nPING\r\n").await?;
    let mut answer = read_at_least(stream, 1, Service::Redis).await?;
    while !answer.ends_with(b"\r\n") && answer.len() < MAX_ANSWER {
        match read_at_least(stream, 1, Service::Redis).await {
            Ok(more) => answer.extend(more),
            Err(_) => break,
        }
    }
    let line = String::from_utf8_lossy(&answer);
    let line = line.trim_end();
    if line == "+PONG" || line.starts_with("-NOAUTH") {
        return Ok(());
    }
    match line.strip_prefix('-') {
        Some(error) => Err(format!("server says: {error}")),
        None => Err(garbage(&answer, Service::Redis)),
    }
}

async fn mysql(stream: &mut TcpStream) -> Result<(), String> {
    let mut packet = read_at_least(stream, 5, Service::Mysql).await?;
    let len = u32::from_le_bytes([packet[0], packet[1], packet[2], 0]) as usize;
    let error = packet[4] == 0xff;
    if packet[3] != 0 || !(1..=MAX_ANSWER).contains(&len) || !(packet[4] == 10 || error) {
        return Err(garbage(&packet, Service::Mysql));
    }
    if !error {
        return Ok(());
    }
    // ERR: 0xff, a 2-byte code, the message (after `#` and a SQLSTATE in newer servers).
    while packet.len() < 4 + len {
        packet.extend(read_at_least(stream, 1, Service::Mysql).await?);
    }
    let body = &packet[4..4 + len];
    let code = body
        .get(1..3)
        .map_or(0, |c| u16::from_le_bytes([c[0], c[1]]));
    let message = body.get(3..).unwrap_or_default();
    let message = match message.strip_prefix(b"#") {
        Some(rest) => rest.get(5..).unwrap_or_default(),
        None => message,
    };
    Err(format!(
        "server says: ERROR {code}: {}",
        String::from_utf8_lossy(message)
    ))
}

async fn send(stream: &mut TcpStream, bytes: &[u8]) -> Result<(), String> {
    stream.write_all(bytes).await.map_err(|e| super::io_why(&e))
}

/// Reads until at least `n` bytes came (a read returns what has arrived, up to
/// [`MAX_ANSWER`]); `Err` if the server closed the connection before.
async fn read_at_least(
    stream: &mut TcpStream,
    n: usize,
    service: Service,
) -> Result<Vec<u8>, String> {
    let mut got = Vec::new();
    let mut chunk = [0u8; MAX_ANSWER];
    while got.len() < n {
        let read = stream
            .read(&mut chunk)
            .await
            .map_err(|e| super::io_why(&e))?;
        if read == 0 {
            return Err(if got.is_empty() {
                "closed the connection without answering".into()
            } else {
                garbage(&got, service)
            });
        }
        got.extend_from_slice(&chunk[..read]);
    }
    Ok(got)
}

/// "answered "HTTP/1.1 400 Bad Request\r\n..." (not PostgreSQL's hello)".
fn garbage(answer: &[u8], service: Service) -> String {
    const SHOWN: usize = 40;
    let shown = answer[..answer.len().min(SHOWN)].escape_ascii();
    let more = if answer.len() > SHOWN { "..." } else { "" };
    format!(
        "answered \"{shown}{more}\" (not {}'s hello)",
        service.protocol()
    )
}
