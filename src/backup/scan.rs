//! The byte-level rules every archive read obeys, whatever reads it
//! (upload verification, verify, restore on the host or through the
//! engine): a reader that sits under the `tar` crate, follows the stream's
//! 512-byte blocks, and stops it
//!
//! - at an extension header (GNU long name or link, PAX) larger than
//!   [`MAX_EXTENSION`] — the `tar` crate would buffer it whole, so a tiny
//!   archive declaring a 256 MiB name would cost 256 MiB of memory;
//! - at a GNU sparse file (Berth never writes them; their real size is
//!   stated apart from the data);
//! - once the files' contents pass the budget (what the catalogue says the
//!   archive unpacks to, or the configured limit).
//!
//! It also counts what the files hold, which the catalogue records.

use std::io::{self, Read};
use std::sync::{Arc, Mutex};

/// The largest extension header read (a path or PAX record set).
pub const MAX_EXTENSION: u64 = 64 * 1024;

const BLOCK: usize = 512;

/// Why a scan stopped a stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    #[error("a {kind} header of {size} bytes (at most {MAX_EXTENSION} are read)")]
    ExtensionTooLarge { kind: &'static str, size: u64 },
    #[error("a GNU sparse file ({0}): sparse archives are not accepted")]
    Sparse(String),
    #[error("the files hold more than {budget} bytes")]
    OverBudget { budget: u64 },
    #[error("a header that is not a tar header (its checksum or size is wrong)")]
    BadHeader,
}

/// What a scan saw, readable after (or while) the stream is consumed.
#[derive(Debug, Default, Clone)]
pub struct ScanReport {
    /// The bytes the archive's regular files hold.
    pub content_bytes: u64,
    pub violation: Option<Violation>,
}

enum State {
    /// Collecting a header block (this many bytes of it so far).
    Header(usize),
    /// Handing out a checked header from this offset, then `Data` (`left`
    /// bytes, of a PAX header or not) or, when `left` is 0, the next header.
    Emit { at: usize, left: u64, pax: bool },
    /// Passing data through: bytes left, including the block padding; for a
    /// PAX header its records are kept to read a size from.
    Data { left: u64, pax: bool },
}

/// See the module's documentation.
pub struct Scanner<R> {
    inner: R,
    state: State,
    header: [u8; BLOCK],
    pax: Vec<u8>,
    /// A PAX `size` for the next entry.
    next_size: Option<u64>,
    budget: u64,
    report: Arc<Mutex<ScanReport>>,
}

impl<R: Read> Scanner<R> {
    pub fn new(inner: R, budget: u64) -> (Scanner<R>, Arc<Mutex<ScanReport>>) {
        let report = Arc::new(Mutex::new(ScanReport::default()));
        (
            Scanner {
                inner,
                state: State::Header(0),
                header: [0; BLOCK],
                pax: Vec::new(),
                next_size: None,
                budget,
                report: report.clone(),
            },
            report,
        )
    }

    pub fn into_inner(self) -> R {
        self.inner
    }

    fn stop(&self, v: Violation) -> io::Error {
        let mut r = self.report.lock().expect("scan report");
        r.violation.get_or_insert(v.clone());
        io::Error::new(io::ErrorKind::InvalidData, v)
    }

    /// A complete header block: decides how much data follows.
    fn on_header(&mut self) -> io::Result<()> {
        let h = &self.header;
        if h.iter().all(|b| *b == 0) {
            // End-of-archive blocks (and anything tar ignores after them).
            self.state = State::Emit {
                at: 0,
                left: 0,
                pax: false,
            };
            return Ok(());
        }
        if !checksum_ok(h) {
            return Err(self.stop(Violation::BadHeader));
        }
        let size = parse_size(&h[124..136]).ok_or_else(|| self.stop(Violation::BadHeader))?;
        let kind = h[156];
        let ext = match kind {
            b'L' => Some("GNU long name"),
            b'K' => Some("GNU long link"),
            b'x' | b'g' => Some("PAX"),
            _ => None,
        };
        if let Some(kind) = ext {
            if size > MAX_EXTENSION {
                return Err(self.stop(Violation::ExtensionTooLarge { kind, size }));
            }
        }
        if kind == b'S' {
            let name = String::from_utf8_lossy(&h[..100])
                .trim_end_matches('\0')
                .to_string();
            return Err(self.stop(Violation::Sparse(name)));
        }
        let size = if ext.is_none() {
            self.next_size.take().unwrap_or(size)
        } else {
            size
        };
        if matches!(kind, b'0' | b'\0' | b'7') {
            let mut r = self.report.lock().expect("scan report");
            r.content_bytes = r.content_bytes.saturating_add(size);
            if r.content_bytes > self.budget {
                drop(r);
                return Err(self.stop(Violation::OverBudget {
                    budget: self.budget,
                }));
            }
        }
        // Entries without data whatever their size field says (tar's rule).
        let has_data = !matches!(kind, b'1' | b'2' | b'3' | b'4' | b'5' | b'6');
        let left = if has_data {
            size.div_ceil(BLOCK as u64) * BLOCK as u64
        } else {
            0
        };
        self.pax.clear();
        self.state = State::Emit {
            at: 0,
            left,
            pax: kind == b'x',
        };
        Ok(())
    }

    /// The end of a PAX header's data: its `size` record, if any, is the
    /// next entry's size.
    fn on_pax_end(&mut self) {
        for record in self.pax.split(|b| *b == b'\n') {
            let text = String::from_utf8_lossy(record);
            if let Some((_, kv)) = text.split_once(' ') {
                if let Some(v) = kv.strip_prefix("size=") {
                    self.next_size = v.trim_end_matches('\0').parse().ok();
                }
            }
        }
        self.pax.clear();
    }
}

impl<R: Read> Read for Scanner<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        match self.state {
            State::Header(have) => {
                // A header is released only whole, once checked.
                let mut have = have;
                while have < BLOCK {
                    let n = self.inner.read(&mut self.header[have..])?;
                    if n == 0 {
                        if have == 0 {
                            return Ok(0);
                        }
                        // Truncated: hand over what there is; tar reports it.
                        let n = have.min(out.len());
                        out[..n].copy_from_slice(&self.header[..n]);
                        self.state = State::Header(0);
                        return Ok(n);
                    }
                    have += n;
                }
                self.on_header()?;
                self.read(out)
            }
            State::Emit { at, left, pax } => {
                let n = out.len().min(BLOCK - at);
                out[..n].copy_from_slice(&self.header[at..at + n]);
                self.state = if at + n < BLOCK {
                    State::Emit {
                        at: at + n,
                        left,
                        pax,
                    }
                } else if left == 0 {
                    State::Header(0)
                } else {
                    State::Data { left, pax }
                };
                Ok(n)
            }
            State::Data { left, pax } => {
                let want = out.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                let n = self.inner.read(&mut out[..want])?;
                if n == 0 {
                    return Ok(0);
                }
                if pax {
                    self.pax.extend_from_slice(&out[..n]);
                }
                let left = left - n as u64;
                if left == 0 {
                    if pax {
                        self.on_pax_end();
                    }
                    self.state = State::Header(0);
                } else {
                    self.state = State::Data { left, pax };
                }
                Ok(n)
            }
        }
    }
}

fn checksum_ok(h: &[u8; BLOCK]) -> bool {
    let stored = parse_octal(&h[148..156]);
    let sum: u64 = h
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u64::from(*b)
            }
        })
        .sum();
    stored == Some(sum)
}

fn parse_octal(field: &[u8]) -> Option<u64> {
    let s: String = field
        .iter()
        .map(|b| *b as char)
        .filter(|c| *c != '\0' && *c != ' ')
        .collect();
    if s.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(&s, 8).ok()
}

/// A header's size field: octal, or GNU base-256 when the high bit is set.
fn parse_size(field: &[u8]) -> Option<u64> {
    if field[0] & 0x80 != 0 {
        let mut v: u64 = u64::from(field[0] & 0x7f);
        for b in &field[1..] {
            v = v.checked_mul(256)?.checked_add(u64::from(*b))?;
        }
        return Some(v);
    }
    parse_octal(field)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_with(entries: &[(tar::EntryType, &str, u64)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (kind, name, size) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_size(*size);
            h.set_mode(0o644);
            b.append_data(&mut h, name, &vec![7u8; *size as usize][..])
                .unwrap();
        }
        b.into_inner().unwrap()
    }

    fn scan(bytes: &[u8], budget: u64) -> (io::Result<u64>, ScanReport) {
        let (s, report) = Scanner::new(bytes, budget);
        let mut a = tar::Archive::new(s);
        let r = (|| {
            let mut n = 0;
            for e in a.entries()? {
                let mut e = e?;
                io::copy(&mut e, &mut io::sink())?;
                n += 1;
            }
            Ok(n)
        })();
        let rep = report.lock().unwrap().clone();
        (r, rep)
    }

    #[test]
    fn content_is_counted_and_archives_pass_unchanged() {
        let t = tar_with(&[
            (tar::EntryType::Regular, "a", 1000),
            (tar::EntryType::Directory, "d/", 0),
            (tar::EntryType::Regular, "d/b", 3),
        ]);
        let (n, rep) = scan(&t, u64::MAX);
        assert_eq!(n.unwrap(), 3);
        assert_eq!(rep.content_bytes, 1003);
        assert!(rep.violation.is_none());
        // Byte for byte what came in.
        let (mut s, _) = Scanner::new(&t[..], u64::MAX);
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        assert_eq!(out, t);
    }

    #[test]
    fn long_names_pass_up_to_the_bound() {
        let long = "x/".repeat(300) + "f";
        let t = tar_with(&[(tar::EntryType::Regular, &long, 5)]);
        let (n, rep) = scan(&t, u64::MAX);
        assert_eq!(n.unwrap(), 1);
        assert_eq!(rep.content_bytes, 5);
    }

    #[test]
    fn a_huge_extension_header_stops_the_stream_at_its_header() {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::GNULongName);
        h.set_size(256 << 20);
        h.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
        h.set_cksum();
        let mut bytes = h.as_bytes().to_vec();
        bytes.extend(vec![b'a'; 4096]);
        let (n, rep) = scan(&bytes, u64::MAX);
        assert!(n.is_err());
        assert!(matches!(
            rep.violation,
            Some(Violation::ExtensionTooLarge { size, .. }) if size == 256 << 20
        ));
    }

    #[test]
    fn the_budget_is_enforced_at_the_header_that_passes_it() {
        let t = tar_with(&[
            (tar::EntryType::Regular, "a", 600),
            (tar::EntryType::Regular, "b", 600),
        ]);
        let (n, rep) = scan(&t, 1000);
        assert!(n.is_err());
        assert_eq!(rep.violation, Some(Violation::OverBudget { budget: 1000 }));
        let (n, _) = scan(&t, 1200);
        assert_eq!(n.unwrap(), 2);
    }

    #[test]
    fn pax_sizes_are_followed() {
        // A PAX header stating the next entry's size (as tar does above 8 GiB).
        let mut b = tar::Builder::new(Vec::new());
        let rec = "12 size=700\n";
        let mut ph = tar::Header::new_ustar();
        ph.set_entry_type(tar::EntryType::XHeader);
        ph.set_size(rec.len() as u64);
        b.append_data(&mut ph, "pax", rec.as_bytes()).unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(700);
        b.append_data(&mut h, "f", &vec![1u8; 700][..]).unwrap();
        let t = b.into_inner().unwrap();
        let (n, rep) = scan(&t, u64::MAX);
        assert_eq!(n.unwrap(), 1);
        assert_eq!(rep.content_bytes, 700);
    }

    #[test]
    fn sparse_files_and_garbage_headers_are_refused() {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::GNUSparse);
        h.set_size(0);
        h.set_path("s").unwrap();
        h.set_cksum();
        let (n, rep) = scan(h.as_bytes(), u64::MAX);
        assert!(n.is_err());
        assert!(matches!(rep.violation, Some(Violation::Sparse(_))));
        let (n, rep) = scan(&[0x41u8; 1024], u64::MAX);
        assert!(n.is_err());
        assert_eq!(rep.violation, Some(Violation::BadHeader));
    }

    #[test]
    fn base_256_sizes_are_read() {
        let mut f = [0u8; 12];
        f[0] = 0x80;
        f[11] = 0x01;
        f[10] = 0x02;
        assert_eq!(parse_size(&f), Some(0x0201));
        assert_eq!(parse_size(b"00000001750\0"), Some(1000));
    }
}
