//! Log compaction: keep only the latest record per key, built aside, off the partition's lock.
//!
//! One pass has three steps, so produce, fetch and offset commits never wait on it:
//! 1. [`Log::plan_compaction`] (under the log's lock, cheap): the sealed segments whose newest
//!    timestamp is older than `min_compaction_lag_ms` are cleanable; it takes a handle and the
//!    size of every segment's data file, and the log's *generation*.
//! 2. [`CompactionPlan::build`] (no lock; it reads, decompresses, writes and fsyncs):
//!    - a key map over the whole log as of the plan (later appends only make it conservative):
//!      a 128-bit hash of each key → the offset of its latest record, at most
//!      [`KEY_MAP_MAX_ENTRIES`] entries (~26 MiB). When it fills up, only the segments it fully
//!      covers are cleaned (a record is dropped only if the map knows a newer one);
//!    - each cleanable segment with something to remove is rewritten into
//!      `<dir>/compaction-staging/<base>.log`: a record survives if it has no key or is the
//!      latest for its key; tombstones (null value) go once their batch's max timestamp is older
//!      than `delete_retention_ms`. A batch whose records all survive is copied verbatim;
//!      otherwise the survivors' encodings are copied as they are (their offset and timestamp
//!      deltas stay valid against the unchanged base offset and timestamp) and recompressed
//!      with the batch's codec under a new CRC. A batch left with no records stays as an empty
//!      batch so batch offsets stay contiguous (the invariant recovery checks). Control batches
//!      and batches whose records cannot be walked (see `records`) are copied verbatim. The new
//!      segment is then opened there, which validates it and builds and fsyncs its indexes.
//! 3. [`Log::install_compaction`] (under the lock, a few renames): if the log's generation is
//!    unchanged (no truncation, retention or deletion since the plan), the old segment's index
//!    files are removed, then the staged `.log` and index files are renamed into place and the
//!    staged `Segment` (opened in step 2; its files follow the renames) takes the old one's
//!    place; otherwise the work is discarded. [`CleanedSegments::finish`] (no lock)
//!    fsyncs the directory and removes the staging directory.
//!
//! Crash behaviour: before the data file's rename the old segment stays (its indexes, if
//! already removed, are rebuilt at open); after it, only the new indexes or none sit beside it.
//! The staging directory is removed when the log is opened.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use bytes::{BufMut, BytesMut};
use kafka_protocol::compression::{self as cmpr, Compressor};
use tracing::{debug, info, warn};

use crate::batch::{self, BatchHeader, HEADER_SIZE, LOG_OVERHEAD};
use crate::error::{Result, StorageError};
use crate::fs::{FileRef, FsRef, OpenMode};
use crate::log::Log;
use crate::records::{decompression_limit, put_varint, walk_records, OffsetDeltas};
use crate::segment::{log_file_name, Recover, Segment};

/// The key map's entry cap: 7/8 of 2^20, so its table stays at 2^20 buckets of 25 bytes.
pub const KEY_MAP_MAX_ENTRIES: usize = 7 * (1 << 20) / 8;

/// The directory, inside a partition's, where compaction builds its segments.
pub const STAGING_DIR: &str = "compaction-staging";

/// Output is written to the staged file in chunks of this size.
const WRITE_CHUNK: usize = 1 << 20;

/// What one compaction pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactionStats {
    pub segments_cleaned: usize,
    pub records_removed: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// One segment's data file as of the plan.
struct SegmentSnapshot {
    base: i64,
    file: FileRef,
    size: u64,
}

/// What [`Log::plan_compaction`] hands to [`CompactionPlan::build`].
pub struct CompactionPlan {
    fs: FsRef,
    dir: PathBuf,
    generation: u64,
    segments: Vec<SegmentSnapshot>,
    cleanable: usize,
    tombstone_cutoff: i64,
    index_interval: u32,
    limit: usize,
    key_map_entries: usize,
}

/// Segments built aside, waiting for [`Log::install_compaction`].
pub struct CleanedSegments {
    fs: FsRef,
    dir: PathBuf,
    generation: u64,
    /// Each staged segment, opened (indexes loaded) in the staging directory, with its index
    /// in the log's segments.
    staged: Vec<(usize, Segment)>,
    /// Whether any segment was renamed into place (the directory then needs an fsync).
    renamed: bool,
    stats: CompactionStats,
}

fn staging_dir(dir: &Path) -> PathBuf {
    dir.join(STAGING_DIR)
}

/// Removes what an interrupted pass left; called when the log is opened.
pub(crate) fn remove_staging(fs: &FsRef, dir: &Path) -> Result<()> {
    let staging = staging_dir(dir);
    if fs.exists(&staging) {
        fs.remove_dir_all(&staging)?;
    }
    Ok(())
}

impl Log {
    /// Step 1 (under the log's lock): what a pass would clean, or `None` if nothing is.
    pub fn plan_compaction(&self, now_ms: i64) -> Option<CompactionPlan> {
        if !self.config.cleanup_policy.includes_compact() {
            return None;
        }
        let lag_cutoff = now_ms - self.config.min_compaction_lag_ms;
        let cleanable = self.segments[..self.segments.len() - 1]
            .iter()
            .take_while(|s| s.max_timestamp() <= lag_cutoff)
            .count();
        if cleanable == 0 {
            return None;
        }
        Some(CompactionPlan {
            fs: self.fs.clone(),
            dir: self.dir.clone(),
            generation: self.generation,
            segments: self
                .segments
                .iter()
                .map(|s| SegmentSnapshot {
                    base: s.base_offset(),
                    file: s.file().clone(),
                    size: s.size(),
                })
                .collect(),
            cleanable,
            tombstone_cutoff: now_ms - self.config.delete_retention_ms,
            index_interval: self.config.index_interval_bytes,
            limit: decompression_limit(self.config.max_message_bytes),
            key_map_entries: KEY_MAP_MAX_ENTRIES,
        })
    }

    /// Step 3 (under the log's lock): swaps the staged segments in, unless the log was
    /// truncated, retained or deleted from since the plan.
    pub fn install_compaction(&mut self, cleaned: &mut CleanedSegments) -> Result<CompactionStats> {
        if cleaned.generation != self.generation {
            info!(dir = %self.dir.display(), "log changed during compaction; its output is dropped");
            cleaned.staged.clear();
            return Ok(CompactionStats::default());
        }
        if cleaned.staged.is_empty() {
            return Ok(cleaned.stats.clone());
        }
        self.generation += 1;
        let staging = staging_dir(&self.dir);
        for (i, mut segment) in cleaned.staged.drain(..) {
            let base = segment.base_offset();
            debug_assert_eq!(self.segments[i].base_offset(), base);
            cleaned.renamed = true;
            Segment::remove_index_files(&self.fs, &self.dir, base)?;
            // Data first: until the indexes follow, the segment has none and would rebuild them.
            for name in [
                log_file_name(base),
                format!("{base:020}.index"),
                format!("{base:020}.timeindex"),
            ] {
                self.fs
                    .rename(&staging.join(&name), &self.dir.join(&name))?;
            }
            // Its open files followed the renames; the replaced Segment only holds handles to
            // the unlinked ones.
            segment.moved_to(&self.dir);
            self.segments[i] = segment;
        }
        Ok(cleaned.stats.clone())
    }

    /// A whole pass at once (tests and tools; the broker runs the three steps itself).
    pub fn compact(&mut self, now_ms: i64) -> Result<CompactionStats> {
        let Some(plan) = self.plan_compaction(now_ms) else {
            return Ok(CompactionStats::default());
        };
        let mut cleaned = plan.build()?;
        let stats = self.install_compaction(&mut cleaned)?;
        cleaned.finish()?;
        Ok(stats)
    }
}

impl CleanedSegments {
    /// After [`Log::install_compaction`], off the lock: makes the renames durable and removes
    /// the staging directory.
    pub fn finish(self) -> Result<()> {
        if self.renamed {
            self.fs.sync_dir(&self.dir)?;
        }
        remove_staging(&self.fs, &self.dir)
    }
}

/// Latest offset per key, by a 128-bit hash of the key (collisions are as unlikely as MD5's
/// in Kafka's own `SkimpyOffsetMap`).
struct KeyMap {
    latest: HashMap<u128, i64>,
}

fn key_hash(key: &[u8]) -> u128 {
    let mut high = DefaultHasher::new();
    key.hash(&mut high);
    let mut low = DefaultHasher::new();
    0x5bd1_e995u32.hash(&mut low);
    key.hash(&mut low);
    (high.finish() as u128) << 64 | low.finish() as u128
}

impl KeyMap {
    /// Builds the map over `segments` in order; returns it with how many segments it covers
    /// entirely (fewer than all when it filled up).
    fn build(
        segments: &[SegmentSnapshot],
        limit: usize,
        max_entries: usize,
    ) -> Result<(KeyMap, usize)> {
        let mut map = KeyMap {
            latest: HashMap::new(),
        };
        for (i, segment) in segments.iter().enumerate() {
            let mut full = false;
            for_each_batch(segment, |header, data| {
                if header.is_control() || full {
                    return;
                }
                let _ = walk_records(data, header, OffsetDeltas::Increasing, limit, |r| {
                    let Some(key) = r.key else { return };
                    let offset = header.base_offset + r.offset_delta as i64;
                    let len = map.latest.len();
                    match map.latest.entry(key_hash(key)) {
                        std::collections::hash_map::Entry::Occupied(mut e) => {
                            e.insert(offset);
                        }
                        std::collections::hash_map::Entry::Vacant(e) => {
                            if len < max_entries {
                                e.insert(offset);
                            } else {
                                full = true;
                            }
                        }
                    }
                });
            })?;
            if full {
                return Ok((map, i));
            }
        }
        Ok((map, segments.len()))
    }

    fn is_latest(&self, key: &[u8], offset: i64) -> bool {
        self.latest.get(&key_hash(key)) == Some(&offset)
    }
}

/// Visits every batch of a segment's data file (as of the plan) with its bytes: one read of
/// the header, one of the batch, into one reused buffer.
fn for_each_batch(segment: &SegmentSnapshot, mut f: impl FnMut(&BatchHeader, &[u8])) -> Result<()> {
    let mut pos = 0u64;
    let mut buf = Vec::new();
    while pos < segment.size {
        let mut head = [0u8; HEADER_SIZE];
        if pos + HEADER_SIZE as u64 > segment.size {
            return Err(StorageError::Corrupt(format!(
                "segment {} ends inside a batch header",
                segment.base
            )));
        }
        segment.file.read_exact_at(&mut head, pos)?;
        let header = batch::parse_header(&head)?;
        if pos + header.total_size() as u64 > segment.size {
            return Err(StorageError::Corrupt(format!(
                "segment {} ends inside a batch",
                segment.base
            )));
        }
        buf.resize(header.total_size(), 0);
        segment.file.read_exact_at(&mut buf, pos)?;
        f(&header, &buf);
        pos += header.total_size() as u64;
    }
    Ok(())
}

impl CompactionPlan {
    /// A smaller key map, to exercise the cap in tests.
    #[cfg(test)]
    pub(crate) fn with_key_map_entries(mut self, entries: usize) -> Self {
        self.key_map_entries = entries;
        self
    }

    /// Step 2 (no lock): builds the key map and stages every segment with something to drop.
    pub fn build(self) -> Result<CleanedSegments> {
        let (keys, covered) = KeyMap::build(&self.segments, self.limit, self.key_map_entries)?;
        let cleanable = self.cleanable.min(covered);
        if cleanable < self.cleanable {
            warn!(dir = %self.dir.display(), keys = self.key_map_entries, segments = cleanable,
                "compaction key map full: cleaning only the segments it covers");
        }
        let mut cleaned = CleanedSegments {
            fs: self.fs.clone(),
            dir: self.dir.clone(),
            generation: self.generation,
            staged: Vec::new(),
            renamed: false,
            stats: CompactionStats::default(),
        };
        let staging = staging_dir(&self.dir);
        remove_staging(&self.fs, &self.dir)?;
        for (i, segment) in self.segments[..cleanable].iter().enumerate() {
            // A dry run first, so a clean segment costs a read, not a rewrite.
            let removable = self.rewrite(segment, &keys, None)?;
            if removable == 0 {
                continue;
            }
            self.fs.create_dir_all(&staging)?;
            let path = staging.join(log_file_name(segment.base));
            let file = self.fs.open(&path, OpenMode::CreateTruncate)?;
            let mut out = StagedFile {
                file,
                buf: Vec::with_capacity(WRITE_CHUNK),
                written: 0,
            };
            let removed = self.rewrite(segment, &keys, Some(&mut out))?;
            out.flush()?;
            out.file.sync_data()?;
            // Validates what was written and builds (and fsyncs) its indexes beside it.
            let staged = Segment::open(
                &self.fs,
                &staging,
                segment.base,
                self.index_interval,
                Recover::All,
            )?;
            cleaned.staged.push((i, staged));
            cleaned.stats.segments_cleaned += 1;
            cleaned.stats.records_removed += removed;
            cleaned.stats.bytes_before += segment.size;
            cleaned.stats.bytes_after += out.written;
            debug!(dir = %self.dir.display(), base = segment.base, removed,
                before = segment.size, after = out.written, "compacted segment");
        }
        Ok(cleaned)
    }

    /// Counts the records of `segment` that go and, given `out`, writes what stays.
    fn rewrite(
        &self,
        segment: &SegmentSnapshot,
        keys: &KeyMap,
        mut out: Option<&mut StagedFile>,
    ) -> Result<u64> {
        let mut removed = 0u64;
        let mut survivors = Vec::new();
        let mut failed: Option<StorageError> = None;
        for_each_batch(segment, |header, data| {
            if failed.is_some() {
                return;
            }
            let drop_tombstones = header.max_timestamp < self.tombstone_cutoff;
            survivors.clear();
            let mut kept = 0i32;
            let mut dropped = 0u64;
            let walked = !header.is_control()
                && walk_records(data, header, OffsetDeltas::Increasing, self.limit, |r| {
                    let offset = header.base_offset + r.offset_delta as i64;
                    let keep = match r.key {
                        None => true,
                        Some(key) => {
                            keys.is_latest(key, offset) && !(r.value.is_none() && drop_tombstones)
                        }
                    };
                    if keep {
                        kept += 1;
                        put_varint(&mut survivors, r.body.len() as i64);
                        survivors.extend_from_slice(r.body);
                    } else {
                        dropped += 1;
                    }
                })
                .is_ok();
            if !walked {
                dropped = 0;
            }
            removed += dropped;
            let Some(out) = out.as_deref_mut() else {
                return;
            };
            let written = if dropped == 0 {
                out.write(data)
            } else {
                encode_batch(header, &survivors, kept).and_then(|b| out.write(&b))
            };
            if let Err(e) = written {
                failed = Some(e);
            }
        })?;
        match failed {
            Some(e) => Err(e),
            None => Ok(removed),
        }
    }
}

/// The staged data file, written in chunks.
struct StagedFile {
    file: FileRef,
    buf: Vec<u8>,
    written: u64,
}

impl StagedFile {
    fn write(&mut self, data: &[u8]) -> Result<()> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= WRITE_CHUNK {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.file.write_all_at(&self.buf, self.written)?;
        self.written += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }
}

fn compress_with<C: Compressor<BytesMut, BufMut = BytesMut>>(raw: &[u8]) -> Result<Vec<u8>> {
    let mut out = BytesMut::new();
    C::compress(&mut out, |b: &mut BytesMut| {
        b.put_slice(raw);
        Ok(())
    })
    .map_err(|e| StorageError::Corrupt(format!("compression failed: {e}")))?;
    Ok(out.to_vec())
}

/// A batch holding the `count` records encoded in `records`, with `header`'s offsets,
/// timestamps, producer fields and compression; an empty batch when there are none.
fn encode_batch(header: &BatchHeader, records: &[u8], count: i32) -> Result<Vec<u8>> {
    let mut attributes = header.attributes;
    let payload = if count == 0 {
        attributes &= !7;
        Vec::new()
    } else {
        match header.compression() {
            0 => records.to_vec(),
            1 => compress_with::<cmpr::Gzip>(records)?,
            2 => compress_with::<cmpr::Snappy>(records)?,
            3 => compress_with::<cmpr::Lz4>(records)?,
            4 => compress_with::<cmpr::Zstd>(records)?,
            c => return Err(StorageError::Corrupt(format!("unknown compression {c}"))),
        }
    };
    let mut out = Vec::with_capacity(HEADER_SIZE + payload.len());
    let batch_length = (HEADER_SIZE - LOG_OVERHEAD + payload.len()) as i32;
    out.extend_from_slice(&header.base_offset.to_be_bytes());
    out.extend_from_slice(&batch_length.to_be_bytes());
    out.extend_from_slice(&header.partition_leader_epoch.to_be_bytes());
    out.push(2);
    out.extend_from_slice(&[0; 4]); // CRC, filled below
    out.extend_from_slice(&attributes.to_be_bytes());
    out.extend_from_slice(&header.last_offset_delta.to_be_bytes());
    out.extend_from_slice(&header.base_timestamp.to_be_bytes());
    out.extend_from_slice(&header.max_timestamp.to_be_bytes());
    out.extend_from_slice(&header.producer_id.to_be_bytes());
    out.extend_from_slice(&header.producer_epoch.to_be_bytes());
    out.extend_from_slice(&header.base_sequence.to_be_bytes());
    out.extend_from_slice(&count.to_be_bytes());
    out.extend_from_slice(&payload);
    let crc = crc32c::crc32c(&out[21..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    debug_assert!(batch::validate_stored_batch(&out).is_ok());
    Ok(out)
}

#[cfg(test)]
#[path = "cleaner_tests.rs"]
mod tests;
