//! Leader election: a campaign is a blocking lock under `leaders/`. The kernel hands the
//! flock to one waiting campaigner the moment the leader's descriptor closes (resign, exit,
//! or `kill -9`), so hand-over takes milliseconds, and every hand-over bumps the fencing token.
//! Followers read `leaders/NAME.holder.json` and check the flock is held.

use std::time::Duration;

use podsignal_proto::{FencingToken, HolderRecord, Name};

use crate::error::Result;
use crate::lock::{LockGuard, Scope};
use crate::volume::Volume;
use crate::watch::Area;

/// Leadership of a campaign. Dropping it resigns.
///
/// ```no_run
/// # async fn demo(volume: podsignal_client::Volume) -> podsignal_client::Result<()> {
/// let leadership = volume.campaign(&"scheduler".parse()?, None).await?;
/// println!("leading with token {}", leadership.token());
/// leadership.resign();
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Leadership {
    guard: LockGuard,
}

impl Leadership {
    /// The campaign's name.
    pub fn name(&self) -> &Name {
        self.guard.name()
    }

    /// The fencing token of this term.
    pub fn token(&self) -> FencingToken {
        self.guard.token()
    }

    /// The lock guard, e.g. to hand its descriptor to a child.
    pub fn guard(&self) -> &LockGuard {
        &self.guard
    }

    /// Gives up leadership now; the next campaigner takes over at once.
    pub fn resign(self) {
        drop(self);
    }
}

impl Volume {
    /// Campaigns for leadership of `name`, waiting up to `timeout` (`None`: forever).
    pub async fn campaign(&self, name: &Name, timeout: Option<Duration>) -> Result<Leadership> {
        Ok(Leadership {
            guard: self.acquire(Scope::Leader, name, Some(timeout)).await?,
        })
    }

    /// Takes leadership of `name` if nobody leads now; [`crate::Error::LockBusy`] if someone does.
    pub async fn try_campaign(&self, name: &Name) -> Result<Leadership> {
        Ok(Leadership {
            guard: self.acquire(Scope::Leader, name, None).await?,
        })
    }

    /// The current leader of `name`, or `None` if nobody leads now.
    pub fn leader(&self, name: &Name) -> Result<Option<HolderRecord>> {
        let status = self.lock_status_in(Scope::Leader, name);
        Ok(status
            .holder
            .filter(|h| status.held && h.released_ms.is_none()))
    }

    /// Every campaign in the directory, as lock statuses.
    pub fn list_leaders(&self) -> Result<Vec<crate::LockStatus>> {
        self.list_in(Scope::Leader)
    }

    /// Waits until the leader of `name` is different from `known` (by fencing token; `None`
    /// for "no leader"), and returns the new one. For followers that track the leader.
    pub async fn wait_leader_change(
        &self,
        name: &Name,
        known: Option<FencingToken>,
        timeout: Option<Duration>,
    ) -> Result<Option<HolderRecord>> {
        self.inner
            .watcher
            .wait_until(&[Area::Leaders], timeout, || {
                let now = self.leader(name)?;
                if now.as_ref().map(|h| h.token) != known {
                    Ok(Ok(now))
                } else {
                    Ok(Err(vec![format!("leader of {name} unchanged")]))
                }
            })
            .await
    }
}
