//! The ledger: a file every critical section appends to (`WORKER TOKEN EVENT`, one short line
//! per `write(2)` with `O_APPEND`, so lines never interleave and the file's order is the order
//! of the writes), and the check of what it shows.
//!
//! A section writes `enter`, then `work` lines, then `exit`; processes it started may write
//! `late` after. The harness writes `harness - agent-killed` when it kills the agent (through
//! a [`Gate`]). The rules:
//!
//! - **One inside at a time**: once a worker has entered, no worker that entered before it
//!   writes again (not its section, not a process the section started). A write after that
//!   is a violation, with one excuse: a worker that held through the agent, when the agent
//!   was killed after the worker entered. Its lock vanished with the agent while its client
//!   was still inside; that is what fencing tokens are for, so the write is counted as
//!   *fenced* if its token is below the newest one (a resource checking tokens refuses it).
//!   If not, and the holder now is a `flock(1)` holder, which takes no token (protocol.md:
//!   they "do not bump the counter"), nothing could refuse it and podsignal promises nothing
//!   there: counted as *unfenceable*. Otherwise it is a violation.
//! - **Tokens strictly increase** from one section to the next (`-`: a `flock(1)` holder,
//!   which has none).
//! - A worker enters at most once, and writes nothing before it entered.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

mod gate;

pub use gate::Gate;

/// Appends one line to the ledger (the harness's own lines, or a thread's).
pub fn append(ledger: &Path, worker: &str, token: Option<u64>, event: &str) -> std::io::Result<()> {
    let mut line = String::with_capacity(64);
    let token = token.map_or_else(|| "-".to_owned(), |t| t.to_string());
    let _ = writeln!(line, "{worker} {token} {event}");
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(ledger)?
        .write_all(line.as_bytes())
}

/// [`ENTER`], as a literal for `concat!`.
macro_rules! enter_sh {
    () => {
        r#"
T=${PODSIGNAL_FENCING_TOKEN:--}
if [ -n "${GATE:-}" ]; then
  exec 8<"$GATE"; flock -s 8 || exit 1
  [ "$(cat "$GATE")" = "$GEN" ] || { echo "agent killed since the grant" >&2; exit 3; }
fi
echo "$W $T enter" >>"$LEDGER"
exec 8<&-
"#
    };
}

/// How [`ENTER`] (and so [`SECTION`]) exits when its gate refused: the agent was killed.
pub const REFUSED: i32 = 3;

/// The `sh` code that writes `enter` as `$W` with the token from `PODSIGNAL_FENCING_TOKEN`
/// (or `-`) to `$LEDGER`, and sets `T` to the token for the code after it. With `GATE` and
/// `GEN` set ([`Gate::env`]) it enters only if the agent was not killed since generation
/// `$GEN`; if it was, it exits [`REFUSED`] with `agent killed since the grant` on stderr.
pub const ENTER: &str = enter_sh!();

/// The `sh` code of a critical section: [`ENTER`], `$WORK` work lines `$PAUSE` seconds apart,
/// optionally a `late` line from a background process `$LATE` seconds later, then `exit`.
pub const SECTION: &str = concat!(
    enter_sh!(),
    r#"i=0
while [ "$i" -lt "${WORK:-3}" ]; do
  sleep "${PAUSE:-0.01}"
  echo "$W $T work" >>"$LEDGER"
  i=$((i + 1))
done
if [ -n "${LATE:-}" ]; then
  ( sleep "$LATE"; echo "$W $T late" >>"$LEDGER" ) &
fi
echo "$W $T exit" >>"$LEDGER"
"#
);

/// What the ledger showed.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Sections entered.
    pub entered: u64,
    /// Sections that wrote `exit`.
    pub exited: u64,
    /// Sections that never wrote `exit` (killed inside) before the next one entered.
    pub cut_short: u64,
    /// Writes by a section whose lock vanished with a killed agent, after the next holder
    /// entered, with a token a fencing check refuses.
    pub fenced: u64,
    /// Such writes while a `flock(1)` holder (no token) held, and no newer token was granted
    /// since theirs: nothing can refuse them, and nothing promises it.
    pub unfenceable: u64,
    /// Times the agent was killed.
    pub agent_kills: u64,
    /// The newest token seen.
    pub last_token: Option<u64>,
    /// Everything that did not hold.
    pub violations: Vec<String>,
}

/// Whether `worker` held through the agent (its lock vanishes when the agent dies).
pub type ThroughAgent<'a> = &'a dyn Fn(&str) -> bool;

/// Checks the ledger's text.
pub fn check(text: &str, through_agent: ThroughAgent<'_>) -> Verdict {
    let mut v = Verdict::default();
    // Worker -> (line of its enter, its token).
    let mut entered: HashMap<&str, (usize, Option<u64>)> = HashMap::new();
    let mut past: HashSet<&str> = HashSet::new();
    let mut exited: HashSet<&str> = HashSet::new();
    let mut current: Option<&str> = None;
    let mut last_agent_kill: Option<usize> = None;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let mut parts = line.split(' ');
        let (Some(worker), Some(token), Some(event), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            v.violations
                .push(format!("line {n}: torn or garbled: {line:?}"));
            continue;
        };
        let known = ["enter", "work", "exit", "late", "agent-killed"];
        if !known.contains(&event) {
            v.violations
                .push(format!("line {n}: torn or garbled: {line:?}"));
            continue;
        };
        let token = match token {
            "-" => None,
            t => match t.parse::<u64>() {
                Ok(t) => Some(t),
                Err(_) => {
                    v.violations.push(format!("line {n}: bad token {t:?}"));
                    continue;
                }
            },
        };
        if worker == "harness" {
            if event == "agent-killed" {
                v.agent_kills += 1;
                last_agent_kill = Some(i);
            }
            continue;
        }
        if event == "enter" {
            if entered.contains_key(worker) {
                v.violations
                    .push(format!("line {n}: {worker} entered twice"));
                continue;
            }
            if let (Some(t), Some(last)) = (token, v.last_token)
                && t <= last
            {
                v.violations.push(format!(
                    "line {n}: {worker} entered with token {t} after token {last}: tokens must strictly increase"
                ));
            }
            if let Some(prev) = current.replace(worker) {
                if !exited.contains(prev) {
                    v.cut_short += 1;
                }
                past.insert(prev);
            }
            entered.insert(worker, (i, token));
            v.entered += 1;
            if token.is_some() {
                v.last_token = token.max(v.last_token);
            }
            continue;
        }
        let Some(&(entered_at, own_token)) = entered.get(worker) else {
            v.violations
                .push(format!("line {n}: {worker} wrote {event} before entering"));
            continue;
        };
        if past.contains(worker) {
            let agent_died_inside = last_agent_kill.is_some_and(|k| k > entered_at);
            let refusable = matches!((own_token, v.last_token), (Some(o), Some(l)) if o < l);
            let stale = through_agent(worker) && agent_died_inside;
            let tokenless = current
                .and_then(|c| entered.get(c))
                .is_some_and(|e| e.1.is_none());
            if stale && refusable {
                v.fenced += 1;
            } else if stale && tokenless {
                v.unfenceable += 1;
            } else {
                let holder = current.unwrap_or("?");
                v.violations.push(format!(
                    "line {n}: {worker} wrote {event} after {holder} entered (two inside)"
                ));
            }
            continue;
        }
        if event == "exit" && exited.insert(worker) {
            v.exited += 1;
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: &str) -> bool {
        false
    }

    #[test]
    fn a_clean_handoff_holds() {
        let v = check(
            "a 1 enter\na 1 work\na 1 exit\na 1 late\nb 2 enter\nb 2 exit\n",
            &none,
        );
        assert!(v.violations.is_empty(), "{:?}", v.violations);
        assert_eq!((v.entered, v.exited, v.cut_short), (2, 2, 0));
    }

    #[test]
    fn a_killed_holder_is_cut_short_and_must_stay_silent() {
        let v = check("a 1 enter\na 1 work\nb 2 enter\nb 2 exit\n", &none);
        assert!(v.violations.is_empty());
        assert_eq!(v.cut_short, 1);
        let v = check("a 1 enter\nb 2 enter\na 1 late\n", &none);
        assert_eq!(v.violations.len(), 1, "{:?}", v.violations);
        assert!(v.violations[0].contains("a wrote late after b entered"));
    }

    #[test]
    fn tokens_must_increase() {
        let v = check("a 5 enter\na 5 exit\nb 5 enter\n", &none);
        assert!(
            v.violations[0].contains("strictly increase"),
            "{:?}",
            v.violations
        );
        let v = check(
            "a 5 enter\na 5 exit\nf - enter\nf - exit\nb 6 enter\n",
            &none,
        );
        assert!(v.violations.is_empty(), "{:?}", v.violations);
    }

    #[test]
    fn a_stale_write_after_the_agent_died_is_fenced_or_unfenceable() {
        let agent = |w: &str| w.starts_with("hold");
        let text = "hold1 3 enter\nharness - agent-killed\ncli2 4 enter\nhold1 3 work\n";
        let v = check(text, &agent);
        assert!(v.violations.is_empty(), "{:?}", v.violations);
        assert_eq!(v.fenced, 1);
        // Without an agent kill, the same write is two inside.
        let v = check("hold1 3 enter\ncli2 4 enter\nhold1 3 work\n", &agent);
        assert_eq!(v.violations.len(), 1);
        // Entered after the kill (a grant of the dead agent: what a Gate prevents).
        let text = "harness - agent-killed\nhold1 3 enter\ncli2 4 enter\nhold1 3 work\n";
        assert_eq!(check(text, &agent).violations.len(), 1);
        // Under a flock(1) holder (no token) nothing could refuse it: unfenceable.
        let text = "hold1 3 enter\nharness - agent-killed\nf - enter\nhold1 3 work\n";
        let v = check(text, &agent);
        assert!(v.violations.is_empty(), "{:?}", v.violations);
        assert_eq!((v.fenced, v.unfenceable), (0, 1));
        // Under a token holder again, a token above it refuses it: fenced.
        let v = check(&format!("{text}cli2 4 enter\nhold1 3 work\n"), &agent);
        assert_eq!((v.fenced, v.unfenceable, v.violations.len()), (1, 1, 0));
    }

    #[test]
    fn garbage_and_unentered_writes_are_reported() {
        let v = check("a 1 ent", &none);
        assert!(v.violations[0].contains("torn"));
        let v = check("a 1 work\n", &none);
        assert!(v.violations[0].contains("before entering"));
        let v = check("a 1 enter\na 1 exit\na 2 enter\n", &none);
        assert!(v.violations[0].contains("twice"));
    }
}
