//! `file:PATH`: waits until PATH exists, woken by inotify on the nearest existing ancestor
//! directory (so `file:/shared/a/b` works before `/shared/a` exists), with the rescan as a
//! safety net. The watch is set before each check, so a file created in between is seen.

use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt;
use inotify::{Inotify, WatchMask};

use super::Why;

pub async fn wait_exists(path: &Path, rescan: Duration, why: &Why) {
    loop {
        let watch = watch_ancestor(path);
        if std::fs::symlink_metadata(path).is_ok() {
            return;
        }
        why.set("no such file");
        match watch {
            Some((inotify, dir)) => {
                tracing::debug!("watching {} for {}", dir.display(), path.display());
                let mut stream = match inotify.into_event_stream([0u8; 1024]) {
                    Ok(s) => s,
                    Err(_) => {
                        tokio::time::sleep(rescan).await;
                        continue;
                    }
                };
                let _ = tokio::time::timeout(rescan, stream.next()).await;
            }
            None => tokio::time::sleep(rescan).await,
        }
    }
}

/// An inotify watch on the nearest existing ancestor of `path`.
fn watch_ancestor(path: &Path) -> Option<(Inotify, std::path::PathBuf)> {
    let inotify = Inotify::init().ok()?;
    let mut dir = path.parent()?;
    loop {
        let target = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let mask = WatchMask::CREATE
            | WatchMask::MOVED_TO
            | WatchMask::DELETE_SELF
            | WatchMask::MOVE_SELF
            | WatchMask::ONLYDIR;
        if inotify.watches().add(target, mask).is_ok() {
            return Some((inotify, target.to_owned()));
        }
        dir = dir.parent()?;
    }
}
