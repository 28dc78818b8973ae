//! `podsignal timeline`: reads the event log and the tombstones, and prints the picture
//! `timeline/` draws of them.

use std::io::Write;

use podsignal_client::Coordinator;
use podsignal_proto::{Event, Name, ReadinessRecord, TombstoneRecord};

use crate::cli::{TimelineArgs, TimelineFormat};
use crate::exit::{Exit, ExitCode};
use crate::timeline::{self, TimeArg, Window};

/// Events read per request.
const PAGE: usize = 1000;
/// The most events read: more than the log keeps (4 segments of 1 MiB hold ~30,000 events of
/// typical size), so all of it, but bounded whatever a neighbour wrote.
const MAX_EVENTS: usize = 100_000;

/// What a picture is drawn from, read through either transport (the agent's
/// `GET /v1/timeline` reads it from its volume).
pub struct Sources {
    /// Every event kept, oldest first.
    pub events: Vec<Event>,
    /// The tombstones of the containers the events name.
    pub tombstones: Vec<TombstoneRecord>,
    /// Every valid readiness record.
    pub records: Vec<ReadinessRecord>,
}

/// Reads the event log, the tombstones and the readiness records.
pub async fn read_sources<C: Coordinator>(c: &C) -> podsignal_client::Result<Sources> {
    let events = read_all(c).await?;
    let tombstones = tombstones(c, &events).await;
    let records: Vec<ReadinessRecord> = c
        .list_readiness()
        .await?
        .into_iter()
        .filter_map(|r| r.record)
        .collect();
    Ok(Sources {
        events,
        tombstones,
        records,
    })
}

pub async fn timeline<C: Coordinator>(c: &C, args: TimelineArgs) -> anyhow::Result<ExitCode> {
    let Sources {
        events,
        tombstones,
        records,
    } = read_sources(c).await?;
    if let Some(n) = args.generation
        && timeline::generation_events(&events, n).is_none()
    {
        let known = timeline::generations(&events);
        return Err(Exit::with(
            ExitCode::ERROR,
            format!(
                "generation {n} is not in the event log of {} (it has {})",
                c.describe(),
                describe_generations(&known)
            ),
        ));
    }
    let picture = draw(&events, &tombstones, &records, &args);
    let mut out = std::io::stdout().lock();
    // A reader that went away (`| head`) is not an error.
    let _ = out.write_all(picture.as_bytes()).and_then(|()| out.flush());
    Ok(ExitCode::SUCCESS)
}

/// The picture `args` asks for (pure).
pub fn draw(
    events: &[Event],
    tombstones: &[TombstoneRecord],
    records: &[ReadinessRecord],
    args: &TimelineArgs,
) -> String {
    let window = window(events, args.since, args.until, args.generation);
    let t = timeline::build_with(events, tombstones, records, window);
    match args.format {
        TimelineFormat::Text => timeline::text(&t, usize::from(args.width)),
        TimelineFormat::Svg => timeline::svg(&t),
        TimelineFormat::Html => timeline::html(&t),
    }
}

/// The window `since`, `until` and `generation` name, for this log.
pub fn window(
    events: &[Event],
    since: Option<TimeArg>,
    until: Option<TimeArg>,
    generation: Option<u64>,
) -> Window {
    let first = events.first().map_or(0, |e| e.time_ms);
    let last = events.last().map_or(first, |e| e.time_ms);
    Window {
        since_ms: since.map(|s| s.resolve(first, last)),
        until_ms: until.map(|u| u.resolve(first, last)),
        generation,
    }
}

/// Every event kept, oldest first (a loss at the start is the model's to note).
async fn read_all<C: Coordinator>(c: &C) -> podsignal_client::Result<Vec<Event>> {
    let mut events: Vec<Event> = Vec::new();
    loop {
        let since = events.last().map_or(0, |e| e.seq);
        let page = c.read_events(since, PAGE, false).await?;
        let done = page.len() < PAGE;
        events.extend(page);
        if done || events.len() >= MAX_EVENTS {
            events.truncate(MAX_EVENTS);
            return Ok(events);
        }
    }
}

/// The tombstones of the containers the events name (for exits rotated out of the log).
async fn tombstones<C: Coordinator>(c: &C, events: &[Event]) -> Vec<TombstoneRecord> {
    let found = events
        .iter()
        .filter(|e| {
            matches!(
                e.kind.as_str(),
                "waiting" | "start" | "ready" | "unready" | "stop" | "exit" | "watchdog"
            )
        })
        .filter_map(|e| e.data.as_ref()?.get("name")?.as_str())
        .filter_map(|n| Name::new(n).ok());
    let mut names: Vec<Name> = Vec::new();
    for name in found {
        if names.len() == timeline::MAX_LANES {
            break;
        }
        if !names.contains(&name) {
            names.push(name);
        }
    }
    let mut out = Vec::new();
    for name in &names {
        match c.tombstone(name).await {
            Ok(Some(t)) => out.push(t),
            Ok(None) => {}
            // A broken tombstone is `status`'s to report; the events still draw.
            Err(e) => tracing::warn!(
                "reading the tombstone of {name}: {}",
                podsignal_client::error_chain(&e)
            ),
        }
    }
    out
}

fn describe_generations(known: &[u64]) -> String {
    match known {
        [] => "no events".to_owned(),
        [one] => format!("generation {one}"),
        [first, .., last] => format!("generations {first} to {last}"),
    }
}
