//! Leader election: a campaign is a blocking lock under `leaders/` ([`Scope::Leader`]). The
//! kernel hands the flock to one waiting campaigner the moment the leader's descriptor closes
//! (resign, exit, or `kill -9`), so hand-over takes milliseconds, and every hand-over bumps the
//! fencing token. Followers read `leaders/NAME.holder.json` and check the flock is held.

use std::time::Duration;

use podsignal_proto::{FencingToken, HolderRecord, Name};

use crate::coordinator::Scope;
use crate::error::Result;
use crate::volume::Volume;
use crate::watch::Area;

impl Volume {
    /// The current leader of `name`, or `None` if nobody leads now.
    pub(crate) fn leader_now(&self, name: &Name) -> Option<HolderRecord> {
        self.lock_status_now(Scope::Leader, name).current_holder()
    }

    pub(crate) async fn wait_leader_change_now(
        &self,
        name: &Name,
        known: Option<FencingToken>,
        timeout: Option<Duration>,
    ) -> Result<Option<HolderRecord>> {
        self.watcher()
            .wait_until(&[Area::Leaders], timeout, || {
                let now = self.leader_now(name);
                if now.as_ref().map(|h| h.token) != known {
                    Ok(Ok(now))
                } else {
                    Ok(Err(vec![format!("leader of {name} unchanged")]))
                }
            })
            .await
    }
}
