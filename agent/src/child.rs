//! Running a command as a child that cannot outlive us, nor leave anything behind.
//!
//! - **PDEATHSIG.** The child is spawned from a dedicated thread that lives exactly as long
//!   as the child: `PR_SET_PDEATHSIG` fires when the *thread* that forked the child exits.
//!   If this process dies, even by `kill -9`, the kernel sends the child SIGKILL.
//! - **Its own process group**, unless stdin is a terminal (an interactive command must stay
//!   in the terminal's foreground group): everything it starts is in that group, unless it
//!   calls `setsid(2)`.
//! - **A guard** (see `guard`): a small process, started and armed before the command runs,
//!   that kills the whole group if this process dies before it could do so itself. PDEATHSIG reaches the child only, not what the child
//!   started; without the guard a `kill -9` of `podsignal lock` would leave a grandchild
//!   running (and holding the inherited lock).
//! - **The reaper** collects every exit status (see `reaper`), and this process is a child
//!   subreaper, so orphans of the command come back to it and are stopped with the rest
//!   (`leftovers`).
//!
//! Signals are sent through a pidfd, so a signal can never hit a recycled PID.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus};
use std::sync::{Arc, Mutex};

use rustix::io::FdFlags;
use rustix::process::{Pid, Signal};
use tokio::sync::oneshot;

use crate::exit::{Exit, ExitCode};
use crate::reaper::Reaper;

/// What to run.
#[derive(Debug)]
pub struct ChildSpec<'a> {
    /// Program and arguments.
    pub argv: &'a [OsString],
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// A descriptor the child inherits (a held lock, or the connection that holds it), set
    /// in `PODSIGNAL_LOCK_FD`.
    pub inherit: Option<BorrowedFd<'a>>,
    /// A descriptor the child gets as exactly this number (`run --ready-when fd:N`), and no
    /// other process: close-on-exec everywhere but there.
    pub pass: Option<(BorrowedFd<'a>, RawFd)>,
}

/// How to spawn, beyond what to run.
#[derive(Debug)]
pub struct SpawnOptions {
    /// The reaper that collects the exit status.
    pub reaper: Reaper,
    /// Put the child in a process group of its own.
    pub process_group: bool,
    /// Start a guard that kills the child's process group if we die (see the module docs).
    pub guard: bool,
}

impl SpawnOptions {
    /// The command a wrapper runs: in a process group of its own unless stdin is a terminal
    /// (then in ours, the terminal's foreground group), guarded either way.
    pub fn command(reaper: &Reaper) -> SpawnOptions {
        SpawnOptions {
            reaper: reaper.clone(),
            process_group: !rustix::termios::isatty(std::io::stdin()),
            guard: true,
        }
    }

    /// A helper command (a probe, a pre-stop hook): in our process group, not guarded.
    pub fn helper(reaper: &Reaper) -> SpawnOptions {
        SpawnOptions {
            reaper: reaper.clone(),
            process_group: false,
            guard: false,
        }
    }
}

/// A running child: its pid, a way to signal it, and its exit.
#[derive(Debug)]
pub struct Child {
    pid: Pid,
    pidfd: Arc<Mutex<Option<OwnedFd>>>,
    exited: oneshot::Receiver<io::Result<ExitStatus>>,
    group: Option<Group>,
}

/// The child's process group, and the guard that kills it if we die first.
#[derive(Debug)]
pub struct Group {
    /// The group id: the child's pid, or ours when the child is in our group.
    pub id: Pid,
    /// The group is ours (the child shares it): never signal it as a whole, we are in it.
    pub ours: bool,
    /// The write end of the guard's pipe, and the guard's pid: closing the pipe without a
    /// word (our death) makes the guard kill the group; [`Group::dismiss`] lets it go.
    guard: Option<(OwnedFd, Pid)>,
}

impl Group {
    /// Everything in the group is gone (stopped by us): the guard may exit without killing.
    pub fn dismiss(&mut self) {
        if let Some((fd, _)) = self.guard.take() {
            let _ = rustix::io::write(&fd, b"d");
        }
    }

    /// The guard's pid (our child, but not something the command left behind).
    pub fn guard_pid(&self) -> Option<Pid> {
        self.guard.as_ref().map(|(_, pid)| *pid)
    }
}

/// Spawns the child. Errors name the command; "not found" and "not executable" map to the
/// shell's 127 and 126.
pub async fn spawn_with(spec: ChildSpec<'_>, options: SpawnOptions) -> anyhow::Result<Child> {
    let program = spec
        .argv
        .first()
        .ok_or_else(|| crate::exit::usage("no command given after --"))?
        .clone();
    let mut cmd = Command::new(&program);
    cmd.args(&spec.argv[1..])
        .envs(spec.env.iter().map(|(k, v)| (k, v)));
    if options.process_group {
        cmd.process_group(0);
    }
    // The child inherits a duplicate that survives exec, closed here right after the spawn:
    // only the command and what it starts hold the lock. It is made inheritable only after
    // the guard has started (the guard must not hold the lock), and a wrapper spawns its
    // command before anything else, so no other child can inherit it by accident.
    let inherit: Option<OwnedFd> = match spec.inherit {
        Some(f) => {
            let dup = f.try_clone_to_owned()?;
            cmd.env("PODSIGNAL_LOCK_FD", dup.as_raw_fd().to_string());
            Some(dup)
        }
        None => None,
    };
    // A close-on-exec copy at N, or above N when N is taken here: holding N through the
    // spawn keeps std from putting a descriptor of its own there (its exec-error pipe), which
    // the child's dup2 onto N would close.
    let pass: Option<(OwnedFd, RawFd)> = match spec.pass {
        Some((f, n)) => Some((rustix::io::fcntl_dupfd_cloexec(f, n)?, n)),
        None => None,
    };
    let (started_tx, started_rx) = oneshot::channel();
    let (exit_tx, exit_rx) = oneshot::channel();
    let reaper = options.reaper.clone();
    let grouped = options.process_group;
    let guarded = options.guard;
    std::thread::Builder::new()
        .name("podsignal-child".into())
        .spawn(move || {
            let me = rustix::process::getpid();
            // On a terminal the child stays in our group, which we lead: everything in it is
            // ours to stop (we are a subreaper), and the guard's if we die.
            let ours = !grouped && guarded && rustix::process::getpgrp() == me;
            // The guard starts first and is armed before the command runs: by us with our
            // group, or by the child with its own (see `prepare_child`). Started after the
            // command, a wrapper killed in between (a loaded machine) left it unguarded.
            let guard = (guarded && (grouped || ours))
                .then(|| crate::guard::spawn(&reaper))
                .flatten();
            if ours && let Some((pipe, _)) = &guard {
                crate::guard::arm(pipe, me);
            }
            let arm = guard
                .as_ref()
                .filter(|_| grouped)
                .map(|(pipe, _)| pipe.as_raw_fd());
            prepare_child(
                &mut cmd,
                arm,
                pass.as_ref().map(|(f, n)| (f.as_raw_fd(), *n)),
            );
            let spawned = match &inherit {
                Some(dup) => rustix::io::fcntl_setfd(dup, FdFlags::empty())
                    .map_err(io::Error::from)
                    .and_then(|()| reaper.spawn(&mut cmd)),
                None => reaper.spawn(&mut cmd),
            };
            drop(inherit);
            drop(pass);
            let (child, reaped) = match spawned {
                Ok(c) => c,
                Err(e) => {
                    if let Some((pipe, _)) = guard {
                        // Nothing started: the guard may go without killing.
                        let _ = rustix::io::write(&pipe, b"d");
                    }
                    let _ = started_tx.send(Err(e));
                    return;
                }
            };
            let pid = Pid::from_child(&child);
            let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok();
            let group = if grouped {
                Some(Group {
                    id: pid,
                    ours: false,
                    guard,
                })
            } else if ours {
                Some(Group {
                    id: me,
                    ours: true,
                    guard,
                })
            } else {
                None
            };
            let _ = started_tx.send(Ok((pid, pidfd, group)));
            let status = reaped
                .recv()
                .map_err(|_| io::Error::other("the reaper stopped"));
            let _ = exit_tx.send(status);
            // This thread returns only after the child is reaped: the death signal stays armed
            // for the child's whole life.
        })?;
    let started = started_rx
        .await
        .map_err(|_| anyhow::anyhow!("the thread spawning {} died", program.to_string_lossy()));
    match started? {
        Ok((pid, pidfd, group)) => Ok(Child {
            pid,
            pidfd: Arc::new(Mutex::new(pidfd)),
            exited: exit_rx,
            group,
        }),
        Err(e) => {
            let code = match e.kind() {
                io::ErrorKind::NotFound => ExitCode::NOT_FOUND,
                _ => ExitCode::CANNOT_EXECUTE,
            };
            Err(Exit::with(
                code,
                format!("cannot run {}: {e}", program.to_string_lossy()),
            ))
        }
    }
}

/// Between fork and exec, in the child: the death signal, then (`arm`: the write end of an
/// unarmed guard's pipe) the guard armed with the group the child now leads, then (`pass`:
/// a descriptor and the number N it must have) N made from it, open across the exec. The
/// command runs only once all hold.
#[allow(unsafe_code)]
fn prepare_child(cmd: &mut Command, arm: Option<RawFd>, pass: Option<(RawFd, RawFd)>) {
    let parent = rustix::process::getpid();
    // SAFETY: the closure runs in the forked child before exec. It calls only prctl(2),
    // getppid(2), getpid(2), write(2), dup2(2) and fcntl(2), which are async-signal-safe, and
    // builds its error from an errno without allocating. `arm` and `pass`'s source are open
    // in the child (inherited, closed on exec). N is this child's to take: the parent holds
    // it (or `pass` is above it because something else did), so it is not a descriptor std
    // needs here; it is wrapped in `ManuallyDrop`, so no `OwnedFd` ever closes it. Tested by
    // `a_killed_lock_holder_frees_the_lock_and_its_command` in tests/locks.rs, the
    // `a_wrapper_*` tests in tests/attack_redteam.rs, and the `ready_fd_*` tests in
    // tests/run_notify.rs (CMD holds the pipe as N and nowhere else).
    unsafe {
        cmd.pre_exec(move || {
            rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
            // If the parent died before prctl took effect, we were reparented: give up.
            if rustix::process::getppid() != Some(parent) {
                return Err(io::Error::from_raw_os_error(
                    rustix::io::Errno::SRCH.raw_os_error(),
                ));
            }
            if let Some(pipe) = arm {
                // std has made us the leader of our new group by now: its id is our pid.
                let pgid = rustix::process::getpid().as_raw_nonzero().get();
                // A guard killed by hand cannot be armed: run unguarded, as when it could
                // not be started.
                let _ = rustix::io::write(BorrowedFd::borrow_raw(pipe), &pgid.to_ne_bytes());
            }
            if let Some((from, n)) = pass {
                let mut target = std::mem::ManuallyDrop::new(OwnedFd::from_raw_fd(n));
                if from != n {
                    rustix::io::dup2(BorrowedFd::borrow_raw(from), &mut target)?;
                }
                // dup2 clears close-on-exec on N, but does nothing when `from` is N already.
                rustix::io::fcntl_setfd(&*target, FdFlags::empty())?;
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

    /// Waits for the child to exit; returns its status and its process group (if it has
    /// one), whose leftovers are the caller's to stop.
    pub async fn wait(self) -> anyhow::Result<(ExitStatus, Option<Group>)> {
        let status = self
            .exited
            .await
            .map_err(|_| anyhow::anyhow!("lost the child's exit status"))??;
        // Reaped: never signal through this pid again.
        if let Ok(mut fd) = self.pidfd.lock() {
            fd.take();
        }
        Ok((status, self.group))
    }
}

/// Sends signals to a child until it has been reaped.
#[derive(Debug, Clone)]
pub struct Signaller {
    pid: Pid,
    pidfd: Arc<Mutex<Option<OwnedFd>>>,
}

impl Signaller {
    /// Sends `signal` to the child's process group (the child must lead one); does nothing
    /// once the child is reaped, so the group id cannot have been recycled.
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
