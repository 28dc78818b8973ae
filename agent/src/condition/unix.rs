//! `unix:PATH`: a stream socket at PATH accepts a connection.

use std::path::Path;
use std::time::Duration;

pub async fn check(path: &Path) -> Result<(), String> {
    let attempt = tokio::net::UnixStream::connect(path);
    match tokio::time::timeout(Duration::from_secs(2), attempt).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(super::io_why(&e)),
        Err(_) => Err("connect timed out".into()),
    }
}
