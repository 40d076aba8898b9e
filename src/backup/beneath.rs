//! The one way Berth touches a volume's directory on this host.
//!
//! A volume's content is hostile input: the workspace that mounts it can
//! rename, replace and relink anything in it while Berth reads it, and
//! Berth runs as root. A walk by path (`lstat(p)`, then `open(p)`) can be
//! turned onto any host file by swapping a directory of `p` for a symlink
//! between the two calls. So everything here is opened relative to the
//! descriptor of its parent directory, one name at a time, and nothing is
//! ever followed:
//!
//! - every entry is first opened with `O_PATH | O_NOFOLLOW` (a symlink
//!   opens as itself, a device is not opened at all) and `fstat`ed through
//!   that descriptor: what it is, is read from what was opened, never from
//!   a path again;
//! - a directory is then opened through that descriptor (`openat(fd,
//!   ".")`), a regular file through its `/proc/self/fd` link (which names
//!   the very inode, and is checked to be it), so a swap after the check
//!   cannot redirect the open;
//! - a symlink is read through its own descriptor (`readlinkat(fd, "")`)
//!   and copied as a link;
//! - directories Berth creates (clones, restores) are made with `mkdirat`
//!   and opened with `O_DIRECTORY | O_NOFOLLOW`, files with `O_CREAT |
//!   O_EXCL | O_NOFOLLOW`, owners and times set through descriptors or
//!   with `AT_SYMLINK_NOFOLLOW`.
//!
//! An entry that changes while it is opened (vanished, or not what it was)
//! is [`changed`]: callers skip and count it, as they do a vanished file.
//! Nothing outside the root a [`Dir`] was opened from is ever opened:
//! names never hold `/` or `..` ([`Dir::open`] refuses them) and no link is
//! followed. `rustix` makes the calls (the same system calls `cap-std`
//! wraps, without its sandbox types, which a walk that owns its descriptors
//! does not need); `tests/architecture.rs` keeps path-based `std::fs` calls
//! out of the code that walks volumes (`backup/volume.rs`).

use std::ffi::{OsStr, OsString};
use std::fs::File;
pub use std::fs::Metadata;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};

/// An open directory: of a volume, or of a new one Berth fills.
#[derive(Debug)]
pub struct Dir {
    file: File,
}

/// What an entry of a directory turned out to be, opened.
#[derive(Debug)]
pub enum Kind {
    Dir(Dir),
    /// A regular file, open for reading.
    File(File),
    /// A symlink and its target (data, never followed).
    Symlink(PathBuf),
    /// A FIFO or a device file: its metadata says which; never opened.
    Special,
    /// A socket: a live endpoint, nothing to keep.
    Socket,
}

/// An entry of a directory, opened by [`Dir::open`].
#[derive(Debug)]
pub struct Entry {
    /// Its metadata, from the descriptor it was opened with.
    pub meta: Metadata,
    pub kind: Kind,
}

/// Whether an error means the entry changed under the walk: it vanished,
/// or became a symlink or something else where a directory or file was.
pub fn changed(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
        || matches!(
            e.raw_os_error(),
            Some(c) if c == rustix::io::Errno::NOTDIR.raw_os_error()
                || c == rustix::io::Errno::LOOP.raw_os_error()
                || c == rustix::io::Errno::STALE.raw_os_error()
        )
}

fn gone(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, what.to_string())
}

/// A name that stays in its directory: one component, not `.` or `..`.
fn check_name(name: &OsStr) -> io::Result<()> {
    let b = name.as_bytes();
    if b.is_empty() || b == b"." || b == b".." || b.contains(&b'/') || b.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} is not a name inside a directory",
                name.to_string_lossy()
            ),
        ));
    }
    Ok(())
}

/// `/proc/self/fd`, through which an `O_PATH` descriptor of a regular file
/// is opened for reading (the one way to open exactly that inode).
fn proc_fds() -> io::Result<BorrowedFd<'static>> {
    static FDS: OnceLock<Result<OwnedFd, i32>> = OnceLock::new();
    match FDS.get_or_init(|| {
        rustix::fs::open(
            "/proc/self/fd",
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| e.raw_os_error())
    }) {
        Ok(fd) => Ok(fd.as_fd()),
        Err(code) => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "opening /proc/self/fd (needed to read volumes safely): {}",
                io::Error::from_raw_os_error(*code)
            ),
        )),
    }
}

/// Opens for reading the regular file `at` (an `O_PATH` descriptor whose
/// metadata is `meta`) through its `/proc/self/fd` link, which names that
/// very inode, checked to be it.
fn reopen(at: &File, meta: &Metadata) -> io::Result<File> {
    let file = File::from(rustix::fs::openat(
        proc_fds()?,
        at.as_raw_fd().to_string(),
        OFlags::RDONLY | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )?);
    let opened = file.metadata()?;
    if (opened.dev(), opened.ino()) != (meta.dev(), meta.ino()) {
        return Err(gone("reopened as another file"));
    }
    Ok(file)
}

fn timestamps(atime: (i64, i64), mtime: (i64, i64)) -> Timestamps {
    Timestamps {
        last_access: Timespec {
            tv_sec: atime.0,
            tv_nsec: atime.1 as _,
        },
        last_modification: Timespec {
            tv_sec: mtime.0,
            tv_nsec: mtime.1 as _,
        },
    }
}

/// Owner, mode and times to give what Berth writes.
#[derive(Debug, Clone, Copy)]
pub struct Attrs {
    pub uid: u32,
    pub gid: u32,
    /// Permission bits (`0o7777`), set after the owner (which clears
    /// set-id bits).
    pub mode: u32,
    /// Seconds and nanoseconds.
    pub atime: (i64, i64),
    pub mtime: (i64, i64),
}

impl Attrs {
    /// What an entry a [`Dir::stat`] saw has.
    pub fn of_stat(st: &rustix::fs::Stat) -> Attrs {
        Attrs {
            uid: st.st_uid,
            gid: st.st_gid,
            mode: st.st_mode & 0o7777,
            atime: (st.st_atime, st.st_atime_nsec as i64),
            mtime: (st.st_mtime, st.st_mtime_nsec as i64),
        }
    }

    /// What a volume's entry has.
    pub fn of(md: &Metadata) -> Attrs {
        Attrs {
            uid: md.uid(),
            gid: md.gid(),
            mode: md.mode() & 0o7777,
            atime: (md.atime(), md.atime_nsec()),
            mtime: (md.mtime(), md.mtime_nsec()),
        }
    }
}

/// Sets `attrs` on an open file or directory, through its descriptor.
pub fn set_attrs(fd: impl AsFd, attrs: &Attrs) -> io::Result<()> {
    let fd = fd.as_fd();
    rustix::fs::fchown(
        fd,
        Some(rustix::fs::Uid::from_raw(attrs.uid)),
        Some(rustix::fs::Gid::from_raw(attrs.gid)),
    )?;
    rustix::fs::fchmod(fd, Mode::from_raw_mode(attrs.mode as _))?;
    rustix::fs::futimens(fd, &timestamps(attrs.atime, attrs.mtime))?;
    Ok(())
}

impl AsFd for Dir {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl Dir {
    /// Opens the root of a walk: a volume's directory as the engine names
    /// it (a path Berth trusts; what is inside it, it does not). The last
    /// component must be a directory, not a symlink.
    pub fn open_root(path: &Path) -> io::Result<Dir> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Dir {
            file: File::from(fd),
        })
    }

    /// This directory's own metadata.
    pub fn metadata(&self) -> io::Result<Metadata> {
        self.file.metadata()
    }

    /// The names in this directory (not `.` and `..`), in no order.
    pub fn names(&self) -> io::Result<Vec<OsString>> {
        let mut out = Vec::new();
        for e in rustix::fs::Dir::read_from(self)? {
            let e = e?;
            let name = OsStr::from_bytes(e.file_name().to_bytes());
            if name != "." && name != ".." {
                out.push(name.to_os_string());
            }
        }
        Ok(out)
    }

    /// Whether this directory holds nothing.
    pub fn is_empty(&self) -> io::Result<bool> {
        for e in rustix::fs::Dir::read_from(self)? {
            let e = e?;
            let name = e.file_name().to_bytes();
            if name != b"." && name != b".." {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Opens the entry `name` without following it, and says what it is
    /// from its own descriptor (see the module's doc). An entry that
    /// changes meanwhile is an error for which [`changed`] is true.
    pub fn open(&self, name: &OsStr) -> io::Result<Entry> {
        check_name(name)?;
        let fd = rustix::fs::openat(
            self,
            name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let at = File::from(fd);
        let meta = at.metadata()?;
        let ft = meta.file_type();
        use std::os::unix::fs::FileTypeExt;
        let kind = if ft.is_dir() {
            let fd = rustix::fs::openat(
                &at,
                ".",
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            Kind::Dir(Dir {
                file: File::from(fd),
            })
        } else if ft.is_file() {
            Kind::File(reopen(&at, &meta)?)
        } else if ft.is_symlink() {
            let target = rustix::fs::readlinkat(&at, "", Vec::new())?;
            Kind::Symlink(PathBuf::from(OsStr::from_bytes(target.as_bytes())))
        } else if ft.is_socket() {
            Kind::Socket
        } else {
            Kind::Special
        };
        Ok(Entry { meta, kind })
    }

    /// Opens the regular file `name` for reading, as [`Dir::open`] does,
    /// when it is still the file `(dev, ino)` a [`Dir::stat`] saw (else an
    /// error for which [`changed`] is true): what a walk that classified
    /// its entries by `stat` hands to the threads that read them.
    pub fn open_file(&self, name: &OsStr, (dev, ino): (u64, u64)) -> io::Result<(File, Metadata)> {
        check_name(name)?;
        let at = File::from(rustix::fs::openat(
            self,
            name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?);
        let meta = at.metadata()?;
        if !meta.file_type().is_file() || (meta.dev(), meta.ino()) != (dev, ino) {
            return Err(gone("no longer the file it was"));
        }
        Ok((reopen(&at, &meta)?, meta))
    }

    /// The target of the symlink `name` (read from the entry itself, never
    /// followed); an entry that is no longer a symlink is an error for
    /// which [`changed`] is true.
    pub fn read_link(&self, name: &OsStr) -> io::Result<PathBuf> {
        check_name(name)?;
        match rustix::fs::readlinkat(self, name, Vec::new()) {
            Ok(t) => Ok(PathBuf::from(OsStr::from_bytes(t.as_bytes()))),
            Err(rustix::io::Errno::INVAL) => Err(gone("no longer a symlink")),
            Err(e) => Err(e.into()),
        }
    }

    /// The entry `name`'s metadata, not following it (no descriptor is
    /// opened: enough to size a tree, or to tell what an entry is).
    pub fn stat(&self, name: &OsStr) -> io::Result<rustix::fs::Stat> {
        check_name(name)?;
        Ok(rustix::fs::statat(self, name, AtFlags::SYMLINK_NOFOLLOW)?)
    }

    /// Opens the subdirectory `name`; a symlink or anything but a
    /// directory there is an error for which [`changed`] is true.
    pub fn open_dir(&self, name: &OsStr) -> io::Result<Dir> {
        check_name(name)?;
        let fd = rustix::fs::openat(
            self,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Dir {
            file: File::from(fd),
        })
    }

    /// Opens the directory at `rel` beneath this one, one component at a
    /// time, following nothing (`.` components are ignored; `..` and
    /// absolute paths are refused).
    pub fn resolve(&self, rel: &Path) -> io::Result<Dir> {
        let mut cur: Option<Dir> = None;
        for c in rel.components() {
            match c {
                Component::CurDir => {}
                Component::Normal(name) => {
                    let next = cur.as_ref().unwrap_or(self).open_dir(name)?;
                    cur = Some(next);
                }
                _ => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("{} leaves its directory", rel.display()),
                    ))
                }
            }
        }
        match cur {
            Some(d) => Ok(d),
            None => self.try_clone(),
        }
    }

    /// Another descriptor of this directory.
    pub fn try_clone(&self) -> io::Result<Dir> {
        Ok(Dir {
            file: self.file.try_clone()?,
        })
    }

    /// Makes the subdirectory `name` with `mode` (less the umask) and
    /// opens it.
    pub fn create_dir(&self, name: &OsStr, mode: u32) -> io::Result<Dir> {
        check_name(name)?;
        rustix::fs::mkdirat(self, name, Mode::from_raw_mode(mode as _))?;
        self.open_dir(name)
    }

    /// Creates the file `name`, which must not exist (mode 0600 until its
    /// attributes are set), open for writing.
    pub fn create_file(&self, name: &OsStr) -> io::Result<File> {
        check_name(name)?;
        let fd = rustix::fs::openat(
            self,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )?;
        Ok(File::from(fd))
    }

    /// Makes the symlink `name` pointing at `target` (data: never checked
    /// nor followed here).
    pub fn symlink(&self, name: &OsStr, target: &Path) -> io::Result<()> {
        check_name(name)?;
        Ok(rustix::fs::symlinkat(target, self, name)?)
    }

    /// Makes `name` a hard link to `from_dir`'s entry `from_name` (a
    /// symlink there is linked as itself, not followed).
    pub fn hard_link(&self, name: &OsStr, from_dir: &Dir, from_name: &OsStr) -> io::Result<()> {
        check_name(name)?;
        check_name(from_name)?;
        Ok(rustix::fs::linkat(
            from_dir,
            from_name,
            self,
            name,
            AtFlags::empty(),
        )?)
    }

    /// Makes a FIFO or device file `name` like the one `st` describes.
    pub fn mknod(&self, name: &OsStr, st: &rustix::fs::Stat) -> io::Result<()> {
        check_name(name)?;
        let kind = FileType::from_raw_mode(st.st_mode as _);
        rustix::fs::mknodat(
            self,
            name,
            kind,
            Mode::from_raw_mode((st.st_mode & 0o777) as _),
            st.st_rdev as _,
        )?;
        Ok(())
    }

    /// Makes the FIFO `name`.
    pub fn mkfifo(&self, name: &OsStr) -> io::Result<()> {
        check_name(name)?;
        rustix::fs::mknodat(self, name, FileType::Fifo, Mode::from_raw_mode(0o600), 0)?;
        Ok(())
    }

    /// Sets the owner and times of the entry `name` without following it
    /// (a symlink's own), and its mode unless it is a symlink (a symlink
    /// has none). Only for entries Berth just made in a directory of its
    /// own.
    pub fn set_attrs_at(&self, name: &OsStr, attrs: &Attrs, symlink: bool) -> io::Result<()> {
        check_name(name)?;
        rustix::fs::chownat(
            self,
            name,
            Some(rustix::fs::Uid::from_raw(attrs.uid)),
            Some(rustix::fs::Gid::from_raw(attrs.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )?;
        if !symlink {
            // chmodat cannot refuse to follow (Linux has no
            // AT_SYMLINK_NOFOLLOW for it); the entry is one Berth just
            // made, not a symlink.
            rustix::fs::chmodat(
                self,
                name,
                Mode::from_raw_mode(attrs.mode as _),
                AtFlags::empty(),
            )?;
        }
        rustix::fs::utimensat(
            self,
            name,
            &timestamps(attrs.atime, attrs.mtime),
            AtFlags::SYMLINK_NOFOLLOW,
        )?;
        Ok(())
    }

    /// Removes the entry `name` (an empty directory too).
    pub fn remove(&self, name: &OsStr) -> io::Result<()> {
        check_name(name)?;
        match rustix::fs::unlinkat(self, name, AtFlags::empty()) {
            Err(rustix::io::Errno::ISDIR) => {
                Ok(rustix::fs::unlinkat(self, name, AtFlags::REMOVEDIR)?)
            }
            r => Ok(r?),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_leave_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let d = Dir::open_root(t.path()).unwrap();
        for bad in ["..", ".", "", "a/b", "/etc"] {
            assert!(d.open(OsStr::new(bad)).is_err(), "{bad}");
            assert!(d.open_dir(OsStr::new(bad)).is_err(), "{bad}");
        }
        assert!(d.resolve(Path::new("../x")).is_err());
        assert!(d.resolve(Path::new("/etc")).is_err());
    }

    #[test]
    fn nothing_is_followed() {
        let t = tempfile::tempdir().unwrap();
        let host = tempfile::tempdir().unwrap();
        std::fs::write(host.path().join("secret"), b"host").unwrap();
        std::os::unix::fs::symlink(host.path(), t.path().join("d")).unwrap();
        std::os::unix::fs::symlink(host.path().join("secret"), t.path().join("f")).unwrap();
        let d = Dir::open_root(t.path()).unwrap();
        // A symlink opens as itself and reads as its target.
        match d.open(OsStr::new("d")).unwrap().kind {
            Kind::Symlink(to) => assert_eq!(to, host.path()),
            k => panic!("{k:?}"),
        }
        assert!(matches!(
            d.open(OsStr::new("f")).unwrap().kind,
            Kind::Symlink(_)
        ));
        // Neither opens as a directory, nor resolves through.
        let e = d.open_dir(OsStr::new("d")).unwrap_err();
        assert!(changed(&e), "{e}");
        assert!(changed(&d.resolve(Path::new("d")).unwrap_err()));
        // Nothing is created through one.
        assert!(d.create_file(OsStr::new("f")).is_err());
        assert_eq!(std::fs::read(host.path().join("secret")).unwrap(), b"host");
        // A root that is a symlink is refused.
        assert!(Dir::open_root(&t.path().join("d")).is_err());
    }

    #[test]
    fn files_and_dirs_open_for_what_they_are() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("sub")).unwrap();
        std::fs::write(t.path().join("sub/x"), b"data").unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(t.path().join("pipe"))
            .status()
            .unwrap();
        assert!(made.success());
        let root = Dir::open_root(t.path()).unwrap();
        let mut names = root.names().unwrap();
        names.sort();
        assert_eq!(names, ["pipe", "sub"]);
        // A FIFO is not opened (opening one for reading would block).
        assert!(matches!(
            root.open(OsStr::new("pipe")).unwrap().kind,
            Kind::Special
        ));
        let Kind::Dir(sub) = root.open(OsStr::new("sub")).unwrap().kind else {
            panic!("a directory");
        };
        let Kind::File(mut f) = sub.open(OsStr::new("x")).unwrap().kind else {
            panic!("a file");
        };
        let mut s = String::new();
        io::Read::read_to_string(&mut f, &mut s).unwrap();
        assert_eq!(s, "data");
        assert!(!root.is_empty().unwrap());
        let e = root.open(OsStr::new("nothing")).unwrap_err();
        assert!(changed(&e));
    }
}
