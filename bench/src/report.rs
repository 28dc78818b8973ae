//! Results: summary statistics, and the JSON file `bench/run.sh` turns into BENCHMARKS.md and
//! plots. One file per benchmark: rows (figure, floor, podsignal, baselines) and the raw
//! samples behind them.

use anyhow::{Context, Result};
use serde::Serialize;
use std::path::Path;
use std::time::Duration;

/// One line of the results table: a figure for podsignal next to its floor and baselines.
#[derive(Serialize, Debug, Clone)]
pub struct Row {
    /// What is measured, e.g. "10000 waiters: RSS".
    pub figure: String,
    /// The unit of every number in the row ("MiB", "ms", ...).
    pub unit: String,
    /// The floor: the least any implementation can do on this machine.
    pub floor: Option<f64>,
    /// podsignal's figure.
    pub podsignal: Option<f64>,
    /// Other ways of doing the same thing (name, figure).
    pub baselines: Vec<(String, f64)>,
    /// Anything the reader needs to read the row right.
    pub note: String,
}

/// A named list of samples (latencies in ms, or points of a curve), for the plots.
#[derive(Serialize, Debug, Clone, Default)]
pub struct Series {
    /// The plot this series belongs to.
    pub plot: String,
    /// The series' label in the plot.
    pub label: String,
    /// Samples (a distribution) or, with `x`, the y values of a curve.
    pub values: Vec<f64>,
    /// The x values of a curve; empty for a distribution.
    pub x: Vec<f64>,
    /// A curve's axis labels (empty: "waiters" and the plot's unit).
    pub x_label: String,
    /// See `x_label`.
    pub y_label: String,
}

/// Everything one benchmark produced.
#[derive(Serialize, Debug, Default)]
pub struct Report {
    /// The benchmark's name (its subcommand).
    pub bench: String,
    /// The table rows.
    pub rows: Vec<Row>,
    /// The samples behind them.
    pub series: Vec<Series>,
}

impl Report {
    /// An empty report for `bench`.
    pub fn new(bench: &str) -> Report {
        Report {
            bench: bench.into(),
            ..Report::default()
        }
    }

    /// Writes the report as JSON to `path`, if one was given.
    pub fn write(&self, path: Option<&Path>) -> Result<()> {
        if let Some(path) = path {
            let json = serde_json::to_vec_pretty(self)?;
            std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    }
}

/// Milliseconds, as a float.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Mebibytes, as a float.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// p50, p99 and max of a list of samples (nearest rank).
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    /// The median.
    pub p50: f64,
    /// The 99th percentile.
    pub p99: f64,
    /// The largest sample.
    pub max: f64,
}

impl Summary {
    /// Summarises `samples` (unsorted); all zero when empty.
    pub fn of(samples: &[f64]) -> Summary {
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        let rank = |p: f64| -> f64 {
            if s.is_empty() {
                return 0.0;
            }
            let i = ((p * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1;
            s[i]
        };
        Summary {
            p50: rank(0.50),
            p99: rank(0.99),
            max: s.last().copied().unwrap_or(0.0),
        }
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {:.3} p99 {:.3} max {:.3}",
            self.p50, self.p99, self.max
        )
    }
}
