//! Many long-poll waiters: N HTTP/1.1 clients each long-poll `GET
//! /v1/readiness/db?wait=60s` on one server; once all wait, the server's RSS and its CPU time
//! over an idle period; then `db` becomes ready and the time until the last client has its
//! answer. The agent (made ready by `podsignal ready db`, a process) against the floor (made
//! ready by a `POST`).

use crate::report::{Report, Row, Series, Summary, mib, ms};
use crate::servers::{Kind, Server, read_head, request, request_head};
use anyhow::{Context, Result, bail};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// What one run against one server measured.
#[derive(Debug)]
pub struct Measured {
    /// RSS with no client connected.
    pub rss_empty: u64,
    /// RSS once every client waits.
    pub rss_waiting: u64,
    /// Peak RSS by the end of the idle period (before the answers).
    pub rss_peak: u64,
    /// CPU time (user + system) over the idle period with every client waiting.
    pub cpu_idle: Duration,
    /// From the trigger to the first answer.
    pub first: Duration,
    /// From the trigger to the last answer.
    pub last: Duration,
    /// How long the trigger took (the `podsignal ready` process, or the POST).
    pub trigger: Duration,
    /// Every client's answer time from the trigger, ms.
    pub answers_ms: Vec<f64>,
}

/// Connections opened at once (more would overflow the listen backlog and cost SYN retries,
/// which would measure the kernel, not the server).
const CONNECTING: usize = 128;

async fn one_client(
    addr: std::net::SocketAddr,
    connecting: Arc<Semaphore>,
) -> Result<(u16, Instant)> {
    let permit = connecting.acquire_owned().await?;
    let mut stream = TcpStream::connect(addr).await?;
    stream
        .write_all(request_head("GET", "/v1/readiness/db?wait=60s").as_bytes())
        .await?;
    drop(permit);
    let mut buf = Vec::with_capacity(512);
    let (status, _) = read_head(&mut stream, &mut buf).await?;
    Ok((status, Instant::now()))
}

/// Runs the benchmark once against `kind` with `n` clients.
pub async fn measure(kind: Kind, podsignal: &Path, n: usize, idle: Duration) -> Result<Measured> {
    let server = Server::start(kind, podsignal, n).await?;
    // Let the runtime settle before the first reading.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss_empty = server.rss()?;

    let connecting = Arc::new(Semaphore::new(CONNECTING));
    let clients: Vec<_> = (0..n)
        .map(|_| tokio::spawn(one_client(server.addr, connecting.clone())))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let waiting = server.waiting().await?;
        if waiting >= n {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "{}: only {waiting} of {n} clients waiting after 60 s",
                kind.label()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rss_waiting = server.rss()?;
    let cpu_before = server.cpu()?;
    tokio::time::sleep(idle).await;
    let cpu_idle = server.cpu()?.saturating_sub(cpu_before);
    let rss_peak = server.peak_rss()?;

    let trigger = Instant::now();
    match kind {
        Kind::Agent => {
            let dir = server.dir_path().context("the agent has a directory")?;
            let status = tokio::process::Command::new(podsignal)
                .arg("--dir")
                .arg(&dir)
                .args(["ready", "db"])
                .status()
                .await
                .context("running podsignal ready db")?;
            if !status.success() {
                bail!("podsignal ready db: {status}");
            }
        }
        Kind::Floor => {
            let (status, _) = request(server.addr, "POST", "/v1/readiness/db").await?;
            if status != 204 {
                bail!("floor POST answered {status}");
            }
        }
    }
    let trigger_took = trigger.elapsed();
    let mut answers_ms = Vec::with_capacity(n);
    for client in clients {
        let (status, at) = client.await??;
        if status != 200 {
            bail!("{}: a waiter was answered {status}", kind.label());
        }
        answers_ms.push(ms(at.saturating_duration_since(trigger)));
    }
    let first = answers_ms.iter().copied().fold(f64::INFINITY, f64::min);
    let last = answers_ms.iter().copied().fold(0.0, f64::max);
    Ok(Measured {
        rss_empty,
        rss_waiting,
        rss_peak,
        cpu_idle,
        first: Duration::from_secs_f64(first / 1000.0),
        last: Duration::from_secs_f64(last / 1000.0),
        trigger: trigger_took,
        answers_ms,
    })
}

/// The median of `values` (the mean of the middle two for an even count); NaN if empty.
fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { f64::NAN }
}

/// Runs the benchmark for each N, agent then floor, `rounds` times (the idle period only in
/// the first), printing one line per N. The last answer is the median over the rounds: one
/// round's is a maximum, and on a shared 2-core machine a maximum is noisy.
pub async fn run(podsignal: &Path, ns: &[usize], idle: Duration, rounds: usize) -> Result<Report> {
    let mut report = Report::new("waiters");
    let mut rss_curve = [Vec::new(), Vec::new()];
    let mut last_curve = [Vec::new(), Vec::new()];
    for &n in ns {
        let mut lasts = Vec::new();
        let mut first_round = None;
        for round in 0..rounds.max(1) {
            let idle = if round == 0 { idle } else { Duration::ZERO };
            let agent = measure(Kind::Agent, podsignal, n, idle).await?;
            let floor = measure(Kind::Floor, podsignal, n, idle).await?;
            lasts.push((ms(agent.last), ms(floor.last)));
            first_round.get_or_insert((agent, floor));
        }
        let (agent, floor) = first_round.context("no round ran")?;
        let (ra, rf) = (mib(agent.rss_waiting), mib(floor.rss_waiting));
        let (la, lf) = (
            median(lasts.iter().map(|l| l.0)),
            median(lasts.iter().map(|l| l.1)),
        );
        let per_round = lasts
            .iter()
            .map(|(a, f)| format!("{a:.0}/{f:.0}"))
            .collect::<Vec<_>>()
            .join(", ");
        let (ca, cf) = (ms(agent.cpu_idle), ms(floor.cpu_idle));
        println!(
            "waiters n={n}: RSS agent {ra:.1} MiB floor {rf:.1} MiB ({:.2}x), peak {:.1} / {:.1} MiB | last answer (median of {}) agent {la:.1} ms floor {lf:.1} ms ({:.2}x), agent/floor by round {per_round}; first {:.1} / {:.1} ms | idle CPU over {:?} agent {ca:.0} ms floor {cf:.0} ms",
            ratio(ra, rf),
            mib(agent.rss_peak),
            mib(floor.rss_peak),
            lasts.len(),
            ratio(la, lf),
            ms(agent.first),
            ms(floor.first),
            idle,
        );
        let secs = idle.as_secs_f64();
        report.rows.extend([
            Row {
                figure: format!("{n} long-poll waiters: server RSS"),
                unit: "MiB".into(),
                floor: Some(rf),
                podsignal: Some(ra),
                baselines: vec![],
                note: format!(
                    "VmRSS once all wait; peak (VmHWM) by the end of the idle period: agent {:.1}, floor {:.1}; with no client: agent {:.1}, floor {:.1}",
                    mib(agent.rss_peak),
                    mib(floor.rss_peak),
                    mib(agent.rss_empty),
                    mib(floor.rss_empty)
                ),
            },
            Row {
                figure: format!("{n} long-poll waiters: ready → last answer"),
                unit: "ms".into(),
                floor: Some(lf),
                podsignal: Some(la),
                baselines: vec![],
                note: format!(
                    "median over {} rounds (agent/floor ms by round: {per_round}); first round's answers: agent {}, floor {}; first answer: agent {:.1}, floor {:.1}; agent made ready by the `podsignal ready db` process (ran {:.1} ms), floor by a POST ({:.1} ms)",
                    lasts.len(),
                    Summary::of(&agent.answers_ms),
                    Summary::of(&floor.answers_ms),
                    ms(agent.first),
                    ms(floor.first),
                    ms(agent.trigger),
                    ms(floor.trigger)
                ),
            },
            Row {
                figure: format!("{n} long-poll waiters: idle CPU per second waiting"),
                unit: "ms/s".into(),
                floor: Some(cf / secs),
                podsignal: Some(ca / secs),
                baselines: vec![],
                note: format!("over {secs:.0} s"),
            },
        ]);
        for (i, m) in [&agent, &floor].into_iter().enumerate() {
            let label = [Kind::Agent, Kind::Floor][i].label();
            report.series.push(Series {
                plot: format!("waiters-answers-{n}"),
                label: label.into(),
                values: m.answers_ms.clone(),
                x: vec![],
                ..Default::default()
            });
            rss_curve[i].push(mib(m.rss_waiting));
        }
        last_curve[0].push(la);
        last_curve[1].push(lf);
    }
    let xs: Vec<f64> = ns.iter().map(|&n| n as f64).collect();
    for (i, kind) in [Kind::Agent, Kind::Floor].into_iter().enumerate() {
        report.series.push(Series {
            plot: "waiters-rss".into(),
            label: kind.label().into(),
            values: rss_curve[i].clone(),
            x: xs.clone(),
            ..Default::default()
        });
        report.series.push(Series {
            plot: "waiters-last-answer".into(),
            label: kind.label().into(),
            values: last_curve[i].clone(),
            x: xs.clone(),
            ..Default::default()
        });
    }
    Ok(report)
}
