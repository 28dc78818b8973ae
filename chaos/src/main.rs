//! `podsignal-chaos`: podsignal attacking itself. Every scenario starts real processes
//! (`podsignal` wrappers, agents, `flock(1)`, shells, curl), injects faults (`kill -9`,
//! SIGSTOP, a full or read-only filesystem, agent restarts, hostile neighbours) and checks
//! what must hold, from what the processes themselves recorded. It prints one Markdown table
//! (scenario, what it injects, what must hold, counts, result) and exits 1 if anything did not
//! hold. `tests/chaos/run.sh` builds and runs it; `RELIABILITY.md` keeps the long run's table.

mod agent;
mod harness;
mod ledger;
mod scenarios;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::Parser;

use harness::{Ctx, Report, Size};
use scenarios::Scenario;

/// Runs every fault-injection scenario against real podsignal processes and prints a table
/// of what held.
///
///   podsignal-chaos --quick                 # CI size: all scenarios within 5 minutes
///   podsignal-chaos --minutes 10            # each scenario 10 minutes (the long run)
///   podsignal-chaos --only mutex,leader     # some scenarios
///
/// Exit status: 0 every scenario held, 1 a violation (listed on stderr and in the table) or a
/// scenario that could not run, 2 usage.
#[derive(Debug, Parser)]
#[command(name = "podsignal-chaos", verbatim_doc_comment)]
struct Args {
    /// The CI size: every scenario for seconds (the default).
    #[arg(long, conflicts_with = "minutes")]
    quick: bool,
    /// Run each time-driven scenario this many minutes; counts grow with it.
    #[arg(long, value_name = "N")]
    minutes: Option<u64>,
    /// Only these scenarios (comma-separated names; see --list).
    #[arg(long, value_delimiter = ',', value_name = "NAME")]
    only: Vec<String>,
    /// List the scenarios and exit.
    #[arg(long)]
    list: bool,
    /// The seed of the random choices (whom to kill, when); printed with the table.
    #[arg(long)]
    seed: Option<u64>,
    /// The podsignal binary to attack (default: the one beside this binary).
    #[arg(long, env = "PODSIGNAL_BIN")]
    bin: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("podsignal-chaos: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// One scenario's outcome.
struct Outcome {
    scenario: &'static Scenario,
    report: Report,
    error: Option<String>,
    took: Duration,
}

fn run(args: &Args) -> Result<bool> {
    if args.list {
        for s in scenarios::ALL {
            println!("{:<16} {}", s.name, s.injects);
        }
        return Ok(true);
    }
    let harness = std::env::current_exe().context("locating this binary")?;
    let bin = match &args.bin {
        Some(b) => b.clone(),
        None => harness.with_file_name("podsignal"),
    };
    if !bin.is_file() {
        bail!(
            "no podsignal binary at {} (build it, or pass --bin)",
            bin.display()
        );
    }
    let size = args.minutes.map_or(Size::Quick, Size::Minutes);
    let seed = args.seed.unwrap_or_else(random_seed);
    let chosen = choose(&args.only)?;
    eprintln!(
        "chaos: {} scenarios, {size:?}, seed {seed}, attacking {}",
        chosen.len(),
        bin.display()
    );
    let started = Instant::now();
    let mut outcomes = Vec::new();
    for (i, scenario) in chosen.into_iter().enumerate() {
        let work = tempfile::Builder::new()
            .prefix(&format!("podsignal-chaos-{}-", scenario.name))
            .tempdir()
            .context("scratch directory")?;
        let ctx = Ctx {
            bin: bin.clone(),
            harness: harness.clone(),
            size,
            seed: seed.wrapping_add(i as u64),
            work: work.path().to_path_buf(),
            run_id: format!("{}-{}-{i}", scenario.name, std::process::id()),
        };
        eprintln!("chaos: == {} (seed {})", scenario.name, ctx.seed);
        let t = Instant::now();
        let (mut report, error) = match (scenario.run)(&ctx) {
            Ok(r) => (r, None),
            Err(e) => (Report::default(), Some(format!("{e:#}"))),
        };
        left_behind(&ctx, &mut report);
        let took = t.elapsed();
        eprintln!(
            "chaos: == {} {} in {:.1}s",
            scenario.name,
            verdict(&report, error.as_deref()),
            took.as_secs_f64()
        );
        outcomes.push(Outcome {
            scenario,
            report,
            error,
            took,
        });
    }
    print_table(&outcomes, size, seed, started.elapsed());
    Ok(outcomes
        .iter()
        .all(|o| o.error.is_none() && o.report.violations.is_empty()))
}

/// Every scenario promises it leaves no process behind: what a scenario started and did not
/// account for is a violation (and is killed).
fn left_behind(ctx: &Ctx, report: &mut Report) {
    if harness::eventually(Duration::from_secs(5), || ctx.leftovers().is_empty()) {
        return;
    }
    let left: Vec<String> = ctx
        .leftovers()
        .into_iter()
        .map(|p| {
            let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            format!("{p} ({})", cmd.trim())
        })
        .collect();
    if !left.is_empty() {
        report.violation(format!(
            "processes left behind after the scenario: {}",
            left.join(", ")
        ));
    }
    ctx.kill_leftovers();
}

fn choose(only: &[String]) -> Result<Vec<&'static Scenario>> {
    if only.is_empty() {
        return Ok(scenarios::ALL.iter().collect());
    }
    only.iter()
        .map(|name| {
            scenarios::ALL
                .iter()
                .find(|s| s.name == name)
                .with_context(|| format!("no scenario {name:?} (see --list)"))
        })
        .collect()
}

fn random_seed() -> u64 {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        return u64::from(std::process::id());
    }
    u64::from_le_bytes(b)
}

fn verdict(report: &Report, error: Option<&str>) -> String {
    match (error, report.violations.len()) {
        (Some(e), _) => format!("COULD NOT RUN: {e}"),
        (None, 0) => "held".to_owned(),
        (None, n) => format!("{n} VIOLATIONS"),
    }
}

fn print_table(outcomes: &[Outcome], size: Size, seed: u64, took: Duration) {
    let size = match size {
        Size::Quick => "--quick".to_owned(),
        Size::Minutes(m) => format!("--minutes {m}"),
    };
    println!();
    println!(
        "podsignal-chaos {size}, seed {seed}, {:.0}s in all, {} cores",
        took.as_secs_f64(),
        std::thread::available_parallelism().map_or(1, usize::from)
    );
    println!();
    println!("| scenario | injects | must hold | counts | result |");
    println!("|---|---|---|---|---|");
    for o in outcomes {
        let counts: Vec<String> = o
            .report
            .counts
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let mut result = verdict(&o.report, o.error.as_deref());
        result.push_str(&format!(" ({:.0}s)", o.took.as_secs_f64()));
        let cell = |s: &str| s.replace('|', "\\|");
        println!(
            "| {} | {} | {} | {} | {} |",
            o.scenario.name,
            cell(o.scenario.injects),
            cell(o.scenario.holds),
            cell(&counts.join(", ")),
            cell(&result)
        );
    }
    for o in outcomes {
        for v in &o.report.violations {
            println!("- {}: {v}", o.scenario.name);
        }
    }
}
