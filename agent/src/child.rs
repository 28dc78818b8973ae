//! Running a command as a child that cannot outlive us.
//!
//! The child is spawned from a dedicated thread that lives exactly as long as the child:
//! `PR_SET_PDEATHSIG` fires when the *thread* that forked the child exits, so spawning from a
//! short-lived or pooled thread would kill the child early. If this process dies, even by
//! `kill -9`, the kernel sends the child SIGKILL, so a lock handed to it is freed and no
//! orphan keeps running while others believe it stopped.
//!
//! Signals are sent through a pidfd, so a signal can never hit a recycled PID.
//!
//! `run` spawns through [`spawn_with`] and a [`Reaper`]: then the reaper, not
//! `Child::wait`, collects the exit status (see `supervisor/reaper.rs` for why).

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus};
use std::sync::{Arc, Mutex};

use rustix::io::FdFlags;
use rustix::process::{Pid, Signal};
use tokio::sync::oneshot;

use crate::exit::{Exit, ExitCode};
use crate::supervisor::reaper::Reaper;

/// What to run.
#[derive(Debug)]
pub struct ChildSpec<'a> {
    /// Program and arguments.
    pub argv: &'a [OsString],
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// A descriptor the child inherits (a held lock, as `flock(1)` passes it).
    pub inherit: Option<&'a File>,
}

/// How to spawn, beyond what to run: [`spawn`] uses the defaults.
#[derive(Debug, Default)]
pub struct SpawnOptions {
    /// Let this reaper collect the exit status (a subreaper must not race `Child::wait`).
    pub reaper: Option<Reaper>,
    /// Put the child in a process group of its own (signals can then go to the group).
    pub process_group: bool,
}

/// A running child: its pid, a way to signal it, and its exit.
#[derive(Debug)]
pub struct Child {
    pid: Pid,
    pidfd: Arc<Mutex<Option<OwnedFd>>>,
    exited: oneshot::Receiver<io::Result<ExitStatus>>,
}

/// Spawns the child. Errors name the command; "not found" and "not executable" map to the
/// shell's 127 and 126.
pub fn spawn(spec: ChildSpec<'_>) -> anyhow::Result<Child> {
    spawn_with(spec, SpawnOptions::default())
}

/// [`spawn`], with options.
pub fn spawn_with(spec: ChildSpec<'_>, options: SpawnOptions) -> anyhow::Result<Child> {
    let program = spec
        .argv
        .first()
        .ok_or_else(|| Exit::with(ExitCode::USAGE, "no command given after --"))?
        .clone();
    let mut cmd = Command::new(&program);
    cmd.args(&spec.argv[1..])
        .envs(spec.env.iter().map(|(k, v)| (k, v)));
    set_parent_death_signal(&mut cmd);
    if options.process_group {
        cmd.process_group(0);
    }
    // Let the inherited descriptor survive exec for this one spawn. Nothing else in this
    // process spawns children concurrently, so no other child can inherit it by accident.
    if let Some(f) = spec.inherit {
        rustix::io::fcntl_setfd(f.as_fd(), FdFlags::empty())?;
        cmd.env("PODSIGNAL_LOCK_FD", f.as_raw_fd().to_string());
    }
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let (exit_tx, exit_rx) = oneshot::channel();
    std::thread::Builder::new()
        .name("podsignal-child".into())
        .spawn(move || {
            let spawned = match &options.reaper {
                Some(reaper) => reaper.spawn(&mut cmd).map(|(c, rx)| (c, Some(rx))),
                None => cmd.spawn().map(|c| (c, None)),
            };
            let (mut child, reaped) = match spawned {
                Ok(c) => c,
                Err(e) => {
                    let _ = started_tx.send(Err(e));
                    return;
                }
            };
            let pid = Pid::from_child(&child);
            let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok();
            let _ = started_tx.send(Ok((pid, pidfd)));
            let status = match reaped {
                Some(rx) => rx
                    .recv()
                    .map_err(|_| io::Error::other("the reaper stopped")),
                None => child.wait(),
            };
            let _ = exit_tx.send(status);
            // This thread returns only after the child is reaped: the death signal stays armed
            // for the child's whole life.
        })?;
    let started = started_rx
        .recv()
        .map_err(|_| anyhow::anyhow!("the thread spawning {} died", program.to_string_lossy()));
    if let Some(f) = spec.inherit {
        rustix::io::fcntl_setfd(f.as_fd(), FdFlags::CLOEXEC)?;
    }
    match started? {
        Ok((pid, pidfd)) => Ok(Child {
            pid,
            pidfd: Arc::new(Mutex::new(pidfd)),
            exited: exit_rx,
        }),
        Err(e) => {
            let code = match e.kind() {
                io::ErrorKind::NotFound => ExitCode::NOT_FOUND,
                io::ErrorKind::PermissionDenied => ExitCode::CANNOT_EXECUTE,
                _ => ExitCode::CANNOT_EXECUTE,
            };
            Err(Exit::with(
                code,
                format!("cannot run {}: {e}", program.to_string_lossy()),
            ))
        }
    }
}

#[allow(unsafe_code)]
fn set_parent_death_signal(cmd: &mut Command) {
    let parent = rustix::process::getpid();
    // SAFETY: the closure runs in the forked child before exec. It calls only prctl(2) and
    // getppid(2), which are async-signal-safe, and builds its error from an errno without
    // allocating. Tested by `lock_holder_killed_frees_lock_and_kills_command` in tests/cli.rs.
    unsafe {
        cmd.pre_exec(move || {
            rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
            // If the parent died before prctl took effect, we were reparented: give up.
            if rustix::process::getppid() != Some(parent) {
                return Err(io::Error::from_raw_os_error(
                    rustix::io::Errno::SRCH.raw_os_error(),
                ));
            }
            Ok(())
        })
    };
}

impl Child {
    /// The child's pid.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// A handle that signals the child, usable from another task.
    pub fn signaller(&self) -> Signaller {
        Signaller {
            pid: self.pid,
            pidfd: self.pidfd.clone(),
        }
    }

    /// Waits for the child to exit and returns its status.
    pub async fn wait(self) -> anyhow::Result<ExitStatus> {
        let status = self
            .exited
            .await
            .map_err(|_| anyhow::anyhow!("lost the child's exit status"))??;
        // Reaped: never signal through this pid again.
        if let Ok(mut fd) = self.pidfd.lock() {
            fd.take();
        }
        Ok(status)
    }
}

/// Sends signals to a child until it has been reaped.
#[derive(Debug, Clone)]
pub struct Signaller {
    pid: Pid,
    pidfd: Arc<Mutex<Option<OwnedFd>>>,
}

impl Signaller {
    /// Sends `signal` to the child's process group (the child must lead one: spawned with
    /// [`SpawnOptions::process_group`]); does nothing once the child is reaped, so the
    /// group id cannot have been recycled.
    pub fn send_group(&self, signal: Signal) {
        let Ok(guard) = self.pidfd.lock() else { return };
        if guard.is_some() {
            let _ = rustix::process::kill_process_group(self.pid, signal);
        }
    }

    /// Sends `signal`; does nothing once the child is reaped.
    pub fn send(&self, signal: Signal) {
        let Ok(guard) = self.pidfd.lock() else { return };
        match guard.as_ref() {
            Some(fd) => {
                let _ = rustix::process::pidfd_send_signal(fd, signal);
            }
            None => tracing::debug!(
                pid = self.pid.as_raw_nonzero().get(),
                "not signalling: child already reaped"
            ),
        }
    }
}

/// The shell convention: the exit code, or 128 + N for a death by signal N.
pub fn exit_code_of(status: ExitStatus) -> ExitCode {
    match (status.code(), status.signal()) {
        (Some(c), _) => ExitCode(u8::try_from(c).unwrap_or(ExitCode::ERROR.0)),
        (None, Some(sig)) => ExitCode::from_signal(sig),
        (None, None) => ExitCode::ERROR,
    }
}

/// The signals a wrapper forwards to its child (every catchable one a supervisor is sent).
pub const FORWARDED: [i32; 8] = [
    signal_hook::consts::SIGTERM,
    signal_hook::consts::SIGINT,
    signal_hook::consts::SIGHUP,
    signal_hook::consts::SIGQUIT,
    signal_hook::consts::SIGUSR1,
    signal_hook::consts::SIGUSR2,
    signal_hook::consts::SIGWINCH,
    signal_hook::consts::SIGURG,
];

/// Runs `spec` to completion, forwarding [`FORWARDED`] signals to it, and returns its code.
pub async fn run_forwarding(spec: ChildSpec<'_>) -> anyhow::Result<ExitCode> {
    let mut signals = signal_hook::iterator::Signals::new(FORWARDED)?;
    let handle = signals.handle();
    let child = spawn(spec)?;
    let signaller = child.signaller();
    let forwarder = std::thread::Builder::new()
        .name("podsignal-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if let Some(s) = Signal::from_named_raw(sig) {
                    signaller.send(s);
                }
            }
        })?;
    let status = child.wait().await;
    handle.close();
    let _ = forwarder.join();
    Ok(exit_code_of(status?))
}
