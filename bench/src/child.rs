//! The other side of the latency benchmarks: small programs (modes of this binary) that wait
//! the way an app would, each in its own process, and stamp the moment they are woken with
//! `CLOCK_MONOTONIC` (one clock for every process on the machine).
//!
//! Protocol: the waiter reads one line per trial from stdin (the trial number), starts
//! waiting for trial `i`, and prints the nanosecond stamp of its wake-up as one line. The
//! holder takes a lock, prints `held`, and waits to be killed.

use anyhow::{Context, Result, bail};
use podsignal_client::{Coordinator, Volume, VolumeOptions, WaitMode};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

/// Now, in nanoseconds of `CLOCK_MONOTONIC`.
pub fn now_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// How a waiter waits.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum WaiterMode {
    /// Raw inotify on the directory: woken by `r{i}` being renamed in (floor).
    Inotify,
    /// podsignal-client `Volume::wait_ready(r{i})`.
    Lib,
    /// `GET /v1/readiness/r{i}?wait=60s` on one keep-alive connection to --addr.
    Http,
    /// The agent's Server-Sent Events stream at --addr: woken by the next `data:` line.
    Sse,
    /// Raw `flock(LOCK_EX)` on `{dir}/l{i}` (floor).
    Flock,
    /// podsignal-client `Volume::lock(l{i})`.
    LibLock,
}

/// How a holder holds a lock until it is killed.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum HolderMode {
    /// Raw `flock(LOCK_EX)` on `{dir}/{name}`.
    Flock,
    /// podsignal-client `Volume::lock(name)`.
    Lib,
}

fn stamp(out: &mut impl Write) -> Result<()> {
    writeln!(out, "{}", now_ns())?;
    out.flush()?;
    Ok(())
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")
}

/// Opens (creating) `{dir}/{name}` for a raw flock.
pub fn lock_file(dir: &Path, name: &str) -> Result<std::fs::File> {
    let path = dir.join(name);
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))
}

/// Runs a waiter until stdin closes.
pub fn waiter(mode: WaiterMode, dir: PathBuf, addr: Option<String>) -> Result<()> {
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let mut out = std::io::stdout().lock();
    match mode {
        WaiterMode::Inotify => {
            use inotify::{Inotify, WatchMask};
            let mut inotify = Inotify::init().context("inotify_init")?;
            inotify
                .watches()
                .add(&dir, WatchMask::MOVED_TO | WatchMask::CLOSE_WRITE)
                .context("inotify_add_watch")?;
            let mut buf = [0u8; 4096];
            for line in lines.by_ref() {
                let want = format!("r{}", line?.trim());
                'wait: loop {
                    for event in inotify.read_events_blocking(&mut buf)? {
                        if event.name.is_some_and(|n| n == want.as_str()) {
                            break 'wait;
                        }
                    }
                }
                stamp(&mut out)?;
            }
        }
        WaiterMode::Flock => {
            use rustix::fs::{FlockOperation, flock};
            for line in lines.by_ref() {
                let file = lock_file(&dir, &format!("l{}", line?.trim()))?;
                flock(&file, FlockOperation::LockExclusive)?;
                stamp(&mut out)?;
                flock(&file, FlockOperation::Unlock)?;
            }
        }
        WaiterMode::Lib | WaiterMode::LibLock => {
            let rt = runtime()?;
            let volume = rt.block_on(Volume::open(&dir, VolumeOptions::default()))?;
            for line in lines.by_ref() {
                let i = line?.trim().to_string();
                rt.block_on(async {
                    if matches!(mode, WaiterMode::Lib) {
                        let name = format!("r{i}").parse()?;
                        volume.wait_ready(&[name], WaitMode::All, None).await?;
                        stamp(&mut out)
                    } else {
                        let guard = volume.lock(&format!("l{i}").parse()?, None).await?;
                        stamp(&mut out)?;
                        drop(guard);
                        Ok::<(), anyhow::Error>(())
                    }
                })?;
            }
        }
        WaiterMode::Sse => {
            use std::io::Read;
            let addr = addr.context("--addr is required with --mode sse")?;
            let mut stream = std::net::TcpStream::connect(&addr)?;
            // From the first event: one published before this stream is set up (a loaded
            // machine, a slow start) is delivered, not missed, and each line reads the next.
            let head = crate::servers::request_head("GET", "/v1/events/stream?since=0");
            stream.write_all(head.as_bytes())?;
            let (mut buf, mut chunk) = (Vec::new(), [0u8; 4096]);
            for line in lines.by_ref() {
                line?;
                loop {
                    if let Some(at) = buf.windows(5).position(|w| w == b"data:") {
                        buf.drain(..at + 5);
                        break;
                    }
                    let n = stream.read(&mut chunk)?;
                    if n == 0 {
                        bail!("the event stream ended");
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                stamp(&mut out)?;
            }
        }
        WaiterMode::Http => {
            let addr = addr.context("--addr is required with --mode http")?;
            let mut conn = crate::servers::SyncConn::connect(&addr)?;
            for line in lines.by_ref() {
                let path = format!("/v1/readiness/r{}?wait=60s", line?.trim());
                let status = conn.request("GET", &path, None)?.0;
                stamp(&mut out)?;
                if status != 200 {
                    bail!("GET {path}: {status}");
                }
            }
        }
    }
    Ok(())
}

/// Takes lock `name`, prints `held`, and sleeps until killed.
pub fn holder(mode: HolderMode, dir: PathBuf, name: String) -> Result<()> {
    let mut out = std::io::stdout();
    match mode {
        HolderMode::Flock => {
            let file = lock_file(&dir, &name)?;
            rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)?;
            writeln!(out, "held")?;
            out.flush()?;
            loop {
                std::thread::park();
            }
        }
        HolderMode::Lib => {
            let rt = runtime()?;
            rt.block_on(async {
                let volume = Volume::open(&dir, VolumeOptions::default()).await?;
                let _guard = volume.lock(&name.parse()?, None).await?;
                writeln!(out, "held")?;
                out.flush()?;
                std::future::pending::<()>().await;
                Ok::<(), anyhow::Error>(())
            })
        }
    }
}
