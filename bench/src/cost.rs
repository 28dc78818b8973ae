//! What the agent costs when it serves: idle memory and CPU, one request's round trip, a
//! `wrk` load, start → serving, the binary's size. Each next to the floor server.

use crate::report::{Report, Row, Series, Summary, mib, ms};
use crate::servers::{Kind, Server, SyncConn};
use anyhow::{Context, Result, bail};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// How long and how often.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    /// Idle period for RSS and CPU.
    pub idle: Duration,
    /// `wrk` duration.
    pub wrk: Duration,
    /// Round trips timed one by one.
    pub requests: usize,
    /// Starts timed.
    pub starts: usize,
    /// One-shot commands timed (each next to a `--version`).
    pub one_shots: usize,
}

/// A one-shot command's wall time (`podsignal ready x`, spawn to exit) next to the same
/// binary's `--version` (its floor: exec, parse, print, exit), interleaved so that drift on a
/// shared machine hits both alike, with the directory in `parent`. Issue 17's goal: ≤ 1.3×.
fn one_shots(podsignal: &Path, n: usize, parent: &Path) -> Result<(Vec<f64>, Vec<f64>)> {
    let dir = tempfile::tempdir_in(parent)?;
    let time = |args: &[&std::ffi::OsStr]| -> Result<f64> {
        let t0 = Instant::now();
        let status = Command::new(podsignal)
            .args(args)
            .stdout(std::process::Stdio::null())
            .status()?;
        let took = ms(t0.elapsed());
        if !status.success() {
            bail!("podsignal {args:?}: {status}");
        }
        Ok(took)
    };
    let version = [std::ffi::OsStr::new("--version")];
    let ready = [
        std::ffi::OsStr::new("ready"),
        std::ffi::OsStr::new("x"),
        std::ffi::OsStr::new("--dir"),
        dir.path().as_os_str(),
    ];
    let (mut floor, mut ready_ms) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        floor.push(time(&version)?);
        ready_ms.push(time(&ready)?);
    }
    Ok((floor, ready_ms))
}

/// Makes `db` ready on `server`.
fn make_ready(server: &Server) -> Result<()> {
    let mut conn = SyncConn::connect(&server.addr.to_string())?;
    let (status, body) = match server.kind {
        Kind::Agent => conn.request("PUT", "/v1/readiness/db", Some(r#"{"ready":true}"#))?,
        Kind::Floor => conn.request("POST", "/v1/readiness/db", None)?,
    };
    if !(200..300).contains(&status) {
        bail!("{}: making db ready: {status} {body}", server.kind.label());
    }
    Ok(())
}

/// `wrk` output: requests per second and the 99th percentile latency in ms.
fn wrk(addr: &str, duration: Duration) -> Result<(f64, f64)> {
    let out = Command::new("wrk")
        .args(["-t2", "-c50", "--latency"])
        .arg(format!("-d{}s", duration.as_secs().max(1)))
        .arg(format!("http://{addr}/v1/readiness/db"))
        .output()
        .context("running wrk (apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let rps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no Requests/sec in wrk output: {text}"))?;
    let p99 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .and_then(|v| wrk_ms(v.trim()))
        .unwrap_or(f64::NAN);
    if text.contains("Non-2xx") {
        bail!("wrk saw non-2xx answers: {text}");
    }
    Ok((rps, p99))
}

/// `1.23ms`, `456.00us`, `1.02s` → ms.
fn wrk_ms(v: &str) -> Option<f64> {
    let split = v.find(|c: char| c.is_ascii_alphabetic())?;
    let (n, unit) = v.split_at(split);
    let n: f64 = n.parse().ok()?;
    Some(match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        _ => return None,
    })
}

/// Runs every cost benchmark, agent then floor.
pub async fn run(podsignal: &Path, sizes: Sizes) -> Result<Report> {
    let mut report = Report::new("cost");
    let kinds = [Kind::Agent, Kind::Floor];
    let mut idle_rss = [0.0; 2];
    let mut idle_cpu = [0.0; 2];
    let mut trips: [Vec<f64>; 2] = [vec![], vec![]];
    let mut loads = [(0.0, 0.0); 2];
    let mut starts: [Vec<f64>; 2] = [vec![], vec![]];
    for (k, kind) in kinds.into_iter().enumerate() {
        let server = Server::start(kind, podsignal, 64).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let cpu0 = server.cpu()?;
        tokio::time::sleep(sizes.idle).await;
        idle_cpu[k] = ms(server.cpu()?.saturating_sub(cpu0)) / sizes.idle.as_secs_f64();
        idle_rss[k] = mib(server.rss()?);
        make_ready(&server)?;
        let addr = server.addr.to_string();
        let requests = sizes.requests;
        trips[k] = tokio::task::spawn_blocking(move || -> Result<Vec<f64>> {
            let mut conn = SyncConn::connect(&addr)?;
            let mut out = Vec::with_capacity(requests);
            for _ in 0..requests {
                let t0 = Instant::now();
                let (status, _) = conn.request("GET", "/v1/readiness/db", None)?;
                out.push(ms(t0.elapsed()));
                if status != 200 {
                    bail!("GET /v1/readiness/db: {status}");
                }
            }
            Ok(out)
        })
        .await??;
        let addr = server.addr.to_string();
        let wrk_for = sizes.wrk;
        loads[k] = tokio::task::spawn_blocking(move || wrk(&addr, wrk_for)).await??;
        drop(server);
        for _ in 0..sizes.starts {
            let t0 = Instant::now();
            let server = Server::start(kind, podsignal, 64).await?;
            starts[k].push(ms(t0.elapsed()));
            drop(server);
        }
    }
    let summary = |s: &[f64]| Summary::of(s);
    let rows = [
        ("idle: RSS", "MiB", idle_rss[1], idle_rss[0], String::new()),
        (
            "idle: CPU",
            "ms/s",
            idle_cpu[1],
            idle_cpu[0],
            format!("over {:.0} s", sizes.idle.as_secs_f64()),
        ),
        (
            "GET one readiness record, keep-alive round trip",
            "ms p50",
            summary(&trips[1]).p50,
            summary(&trips[0]).p50,
            format!(
                "n={}; agent {}; floor {}",
                sizes.requests,
                summary(&trips[0]),
                summary(&trips[1])
            ),
        ),
        (
            "GET one readiness record, wrk -t2 -c50",
            "req/s",
            loads[1].0,
            loads[0].0,
            format!(
                "over {} s; p99 latency agent {:.2} ms, floor {:.2} ms",
                sizes.wrk.as_secs(),
                loads[0].1,
                loads[1].1
            ),
        ),
        (
            "start → serving (spawn to first answer)",
            "ms p50",
            summary(&starts[1]).p50,
            summary(&starts[0]).p50,
            format!(
                "n={}; agent {}; floor {}",
                sizes.starts,
                summary(&starts[0]),
                summary(&starts[1])
            ),
        ),
    ];
    for (figure, unit, floor, agent, note) in rows {
        println!("cost | {figure}: agent {agent:.3} floor {floor:.3} {unit} {note}");
        report.rows.push(Row {
            figure: format!("agent: {figure}"),
            unit: unit.into(),
            floor: Some(floor),
            podsignal: Some(agent),
            baselines: vec![],
            note,
        });
    }
    // On tmpfs (what `emptyDir: {medium: Memory}` is) the row is podsignal's own cost; on the
    // disk's filesystem a rename over an existing file may start writeback first (ext4's
    // auto_da_alloc), which the note shows beside it.
    let shm = Path::new("/dev/shm");
    let tmpfs = if shm.is_dir() { shm } else { Path::new("/tmp") };
    let (version, ready) = one_shots(podsignal, sizes.one_shots, tmpfs)?;
    let (version, ready) = (summary(&version), summary(&ready));
    let (disk_version, disk_ready) = one_shots(podsignal, sizes.one_shots, &std::env::temp_dir())?;
    let (disk_version, disk_ready) = (summary(&disk_version), summary(&disk_ready));
    println!(
        "cost | one-shot: ready {:.3} --version {:.3} ms p50 in {}; ready {:.3} --version {:.3} in {}",
        ready.p50,
        version.p50,
        tmpfs.display(),
        disk_ready.p50,
        disk_version.p50,
        std::env::temp_dir().display()
    );
    report.rows.push(Row {
        figure: "one-shot command: spawn → exit of `podsignal ready x` (floor: the same binary's `--version`)".into(),
        unit: "ms p50".into(),
        floor: Some(version.p50),
        podsignal: Some(ready.p50),
        baselines: vec![],
        note: format!(
            "n={}, interleaved, directory in {}; ready {ready}; --version {version}; with the directory in {} instead: ready {disk_ready}, --version {disk_version}",
            sizes.one_shots,
            tmpfs.display(),
            std::env::temp_dir().display()
        ),
    });
    let size = std::fs::metadata(podsignal)?.len();
    println!("cost | binary size: {:.2} MiB", mib(size));
    report.rows.push(Row {
        figure: "podsignal binary size".into(),
        unit: "MiB".into(),
        floor: None,
        podsignal: Some(mib(size)),
        baselines: vec![],
        note: "the release build under test (LTO, opt-level s, stripped)".into(),
    });
    for (k, kind) in kinds.into_iter().enumerate() {
        report.series.push(Series {
            plot: "get-roundtrip".into(),
            label: kind.label().into(),
            values: trips[k].clone(),
            x: vec![],
            ..Default::default()
        });
    }
    Ok(report)
}
