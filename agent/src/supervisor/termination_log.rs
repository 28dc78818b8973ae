//! The termination log: the file Kubernetes reads a container's `terminationMessage` from
//! (`terminationMessagePath`, `/dev/termination-log` by default), at most 4096 bytes of it.
//!
//! `run` adds why CMD ended *after* what CMD wrote there itself: the app's own last words
//! come first and are never cut; `run`'s line is cut to what fits. Writing anything at all
//! makes the file non-empty, which turns off `terminationMessagePolicy:
//! FallbackToLogsOnError` (the kubelet uses the log's tail only when the file is empty), so
//! `--termination-log off` writes nothing.

use std::io::{Read, Write};
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

/// What to append to a termination log that holds `existing`, for `ours`: a newline if the
/// text before does not end with one, then as much of `ours` as fits in [`MAX`] bytes, cut at
/// a character boundary. Empty when nothing of ours fits.
pub fn addition(existing: &[u8], ours: &str) -> Vec<u8> {
    let newline = !existing.is_empty() && !existing.ends_with(b"\n");
    let room = MAX.saturating_sub(existing.len() + usize::from(newline));
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
    let mut file = match file {
        Ok(f) => f,
        Err(e) if create => {
            tracing::warn!("writing the termination log {}: {e}", path.display());
            return;
        }
        // No /dev/termination-log: not in Kubernetes, nothing to do.
        Err(_) => return,
    };
    let mut existing = Vec::new();
    let read = (&mut file).take(MAX as u64 + 1).read_to_end(&mut existing);
    let result = read.and_then(|_| file.write_all(&addition(&existing, why)));
    if let Err(e) = result {
        tracing::warn!("writing the termination log {}: {e}", path.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ours_goes_after_the_apps_text_and_only_ours_is_cut() {
        assert_eq!(addition(b"", "exited with code 3"), b"exited with code 3");
        assert_eq!(addition(b"db down", "exited"), b"\nexited");
        assert_eq!(addition(b"db down\n", "exited"), b"exited");
        // 4090 bytes of the app's: a newline and 5 of ours make 4096.
        let app = vec![b'a'; 4090];
        assert_eq!(addition(&app, "exited with code 3"), b"\nexite");
        // Full, or over: nothing of ours, not even the newline.
        assert!(addition(&vec![b'a'; 4095], "exited").is_empty());
        assert!(addition(&vec![b'a'; 5000], "exited").is_empty());
        // Cut at a character boundary: 'é' is two bytes, one fits.
        assert_eq!(addition(&vec![b'a'; 4093], "xé"), b"\nx");
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
