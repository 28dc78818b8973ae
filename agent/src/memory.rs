//! Giving memory back after a burst. glibc's allocator keeps freed memory in its arenas, so
//! after thousands of connections (a flood, slowloris, ten thousand long-polls answered at
//! once) close, the agent would keep their buffers' worth of resident memory for good, and a
//! pod memory limit sized for the agent's normal load would count it. Once [`TRIM_EVERY`]
//! connections have closed, the allocator is asked to return its free pages
//! (`malloc_trim(3)`, on the blocking pool) when the burst is over: after [`QUIET`] without a
//! close, or [`AT_MOST`] after the first close counted, whichever comes first. Not during it:
//! a trim walks the whole heap under the allocator's lock, and ten trims in the middle of
//! answering ten thousand waiters made the last answer a third later.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// How many closed connections make a trim worth it.
const TRIM_EVERY: usize = 1024;
/// How long without a close counts as the end of a burst.
const QUIET: Duration = Duration::from_millis(100);
/// The longest a steady stream of closes postpones the trim, counted from the close that
/// made [`TRIM_EVERY`].
const AT_MOST: Duration = Duration::from_secs(5);

/// Connections closed since the last trim.
static CLOSED: AtomicUsize = AtomicUsize::new(0);
/// Whether a trim is scheduled (its task waits for the burst to end, or trims).
static SCHEDULED: AtomicBool = AtomicBool::new(false);
/// Trims scheduled by [`connection_closed`] that ran.
static TRIMS: AtomicUsize = AtomicUsize::new(0);

/// Counts a closed connection; once [`TRIM_EVERY`] of them closed, schedules a trim for the
/// end of the burst.
pub fn connection_closed() {
    if CLOSED.fetch_add(1, Ordering::Relaxed) + 1 < TRIM_EVERY {
        return;
    }
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    if SCHEDULED.swap(true, Ordering::AcqRel) {
        return;
    }
    rt.spawn(async {
        // If the task is dropped midway (a runtime shutting down), no trim is scheduled any
        // more, and the next close that makes TRIM_EVERY schedules one.
        let mut scheduled = Scheduled { armed: true };
        loop {
            burst_over().await;
            CLOSED.store(0, Ordering::Relaxed);
            let _ = tokio::task::spawn_blocking(trim).await;
            TRIMS.fetch_add(1, Ordering::Relaxed);
            SCHEDULED.store(false, Ordering::Release);
            // The closes during the trim saw it scheduled and scheduled nothing: if they
            // made TRIM_EVERY, this task trims again after their burst.
            if CLOSED.load(Ordering::Relaxed) < TRIM_EVERY || SCHEDULED.swap(true, Ordering::AcqRel)
            {
                // Not scheduled by this task any more: another may be.
                scheduled.armed = false;
                return;
            }
        }
    });
}

/// Clears [`SCHEDULED`] when dropped armed: the trim task was dropped before it finished.
struct Scheduled {
    armed: bool,
}

impl Drop for Scheduled {
    fn drop(&mut self) {
        if self.armed {
            SCHEDULED.store(false, Ordering::Release);
        }
    }
}

/// Returns after [`QUIET`] without a close, or [`AT_MOST`] from now.
async fn burst_over() {
    let started = tokio::time::Instant::now();
    let mut seen = CLOSED.load(Ordering::Relaxed);
    loop {
        tokio::time::sleep(QUIET).await;
        let now = CLOSED.load(Ordering::Relaxed);
        if now == seen || started.elapsed() >= AT_MOST {
            return;
        }
        seen = now;
    }
}

/// Returns the allocator's free pages to the kernel; true if any were.
pub fn trim() -> bool {
    trim_glibc()
}

#[cfg(target_env = "gnu")]
#[allow(unsafe_code)]
fn trim_glibc() -> bool {
    unsafe extern "C" {
        fn malloc_trim(pad: usize) -> i32;
    }
    // SAFETY: malloc_trim(3) takes a plain integer, touches only the allocator's own state
    // (under its own locks, so any thread may call it) and returns 1 if memory was released.
    // Tested by `trimming_returns_freed_memory` below.
    unsafe { malloc_trim(0) == 1 }
}

#[cfg(not(target_env = "gnu"))]
fn trim_glibc() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rss_kib() -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            .unwrap()
    }

    #[tokio::test]
    async fn a_burst_of_closes_is_trimmed_once_after_it_ends() {
        let before = TRIMS.load(Ordering::Relaxed);
        // A burst: three times the threshold, with no pause the size of QUIET.
        for _ in 0..3 * TRIM_EVERY {
            connection_closed();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while TRIMS.load(Ordering::Relaxed) == before {
            assert!(
                std::time::Instant::now() < deadline,
                "no trim after the burst"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // One trim for the whole burst, not one per TRIM_EVERY closes.
        tokio::time::sleep(2 * QUIET).await;
        assert_eq!(TRIMS.load(Ordering::Relaxed), before + 1);
    }

    #[test]
    fn trimming_returns_freed_memory() {
        // 64 MiB in 8 KiB pieces (the size of a connection's buffers), touched, then freed
        // but for one piece in every 64 that keeps the heap from shrinking on its own.
        let mut pieces: Vec<Vec<u8>> = (0..8192).map(|i| vec![i as u8; 8192]).collect();
        let keep: Vec<Vec<u8>> = pieces.iter().step_by(64).cloned().collect();
        pieces.clear();
        pieces.shrink_to_fit();
        let freed = rss_kib();
        assert!(trim(), "nothing was returned");
        let trimmed = rss_kib();
        drop(keep);
        assert!(
            trimmed + 16 * 1024 < freed,
            "freed but kept: {freed} KiB; after the trim: {trimmed} KiB"
        );
    }
}
