//! Where each record lives, relative to the shared directory (`--dir`, default
//! [`DEFAULT_DIR`]). `docs/protocol.md` documents the same table for shell users.
//!
//! ```text
//! ready/NAME.json            readiness record
//! ready/NAME.HOLD.live       liveness file of a held record (its writer keeps a flock on it)
//! locks/NAME.lock            the flock(2) file of lock NAME (never deleted)
//! locks/NAME.fence           fencing counter of lock NAME (decimal, fsynced)
//! locks/NAME.holder.json     who acquired lock NAME last, with the token
//! leaders/NAME.*             the same three files for leader campaign NAME
//! events/events.lock         publishers serialize appends with this flock
//! events/SEQ.jsonl           an event segment; SEQ (20 digits) is its first sequence number
//! phase.json                 the pod phase
//! generation.json            the current generation (written by `podsignal reset`)
//! exits/NAME.json            tombstone: how the container running `run --name NAME` exited
//! stop/NAME.json             a request that the container running `run --name NAME` stop
//! .*.tmp                     a record being written (renamed into place when complete)
//! ```

use crate::name::Name;

/// The shared directory used when neither `--dir` nor `PODSIGNAL_DIR` is given.
pub const DEFAULT_DIR: &str = "/run/podsignal";

/// Directory of readiness records and their liveness files.
pub const READY_DIR: &str = "ready";
/// Directory of lock files.
pub const LOCKS_DIR: &str = "locks";
/// Directory of leader campaign files.
pub const LEADERS_DIR: &str = "leaders";
/// Directory of the event log.
pub const EVENTS_DIR: &str = "events";
/// Directory of tombstones.
pub const EXITS_DIR: &str = "exits";
/// Directory of stop requests.
pub const STOP_DIR: &str = "stop";
/// Every subdirectory the protocol uses, created on first use.
pub const SUBDIRS: [&str; 6] = [
    READY_DIR,
    LOCKS_DIR,
    LEADERS_DIR,
    EVENTS_DIR,
    EXITS_DIR,
    STOP_DIR,
];

/// The pod phase record, at the root of the shared directory.
pub const PHASE_FILE: &str = "phase.json";
/// The generation record, at the root of the shared directory.
pub const GENERATION_FILE: &str = "generation.json";
/// The flock publishers of events hold while appending.
pub const EVENTS_LOCK_FILE: &str = "events.lock";

/// File name (in [`READY_DIR`]) of the readiness record `name`.
pub fn readiness_file(name: &Name) -> String {
    format!("{name}.json")
}

/// File name (in [`READY_DIR`]) of the liveness file `id` of `name` (a hold id, see
/// [`crate::ReadinessRecord::liveness_id`]).
pub fn liveness_file(name: &Name, id: &str) -> String {
    format!("{name}.{id}.live")
}

/// The id of a liveness file of `name` (`NAME.ID.live`, ID 16 hex digits), if `file_name` is
/// one.
pub fn liveness_id_of<'a>(file_name: &'a str, name: &Name) -> Option<&'a str> {
    let id = file_name
        .strip_prefix(name.as_str())?
        .strip_prefix('.')?
        .strip_suffix(".live")?;
    crate::record::is_incarnation(id).then_some(id)
}

/// The name of the record a liveness file belongs to, if `file_name` is one.
pub fn liveness_owner(file_name: &str) -> Option<Name> {
    let stem = file_name.strip_suffix(".live")?;
    let (name, id) = stem.rsplit_once('.')?;
    crate::record::is_incarnation(id)
        .then(|| Name::new(name).ok())
        .flatten()
}

/// File name of the flock file of `name` (in [`LOCKS_DIR`] or [`LEADERS_DIR`]).
pub fn lock_file(name: &Name) -> String {
    format!("{name}.lock")
}

/// File name of the fencing counter of `name` (beside its lock file).
pub fn fence_file(name: &Name) -> String {
    format!("{name}.fence")
}

/// File name of the holder record of `name` (beside its lock file).
pub fn holder_file(name: &Name) -> String {
    format!("{name}.holder.json")
}

/// File name (in [`EXITS_DIR`]) of the tombstone of `name`.
pub fn exit_file(name: &Name) -> String {
    format!("{name}.json")
}

/// File name (in [`STOP_DIR`]) of a stop request for `name`.
pub fn stop_file(name: &Name) -> String {
    format!("{name}.json")
}

/// The record name a `NAME.json` file name stands for, if it is one.
pub fn name_of_json_file(file_name: &str) -> Option<Name> {
    let stem = file_name.strip_suffix(".json")?;
    if stem.ends_with(".holder") {
        return None;
    }
    Name::new(stem).ok()
}

/// Name of a temporary file for `final_name`, unique per writer: it starts with `.` so no
/// record name can collide with it, and ends with `.tmp` so `status` can tell leftovers.
pub fn temp_file(final_name: &str, pid: u32, nonce: u64) -> String {
    format!(".{final_name}.{pid}.{nonce:016x}.tmp")
}

/// True for a file name [`temp_file`] made.
pub fn is_temp_file(file_name: &str) -> bool {
    file_name.starts_with('.') && file_name.ends_with(".tmp")
}

/// The final name a temporary file made by [`temp_file`] was for (`.FINAL.PID.NONCE.tmp`).
pub fn temp_file_target(file_name: &str) -> Option<&str> {
    let stem = file_name.strip_prefix('.')?.strip_suffix(".tmp")?;
    let (rest, nonce) = stem.rsplit_once('.')?;
    let (target, pid) = rest.rsplit_once('.')?;
    let hex = nonce.len() == 16 && nonce.bytes().all(|b| b.is_ascii_hexdigit());
    let digits = !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit());
    (hex && digits && !target.is_empty()).then_some(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_names_round_trip() {
        let n = Name::new("db").unwrap();
        assert_eq!(name_of_json_file(&readiness_file(&n)), Some(n.clone()));
        assert_eq!(name_of_json_file(&holder_file(&n)), None);
        assert_eq!(name_of_json_file(".db.json.1.0.tmp"), None);
        assert!(is_temp_file(&temp_file("db.json", 7, 1)));
    }

    #[test]
    fn debris_is_attributed_to_its_record() {
        let n = Name::new("db").unwrap();
        let live = liveness_file(&n, "0123456789abcdef");
        assert_eq!(liveness_id_of(&live, &n), Some("0123456789abcdef"));
        assert_eq!(liveness_owner(&live), Some(n.clone()));
        assert_eq!(liveness_id_of(&live, &Name::new("d").unwrap()), None);
        assert_eq!(liveness_id_of("db.x.live", &n), None);
        assert_eq!(liveness_id_of("db.json", &n), None);
        let other = liveness_file(&Name::new("db.x").unwrap(), "0123456789abcdef");
        assert_eq!(liveness_id_of(&other, &n), None, "db.x's file is not db's");
        assert_eq!(
            temp_file_target(&temp_file("db.json", 42, 7)),
            Some("db.json")
        );
        assert_eq!(
            temp_file_target(&temp_file("a.b.json", 1, u64::MAX)),
            Some("a.b.json")
        );
        for junk in [
            ".tmp",
            "..1.0000000000000000.tmp",
            ".x.json.p.0000000000000000.tmp",
            "x.tmp",
        ] {
            assert_eq!(temp_file_target(junk), None, "{junk}");
        }
    }
}
