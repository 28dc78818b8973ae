//! Readiness waits that cost the same for one waiter as for ten thousand.
//!
//! Every waiter on a name shares one evaluation of it: the hub keeps, per name somebody waits
//! on, the last [`Readiness`] in a `watch` channel. One task re-evaluates a name when a file
//! of it changes (`NAME.json` renamed into place, its holder's `NAME.ID.live` closed), every
//! subscribed name when inotify cannot say which (an overflow, a re-watch), and every
//! subscribed name once per rescan interval; waiters are woken only when their name's
//! evaluation changed. So a change costs one read per name, whatever the number of waiters,
//! and an idle volume costs one check per name per rescan, not one per waiter.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use podsignal_proto::{Name, layout};
use tokio::sync::{broadcast, watch};

use crate::readiness::Readiness;
use crate::volume::{Inner, Volume};
use crate::watch::{Area, Change};

/// The names somebody waits on, with their last evaluation.
type Entries = Mutex<HashMap<Name, watch::Sender<Readiness>>>;

/// The hub: started by the first readiness wait of a volume, stopped with it.
#[derive(Debug)]
pub(crate) struct ReadyHub {
    entries: Arc<Entries>,
    task: tokio::task::AbortHandle,
}

impl Drop for ReadyHub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ReadyHub {
    /// Starts the hub's task for `volume` (which it does not keep alive).
    pub(crate) fn start(volume: &Volume) -> ReadyHub {
        let entries: Arc<Entries> = Arc::default();
        let changes = volume.watcher().changes();
        let task = tokio::spawn(run(
            Arc::downgrade(&volume.inner),
            volume.clone_identity(),
            entries.clone(),
            changes,
        ));
        ReadyHub {
            entries,
            task: task.abort_handle(),
        }
    }

    /// `name`'s evaluation, kept current: read now if nobody waited on it yet.
    pub(crate) fn subscribe(&self, volume: &Volume, name: &Name) -> watch::Receiver<Readiness> {
        let mut entries = lock(&self.entries);
        if let Some(tx) = entries.get(name) {
            return tx.subscribe();
        }
        // Evaluated under the lock: a change the task handles after this is seen by it, a
        // change before it is in this evaluation.
        let (tx, rx) = watch::channel(volume.readiness_now(name));
        entries.insert(name.clone(), tx);
        rx
    }
}

fn lock(entries: &Entries) -> std::sync::MutexGuard<'_, HashMap<Name, watch::Sender<Readiness>>> {
    entries
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The hub's task: re-evaluates what changed, and everything every rescan interval.
async fn run(
    inner: Weak<Inner>,
    identity: Arc<podsignal_proto::Identity>,
    entries: Arc<Entries>,
    mut changes: broadcast::Receiver<Change>,
) {
    let volume = || {
        inner
            .upgrade()
            .map(|inner| Volume::from_parts(inner, identity.clone()))
    };
    let Some(rescan) = volume().map(|v| v.watcher().rescan()) else {
        return;
    };
    let mut tick = tokio::time::interval(rescan.max(std::time::Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is now: every entry was just read
    loop {
        let only = tokio::select! {
            change = changes.recv() => match change {
                Ok(Change { area: Area::Ready, file: Some(file) }) => match owner(&file) {
                    Some(name) => Some(name),
                    None => continue,
                },
                Ok(Change { area: Area::Ready | Area::Root, file: None }) => None,
                // A new generation: every record may have become stale.
                Ok(Change { area: Area::Root, file: Some(file) })
                    if &*file == layout::GENERATION_FILE => None,
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(_)) => None,
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = tick.tick() => {
                if let Some(v) = volume() {
                    v.watcher().count_rescan();
                }
                lock(&entries).retain(|_, tx| tx.receiver_count() > 0);
                None
            }
        };
        let Some(volume) = volume() else { return };
        refresh(&volume, &entries, only.as_ref());
    }
}

/// Re-evaluates `only` (if anybody waits on it), or every subscribed name; wakes the
/// waiters of those whose evaluation changed.
fn refresh(volume: &Volume, entries: &Entries, only: Option<&Name>) {
    let names: Vec<Name> = match only {
        Some(name) => vec![name.clone()],
        None => lock(entries).keys().cloned().collect(),
    };
    // One read of the generation for the whole batch.
    let current = volume.generation_now();
    for name in names {
        // Evaluated under the lock, name by name, for the same reason as in `subscribe`.
        let entries = lock(entries);
        let Some(tx) = entries.get(&name) else {
            continue;
        };
        let now = volume.readiness_in(&name, &current);
        tx.send_if_modified(|last| {
            let changed = *last != now;
            if changed {
                *last = now;
            }
            changed
        });
    }
}

/// The record a file of `ready/` belongs to: `NAME.json` or a liveness file `NAME.ID.live`.
fn owner(file: &str) -> Option<Name> {
    layout::name_of_json_file(file).or_else(|| layout::liveness_owner(file))
}
