//! Stop requests: `stop/NAME.json`. `podsignal stop NAME` writes one; the container running
//! `run --name NAME` waits for it (inotify), takes it and stops its command gracefully.
//!
//! Only a valid request for NAME is acted on. A symlink, a FIFO, a file over the size limit
//! or garbage at `stop/NAME.json` is reported (once per kind of problem) and ignored: a
//! hostile or broken file must never stop a container.

use podsignal_proto::record::encode;
use podsignal_proto::{FORMAT_VERSION, Name, StopRequest, generation, layout};

use crate::error::{Error, Result};
use crate::identity::now_ms;
use crate::volume::Volume;
use crate::watch::Area;

impl Volume {
    pub(crate) fn request_stop_now(
        &self,
        name: &Name,
        reason: Option<&str>,
    ) -> Result<StopRequest> {
        let request = StopRequest {
            version: FORMAT_VERSION,
            name: name.clone(),
            reason: reason.map(str::to_owned),
            writer: self.identity().clone(),
            requested_ms: now_ms(),
            generation: Some(self.generation_now()?),
        };
        let dir = &self.inner.stop;
        let file = layout::stop_file(name);
        let bytes = encode(&request).map_err(|e| Error::record(dir.path_of(&file), e))?;
        dir.write_atomic(&file, &bytes, self.write_options(), false)?;
        Ok(request)
    }

    /// The pending stop request for `name`, if any.
    pub(crate) fn stop_request_now(&self, name: &Name) -> Result<Option<StopRequest>> {
        let dir = &self.inner.stop;
        let file = layout::stop_file(name);
        let repair = || format!("`podsignal stop {name}` replaces it");
        let Some(bytes) = dir.read_record(&file).map_err(|e| e.with_repair(repair))? else {
            return Ok(None);
        };
        StopRequest::decode(&bytes, name)
            .map(Some)
            .map_err(|why| Error::bad_record(dir.path_of(&file), why, repair()))
    }

    /// Waits until a valid stop request for `name` exists, removes it and returns it.
    pub(crate) async fn take_stop_request_now(&self, name: &Name) -> Result<StopRequest> {
        let mut reported: Option<String> = None;
        let request = self
            .watcher()
            .wait_until(&[Area::Stop], None, || match self.stop_request_now(name) {
                Ok(Some(r)) => match self.generation_now() {
                    Ok(g) if generation::counts(r.generation, g) => Ok(Ok(r)),
                    // A request of an older generation was for a run before the reset.
                    current => {
                        let problem = match current {
                            Ok(g) => generation::stale_why("stop request", r.generation, g),
                            Err(e) => crate::error_chain(&e),
                        };
                        if reported.as_deref() != Some(problem.as_str()) {
                            tracing::warn!("ignoring a stop request for {name}: {problem}");
                            reported = Some(problem);
                        }
                        Ok(Err(vec![format!("no current stop request for {name}")]))
                    }
                },
                Ok(None) => {
                    reported = None;
                    Ok(Err(vec![format!("no stop request for {name}")]))
                }
                Err(e) => {
                    // Reported once per distinct problem, never acted on.
                    let problem = crate::error_chain(&e);
                    if reported.as_deref() != Some(problem.as_str()) {
                        tracing::warn!("ignoring a stop request that is not one: {problem}");
                        reported = Some(problem);
                    }
                    Ok(Err(vec![format!("no valid stop request for {name}")]))
                }
            })
            .await?;
        self.inner.stop.remove(&layout::stop_file(name))?;
        Ok(request)
    }
}
