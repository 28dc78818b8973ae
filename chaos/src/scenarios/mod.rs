//! Every scenario: its name, what it injects, what must hold, and the function that runs it.
//! Each is bounded in time and count, talks only to 127.0.0.1 and unix sockets, and leaves no
//! process behind (the harness checks).

use anyhow::Result;

use crate::harness::{Ctx, Report};

mod agent_restart;
mod crash_loop;
mod events;
mod fs_faults;
mod leader;
mod mutex;
mod soak;
mod supervisor;
mod torn;
mod uids;

/// A scenario.
pub struct Scenario {
    /// Its name (`--only NAME`).
    pub name: &'static str,
    /// What it does to podsignal.
    pub injects: &'static str,
    /// What must hold throughout.
    pub holds: &'static str,
    /// Runs it: a report of counts and violations, or an error if it could not run at all.
    pub run: fn(&Ctx) -> Result<Report>,
}

/// Every scenario, in the order they run.
pub const ALL: &[Scenario] = &[
    Scenario {
        name: "mutex",
        injects: "12 workers on one lock (podsignal lock, flock(1), --agent lock, HTTP holds, HTTP leases); kill -9 of wrappers, holders, grandchildren, the agent",
        holds: "one inside at a time (ledger); tokens strictly increase; nothing a killed holder started writes after the next holder entered",
        run: mutex::run,
    },
    Scenario {
        name: "leader",
        injects: "8 candidates (podsignal leader, --agent leader, HTTP holds); kill -9 of the acting leader's tree and of the agent",
        holds: "at most one leader acting at a time; tokens strictly increase; takeover after kill -9 within 10 s (p50/p99/max)",
        run: leader::run,
    },
    Scenario {
        name: "torn",
        injects: "kill -9 of writers (ready, unready, ready --hold, phase set, event publish, lock) at random points while readers read the files, status and wait",
        holds: "readers never see a half record; debris bounded, listed by status, removed by the next write of its record",
        run: torn::run,
    },
    Scenario {
        name: "crash-loop",
        injects: "a held-readiness writer (run --ready-when, ready --hold) restarted and killed hundreds of times",
        holds: "shared directory size bounded; readiness never stale (never ready while the writer is dead); incarnations distinct",
        run: crash_loop::run,
    },
    Scenario {
        name: "events",
        injects: "8 publishers (CLI, --agent, HTTP) through rotation; watchers: CLI, --agent CLI, SSE with Last-Event-ID reconnects, long-poll, SIGSTOPped ones and readers held away past rotation, a slow reader",
        holds: "every watcher sees every event exactly once, in order, byte for byte, or an explicit loss report naming exactly the gap; the log stays within 4 dense segments",
        run: events::run,
    },
    Scenario {
        name: "fs-faults",
        injects: "ENOSPC and inode exhaustion on a small tmpfs, read-only remount, lowered inotify limits and queue overflow, a swapped subdirectory",
        holds: "clear errors naming the path; nothing corrupted; recovery; waiters still wake",
        run: fs_faults::run,
    },
    Scenario {
        name: "agent-restart",
        injects: "kill -9 and restart of the agent while clients wait, hold and lease",
        holds: "clear errors or reconnects, no hang or panic; waiters still wake; no lock granted twice; tokens never go backwards",
        run: agent_restart::run,
    },
    Scenario {
        name: "supervisor",
        injects: "run as PID 1 in a pid namespace and as a plain process; zombie factories, a child ignoring SIGTERM, kill -9 of run",
        holds: "exit codes 128+N; zombies reaped; nothing left behind",
        run: supervisor::run,
    },
    Scenario {
        name: "uids",
        injects: "writers and waiters as different real users (setpriv) on one directory with --access group|all",
        holds: "every user reads and writes what the access mode allows; clear errors otherwise; waiters wake",
        run: uids::run,
    },
    Scenario {
        name: "soak",
        injects: "locks, readiness, events and waits mixed through the agent for the whole run",
        holds: "agent RSS and descriptor count flat (start vs end); every operation answered; tokens increase",
        run: soak::run,
    },
];
