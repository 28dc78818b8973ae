//! Leases: locks and leaderships the agent holds for a caller until the lease's time to live
//! passes without a renewal, or the caller releases it. For callers that cannot keep a
//! connection open (a shell script with curl). A crashed caller stops renewing, so its lease
//! runs out: nothing stays held forever.
//!
//! An idempotency key makes acquisition safe to retry: while the lease it created lives,
//! the same key on the same lock returns the same grant instead of acquiring again.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use podsignal_proto::Name;
use podsignal_proto::api::Grant;
use tokio::time::Instant;

use super::AppState;
use super::locks::{Held, Kind};

/// (kind, lock name, idempotency key).
type KeyId = (Kind, Name, String);

/// Every lease the agent holds.
#[derive(Debug, Default)]
pub struct Leases {
    /// A std mutex: held for map updates only, never across an await.
    table: Mutex<Table>,
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
    kind: Kind,
    name: Name,
    held: Held,
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
        }
    }
}

/// What [`Leases::begin`] found for an idempotency key.
pub enum Begun {
    /// The key's lease lives: here is its grant.
    Existing(Grant),
    /// Another request with this key is acquiring right now.
    InProgress,
    /// Go ahead and acquire; call [`Leases::insert`] or [`Leases::abandon`] after.
    Acquire,
}

impl Leases {
    /// Looks up an idempotency key before acquiring.
    pub fn begin(&self, kind: Kind, name: &Name, key: &str) -> Begun {
        let Ok(mut t) = self.table.lock() else {
            return Begun::Acquire;
        };
        let id = (kind, name.clone(), key.to_owned());
        if let Some(lease_id) = t.by_key.get(&id)
            && let Some(lease) = t.by_id.get(lease_id)
        {
            return Begun::Existing(lease.grant(lease_id));
        }
        if !t.acquiring.insert(id) {
            return Begun::InProgress;
        }
        Begun::Acquire
    }

    /// Forgets an acquisition under `key` that failed.
    pub fn abandon(&self, kind: Kind, name: &Name, key: &str) {
        if let Ok(mut t) = self.table.lock() {
            t.acquiring.remove(&(kind, name.clone(), key.to_owned()));
        }
    }

    /// Records a new lease and starts its expiry.
    pub fn insert(
        &self,
        state: &AppState,
        kind: Kind,
        name: &Name,
        held: Held,
        ttl: Duration,
        key: Option<String>,
    ) -> Grant {
        let id = format!(
            "{:016x}{:016x}",
            podsignal_client::identity::nonce(),
            podsignal_client::identity::nonce()
        );
        let lease = Lease {
            kind,
            name: name.clone(),
            held,
            ttl,
            expires: Instant::now() + ttl,
            key: key.clone(),
        };
        let grant = lease.grant(&id);
        if let Ok(mut t) = self.table.lock() {
            if let Some(k) = key {
                let kid = (kind, name.clone(), k);
                t.acquiring.remove(&kid);
                t.by_key.insert(kid, id.clone());
            }
            t.by_id.insert(id.clone(), lease);
        }
        tokio::spawn(expire(state.clone(), id));
        grant
    }

    /// Extends lease `id` on `name` by `ttl` (or its own ttl) from now.
    pub fn renew(&self, kind: Kind, name: &Name, id: &str, ttl: Option<Duration>) -> Option<Grant> {
        let mut t = self.table.lock().ok()?;
        let lease = t
            .by_id
            .get_mut(id)
            .filter(|l| l.kind == kind && l.name == *name)?;
        if let Some(ttl) = ttl {
            lease.ttl = ttl;
        }
        lease.expires = Instant::now() + lease.ttl;
        Some(lease.grant(id))
    }

    /// Releases lease `id` on `name`; false if there is no such lease.
    pub fn release(&self, kind: Kind, name: &Name, id: &str) -> bool {
        let removed = self.table.lock().ok().and_then(|mut t| {
            let matches = t
                .by_id
                .get(id)
                .is_some_and(|l| l.kind == kind && l.name == *name);
            if matches { t.remove(id) } else { None }
        });
        // Dropped outside the mutex: releasing writes the holder record.
        removed.is_some()
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
        }
    }

    /// When lease `id` expires, or `None` if it is gone.
    fn expiry(&self, id: &str) -> Option<Instant> {
        self.table.lock().ok()?.by_id.get(id).map(|l| l.expires)
    }

    fn remove_expired(&self, id: &str) -> Option<(Kind, Name)> {
        let mut t = self.table.lock().ok()?;
        if t.by_id.get(id).is_some_and(|l| l.expires <= Instant::now()) {
            t.remove(id).map(|l| (l.kind, l.name.clone()))
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
                .remove(&(lease.kind, lease.name.clone(), k.clone()));
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
        if let Some((kind, name)) = leases.remove_expired(&id) {
            tracing::warn!(
                "lease {id} on {} {name} expired without renewal: released",
                kind.word()
            );
            return;
        }
    }
}
