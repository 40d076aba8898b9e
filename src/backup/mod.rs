//! Volume archives on the host's filesystem: write a compressed tar of a
//! directory while hashing it, check one, and extract one safely. Blocking
//! code (run it in `spawn_blocking`): tar, zstd and flate2 are synchronous,
//! and every byte is streamed, never staged whole in memory.

pub mod scan;

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use crate::domain::backups::Compression;
use scan::{ScanReport, Scanner, Violation};

/// The most entries an archive may hold (what reading one remembers per
/// entry is bounded by this).
pub const MAX_ENTRIES: u64 = 4_000_000;

/// How many vanished paths a walk names (it counts them all).
const SAMPLE: usize = 5;

/// The rules an archive is read under, the same for verification and
/// extraction, so that what one accepts the other restores.
#[derive(Debug, Clone, Copy)]
pub struct ReadRules {
    /// The most the files may hold, in bytes.
    pub budget: u64,
    /// Clear set-user-id and set-group-id bits (archives Berth did not
    /// make, uploaded by a member).
    pub strip_setid: bool,
}

impl ReadRules {
    /// No budget, bits kept: for archives Berth made itself.
    pub const OWN: ReadRules = ReadRules {
        budget: u64::MAX,
        strip_setid: false,
    };
}

/// What reading an archive through found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scanned {
    pub entries: u64,
    /// The bytes its regular files hold (what extracting it writes).
    pub content_bytes: u64,
}

/// Paths that vanished while a volume was walked (a workspace was writing
/// to it): skipped, counted, the first few named.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Skipped {
    pub count: u64,
    pub sample: Vec<String>,
}

impl Skipped {
    fn add(&mut self, rel: &Path) {
        self.count += 1;
        if self.sample.len() < SAMPLE {
            self.sample.push(rel.display().to_string());
        }
    }
}

/// Why an archive could not be written, read or extracted.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The filesystem failed.
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
    /// The archive holds something that must not be extracted.
    #[error("archive refused: {0}")]
    Unsafe(String),
    /// The archive is damaged or not what its record says.
    #[error("archive is damaged: {0}")]
    Corrupt(String),
    /// The files hold more than allowed.
    #[error("the archive's files hold more than {budget} bytes")]
    TooLarge { budget: u64 },
}

impl ArchiveError {
    /// The error of a read that a scan stopped: what the scan saw says more
    /// than the I/O error the `tar` crate passed on.
    fn from_scan(report: &Arc<Mutex<ScanReport>>, e: ArchiveError) -> ArchiveError {
        match report.lock().expect("scan report").violation.clone() {
            Some(Violation::OverBudget { budget }) => ArchiveError::TooLarge { budget },
            // Garbage where a header belongs: damage, as the checksum says.
            Some(v @ Violation::BadHeader) => ArchiveError::Corrupt(v.to_string()),
            Some(v) => ArchiveError::Unsafe(v.to_string()),
            None => e,
        }
    }
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> ArchiveError {
    let context = context.into();
    move |source| ArchiveError::Io { context, source }
}

/// A writer that hashes and counts what passes through.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    bytes: u64,
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
struct Walked {
    content_bytes: u64,
    skipped: Skipped,
}

fn tar_source<W: Write>(src: TarSource<'_>, w: W) -> Result<(W, Walked), ArchiveError> {
    match src {
        TarSource::Dir(dir) => tar_dir(dir, w),
        TarSource::Stream { reader, strip } => tar_rewrite(reader, strip, w),
    }
}

/// Copies a tar stream's entries, renamed from `strip/x` to `x` (the root
/// `strip/` itself becomes `./`); hard links are renamed the same way.
fn tar_rewrite<W: Write>(input: impl Read, strip: &str, w: W) -> Result<(W, Walked), ArchiveError> {
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
fn rename_entries<W: Write>(
    input: impl Read,
    w: W,
    rules: ReadRules,
    rename: impl Fn(&Path) -> Option<PathBuf>,
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

/// Whether an I/O error means the path is gone (a workspace removed or
/// renamed it while the volume was read).
fn vanished(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
}

/// A file's bytes as they were when its header was written: a file that
/// shrank meanwhile is padded with zeros, one that grew is cut, so the
/// archive stays well-formed (GNU tar does the same, with a warning).
struct ExactLength<R> {
    inner: R,
    left: u64,
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

/// Writes everything under `src` as a tar stream (entries relative to it,
/// the root as `./`, symlinks as links, owners, modes and times kept). A
/// path that vanishes while it is walked — a running workspace deleting or
/// renaming files — is skipped and counted, as tar and restic do; any other
/// failure stops the walk with its reason.
fn tar_dir<W: Write>(src: &Path, w: W) -> Result<(W, Walked), ArchiveError> {
    let mut b = tar::Builder::new(w);
    b.follow_symlinks(false);
    b.mode(tar::HeaderMode::Complete);
    let mut walked = Walked::default();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let full = src.join(&rel);
        let shown = if rel.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            rel.clone()
        };
        let ctx = |what: &str| io_err(format!("{what} {}", shown.display()));
        let md = match std::fs::symlink_metadata(&full) {
            Ok(md) => md,
            Err(e) if vanished(&e) && !rel.as_os_str().is_empty() => {
                walked.skipped.add(&rel);
                continue;
            }
            Err(e) => return Err(ctx("reading")(e)),
        };
        let name = if rel.as_os_str().is_empty() {
            PathBuf::from("./")
        } else {
            rel.clone()
        };
        let mut h = tar::Header::new_gnu();
        h.set_metadata_in_mode(&md, tar::HeaderMode::Complete);
        let ft = md.file_type();
        if ft.is_dir() {
            h.set_size(0);
            b.append_data(&mut h, &name, io::empty())
                .map_err(ctx("archiving"))?;
            let listing = match std::fs::read_dir(&full) {
                Ok(l) => l,
                Err(e) if vanished(&e) => {
                    walked.skipped.add(&rel);
                    continue;
                }
                Err(e) => return Err(ctx("listing")(e)),
            };
            let mut children = Vec::new();
            for entry in listing {
                match entry {
                    Ok(e) => children.push(rel.join(e.file_name())),
                    Err(e) if vanished(&e) => {}
                    Err(e) => return Err(ctx("listing")(e)),
                }
            }
            // Sorted, then popped in order: a stable archive.
            children.sort();
            stack.extend(children.into_iter().rev());
        } else if ft.is_symlink() {
            let target = match std::fs::read_link(&full) {
                Ok(t) => t,
                Err(e) if vanished(&e) => {
                    walked.skipped.add(&rel);
                    continue;
                }
                Err(e) => return Err(ctx("reading")(e)),
            };
            h.set_size(0);
            b.append_link(&mut h, &name, &target)
                .map_err(ctx("archiving"))?;
        } else if ft.is_file() {
            let file = match File::open(&full) {
                Ok(f) => f,
                Err(e) if vanished(&e) => {
                    walked.skipped.add(&rel);
                    continue;
                }
                Err(e) => return Err(ctx("opening")(e)),
            };
            // The open file's own metadata: the size its data is read to.
            let md = file.metadata().map_err(ctx("reading"))?;
            h.set_metadata_in_mode(&md, tar::HeaderMode::Complete);
            walked.content_bytes += md.len();
            let data = ExactLength {
                inner: BufReader::with_capacity(256 * 1024, file),
                left: md.len(),
            };
            b.append_data(&mut h, &name, data)
                .map_err(ctx("archiving"))?;
        } else {
            use std::os::unix::fs::FileTypeExt;
            if ft.is_socket() {
                // A socket is a live endpoint, not data: nothing to keep.
                continue;
            }
            match b.append_path_with_name(&full, &name) {
                Ok(()) => {}
                Err(e) if vanished(&e) => walked.skipped.add(&rel),
                Err(e) => return Err(ctx("archiving")(e)),
            }
        }
    }
    Ok((
        b.into_inner().map_err(io_err("finishing the tar stream"))?,
        walked,
    ))
}

fn create_private(path: &Path) -> Result<File, ArchiveError> {
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

fn decoder(path: &Path, compression: Compression) -> Result<Box<dyn Read + Send>, ArchiveError> {
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
const ZSTD_WINDOW_LOG_MAX: u32 = 24;

fn zstd_reader<R: io::BufRead>(
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

fn path_key(p: &Path) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    p.hash(&mut h);
    h.finish()
}

/// What an entry needs besides the `tar` crate's own unpacking.
#[derive(Debug, Default)]
struct Checked {
    /// A hard link to an earlier symlink: made as a copy of that symlink
    /// (its target), since a link to a symlink cannot be unpacked inside a
    /// directory that must not be left.
    link_to_symlink: Option<PathBuf>,
}

/// Checks entries one by one as they stream past: each is safe on its own
/// ([`check_entry`]), none is written through a symlink an earlier entry
/// made, a hard link names an earlier file or symlink of the archive, and
/// there are at most [`MAX_ENTRIES`]. The one rule set of verification and
/// extraction (host and engine alike).
#[derive(Default)]
struct EntryGuard {
    /// Symlinks made so far, by path key, with their targets.
    symlinks: HashMap<u64, PathBuf>,
    /// Regular files (and hard links to them) made so far.
    files: HashSet<u64>,
    entries: u64,
}

impl EntryGuard {
    fn check<R: Read>(&mut self, e: &tar::Entry<'_, R>) -> Result<Checked, ArchiveError> {
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
fn normal(p: &Path) -> PathBuf {
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
struct HashingReader<R> {
    inner: R,
    hash: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

/// The reading end of the decompression thread's pipe.
struct ChannelReader {
    rx: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    buf: Vec<u8>,
    pos: usize,
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
fn decompress_into(
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
        unpack_checked(reader, dst, rules).map_err(|e| ArchiveError::from_scan(&report, e));
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

/// A hard link to a symlink, made as a copy of the symlink.
fn symlink_copy(dst: &Path, rel: &Path, target: &Path, h: &tar::Header) -> io::Result<()> {
    let at = dst.join(rel);
    match std::fs::symlink_metadata(&at) {
        Ok(md) if md.is_dir() => std::fs::remove_dir_all(&at)?,
        Ok(_) => std::fs::remove_file(&at)?,
        Err(_) => {}
    }
    std::os::unix::fs::symlink(target, &at)?;
    let (uid, gid) = (h.uid().unwrap_or(0) as u32, h.gid().unwrap_or(0) as u32);
    std::os::unix::fs::lchown(&at, Some(uid), Some(gid))?;
    let t = filetime::FileTime::from_unix_time(h.mtime().unwrap_or(0) as i64, 0);
    filetime::set_symlink_file_times(&at, t, t)
}

fn unpack_checked(
    reader: Scanner<ChannelReader>,
    dst: &Path,
    rules: ReadRules,
) -> Result<u64, ArchiveError> {
    let mut a = tar::Archive::new(reader);
    a.set_preserve_permissions(true);
    a.set_preserve_ownerships(true);
    a.set_preserve_mtime(true);
    a.set_unpack_xattrs(false);
    a.set_overwrite(true);
    if rules.strip_setid {
        a.set_mask(0o6000);
    }
    let mut guard = EntryGuard::default();
    let mut dirs = Vec::new();
    let mut entries = 0u64;
    for e in a
        .entries()
        .map_err(|e| ArchiveError::Corrupt(e.to_string()))?
    {
        let mut e = e.map_err(|e| ArchiveError::Corrupt(e.to_string()))?;
        let checked = guard.check(&e)?;
        entries += 1;
        if let Some(target) = checked.link_to_symlink {
            let rel = normal(&e.path().map_err(|x| ArchiveError::Corrupt(x.to_string()))?);
            symlink_copy(dst, &rel, &target, e.header())
                .map_err(io_err(format!("extracting {}", rel.display())))?;
            continue;
        }
        if e.header().entry_type() == tar::EntryType::Directory {
            // Directory times are set after their contents are written.
            dirs.push((
                e.path()
                    .map_err(|x| ArchiveError::Corrupt(x.to_string()))?
                    .into_owned(),
                e.header().mtime().unwrap_or(0),
            ));
        }
        let ok = e.unpack_in(dst).map_err(io_err("extracting the archive"))?;
        if !ok {
            return Err(ArchiveError::Unsafe(
                "an entry would land outside the volume".into(),
            ));
        }
    }
    // Drain to the end so the decompressor reads (and hashes) everything.
    io::copy(&mut a.into_inner(), &mut io::sink())
        .map_err(|e| ArchiveError::Corrupt(e.to_string()))?;
    for (p, mtime) in dirs.into_iter().rev() {
        let full: PathBuf = dst.join(&p);
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime);
        if let Ok(f) = File::open(&full) {
            let _ = f.set_modified(t);
        }
    }
    Ok(entries)
}

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
    while let Some(p) = stack.pop() {
        let md =
            std::fs::symlink_metadata(&p).map_err(io_err(format!("reading {}", p.display())))?;
        #[cfg(unix)]
        {
            if md.nlink() > 1 && !md.is_dir() && !seen.insert((md.dev(), md.ino())) {
                continue;
            }
        }
        total += md.len();
        if md.is_dir() {
            for e in std::fs::read_dir(&p).map_err(io_err(format!("listing {}", p.display())))? {
                stack.push(e.map_err(io_err("listing"))?.path());
            }
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tar::EntryType as T;

    fn p(s: &str) -> &Path {
        Path::new(s)
    }

    #[test]
    fn entry_paths_must_stay_relative_and_inside() {
        check_entry(p("a/b.txt"), T::Regular, None).unwrap();
        check_entry(p("./a"), T::Directory, None).unwrap();
        assert!(check_entry(p("../escape"), T::Regular, None).is_err());
        assert!(check_entry(p("a/../../x"), T::Regular, None).is_err());
        assert!(check_entry(p("/etc/passwd"), T::Regular, None).is_err());
        assert!(check_entry(p("dev/sda"), T::Block, None).is_err());
        assert!(check_entry(p("dev/tty"), T::Char, None).is_err());
        check_entry(p("fifo"), T::Fifo, None).unwrap();
    }

    #[test]
    fn hard_links_must_stay_inside_symlinks_are_data() {
        check_entry(p("a/link"), T::Symlink, Some(p("../b"))).unwrap();
        check_entry(
            p("misc/magic.mgc"),
            T::Symlink,
            Some(p("../../lib/file/magic.mgc")),
        )
        .unwrap();
        check_entry(p("bin/python"), T::Symlink, Some(p("/usr/bin/python3"))).unwrap();
        assert!(check_entry(p("hard"), T::Link, Some(p("../x"))).is_err());
        assert!(check_entry(p("hard"), T::Link, Some(p("/etc/shadow"))).is_err());
        check_entry(p("hard"), T::Link, Some(p("a/b.txt"))).unwrap();
    }

    #[test]
    fn round_trip_keeps_content_modes_links_and_times() {
        #[cfg(unix)]
        use std::os::unix::fs::PermissionsExt;
        let src = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(src.path().join("d/e")).unwrap();
        std::fs::write(src.path().join("d/e/f.txt"), b"hello").unwrap();
        std::fs::set_permissions(
            src.path().join("d/e/f.txt"),
            std::fs::Permissions::from_mode(0o751),
        )
        .unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink("e/f.txt", src.path().join("d/link")).unwrap();
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
        File::options()
            .write(true)
            .open(src.path().join("d/e/f.txt"))
            .unwrap()
            .set_modified(t)
            .unwrap();
        let out = tempfile::tempdir().unwrap();
        for c in [Compression::Zstd, Compression::Gzip] {
            let file = out.path().join(format!("a.{}", c.as_str()));
            let w = write_archive(src.path(), &file, c).unwrap();
            assert_eq!(w.sha256, sha256_file(&file).unwrap());
            assert_eq!(w.size_bytes, std::fs::metadata(&file).unwrap().len());
            let dst = tempfile::tempdir().unwrap();
            extract_archive(&file, c, None, dst.path(), ReadRules::OWN).unwrap();
            assert_eq!(
                std::fs::read(dst.path().join("d/e/f.txt")).unwrap(),
                b"hello"
            );
            let md = std::fs::metadata(dst.path().join("d/e/f.txt")).unwrap();
            assert_eq!(md.permissions().mode() & 0o777, 0o751);
            assert_eq!(md.modified().unwrap(), t);
            assert_eq!(
                std::fs::read_link(dst.path().join("d/link")).unwrap(),
                Path::new("e/f.txt")
            );
            assert_eq!(dir_size(dst.path()).unwrap(), dir_size(src.path()).unwrap());
        }
    }

    #[test]
    fn extraction_checks_the_checksum_in_its_single_pass() {
        let src = tempfile::tempdir().unwrap();
        std::fs::write(src.path().join("x"), vec![7u8; 300_000]).unwrap();
        std::fs::write(src.path().join("y"), b"hello").unwrap();
        let out = tempfile::tempdir().unwrap();
        for c in [Compression::Zstd, Compression::Gzip] {
            let file = out.path().join(format!("a-{c:?}.tar"));
            let written = write_archive(src.path(), &file, c).unwrap();
            let good = std::fs::read(&file).unwrap();
            let want = sha256_file(&file).unwrap();
            assert_eq!(want, written.sha256);
            let dst = tempfile::tempdir().unwrap();
            extract_archive(&file, c, Some(&want), dst.path(), ReadRules::OWN).unwrap();
            assert_eq!(std::fs::read(dst.path().join("y")).unwrap(), b"hello");
            // Any flipped byte, header included, is refused as damage.
            for i in (0..good.len()).step_by(3) {
                let mut bad = good.clone();
                bad[i] ^= 0xff;
                std::fs::write(&file, &bad).unwrap();
                let dst = tempfile::tempdir().unwrap();
                let e =
                    extract_archive(&file, c, Some(&want), dst.path(), ReadRules::OWN).unwrap_err();
                assert!(
                    matches!(e, ArchiveError::Corrupt(_)),
                    "{c:?} flip at {i}: {e}"
                );
            }
            // Bytes appended after the stream change the checksum too.
            let mut longer = good.clone();
            longer.extend_from_slice(b"trailing");
            std::fs::write(&file, &longer).unwrap();
            let dst = tempfile::tempdir().unwrap();
            assert!(extract_archive(&file, c, Some(&want), dst.path(), ReadRules::OWN).is_err());
        }
    }

    /// Everything `cp -a` would keep, but extended attributes.
    fn tree_manifest(root: &Path) -> Vec<String> {
        use std::os::unix::fs::MetadataExt;
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(p) = stack.pop() {
            let md = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let what = if md.file_type().is_symlink() {
                format!("-> {}", std::fs::read_link(&p).unwrap().display())
            } else if md.is_dir() {
                for e in std::fs::read_dir(&p).unwrap() {
                    stack.push(e.unwrap().path());
                }
                "dir".into()
            } else {
                format!(
                    "{:?} links={}",
                    std::fs::read(&p).unwrap().len(),
                    md.nlink()
                )
            };
            out.push(format!(
                "{rel} {what} mode={:o} uid={} gid={} mtime={}",
                md.mode(),
                md.uid(),
                md.gid(),
                md.mtime()
            ));
        }
        out.sort();
        out
    }

    #[test]
    fn copy_tree_keeps_what_cp_a_keeps() {
        use std::os::unix::fs::PermissionsExt;
        let src = tempfile::tempdir().unwrap();
        let s = src.path();
        std::fs::create_dir_all(s.join("a/b/c")).unwrap();
        std::fs::write(s.join("a/file"), b"hello").unwrap();
        std::fs::write(s.join("a/b/c/big"), vec![9u8; 3_000_000]).unwrap();
        std::fs::write(s.join("empty"), b"").unwrap();
        std::fs::hard_link(s.join("a/file"), s.join("a/b/hard")).unwrap();
        std::os::unix::fs::symlink("../file", s.join("a/b/rel-link")).unwrap();
        std::os::unix::fs::symlink("/nowhere/at/all", s.join("dangling")).unwrap();
        std::fs::set_permissions(s.join("a/file"), std::fs::Permissions::from_mode(0o4750))
            .unwrap();
        std::fs::set_permissions(s.join("a/b"), std::fs::Permissions::from_mode(0o701)).unwrap();
        for i in 0..200 {
            std::fs::write(s.join(format!("a/b/c/f{i}")), format!("{i}")).unwrap();
        }
        // Owners other than ours, when we may set them (root in CI).
        let _ = std::os::unix::fs::lchown(s.join("empty"), Some(1234), Some(4321));
        let _ = std::os::unix::fs::lchown(s.join("dangling"), Some(1000), Some(1000));
        let old = filetime::FileTime::from_unix_time(1_000_000_000, 0);
        filetime::set_file_times(s.join("a/b/c"), old, old).unwrap();
        filetime::set_symlink_file_times(s.join("dangling"), old, old).unwrap();
        filetime::set_file_times(s.join("a/b/c/big"), old, old).unwrap();

        let dst = tempfile::tempdir().unwrap();
        let n = copy_tree(s, dst.path(), 3).unwrap().unwrap();
        assert_eq!(
            n.files,
            1 + 1 + 1 + 200,
            "regular files; the hard link is linked, not copied"
        );
        let (mut want, mut got) = (tree_manifest(s), tree_manifest(dst.path()));
        // The roots' own times are the temp dirs'.
        want.retain(|l| !l.starts_with(" dir"));
        got.retain(|l| !l.starts_with(" dir"));
        assert_eq!(got, want);

        let fifo = tempfile::tempdir().unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(fifo.path().join("pipe"))
            .status()
            .unwrap();
        assert!(made.success());
        let out = tempfile::tempdir().unwrap();
        assert!(copy_tree(fifo.path(), out.path(), 2).unwrap().is_err());
    }

    #[test]
    fn a_flipped_byte_is_damage() {
        let src = tempfile::tempdir().unwrap();
        std::fs::write(src.path().join("x"), vec![7u8; 100_000]).unwrap();
        let out = tempfile::tempdir().unwrap();
        let file = out.path().join("a.tar.gz");
        write_archive(src.path(), &file, Compression::Gzip).unwrap();
        let good = std::fs::read(&file).unwrap();
        // Past the 10-byte gzip header, every single flipped byte is caught
        // (by inflate, the tar checks, or the trailing CRC and length).
        for i in 10..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0xff;
            std::fs::write(&file, &bad).unwrap();
            assert!(
                verify_archive(&file, Compression::Gzip, ReadRules::OWN).is_err(),
                "flip at {i} of {}",
                good.len()
            );
        }
    }

    #[test]
    fn nothing_is_written_through_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("evil.tar.gz");
        let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
            File::create(&file).unwrap(),
            flate2::Compression::fast(),
        ));
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        b.append_link(&mut h, "d", "/etc").unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "d/passwd", &b"bad"[..]).unwrap();
        b.into_inner().unwrap().finish().unwrap();
        let e = verify_archive(&file, Compression::Gzip, ReadRules::OWN).unwrap_err();
        assert!(e.to_string().contains("through the symlink d"), "{e}");
        let dst = tempfile::tempdir().unwrap();
        assert!(
            extract_archive(&file, Compression::Gzip, None, dst.path(), ReadRules::OWN).is_err()
        );
    }

    #[test]
    fn archives_are_private_files() {
        #[cfg(unix)]
        use std::os::unix::fs::PermissionsExt;
        let src = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        let file = out.path().join("a.tar.zst");
        write_archive(src.path(), &file, Compression::Zstd).unwrap();
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(
            write_archive(src.path(), &file, Compression::Zstd).is_err(),
            "never overwrites"
        );
    }
}
