//! A directory of the shared volume, opened once and used through its file descriptor.
//!
//! Every operation is `*at()` relative to that descriptor with `O_NOFOLLOW`, so a neighbour
//! who replaces `ready/` or a record with a symlink cannot redirect us anywhere: a symlink is
//! refused, never followed. Records are read only if they are regular files under the size
//! cap, and written by creating a temporary file, writing it whole, and renaming it over the
//! record, so no reader ever sees a torn record.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use podsignal_proto::layout;
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::error::{Error, Result};
use crate::identity;

/// File and directory permissions for everything podsignal creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Access {
    /// Files 0644, directories 0755: only the creating UID writes. One UID per pod.
    #[default]
    Owner,
    /// Files 0664, directories 2775 (setgid): every member of the group writes. For mixed
    /// UIDs that share a group, e.g. through a Pod's `fsGroup`.
    Group,
    /// Files 0666, directories 0777: every UID writes. For mixed UIDs with no shared group.
    All,
}

impl Access {
    fn file_mode(self) -> Mode {
        Mode::from_raw_mode(match self {
            Access::Owner => 0o644,
            Access::Group => 0o664,
            Access::All => 0o666,
        })
    }

    fn dir_mode(self) -> Mode {
        Mode::from_raw_mode(match self {
            Access::Owner => 0o755,
            Access::Group => 0o2775,
            Access::All => 0o777,
        })
    }
}

/// How writes are made.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct WriteOptions {
    pub(crate) access: Access,
    /// fsync every write (and its directory), not only the fencing counter.
    pub(crate) durable: bool,
}

/// One opened directory of the shared volume.
#[derive(Debug)]
pub(crate) struct SafeDir {
    fd: OwnedFd,
    path: PathBuf,
}

fn errno_to_io(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e.raw_os_error())
}

impl SafeDir {
    /// Opens the root of the shared volume, creating it if missing. The root itself is
    /// chosen by the operator, so a symlink there is followed; nothing below it is.
    pub(crate) fn open_root(path: &Path, access: Access) -> Result<SafeDir> {
        match std::fs::create_dir_all(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) if path.is_dir() => {
                tracing::debug!(path = %path.display(), "create_dir_all: {e}")
            }
            Err(e) => return Err(Error::io("cannot create directory", path, e)),
        }
        let _ = access;
        let fd = rfs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io("cannot open directory", path, errno_to_io(e)))?;
        Ok(SafeDir {
            fd,
            path: path.to_owned(),
        })
    }

    /// Opens subdirectory `name`, creating it with the access mode if missing. Refuses a
    /// symlink or anything that is not a directory.
    pub(crate) fn open_subdir(&self, name: &str, access: Access) -> Result<SafeDir> {
        let path = self.path.join(name);
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mut created = false;
        loop {
            match rfs::openat(&self.fd, name, flags, Mode::empty()) {
                Ok(fd) => {
                    if created {
                        // mkdirat honours the umask; set the documented mode exactly.
                        rfs::fchmod(&fd, access.dir_mode())
                            .map_err(|e| Error::io("cannot chmod", &path, errno_to_io(e)))?;
                    }
                    return Ok(SafeDir { fd, path });
                }
                Err(Errno::NOENT) if !created => {
                    match rfs::mkdirat(&self.fd, name, access.dir_mode()) {
                        Ok(()) => created = true,
                        Err(Errno::EXIST) => {}
                        Err(e) => {
                            return Err(Error::io(
                                "cannot create directory",
                                &path,
                                errno_to_io(e),
                            ));
                        }
                    }
                }
                Err(Errno::LOOP) | Err(Errno::NOTDIR) => {
                    return Err(Error::Refused {
                        path,
                        why: "not a directory (a symlink or a file was planted there)".into(),
                    });
                }
                Err(e) => return Err(Error::io("cannot open directory", &path, errno_to_io(e))),
            }
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn path_of(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// A path that names this very directory (not whatever is at its path now), for APIs
    /// that take paths, such as inotify.
    pub(crate) fn proc_path(&self) -> PathBuf {
        use std::os::fd::AsRawFd;
        PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))
    }

    /// Opens an existing file for reading without following symlinks or blocking on FIFOs,
    /// and checks it is a regular file. `Ok(None)` if it does not exist.
    pub(crate) fn open_regular(&self, name: &str) -> Result<Option<File>> {
        let flags =
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
        match rfs::openat(&self.fd, name, flags, Mode::empty()) {
            Ok(fd) => Ok(Some(self.check_regular(fd, name)?)),
            Err(Errno::NOENT) => Ok(None),
            Err(Errno::LOOP) => Err(Error::Refused {
                path: self.path_of(name),
                why: "it is a symlink".into(),
            }),
            Err(e) => Err(Error::io("cannot open", self.path_of(name), errno_to_io(e))),
        }
    }

    fn check_regular(&self, fd: OwnedFd, name: &str) -> Result<File> {
        let st = rfs::fstat(&fd)
            .map_err(|e| Error::io("cannot stat", self.path_of(name), errno_to_io(e)))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(Error::Refused {
                path: self.path_of(name),
                why: "not a regular file".into(),
            });
        }
        Ok(File::from(fd))
    }

    /// Reads a whole record, refusing symlinks, non-regular files and files over
    /// [`MAX_RECORD_BYTES`](podsignal_proto::MAX_RECORD_BYTES). `Ok(None)` if missing.
    pub(crate) fn read_record(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let Some(file) = self.open_regular(name)? else {
            return Ok(None);
        };
        let max = podsignal_proto::MAX_RECORD_BYTES;
        let mut buf = Vec::new();
        file.take(max + 1)
            .read_to_end(&mut buf)
            .map_err(|e| Error::io("cannot read", self.path_of(name), e))?;
        if buf.len() as u64 > max {
            return Err(Error::Refused {
                path: self.path_of(name),
                why: format!("over the {max}-byte record limit"),
            });
        }
        Ok(Some(buf))
    }

    /// Writes `bytes` to `name` atomically: temporary file, (fsync), rename, (fsync dir).
    pub(crate) fn write_atomic(
        &self,
        name: &str,
        bytes: &[u8],
        opts: WriteOptions,
        fsync: bool,
    ) -> Result<()> {
        let fsync = fsync || opts.durable;
        let tmp = layout::temp_file(name, std::process::id(), identity::nonce());
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rfs::openat(&self.fd, tmp.as_str(), flags, opts.access.file_mode())
            .map_err(|e| Error::io("cannot create", self.path_of(&tmp), errno_to_io(e)))?;
        let result = (|| {
            rfs::fchmod(&fd, opts.access.file_mode())
                .map_err(|e| Error::io("cannot chmod", self.path_of(&tmp), errno_to_io(e)))?;
            let mut file = File::from(fd);
            file.write_all(bytes)
                .map_err(|e| Error::io("cannot write", self.path_of(&tmp), e))?;
            if fsync {
                file.sync_all()
                    .map_err(|e| Error::io("cannot fsync", self.path_of(&tmp), e))?;
            }
            drop(file);
            rfs::renameat(&self.fd, tmp.as_str(), &self.fd, name)
                .map_err(|e| Error::io("cannot rename into", self.path_of(name), errno_to_io(e)))?;
            if fsync {
                rfs::fsync(&self.fd)
                    .map_err(|e| Error::io("cannot fsync directory", &self.path, errno_to_io(e)))?;
            }
            Ok(())
        })();
        if result.is_err() {
            let _ = rfs::unlinkat(&self.fd, tmp.as_str(), AtFlags::empty());
        }
        result
    }

    /// Opens (creating if missing) a file to take a flock on. Opened read-write when
    /// permitted, else read-only (flock needs neither), as flock(1) does.
    pub(crate) fn open_lockable(&self, name: &str, access: Access) -> Result<File> {
        let base = OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
        let fd = match self.open_or_create(name, base | OFlags::RDWR, access) {
            Ok(fd) => fd,
            Err(Errno::ACCESS) | Err(Errno::ROFS) => self
                .open_or_create(name, base | OFlags::RDONLY, access)
                .map_err(|e| self.open_error(name, e))?,
            Err(e) => return Err(self.open_error(name, e)),
        };
        self.check_regular(fd, name)
    }

    /// Opens `name` with `flags`, creating it if missing. A file this call creates gets the
    /// access mode exactly (open(2) would apply the umask); an existing one is left as is.
    fn open_or_create(&self, name: &str, flags: OFlags, access: Access) -> Result<OwnedFd, Errno> {
        loop {
            match rfs::openat(
                &self.fd,
                name,
                flags | OFlags::CREATE | OFlags::EXCL,
                access.file_mode(),
            ) {
                Ok(fd) => {
                    rfs::fchmod(&fd, access.file_mode())?;
                    return Ok(fd);
                }
                Err(Errno::EXIST) => match rfs::openat(&self.fd, name, flags, Mode::empty()) {
                    Err(Errno::NOENT) => continue, // removed in between: try creating again
                    other => return other,
                },
                Err(e) => return Err(e),
            }
        }
    }

    /// Creates a new file that must not exist yet, read-write, with the access mode.
    pub(crate) fn create_new(&self, name: &str, access: Access) -> Result<File> {
        let flags =
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rfs::openat(&self.fd, name, flags, access.file_mode())
            .map_err(|e| self.open_error(name, e))?;
        rfs::fchmod(&fd, access.file_mode())
            .map_err(|e| Error::io("cannot chmod", self.path_of(name), errno_to_io(e)))?;
        Ok(File::from(fd))
    }

    /// Opens a file for appending (and reading), creating it if missing.
    pub(crate) fn open_append(&self, name: &str, access: Access) -> Result<File> {
        let flags =
            OFlags::RDWR | OFlags::APPEND | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let fd = self
            .open_or_create(name, flags, access)
            .map_err(|e| self.open_error(name, e))?;
        self.check_regular(fd, name)
    }

    fn open_error(&self, name: &str, e: Errno) -> Error {
        if e == Errno::LOOP {
            Error::Refused {
                path: self.path_of(name),
                why: "it is a symlink".into(),
            }
        } else {
            Error::io("cannot open", self.path_of(name), errno_to_io(e))
        }
    }

    /// True if `file` is still the file at `name` (not unlinked or replaced since opened).
    pub(crate) fn is_current(&self, name: &str, file: &File) -> Result<bool> {
        let held = rfs::fstat(file.as_fd())
            .map_err(|e| Error::io("cannot stat", self.path_of(name), errno_to_io(e)))?;
        match rfs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(st.st_dev == held.st_dev && st.st_ino == held.st_ino),
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(Error::io("cannot stat", self.path_of(name), errno_to_io(e))),
        }
    }

    /// Removes a file; a missing file is not an error.
    pub(crate) fn remove(&self, name: &str) -> Result<()> {
        match rfs::unlinkat(&self.fd, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(Error::io(
                "cannot remove",
                self.path_of(name),
                errno_to_io(e),
            )),
        }
    }

    /// The names in this directory, except `.` and `..`, sorted.
    pub(crate) fn list(&self) -> Result<Vec<String>> {
        let dup = rfs::openat(
            &self.fd,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io("cannot open directory", &self.path, errno_to_io(e)))?;
        let dir =
            rfs::Dir::new(dup).map_err(|e| Error::io("cannot list", &self.path, errno_to_io(e)))?;
        let mut names = Vec::new();
        for entry in dir {
            let entry = entry.map_err(|e| Error::io("cannot list", &self.path, errno_to_io(e)))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name != "." && name != ".." {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    /// The kind of entry `name` is, without following symlinks; `None` if missing.
    pub(crate) fn kind_of(&self, name: &str) -> Option<FileType> {
        rfs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW)
            .ok()
            .map(|st| FileType::from_raw_mode(st.st_mode))
    }

    /// Modification time of `name` in Unix milliseconds, without following symlinks.
    pub(crate) fn mtime_ms(&self, name: &str) -> Option<u64> {
        let st = rfs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW).ok()?;
        u64::try_from(st.st_mtime)
            .ok()
            .map(|s| s * 1000 + st.st_mtime_nsec as u64 / 1_000_000)
    }
}
