//! Events: 8 publisher processes append events as fast as they can while 8 watcher
//! processes follow the log; events per second from the first publish to the last delivery,
//! and each delivery's latency (publish stamp in the event → the watcher has it). The floor:
//! the same processes appending lines to one file with `O_APPEND` and following it with raw
//! inotify.

use crate::child::now_ns;
use crate::report::{Report, Row, Series, Summary};
use anyhow::{Context, Result, bail};
use futures_util::StreamExt;
use podsignal_client::{Coordinator, Volume, VolumeOptions};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// What a watcher reports when it has seen everything (or given up).
#[derive(Serialize, Deserialize)]
pub struct Seen {
    /// Delivery latencies, ms.
    pub latencies_ms: Vec<f64>,
    /// When the last event arrived (`CLOCK_MONOTONIC` ns).
    pub last_ns: u64,
    /// Events reported lost (rotated away before this watcher read them).
    pub lost: u64,
}

/// The raw floor's log file in `dir`.
fn raw_log(dir: &Path) -> PathBuf {
    dir.join("events.log")
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")
}

fn print_line(line: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}

/// A watcher process: prints `ready` once it follows the log, then a [`Seen`] as JSON once
/// `expect` events arrived.
pub fn watch(dir: &Path, raw: bool, expect: u64) -> Result<()> {
    let mut seen = Seen {
        latencies_ms: Vec::with_capacity(expect as usize),
        last_ns: 0,
        lost: 0,
    };
    if raw {
        use inotify::{Inotify, WatchMask};
        let path = raw_log(dir);
        let mut file = std::fs::File::open(&path)?;
        let mut inotify = Inotify::init()?;
        inotify.watches().add(&path, WatchMask::MODIFY)?;
        let mut offset = file.seek(std::io::SeekFrom::End(0))?;
        print_line("ready")?;
        let (mut buf, mut pending) = ([0u8; 4096], Vec::new());
        while (seen.latencies_ms.len() as u64) < expect {
            inotify.read_events_blocking(&mut buf)?;
            file.seek(std::io::SeekFrom::Start(offset))?;
            let n = file.read_to_end(&mut pending)?;
            offset += n as u64;
            let now = now_ns();
            let end = pending
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1);
            for line in pending[..end]
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
            {
                let t: u64 = std::str::from_utf8(line)?.trim().parse()?;
                seen.latencies_ms.push((now as f64 - t as f64) / 1e6);
                seen.last_ns = now;
            }
            pending.drain(..end);
        }
    } else {
        runtime()?.block_on(async {
            let volume = Volume::open(dir, VolumeOptions::default()).await?;
            let mut stream = volume.watch_events(None).await?;
            print_line("ready")?;
            while (seen.latencies_ms.len() as u64 + seen.lost) < expect {
                match stream.next().await {
                    Some(Ok(event)) => {
                        let now = now_ns();
                        let t = event
                            .data
                            .as_ref()
                            .and_then(|d| d.get("t"))
                            .and_then(|t| t.as_u64())
                            .context("an event without its stamp")?;
                        seen.latencies_ms.push((now as f64 - t as f64) / 1e6);
                        seen.last_ns = now;
                    }
                    Some(Err(podsignal_client::Error::EventsRotated {
                        wanted, available, ..
                    })) => seen.lost += available.saturating_sub(wanted),
                    Some(Err(e)) => return Err(e.into()),
                    None => bail!("the event stream ended"),
                }
            }
            Ok::<(), anyhow::Error>(())
        })?;
    }
    print_line(&serde_json::to_string(&seen)?)
}

/// A publisher process: prints `ready`, waits for a line on stdin, publishes `count` events
/// stamped with the time, prints `done`.
pub fn publish(dir: &Path, raw: bool, count: u64) -> Result<()> {
    let mut go = String::new();
    if raw {
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(raw_log(dir))?;
        print_line("ready")?;
        std::io::stdin().read_line(&mut go)?;
        for _ in 0..count {
            file.write_all(format!("{}\n", now_ns()).as_bytes())?;
        }
    } else {
        runtime()?.block_on(async {
            let volume = Volume::open(dir, VolumeOptions::default()).await?;
            let kind = "bench".parse()?;
            print_line("ready")?;
            std::io::stdin().read_line(&mut go)?;
            for _ in 0..count {
                let data = serde_json::json!({ "t": now_ns() });
                volume.publish(&kind, Some(data)).await?;
            }
            Ok::<(), anyhow::Error>(())
        })?;
    }
    print_line("done")
}

fn spawn(
    args: &[&str],
    dir: &Path,
    raw: bool,
) -> Result<(Child, BufReader<std::process::ChildStdout>)> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args(args).arg("--dir").arg(dir);
    if raw {
        cmd.arg("--raw");
    }
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
    let mut out = BufReader::new(child.stdout.take().context("stdout")?);
    let mut line = String::new();
    out.read_line(&mut line)?;
    if line.trim() != "ready" {
        bail!("{args:?}: {line:?}");
    }
    Ok((child, out))
}

/// One run: `publishers` × `count` events to `watchers`. Returns (events/s, latencies, lost).
fn one(raw: bool, publishers: usize, watchers: usize, count: u64) -> Result<(f64, Vec<f64>, u64)> {
    let dir = tempfile::tempdir()?;
    if raw {
        std::fs::write(raw_log(dir.path()), b"")?;
    } else {
        // Create the log before anyone follows it.
        let rt = runtime()?;
        rt.block_on(async {
            let v = Volume::open(dir.path(), VolumeOptions::default()).await?;
            v.last_event_seq().await?;
            Ok::<(), anyhow::Error>(())
        })?;
    }
    let total = publishers as u64 * count;
    let expect = total.to_string();
    let mut ws = Vec::new();
    for _ in 0..watchers {
        ws.push(spawn(
            &["events-watch", "--expect", &expect],
            dir.path(),
            raw,
        )?);
    }
    let count_s = count.to_string();
    let mut ps = Vec::new();
    for _ in 0..publishers {
        ps.push(spawn(
            &["events-publish", "--count", &count_s],
            dir.path(),
            raw,
        )?);
    }
    let start = now_ns();
    for (p, _) in &mut ps {
        writeln!(p.stdin.as_mut().context("stdin")?, "go")?;
    }
    let (mut latencies, mut last, mut lost) = (Vec::new(), 0u64, 0u64);
    for (mut w, mut out) in ws {
        let mut line = String::new();
        out.read_line(&mut line)?;
        let seen: Seen =
            serde_json::from_str(line.trim()).with_context(|| format!("watcher said {line:?}"))?;
        latencies.extend(seen.latencies_ms);
        last = last.max(seen.last_ns);
        lost += seen.lost;
        w.wait()?;
    }
    for (mut p, _) in ps {
        p.wait()?;
    }
    let secs = (last.saturating_sub(start)) as f64 / 1e9;
    Ok((total as f64 / secs, latencies, lost))
}

/// Runs the floor and the library, 8 publishers and 8 watchers, `count` events each.
pub fn run(count: u64) -> Result<Report> {
    let mut report = Report::new("events");
    let (floor_rate, floor_lat, _) = one(true, 8, 8, count)?;
    let (rate, lat, lost) = one(false, 8, 8, count)?;
    let (fs, ps) = (Summary::of(&floor_lat), Summary::of(&lat));
    println!(
        "events 8×{count} → 8 watchers: library {rate:.0}/s p99 {:.3} ms (lost {lost}); floor {floor_rate:.0}/s p99 {:.3} ms",
        ps.p99, fs.p99
    );
    report.rows.push(Row {
        figure: "events: 8 publishers → 8 watchers, throughput".into(),
        unit: "events/s".into(),
        floor: Some(floor_rate),
        podsignal: Some(rate),
        baselines: vec![],
        note: format!(
            "{} events each, first publish → last delivery; podsignal watchers reported {lost} lost to rotation; floor: O_APPEND lines + raw inotify",
            count
        ),
    });
    report.rows.push(Row {
        figure: "events: 8 publishers → 8 watchers, delivery latency p99".into(),
        unit: "ms".into(),
        floor: Some(fs.p99),
        podsignal: Some(ps.p99),
        baselines: vec![],
        note: format!("podsignal {ps}; floor {fs}; under full load"),
    });
    for (label, values) in [("floor: O_APPEND + inotify", floor_lat), ("library", lat)] {
        report.series.push(Series {
            plot: "events-delivery".into(),
            label: label.into(),
            values,
            x: vec![],
            ..Default::default()
        });
    }
    Ok(report)
}
