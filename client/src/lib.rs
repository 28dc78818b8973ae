//! Coordinate the containers of a Kubernetes Pod: readiness, locks with fencing tokens,
//! leader election, lifecycle events and the pod phase, through a shared directory (an
//! `emptyDir`) that every container mounts.
//!
//! Open the directory with [`Volume::open`]; every operation is a method on [`Volume`]. Waits
//! are event-driven (inotify, with a periodic rescan as a safety net) and blocking `flock(2)`
//! calls run on dedicated threads, never on the async runtime.
//!
//! ```no_run
//! use podsignal_client::{Volume, VolumeOptions, WaitMode};
//! use std::time::Duration;
//!
//! # async fn demo() -> podsignal_client::Result<()> {
//! let volume = Volume::open("/run/podsignal", VolumeOptions::default()).await?;
//! volume.wait_ready(&["db-migrated".parse()?], WaitMode::All, Some(Duration::from_secs(60))).await?;
//! let _ready = volume.hold_ready(&"app".parse()?, None).await?; // retracted when dropped
//! # Ok(()) }
//! ```
//!
//! Where things live: [`volume`] opens the directory; [`readiness`], [`lock`], [`leader`],
//! [`events`], [`phase`], [`exits`] (tombstones), [`stop`] (stop requests) and [`status`] add
//! one concept each; `safe_dir` does all file access
//! (no symlink is ever followed) and `watch` turns inotify into wake-ups. [`http`] is the
//! other transport, a client of `podsignal agent`; [`Client`] is one API over both.

mod client;
pub mod error;
pub mod events;
pub mod exits;
pub mod http;
pub mod identity;
pub mod leader;
pub mod lock;
pub mod phase;
pub mod readiness;
mod safe_dir;
pub mod status;
pub mod stop;
pub mod volume;
mod watch;

pub use client::{Client, HeldLeadership, HeldLock, HeldReadiness};
pub use error::{Error, Result};
pub use events::EventStream;
pub use leader::Leadership;
pub use lock::{LockGuard, LockStatus};
pub use podsignal_proto::{
    Event, FencingToken, HolderRecord, Name, Phase, PhaseRecord, ReadinessRecord, ReadinessState,
    StopRequest, TombstoneRecord,
};
pub use readiness::{Readiness, ReadinessGuard, WaitMode};
pub use safe_dir::Access;
pub use status::Status;
pub use volume::{Volume, VolumeOptions};
pub use watch::WatchStats;

/// Formats an error and its sources on one line, `outer: inner: innermost`.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
