//! Who this process is, as recorded in every record it writes.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use podsignal_proto::Identity;

/// The environment variable naming this container or component (`source` in records).
pub const NAME_ENV: &str = "PODSIGNAL_NAME";

static INCARNATION: OnceLock<String> = OnceLock::new();

/// This process's incarnation id: 16 random hex digits, fixed for the life of the process.
pub fn incarnation() -> &'static str {
    INCARNATION.get_or_init(|| format!("{:016x}", nonce()))
}

/// Fills `buf` with random bytes from the kernel (getrandom(2), waiting, at boot, until its
/// pool is ready). The system call itself, not the `getrandom` crate: in a static binary
/// that crate cannot find glibc's wrapper and opens, polls and reads `/dev/urandom` instead,
/// five system calls at the start of every command.
pub fn fill_random(buf: &mut [u8]) -> std::io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        match rustix::rand::getrandom(&mut buf[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(std::io::Error::from_raw_os_error(e.raw_os_error())),
        }
    }
    Ok(())
}

/// A random 64-bit number (for incarnations and temporary file names).
pub fn nonce() -> u64 {
    let mut b = [0u8; 8];
    if fill_random(&mut b).is_err() {
        // No entropy source: fall back to time and pid, still unique enough for temp names.
        let t = now_ms() ^ (u64::from(std::process::id()) << 40);
        return t.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    u64::from_le_bytes(b)
}

/// The identity of this process, with `source` from `PODSIGNAL_NAME` when set.
pub fn current() -> Identity {
    let uname = rustix::system::uname();
    Identity {
        pid: std::process::id(),
        hostname: uname.nodename().to_string_lossy().into_owned(),
        source: std::env::var(NAME_ENV).ok().filter(|s| !s.is_empty()),
        incarnation: incarnation().to_owned(),
    }
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
