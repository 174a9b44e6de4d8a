//! Read-only inspection of a partition directory: one [`BatchSummary`] per stored batch,
//! for `chronik-server dump-log` and for tests that compare the logs of replicas.
//!
//! Unlike [`crate::Log::open`] this never recovers, truncates, rebuilds an index or removes
//! a file: it opens the `<base>.log` files read-only with `std::fs` (deliberately not through
//! the [`crate::fs::Fs`] seam, whose files are opened for writing) and walks batch headers
//! from the start of each segment. Index files are not read, so a directory left by a crash
//! or by a running broker can be inspected as it is.
//!
//! What it reports of a damaged log: a batch whose header parses and whose bytes are all
//! present is reported even when its CRC-32C does not match ([`BatchSummary::crc_ok`] is
//! false); recovery would cut the log there. A header that does not parse, or a batch that
//! runs past the end of its file, is a *torn tail*: the scan of that segment stops there,
//! records a [`TornTail`] (see [`Scan::torn_tails`]) and goes on with the next segment.
//! I/O errors are yielded as `Err` items and end the scan of that segment.
//!
//! Batches are yielded in segment order, each segment from its first byte; a batch is
//! skipped when its last offset is below the `from_offset` given to [`scan_dir`].

use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::batch::{self, BatchError, BatchHeader, HEADER_SIZE};

/// What `dump-log` prints of one batch. Equal summaries mean equal batches as far as
/// replication is concerned: offsets, epoch, producer fields, record count, size and the CRC
/// as stored (which covers everything after it, records included). Where the batch lies (its
/// segment and file position) is kept apart in [`Location`], since replicas roll segments at
/// different points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchSummary {
    pub base_offset: i64,
    pub last_offset: i64,
    pub partition_leader_epoch: i32,
    /// The CRC-32C as stored in the header.
    pub crc: u32,
    /// Whether the stored CRC matches the batch's bytes.
    pub crc_ok: bool,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
    /// Bytes the whole batch occupies, header included.
    pub size: usize,
}

impl BatchSummary {
    fn new(header: &BatchHeader, crc_ok: bool) -> BatchSummary {
        BatchSummary {
            base_offset: header.base_offset,
            last_offset: header.last_offset(),
            partition_leader_epoch: header.partition_leader_epoch,
            crc: header.crc,
            crc_ok,
            producer_id: header.producer_id,
            producer_epoch: header.producer_epoch,
            base_sequence: header.base_sequence,
            records_count: header.records_count,
            size: header.total_size(),
        }
    }
}

/// The stable one-line form, e.g.
/// `offset=0..4 epoch=0 crc=0x1234abcd crc_ok=true pid=-1 pepoch=-1 seq=-1 records=5 bytes=120`.
/// [`FromStr`] parses it back (ignoring any further `key=value` fields).
impl fmt::Display for BatchSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "offset={}..{} epoch={} crc={:#010x} crc_ok={} pid={} pepoch={} seq={} records={} bytes={}",
            self.base_offset,
            self.last_offset,
            self.partition_leader_epoch,
            self.crc,
            self.crc_ok,
            self.producer_id,
            self.producer_epoch,
            self.base_sequence,
            self.records_count,
            self.size
        )
    }
}

impl FromStr for BatchSummary {
    type Err = String;

    /// Parses a line printed by [`fmt::Display`]; fields may come in any order, unknown ones
    /// (such as `segment=` and `position=` of `dump-log`) are ignored, all known ones are
    /// required.
    fn from_str(line: &str) -> Result<BatchSummary, String> {
        fn num<T: FromStr>(key: &str, value: Option<&str>) -> Result<T, String> {
            let value = value.ok_or_else(|| format!("missing {key}="))?;
            value.parse().map_err(|_| format!("bad {key}={value}"))
        }
        let field = |key: &str| {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        };
        let (base, last) = field("offset")
            .and_then(|o| o.split_once(".."))
            .ok_or_else(|| format!("missing offset=BASE..LAST in {line:?}"))?;
        let crc = field("crc").ok_or("missing crc=")?;
        let crc = u32::from_str_radix(crc.trim_start_matches("0x"), 16)
            .map_err(|_| format!("bad crc={crc}"))?;
        Ok(BatchSummary {
            base_offset: num("offset", Some(base))?,
            last_offset: num("offset", Some(last))?,
            partition_leader_epoch: num("epoch", field("epoch"))?,
            crc,
            crc_ok: num("crc_ok", field("crc_ok"))?,
            producer_id: num("pid", field("pid"))?,
            producer_epoch: num("pepoch", field("pepoch"))?,
            base_sequence: num("seq", field("seq"))?,
            records_count: num("records", field("records"))?,
            size: num("bytes", field("bytes"))?,
        })
    }
}

/// Where a batch lies: the base offset of its segment and its byte position in the `.log`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    pub segment_base: i64,
    pub position: u64,
}

/// Where and why the scan of a segment stopped before the end of its file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    pub segment_base: i64,
    /// Byte position of the first byte not accounted for by a whole batch.
    pub position: u64,
    /// Bytes from `position` to the end of the file.
    pub remaining: u64,
    pub reason: BatchError,
}

impl fmt::Display for TornTail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "torn tail in segment {} at position {} ({} bytes left): {}",
            self.segment_base, self.position, self.remaining, self.reason
        )
    }
}

/// The segments of a partition directory: base offsets and paths of its `<base>.log` files,
/// sorted by base offset. Other files are ignored.
pub fn segment_files(dir: &Path) -> io::Result<Vec<(i64, PathBuf)>> {
    let mut segments = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_suffix(".log") else {
            continue;
        };
        if stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(base) = stem.parse() {
                segments.push((base, entry.path()));
            }
        }
    }
    segments.sort_unstable();
    Ok(segments)
}

/// Scans the partition directory `dir` read-only, yielding every batch whose last offset is
/// at least `from_offset` (see the module docs). Fails only if the directory cannot be listed.
pub fn scan_dir(dir: &Path, from_offset: i64) -> io::Result<Scan> {
    let mut segments = segment_files(dir)?;
    // Segment i holds offsets below the next base: skip the ones wholly before `from_offset`.
    let first_needed = segments
        .windows(2)
        .take_while(|w| w[1].0 <= from_offset)
        .count();
    segments.drain(..first_needed);
    segments.reverse();
    Ok(Scan {
        pending: segments,
        current: None,
        from_offset,
        torn: Vec::new(),
    })
}

/// Every batch of `dir` from `from_offset` on, collected; the first I/O error fails it.
/// Torn tails are not errors (use [`scan_dir`] to see them).
pub fn read_dir_summaries(dir: &Path, from_offset: i64) -> io::Result<Vec<BatchSummary>> {
    scan_dir(dir, from_offset)?.collect()
}

/// Iterator over the batches of a partition directory; see [`scan_dir`].
pub struct Scan {
    /// Segments not opened yet, the next one last.
    pending: Vec<(i64, PathBuf)>,
    current: Option<OpenSegment>,
    from_offset: i64,
    torn: Vec<TornTail>,
}

struct OpenSegment {
    base: i64,
    file: File,
    len: u64,
    pos: u64,
}

impl Scan {
    /// The torn tails met so far, in segment order.
    pub fn torn_tails(&self) -> &[TornTail] {
        &self.torn
    }

    /// Like `next`, with the batch's [`Location`].
    pub fn next_located(&mut self) -> Option<io::Result<(Location, BatchSummary)>> {
        loop {
            if self.current.is_none() {
                let (base, path) = self.pending.pop()?;
                match File::open(&path).and_then(|file| Ok((file.metadata()?.len(), file))) {
                    Ok((len, file)) => {
                        self.current = Some(OpenSegment {
                            base,
                            file,
                            len,
                            pos: 0,
                        })
                    }
                    Err(e) => {
                        return Some(Err(io::Error::new(
                            e.kind(),
                            format!("opening {}: {e}", path.display()),
                        )))
                    }
                }
            }
            let segment = self.current.as_mut().expect("opened above");
            match segment.next_batch() {
                Ok(Some((location, summary))) => {
                    if summary.last_offset >= self.from_offset {
                        return Some(Ok((location, summary)));
                    }
                }
                Ok(None) => self.current = None,
                Err(Stop::Torn(tail)) => {
                    self.torn.push(tail);
                    self.current = None;
                }
                Err(Stop::Io(e)) => {
                    self.current = None;
                    return Some(Err(e));
                }
            }
        }
    }
}

impl Iterator for Scan {
    type Item = io::Result<BatchSummary>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_located()
            .map(|item| item.map(|(_, summary)| summary))
    }
}

enum Stop {
    Torn(TornTail),
    Io(io::Error),
}

impl OpenSegment {
    /// The batch at `pos`, or `None` at the end of the file.
    fn next_batch(&mut self) -> Result<Option<(Location, BatchSummary)>, Stop> {
        let remaining = self.len - self.pos;
        if remaining == 0 {
            return Ok(None);
        }
        let torn = |reason| {
            Stop::Torn(TornTail {
                segment_base: self.base,
                position: self.pos,
                remaining,
                reason,
            })
        };
        if remaining < HEADER_SIZE as u64 {
            return Err(torn(BatchError::Truncated {
                needed: HEADER_SIZE,
                available: remaining as usize,
            }));
        }
        let mut head = [0u8; HEADER_SIZE];
        self.file
            .read_exact_at(&mut head, self.pos)
            .map_err(Stop::Io)?;
        let header = batch::parse_header(&head).map_err(torn)?;
        let total = header.total_size() as u64;
        if total > remaining {
            return Err(torn(BatchError::Truncated {
                needed: total as usize,
                available: remaining as usize,
            }));
        }
        let mut bytes = vec![0u8; total as usize];
        self.file
            .read_exact_at(&mut bytes, self.pos)
            .map_err(Stop::Io)?;
        // The CRC covers everything from the attributes (byte 21) to the end of the batch.
        let crc_ok = crc32c::crc32c(&bytes[21..]) == header.crc;
        let location = Location {
            segment_base: self.base,
            position: self.pos,
        };
        self.pos += total;
        Ok(Some((location, BatchSummary::new(&header, crc_ok))))
    }
}

#[cfg(test)]
mod tests {
    use std::fs::OpenOptions;
    use std::io::Write;

    use super::*;
    use crate::config::LogConfig;
    use crate::fs::RealFs;
    use crate::log::Log;
    use crate::test_util::batch;

    fn small_config() -> LogConfig {
        LogConfig {
            segment_bytes: 1000,
            index_interval_bytes: 200,
            ..LogConfig::default()
        }
    }

    /// A log of `n` batches of 3 records, leader epochs 0 then 1 from the middle on, closed
    /// cleanly; returns each append's (first, last) offsets.
    fn write_log(dir: &Path, n: usize) -> Vec<(i64, i64)> {
        let mut log = Log::open(&RealFs::shared(), dir, small_config()).unwrap();
        let mut appended = Vec::new();
        for i in 0..n {
            let mut b = batch(3, 1000 + i as i64);
            let epoch = if i < n / 2 { 0 } else { 1 };
            let info = log.append(&mut b, epoch, 1000).unwrap();
            appended.push((info.first_offset, info.last_offset));
        }
        log.close().unwrap();
        appended
    }

    /// Every file in `dir` with its length and modification time.
    fn snapshot(dir: &Path) -> Vec<(String, u64, std::time::SystemTime)> {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let m = e.metadata().unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    m.len(),
                    m.modified().unwrap(),
                )
            })
            .collect();
        files.sort();
        files
    }

    #[test]
    fn summarises_every_batch_of_a_multi_segment_log_without_touching_it() {
        let dir = tempfile::tempdir().unwrap();
        let appended = write_log(dir.path(), 20);
        assert!(segment_files(dir.path()).unwrap().len() > 2);
        let before = snapshot(dir.path());

        let mut scan = scan_dir(dir.path(), 0).unwrap();
        let mut located = Vec::new();
        while let Some(item) = scan.next_located() {
            located.push(item.unwrap());
        }
        assert!(scan.torn_tails().is_empty());
        let got: Vec<(i64, i64)> = located
            .iter()
            .map(|(_, s)| (s.base_offset, s.last_offset))
            .collect();
        assert_eq!(got, appended);
        for (i, (location, s)) in located.iter().enumerate() {
            assert!(s.crc_ok);
            assert_eq!(s.records_count, 3);
            assert_eq!(s.partition_leader_epoch, if i < 10 { 0 } else { 1 });
            assert_eq!(
                (s.producer_id, s.producer_epoch, s.base_sequence),
                (-1, -1, 0)
            );
            assert!(location.segment_base <= s.base_offset);
            let data = std::fs::read(
                dir.path()
                    .join(crate::segment::log_file_name(location.segment_base)),
            )
            .unwrap();
            let at = location.position as usize;
            let header = batch::validate_stored_batch(&data[at..at + s.size]).unwrap();
            assert_eq!(header.crc, s.crc);
        }
        assert_eq!(
            snapshot(dir.path()),
            before,
            "the scan changed the directory"
        );
    }

    #[test]
    fn from_offset_skips_earlier_batches_and_segments() {
        let dir = tempfile::tempdir().unwrap();
        write_log(dir.path(), 20);
        let all = read_dir_summaries(dir.path(), 0).unwrap();
        // Offset 31 lies inside the batch 30..32: that batch is the first one reported.
        let from = read_dir_summaries(dir.path(), 31).unwrap();
        assert_eq!(from.first().map(|s| s.base_offset), Some(30));
        assert_eq!(from[..], all[10..]);
        assert!(read_dir_summaries(dir.path(), 60).unwrap().is_empty());
    }

    #[test]
    fn stops_at_a_torn_tail_and_reports_a_bad_crc() {
        let dir = tempfile::tempdir().unwrap();
        write_log(dir.path(), 4);
        let (base, path) = segment_files(dir.path()).unwrap().pop().unwrap();
        let whole = read_dir_summaries(dir.path(), 0).unwrap();
        let last_len = whole.last().unwrap().size as u64;
        // Flip a record byte of the last batch, then append half of a batch after it.
        let mut data = std::fs::read(&path).unwrap();
        let end = data.len();
        data[end - 1] ^= 0xff;
        std::fs::write(&path, &data).unwrap();
        let half = &batch(3, 0)[..40];
        OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(half)
            .unwrap();

        let mut scan = scan_dir(dir.path(), 0).unwrap();
        let got: Vec<BatchSummary> = scan.by_ref().collect::<io::Result<_>>().unwrap();
        assert_eq!(got.len(), whole.len());
        assert!(!got.last().unwrap().crc_ok);
        assert!(got[..got.len() - 1].iter().all(|s| s.crc_ok));
        assert_eq!(
            scan.torn_tails(),
            [TornTail {
                segment_base: base,
                position: end as u64,
                remaining: 40,
                reason: BatchError::Truncated {
                    needed: HEADER_SIZE,
                    available: 40
                },
            }]
        );
        assert!(last_len > 40);

        // A header whose length runs past the end of the file is torn too.
        std::fs::write(&path, &data[..end - 5]).unwrap();
        let mut scan = scan_dir(dir.path(), 0).unwrap();
        assert_eq!(scan.by_ref().count(), whole.len() - 1);
        assert!(matches!(
            scan.torn_tails()[0].reason,
            BatchError::Truncated { .. }
        ));
    }

    #[test]
    fn lines_parse_back() {
        let dir = tempfile::tempdir().unwrap();
        write_log(dir.path(), 3);
        for s in read_dir_summaries(dir.path(), 0).unwrap() {
            let line = format!("{s} segment=0 position=12");
            assert_eq!(line.parse::<BatchSummary>(), Ok(s), "{line}");
        }
        let s: BatchSummary =
            "offset=5..9 epoch=3 crc=0x0000abcd crc_ok=false pid=7 pepoch=1 seq=20 records=5 bytes=99"
                .parse()
                .unwrap();
        assert_eq!(
            (s.base_offset, s.last_offset, s.crc, s.crc_ok),
            (5, 9, 0xabcd, false)
        );
        assert!("offset=5..9 epoch=3".parse::<BatchSummary>().is_err());
    }

    #[test]
    fn a_missing_directory_is_an_error_and_an_empty_one_has_no_batches() {
        let dir = tempfile::tempdir().unwrap();
        assert!(scan_dir(&dir.path().join("nope"), 0).is_err());
        assert_eq!(read_dir_summaries(dir.path(), 0).unwrap(), []);
    }
}
