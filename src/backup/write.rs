//! Writing archives: a tar of a directory, of the engine's tar stream or
//! of a rewritten one, through zstd or gzip while hashing it, into a
//! private file; walks skip and count paths that vanish meanwhile.

use super::*;

/// A writer that hashes and counts what passes through.
pub(super) struct Hashing<W> {
    pub(super) inner: W,
    pub(super) hash: Sha256,
    pub(super) bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// What a written archive is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub size_bytes: u64,
    pub sha256: String,
    /// What its files hold (what restoring it writes).
    pub content_bytes: u64,
    /// What vanished while the volume was read.
    pub skipped: Skipped,
}

/// Where the entries of an archive come from.
pub enum TarSource<'a> {
    /// A directory on this host, read directly.
    Dir(&'a Path),
    /// A tar stream (the engine's archive API) whose entries sit under
    /// `strip/`; they are written relative to it, as `Dir` would write them.
    Stream {
        reader: Box<dyn Read + Send + 'a>,
        strip: &'a str,
    },
}

/// Writes a compressed tar of everything under `src` (entries named
/// relative to it, symlinks stored as links, owners, modes and times kept)
/// to `out`, created with mode 0600 and fsynced before returning.
pub fn write_archive(
    src: &Path,
    out: &Path,
    compression: Compression,
) -> Result<Written, ArchiveError> {
    write_archive_from(TarSource::Dir(src), out, compression)
}

/// [`write_archive`] from any [`TarSource`].
pub fn write_archive_from(
    src: TarSource<'_>,
    out: &Path,
    compression: Compression,
) -> Result<Written, ArchiveError> {
    let file = create_private(out)?;
    let hashing = Hashing {
        inner: BufWriter::with_capacity(1 << 20, file),
        hash: Sha256::new(),
        bytes: 0,
    };
    let (hashing, walked) = match compression {
        Compression::Zstd => {
            let mut enc =
                zstd::stream::write::Encoder::new(hashing, 3).map_err(io_err("starting zstd"))?;
            let workers = std::thread::available_parallelism()
                .map(|n| n.get() as u32)
                .unwrap_or(1);
            enc.multithread(workers).map_err(io_err("zstd threads"))?;
            enc.include_checksum(true)
                .map_err(io_err("zstd checksum"))?;
            let (enc, walked) = tar_source(src, enc)?;
            (enc.finish().map_err(io_err("finishing zstd"))?, walked)
        }
        Compression::Gzip => {
            let enc = flate2::write::GzEncoder::new(hashing, flate2::Compression::new(6));
            let (enc, walked) = tar_source(src, enc)?;
            (enc.finish().map_err(io_err("finishing gzip"))?, walked)
        }
    };
    let Hashing { inner, hash, bytes } = hashing;
    let file = inner.into_inner().map_err(|e| ArchiveError::Io {
        context: "flushing the archive".into(),
        source: e.into_error(),
    })?;
    file.sync_all().map_err(io_err("fsync of the archive"))?;
    Ok(Written {
        size_bytes: bytes,
        sha256: hex::encode(hash.finalize()),
        content_bytes: walked.content_bytes,
        skipped: walked.skipped,
    })
}

/// What writing a tar stream saw.
#[derive(Debug, Default)]
pub(super) struct Walked {
    pub(super) content_bytes: u64,
    pub(super) skipped: Skipped,
}

pub(super) fn tar_source<W: Write>(src: TarSource<'_>, w: W) -> Result<(W, Walked), ArchiveError> {
    match src {
        TarSource::Dir(dir) => tar_dir(dir, w),
        TarSource::Stream { reader, strip } => tar_rewrite(reader, strip, w),
    }
}

/// Copies a tar stream's entries, renamed from `strip/x` to `x` (the root
/// `strip/` itself becomes `./`); hard links are renamed the same way.
pub(super) fn tar_rewrite<W: Write>(
    input: impl Read,
    strip: &str,
    w: W,
) -> Result<(W, Walked), ArchiveError> {
    rename_entries(input, w, ReadRules::OWN, |path| {
        let rel = path.strip_prefix(strip).ok()?;
        Some(if rel.as_os_str().is_empty() {
            PathBuf::from("./")
        } else {
            rel.to_path_buf()
        })
    })
}

/// Writes an archive's tar stream with every entry moved under `prefix/`
/// (the root `./` becomes `prefix/`), for the engine to extract at `/`,
/// under `rules` and the entry checks of [`verify_archive`]; a hard link to
/// a symlink becomes a copy of the symlink (the engine cannot link one).
pub fn write_prefixed_tar<W: Write>(
    path: &Path,
    compression: Compression,
    prefix: &str,
    w: W,
    rules: ReadRules,
) -> Result<(W, Scanned), ArchiveError> {
    let (input, report) = Scanner::new(decoder(path, compression)?, rules.budget);
    let result = rename_entries(input, w, rules, |p| {
        let rel: PathBuf = p
            .components()
            .filter(|c| matches!(c, Component::Normal(_)))
            .collect();
        Some(Path::new(prefix).join(rel))
    });
    let (w, walked) = result.map_err(|e| ArchiveError::from_scan(&report, e))?;
    Ok((
        w,
        Scanned {
            entries: 0,
            content_bytes: walked.content_bytes,
        },
    ))
}

/// Copies a tar stream's entries (headers, data, links) under new names;
/// `rename` answering `None` is an entry that does not belong there. Every
/// entry is checked as [`verify_archive`] checks it.
pub(super) fn rename_entries<W: Write>(
    input: impl Read,
    w: W,
    rules: ReadRules,
    rename: impl Fn(&Path) -> Option<PathBuf>,
) -> Result<(W, Walked), ArchiveError> {
    rename_and_edit(input, w, rules, rename, |_| {})
}

/// A tar stream of the tree at `src` (walked by descriptor as a backup
/// walks a volume: symlinks stored as links, never followed) with every
/// entry under `prefix/` and owned by `owner` (uid, gid), set-id bits
/// cleared, for the engine to extract at `/` of a helper: a cloned
/// repository going into a project's volume. `src` itself becomes
/// `prefix/`.
pub fn tar_tree_as<W: Write>(
    src: &Path,
    prefix: &str,
    owner: (u64, u64),
    w: W,
) -> Result<W, ArchiveError> {
    let (reader, writer) = rustix::pipe::pipe()
        .map(|(r, w)| (std::fs::File::from(r), std::fs::File::from(w)))
        .map_err(|e| io_err("a pipe for the tar stream")(e.into()))?;
    let src = src.to_path_buf();
    let walker = std::thread::spawn(move || tar_dir(&src, writer).map(drop));
    let rules = ReadRules {
        budget: u64::MAX,
        strip_setid: true,
    };
    let prefix = Path::new(prefix);
    let result = rename_and_edit(
        reader,
        w,
        rules,
        |p| {
            let rel: PathBuf = p
                .components()
                .filter(|c| matches!(c, Component::Normal(_)))
                .collect();
            Some(prefix.join(rel))
        },
        |h| {
            h.set_uid(owner.0);
            h.set_gid(owner.1);
            let _ = h.set_username("");
            let _ = h.set_groupname("");
        },
    );
    let walked = walker
        .join()
        .map_err(|_| ArchiveError::Corrupt("the tree walk panicked".into()))?;
    let (w, _) = result?;
    walked?;
    Ok(w)
}

fn rename_and_edit<W: Write>(
    input: impl Read,
    w: W,
    rules: ReadRules,
    rename: impl Fn(&Path) -> Option<PathBuf>,
    edit: impl Fn(&mut tar::Header),
) -> Result<(W, Walked), ArchiveError> {
    let corrupt = |e: io::Error| ArchiveError::Corrupt(format!("reading the tar stream: {e}"));
    let mut b = tar::Builder::new(w);
    let mut a = tar::Archive::new(input);
    let mut guard = EntryGuard::default();
    let mut walked = Walked::default();
    for e in a.entries().map_err(corrupt)? {
        let mut e = e.map_err(corrupt)?;
        let checked = guard.check(&e)?;
        let path = e.path().map_err(corrupt)?.into_owned();
        let Some(rel) = rename(&path) else {
            return Err(ArchiveError::Corrupt(format!(
                "unexpected entry {}",
                path.display()
            )));
        };
        let mut h = e.header().clone();
        edit(&mut h);
        if rules.strip_setid {
            if let Ok(mode) = h.mode() {
                h.set_mode(mode & !0o6000);
            }
        }
        if let Some(target) = checked.link_to_symlink {
            h.set_entry_type(tar::EntryType::Symlink);
            b.append_link(&mut h, &rel, &target)
                .map_err(io_err(format!("archiving {}", rel.display())))?;
            continue;
        }
        let kind = h.entry_type();
        if kind.is_file() {
            walked.content_bytes += h.size().unwrap_or(0);
        }
        let written = match kind {
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let target = e
                    .link_name()
                    .map_err(corrupt)?
                    .unwrap_or_default()
                    .into_owned();
                // A hard link names another entry: renamed alike. A
                // symlink's target is data.
                let target = if kind == tar::EntryType::Link {
                    rename(&target).unwrap_or(target)
                } else {
                    target
                };
                b.append_link(&mut h, &rel, &target)
            }
            _ => b.append_data(&mut h, &rel, &mut e),
        };
        written.map_err(io_err(format!("archiving {}", rel.display())))?;
    }
    Ok((
        b.into_inner().map_err(io_err("finishing the tar stream"))?,
        walked,
    ))
}

/// The size `du -sb` would report for the tree in a tar stream: files and
/// symlinks by their length, hard links once, directories as 4096 bytes
/// (an ext4 directory's size until it holds many entries).
pub fn tar_stream_size(input: impl Read) -> Result<u64, ArchiveError> {
    let corrupt =
        |e: io::Error| ArchiveError::Corrupt(format!("reading the volume's tar stream: {e}"));
    let mut a = tar::Archive::new(input);
    let mut total = 0u64;
    for e in a.entries().map_err(corrupt)? {
        let e = e.map_err(corrupt)?;
        total += match e.header().entry_type() {
            tar::EntryType::Directory => 4096,
            tar::EntryType::Symlink => e
                .link_name_bytes()
                .map(|l| l.len() as u64)
                .unwrap_or_default(),
            tar::EntryType::Link => 0,
            _ => e.header().size().map_err(corrupt)?,
        };
    }
    Ok(total)
}

/// A digest of what a volume's tar stream holds: every entry's path, kind,
/// mode, owner, size, link target and content, in stream order, hashed
/// (times are left out: the engine sets the root directory's as it
/// unpacks). Two volumes with the same digest hold the same files. Returns
/// the digest and the number of entries.
pub fn tar_stream_digest(input: impl Read) -> Result<(String, u64), ArchiveError> {
    use sha2::{Digest, Sha256};
    let corrupt =
        |e: io::Error| ArchiveError::Corrupt(format!("reading the volume's tar stream: {e}"));
    let mut a = tar::Archive::new(input);
    let mut h = Sha256::new();
    let mut n = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    for e in a.entries().map_err(corrupt)? {
        let mut e = e.map_err(corrupt)?;
        n += 1;
        let head = e.header();
        let path = e.path_bytes().into_owned();
        let kind = head.entry_type().as_byte();
        let mode = head.mode().map_err(corrupt)?;
        let (uid, gid) = (head.uid().map_err(corrupt)?, head.gid().map_err(corrupt)?);
        let size = head.size().map_err(corrupt)?;
        let link = e
            .link_name_bytes()
            .map(|l| l.into_owned())
            .unwrap_or_default();
        h.update((path.len() as u64).to_le_bytes());
        h.update(&path);
        h.update([kind]);
        h.update(mode.to_le_bytes());
        h.update(uid.to_le_bytes());
        h.update(gid.to_le_bytes());
        h.update(size.to_le_bytes());
        h.update((link.len() as u64).to_le_bytes());
        h.update(&link);
        loop {
            let got = e.read(&mut buf).map_err(corrupt)?;
            if got == 0 {
                break;
            }
            h.update(&buf[..got]);
        }
    }
    Ok((hex::encode(h.finalize()), n))
}

/// A file's bytes as they were when its header was written: a file that
/// shrank meanwhile is padded with zeros, one that grew is cut, so the
/// archive stays well-formed (GNU tar does the same, with a warning).
pub(super) struct ExactLength<R> {
    pub(super) inner: R,
    pub(super) left: u64,
}

impl<R: Read> Read for ExactLength<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = match self.inner.read(&mut buf[..want])? {
            0 => {
                buf[..want].fill(0);
                want
            }
            n => n,
        };
        self.left -= n as u64;
        Ok(n)
    }
}

pub(super) fn create_private(path: &Path) -> Result<File, ArchiveError> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
        .map_err(io_err(format!("creating {}", path.display())))
}

/// The SHA-256 of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<String, ArchiveError> {
    let mut f = BufReader::with_capacity(
        1 << 20,
        File::open(path).map_err(io_err(format!("opening {}", path.display())))?,
    );
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io_err("reading the archive"))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}
