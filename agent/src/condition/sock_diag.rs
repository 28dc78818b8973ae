//! The TCP sockets on a local port in one state, asked of the kernel over netlink
//! (`NETLINK_SOCK_DIAG`, what `ss` uses): one dump for IPv4 and one for IPv6. Asked for
//! LISTEN only, the kernel walks its table of listeners and never the established
//! connections, so the cost does not grow with the connections a busy proxy holds
//! (`/proc/net/tcp` formats every one of them as text, on every read). The request also
//! names the port, which the kernel uses to skip other sockets before formatting them; the
//! replies are checked again by the caller anyway.
//!
//! The messages are built and read by hand, every field bounds-checked; the layouts are
//! those of `linux/netlink.h`, `linux/sock_diag.h` and `linux/inet_diag.h`.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use rustix::net::netlink::{self, SocketAddrNetlink};
use rustix::net::sockopt::{Timeout, set_socket_timeout};
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};

#[cfg(test)]
use super::net::TCP_ESTABLISHED;
use super::net::{TCP_LISTEN, TcpSocket};

/// `struct nlmsghdr`: length, type, flags, sequence number, port id.
const HEADER_LEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x01;
/// `NLM_F_ROOT | NLM_F_MATCH`.
const NLM_F_DUMP: u16 = 0x300;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
const IPPROTO_TCP: u8 = 6;
/// `struct inet_diag_req_v2`: family, protocol, extensions, pad, states, then the
/// 48-byte `struct inet_diag_sockid` (source port at 8, destination port at 10, ...).
const REQUEST_LEN: usize = 56;
/// `struct inet_diag_msg` up to the end of the local address: family, state, timer,
/// retransmits, then the sockid: source port at 4 (big-endian), source address at 8.
const REPLY_MIN_LEN: usize = 24;
/// Dumps come in datagrams of at most 32 KiB (the kernel's cap for a dump's buffer).
const RECEIVE_BUFFER: usize = 32 * 1024;
/// The kernel answers at once; this only keeps a broken netlink from blocking a thread.
const RECEIVE_TIMEOUT: Duration = Duration::from_secs(1);

/// The TCP sockets listening on `port`, IPv4 and IPv6 (a dual-stack `[::]` socket is
/// IPv6); every listener when `port` is 0. `Err` when netlink cannot answer: no such
/// protocol, a seccomp filter, ...
pub fn listeners_on(port: u16) -> io::Result<Vec<TcpSocket>> {
    sockets_on(port, TCP_LISTEN)
}

/// The TCP sockets in `state` (`TCP_LISTEN`, `TCP_ESTABLISHED`, ...) whose local port is
/// `port` (any port when 0), IPv4 and IPv6.
pub fn sockets_on(port: u16, state: u8) -> io::Result<Vec<TcpSocket>> {
    let fd = rustix::net::socket_with(
        AddressFamily::NETLINK,
        SocketType::RAW,
        SocketFlags::CLOEXEC,
        Some(netlink::SOCK_DIAG),
    )?;
    set_socket_timeout(&fd, Timeout::Recv, Some(RECEIVE_TIMEOUT))?;
    let kernel = SocketAddrNetlink::new(0, 0);
    let mut buf = vec![0u8; RECEIVE_BUFFER];
    let mut found = Vec::new();
    for (seq, family) in [(1, AF_INET), (2, AF_INET6)] {
        rustix::net::sendto(
            &fd,
            &request(family, port, state, seq),
            SendFlags::empty(),
            &kernel,
        )?;
        loop {
            let (n, whole) = rustix::net::recv(&fd, &mut buf[..], RecvFlags::empty())?;
            if whole > n {
                return Err(malformed("a reply larger than the buffer"));
            }
            if read_datagram(&buf[..n], seq, &mut found)? == Progress::Done {
                break;
            }
        }
    }
    Ok(found)
}

/// A `SOCK_DIAG_BY_FAMILY` dump request for the TCP sockets of `family` in `state` on
/// local `port`.
fn request(family: u8, port: u16, state: u8, seq: u32) -> [u8; HEADER_LEN + REQUEST_LEN] {
    let mut m = [0u8; HEADER_LEN + REQUEST_LEN];
    m[0..4].copy_from_slice(&((HEADER_LEN + REQUEST_LEN) as u32).to_ne_bytes());
    m[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    m[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    m[8..12].copy_from_slice(&seq.to_ne_bytes());
    // Port id 0 (bytes 12..16): the kernel assigns ours.
    let r = &mut m[HEADER_LEN..];
    r[0] = family;
    r[1] = IPPROTO_TCP;
    // No extensions (r[2]), padding (r[3]).
    r[4..8].copy_from_slice(&(1u32 << state).to_ne_bytes());
    r[8..10].copy_from_slice(&port.to_be_bytes());
    m
}

/// Whether a dump has more datagrams to come.
#[derive(Debug, PartialEq, Eq)]
enum Progress {
    More,
    Done,
}

/// Reads one datagram of the reply to request `seq`, adding its sockets to `found`.
/// Messages for another sequence number are skipped; an error message becomes `Err`.
fn read_datagram(
    mut datagram: &[u8],
    seq: u32,
    found: &mut Vec<TcpSocket>,
) -> io::Result<Progress> {
    while !datagram.is_empty() {
        let len = u32::from_ne_bytes(field(datagram, 0)?) as usize;
        if len < HEADER_LEN || len > datagram.len() {
            return Err(malformed("a message length outside the datagram"));
        }
        let kind = u16::from_ne_bytes(field(datagram, 4)?);
        let message_seq = u32::from_ne_bytes(field(datagram, 8)?);
        let payload = &datagram[HEADER_LEN..len];
        // Messages are padded to 4 bytes; the last one may not be.
        datagram = &datagram[len.next_multiple_of(4).min(datagram.len())..];
        if message_seq != seq {
            continue;
        }
        match kind {
            NLMSG_DONE => return Ok(Progress::Done),
            NLMSG_ERROR => match i32::from_ne_bytes(field(payload, 0)?) {
                0 => {}
                errno => return Err(io::Error::from_raw_os_error(errno.saturating_neg())),
            },
            SOCK_DIAG_BY_FAMILY => found.push(socket(payload)?),
            _ => {}
        }
    }
    Ok(Progress::More)
}

/// The local address and state of one `struct inet_diag_msg`.
fn socket(msg: &[u8]) -> io::Result<TcpSocket> {
    if msg.len() < REPLY_MIN_LEN {
        return Err(malformed("a socket message too short"));
    }
    let ip = match msg[0] {
        AF_INET => IpAddr::V4(Ipv4Addr::from(field::<4>(msg, 8)?)),
        AF_INET6 => IpAddr::V6(Ipv6Addr::from(field::<16>(msg, 8)?)),
        other => return Err(malformed(&format!("address family {other}"))),
    };
    Ok(TcpSocket {
        local: SocketAddr::new(ip, u16::from_be_bytes(field(msg, 4)?)),
        state: msg[1],
    })
}

/// `N` bytes of `bytes` from `at`, or `Err` if they are not all there.
fn field<const N: usize>(bytes: &[u8], at: usize) -> io::Result<[u8; N]> {
    bytes
        .get(at..at.saturating_add(N))
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| malformed("a field past the end"))
}

fn malformed(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("sock_diag reply with {what}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message as the kernel frames it: header, payload, padding to 4 bytes.
    fn message(kind: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&((HEADER_LEN + payload.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&2u16.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&1234u32.to_ne_bytes());
        m.extend_from_slice(payload);
        m.resize(m.len().next_multiple_of(4), 0);
        m
    }

    /// A 72-byte `inet_diag_msg`.
    fn diag_msg(family: u8, state: u8, addr: &[u8], port: u16) -> Vec<u8> {
        let mut m = vec![0u8; 72];
        m[0] = family;
        m[1] = state;
        m[4..6].copy_from_slice(&port.to_be_bytes());
        m[8..8 + addr.len()].copy_from_slice(addr);
        m
    }

    #[test]
    fn the_request_asks_for_tcp_listeners_on_the_port() {
        let m = request(AF_INET6, 8080, TCP_LISTEN, 7);
        assert_eq!(u32::from_ne_bytes(m[0..4].try_into().unwrap()), 72);
        assert_eq!(u16::from_ne_bytes(m[4..6].try_into().unwrap()), 20);
        assert_eq!(u16::from_ne_bytes(m[6..8].try_into().unwrap()), 0x301);
        assert_eq!(u32::from_ne_bytes(m[8..12].try_into().unwrap()), 7);
        assert_eq!(&m[16..20], &[10, 6, 0, 0]);
        assert_eq!(u32::from_ne_bytes(m[20..24].try_into().unwrap()), 1 << 10);
        assert_eq!(&m[24..26], &[0x1f, 0x90]);
        assert!(m[26..].iter().all(|b| *b == 0));
    }

    #[test]
    fn reads_sockets_of_both_families_then_done() {
        let mut datagram = message(20, 1, &diag_msg(AF_INET, 10, &[127, 0, 0, 1], 8080));
        let v6 = Ipv6Addr::LOCALHOST.octets();
        datagram.extend(message(20, 1, &diag_msg(AF_INET6, 10, &v6, 443)));
        let mut found = Vec::new();
        assert_eq!(
            read_datagram(&datagram, 1, &mut found).unwrap(),
            Progress::More
        );
        let done = message(NLMSG_DONE, 1, &0i32.to_ne_bytes());
        assert_eq!(read_datagram(&done, 1, &mut found).unwrap(), Progress::Done);
        let local: Vec<SocketAddr> = found.iter().map(|s| s.local).collect();
        assert_eq!(
            local,
            [
                "127.0.0.1:8080".parse().unwrap(),
                "[::1]:443".parse().unwrap()
            ]
        );
        assert!(found.iter().all(|s| s.state == TCP_LISTEN));
    }

    #[test]
    fn skips_other_requests_and_reports_kernel_errors() {
        let mut found = Vec::new();
        let stale = message(20, 9, &diag_msg(AF_INET, 10, &[127, 0, 0, 1], 1));
        assert_eq!(
            read_datagram(&stale, 1, &mut found).unwrap(),
            Progress::More
        );
        assert!(found.is_empty());
        let refused = message(NLMSG_ERROR, 1, &(-2i32).to_ne_bytes());
        let e = read_datagram(&refused, 1, &mut found).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(2));
    }

    #[test]
    fn refuses_truncated_and_lying_messages() {
        let mut found = Vec::new();
        let whole = message(20, 1, &diag_msg(AF_INET, 10, &[127, 0, 0, 1], 80));
        for cut in 1..whole.len() {
            assert!(
                read_datagram(&whole[..cut], 1, &mut found).is_err(),
                "{cut}"
            );
        }
        let mut lying = whole.clone();
        lying[0..4].copy_from_slice(&1000u32.to_ne_bytes());
        assert!(read_datagram(&lying, 1, &mut found).is_err());
        lying[0..4].copy_from_slice(&3u32.to_ne_bytes());
        assert!(read_datagram(&lying, 1, &mut found).is_err());
        let short = message(20, 1, &[AF_INET, 10, 0, 0]);
        assert!(read_datagram(&short, 1, &mut found).is_err());
        let unix = message(20, 1, &diag_msg(1, 10, &[], 80));
        assert!(read_datagram(&unix, 1, &mut found).is_err());
        assert!(found.is_empty());
    }

    #[test]
    fn the_kernel_lists_a_real_listener_and_not_its_connections() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (accepted, _) = l.accept().unwrap();
        let found = listeners_on(port).expect("NETLINK_SOCK_DIAG answers");
        assert_eq!(
            found.iter().map(|s| s.local).collect::<Vec<_>>(),
            [l.local_addr().unwrap()]
        );
        // While `l` listens, no other socket can take its port: the one established socket
        // with it as local port is the accepted one (the client's local port is another).
        let established = sockets_on(port, TCP_ESTABLISHED).unwrap();
        assert_eq!(
            established.iter().map(|s| s.local).collect::<Vec<_>>(),
            [accepted.local_addr().unwrap()]
        );
        assert!(established.iter().all(|s| s.state == TCP_ESTABLISHED));
        drop((conn, accepted));
        let closed = sockets_on(port, TCP_ESTABLISHED).unwrap();
        assert!(closed.is_empty(), "{closed:?}");
    }
}
