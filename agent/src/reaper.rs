//! The one reaper: the only code in a wrapper process (`run`, `lock`, `leader`) that waits
//! for children.
//!
//! A supervisor must reap every zombie (as PID 1) and every orphan reparented to it (as a
//! child subreaper). A `waitpid(-1)` loop for orphans would race with `std`'s
//! `Child::wait` on our own children (whoever reaps first steals the other's status), so
//! there is exactly one waiter: a thread woken by SIGCHLD that calls
//! `waitpid(-1, WNOHANG)` until nothing is left, and hands the status of each child we
//! spawned to whoever registered it. Everything is spawned through [`Reaper::spawn`], which
//! holds the registry lock across fork+exec: the reaper cannot reap a new child before its
//! pid is registered, and `std`'s own `waitpid` on a child whose exec failed cannot race
//! with it either. Orphans (pids nobody registered) are reaped and logged.

use std::collections::HashMap;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use rustix::io::Errno;
use rustix::process::{Pid, WaitOptions};
use tokio::sync::watch;

/// The reaper's handle; cheap to clone.
#[derive(Debug, Clone)]
pub struct Reaper {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Who waits for which child. A std `Mutex`: it is held across fork+exec and by the
    /// reaper thread, never across an `.await`.
    waiting: Mutex<HashMap<i32, mpsc::Sender<ExitStatus>>>,
    /// Bumped after every reap (ours or an orphan's), so shutdown can wait for "no
    /// descendants left" without polling blindly.
    reaped: watch::Sender<u64>,
}

impl Reaper {
    /// Makes this process a child subreaper (unless it is PID 1, which reaps anyway) and
    /// starts the reaper thread.
    pub fn start() -> io::Result<Reaper> {
        if rustix::process::getpid() != Pid::INIT {
            rustix::process::set_child_subreaper(Some(rustix::process::getpid()))?;
        }
        let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGCHLD])?;
        let (reaped, _) = watch::channel(0);
        let inner = Arc::new(Inner {
            waiting: Mutex::new(HashMap::new()),
            reaped,
        });
        let worker = inner.clone();
        std::thread::Builder::new()
            .name("podsignal-reaper".into())
            .spawn(move || {
                worker.reap_all();
                for _ in signals.forever() {
                    worker.reap_all();
                }
            })?;
        Ok(Reaper { inner })
    }

    /// Spawns `cmd` and registers it; the receiver gets its exit status once reaped.
    pub fn spawn(&self, cmd: &mut Command) -> io::Result<(Child, mpsc::Receiver<ExitStatus>)> {
        let mut waiting = self
            .inner
            .waiting
            .lock()
            .map_err(|_| io::Error::other("the reaper's registry is poisoned"))?;
        let child = cmd.spawn()?;
        let (tx, rx) = mpsc::channel();
        waiting.insert(child.id() as i32, tx);
        Ok((child, rx))
    }

    /// A counter bumped after every reap.
    pub fn reaped(&self) -> watch::Receiver<u64> {
        self.inner.reaped.subscribe()
    }
}

impl Inner {
    fn reap_all(&self) {
        let Ok(mut waiting) = self.waiting.lock() else {
            return;
        };
        loop {
            // `wait`, i.e. waitpid(-1): ANY child. Not rustix's `waitpid(None, ..)`, which is
            // waitpid(0), only children in our own process group: a `--pgroup` child or an
            // orphan that called setsid(2) would stay a zombie forever.
            match rustix::process::wait(WaitOptions::NOHANG) {
                Ok(Some((pid, status))) => {
                    let pid = pid.as_raw_nonzero().get();
                    let status = ExitStatus::from_raw(status.as_raw());
                    match waiting.remove(&pid) {
                        Some(tx) => {
                            let _ = tx.send(status);
                        }
                        None => tracing::debug!(pid, %status, "reaped an orphan"),
                    }
                    self.reaped.send_modify(|n| *n += 1);
                }
                Ok(None) | Err(Errno::CHILD) => return,
                Err(Errno::INTR) => continue,
                Err(e) => {
                    tracing::warn!("waitpid: {e}");
                    return;
                }
            }
        }
    }
}

/// The pids of this process's living children (a subreaper's orphans included), from
/// `/proc`. Zombies are left out: the reaper is about to collect them.
pub fn living_children() -> Vec<Pid> {
    let me = rustix::process::getpid().as_raw_nonzero().get();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            // pid (comm) state ppid ...: comm may hold spaces and parentheses, so parse
            // from the last ')'.
            let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                return false;
            };
            let mut fields = rest.split_whitespace();
            let state = fields.next();
            let ppid = fields.next().and_then(|p| p.parse::<i32>().ok());
            ppid == Some(me) && state != Some("Z") && state != Some("X")
        })
        .filter_map(Pid::from_raw)
        .collect()
}

/// The parent of `pid`, from `/proc`; `None` if it is gone.
pub fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_of_reads_proc() {
        let me = std::process::id() as i32;
        assert_eq!(
            parent_of(me),
            Some(rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get()))
        );
        assert_eq!(parent_of(i32::MAX), None);
    }
}
