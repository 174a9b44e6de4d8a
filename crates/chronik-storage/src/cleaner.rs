//! Log compaction: keep only the latest record per key.
//!
//! One pass ([`compact`], called via `Log::compact`) works over the sealed segments
//! whose newest timestamp is older than `min_compaction_lag_ms`:
//! 1. Build a map key → offset of its latest record over the whole log, active segment
//!    included (latest wins).
//! 2. Rewrite each cleanable segment: a record survives if it has no key or is the
//!    latest for its key; tombstones (null value) are dropped once their batch's max
//!    timestamp is older than `delete_retention_ms`. A batch whose records all survive is
//!    copied verbatim. Otherwise its survivors are re-encoded (same compression,
//!    original base offset, lastOffsetDelta, timestamps and producer fields, so every
//!    surviving record keeps its offset) and the CRC is recomputed. A batch left with no
//!    records is kept as an empty batch so batch offsets stay contiguous (the invariant
//!    recovery checks). Control batches are copied verbatim.
//! 3. Replace the segment atomically: write `<base>.log.cleaned`, fsync, remove the old
//!    index files, rename over `<base>.log`, then rebuild the indexes from the data.
//!    A crash before the rename leaves the old segment (the `.cleaned` file is deleted at
//!    open); after it, the new one, with its indexes missing and so rebuilt at open.
//!
//! Batches that kafka-protocol cannot decode are kept verbatim.

use std::collections::HashMap;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::compression::{self as cmpr, Compressor};
use kafka_protocol::records::{Record, RecordBatchDecoder};
use tracing::{info, warn};

use crate::batch::{self, BatchHeader, HEADER_SIZE, LOG_OVERHEAD};
use crate::error::{Result, StorageError};
use crate::fs::OpenMode;
use crate::log::Log;
use crate::records::put_varint;
use crate::segment::{log_file_name, Recover, Segment};

/// What one compaction pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactionStats {
    pub segments_cleaned: usize,
    pub records_removed: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// Visits every batch of `segment` with its bytes.
fn for_each_batch(
    segment: &Segment,
    mut f: impl FnMut(&BatchHeader, &[u8]) -> Result<()>,
) -> Result<()> {
    let mut offset = segment.base_offset();
    while offset < segment.next_offset() {
        let Some((bytes, _)) = segment.read(offset, 1 << 20, i64::MAX, true)? else {
            break;
        };
        for item in batch::batches(&bytes) {
            let (header, range) = item?;
            f(&header, &bytes[range])?;
            offset = header.last_offset() + 1;
        }
    }
    Ok(())
}

fn decode(data: &[u8]) -> Option<Vec<Record>> {
    let mut buf = Bytes::copy_from_slice(data);
    match RecordBatchDecoder::decode(&mut buf) {
        Ok(set) => Some(set.records),
        Err(e) => {
            warn!(error = %e, "compaction: cannot decode batch, keeping it verbatim");
            None
        }
    }
}

/// Runs one compaction pass over `log`'s cleanable sealed segments.
pub(crate) fn compact(log: &mut Log, now_ms: i64) -> Result<CompactionStats> {
    let mut stats = CompactionStats::default();
    let lag_cutoff = now_ms - log.config.min_compaction_lag_ms;
    let cleanable = log.segments[..log.segments.len() - 1]
        .iter()
        .take_while(|s| s.max_timestamp() <= lag_cutoff)
        .count();
    if cleanable == 0 {
        return Ok(stats);
    }

    let mut latest: HashMap<Bytes, i64> = HashMap::new();
    for segment in &log.segments {
        for_each_batch(segment, |header, data| {
            if header.is_control() {
                return Ok(());
            }
            for record in decode(data).unwrap_or_default() {
                if let Some(key) = record.key {
                    latest.insert(key, record.offset);
                }
            }
            Ok(())
        })?;
    }

    let tombstone_cutoff = now_ms - log.config.delete_retention_ms;
    for i in 0..cleanable {
        let segment = &log.segments[i];
        let mut out = Vec::with_capacity(segment.size() as usize);
        let mut removed = 0u64;
        for_each_batch(segment, |header, data| {
            let records = match (header.is_control(), decode(data)) {
                (false, Some(records)) => records,
                _ => {
                    out.extend_from_slice(data);
                    return Ok(());
                }
            };
            let drop_tombstones = header.max_timestamp < tombstone_cutoff;
            let total = records.len();
            let survivors: Vec<&Record> = records
                .iter()
                .filter(|r| match &r.key {
                    None => true,
                    Some(key) => {
                        latest.get(key) == Some(&r.offset)
                            && !(r.value.is_none() && drop_tombstones)
                    }
                })
                .collect();
            if survivors.len() == total {
                out.extend_from_slice(data);
            } else {
                removed += (total - survivors.len()) as u64;
                encode_batch(header, &survivors, &mut out)?;
            }
            Ok(())
        })?;
        if removed == 0 {
            continue;
        }
        let base = segment.base_offset();
        let before = segment.size();
        replace_segment(log, i, &out)?;
        stats.segments_cleaned += 1;
        stats.records_removed += removed;
        stats.bytes_before += before;
        stats.bytes_after += out.len() as u64;
        info!(dir = %log.dir.display(), base, removed, before, after = out.len(), "compacted segment");
    }
    Ok(stats)
}

/// Writes `data` as the new content of segment `i` (see the module docs for the steps).
fn replace_segment(log: &mut Log, i: usize, data: &[u8]) -> Result<()> {
    let base = log.segments[i].base_offset();
    let final_path = log.dir.join(log_file_name(base));
    let cleaned_path = log.dir.join(format!("{}.cleaned", log_file_name(base)));
    let file = log.fs.open(&cleaned_path, OpenMode::CreateTruncate)?;
    file.write_all_at(data, 0)?;
    file.sync_data()?;
    drop(file);
    Segment::remove_index_files(&log.fs, &log.dir, base)?;
    log.fs.rename(&cleaned_path, &final_path)?;
    log.fs.sync_dir(&log.dir)?;
    let segment = Segment::open(
        &log.fs,
        &log.dir,
        base,
        log.config.index_interval_bytes,
        Recover::No,
    )?;
    // The old Segment only holds handles to the replaced (unlinked) files.
    log.segments[i] = segment;
    Ok(())
}

fn put_nullable(buf: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        Some(b) => {
            put_varint(buf, b.len() as i64);
            buf.extend_from_slice(b);
        }
        None => put_varint(buf, -1),
    }
}

/// Encodes `records` in the v2 record format relative to `header`'s base offset and
/// base timestamp.
fn encode_records(header: &BatchHeader, records: &[&Record]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut body = Vec::new();
    for r in records {
        body.clear();
        body.push(0); // record attributes (unused)
        put_varint(&mut body, r.timestamp - header.base_timestamp);
        put_varint(&mut body, r.offset - header.base_offset);
        put_nullable(&mut body, r.key.as_deref());
        put_nullable(&mut body, r.value.as_deref());
        put_varint(&mut body, r.headers.len() as i64);
        for (k, v) in &r.headers {
            put_nullable(&mut body, Some(k.as_str().as_bytes()));
            put_nullable(&mut body, v.as_deref());
        }
        put_varint(&mut out, body.len() as i64);
        out.extend_from_slice(&body);
    }
    out
}

fn compress_with<C: Compressor<BytesMut, BufMut = BytesMut>>(raw: &[u8]) -> Result<BytesMut> {
    let mut out = BytesMut::new();
    C::compress(&mut out, |b: &mut BytesMut| {
        b.put_slice(raw);
        Ok(())
    })
    .map_err(|e| StorageError::Corrupt(format!("compression failed: {e}")))?;
    Ok(out)
}

/// Appends a batch holding `survivors` with `header`'s offsets, timestamps, producer
/// fields and compression; an empty batch when there are none.
fn encode_batch(header: &BatchHeader, survivors: &[&Record], out: &mut Vec<u8>) -> Result<()> {
    let raw = encode_records(header, survivors);
    let mut attributes = header.attributes;
    let payload: Vec<u8> = if survivors.is_empty() {
        attributes &= !7;
        Vec::new()
    } else {
        match header.compression() {
            0 => raw,
            1 => compress_with::<cmpr::Gzip>(&raw)?.to_vec(),
            2 => compress_with::<cmpr::Snappy>(&raw)?.to_vec(),
            3 => compress_with::<cmpr::Lz4>(&raw)?.to_vec(),
            4 => compress_with::<cmpr::Zstd>(&raw)?.to_vec(),
            c => return Err(StorageError::Corrupt(format!("unknown compression {c}"))),
        }
    };
    let start = out.len();
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
    out.extend_from_slice(&(survivors.len() as i32).to_be_bytes());
    out.extend_from_slice(&payload);
    let crc = crc32c::crc32c(&out[start + 21..]);
    out[start + 17..start + 21].copy_from_slice(&crc.to_be_bytes());
    debug_assert!(batch::validate_stored_batch(&out[start..]).is_ok());
    Ok(())
}
