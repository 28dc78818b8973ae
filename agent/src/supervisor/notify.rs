//! `--ready-when notify`: the systemd `sd_notify` protocol, for the child.
//!
//! `run` binds a datagram socket (abstract `@podsignal-notify-PID-NONCE` by default, or
//! `--notify-socket PATH`) and sets `NOTIFY_SOCKET` for the child. With `SO_PASSCRED` the
//! kernel attaches the sender's pid to every datagram; only datagrams from the child or its
//! descendants (walking `/proc/PID/stat` parents) are accepted, so `systemd-notify --ready`
//! from a script the child runs works, and an unrelated process in the same network
//! namespace (another container of the Pod) is ignored. A sender that exited before its
//! datagram was read is accepted only when `run` is PID 1 ([`accepted_sender`]).
//!
//! Messages: `READY=1` ready; `STOPPING=1` unready; `RELOADING=1` unready until the next
//! `READY=1`; `STATUS=` the reason shown with the record; `WATCHDOG=1` a ping, missed
//! deadlines (`WATCHDOG_USEC`, from `--watchdog` or the child) make it unready and publish a
//! `watchdog` event (with `--watchdog`, CMD also gets `WATCHDOG_PID`, its own pid:
//! [`through_watchdog_exec`]); `EXTEND_TIMEOUT_USEC` extends the kill deadline while
//! stopping (there is no start deadline to extend once CMD runs); `EXIT_STATUS=` and
//! `ERRNO=` are kept for the tombstone's reason when CMD exits; `MAINPID` adds a process
//! whose descendants may also notify; `BARRIER=1` is answered by closing the passed
//! descriptor once every earlier message has been applied.

use std::ffi::OsString;
use std::io::IoSliceMut;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SocketAddrUnix,
    SocketFlags, SocketType,
};
use tokio::sync::mpsc;

use crate::reaper::parent_of;

/// One message from the child.
#[derive(Debug)]
pub enum NotifyMessage {
    /// `READY=1`.
    Ready,
    /// `STOPPING=1`.
    Stopping,
    /// `RELOADING=1`.
    Reloading,
    /// `STATUS=...`.
    Status(String),
    /// `WATCHDOG=1`.
    Watchdog,
    /// `WATCHDOG=trigger`: the child says it is unhealthy.
    WatchdogTrigger,
    /// `WATCHDOG_USEC=N`.
    WatchdogUsec(u64),
    /// `EXTEND_TIMEOUT_USEC=N`.
    ExtendTimeout(Duration),
    /// `MAINPID=N`.
    MainPid(i32),
    /// `BARRIER=1`: drop the descriptor when reached.
    Barrier(Vec<OwnedFd>),
    /// `EXIT_STATUS=...`: how the child says it ended (a code or a word), for the tombstone.
    ExitStatus(String),
    /// `ERRNO=N`: the error the child says it failed with, for the tombstone.
    Errno(i32),
    /// The marker `run` sent itself ([`FlushMarker`]): everything sent before it was read.
    Flushed,
}

/// The bound socket: what to put in `NOTIFY_SOCKET`, and the messages.
#[derive(Debug)]
pub struct NotifySocket {
    /// The value of `NOTIFY_SOCKET` for the child.
    pub env_value: String,
    /// Accepted messages, in order.
    pub messages: mpsc::UnboundedReceiver<NotifyMessage>,
    /// The child's pid, set once spawned: datagrams must come from it or its descendants.
    pub child_pid: Arc<OnceLock<i32>>,
    /// A `MAINPID=` the child named, whose descendants are accepted too.
    main_pid: Arc<std::sync::atomic::AtomicI32>,
    /// The bound address, for [`FlushMarker`].
    addr: SocketAddrUnix,
}

/// Sends `run`'s own marker datagram to the notify socket; it is read after everything the
/// child sent before it (a datagram socket keeps the order), as [`NotifyMessage::Flushed`].
#[derive(Debug)]
pub struct FlushMarker {
    addr: SocketAddrUnix,
}

impl FlushMarker {
    /// Sends the marker.
    pub fn send(&self) -> rustix::io::Result<()> {
        let fd = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC,
            None,
        )?;
        rustix::net::sendto(&fd, b"", rustix::net::SendFlags::empty(), &self.addr).map(|_| ())
    }
}

impl NotifySocket {
    /// Binds the socket and starts the thread reading it.
    pub fn bind(path: Option<PathBuf>) -> anyhow::Result<NotifySocket> {
        let fd = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC,
            None,
        )?;
        let (addr, env_value) = match &path {
            Some(p) => {
                let _ = std::fs::remove_file(p);
                (SocketAddrUnix::new(p.as_path())?, p.display().to_string())
            }
            None => {
                let name = format!(
                    "podsignal-notify-{}-{:08x}",
                    std::process::id(),
                    podsignal_client::identity::nonce() as u32
                );
                (
                    SocketAddrUnix::new_abstract_name(name.as_bytes())?,
                    format!("@{name}"),
                )
            }
        };
        rustix::net::bind(&fd, &addr)
            .map_err(|e| anyhow::anyhow!("cannot bind the notify socket {env_value}: {e}"))?;
        let bound = addr.clone();
        rustix::net::sockopt::set_socket_passcred(&fd, true)?;
        let (tx, messages) = mpsc::unbounded_channel();
        let child_pid = Arc::new(OnceLock::new());
        let main_pid = Arc::new(std::sync::atomic::AtomicI32::new(0));
        let (child, main) = (child_pid.clone(), main_pid.clone());
        std::thread::Builder::new()
            .name("podsignal-notify".into())
            .spawn(move || receive(fd, tx, child, main))?;
        Ok(NotifySocket {
            env_value,
            messages,
            child_pid,
            main_pid,
            addr: bound,
        })
    }

    /// What sends the marker that tells when every earlier datagram has been read.
    pub fn flush_marker(&self) -> FlushMarker {
        FlushMarker {
            addr: self.addr.clone(),
        }
    }

    /// A function that accepts descendants of a pid too (for a `MAINPID=` message).
    pub fn main_pid_setter(&self) -> impl Fn(i32) + Send + use<> {
        let main = self.main_pid.clone();
        move |pid| main.store(pid, std::sync::atomic::Ordering::Relaxed)
    }
}

fn receive(
    fd: OwnedFd,
    tx: mpsc::UnboundedSender<NotifyMessage>,
    child: Arc<OnceLock<i32>>,
    main: Arc<std::sync::atomic::AtomicI32>,
) {
    let mut data = vec![0u8; 4096];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(8), ScmCredentials(1))];
    loop {
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let received = rustix::net::recvmsg(
            &fd,
            &mut [IoSliceMut::new(&mut data)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        );
        let n = match received {
            Ok(r) => r.bytes.min(data.len()),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => {
                tracing::warn!("notify socket: {e}; no more notifications");
                return;
            }
        };
        let mut sender = None;
        let mut fds = Vec::new();
        for msg in control.drain() {
            match msg {
                RecvAncillaryMessage::ScmCredentials(c) => {
                    sender = Some(c.pid.as_raw_nonzero().get())
                }
                RecvAncillaryMessage::ScmRights(passed) => fds.extend(passed),
                _ => {}
            }
        }
        let Some(pid) = sender else {
            tracing::warn!("notify socket: a datagram without credentials, ignored");
            continue;
        };
        if pid == std::process::id() as i32 {
            if tx.send(NotifyMessage::Flushed).is_err() {
                return;
            }
            continue;
        }
        let roots = [
            child.get().copied().unwrap_or(0),
            main.load(std::sync::atomic::Ordering::Relaxed),
        ];
        if !accepted_sender(pid, &roots, std::process::id() == 1) {
            tracing::warn!(
                pid,
                "notify socket: a datagram from a process that is not the child's, ignored"
            );
            continue;
        }
        let text = String::from_utf8_lossy(&data[..n]).into_owned();
        for message in parse(&text, &mut fds) {
            if tx.send(message).is_err() {
                return;
            }
        }
        // Descriptors not claimed by a BARRIER=1 are closed here.
    }
}

/// Whether a datagram from `pid` counts. A descendant of the child (or of `MAINPID`) does.
/// So does a sender that has already exited (`systemd-notify --ready` exits at once, and a
/// loaded machine can reap it before its datagram is read) when `run` is PID 1: the pid
/// namespace is then this container's own, and other containers' processes reach the socket
/// with pid 0, not a pid of ours. Not PID 1 (a shared pid namespace, a dev machine), a sender
/// that left no trace is refused: it could have been anyone.
pub fn accepted_sender(pid: i32, roots: &[i32], run_is_pid1: bool) -> bool {
    descends_from(pid, roots) || (run_is_pid1 && parent_of(pid).is_none())
}

/// True if `pid` is one of `roots` or descends from one (`/proc` parent chain).
pub fn descends_from(pid: i32, roots: &[i32]) -> bool {
    let mut p = pid;
    for _ in 0..64 {
        if p <= 1 {
            return false;
        }
        if roots.contains(&p) {
            return true;
        }
        match parent_of(p) {
            Some(parent) => p = parent,
            None => return false,
        }
    }
    false
}

/// Parses one datagram: `KEY=VALUE` lines; unknown keys are ignored, as systemd does.
pub fn parse(text: &str, fds: &mut Vec<OwnedFd>) -> Vec<NotifyMessage> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let usec = || value.trim().parse::<u64>().ok();
        match key {
            "READY" if value == "1" => out.push(NotifyMessage::Ready),
            "STOPPING" if value == "1" => out.push(NotifyMessage::Stopping),
            "RELOADING" if value == "1" => out.push(NotifyMessage::Reloading),
            "STATUS" => out.push(NotifyMessage::Status(value.chars().take(512).collect())),
            "WATCHDOG" if value == "1" => out.push(NotifyMessage::Watchdog),
            "WATCHDOG" if value == "trigger" => out.push(NotifyMessage::WatchdogTrigger),
            "WATCHDOG_USEC" => out.extend(usec().map(NotifyMessage::WatchdogUsec)),
            "EXTEND_TIMEOUT_USEC" => {
                out.extend(usec().map(|u| NotifyMessage::ExtendTimeout(Duration::from_micros(u))))
            }
            "MAINPID" => out.extend(value.trim().parse().ok().map(NotifyMessage::MainPid)),
            "EXIT_STATUS" => out.push(NotifyMessage::ExitStatus(
                value
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(512)
                    .collect(),
            )),
            "ERRNO" => out.extend(
                value
                    .trim()
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .map(NotifyMessage::Errno),
            ),
            "BARRIER" if value == "1" => out.push(NotifyMessage::Barrier(std::mem::take(fds))),
            _ => {}
        }
    }
    out
}

/// What the child said, reduced to readiness.
#[derive(Debug, Default)]
pub struct NotifyState {
    ready: bool,
    reloading: bool,
    stopping: bool,
    /// The latest `STATUS=`.
    pub status: Option<String>,
    watchdog: Option<Duration>,
    last_ping: Option<Instant>,
    watchdog_missed: bool,
    exit_status: Option<String>,
    errno: Option<i32>,
}

impl NotifyState {
    /// With a watchdog interval from `--watchdog`.
    pub fn new(watchdog: Option<Duration>) -> NotifyState {
        NotifyState {
            watchdog,
            last_ping: Some(Instant::now()),
            ..NotifyState::default()
        }
    }

    /// Applies a message; returns the readiness to publish, if it changed or its reason did.
    pub fn apply(&mut self, m: &NotifyMessage) -> Option<(bool, String)> {
        match m {
            NotifyMessage::Ready => {
                self.ready = true;
                self.reloading = false;
            }
            NotifyMessage::Stopping => self.stopping = true,
            NotifyMessage::Reloading => self.reloading = true,
            NotifyMessage::Status(s) => self.status = Some(s.clone()),
            NotifyMessage::Watchdog => {
                self.last_ping = Some(Instant::now());
                self.watchdog_missed = false;
            }
            NotifyMessage::WatchdogTrigger => self.watchdog_missed = true,
            NotifyMessage::WatchdogUsec(u) => {
                self.watchdog = (*u > 0).then(|| Duration::from_micros(*u));
                self.last_ping = Some(Instant::now());
            }
            NotifyMessage::ExitStatus(s) => {
                self.exit_status = Some(s.clone());
                return None;
            }
            NotifyMessage::Errno(n) => {
                self.errno = Some(*n);
                return None;
            }
            NotifyMessage::ExtendTimeout(_)
            | NotifyMessage::MainPid(_)
            | NotifyMessage::Barrier(_)
            | NotifyMessage::Flushed => return None,
        }
        Some(self.readiness())
    }

    /// What the child said about its end, for the tombstone's reason:
    /// `EXIT_STATUS=db unreachable, ERRNO=111: Connection refused`.
    pub fn said(&self) -> Option<String> {
        let mut parts = Vec::new();
        if let Some(s) = &self.exit_status {
            parts.push(format!("EXIT_STATUS={s}"));
        }
        if let Some(n) = self.errno {
            let text = std::io::Error::from_raw_os_error(n).to_string();
            // std appends " (os error N)": the number is already there.
            let text = text.split(" (os error").next().unwrap_or_default();
            parts.push(format!("ERRNO={n}: {text}"));
        }
        (!parts.is_empty()).then(|| parts.join(", "))
    }

    /// Ready, and the reason.
    pub fn readiness(&self) -> (bool, String) {
        let status = self.status.clone();
        let (ready, why) = if self.stopping {
            (false, "stopping (STOPPING=1)".to_owned())
        } else if self.watchdog_missed {
            (false, "watchdog: no WATCHDOG=1 in time".to_owned())
        } else if self.reloading {
            (false, "reloading (RELOADING=1)".to_owned())
        } else if self.ready {
            (true, "READY=1".to_owned())
        } else {
            (false, "waiting for READY=1".to_owned())
        };
        (ready, status.unwrap_or(why))
    }

    /// When the watchdog fires next, if armed and not yet fired.
    pub fn watchdog_deadline(&self) -> Option<Instant> {
        if self.watchdog_missed {
            return None;
        }
        Some(self.last_ping? + self.watchdog?)
    }

    /// The deadline passed: unready.
    pub fn watchdog_fired(&mut self) -> (bool, String) {
        self.watchdog_missed = true;
        self.readiness()
    }
}

/// The hidden first argument `run --watchdog` starts its command through podsignal with
/// (`podsignal exec-with-watchdog-pid -- CMD...`). Not a clap subcommand: nothing in it needs
/// parsing, and it must not fail on what the global options read from the environment.
pub const WATCHDOG_EXEC: &str = "exec-with-watchdog-pid";

/// CMD, when this process was started as `podsignal exec-with-watchdog-pid -- CMD...`.
pub fn watchdog_exec_argv() -> Option<Vec<OsString>> {
    let mut args = std::env::args_os().skip(1);
    if args.next()? != WATCHDOG_EXEC || args.next()? != "--" {
        return None;
    }
    Some(args.collect())
}

/// `argv` for the child when `--watchdog` is on: podsignal again (the same binary, through
/// `/proc/self/exe`), which sets `WATCHDOG_PID` to its pid and execs CMD in its place.
///
/// Why a second exec: sd_watchdog_enabled(3) checks `WATCHDOG_PID` against its own pid, so
/// that a process CMD starts does not take the watchdog for its own; the pid is known only
/// after the fork, and between fork and exec nothing may allocate (the environment cannot
/// be built there) nor call `setenv` in safe code. The exec keeps the pid, the process
/// group, the death signal and every inherited descriptor.
pub fn through_watchdog_exec(argv: &[OsString]) -> Vec<OsString> {
    let mut v: Vec<OsString> = vec!["/proc/self/exe".into(), WATCHDOG_EXEC.into(), "--".into()];
    v.extend(argv.iter().cloned());
    v
}

/// [`WATCHDOG_EXEC`]: exec `argv` with `WATCHDOG_PID` set to this process's pid, which CMD
/// keeps. Returns only if the exec failed (127 not found, 126 otherwise, as a shell).
pub fn exec_with_watchdog_pid(argv: &[OsString]) -> crate::exit::ExitCode {
    use std::os::unix::process::CommandExt;
    let Some(program) = argv.first() else {
        return crate::exit::ExitCode::USAGE;
    };
    let e = std::process::Command::new(program)
        .args(&argv[1..])
        .env("WATCHDOG_PID", std::process::id().to_string())
        .exec();
    say!("podsignal: cannot run {}: {e}", program.to_string_lossy());
    match e.kind() {
        std::io::ErrorKind::NotFound => crate::exit::ExitCode::NOT_FOUND,
        _ => crate::exit::ExitCode::CANNOT_EXECUTE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_protocol() {
        let mut fds = Vec::new();
        let m = parse(
            "READY=1\nSTATUS=serving 3 users\nWATCHDOG_USEC=500000\nX=1\n",
            &mut fds,
        );
        assert!(matches!(m[0], NotifyMessage::Ready));
        assert!(matches!(&m[1], NotifyMessage::Status(s) if s == "serving 3 users"));
        assert!(matches!(m[2], NotifyMessage::WatchdogUsec(500_000)));
        assert_eq!(m.len(), 3);
    }

    #[test]
    fn exit_status_and_errno_are_kept_for_the_tombstone() {
        let mut s = NotifyState::new(None);
        assert_eq!(s.said(), None);
        let mut fds = Vec::new();
        for m in parse(
            "EXIT_STATUS=db\tunreachable\nERRNO=111\nERRNO=-1\n",
            &mut fds,
        ) {
            assert_eq!(s.apply(&m), None, "{m:?} changed readiness");
        }
        assert_eq!(
            s.said().as_deref(),
            Some("EXIT_STATUS=dbunreachable, ERRNO=111: Connection refused")
        );
    }

    #[test]
    fn reloading_is_unready_until_ready_again() {
        let mut s = NotifyState::new(None);
        assert!(s.apply(&NotifyMessage::Ready).unwrap().0);
        assert!(!s.apply(&NotifyMessage::Reloading).unwrap().0);
        assert!(s.apply(&NotifyMessage::Ready).unwrap().0);
        assert!(!s.apply(&NotifyMessage::Stopping).unwrap().0);
    }

    #[test]
    fn only_descendants_are_accepted() {
        let me = std::process::id() as i32;
        let parent = parent_of(me).unwrap();
        assert!(descends_from(me, &[me]));
        assert!(descends_from(me, &[parent]));
        // A sender gone before its datagram was read: accepted only when run is PID 1.
        let gone = i32::MAX;
        assert!(!accepted_sender(gone, &[me], false));
        assert!(accepted_sender(gone, &[me], true));
        // A live stranger is refused either way.
        assert!(!accepted_sender(parent, &[me], true));
        assert!(!descends_from(parent, &[me]));
        assert!(!descends_from(me, &[0]));
    }
}
