//! The termination log: the file Kubernetes reads a container's `terminationMessage` from
//! (`terminationMessagePath`, `/dev/termination-log` by default), at most 4096 bytes of it.
//!
//! `run` adds why CMD ended *after* what CMD wrote there itself: the app's own last words
//! come first and are never cut; `run`'s line is cut to what fits. Writing anything at all
//! makes the file non-empty, which turns off `terminationMessagePolicy:
//! FallbackToLogsOnError` (the kubelet uses the log's tail only when the file is empty), so
//! `--termination-log off` writes nothing.

use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Where Kubernetes reads a container's termination message by default.
pub const K8S_DEFAULT: &str = "/dev/termination-log";
/// Kubernetes reads at most this much of the termination message.
pub const MAX: usize = 4096;

/// `run --termination-log`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TerminationLog {
    /// `off`: write nothing.
    Off,
    /// This file (created if missing).
    Path(PathBuf),
}

impl TerminationLog {
    /// `off`, or a path.
    pub fn parse(s: &str) -> Result<TerminationLog, String> {
        match s {
            "off" => Ok(TerminationLog::Off),
            "" => Err("expected a path, or `off` to write nothing".into()),
            p => Ok(TerminationLog::Path(PathBuf::from(p))),
        }
    }
}

/// What to append to a termination log of `len` bytes (the last a newline, or not), for
/// `ours`: a newline if the text before does not end with one, then as much of `ours` as fits
/// in [`MAX`] bytes, cut at a character boundary. Empty when nothing of ours fits.
pub fn addition(len: u64, ends_with_newline: bool, ours: &str) -> Vec<u8> {
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    let newline = len > 0 && !ends_with_newline;
    let room = MAX.saturating_sub(len.saturating_add(usize::from(newline)));
    let mut end = ours.len().min(room);
    while !ours.is_char_boundary(end) {
        end -= 1;
    }
    if end == 0 {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(end + 1);
    if newline {
        out.push(b'\n');
    }
    out.extend_from_slice(&ours.as_bytes()[..end]);
    out
}

/// Adds `why` to the termination log `target` asks for: `--termination-log PATH` (created
/// if missing), nothing with `off`, else `/dev/termination-log` if it exists and is
/// writable (never created there). Failures are logged, never fatal.
pub fn write(target: Option<&TerminationLog>, why: &str) {
    let (path, create) = match target {
        Some(TerminationLog::Off) => return,
        Some(TerminationLog::Path(p)) => (p.as_path(), true),
        None => (Path::new(K8S_DEFAULT), false),
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create(create)
        .open(path);
    // No /dev/termination-log: not in Kubernetes, nothing to do.
    if file.is_err() && !create {
        return;
    }
    // What CMD wrote: only its length and last byte matter.
    let result = file.and_then(|mut file| {
        let len = file.metadata()?.len();
        let mut last = [0u8];
        if len > 0 {
            file.read_exact_at(&mut last, len - 1)?;
        }
        file.write_all(&addition(len, last == *b"\n", why))
    });
    if let Err(e) = result {
        tracing::warn!("writing the termination log {}: {e}", path.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ours_goes_after_the_apps_text_and_only_ours_is_cut() {
        assert_eq!(
            addition(0, false, "exited with code 3"),
            b"exited with code 3"
        );
        assert_eq!(addition(7, false, "exited"), b"\nexited");
        assert_eq!(addition(8, true, "exited"), b"exited");
        // 4090 bytes of the app's: a newline and 5 of ours make 4096.
        assert_eq!(addition(4090, false, "exited with code 3"), b"\nexite");
        // Full, or over: nothing of ours, not even the newline.
        assert!(addition(4095, false, "exited").is_empty());
        assert!(addition(5000, false, "exited").is_empty());
        assert!(addition(u64::MAX, false, "exited").is_empty());
        // Cut at a character boundary: 'é' is two bytes, one fits.
        assert_eq!(addition(4093, false, "xé"), b"\nx");
    }

    #[test]
    fn off_and_paths_parse() {
        assert_eq!(TerminationLog::parse("off"), Ok(TerminationLog::Off));
        assert_eq!(
            TerminationLog::parse("/tmp/x"),
            Ok(TerminationLog::Path("/tmp/x".into()))
        );
        assert!(TerminationLog::parse("").is_err());
    }
}
