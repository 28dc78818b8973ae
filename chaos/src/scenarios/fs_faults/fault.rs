//! The faults of the volume itself, injected on a tmpfs of the scenario and lifted again.

use std::io::Write as _;

use anyhow::{Context as _, Result, bail};

use super::common::Tmpfs;
use crate::harness::Ctx;

/// A fault of the volume itself.
#[derive(Debug, Clone, Copy)]
pub(super) enum Fault {
    /// No space left: a filler file takes every block.
    Space,
    /// No inodes left: empty files take every inode.
    Inodes,
    /// `mount -o remount,ro`.
    ReadOnly,
}

impl Fault {
    /// Its name in counts and messages.
    pub(super) fn label(self) -> &'static str {
        match self {
            Fault::Space => "ENOSPC",
            Fault::Inodes => "no inodes",
            Fault::ReadOnly => "read-only",
        }
    }

    /// Its name in paths.
    pub(super) fn slug(self) -> &'static str {
        match self {
            Fault::Space => "space",
            Fault::Inodes => "inodes",
            Fault::ReadOnly => "ro",
        }
    }

    /// The tmpfs mount options.
    pub(super) fn options(self) -> &'static str {
        match self {
            Fault::Space => "size=256k",
            Fault::Inodes => "size=4m,nr_inodes=64",
            Fault::ReadOnly => "size=4m",
        }
    }

    /// Injects it on `mnt`.
    pub(super) fn inject(self, ctx: &Ctx, mnt: &Tmpfs) -> Result<()> {
        match self {
            Fault::Space => {
                let mut f = std::fs::File::create(mnt.path.join("filler"))?;
                let chunk = vec![0u8; 16 * 1024];
                loop {
                    match f.write(&chunk) {
                        Ok(0) => bail!("the filler stopped growing without ENOSPC"),
                        Ok(_) => {}
                        Err(e) if e.raw_os_error() == Some(28) => return Ok(()),
                        Err(e) => return Err(e).context("filling the tmpfs"),
                    }
                }
            }
            Fault::Inodes => {
                let fill = mnt.path.join("fill");
                std::fs::create_dir(&fill)?;
                for i in 0..100_000 {
                    match std::fs::File::create_new(fill.join(i.to_string())) {
                        Ok(_) => {}
                        Err(e) if e.raw_os_error() == Some(28) => return Ok(()),
                        Err(e) => return Err(e).context("creating inodes"),
                    }
                }
                bail!("100000 files and still inodes left")
            }
            Fault::ReadOnly => mnt.remount(ctx, "remount,ro"),
        }
    }

    /// Lifts it: frees the space or inodes, or remounts read-write.
    pub(super) fn lift(self, ctx: &Ctx, mnt: &Tmpfs) -> Result<()> {
        match self {
            Fault::Space => Ok(std::fs::remove_file(mnt.path.join("filler"))?),
            Fault::Inodes => Ok(std::fs::remove_dir_all(mnt.path.join("fill"))?),
            Fault::ReadOnly => mnt.remount(ctx, "remount,rw"),
        }
    }
}
