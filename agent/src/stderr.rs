//! Writing to stderr when stderr may be gone. Logs reach `kubectl logs` through a pipe the
//! container runtime owns, and a shell's `2>&1 | head` or a log collector that went away
//! closes it. Rust's `eprintln!` panics when its write fails (EPIPE), and tracing-subscriber
//! reports a failed write with `eprintln!`: a panic in whatever task was logging, which left
//! an agent unable to finish its shutdown on SIGTERM. Everything podsignal writes to stderr
//! goes through here (logs: [`Stderr`]; lines: `say!`): a line that cannot be written is
//! dropped, never a panic.

use std::io::{self, Write};

/// Stderr for the log subscriber: a failed write is dropped (reported written).
#[derive(Debug, Clone, Copy)]
pub struct Stderr;

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(io::stderr().write(buf).unwrap_or(buf.len()))
    }

    fn flush(&mut self) -> io::Result<()> {
        let _ = io::stderr().flush();
        Ok(())
    }
}

/// Writes `args` and a newline to stderr, dropping them if stderr is gone (`say!`). In one
/// write: stderr is unbuffered, and a line written piece by piece interleaves with another
/// process writing to the same pipe (`run` and the command it starts).
pub fn line(args: std::fmt::Arguments<'_>) {
    let mut text = args.to_string();
    text.push('\n');
    let _ = io::stderr().lock().write_all(text.as_bytes());
}
