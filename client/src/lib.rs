//! Coordinate the containers of a Kubernetes Pod: readiness, locks with fencing tokens,
//! leader election, lifecycle events and the pod phase, through a shared directory (an
//! `emptyDir`) that every container mounts, or through a `podsignal agent` over HTTP.
//!
//! Every operation is a method of the [`Coordinator`] trait, implemented by both transports:
//! [`Volume`] (the shared directory, opened in this process) and [`http::AgentClient`] (the
//! agent). Waits are event-driven (inotify, with a periodic rescan as a safety net) and
//! blocking `flock(2)` calls run on dedicated threads, never on the async runtime.
//!
//! # Setup
//!
//! The client is async, on tokio. An app that has no runtime yet needs tokio with a
//! runtime and the `main` macro:
//!
//! ```toml
//! [dependencies]
//! podsignal-client = "0.1"
//! tokio = { version = "1", features = ["macros", "rt-multi-thread"] }
//! ```
//!
//! (`features = ["macros", "rt"]` with `#[tokio::main(flavor = "current_thread")]` works
//! too: the client never blocks the runtime, a flock wait runs on a thread of its own.)
//!
//! # A whole program
//!
//! A container's `main` that waits for its dependency, runs a setup step under a lock (the
//! other containers of the Pod that run it wait their turn), then says it is ready for as
//! long as it runs:
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use podsignal_client::{Coordinator, LockHold, Volume, VolumeOptions, WaitMode};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // The shared directory every container of the Pod mounts (an emptyDir).
//!     let pod = Volume::open("/run/podsignal", VolumeOptions::default()).await?;
//!
//!     // Start only once `podsignal ready db-migrated` (or `run --name db-migrated`) said so.
//!     let deps = ["db-migrated".parse()?];
//!     pod.wait_ready(&deps, WaitMode::All, Some(Duration::from_secs(120))).await?;
//!
//!     // One container of the Pod at a time; the fencing token goes with each write.
//!     {
//!         let lock = pod.lock(&"cache-warmup".parse()?, Some(Duration::from_secs(60))).await?;
//!         warm_cache(lock.token().0).await?;
//!     } // released here, and by the kernel if this process dies first
//!
//!     // Ready while this value lives: gone at once if the process dies, even by kill -9.
//!     let _ready = pod.hold_ready(&"app".parse()?, Some("serving")).await?;
//!     serve().await
//! }
//! # async fn warm_cache(_token: u64) -> Result<(), Box<dyn std::error::Error>> { Ok(()) }
//! # async fn serve() -> Result<(), Box<dyn std::error::Error>> { Ok(()) }
//! ```
//!
//! # Locks
//!
//! A lock is held while its guard lives; every grant has a fencing token, larger than any
//! earlier grant of that name, for the resource the lock protects to check. `try_lock` does
//! not wait. (This example runs, in a temporary directory.) Locks, like leadership, are
//! among the processes that share the directory, the containers of one Pod: across Pods,
//! use a Kubernetes Lease (docs/patterns.md says why).
//!
//! ```
//! use podsignal_client::{Coordinator, Error, LockHold, Volume, VolumeOptions};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let tmp = tempfile::tempdir()?;
//! # let dir = tmp.path();
//! let pod = Volume::open(dir, VolumeOptions::default()).await?;
//! let name = "migrations".parse()?;
//!
//! let first = pod.lock(&name, None).await?;
//! // Held: another attempt (here from the same process) is refused at once.
//! assert!(matches!(pod.try_lock(&name).await, Err(Error::LockBusy { .. })));
//! let first_token = first.token();
//! drop(first);
//!
//! let second = pod.try_lock(&name).await?;
//! assert!(second.token() > first_token);
//! # Ok(()) }
//! ```
//!
//! The same code runs through a `podsignal agent` instead of the directory: see
//! [`coordinator`] for choosing the transport at run time.
//!
//! Where things live: [`coordinator`] defines the operations; [`volume`] opens the directory
//! and implements them, with one module per concept: [`readiness`], [`lock`], [`leader`],
//! [`events`], [`phase`], [`exits`] (tombstones), [`stop`] (stop requests), `generation`
//! (`reset`, and the generation every record is stamped with) and [`status`].
//! `safe_dir` does all file access (no symlink is ever followed; a swapped directory is
//! noticed), `watch` turns inotify into wake-ups, `flock` runs blocking flock waits that can
//! be abandoned. [`http`] is the other transport, a client of `podsignal agent`.

pub mod coordinator;
pub mod error;
pub mod events;
pub mod exits;
mod flock;
mod generation;
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
pub use podsignal_proto::generation::GenerationEvent;
pub use podsignal_proto::{
    Event, FencingToken, GenerationRecord, HolderRecord, Name, Phase, PhaseRecord, ReadinessRecord,
    ReadinessState, StopRequest, TombstoneRecord,
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
