//! Leases: locks and leaderships the agent holds for a caller until the lease's time to live
//! passes without a renewal, or the caller releases it. For callers that cannot keep a
//! connection open (a shell script with curl). A crashed caller stops renewing, so its lease
//! runs out: nothing stays held forever.
//!
//! An idempotency key makes acquisition safe to retry: while the lease it created lives,
//! the same key on the same lock returns the same grant instead of acquiring again. While an
//! acquisition with a key is under way the key is reserved ([`Reservation`], a guard): a
//! concurrent request with it gets 409 `conflict`, and the reservation ends with the request,
//! however it ends (a grant keeps the key; a failure, a timeout or a client that went away
//! frees it).
//!
//! Every lease is released (its guard dropped) outside the table's mutex and on the blocking
//! pool: releasing writes the holder record. A `DELETE` answers once its release is done.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use podsignal_client::{LockGuard, LockHold, Name, Scope};
use podsignal_proto::api::Grant;
use tokio::time::Instant;

use super::AppState;
use super::hold::{release, released};

/// (scope, lock name, idempotency key).
type KeyId = (Scope, Name, String);

/// Every lease the agent holds.
#[derive(Debug, Default)]
pub struct Leases {
    /// A std mutex: held for map updates only, never across an await or any I/O.
    table: Arc<Mutex<Table>>,
}

#[derive(Debug, Default)]
struct Table {
    by_id: HashMap<String, Lease>,
    by_key: HashMap<KeyId, String>,
    /// Keys whose acquisition is under way, so a concurrent retry does not acquire twice.
    acquiring: HashSet<KeyId>,
}

#[derive(Debug)]
struct Lease {
    scope: Scope,
    name: Name,
    held: LockGuard,
    ttl: Duration,
    expires: Instant,
    key: Option<String>,
}

impl Lease {
    fn grant(&self, id: &str) -> Grant {
        Grant {
            name: self.name.clone(),
            token: Some(self.held.token()),
            lease: Some(id.to_owned()),
            ttl_ms: Some(self.ttl.as_millis() as u64),
            heartbeat_ms: None,
            hold: None,
        }
    }
}

/// An idempotency key reserved for one acquisition; freed when dropped, unless the
/// acquisition was granted ([`Leases::insert`] takes it).
#[derive(Debug)]
pub struct Reservation {
    table: Arc<Mutex<Table>>,
    id: Option<KeyId>,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(id) = self.id.take()
            && let Ok(mut t) = self.table.lock()
        {
            t.acquiring.remove(&id);
        }
    }
}

/// What [`Leases::begin`] found for an idempotency key.
pub enum Begun {
    /// The key's lease lives: here is its grant.
    Existing(Grant),
    /// Another request with this key is acquiring right now.
    InProgress,
    /// Go ahead and acquire, holding this reservation.
    Acquire(Reservation),
}

impl Leases {
    /// Looks up an idempotency key before acquiring.
    pub fn begin(&self, scope: Scope, name: &Name, key: &str) -> Begun {
        let Ok(mut t) = self.table.lock() else {
            return Begun::InProgress;
        };
        let id = (scope, name.clone(), key.to_owned());
        if let Some(lease_id) = t.by_key.get(&id)
            && let Some(lease) = t.by_id.get(lease_id)
        {
            return Begun::Existing(lease.grant(lease_id));
        }
        if !t.acquiring.insert(id.clone()) {
            return Begun::InProgress;
        }
        Begun::Acquire(Reservation {
            table: self.table.clone(),
            id: Some(id),
        })
    }

    /// Records a new lease (its key, if reserved) and starts its expiry.
    pub fn insert(
        &self,
        state: &AppState,
        scope: Scope,
        name: &Name,
        held: LockGuard,
        ttl: Duration,
        mut reservation: Option<Reservation>,
    ) -> Grant {
        let id = format!(
            "{:016x}{:016x}",
            podsignal_client::identity::nonce(),
            podsignal_client::identity::nonce()
        );
        let key_id = reservation.as_mut().and_then(|r| r.id.take());
        let lease = Lease {
            scope,
            name: name.clone(),
            held,
            ttl,
            expires: Instant::now() + ttl,
            key: key_id.as_ref().map(|(_, _, k)| k.clone()),
        };
        let grant = lease.grant(&id);
        if let Ok(mut t) = self.table.lock() {
            if let Some(kid) = key_id {
                t.acquiring.remove(&kid);
                t.by_key.insert(kid, id.clone());
            }
            t.by_id.insert(id.clone(), lease);
        }
        tokio::spawn(expire(state.clone(), id));
        grant
    }

    /// Extends lease `id` on `name` by `ttl` (or its own ttl) from now.
    pub fn renew(
        &self,
        scope: Scope,
        name: &Name,
        id: &str,
        ttl: Option<Duration>,
    ) -> Option<Grant> {
        let mut t = self.table.lock().ok()?;
        let lease = t
            .by_id
            .get_mut(id)
            .filter(|l| l.scope == scope && l.name == *name)?;
        if let Some(ttl) = ttl {
            lease.ttl = ttl;
        }
        lease.expires = Instant::now() + lease.ttl;
        Some(lease.grant(id))
    }

    /// Releases lease `id` on `name` and returns once it is released (its flock closed: the
    /// `204` a caller gets means the lock is free); false if there is no such lease.
    pub async fn release(&self, scope: Scope, name: &Name, id: &str) -> bool {
        let removed = self.table.lock().ok().and_then(|mut t| {
            let matches = t
                .by_id
                .get(id)
                .is_some_and(|l| l.scope == scope && l.name == *name);
            if matches { t.remove(id) } else { None }
        });
        let Some(lease) = removed else {
            return false;
        };
        released(lease).await;
        true
    }

    /// Releases every lease (on shutdown).
    pub fn clear(&self) {
        let all: Vec<Lease> = match self.table.lock() {
            Ok(mut t) => {
                t.by_key.clear();
                t.by_id.drain().map(|(_, l)| l).collect()
            }
            Err(_) => return,
        };
        if !all.is_empty() {
            tracing::info!("released {} lease(s) on shutdown", all.len());
            release(all);
        }
    }

    /// When lease `id` expires, or `None` if it is gone.
    fn expiry(&self, id: &str) -> Option<Instant> {
        self.table.lock().ok()?.by_id.get(id).map(|l| l.expires)
    }

    fn remove_expired(&self, id: &str) -> Option<Lease> {
        let mut t = self.table.lock().ok()?;
        if t.by_id.get(id).is_some_and(|l| l.expires <= Instant::now()) {
            t.remove(id)
        } else {
            None
        }
    }
}

impl Table {
    fn remove(&mut self, id: &str) -> Option<Lease> {
        let lease = self.by_id.remove(id)?;
        if let Some(k) = &lease.key {
            self.by_key
                .remove(&(lease.scope, lease.name.clone(), k.clone()));
        }
        Some(lease)
    }
}

/// Sleeps until the lease's current expiry; releases it if it was not renewed meanwhile.
async fn expire(state: AppState, id: String) {
    let leases = &state.inner.leases;
    while let Some(at) = leases.expiry(&id) {
        tokio::select! {
            _ = tokio::time::sleep_until(at) => {}
            _ = state.shutdown().cancelled() => return,
        }
        if let Some(lease) = leases.remove_expired(&id) {
            tracing::warn!(
                "lease {id} on {} {} expired without renewal: released",
                lease.scope.word(),
                lease.name
            );
            release(lease);
            return;
        }
    }
}
