//! Tombstones: `exits/NAME.json`, how the container running `run --name NAME` exited. The
//! `exit:NAME` condition waits for one; state, not edges: a tombstone written before the
//! wait started satisfies it at once.

use std::time::Duration;

use podsignal_proto::record::encode;
use podsignal_proto::{Name, TombstoneRecord, generation, layout};

use crate::error::{Error, Result};
use crate::volume::Volume;
use crate::watch::Area;

impl Volume {
    /// The tombstone of `name`, if it has exited since its last start. One of an older
    /// generation does not count: [`Error::OlderGeneration`] says so, and callers that show
    /// tombstones (the agent's `/v1/exits`) show none.
    pub(crate) fn tombstone_now(&self, name: &Name) -> Result<Option<TombstoneRecord>> {
        let current = self.generation_now()?;
        match self.any_tombstone(name)? {
            Some(t) if !generation::counts(t.generation, current) => {
                let what = format!("exited with {}", t.exit_code);
                Err(Error::OlderGeneration {
                    path: self.inner.exits.path_of(&layout::exit_file(name)),
                    why: generation::stale_why(&what, t.generation, current),
                })
            }
            read => Ok(read),
        }
    }

    /// The tombstone of `name`, of whichever generation.
    fn any_tombstone(&self, name: &Name) -> Result<Option<TombstoneRecord>> {
        let dir = &self.inner.exits;
        let file = layout::exit_file(name);
        let repair = || format!("the next `podsignal run --name {name}` removes it");
        let Some(bytes) = dir.read_record(&file).map_err(|e| e.with_repair(repair))? else {
            return Ok(None);
        };
        TombstoneRecord::decode(&bytes, name)
            .map(Some)
            .map_err(|why| Error::bad_record(dir.path_of(&file), why, repair()))
    }

    /// Writes a tombstone (atomically: waiters see all of it or nothing), stamped with the
    /// current generation: the container exited in this one.
    pub(crate) fn write_tombstone_now(&self, record: &TombstoneRecord) -> Result<()> {
        let dir = &self.inner.exits;
        let file = layout::exit_file(&record.name);
        let record = TombstoneRecord {
            generation: Some(self.generation_now()?),
            ..record.clone()
        };
        let bytes = encode(&record).map_err(|e| Error::record(dir.path_of(&file), e))?;
        dir.write_atomic(&file, &bytes, self.write_options(), false)
    }

    /// A container starts: it has not exited, and stop requests were for an earlier run.
    pub(crate) fn starting_now(&self, name: &Name) -> Result<()> {
        self.inner.exits.remove(&layout::exit_file(name))?;
        self.inner.stop.remove(&layout::stop_file(name))
    }

    pub(crate) async fn wait_exit_now(
        &self,
        name: &Name,
        code: Option<u8>,
        timeout: Option<Duration>,
    ) -> Result<TombstoneRecord> {
        // The root too: a reset makes a tombstone stale.
        self.watcher()
            .wait_until(&[Area::Exits, Area::Root], timeout, || {
                let read = self.tombstone_now(name);
                let missing = matches!(read, Ok(None));
                Ok(match exit_state(read, code) {
                    Ok(t) => Ok(t),
                    Err(why) if missing => Err(vec![format!(
                        "exit:{name}: {why} in {}",
                        crate::Coordinator::describe(self)
                    )]),
                    Err(why) => Err(vec![format!("exit:{name}: {why}")]),
                })
            })
            .await
    }
}

/// Whether `exit:NAME[=CODE]` holds, given what reading the tombstone gave: the tombstone,
/// or why not, in a few words. Shared by both transports.
pub fn exit_state(
    read: Result<Option<TombstoneRecord>>,
    code: Option<u8>,
) -> Result<TombstoneRecord, String> {
    match read {
        Ok(Some(t)) if code.is_none_or(|c| c == t.exit_code) => Ok(t),
        Ok(Some(t)) => Err(format!(
            "exited with {}, not {}",
            t.exit_code,
            code.unwrap_or(0)
        )),
        Ok(None) => Err("no tombstone (not exited)".into()),
        Err(e) => Err(crate::error_chain(&e)),
    }
}
