//! Reading archives: verification and extraction under one rule set
//! (`ReadRules`, the block `Scanner`, `EntryGuard`), decompression on its
//! own thread, the checksum compared at the end.

use super::*;

pub(super) fn decoder(
    path: &Path,
    compression: Compression,
) -> Result<Box<dyn Read + Send>, ArchiveError> {
    let f = BufReader::with_capacity(
        1 << 20,
        File::open(path).map_err(io_err(format!("opening {}", path.display())))?,
    );
    Ok(match compression {
        Compression::Zstd => Box::new(zstd_reader(f)?),
        Compression::Gzip => Box::new(flate2::read::GzDecoder::new(f)),
    })
}

/// The largest zstd window accepted (2^24 = 16 MiB of decoder memory):
/// Berth writes 8 MiB windows; a frame asking for 2 GiB is refused rather
/// than allocated.
pub(super) const ZSTD_WINDOW_LOG_MAX: u32 = 24;

pub(super) fn zstd_reader<R: io::BufRead>(
    r: R,
) -> Result<zstd::stream::read::Decoder<'static, R>, ArchiveError> {
    let mut d = zstd::stream::read::Decoder::with_buffer(r).map_err(io_err("starting zstd"))?;
    d.window_log_max(ZSTD_WINDOW_LOG_MAX)
        .map_err(io_err("bounding the zstd window"))?;
    Ok(d)
}

/// Checks that an entry may be extracted under a root: a relative path
/// without `..`, no device files, and hard links to entries inside.
pub fn check_entry(
    path: &Path,
    kind: tar::EntryType,
    link: Option<&Path>,
) -> Result<(), ArchiveError> {
    let shown = path.display();
    for c in path.components() {
        match c {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => {
                return Err(ArchiveError::Unsafe(format!("{shown}: path contains ..")))
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(ArchiveError::Unsafe(format!("{shown}: absolute path")))
            }
        }
    }
    if matches!(kind, tar::EntryType::Char | tar::EntryType::Block) {
        return Err(ArchiveError::Unsafe(format!("{shown}: device file")));
    }
    // A symlink is data: its target is resolved inside the workspace
    // container, never on the host, so where it points is not checked here
    // (a volume may well hold `../../lib/x` links, and its own backup must
    // restore). What must never happen is writing *through* a symlink:
    // `verify_archive` refuses any entry whose path passes through a symlink
    // the archive made. A hard link, though, names another entry of the
    // archive and must stay inside.
    if let (Some(target), tar::EntryType::Link) = (link, kind) {
        check_entry(target, tar::EntryType::Regular, None)?;
    }
    Ok(())
}

pub(super) fn path_key(p: &Path) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    p.hash(&mut h);
    h.finish()
}

/// What an entry needs besides the `tar` crate's own unpacking.
#[derive(Debug, Default)]
pub(super) struct Checked {
    /// A hard link to an earlier symlink: made as a copy of that symlink
    /// (its target), since a link to a symlink cannot be unpacked inside a
    /// directory that must not be left.
    pub(super) link_to_symlink: Option<PathBuf>,
}

/// Checks entries one by one as they stream past: each is safe on its own
/// ([`check_entry`]), none is written through a symlink an earlier entry
/// made, a hard link names an earlier file or symlink of the archive, and
/// there are at most [`MAX_ENTRIES`]. The one rule set of verification and
/// extraction (host and engine alike).
#[derive(Default)]
pub(super) struct EntryGuard {
    /// Symlinks made so far, by path key, with their targets.
    pub(super) symlinks: HashMap<u64, PathBuf>,
    /// Regular files (and hard links to them) made so far.
    pub(super) files: HashSet<u64>,
    pub(super) entries: u64,
}

impl EntryGuard {
    pub(super) fn check<R: Read>(
        &mut self,
        e: &tar::Entry<'_, R>,
    ) -> Result<Checked, ArchiveError> {
        self.entries += 1;
        if self.entries > MAX_ENTRIES {
            return Err(ArchiveError::Unsafe(format!(
                "more than {MAX_ENTRIES} entries"
            )));
        }
        let p = e
            .path()
            .map_err(|e| ArchiveError::Corrupt(e.to_string()))?
            .into_owned();
        let link = e
            .link_name()
            .map_err(|e| ArchiveError::Corrupt(e.to_string()))?
            .map(|l| l.into_owned());
        let kind = e.header().entry_type();
        check_entry(&p, kind, link.as_deref())?;
        let norm = normal(&p);
        if let Some(through) = norm
            .ancestors()
            .skip(1)
            .find(|a| self.symlinks.contains_key(&path_key(a)))
        {
            return Err(ArchiveError::Unsafe(format!(
                "{} would be written through the symlink {}",
                p.display(),
                through.display()
            )));
        }
        let key = path_key(&norm);
        // A later entry replaces an earlier one at the same path.
        self.symlinks.remove(&key);
        self.files.remove(&key);
        let mut checked = Checked::default();
        match kind {
            tar::EntryType::Symlink => {
                self.symlinks.insert(key, link.unwrap_or_default());
            }
            tar::EntryType::Link => {
                let target = normal(link.as_deref().unwrap_or(Path::new("")));
                let tkey = path_key(&target);
                if let Some(to) = self.symlinks.get(&tkey) {
                    checked.link_to_symlink = Some(to.clone());
                    self.symlinks.insert(key, to.clone());
                } else if self.files.contains(&tkey) {
                    self.files.insert(key);
                } else {
                    return Err(ArchiveError::Unsafe(format!(
                        "{}: a hard link to {}, which is not an earlier file of the archive",
                        p.display(),
                        target.display()
                    )));
                }
            }
            k if k.is_file() || k == tar::EntryType::Continuous => {
                self.files.insert(key);
            }
            _ => {}
        }
        Ok(checked)
    }
}

/// A path's normal components (no `.`).
pub(super) fn normal(p: &Path) -> PathBuf {
    p.components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect()
}

/// Reads the whole archive through, checking every entry under `rules`:
/// the archive is readable and would extract safely (the same checks as
/// [`extract_archive`], so what this accepts, extraction restores).
pub fn verify_archive(
    path: &Path,
    compression: Compression,
    rules: ReadRules,
) -> Result<Scanned, ArchiveError> {
    let (input, report) = Scanner::new(decoder(path, compression)?, rules.budget);
    let read = (|| {
        let mut a = tar::Archive::new(input);
        let mut guard = EntryGuard::default();
        let mut entries = 0u64;
        for e in a
            .entries()
            .map_err(|e| ArchiveError::Corrupt(e.to_string()))?
        {
            let mut e = e.map_err(|e| ArchiveError::Corrupt(e.to_string()))?;
            guard.check(&e)?;
            io::copy(&mut e, &mut io::sink()).map_err(|e| ArchiveError::Corrupt(e.to_string()))?;
            entries += 1;
        }
        // Read past the tar end to the end of the compressed stream, so the
        // gzip CRC and zstd checksum are checked too.
        io::copy(&mut a.into_inner().into_inner(), &mut io::sink())
            .map_err(|e| ArchiveError::Corrupt(e.to_string()))?;
        Ok(entries)
    })();
    let entries = read.map_err(|e| ArchiveError::from_scan(&report, e))?;
    let content_bytes = report.lock().expect("scan report").content_bytes;
    Ok(Scanned {
        entries,
        content_bytes,
    })
}

/// A reader that hashes what passes through it.
pub(super) struct HashingReader<R> {
    pub(super) inner: R,
    pub(super) hash: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

/// The reading end of the decompression thread's pipe.
pub(super) struct ChannelReader {
    pub(super) rx: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    pub(super) buf: Vec<u8>,
    pub(super) pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.buf = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                // The sender is done: end of the stream.
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Decompresses `path` into `tx` in 256 KiB chunks while hashing the
/// compressed bytes; returns the file's SHA-256 (read to its very end).
pub(super) fn decompress_into(
    path: &Path,
    compression: Compression,
    tx: std::sync::mpsc::SyncSender<io::Result<Vec<u8>>>,
) -> Result<String, ArchiveError> {
    let file = File::open(path).map_err(io_err(format!("opening {}", path.display())))?;
    let hashing = BufReader::with_capacity(
        1 << 20,
        HashingReader {
            inner: file,
            hash: Sha256::new(),
        },
    );
    fn pump(r: &mut dyn Read, tx: &std::sync::mpsc::SyncSender<io::Result<Vec<u8>>>) -> bool {
        loop {
            let mut chunk = vec![0u8; 256 * 1024];
            match r.read(&mut chunk) {
                Ok(0) => return true,
                Ok(n) => {
                    chunk.truncate(n);
                    if tx.send(Ok(chunk)).is_err() {
                        return false;
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return false;
                }
            }
        }
    }
    let mut rest = match compression {
        Compression::Zstd => {
            let mut d = zstd_reader(hashing)?;
            if !pump(&mut d, &tx) {
                return Err(ArchiveError::Corrupt("decompression stopped".into()));
            }
            d.finish()
        }
        Compression::Gzip => {
            let mut d = flate2::bufread::GzDecoder::new(hashing);
            if !pump(&mut d, &tx) {
                return Err(ArchiveError::Corrupt("decompression stopped".into()));
            }
            d.into_inner()
        }
    };
    drop(tx);
    // Whatever follows the compressed stream counts for the checksum too.
    io::copy(&mut rest, &mut io::sink()).map_err(io_err("reading the archive"))?;
    Ok(hex::encode(rest.into_inner().hash.finalize()))
}

/// Extracts an archive into `dst` (an empty directory nobody else uses),
/// keeping owners, modes and times, in one pass: a thread decompresses while
/// this one writes (as `zstd -d | tar x` overlaps), each entry is checked
/// before it is written, and the file's SHA-256 is computed on the way and
/// compared with `sha256` at the end. On any error — an unsafe entry, a
/// damaged stream, a checksum that differs — the caller discards `dst`;
/// nothing else was touched.
pub fn extract_archive(
    path: &Path,
    compression: Compression,
    sha256: Option<&str>,
    dst: &Path,
    rules: ReadRules,
) -> Result<Scanned, ArchiveError> {
    let (tx, rx) = std::sync::mpsc::sync_channel(16);
    let src = path.to_path_buf();
    let decompressor = std::thread::spawn(move || decompress_into(&src, compression, tx));
    let reader = ChannelReader {
        rx,
        buf: Vec::new(),
        pos: 0,
    };
    let (reader, report) = Scanner::new(reader, rules.budget);
    let extracted =
        unpack_into(reader, dst, rules).map_err(|e| ArchiveError::from_scan(&report, e));
    // Dropping the reader (inside unpack_checked) stops the thread early on
    // failure; on success it has drained the stream.
    let hashed = decompressor
        .join()
        .map_err(|_| ArchiveError::Corrupt("the decompression thread panicked".into()))?;
    let (got, entries) = match (extracted, hashed) {
        (Ok(entries), Ok(got)) => (got, entries),
        // Damage shows as a decoding error or as a tar error mid-way; say
        // "damaged" when the checksum says so, whatever failed first.
        (Err(e), _) | (Ok(_), Err(e)) => {
            if let Some(want) = sha256 {
                if matches!(e, ArchiveError::Io { .. } | ArchiveError::Corrupt(_))
                    && sha256_file(path).is_ok_and(|got| got != want)
                {
                    return Err(ArchiveError::Corrupt(format!(
                        "checksum mismatch (recorded {want}): {e}"
                    )));
                }
            }
            return Err(e);
        }
    };
    match sha256 {
        Some(want) if want != got => Err(ArchiveError::Corrupt(format!(
            "checksum mismatch (recorded {want}, file has {got})"
        ))),
        _ => Ok(Scanned {
            entries,
            content_bytes: report.lock().expect("scan report").content_bytes,
        }),
    }
}
