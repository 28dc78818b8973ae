//! `/proc/net/tcp` and `/proc/net/tcp6`: every TCP socket of this network namespace (in a
//! Pod, every container's), as text. Reading them costs time in proportion to the number of
//! connections, so sockets are asked of netlink first (`sock_diag`); these files are the
//! fallback where netlink cannot answer.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

use super::net::TcpSocket;

const TABLES: [&str; 2] = ["/proc/net/tcp", "/proc/net/tcp6"];

/// True when `/proc/net/tcp` can be read.
pub fn readable() -> bool {
    Path::new(TABLES[0]).exists()
}

/// Every TCP socket in the tables that can be read.
pub fn sockets() -> impl Iterator<Item = TcpSocket> {
    TABLES
        .iter()
        .filter_map(|t| std::fs::read_to_string(t).ok())
        .flat_map(|text| {
            text.lines()
                .skip(1)
                .filter_map(parse_line)
                .collect::<Vec<_>>()
        })
}

/// `  0: 0100007F:1F90 00000000:0000 0A ...`: local address and port (hex), remote address
/// and port, state (hex).
fn parse_line(line: &str) -> Option<TcpSocket> {
    let mut fields = line.split_whitespace();
    let local = fields.nth(1)?;
    let state = u8::from_str_radix(fields.nth(1)?, 16).ok()?;
    let (addr, port) = local.split_once(':')?;
    Some(TcpSocket {
        local: SocketAddr::new(parse_address(addr)?, u16::from_str_radix(port, 16).ok()?),
        state,
    })
}

/// An address as the kernel prints it: each 32-bit word of the network-order address read
/// as a native integer and printed in hex (`0100007F` is 127.0.0.1 on a little-endian host).
fn parse_address(hex: &str) -> Option<IpAddr> {
    let word = |i: usize| -> Option<[u8; 4]> {
        let text = hex.get(i * 8..i * 8 + 8)?;
        Some(u32::from_str_radix(text, 16).ok()?.to_ne_bytes())
    };
    match hex.len() {
        8 => Some(IpAddr::V4(Ipv4Addr::from(word(0)?))),
        32 => {
            let mut octets = [0u8; 16];
            for (i, chunk) in octets.chunks_exact_mut(4).enumerate() {
                chunk.copy_from_slice(&word(i)?);
            }
            Some(IpAddr::V6(Ipv6Addr::from(octets)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::condition::net::{TCP_ESTABLISHED, TCP_LISTEN};

    #[cfg(target_endian = "little")]
    #[test]
    fn parses_kernel_lines() {
        let s = parse_line("   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0").unwrap();
        assert_eq!(
            (s.local, s.state),
            ("127.0.0.1:8080".parse().unwrap(), TCP_LISTEN)
        );
        let s = parse_line("   1: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 0").unwrap();
        assert_eq!(s.local, "[::]:80".parse().unwrap());
        let s = parse_line("   2: 00000000000000000000000001000000:0050 0 01 0").unwrap();
        assert_eq!(
            (s.local, s.state),
            ("[::1]:80".parse().unwrap(), TCP_ESTABLISHED)
        );
        let s = parse_line("   3: 0000000000000000FFFF00000100007F:0050 0 0A 0").unwrap();
        assert_eq!(s.local, "[::ffff:127.0.0.1]:80".parse().unwrap());
        assert!(parse_line("  sl  local_address rem_address   st").is_none());
        assert!(parse_line("   4: 0100007:1F90 0 0A").is_none());
    }

    #[test]
    fn lists_a_real_listener() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        assert!(sockets().any(|s| s.local == addr && s.state == TCP_LISTEN));
    }
}
