//! `podsignal agent` options.

use std::time::Duration;

use clap::Args;

use super::parse::*;

/// `agent`.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Where to listen: HOST:PORT (loopback unless --allow-remote) or unix:PATH.
    #[arg(
        long,
        env = "PODSIGNAL_LISTEN",
        default_value = "127.0.0.1:7781",
        value_name = "ADDR"
    )]
    pub listen: String,
    /// Allow a non-loopback --listen address (requires --token-file).
    #[arg(long)]
    pub allow_remote: bool,
    /// Create --token-file with a random token (mode 0640) if it does not exist.
    #[arg(long, requires = "token_file")]
    pub generate_token: bool,
    /// The largest request body accepted, in bytes (413 above).
    #[arg(long, default_value_t = 64 * 1024, value_parser = at_least_one(), value_name = "BYTES", help_heading = "Limits")]
    pub max_body: usize,
    /// How many connections may be open at once; more wait in the kernel's backlog until one
    /// closes (default: three quarters of the descriptor limit, RLIMIT_NOFILE, less a reserve
    /// for the shared directory).
    #[arg(long, value_parser = at_least_one(), value_name = "N", help_heading = "Limits")]
    pub max_connections: Option<usize>,
    /// A client must send a whole request head within this, and a kept-alive connection must
    /// start its next request within it, or the connection is closed (slow or idle clients
    /// cannot hold connections).
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DUR", help_heading = "Limits")]
    pub header_timeout: Duration,
    /// How many long-polls, waiting acquisitions and holds may be open at once (503 above;
    /// default: a quarter of the descriptor budget, at most 1024).
    #[arg(long, value_parser = at_least_one(), value_name = "N", help_heading = "Limits")]
    pub max_waiters: Option<usize>,
    /// How many event streams may be open at once (503 above).
    #[arg(long, default_value_t = 64, value_parser = at_least_one(), value_name = "N", help_heading = "Limits")]
    pub max_streams: usize,
    /// The longest single long-poll; a longer ?wait= is cut to this (clients poll again).
    #[arg(long, default_value = "5m", value_parser = parse_duration, value_name = "DUR", help_heading = "Limits")]
    pub max_wait: Duration,
    /// How long any request may take beyond its own wait (503 after).
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DUR", help_heading = "Limits")]
    pub request_timeout: Duration,
    /// How often hold streams send a heartbeat line.
    #[arg(long, default_value = "5s", value_parser = parse_duration, value_name = "DUR", help_heading = "Limits")]
    pub heartbeat: Duration,
    /// On shutdown, how long to wait for open connections to finish before exiting anyway.
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DUR", help_heading = "Limits")]
    pub drain_timeout: Duration,
}

/// A limit from 1 (0 would refuse every request of its kind) to a billion (the semaphores
/// behind the limits take at most `usize::MAX >> 3` permits, and no pod needs more than a
/// billion of anything here). clap's error names the option and the range; exit 2.
fn at_least_one() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::new().range(1..=1_000_000_000)
}
