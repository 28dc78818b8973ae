//! Coordinate the containers of a Kubernetes Pod: readiness, locks with fencing tokens,
//! leader election, lifecycle events and the pod phase, through a shared directory (an
//! `emptyDir`) that every container mounts, or through a `podsignal agent` over HTTP.
//!
//! Every operation is a method of the [`Coordinator`] trait, implemented by both transports:
//! [`Volume`] (the shared directory, opened in this process) and [`http::AgentClient`] (the
//! agent). Waits are event-driven (inotify, with a periodic rescan as a safety net) and
//! blocking `flock(2)` calls run on dedicated threads, never on the async runtime.
//!
//! ```no_run
//! use podsignal_client::{Coordinator, Volume, VolumeOptions, WaitMode};
//! use std::time::Duration;
//!
//! # async fn demo() -> podsignal_client::Result<()> {
//! let volume = Volume::open("/run/podsignal", VolumeOptions::default()).await?;
//! volume.wait_ready(&["db-migrated".parse()?], WaitMode::All, Some(Duration::from_secs(60))).await?;
//! let _ready = volume.hold_ready(&"app".parse()?, None).await?; // retracted when dropped
//! # Ok(()) }
//! ```
//!
//! Where things live: [`coordinator`] defines the operations; [`volume`] opens the directory
//! and implements them, with one module per concept: [`readiness`], [`lock`], [`leader`],
//! [`events`], [`phase`], [`exits`] (tombstones), [`stop`] (stop requests) and [`status`].
//! `safe_dir` does all file access (no symlink is ever followed; a swapped directory is
//! noticed), `watch` turns inotify into wake-ups, `flock` runs blocking flock waits that can
//! be abandoned. [`http`] is the other transport, a client of `podsignal agent`.

pub mod coordinator;
pub mod error;
pub mod events;
pub mod exits;
mod flock;
pub mod http;
pub mod identity;
pub mod leader;
pub mod lock;
pub mod phase;
pub mod readiness;
mod ready_hub;
mod safe_dir;
pub mod status;
pub mod stop;
pub mod volume;
mod watch;

use std::time::Duration;

pub use coordinator::{Coordinator, Hold, LockHold, ReadinessHold, Scope, Wait};
pub use error::{Error, Result};
pub use events::EventStream;
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

/// `from + d`, or a time far enough in the future to mean "never" when that addition would
/// overflow the clock (a duration of years from a user, say).
pub fn deadline_after(from: tokio::time::Instant, d: Duration) -> tokio::time::Instant {
    from.checked_add(d)
        .or_else(|| from.checked_add(Duration::from_secs(86_400 * 365 * 30)))
        .unwrap_or(from)
}

/// Runs blocking file work on the blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Invalid(format!("a blocking task failed: {e}")))?
}
