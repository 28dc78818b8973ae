//! `podsignal status`: everything in the shared directory, as tables or JSON.

//!
//! Everything shown comes from files any container (or a hostile neighbour) can write: every
//! string is passed through [`terminal_safe`], so a reason or a file name cannot forge lines
//! or drive the terminal. `--json` is JSON, escaped by construction.

use std::borrow::Cow;
use std::fmt::Write;

use podsignal_client::{Coordinator, LockStatus, Status, identity::now_ms};

use crate::cli::StatusArgs;
use crate::exit::ExitCode;

/// `s` with every control character (newlines, escape sequences, C1 controls) written as an
/// escape (`\n`, `\u{1b}`): one line, inert on a terminal.
pub fn terminal_safe(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

pub async fn status<C: Coordinator>(c: &C, args: StatusArgs) -> anyhow::Result<ExitCode> {
    let status = c.status().await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", render(&status));
    }
    Ok(ExitCode::SUCCESS)
}

fn ago(ms: u64) -> String {
    let s = now_ms().saturating_sub(ms) / 1000;
    match s {
        0..60 => format!("{s}s ago"),
        60..3600 => format!("{}m ago", s / 60),
        _ => format!("{}h ago", s / 3600),
    }
}

/// The human tables.
pub fn render(st: &Status) -> String {
    let mut o = String::new();
    let phase = match &st.phase {
        Some(p) => format!(
            "{} (set by {} {})",
            p.phase,
            terminal_safe(&p.writer.label()),
            ago(p.updated_ms)
        ),
        None if st
            .problems
            .iter()
            .any(|p| p.contains(podsignal_proto::layout::PHASE_FILE)) =>
        {
            "unknown (phase.json is broken: see PROBLEMS)".to_owned()
        }
        None => "starting (never set)".to_owned(),
    };
    let generation = match st.generation {
        Some(1) => "1 (podsignal reset never ran)".to_owned(),
        Some(g) => g.to_string(),
        None => "unknown (generation.json is broken: see PROBLEMS)".to_owned(),
    };
    let _ = writeln!(
        o,
        "DIR    {}\nGEN    {generation}\nPHASE  {phase}\n",
        terminal_safe(&st.dir)
    );
    let _ = writeln!(
        o,
        "{:<24} {:<8} {:<7} {:<18} {:<12} REASON",
        "READINESS", "STATE", "HELD", "WRITER", "SINCE"
    );
    for r in &st.readiness {
        let state = if r.ready { "ready" } else { "unready" };
        let held = match r.holder_alive {
            Some(true) => "alive",
            Some(false) => "gone",
            None => "sticky",
        };
        let (writer, since) = r
            .record
            .as_ref()
            .map_or(("-".to_owned(), "-".to_owned()), |rec| {
                (
                    format!(
                        "{}#{}",
                        terminal_safe(&rec.writer.label()),
                        &rec.writer.incarnation[..6]
                    ),
                    ago(rec.since_ms),
                )
            });
        let _ = writeln!(
            o,
            "{:<24} {:<8} {:<7} {:<18} {:<12} {}",
            r.name.as_str(),
            state,
            held,
            writer,
            since,
            terminal_safe(&r.why)
        );
    }
    for (title, rows) in [("LOCK", &st.locks), ("LEADER", &st.leaders)] {
        let _ = writeln!(o, "\n{:<24} {:<8} {:<8} HOLDER", title, "STATE", "TOKEN");
        for l in rows {
            let _ = writeln!(o, "{}", lock_row(l));
        }
    }
    let _ = writeln!(
        o,
        "\nEVENTS  seq {}..{} in {} segment(s)",
        st.events.first_seq, st.events.last_seq, st.events.segments
    );
    if !st.problems.is_empty() {
        let _ = writeln!(o, "\nPROBLEMS");
        for p in &st.problems {
            let _ = writeln!(o, "  {}", terminal_safe(p));
        }
    }
    o
}

/// One lock or campaign. TOKEN is the current holder's token; a flock taken outside podsignal
/// (`flock(1)`) has none, so it shows `-` rather than a previous holder's.
fn lock_row(l: &LockStatus) -> String {
    let (state, token, holder) = match (l.held, l.current_holder()) {
        (true, Some(h)) => (
            "held",
            h.token.0.to_string(),
            format!(
                "{} since {}",
                terminal_safe(&h.holder.describe()),
                ago(h.acquired_ms)
            ),
        ),
        (true, None) => (
            "held",
            "-".to_owned(),
            match l.flock_pid {
                Some(pid) => format!("pid {pid} outside podsignal (e.g. flock(1)), no token"),
                None => "a process outside podsignal (e.g. flock(1)), no token".to_owned(),
            },
        ),
        (false, _) => (
            "free",
            l.last_token.0.to_string(),
            l.holder.as_ref().map_or("-".to_owned(), |h| {
                format!("last: {}", terminal_safe(&h.holder.describe()))
            }),
        ),
    };
    let problem = l
        .problem
        .as_ref()
        .map(|p| format!("  [{}]", terminal_safe(p)))
        .unwrap_or_default();
    format!(
        "{:<24} {:<8} {:<8} {holder}{problem}",
        l.name.as_str(),
        state,
        token
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_into_one_inert_line() {
        assert_eq!(
            terminal_safe("plain text, no escapes"),
            "plain text, no escapes"
        );
        let hostile = "ok\nLOCK forged\x1b[31m\r\u{9b}2J\x7f";
        let shown = terminal_safe(hostile);
        assert!(!shown.chars().any(char::is_control), "{shown}");
        assert_eq!(shown, "ok\\nLOCK forged\\u{1b}[31m\\r\\u{9b}2J\\u{7f}");
    }
}
