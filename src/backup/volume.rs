//! Everything that reads or writes a volume's directory on this host:
//! archiving it (backups), copying it (clones), measuring it (sizes) and
//! extracting an archive into a new one (restores, recoveries). All of it
//! goes through [`beneath`]: a volume's content is hostile input, walked
//! by descriptor, nothing followed (see that module). What changes under
//! a walk is skipped and counted, never an error to the user and never a
//! way out of the volume. `tests/architecture.rs` keeps path-based file
//! system calls out of this file.

use std::ffi::{OsStr, OsString};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::rc::Rc;

use super::beneath::{self, changed, Attrs, Dir, Kind};
use super::*;

fn shown(rel: &Path) -> String {
    if rel.as_os_str().is_empty() {
        ".".into()
    } else {
        rel.display().to_string()
    }
}

fn ctx(what: &'static str, rel: &Path) -> impl FnOnce(io::Error) -> ArchiveError {
    io_err(format!("{what} {}", shown(rel)))
}

fn open_root(root: &Path) -> Result<Dir, ArchiveError> {
    Dir::open_root(root).map_err(io_err(format!("opening {}", root.display())))
}

/// Whether the volume directory `root` holds nothing.
pub fn dir_is_empty(root: &Path) -> Result<bool, ArchiveError> {
    open_root(root)?
        .is_empty()
        .map_err(io_err(format!("listing {}", root.display())))
}

/// A directory's names, sorted (a stable archive), or `None` when it
/// changed meanwhile.
fn sorted_names(d: &Dir, rel: &Path) -> Result<Option<Vec<OsString>>, ArchiveError> {
    match d.names() {
        Ok(mut names) => {
            names.sort();
            Ok(Some(names))
        }
        Err(e) if changed(&e) => Ok(None),
        Err(e) => Err(ctx("listing", rel)(e)),
    }
}

/// One entry still to visit: its directory, its name there, its path
/// relative to the root.
struct Pending<D> {
    parent: D,
    name: OsString,
    rel: PathBuf,
}

/// What [`copy_tree`] copied.
#[derive(Debug, Default)]
pub struct Copied {
    pub files: u64,
    /// Entries that changed or vanished while they were copied.
    pub skipped: Skipped,
}

/// A regular file for a copy worker: where it is, what a stat saw, where
/// it goes. The worker opens it (a walk that opened every file itself
/// would leave the workers waiting).
struct FileJob {
    src_dir: Arc<Dir>,
    id: (u64, u64),
    attrs: Attrs,
    dst_dir: Arc<Dir>,
    name: OsString,
    rel: PathBuf,
}

/// Copies everything under `src` into the existing, empty directory `dst`
/// (a new volume nobody mounts yet), as `cp -a src/. dst/` does minus
/// extended attributes: contents, owners, modes, times, symlinks as links,
/// hard links as links, FIFOs and device files as nodes; sockets are left
/// out (as archives leave them). The walk tells entries apart by
/// `fstatat` beneath their directory's descriptor; regular files are
/// opened (checked to be the file the walk saw) and copied by `workers`
/// threads (in-kernel `copy_file_range`) while it goes on; directories get
/// their attributes last, deepest first. An entry that changes while it is
/// copied (a workspace writing to the volume) is skipped and counted.
/// Errors name paths relative to `src`.
pub fn copy_tree(src: &Path, dst: &Path, workers: usize) -> Result<Copied, ArchiveError> {
    use rustix::fs::FileType;
    let src_root = Arc::new(open_root(src)?);
    let dst_root = Arc::new(open_root(dst)?);
    let root_meta = src_root.metadata().map_err(ctx("reading", Path::new("")))?;
    let mut skipped = Skipped::default();
    let mut dirs: Vec<(PathBuf, Attrs)> = vec![(PathBuf::new(), Attrs::of(&root_meta))];
    let mut links: Vec<(PathBuf, PathBuf)> = Vec::new();
    let mut first_of: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let (tx, rx) = std::sync::mpsc::sync_channel::<FileJob>(256);
    let rx = Mutex::new(rx);
    let failure: Mutex<Option<ArchiveError>> = Mutex::new(None);
    let gone: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
    let copied = std::sync::atomic::AtomicU64::new(0);
    let walked = std::thread::scope(|scope| {
        for _ in 0..workers.max(1) {
            scope.spawn(|| loop {
                let job = match rx.lock().expect("poisoned").recv() {
                    Ok(job) => job,
                    Err(_) => return,
                };
                if failure.lock().expect("poisoned").is_some() {
                    continue;
                }
                let rel = job.rel.clone();
                match copy_file(job) {
                    Ok(true) => {
                        copied.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    Ok(false) => gone.lock().expect("poisoned").push(rel),
                    Err(e) => {
                        failure.lock().expect("poisoned").get_or_insert(e);
                    }
                }
            });
        }
        let mut walk = || -> Result<(), ArchiveError> {
            let mut stack: Vec<Pending<(Arc<Dir>, Arc<Dir>)>> = Vec::new();
            let Some(names) = sorted_names(&src_root, Path::new(""))? else {
                return Err(ctx("listing", Path::new(""))(beneath_gone()));
            };
            for name in names.into_iter().rev() {
                stack.push(Pending {
                    parent: (src_root.clone(), dst_root.clone()),
                    rel: PathBuf::from(&name),
                    name,
                });
            }
            while let Some(Pending {
                parent: (from, to),
                name,
                rel,
            }) = stack.pop()
            {
                if failure.lock().expect("poisoned").is_some() {
                    return Ok(());
                }
                let st = match from.stat(&name) {
                    Ok(st) => st,
                    Err(e) if changed(&e) => {
                        skipped.add(&rel);
                        continue;
                    }
                    Err(e) => return Err(ctx("reading", &rel)(e)),
                };
                let attrs = Attrs::of_stat(&st);
                match FileType::from_raw_mode(st.st_mode) {
                    FileType::Directory => {
                        let d = match from.open_dir(&name) {
                            Ok(d) => d,
                            Err(e) if changed(&e) => {
                                skipped.add(&rel);
                                continue;
                            }
                            Err(e) => return Err(ctx("opening", &rel)(e)),
                        };
                        let Some(names) = sorted_names(&d, &rel)? else {
                            skipped.add(&rel);
                            continue;
                        };
                        let made = to.create_dir(&name, 0o700).map_err(ctx("creating", &rel))?;
                        // The attributes of what was opened.
                        let meta = d.metadata().map_err(ctx("reading", &rel))?;
                        dirs.push((rel.clone(), Attrs::of(&meta)));
                        let pair = (Arc::new(d), Arc::new(made));
                        for child in names.into_iter().rev() {
                            stack.push(Pending {
                                parent: pair.clone(),
                                rel: rel.join(&child),
                                name: child,
                            });
                        }
                    }
                    FileType::RegularFile => {
                        let id = (st.st_dev, st.st_ino);
                        if st.st_nlink > 1 {
                            if let Some(first) = first_of.get(&id) {
                                links.push((first.clone(), rel));
                                continue;
                            }
                            first_of.insert(id, rel.clone());
                        }
                        let job = FileJob {
                            src_dir: from.clone(),
                            id,
                            attrs,
                            dst_dir: to.clone(),
                            name,
                            rel,
                        };
                        if tx.send(job).is_err() {
                            return Ok(());
                        }
                    }
                    FileType::Symlink => {
                        let target = match from.read_link(&name) {
                            Ok(t) => t,
                            Err(e) if changed(&e) => {
                                skipped.add(&rel);
                                continue;
                            }
                            Err(e) => return Err(ctx("reading", &rel)(e)),
                        };
                        to.symlink(&name, &target).map_err(ctx("creating", &rel))?;
                        to.set_attrs_at(&name, &attrs, true)
                            .map_err(ctx("owning", &rel))?;
                    }
                    FileType::Socket => {}
                    _ => {
                        to.mknod(&name, &st).map_err(ctx("creating", &rel))?;
                        to.set_attrs_at(&name, &attrs, false)
                            .map_err(ctx("owning", &rel))?;
                    }
                }
            }
            Ok(())
        };
        let walked = walk();
        drop(tx);
        walked
    });
    if let Some(e) = failure.into_inner().expect("poisoned") {
        return Err(e);
    }
    walked?;
    let gone = gone.into_inner().expect("poisoned");
    for rel in &gone {
        skipped.add(rel);
    }
    for (first, rel) in links {
        if gone.contains(&first) {
            skipped.add(&rel);
            continue;
        }
        let link = || -> io::Result<()> {
            let (fdir, fname) = split(&first);
            let (ldir, lname) = split(&rel);
            let from = dst_root.resolve(fdir)?;
            dst_root.resolve(ldir)?.hard_link(lname, &from, fname)
        };
        link().map_err(ctx("linking", &rel))?;
    }
    // Deepest first, so setting a directory's time is not undone by
    // creating something inside it.
    for (rel, attrs) in dirs.into_iter().rev() {
        let d = dst_root.resolve(&rel).map_err(ctx("opening", &rel))?;
        beneath::set_attrs(&d, &attrs).map_err(ctx("owning", &rel))?;
    }
    Ok(Copied {
        files: copied.into_inner(),
        skipped,
    })
}

fn beneath_gone() -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, "the volume's directory changed")
}

/// A relative path's directory and last name.
fn split(rel: &Path) -> (&Path, &OsStr) {
    (
        rel.parent().unwrap_or(Path::new("")),
        rel.file_name().unwrap_or_default(),
    )
}

/// Copies one file; `false`: it changed under the walk (skipped).
fn copy_file(job: FileJob) -> Result<bool, ArchiveError> {
    let FileJob {
        src_dir,
        id,
        attrs,
        dst_dir,
        name,
        rel,
    } = job;
    let mut src = match src_dir.open_file(&name, id) {
        Ok((f, _)) => f,
        Err(e) if changed(&e) => return Ok(false),
        Err(e) => return Err(ctx("opening", &rel)(e)),
    };
    let mut out = dst_dir.create_file(&name).map_err(ctx("creating", &rel))?;
    // `io::copy` between two files is `copy_file_range` on Linux.
    io::copy(&mut src, &mut out).map_err(ctx("copying", &rel))?;
    beneath::set_attrs(&out, &attrs).map_err(ctx("owning", &rel))?;
    Ok(true)
}

/// Apparent size of everything under `root`, as `du -sb` counts it: files,
/// directories and symlinks by their length, hard links once. What
/// changes meanwhile is not counted (as `du` does).
pub fn dir_size(root: &Path) -> Result<u64, ArchiveError> {
    let root_dir = open_root(root)?;
    let mut seen: HashSet<(u64, u64)> = HashSet::new();
    let mut total = root_dir
        .metadata()
        .map_err(ctx("reading", Path::new("")))?
        .len();
    let mut stack: Vec<(Dir, PathBuf)> = vec![(root_dir, PathBuf::new())];
    while let Some((dir, rel)) = stack.pop() {
        let names = match dir.names() {
            Ok(n) => n,
            Err(e) if changed(&e) => continue,
            Err(e) => return Err(ctx("listing", &rel)(e)),
        };
        for name in names {
            let st = match dir.stat(&name) {
                Ok(st) => st,
                Err(e) if changed(&e) => continue,
                Err(e) => return Err(ctx("reading", &rel.join(&name))(e)),
            };
            let kind = rustix::fs::FileType::from_raw_mode(st.st_mode);
            if kind == rustix::fs::FileType::Directory {
                // Its size from what was opened, not from the stat before.
                match dir.open_dir(&name) {
                    Ok(sub) => {
                        total += sub.metadata().map(|m| m.len()).unwrap_or(0);
                        stack.push((sub, rel.join(&name)));
                    }
                    Err(e) if changed(&e) => {}
                    Err(e) => return Err(ctx("opening", &rel.join(&name))(e)),
                }
                continue;
            }
            if st.st_nlink > 1 && !seen.insert((st.st_dev, st.st_ino)) {
                continue;
            }
            total += st.st_size as u64;
        }
    }
    Ok(total)
}

/// Writes everything under `src` as a tar stream (entries relative to it,
/// the root as `./`, symlinks as links, owners, modes and times kept;
/// sockets left out). An entry that changes or vanishes while it is walked
/// — a running workspace deleting, renaming or relinking files — is
/// skipped and counted, as tar and restic do; any other failure stops the
/// walk with its reason.
pub(super) fn tar_dir<W: Write>(src: &Path, w: W) -> Result<(W, Walked), ArchiveError> {
    let root = open_root(src)?;
    let mut b = tar::Builder::new(w);
    b.follow_symlinks(false);
    b.mode(tar::HeaderMode::Complete);
    let mut walked = Walked::default();
    let root_meta = root.metadata().map_err(ctx("reading", Path::new("")))?;
    let mut h = tar::Header::new_gnu();
    h.set_metadata_in_mode(&root_meta, tar::HeaderMode::Complete);
    h.set_size(0);
    b.append_data(&mut h, "./", io::empty())
        .map_err(ctx("archiving", Path::new("")))?;
    let mut stack: Vec<Pending<Rc<Dir>>> = Vec::new();
    let root = Rc::new(root);
    let Some(names) = sorted_names(&root, Path::new(""))? else {
        return Err(ctx("listing", Path::new(""))(beneath_gone()));
    };
    for name in names.into_iter().rev() {
        stack.push(Pending {
            parent: root.clone(),
            rel: PathBuf::from(&name),
            name,
        });
    }
    while let Some(Pending { parent, name, rel }) = stack.pop() {
        let entry = match parent.open(&name) {
            Ok(e) => e,
            Err(e) if changed(&e) => {
                walked.skipped.add(&rel);
                continue;
            }
            Err(e) => return Err(ctx("reading", &rel)(e)),
        };
        drop(parent);
        let mut h = tar::Header::new_gnu();
        h.set_metadata_in_mode(&entry.meta, tar::HeaderMode::Complete);
        match entry.kind {
            Kind::Dir(d) => {
                let Some(names) = sorted_names(&d, &rel)? else {
                    walked.skipped.add(&rel);
                    continue;
                };
                h.set_size(0);
                b.append_data(&mut h, &rel, io::empty())
                    .map_err(ctx("archiving", &rel))?;
                let d = Rc::new(d);
                for child in names.into_iter().rev() {
                    stack.push(Pending {
                        parent: d.clone(),
                        rel: rel.join(&child),
                        name: child,
                    });
                }
            }
            Kind::File(f) => {
                walked.content_bytes += entry.meta.len();
                let data = ExactLength {
                    inner: BufReader::with_capacity(256 * 1024, f),
                    left: entry.meta.len(),
                };
                b.append_data(&mut h, &rel, data)
                    .map_err(ctx("archiving", &rel))?;
            }
            Kind::Symlink(target) => {
                h.set_size(0);
                b.append_link(&mut h, &rel, &target)
                    .map_err(ctx("archiving", &rel))?;
            }
            Kind::Special => {
                h.set_size(0);
                let ft = entry.meta.file_type();
                if ft.is_char_device() || ft.is_block_device() {
                    let rdev = entry.meta.rdev();
                    h.set_device_major(rustix::fs::major(rdev))
                        .map_err(ctx("archiving", &rel))?;
                    h.set_device_minor(rustix::fs::minor(rdev))
                        .map_err(ctx("archiving", &rel))?;
                }
                b.append_data(&mut h, &rel, io::empty())
                    .map_err(ctx("archiving", &rel))?;
            }
            Kind::Socket => {}
        }
    }
    Ok((
        b.into_inner().map_err(io_err("finishing the tar stream"))?,
        walked,
    ))
}

/// The time an archive's entry gets: its mtime as both times (0 becomes
/// 1, as the `tar` crate does: some tools take 0 for "unset").
fn entry_times(h: &tar::Header) -> ((i64, i64), (i64, i64)) {
    let t = h.mtime().unwrap_or(0).max(1) as i64;
    ((t, 0), (t, 0))
}

fn entry_attrs(h: &tar::Header, rules: ReadRules) -> Result<Attrs, ArchiveError> {
    let bad = |e: io::Error| ArchiveError::Corrupt(e.to_string());
    let mut mode = h.mode().map_err(bad)? & 0o7777;
    if rules.strip_setid {
        mode &= !0o6000;
    }
    let (atime, mtime) = entry_times(h);
    let id = |v: u64, what: &str| {
        u32::try_from(v).map_err(|_| ArchiveError::Unsafe(format!("{what} {v} is too large")))
    };
    Ok(Attrs {
        uid: id(h.uid().map_err(bad)?, "uid")?,
        gid: id(h.gid().map_err(bad)?, "gid")?,
        mode,
        atime,
        mtime,
    })
}

/// The directory an entry goes in, made (0755) where missing, and the
/// last one kept open for the entries after it.
struct Parents<'a> {
    root: &'a Dir,
    last: Option<(PathBuf, Rc<Dir>)>,
}

impl Parents<'_> {
    fn of(&mut self, dir: &Path) -> io::Result<Rc<Dir>> {
        if let Some((p, d)) = &self.last {
            if p == dir {
                return Ok(d.clone());
            }
        }
        let mut cur: Option<Dir> = None;
        for c in dir.components() {
            let Component::Normal(name) = c else {
                continue;
            };
            let at = cur.as_ref().unwrap_or(self.root);
            let next = match at.open_dir(name) {
                Ok(d) => d,
                // As `tar` makes a missing parent.
                Err(e) if e.kind() == io::ErrorKind::NotFound => at.create_dir(name, 0o755)?,
                Err(e) => return Err(e),
            };
            cur = Some(next);
        }
        let d = Rc::new(match cur {
            Some(d) => d,
            None => self.root.try_clone()?,
        });
        self.last = Some((dir.to_path_buf(), d.clone()));
        Ok(d)
    }
}

/// Extracts a tar stream into `dst` (a new volume's directory nobody else
/// uses), each entry checked by the [`EntryGuard`] first and written
/// beneath `dst` by descriptor: parents opened without following, files
/// created exclusively, owners, modes (set-id bits stripped under
/// `rules`) and times set through descriptors, directories' attributes
/// last. A later entry replaces an earlier one at the same path, as `tar`
/// does. Returns the number of entries.
pub(super) fn unpack_into(
    input: impl Read,
    dst: &Path,
    rules: ReadRules,
) -> Result<u64, ArchiveError> {
    let root = open_root(dst)?;
    let mut parents = Parents {
        root: &root,
        last: None,
    };
    let mut a = tar::Archive::new(input);
    let corrupt = |e: io::Error| ArchiveError::Corrupt(e.to_string());
    let mut guard = EntryGuard::default();
    let mut dirs: Vec<(PathBuf, Attrs)> = Vec::new();
    let mut entries = 0u64;
    for e in a.entries().map_err(corrupt)? {
        let mut e = e.map_err(corrupt)?;
        let checked = guard.check(&e)?;
        entries += 1;
        let rel = normal(&e.path().map_err(corrupt)?);
        let kind = e.header().entry_type();
        if kind.is_pax_global_extensions()
            || kind.is_pax_local_extensions()
            || kind.is_gnu_longname()
            || kind.is_gnu_longlink()
        {
            continue;
        }
        let attrs = entry_attrs(e.header(), rules)?;
        if rel.as_os_str().is_empty() {
            // The root itself (`./`): only its attributes.
            if kind.is_dir() {
                dirs.push((rel, attrs));
            }
            continue;
        }
        let (dir_rel, name) = split(&rel);
        let name = name.to_os_string();
        let written = (|| -> io::Result<()> {
            let dir = parents.of(dir_rel)?;
            // What an earlier entry left at this path.
            let existing = match dir.stat(&name) {
                Ok(st) => Some(rustix::fs::FileType::from_raw_mode(st.st_mode)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => return Err(e),
            };
            let is_dir = existing == Some(rustix::fs::FileType::Directory);
            if kind.is_dir() {
                if existing.is_some() && !is_dir {
                    dir.remove(&name)?;
                }
                if !is_dir {
                    dir.create_dir(&name, 0o700)?;
                }
                dirs.push((rel.clone(), attrs));
                return Ok(());
            }
            if is_dir {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "an earlier entry made a directory there",
                ));
            }
            if existing.is_some() {
                dir.remove(&name)?;
            }
            if let Some(target) = &checked.link_to_symlink {
                dir.symlink(&name, target)?;
                return dir.set_attrs_at(&name, &attrs, true);
            }
            if kind.is_symlink() {
                let target = e.link_name()?.unwrap_or_default().into_owned();
                dir.symlink(&name, &target)?;
                return dir.set_attrs_at(&name, &attrs, true);
            }
            if kind.is_hard_link() {
                let target = normal(&e.link_name()?.unwrap_or_default());
                let (tdir, tname) = split(&target);
                let from = parents.root.resolve(tdir)?;
                return dir.hard_link(&name, &from, tname);
            }
            if kind.is_fifo() {
                dir.mkfifo(&name)?;
                return dir.set_attrs_at(&name, &attrs, false);
            }
            // A regular file (and, as `tar` does, any other kind).
            let mut f = dir.create_file(&name)?;
            io::copy(&mut e, &mut f)?;
            beneath::set_attrs(&f, &attrs)
        })();
        written.map_err(ctx("extracting", &rel))?;
    }
    // Drain to the end so the decompressor reads (and hashes) everything.
    io::copy(&mut a.into_inner(), &mut io::sink()).map_err(corrupt)?;
    for (rel, attrs) in dirs.into_iter().rev() {
        let d = root.resolve(&rel).map_err(ctx("opening", &rel))?;
        beneath::set_attrs(&d, &attrs).map_err(ctx("owning", &rel))?;
    }
    Ok(entries)
}
