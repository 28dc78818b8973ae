//! The lock clients of the agent-restart scenario. Holders through the agent enter through
//! the scenario's [`crate::ledger::Gate`]: a grant of an agent killed since it was asked for
//! is counted and left unused (and released).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{LOCK, Shared, answer, call, cli};
use crate::agent::RawHold;
use crate::harness::{Ctx, Rng, lock};
use crate::ledger;

/// Writes `enter` through the gate for a grant asked for in generation `asked_in`; false
/// (counted) if the agent was killed since.
fn enter(shared: &Shared, asked_in: u64, w: &str, t: u64) -> bool {
    let entered = shared.gate.enter(&shared.ledger, asked_in, w, t);
    if !entered {
        shared.error("grants of a killed agent left unused");
    }
    entered
}

/// A lock client, sections one after another until the end.
pub(super) fn lock_client(ctx: &Ctx, shared: &Shared, i: usize, kind: &str) {
    let mut rng = Rng::new(ctx.seed.wrapping_add(i as u64 * 7919));
    while !shared.stop.load(Ordering::SeqCst) {
        let name = format!("{kind}{i}.{}", shared.client());
        let done = match kind {
            "hold" => hold_section(shared, &name, &mut rng),
            "lease" => lease_section(shared, &name, &mut rng),
            _ => cli_section(ctx, shared, &name, kind == "agentcli", &mut rng),
        };
        if !done {
            std::thread::sleep(Duration::from_millis(30));
        }
    }
}

/// After [`enter`]: work lines and `exit` as worker `w` with token `t`, stopping without
/// another word once the hold `h` (if any) is lost. True if it completed.
fn section(shared: &Shared, w: &str, t: u64, rng: &mut Rng, mut h: Option<&mut RawHold>) -> bool {
    for _ in 0..1 + rng.below(4) {
        std::thread::sleep(Duration::from_millis(10 + rng.below(20)));
        if h.as_mut().is_some_and(|h| h.lost()) {
            shared.error("hold lost with the agent");
            return false;
        }
        let _ = ledger::append(&shared.ledger, w, Some(t), "work");
    }
    let _ = ledger::append(&shared.ledger, w, Some(t), "exit");
    true
}

/// A hold through the agent: its section stops the moment the connection ends.
fn hold_section(shared: &Shared, name: &str, rng: &mut Rng) -> bool {
    let (asked, generation) = (Instant::now(), shared.gate.generation());
    let path = format!("/v1/locks/{LOCK}/hold?wait=5s");
    shared.client();
    let mut hold = match RawHold::open(shared.port, &path, Duration::from_secs(15)) {
        Ok(h) => h,
        Err(e) => {
            let code = e.strip_prefix("status ").and_then(|c| c.parse().ok());
            answer(shared, "hold", code.map(|c| (c, e.clone())).ok_or(e), 0);
            return false;
        }
    };
    lock(&shared.grants).push((asked, Instant::now(), hold.token));
    enter(shared, generation, name, hold.token)
        && section(shared, name, hold.token, rng, Some(&mut hold))
}

/// A lease through the agent: its holder cannot tell the agent died, so it writes on (a
/// fencing check refuses those writes) and learns it at the release (404).
fn lease_section(shared: &Shared, name: &str, rng: &mut Rng) -> bool {
    let (asked, generation) = (Instant::now(), shared.gate.generation());
    let path = format!("/v1/locks/{LOCK}?ttl=3s&wait=5s");
    let Some(body) = answer(shared, "lease", call(shared, "POST", &path), 200) else {
        return false;
    };
    let grant: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let (Some(token), Some(lease)) = (grant["token"].as_u64(), grant["lease"].as_str()) else {
        shared.violation(format!("POST {path}: no token or lease in {body}"));
        return false;
    };
    lock(&shared.grants).push((asked, Instant::now(), token));
    // Released even when left unused: the grant may be the new agent's.
    if enter(shared, generation, name, token) {
        section(shared, name, token, rng, None);
    }
    let path = format!("/v1/locks/{LOCK}?lease={lease}");
    answer(shared, "release", call(shared, "DELETE", &path), 204).is_some()
}

/// `podsignal lock LOCK -- sh -c SECTION`, or `podsignal --agent URL lock LOCK -- sh -c
/// SECTION` behind the gate.
fn cli_section(ctx: &Ctx, shared: &Shared, name: &str, through: bool, rng: &mut Rng) -> bool {
    let mut cmd = ctx.podsignal(&shared.dir);
    if through {
        shared.gate.env(&mut cmd, shared.gate.generation());
        cmd.args(["--agent", &shared.url]);
    }
    cmd.args(["lock", LOCK, "--timeout", "10s", "--grace", "1s", "--"])
        .args(["sh", "-c", ledger::SECTION])
        .env("W", name)
        .env("LEDGER", &shared.ledger)
        .env("WORK", (1 + rng.below(3)).to_string())
        .env("PAUSE", format!("0.0{}", 1 + rng.below(3)));
    let what = if through { "--agent lock" } else { "lock" };
    cli(ctx, shared, &mut cmd, what) == Some(true)
}
