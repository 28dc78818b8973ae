//! Tombstones: `exits/NAME.json`, how the container running `run --name NAME` exited. The
//! `exit:NAME` condition waits for one; state, not edges: a tombstone written before the
//! wait started satisfies it at once.

use std::time::Duration;

use podsignal_proto::record::encode;
use podsignal_proto::{Name, TombstoneRecord, layout};

use crate::error::{Error, Result};
use crate::volume::Volume;
use crate::watch::Area;

impl Volume {
    /// The tombstone of `name`, if it has exited since its last start.
    pub fn tombstone(&self, name: &Name) -> Result<Option<TombstoneRecord>> {
        let dir = &self.inner.exits;
        let file = layout::exit_file(name);
        let Some(bytes) = dir.read_record(&file)? else {
            return Ok(None);
        };
        TombstoneRecord::decode(&bytes, name)
            .map(Some)
            .map_err(|source| Error::BadRecord {
                path: dir.path_of(&file),
                source,
            })
    }

    /// Writes a tombstone (atomically: waiters see all of it or nothing).
    pub fn write_tombstone(&self, record: &TombstoneRecord) -> Result<()> {
        self.inner.exits.write_atomic(
            &layout::exit_file(&record.name),
            &encode(record),
            self.write_options(),
            false,
        )
    }

    /// Removes the tombstone of `name` (a container starting again is no longer exited).
    pub fn remove_tombstone(&self, name: &Name) -> Result<()> {
        self.inner.exits.remove(&layout::exit_file(name))
    }

    /// Waits until `name` has a tombstone (with exit code `code`, if given) and returns it.
    ///
    /// ```no_run
    /// # async fn demo(volume: podsignal_client::Volume) -> podsignal_client::Result<()> {
    /// let t = volume.wait_exit(&"app".parse()?, None, None).await?;
    /// println!("app exited with {}", t.exit_code);
    /// # Ok(()) }
    /// ```
    pub async fn wait_exit(
        &self,
        name: &Name,
        code: Option<u8>,
        timeout: Option<Duration>,
    ) -> Result<TombstoneRecord> {
        self.inner
            .watcher
            .wait_until(&[Area::Exits], timeout, || {
                Ok(match self.exit_state(name, code) {
                    Ok(t) => Ok(t),
                    Err(why) => Err(vec![format!("exit:{name}: {why}")]),
                })
            })
            .await
    }

    /// Whether `exit:NAME[=CODE]` holds now: the tombstone, or why not, in a few words.
    pub fn exit_state(&self, name: &Name, code: Option<u8>) -> Result<TombstoneRecord, String> {
        match self.tombstone(name) {
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
}
