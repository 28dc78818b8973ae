//! podsignal's benchmark suite. Every figure is taken with real processes and printed next
//! to its floor, measured in the same run: the least any implementation could do on this
//! machine (a raw inotify waiter, a raw flock, a minimal axum server, spawning a tiny
//! process). Benchmarks are programs, not tests: `bench/run.sh` runs them all and writes
//! BENCHMARKS.md.
//!
//! Where things live: `waiters` (many long-poll waiters on one server), `floor_server` (the
//! minimal axum long-poll server), `servers` (starting the agent and the floor as processes;
//! a raw HTTP/1.1 client), `procfs` (RSS and CPU time from /proc), `report` (statistics and
//! the JSON results).

mod floor_server;
mod procfs;
mod report;
mod servers;
mod waiters;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

/// podsignal's benchmarks, each next to its floor.
#[derive(Parser)]
#[command(name = "podsignal-bench")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Options every benchmark takes.
#[derive(clap::Args)]
struct Common {
    /// The podsignal binary under test.
    #[arg(long, default_value = "target/release/podsignal")]
    podsignal: PathBuf,
    /// Write the results as JSON here (bench/run.sh turns them into BENCHMARKS.md).
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// N clients long-poll one server; its RSS, idle CPU, and the time to answer them all.
    ///
    ///   $ podsignal-bench waiters --n 10000 --podsignal target/release/podsignal
    Waiters {
        /// How many waiters; repeat or separate with commas for several runs.
        #[arg(long, value_delimiter = ',', default_value = "10,1000,10000")]
        n: Vec<usize>,
        /// How long to measure CPU time with everyone waiting, in seconds.
        #[arg(long, default_value_t = 10)]
        idle_secs: u64,
        #[command(flatten)]
        common: Common,
    },
    /// Serve the floor: a minimal axum long-poll server (used by the other benchmarks).
    FloorServer {
        /// Where to listen.
        #[arg(long)]
        listen: String,
    },
    /// Print the machine line (cores, CPU model, kernel).
    Machine,
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")
}

fn check_binary(common: &Common) -> Result<()> {
    if !common.podsignal.is_file() {
        bail!(
            "{}: no such podsignal binary (build it: cargo build --release --bin podsignal; or pass --podsignal PATH)",
            common.podsignal.display()
        );
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("podsignal-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::FloorServer { listen } => floor_server::run(&listen),
        Command::Machine => {
            println!("{}", procfs::machine());
            Ok(())
        }
        Command::Waiters {
            n,
            idle_secs,
            common,
        } => {
            check_binary(&common)?;
            let limit = procfs::raise_nofile()?;
            let max = n.iter().copied().max().unwrap_or(0) as u64;
            // Each waiter costs a descriptor here and one in the server.
            if max + 512 > limit {
                bail!("RLIMIT_NOFILE is {limit}: too low for {max} waiters (raise the hard limit)");
            }
            let report = runtime()?.block_on(waiters::run(
                &common.podsignal,
                &n,
                Duration::from_secs(idle_secs),
            ))?;
            report.write(common.json.as_deref())
        }
    }
}
