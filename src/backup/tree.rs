//! Copying a tree in parallel (clones) and measuring one (`du -sb`).

use super::*;

/// What [`copy_tree`] cannot copy itself (the caller falls back to `cp -a`).
#[derive(Debug)]
pub struct Unsupported(pub PathBuf);

/// What [`copy_tree`] copied.
#[derive(Debug, Default)]
pub struct Copied {
    pub files: u64,
    /// Paths that vanished while they were copied.
    pub skipped: Skipped,
}

/// Copies everything under `src` into the existing directory `dst`, as
/// `cp -a src/. dst/` does minus extended attributes: contents, owners,
/// modes, times, symlinks as links, hard links as links. Regular files are
/// copied by `workers` threads (in-kernel `copy_file_range` through
/// `std::fs::copy`); directories get their modes and times last, deepest
/// first. A path that vanishes while it is copied (a workspace writing to
/// the volume) is skipped and counted. A FIFO, socket or device file is
/// [`Unsupported`] and nothing is promised about `dst` then (the caller
/// starts over another way). Errors name paths relative to `src`.
pub fn copy_tree(
    src: &Path,
    dst: &Path,
    workers: usize,
) -> Result<Result<Copied, Unsupported>, ArchiveError> {
    use std::os::unix::fs::{lchown, MetadataExt, PermissionsExt};
    let rel_err = |what: &'static str, rel: &Path| {
        let shown = if rel.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            rel.to_path_buf()
        };
        io_err(format!("{what} {}", shown.display()))
    };
    let mut skipped = Skipped::default();
    let mut dirs: Vec<(PathBuf, std::fs::Metadata)> = Vec::new();
    let mut files: Vec<(PathBuf, std::fs::Metadata)> = Vec::new();
    let mut links: Vec<(PathBuf, PathBuf)> = Vec::new();
    let mut first_of: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let from = src.join(&rel);
        let to = dst.join(&rel);
        let md = match std::fs::symlink_metadata(&from) {
            Ok(md) => md,
            Err(e) if vanished(&e) && !rel.as_os_str().is_empty() => {
                skipped.add(&rel);
                continue;
            }
            Err(e) => return Err(rel_err("reading", &rel)(e)),
        };
        let ft = md.file_type();
        if ft.is_dir() {
            let listing = match std::fs::read_dir(&from) {
                Ok(l) => l,
                Err(e) if vanished(&e) && !rel.as_os_str().is_empty() => {
                    skipped.add(&rel);
                    continue;
                }
                Err(e) => return Err(rel_err("listing", &rel)(e)),
            };
            if !rel.as_os_str().is_empty() {
                std::fs::create_dir(&to).map_err(rel_err("creating", &rel))?;
            }
            for e in listing {
                match e {
                    Ok(e) => stack.push(rel.join(e.file_name())),
                    Err(e) if vanished(&e) => {}
                    Err(e) => return Err(rel_err("listing", &rel)(e)),
                }
            }
            dirs.push((rel, md));
        } else if ft.is_symlink() {
            let target = match std::fs::read_link(&from) {
                Ok(t) => t,
                Err(e) if vanished(&e) => {
                    skipped.add(&rel);
                    continue;
                }
                Err(e) => return Err(rel_err("reading", &rel)(e)),
            };
            std::os::unix::fs::symlink(&target, &to).map_err(rel_err("creating", &rel))?;
            lchown(&to, Some(md.uid()), Some(md.gid())).map_err(rel_err("owning", &rel))?;
            let t = filetime::FileTime::from_last_modification_time(&md);
            let a = filetime::FileTime::from_last_access_time(&md);
            filetime::set_symlink_file_times(&to, a, t).map_err(rel_err("timing", &rel))?;
        } else if ft.is_file() {
            if md.nlink() > 1 {
                if let Some(first) = first_of.get(&(md.dev(), md.ino())) {
                    links.push((first.clone(), rel));
                    continue;
                }
                first_of.insert((md.dev(), md.ino()), rel.clone());
            }
            files.push((rel, md));
        } else {
            return Ok(Err(Unsupported(from)));
        }
    }
    // Files in parallel: each worker takes the next file by index.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failure: Mutex<Option<ArchiveError>> = Mutex::new(None);
    let gone: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..workers.max(1) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((rel, md)) = files.get(i) else {
                    return;
                };
                if failure.lock().expect("poisoned").is_some() {
                    return;
                }
                let (from, to) = (src.join(rel), dst.join(rel));
                if let Err(e) = std::fs::copy(&from, &to) {
                    if vanished(&e) {
                        let _ = std::fs::remove_file(&to);
                        gone.lock().expect("poisoned").push(rel.clone());
                        continue;
                    }
                    *failure.lock().expect("poisoned") = Some(rel_err("copying", rel)(e));
                    return;
                }
                let done = (|| -> io::Result<()> {
                    lchown(&to, Some(md.uid()), Some(md.gid()))?;
                    // After chown, which clears set-id bits.
                    std::fs::set_permissions(
                        &to,
                        std::fs::Permissions::from_mode(md.mode() & 0o7777),
                    )?;
                    filetime::set_file_times(
                        &to,
                        filetime::FileTime::from_last_access_time(md),
                        filetime::FileTime::from_last_modification_time(md),
                    )
                })();
                if let Err(e) = done {
                    *failure.lock().expect("poisoned") = Some(rel_err("copying", rel)(e));
                    return;
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().expect("poisoned") {
        return Err(e);
    }
    let gone = gone.into_inner().expect("poisoned");
    for rel in &gone {
        skipped.add(rel);
    }
    for (first, rel) in links {
        let to = dst.join(&rel);
        if gone.contains(&first) {
            skipped.add(&rel);
            continue;
        }
        std::fs::hard_link(dst.join(&first), &to).map_err(rel_err("linking", &rel))?;
    }
    // Deepest first, so setting a directory's time is not undone by
    // creating something inside it.
    for (rel, md) in dirs.into_iter().rev() {
        let to = dst.join(&rel);
        lchown(&to, Some(md.uid()), Some(md.gid())).map_err(rel_err("owning", &rel))?;
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(md.mode() & 0o7777))
            .map_err(rel_err("chmod", &rel))?;
        filetime::set_file_times(
            &to,
            filetime::FileTime::from_last_access_time(&md),
            filetime::FileTime::from_last_modification_time(&md),
        )
        .map_err(rel_err("timing", &rel))?;
    }
    Ok(Ok(Copied {
        files: (files.len() - gone.len()) as u64,
        skipped,
    }))
}

/// Apparent size of everything under `root`, as `du -sb` counts it: files,
/// directories and symlinks by their length, hard links once.
pub fn dir_size(root: &Path) -> Result<u64, ArchiveError> {
    use std::collections::HashSet;
    #[cfg(unix)]
    use std::os::unix::fs::MetadataExt;
    let mut seen: HashSet<(u64, u64)> = HashSet::new();
    let mut total = 0u64;
    let mut stack = vec![root.to_path_buf()];
    // A volume in use changes while it is measured: what vanished
    // meanwhile is not counted (as `du` does), anything else is an error.
    let gone = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
    while let Some(p) = stack.pop() {
        let md = match std::fs::symlink_metadata(&p) {
            Ok(md) => md,
            Err(e) if gone(&e) && p != root => continue,
            Err(e) => return Err(io_err(format!("reading {}", p.display()))(e)),
        };
        #[cfg(unix)]
        {
            if md.nlink() > 1 && !md.is_dir() && !seen.insert((md.dev(), md.ino())) {
                continue;
            }
        }
        total += md.len();
        if md.is_dir() {
            let list = match std::fs::read_dir(&p) {
                Ok(l) => l,
                Err(e) if gone(&e) && p != root => continue,
                Err(e) => return Err(io_err(format!("listing {}", p.display()))(e)),
            };
            for e in list {
                match e {
                    Ok(e) => stack.push(e.path()),
                    Err(e) if gone(&e) => {}
                    Err(e) => return Err(io_err("listing")(e)),
                }
            }
        }
    }
    Ok(total)
}
