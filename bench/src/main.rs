//! podsignal's benchmark suite. Every figure is taken with real processes and printed next
//! to its floor, measured in the same run: the least any implementation could do on this
//! machine (a raw inotify waiter, a raw flock, a minimal axum server, spawning a tiny
//! process). Benchmarks are programs, not tests: `bench/run.sh` runs them all and writes
//! BENCHMARKS.md.
//!
//! Where things live: `waiters` (many long-poll waiters on one server), `wake` (readiness and
//! lock latency, writer → waiter in another process; CLI and shell baselines), `child` (the
//! waiter and holder processes those spawn), `cost` (the agent's idle cost, request cost,
//! start time), `events` (publishers → watchers), `scaling` (costs as records grow),
//! `floor_server` (the
//! minimal axum long-poll server), `servers` (starting the agent and the floor as processes;
//! a raw HTTP/1.1 client), `procfs` (RSS and CPU time from /proc), `report` (statistics and
//! the JSON results).

mod child;
mod cost;
mod events;
mod floor_server;
mod locks;
mod procfs;
mod report;
mod scaling;
mod servers;
mod waiters;
mod wake;

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
    /// Fewer trials and shorter periods (a smoke run; figures are rougher).
    #[arg(long)]
    quick: bool,
}

impl Common {
    fn trials(&self) -> wake::Trials {
        if self.quick {
            wake::Trials {
                fast: 100,
                process: 20,
                poll: 10,
            }
        } else {
            wake::Trials {
                fast: 1000,
                process: 1000,
                poll: 100,
            }
        }
    }
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
        /// Rounds per N (agent, then floor, each round); the last answer reported is the
        /// median over them, the idle period is measured in the first.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        #[command(flatten)]
        common: Common,
    },
    /// With 10, 1k, 10k readiness records: a write, a wake, `status`, the idle agent.
    ///
    ///   $ podsignal-bench scaling --records 10,1000,10000
    Scaling {
        /// How many records; separate with commas for several runs.
        #[arg(long, value_delimiter = ',', default_value = "10,1000,10000")]
        records: Vec<usize>,
        #[command(flatten)]
        common: Common,
    },
    /// Readiness wake, writer → waiter in another process: raw inotify, library, HTTP.
    Readiness {
        #[command(flatten)]
        common: Common,
    },
    /// The CLI path (`podsignal ready` → `podsignal wait`) next to inotifywait, shell loops
    /// and a 1 s HTTP poll; the floor is spawning a tiny static process.
    Cli {
        /// A tiny static program that exits 0 at once (the spawn floor).
        #[arg(long, default_value = "/bin/busybox")]
        tiny: PathBuf,
        /// Trials with a process per trial (default: 1000, quick 20).
        #[arg(long)]
        trials: Option<usize>,
        #[command(flatten)]
        common: Common,
    },
    /// Lock hand-off and holder death: raw flock, library, CLI vs flock(1).
    Locks {
        /// Trials with a process per trial (default: 1000, quick 20).
        #[arg(long)]
        trials: Option<usize>,
        #[command(flatten)]
        common: Common,
    },
    /// The agent's cost: idle RSS and CPU, a GET's round trip, wrk, start → serving, size.
    Cost {
        #[command(flatten)]
        common: Common,
    },
    /// Events: 8 publisher processes → 8 watcher processes; events/s and delivery latency.
    Events {
        /// Events per publisher (default 1000, quick 200).
        #[arg(long)]
        count: Option<u64>,
        #[command(flatten)]
        common: Common,
    },
    /// (Used by the benchmarks.) Follow the event log; print latencies once all arrived.
    EventsWatch {
        /// The shared directory.
        #[arg(long)]
        dir: PathBuf,
        /// The floor: raw lines in one file, followed with inotify.
        #[arg(long)]
        raw: bool,
        /// How many events to wait for.
        #[arg(long)]
        expect: u64,
    },
    /// (Used by the benchmarks.) Publish stamped events as fast as possible.
    EventsPublish {
        /// The shared directory.
        #[arg(long)]
        dir: PathBuf,
        /// The floor: raw lines appended to one file.
        #[arg(long)]
        raw: bool,
        /// How many events.
        #[arg(long)]
        count: u64,
    },
    /// (Used by the benchmarks.) Wait once per stdin line; print the wake-up stamp.
    Waiter {
        /// How to wait.
        #[arg(long, value_enum)]
        mode: child::WaiterMode,
        /// The directory to wait in.
        #[arg(long)]
        dir: PathBuf,
        /// The server to long-poll (HOST:PORT), for --mode http.
        #[arg(long)]
        addr: Option<String>,
    },
    /// (Used by the benchmarks.) Take a lock, print `held`, wait to be killed.
    Holder {
        /// How to hold.
        #[arg(long, value_enum)]
        mode: child::HolderMode,
        /// The directory.
        #[arg(long)]
        dir: PathBuf,
        /// The lock's name.
        #[arg(long)]
        name: String,
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
        Command::Events { count, common } => {
            let count = count.unwrap_or(if common.quick { 200 } else { 1000 });
            events::run(count)?.write(common.json.as_deref())
        }
        Command::EventsWatch { dir, raw, expect } => events::watch(&dir, raw, expect),
        Command::EventsPublish { dir, raw, count } => events::publish(&dir, raw, count),
        Command::Waiter { mode, dir, addr } => child::waiter(mode, dir, addr),
        Command::Holder { mode, dir, name } => child::holder(mode, dir, name),
        Command::Readiness { common } => {
            check_binary(&common)?;
            let rt = runtime()?;
            wake::readiness(&rt, &common.podsignal, common.trials())?.write(common.json.as_deref())
        }
        Command::Cli {
            tiny,
            trials,
            common,
        } => {
            check_binary(&common)?;
            let mut t = common.trials();
            t.process = trials.unwrap_or(t.process);
            let rt = runtime()?;
            wake::cli(&rt, &common.podsignal, &tiny, t)?.write(common.json.as_deref())
        }
        Command::Locks { trials, common } => {
            check_binary(&common)?;
            let mut t = common.trials();
            t.process = trials.unwrap_or(t.process);
            let rt = runtime()?;
            locks::locks(&rt, &common.podsignal, t)?.write(common.json.as_deref())
        }
        Command::Cost { common } => {
            check_binary(&common)?;
            let sizes = if common.quick {
                cost::Sizes {
                    idle: Duration::from_secs(10),
                    wrk: Duration::from_secs(3),
                    requests: 200,
                    starts: 5,
                    one_shots: 50,
                }
            } else {
                cost::Sizes {
                    idle: Duration::from_secs(60),
                    wrk: Duration::from_secs(10),
                    requests: 2000,
                    starts: 20,
                    one_shots: 500,
                }
            };
            runtime()?
                .block_on(cost::run(&common.podsignal, sizes))?
                .write(common.json.as_deref())
        }
        Command::Scaling { records, common } => {
            check_binary(&common)?;
            let sizes = if common.quick {
                scaling::Sizes {
                    trials: 50,
                    status_runs: 5,
                    idle: Duration::from_secs(2),
                }
            } else {
                scaling::Sizes {
                    trials: 300,
                    status_runs: 20,
                    idle: Duration::from_secs(10),
                }
            };
            let rt = runtime()?;
            scaling::run(&rt, &common.podsignal, &records, sizes)?.write(common.json.as_deref())
        }
        Command::Machine => {
            println!("{}", procfs::machine());
            Ok(())
        }
        Command::Waiters {
            n,
            idle_secs,
            rounds,
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
                rounds,
            ))?;
            report.write(common.json.as_deref())
        }
    }
}
