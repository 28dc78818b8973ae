//! `podsignal status`: everything in the shared directory, as tables or JSON.

use std::fmt::Write;

use podsignal_client::{Client, LockStatus, Status, identity::now_ms};

use crate::cli::StatusArgs;
use crate::exit::ExitCode;

pub async fn status(volume: &Client, args: StatusArgs) -> anyhow::Result<ExitCode> {
    let status = volume.status().await?;
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
    let phase = st
        .phase
        .as_ref()
        .map_or("starting (never set)".to_owned(), |p| {
            format!(
                "{} (set by {} {})",
                p.phase,
                p.writer.label(),
                ago(p.updated_ms)
            )
        });
    let _ = writeln!(o, "DIR    {}\nPHASE  {phase}\n", st.dir);
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
                    format!("{}#{}", rec.writer.label(), &rec.writer.incarnation[..6]),
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
            r.why
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
            let _ = writeln!(o, "  {p}");
        }
    }
    o
}

fn lock_row(l: &LockStatus) -> String {
    let state = if l.held { "held" } else { "free" };
    let holder = match &l.holder {
        Some(h) if l.held && h.released_ms.is_none() => format!(
            "{} (pid {} on {}) since {}",
            h.holder.label(),
            h.holder.pid,
            h.holder.hostname,
            ago(h.acquired_ms)
        ),
        Some(_) if l.held => "not podsignal (e.g. flock(1))".to_owned(),
        Some(h) => format!("last: {}", h.holder.label()),
        None if l.held => "not podsignal (e.g. flock(1))".to_owned(),
        None => "-".to_owned(),
    };
    let problem = l
        .problem
        .as_ref()
        .map(|p| format!("  [{p}]"))
        .unwrap_or_default();
    format!(
        "{:<24} {:<8} {:<8} {holder}{problem}",
        l.name.as_str(),
        state,
        l.last_token.0
    )
}
