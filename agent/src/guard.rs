//! The guard: a tiny process (`podsignal guard`, hidden from `--help`) that kills a command's
//! process group when the wrapper that started it dies without stopping it first.
//!
//! The wrapper (`lock`, `leader`, `run`) starts the guard *before* the command, and keeps
//! the write end of a pipe whose read end is the guard's stdin; both ends are closed on exec,
//! so the command never holds them. The guard is armed with the group's id (4 bytes, native
//! endian) before the command runs an instruction of its own: by the wrapper when the group
//! is its own (a terminal), else by the command's child process itself between fork and
//! exec (`child::spawn_with`), once it leads its new group. So a wrapper killed at any instant
//! after its command started leaves a guard that knows what to kill. When the wrapper dies,
//! however it dies (`kill -9` included), the kernel closes the write end: the guard reads
//! end-of-file and sends SIGKILL to the group (a guard never armed has nothing to kill: the
//! command never ran). A wrapper that stopped the group itself writes one more byte first,
//! and the guard exits without killing. The guard ignores SIGTERM, SIGINT, SIGHUP and
//! SIGQUIT, which are meant for the wrapper.
//!
//! The guard runs in a process group of its own, so that killing the wrapper's group does not
//! kill it too. When stdin is a terminal the command stays in the wrapper's process group
//! (the terminal's foreground group); the guard then watches that group, if the wrapper
//! leads it (a job started from a shell, `kubectl exec -it`).
//!
//! Limits (documented in `docs/protocol.md`): a process that left the group with `setsid(2)`
//! is stopped by the wrapper (a subreaper) while the wrapper lives, but not by the guard;
//! a SIGKILL to the guard itself disarms it; on a terminal, a wrapper that does not lead its
//! process group (started by a script) has no guard. In a pid namespace where the wrapper is
//! PID 1 (`run` as a container's entrypoint) the kernel kills everything anyway.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use rustix::process::{Pid, Signal};

use crate::exit::ExitCode;
use crate::reaper::Reaper;

/// Starts a guard, not yet armed; returns the write end of its pipe and its pid (`None`,
/// with a warning, if it could not be started).
pub fn spawn(reaper: &Reaper) -> Option<(OwnedFd, Pid)> {
    let started = (|| {
        let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
        let mut cmd = Command::new("/proc/self/exe");
        cmd.arg("guard")
            .stdin(Stdio::from(read))
            .stdout(Stdio::null())
            // Its own process group: a SIGKILL to the wrapper's group (a timeout(1), a job
            // control kill) must not take the guard with it.
            .process_group(0);
        let (child, _status) = reaper.spawn(&mut cmd)?;
        std::io::Result::Ok((write, Pid::from_child(&child)))
    })();
    match started {
        Ok(guard) => Some(guard),
        Err(e) => {
            tracing::warn!(
                "cannot start the guard of the command's process group ({e}): if podsignal is killed, what its command started may survive it"
            );
            None
        }
    }
}

/// Arms the guard whose pipe is `pipe` with process group `pgid`.
pub fn arm(pipe: &OwnedFd, pgid: Pid) {
    let _ = rustix::io::write(pipe, &pgid.as_raw_nonzero().get().to_ne_bytes());
}

/// The guard's own process: waits to be armed, then for its wrapper to end; then kills the
/// group unless told not to.
pub fn run() -> ExitCode {
    for sig in [
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
        signal_hook::consts::SIGQUIT,
    ] {
        // A handler that only sets a flag nobody reads: the signal is ignored.
        let _ = signal_hook::flag::register(sig, Arc::new(AtomicBool::new(false)));
    }
    let mut stdin = std::io::stdin();
    let mut pgid = [0u8; 4];
    // End of file before the group's id: the command never ran, nothing to kill.
    if stdin.read_exact(&mut pgid).is_err() {
        return ExitCode::SUCCESS;
    }
    let pgid = i32::from_ne_bytes(pgid);
    let Some(group) = Pid::from_raw(pgid) else {
        return ExitCode::USAGE;
    };
    let mut byte = [0u8; 1];
    let dismissed = loop {
        match stdin.read(&mut byte) {
            Ok(0) => break false,
            Ok(_) => break true,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break false,
        }
    };
    if !dismissed && rustix::process::kill_process_group(group, Signal::KILL).is_ok() {
        say!(
            "podsignal: the wrapper of process group {pgid} died before stopping it: sent SIGKILL to the group"
        );
    }
    ExitCode::SUCCESS
}
