//! `--ready-when fd:N`: s6's notification-fd. CMD starts with descriptor N open on the write
//! end of a pipe; the first newline it writes there means ready. End of file before a
//! newline (CMD closed it, or exited) means it will never say so.
//!
//! Both ends are close-on-exec in `run`: no probe, pre-stop hook or guard inherits them.
//! Only CMD gets the write end, as N (mapped between fork and exec: `child::ChildSpec::pass`),
//! and `run` closes its own copy right after the spawn, so the end of file comes when CMD
//! and whatever it passed N on have closed it. What is written after the newline is read and
//! dropped, so a CMD that keeps writing never gets SIGPIPE.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd, OwnedFd};

use tokio::sync::oneshot;

/// The pipe, before the spawn.
#[derive(Debug)]
pub struct ReadyPipe {
    read: OwnedFd,
    write: OwnedFd,
    /// N: the descriptor CMD gets.
    pub fd: i32,
}

impl ReadyPipe {
    /// A new pipe for descriptor `fd` of CMD.
    pub fn new(fd: i32) -> anyhow::Result<ReadyPipe> {
        let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
            .map_err(|e| anyhow::anyhow!("--ready-when fd:{fd}: cannot create a pipe: {e}"))?;
        Ok(ReadyPipe { read, write, fd })
    }

    /// The write end and the number CMD gets it as.
    pub fn for_child(&self) -> (BorrowedFd<'_>, i32) {
        (self.write.as_fd(), self.fd)
    }

    /// After the spawn: closes `run`'s write end and reads the pipe on a thread of its own.
    /// The answer is `true` at the first newline, `false` at an end of file before one.
    pub fn watch(self) -> anyhow::Result<oneshot::Receiver<bool>> {
        let ReadyPipe { read, write, fd } = self;
        drop(write);
        let (tx, rx) = oneshot::channel();
        std::thread::Builder::new()
            .name("podsignal-ready-fd".into())
            .spawn(move || read_until_newline(&read, fd, tx))?;
        Ok(rx)
    }
}

/// For `PODSIGNAL_DISABLED=1`, where CMD replaces podsignal: opens `/dev/null` as descriptor
/// `fd`, inherited across the exec, so that CMD's `echo >&N` succeeds and goes nowhere (a
/// `set -e` script would die on a closed descriptor). Returns false, and leaves it, if `fd`
/// is already open: CMD writes wherever it points, as it would without podsignal.
pub fn null_for_exec(fd: i32) -> anyhow::Result<bool> {
    use rustix::fs::{Mode, OFlags};
    use rustix::io::FdFlags;
    let fail = |e: rustix::io::Errno| anyhow::anyhow!("cannot open /dev/null as {fd}: {e}");
    let null = rustix::fs::open("/dev/null", OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty())
        .map_err(fail)?;
    let min = u32::try_from(fd).map_err(|_| anyhow::anyhow!("{fd} is not a descriptor"))?;
    // /dev/null itself if it got `fd` (the lowest free one), else the lowest free descriptor
    // from `fd` up: `fd` unless it is open already.
    let dup = if null.as_raw_fd() == fd {
        null
    } else {
        rustix::io::fcntl_dupfd_cloexec(&null, min as _).map_err(fail)?
    };
    if dup.as_raw_fd() != fd {
        return Ok(false);
    }
    rustix::io::fcntl_setfd(&dup, FdFlags::empty()).map_err(fail)?;
    // Kept open (not close-on-exec) for CMD, which replaces this process.
    let _ = dup.into_raw_fd();
    Ok(true)
}

fn read_until_newline(read: &OwnedFd, fd: i32, tx: oneshot::Sender<bool>) {
    let mut tx = Some(tx);
    let mut buf = [0u8; 512];
    loop {
        match rustix::io::read(read, &mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if buf[..n].contains(&b'\n')
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(true);
                }
            }
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => {
                tracing::warn!("--ready-when fd:{fd}: reading the pipe: {e}");
                break;
            }
        }
    }
    if let Some(tx) = tx {
        let _ = tx.send(false);
    }
}
