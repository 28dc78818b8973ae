//! Stop requests: `stop/NAME.json`. `podsignal stop NAME` writes one; the container running
//! `run --name NAME` waits for it (inotify), stops its command gracefully and clears it.

use podsignal_proto::record::encode;
use podsignal_proto::{FORMAT_VERSION, Name, StopRequest, layout};

use crate::error::{Error, Result};
use crate::identity::now_ms;
use crate::volume::Volume;
use crate::watch::Area;

impl Volume {
    /// Asks the container running `run --name NAME` to stop, and returns the request.
    ///
    /// ```no_run
    /// # async fn demo(volume: podsignal_client::Volume) -> podsignal_client::Result<()> {
    /// volume.request_stop(&"proxy".parse()?, Some("job finished")).await?;
    /// # Ok(()) }
    /// ```
    pub async fn request_stop(&self, name: &Name, reason: Option<&str>) -> Result<StopRequest> {
        let request = StopRequest {
            version: FORMAT_VERSION,
            name: name.clone(),
            reason: reason.map(str::to_owned),
            writer: self.identity().clone(),
            requested_ms: now_ms(),
        };
        self.inner.stop.write_atomic(
            &layout::stop_file(name),
            &encode(&request),
            self.write_options(),
            false,
        )?;
        Ok(request)
    }

    /// The pending stop request for `name`, if any.
    pub fn stop_request(&self, name: &Name) -> Result<Option<StopRequest>> {
        let dir = &self.inner.stop;
        let file = layout::stop_file(name);
        let Some(bytes) = dir.read_record(&file)? else {
            return Ok(None);
        };
        StopRequest::decode(&bytes, name)
            .map(Some)
            .map_err(|source| Error::BadRecord {
                path: dir.path_of(&file),
                source,
            })
    }

    /// Removes the stop request for `name` (done with it, or left from an earlier run).
    pub fn clear_stop_request(&self, name: &Name) -> Result<()> {
        self.inner.stop.remove(&layout::stop_file(name))
    }

    /// Waits until a stop request for `name` exists and returns it. A malformed request
    /// still counts (someone asked), with its problem as the reason.
    pub async fn wait_stop_request(&self, name: &Name) -> Result<StopRequest> {
        self.inner
            .watcher
            .wait_until(&[Area::Stop], None, || match self.stop_request(name) {
                Ok(Some(r)) => Ok(Ok(r)),
                Ok(None) => Ok(Err(vec![format!("no stop request for {name}")])),
                Err(e @ Error::BadRecord { .. }) => Ok(Ok(StopRequest {
                    version: FORMAT_VERSION,
                    name: name.clone(),
                    reason: Some(crate::error_chain(&e)),
                    writer: self.identity().clone(),
                    requested_ms: now_ms(),
                })),
                Err(e) => Err(e),
            })
            .await
    }
}
