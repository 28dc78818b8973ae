//! Scaling with the number of records in the shared directory: what a write, a wake, a
//! `podsignal status` and an idle agent cost with 10, 1,000 and 10,000 readiness records.
//! (Scaling with waiters is [`crate::waiters`].) Expected shapes: writes and wakes flat (a
//! write touches one record, a wake is one inotify event and one record read), `status`
//! linear (it reads every record), the agent's idle CPU zero and its RSS flat (it keeps no
//! per-record state).

use crate::child::{WaiterMode, now_ns};
use crate::report::{Report, Row, Series, Summary, mib, ms};
use crate::servers::{Kind, Server};
use crate::wake::{Waiter, always, rounds, run_ok};
use anyhow::{Context, Result};
use podsignal_client::{Coordinator, Volume, VolumeOptions};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// How much each size measures.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    /// Wake trials (a write each) per record count.
    pub trials: usize,
    /// `podsignal status` runs per record count.
    pub status_runs: usize,
    /// How long the agent's idle CPU is measured.
    pub idle: Duration,
}

/// One record count's results.
struct Point {
    records: usize,
    write: Vec<f64>,
    write_floor: Vec<f64>,
    wake: Vec<f64>,
    status: Vec<f64>,
    idle_cpu: f64,
    rss: f64,
}

/// Runs every record count in `counts` against a fresh agent and directory each.
pub fn run(
    rt: &tokio::runtime::Runtime,
    podsignal: &Path,
    counts: &[usize],
    sizes: Sizes,
) -> Result<Report> {
    let mut report = Report::new("scaling");
    // The wake floor does not depend on the records (an inotify event is per rename).
    let raw = tempfile::tempdir()?;
    let mut w = Waiter::spawn(WaiterMode::Inotify, raw.path(), None)?;
    let wake_floor = rounds(sizes.trials, &mut w, always, |i| {
        let t0 = now_ns();
        raw_write(raw.path(), &format!("r{i}"))?;
        Ok(t0)
    })?;
    drop(w);
    let mut points = Vec::new();
    for &records in counts {
        points.push(point(rt, podsignal, records, sizes)?);
    }
    let floor_p50 = Summary::of(&wake_floor).p50;
    for p in &points {
        let n = p.records;
        let (wake, write, floor) = (
            Summary::of(&p.wake),
            Summary::of(&p.write),
            Summary::of(&p.write_floor),
        );
        println!(
            "{n} records: wake p50 {:.3} p99 {:.3}; write p50 {:.3} (raw {:.3}); status p50 {:.1} ms; agent idle {:.3} ms/s, RSS {:.1} MiB",
            wake.p50,
            wake.p99,
            write.p50,
            floor.p50,
            Summary::of(&p.status).p50,
            p.idle_cpu,
            p.rss
        );
        let row = |figure: &str, unit: &str, floor: Option<f64>, value: f64, note: String| Row {
            figure: format!("{n} records: {figure}"),
            unit: unit.into(),
            floor,
            podsignal: Some(value),
            baselines: vec![],
            note,
        };
        report.rows.push(row(
            "library readiness wake (Volume::set_ready → wait_ready in another process)",
            "ms p50",
            Some(floor_p50),
            wake.p50,
            format!(
                "n={}; p99 {:.3}, max {:.3}; floor: rename → raw inotify, p99 {:.3}",
                p.wake.len(),
                wake.p99,
                wake.max,
                Summary::of(&wake_floor).p99
            ),
        ));
        report.rows.push(row(
            "a readiness write (Volume::set_ready, in the writer)",
            "ms p50",
            Some(floor.p50),
            write.p50,
            format!(
                "p99 {:.3}; floor: write a temporary file and rename it, p50 {:.3} p99 {:.3}",
                write.p99, floor.p50, floor.p99
            ),
        ));
        report.rows.push(row(
            "podsignal status --json (reads every record)",
            "ms p50",
            None,
            Summary::of(&p.status).p50,
            format!("n={}; a process per run", p.status.len()),
        ));
        report.rows.push(row(
            "agent idle CPU",
            "ms/s",
            None,
            p.idle_cpu,
            format!("over {} s, nobody waiting", sizes.idle.as_secs()),
        ));
        report.rows.push(row(
            "agent RSS",
            "MiB",
            None,
            p.rss,
            "VmRSS after the idle period".into(),
        ));
    }
    let xs: Vec<f64> = points.iter().map(|p| p.records as f64).collect();
    let mut curve = |plot: &str, label: &str, y_label: &str, values: Vec<f64>| {
        report.series.push(Series {
            plot: plot.into(),
            label: label.into(),
            values,
            x: xs.clone(),
            x_label: "readiness records in the directory".into(),
            y_label: y_label.into(),
        });
    };
    let p50 = |f: fn(&Point) -> &Vec<f64>| -> Vec<f64> {
        points.iter().map(|p| Summary::of(f(p)).p50).collect()
    };
    let p99 = |f: fn(&Point) -> &Vec<f64>| -> Vec<f64> {
        points.iter().map(|p| Summary::of(f(p)).p99).collect()
    };
    curve(
        "scaling-records-latency",
        "library wake p50",
        "ms",
        p50(|p| &p.wake),
    );
    curve(
        "scaling-records-latency",
        "library wake p99",
        "ms",
        p99(|p| &p.wake),
    );
    curve(
        "scaling-records-latency",
        "write p50",
        "ms",
        p50(|p| &p.write),
    );
    curve(
        "scaling-records-latency",
        "floor: rename → raw inotify p50",
        "ms",
        vec![floor_p50; points.len()],
    );
    curve(
        "scaling-records-latency",
        "floor: raw write + rename p50",
        "ms",
        p50(|p| &p.write_floor),
    );
    curve(
        "scaling-records-status",
        "podsignal status --json p50",
        "ms",
        p50(|p| &p.status),
    );
    let idle: Vec<f64> = points.iter().map(|p| p.idle_cpu).collect();
    curve(
        "scaling-records-agent-cpu",
        "agent idle CPU",
        "ms of CPU per s",
        idle,
    );
    let rss: Vec<f64> = points.iter().map(|p| p.rss).collect();
    curve("scaling-records-agent-rss", "agent RSS", "MiB", rss);
    Ok(report)
}

/// A fresh agent on a directory with `records` readiness records (`bg0`...): the wake and
/// write latencies with a library waiter, `status` runs, the agent's idle cost.
fn point(
    rt: &tokio::runtime::Runtime,
    podsignal: &Path,
    records: usize,
    sizes: Sizes,
) -> Result<Point> {
    let server = rt.block_on(Server::start(Kind::Agent, podsignal, 64))?;
    let dir = server.dir_path().context("the agent's directory")?;
    let volume = rt.block_on(Volume::open(&dir, VolumeOptions::default()))?;
    for k in 0..records {
        rt.block_on(volume.set_ready(&format!("bg{k}").parse()?, None))?;
    }
    let mut w = Waiter::spawn(WaiterMode::Lib, &dir, None)?;
    let mut write = Vec::with_capacity(sizes.trials);
    let wake = rounds(sizes.trials, &mut w, always, |i| {
        let name = format!("r{i}").parse()?;
        let t0 = now_ns();
        rt.block_on(volume.set_ready(&name, None))?;
        write.push((now_ns() - t0) as f64 / 1e6);
        Ok(t0)
    })?;
    drop(w);
    // The same write without podsignal: a temporary file renamed into a directory holding
    // as many files.
    let raw = tempfile::tempdir()?;
    for k in 0..records {
        std::fs::write(raw.path().join(format!("bg{k}.json")), b"{}")?;
    }
    let mut write_floor = Vec::with_capacity(sizes.trials);
    for i in 0..sizes.trials {
        let t0 = Instant::now();
        raw_write(raw.path(), &format!("r{i}.json"))?;
        write_floor.push(ms(t0.elapsed()));
    }
    let mut status = Vec::with_capacity(sizes.status_runs);
    for _ in 0..sizes.status_runs {
        let t0 = Instant::now();
        run_ok(
            Command::new(podsignal)
                .arg("--dir")
                .arg(&dir)
                .args(["status", "--json"]),
        )?;
        status.push(ms(t0.elapsed()));
    }
    let cpu0 = server.cpu()?;
    std::thread::sleep(sizes.idle);
    let idle_cpu = ms(server.cpu()?.saturating_sub(cpu0)) / sizes.idle.as_secs_f64();
    Ok(Point {
        records,
        write,
        write_floor,
        wake,
        status,
        idle_cpu,
        rss: mib(server.rss()?),
    })
}

/// Writes `name` in `dir` the way any atomic writer does: a temporary file, then a rename.
fn raw_write(dir: &Path, name: &str) -> Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, b"{\"state\":\"ready\"}")?;
    std::fs::rename(&tmp, dir.join(name))?;
    Ok(())
}
