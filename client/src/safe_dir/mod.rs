//! A directory of the shared volume, used through a file descriptor and checked on every use.
//!
//! Every operation is `*at()` relative to that descriptor with `O_NOFOLLOW`, so a neighbour
//! who replaces a record with a symlink cannot redirect us anywhere: a symlink is refused,
//! never followed. Records are read only if they are regular files under the size cap, and
//! written by creating a temporary file, writing it whole, and renaming it over the record,
//! so no reader ever sees a torn record.
//!
//! **The directory at the path, not the one we once opened.** Before each use the descriptor
//! is compared (device and inode) with what is at its path now; if a neighbour moved the
//! directory away and made a new one (`mv locks locks.old; mkdir locks`), or removed it, the
//! directory now at the path is opened (created if missing) and used from then on. Otherwise
//! a lock taken in the moved-away directory would exclude nobody.
//!
//! **Readers create nothing.** A volume opened with `create: false` (a command that only
//! shows or waits) never makes a directory: a missing one reads as empty until someone who
//! writes creates it.
//!
//! **Debris.** A writer holds an exclusive flock on its temporary file from creation to
//! rename, and a holder on its liveness file for as long as it holds. A file of either kind
//! whose flock can be taken is therefore debris of a dead process: [`SafeDir::sweep`] removes
//! it, so that a crash loop leaves a bounded number of files behind. Finding debris means
//! listing the directory, so a process sweeps at its first write to a directory and then at
//! most every [`write::SWEEP_EVERY`], never on every write: a write costs the same with ten
//! records or ten thousand.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::error::{Error, Result};

mod write;

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

/// Where a directory is: the root (chosen by the operator: a symlink there is followed), or a
/// subdirectory of it (never followed).
#[derive(Debug)]
enum Place {
    Root(PathBuf),
    Sub {
        parent: Arc<SafeDir>,
        name: &'static str,
    },
}

/// One directory of the shared volume: see the module docs.
#[derive(Debug)]
pub(crate) struct SafeDir {
    place: Place,
    path: PathBuf,
    access: Access,
    /// Whether a missing directory is created when used. A volume that only reads (`status`,
    /// `wait`) does not create one: a mistyped path must not appear on disk, and a missing
    /// directory reads as empty.
    create: bool,
    /// The descriptor in use (`None`: a subdirectory not opened yet, because it could not
    /// be when the volume was opened). A std lock: held only to clone or replace the `Arc`.
    open: RwLock<Option<Arc<OpenDir>>>,
    /// When this process last swept the directory's debris (`None`: never): a sweep lists
    /// the whole directory, so writes sweep at most every [`write::SWEEP_EVERY`].
    last_sweep: Mutex<Option<Instant>>,
}

/// An opened directory and its identity.
#[derive(Debug)]
pub(crate) struct OpenDir {
    fd: OwnedFd,
    dev: u64,
    ino: u64,
}

impl OpenDir {
    /// Its device and inode numbers.
    pub(crate) fn identity(&self) -> (u64, u64) {
        (self.dev, self.ino)
    }
}

fn errno_to_io(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e.raw_os_error())
}

impl SafeDir {
    /// Opens the root of the shared volume, creating it (with the access mode) if missing and
    /// `create`; else a missing root is opened when it appears.
    pub(crate) fn open_root(path: &Path, access: Access, create: bool) -> Result<Arc<SafeDir>> {
        let place = Place::Root(path.to_owned());
        let open = match open_place(&place, path, access, create) {
            Ok(open) => Some(Arc::new(open)),
            Err(e) if !create && e.is_not_found() => None,
            Err(e) => return Err(e),
        };
        Ok(Arc::new(SafeDir {
            place,
            path: path.to_owned(),
            access,
            create,
            open: RwLock::new(open),
            last_sweep: Mutex::new(None),
        }))
    }

    /// Opens subdirectory `name` of `parent`, creating it with the access mode if missing.
    /// Refuses a symlink or anything that is not a directory, when it is used: one area a
    /// neighbour broke (or a read-only volume missing it) fails the operations on that area
    /// with an error naming it, not every operation on the volume.
    pub(crate) fn open_subdir(parent: &Arc<SafeDir>, name: &'static str) -> Arc<SafeDir> {
        let place = Place::Sub {
            parent: parent.clone(),
            name,
        };
        let path = parent.path.join(name);
        let open = open_place(&place, &path, parent.access, parent.create)
            .ok()
            .map(Arc::new);
        Arc::new(SafeDir {
            place,
            path,
            access: parent.access,
            create: parent.create,
            open: RwLock::new(open),
            last_sweep: Mutex::new(None),
        })
    }

    /// The descriptor of the directory now at this path: the one in use if it still is,
    /// else the new one (opened, or created if missing and this directory creates).
    pub(crate) fn current(&self) -> Result<Arc<OpenDir>> {
        self.revalidate(self.create)?.ok_or_else(|| {
            Error::io(
                "cannot open directory",
                &self.path,
                io::Error::from(io::ErrorKind::NotFound),
            )
        })
    }

    /// [`SafeDir::current`], without creating it: `None` if no directory is at the path.
    pub(crate) fn existing(&self) -> Result<Option<Arc<OpenDir>>> {
        self.revalidate(false)
    }

    /// [`SafeDir::current`] for a reader: `None` (nothing to read) if the directory is
    /// missing and this directory does not create.
    fn to_read(&self) -> Result<Option<Arc<OpenDir>>> {
        self.revalidate(self.create)
    }

    fn revalidate(&self, create: bool) -> Result<Option<Arc<OpenDir>>> {
        let in_use = match self.open.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        };
        let now = match &self.place {
            Place::Root(path) => rfs::stat(path).ok(),
            Place::Sub { parent, name } => match parent.revalidate(create)? {
                Some(p) => rfs::statat(&p.fd, *name, AtFlags::SYMLINK_NOFOLLOW).ok(),
                None => None,
            },
        };
        if let Some(in_use) = &in_use
            && now.is_some_and(|st| (st.st_dev, st.st_ino) == in_use.identity())
        {
            return Ok(Some(in_use.clone()));
        }
        if now.is_none() && !create {
            return Ok(None);
        }
        let fresh = Arc::new(open_place(&self.place, &self.path, self.access, create)?);
        if in_use.is_some() {
            tracing::warn!(
                "{} was moved, replaced or removed since it was opened: using the directory now at that path",
                self.path.display()
            );
        }
        match self.open.write() {
            Ok(mut g) => *g = Some(fresh.clone()),
            Err(p) => *p.into_inner() = Some(fresh.clone()),
        }
        Ok(Some(fresh))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn path_of(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// A path that names the directory in use (not whatever is at its path), for APIs that
    /// take paths, such as inotify. Valid while the returned descriptor lives.
    pub(crate) fn proc_path(dir: &OpenDir) -> PathBuf {
        use std::os::fd::AsRawFd;
        PathBuf::from(format!("/proc/self/fd/{}", dir.fd.as_raw_fd()))
    }

    /// Opens an existing file for reading without following symlinks or blocking on FIFOs,
    /// and checks it is a regular file. `Ok(None)` if it does not exist.
    pub(crate) fn open_regular(&self, name: &str) -> Result<Option<File>> {
        let Some(d) = self.to_read()? else {
            return Ok(None);
        };
        let flags =
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
        match rfs::openat(&d.fd, name, flags, Mode::empty()) {
            Ok(fd) => Ok(Some(self.check_regular(fd, name)?)),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(self.open_error(name, e)),
        }
    }

    fn check_regular(&self, fd: OwnedFd, name: &str) -> Result<File> {
        let st = rfs::fstat(&fd)
            .map_err(|e| Error::io("cannot stat", self.path_of(name), errno_to_io(e)))?;
        let kind = FileType::from_raw_mode(st.st_mode);
        if kind != FileType::RegularFile {
            return Err(Error::refused(
                self.path_of(name),
                format!("it is {}, not a regular file", kind_name(kind)),
            ));
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
            return Err(Error::refused(
                self.path_of(name),
                format!("it is over the {max}-byte record limit"),
            ));
        }
        Ok(Some(buf))
    }

    /// Opens (creating if missing) a file to take a flock on. Opened read-write when
    /// permitted, else read-only (flock needs neither), as flock(1) does.
    pub(crate) fn open_lockable(&self, name: &str, access: Access) -> Result<File> {
        let d = self.current()?;
        let base = OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
        let fd = match open_or_create(&d, name, base | OFlags::RDWR, access) {
            Ok(fd) => fd,
            Err(Errno::ACCESS) | Err(Errno::ROFS) => {
                open_or_create(&d, name, base | OFlags::RDONLY, access)
                    .map_err(|e| self.open_error(name, e))?
            }
            Err(e) => return Err(self.open_error(name, e)),
        };
        self.check_regular(fd, name)
    }

    /// Opens a file for appending (and reading), creating it if missing.
    pub(crate) fn open_append(&self, name: &str, access: Access) -> Result<File> {
        let d = self.current()?;
        let flags =
            OFlags::RDWR | OFlags::APPEND | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let fd = open_or_create(&d, name, flags, access).map_err(|e| self.open_error(name, e))?;
        self.check_regular(fd, name)
    }

    fn open_error(&self, name: &str, e: Errno) -> Error {
        match e {
            Errno::LOOP => Error::refused(self.path_of(name), "it is a symlink"),
            Errno::ISDIR => {
                Error::refused(self.path_of(name), "it is a directory, not a regular file")
            }
            e => Error::io("cannot open", self.path_of(name), errno_to_io(e)),
        }
    }

    /// True if `file` is still the file at `name` in the directory now at this path (not
    /// unlinked or replaced since it was opened, and not in a directory moved away since).
    pub(crate) fn is_current(&self, name: &str, file: &File) -> Result<bool> {
        let held = rfs::fstat(file.as_fd())
            .map_err(|e| Error::io("cannot stat", self.path_of(name), errno_to_io(e)))?;
        let Some(d) = self.to_read()? else {
            return Ok(false);
        };
        match rfs::statat(&d.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(st.st_dev == held.st_dev && st.st_ino == held.st_ino),
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(Error::io("cannot stat", self.path_of(name), errno_to_io(e))),
        }
    }

    /// Removes a file; a missing file is not an error.
    pub(crate) fn remove(&self, name: &str) -> Result<()> {
        let d = self.current()?;
        match rfs::unlinkat(&d.fd, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(Errno::ISDIR) => Err(Error::refused(
                self.path_of(name),
                "it is a directory, not a regular file",
            )),
            Err(e) => Err(Error::io(
                "cannot remove",
                self.path_of(name),
                errno_to_io(e),
            )),
        }
    }

    /// The names in this directory, except `.` and `..`, sorted.
    pub(crate) fn list(&self) -> Result<Vec<String>> {
        let Some(d) = self.to_read()? else {
            return Ok(Vec::new());
        };
        let dup = rfs::openat(
            &d.fd,
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
        let d = self.to_read().ok()??;
        rfs::statat(&d.fd, name, AtFlags::SYMLINK_NOFOLLOW)
            .ok()
            .map(|st| FileType::from_raw_mode(st.st_mode))
    }
}

/// How messages name a kind of file.
pub(crate) fn kind_name(kind: FileType) -> &'static str {
    match kind {
        FileType::RegularFile => "a regular file",
        FileType::Directory => "a directory",
        FileType::Symlink => "a symlink",
        FileType::Fifo => "a FIFO",
        FileType::Socket => "a socket",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        FileType::Unknown => "an unknown kind of file",
    }
}

/// Opens the directory of `place`, creating it with the access mode if missing and `create`.
fn open_place(place: &Place, path: &Path, access: Access, create: bool) -> Result<OpenDir> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let fd = match place {
        Place::Root(path) => {
            let created = match create.then(|| std::fs::create_dir(path)) {
                None => false,
                Some(Ok(())) => true,
                Some(Err(e)) if e.kind() == io::ErrorKind::AlreadyExists => false,
                Some(Err(e)) if e.kind() == io::ErrorKind::NotFound => {
                    std::fs::create_dir_all(path)
                        .map_err(|e| Error::io("cannot create directory", path, e))?;
                    true
                }
                Some(Err(e)) => return Err(Error::io("cannot create directory", path, e)),
            };
            let fd = rfs::open(path, flags, Mode::empty())
                .map_err(|e| Error::io("cannot open directory", path, errno_to_io(e)))?;
            if created {
                // mkdir honours the umask: set the documented mode exactly.
                rfs::fchmod(&fd, access.dir_mode())
                    .map_err(|e| Error::io("cannot chmod", path, errno_to_io(e)))?;
            }
            fd
        }
        Place::Sub { parent, name } => {
            open_subdir_at(&*parent.current()?, name, path, access, create)?
        }
    };
    let st = rfs::fstat(&fd).map_err(|e| Error::io("cannot stat", path, errno_to_io(e)))?;
    Ok(OpenDir {
        fd,
        dev: st.st_dev,
        ino: st.st_ino,
    })
}

fn open_subdir_at(
    parent: &OpenDir,
    name: &str,
    path: &Path,
    access: Access,
    create: bool,
) -> Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut created = false;
    loop {
        match rfs::openat(&parent.fd, name, flags, Mode::empty()) {
            Ok(fd) => {
                if created {
                    rfs::fchmod(&fd, access.dir_mode())
                        .map_err(|e| Error::io("cannot chmod", path, errno_to_io(e)))?;
                }
                return Ok(fd);
            }
            Err(Errno::NOENT) if create && !created => {
                match rfs::mkdirat(&parent.fd, name, access.dir_mode()) {
                    Ok(()) => created = true,
                    Err(Errno::EXIST) => {}
                    Err(e) => {
                        return Err(Error::io("cannot create directory", path, errno_to_io(e)));
                    }
                }
            }
            Err(Errno::LOOP) | Err(Errno::NOTDIR) => {
                return Err(Error::refused(
                    path.to_owned(),
                    "it is not a directory (a symlink or a file was planted there)",
                ));
            }
            Err(e) => return Err(Error::io("cannot open directory", path, errno_to_io(e))),
        }
    }
}

/// Opens `name` with `flags`, creating it if missing. A file this call creates gets the
/// access mode exactly (open(2) would apply the umask); an existing one is left as is.
fn open_or_create(
    d: &OpenDir,
    name: &str,
    flags: OFlags,
    access: Access,
) -> Result<OwnedFd, Errno> {
    loop {
        match rfs::openat(
            &d.fd,
            name,
            flags | OFlags::CREATE | OFlags::EXCL,
            access.file_mode(),
        ) {
            Ok(fd) => {
                rfs::fchmod(&fd, access.file_mode())?;
                return Ok(fd);
            }
            Err(Errno::EXIST) => match rfs::openat(&d.fd, name, flags, Mode::empty()) {
                Err(Errno::NOENT) => continue, // removed in between: try creating again
                other => return other,
            },
            Err(e) => return Err(e),
        }
    }
}
