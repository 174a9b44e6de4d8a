//! A hand-written view of the Kafka RecordBatch v2 header.
//!
//! Owns parsing, validating and patching the 61-byte header of a batch held in a byte
//! buffer. It never decodes or re-encodes the records themselves: batches are stored
//! verbatim, and only `baseOffset` and `partitionLeaderEpoch` (which the CRC does not
//! cover) are patched in place. The one exception is [`set_log_append_time`], which
//! rewrites attributes and `maxTimestamp` and therefore recomputes the CRC.
//!
//! Header layout (all big-endian):
//! ```text
//!  0 baseOffset i64        8 batchLength i32      12 partitionLeaderEpoch i32
//! 16 magic i8             17 crc u32 (CRC-32C of bytes 21..end of batch)
//! 21 attributes i16       23 lastOffsetDelta i32 27 baseTimestamp i64
//! 35 maxTimestamp i64     43 producerId i64      51 producerEpoch i16
//! 53 baseSequence i32     57 recordsCount i32    61 records...
//! ```
//! `batchLength` counts the bytes after the length field, so a batch occupies
//! `batchLength + 12` bytes.

use std::ops::Range;

/// Size of the fixed RecordBatch v2 header.
pub const HEADER_SIZE: usize = 61;
/// Bytes before (and including) the batch length field.
pub const LOG_OVERHEAD: usize = 12;

const BASE_OFFSET: usize = 0;
const BATCH_LENGTH: usize = 8;
const PARTITION_LEADER_EPOCH: usize = 12;
const MAGIC: usize = 16;
const CRC: usize = 17;
const ATTRIBUTES: usize = 21;
const LAST_OFFSET_DELTA: usize = 23;
const BASE_TIMESTAMP: usize = 27;
const MAX_TIMESTAMP: usize = 35;
const PRODUCER_ID: usize = 43;
const PRODUCER_EPOCH: usize = 51;
const BASE_SEQUENCE: usize = 53;
const RECORDS_COUNT: usize = 57;

const TIMESTAMP_TYPE_BIT: i16 = 1 << 3;
const TRANSACTIONAL_BIT: i16 = 1 << 4;
const CONTROL_BIT: i16 = 1 << 5;

/// Why a buffer is not a valid batch. Cheap to create and copy: a torn tail during
/// recovery is a normal event, not an exceptional one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// The buffer ends before the header or the batch does.
    #[error("batch truncated: need {needed} bytes, have {available}")]
    Truncated { needed: usize, available: usize },
    /// Magic byte is not 2.
    #[error("unsupported batch magic {0}")]
    BadMagic(i8),
    /// Stored CRC does not match the computed CRC-32C.
    #[error("batch CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CorruptCrc { stored: u32, computed: u32 },
    /// `batchLength` is smaller than a header or absurdly large.
    #[error("invalid batch length {0}")]
    InvalidLength(i32),
    /// `recordsCount` negative or inconsistent with `lastOffsetDelta`.
    #[error("invalid record count {records_count} for lastOffsetDelta {last_offset_delta}")]
    InvalidRecordCount {
        records_count: i32,
        last_offset_delta: i32,
    },
}

/// Parsed fields of a RecordBatch v2 header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

impl BatchHeader {
    /// Offset of the last record (`baseOffset + lastOffsetDelta`).
    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }

    /// Bytes the whole batch occupies, header included.
    pub fn total_size(&self) -> usize {
        self.batch_length as usize + LOG_OVERHEAD
    }

    /// Compression codec id (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
    pub fn compression(&self) -> u8 {
        (self.attributes & 7) as u8
    }

    pub fn timestamp_type_is_log_append(&self) -> bool {
        self.attributes & TIMESTAMP_TYPE_BIT != 0
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }

    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }
}

fn i16_at(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn i64_at(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Parses the header at the start of `buf`. Checks the magic byte and that the length
/// is at least a header, but not the CRC nor that the whole batch is present.
pub fn parse_header(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    if buf.len() < HEADER_SIZE {
        return Err(BatchError::Truncated {
            needed: HEADER_SIZE,
            available: buf.len(),
        });
    }
    let magic = buf[MAGIC] as i8;
    if magic != 2 {
        return Err(BatchError::BadMagic(magic));
    }
    let batch_length = i32_at(buf, BATCH_LENGTH);
    if batch_length < (HEADER_SIZE - LOG_OVERHEAD) as i32 || batch_length > i32::MAX - 12 {
        return Err(BatchError::InvalidLength(batch_length));
    }
    Ok(BatchHeader {
        base_offset: i64_at(buf, BASE_OFFSET),
        batch_length,
        partition_leader_epoch: i32_at(buf, PARTITION_LEADER_EPOCH),
        magic,
        crc: i32_at(buf, CRC) as u32,
        attributes: i16_at(buf, ATTRIBUTES),
        last_offset_delta: i32_at(buf, LAST_OFFSET_DELTA),
        base_timestamp: i64_at(buf, BASE_TIMESTAMP),
        max_timestamp: i64_at(buf, MAX_TIMESTAMP),
        producer_id: i64_at(buf, PRODUCER_ID),
        producer_epoch: i16_at(buf, PRODUCER_EPOCH),
        base_sequence: i32_at(buf, BASE_SEQUENCE),
        records_count: i32_at(buf, RECORDS_COUNT),
    })
}

fn check_complete_and_crc(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = parse_header(buf)?;
    let total = header.total_size();
    if buf.len() < total {
        return Err(BatchError::Truncated {
            needed: total,
            available: buf.len(),
        });
    }
    let computed = crc32c::crc32c(&buf[ATTRIBUTES..total]);
    if computed != header.crc {
        return Err(BatchError::CorruptCrc {
            stored: header.crc,
            computed,
        });
    }
    if header.records_count < 0 || header.last_offset_delta < 0 {
        return Err(BatchError::InvalidRecordCount {
            records_count: header.records_count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    Ok(header)
}

/// Validates a batch as a producer sends it: magic 2, sane length, the whole batch
/// present in `buf` (trailing bytes are ignored), CRC-32C matching, and
/// `recordsCount == lastOffsetDelta + 1` for a non-empty batch.
pub fn validate_batch(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = check_complete_and_crc(buf)?;
    if header.records_count > 0
        && header.records_count as i64 != header.last_offset_delta as i64 + 1
    {
        return Err(BatchError::InvalidRecordCount {
            records_count: header.records_count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    Ok(header)
}

/// Validates a batch read back from the log. Like [`validate_batch`] but allows
/// `recordsCount < lastOffsetDelta + 1`, which compaction produces (it keeps a batch's
/// offset range while dropping some of its records).
pub fn validate_stored_batch(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = check_complete_and_crc(buf)?;
    if header.records_count as i64 > header.last_offset_delta as i64 + 1 {
        return Err(BatchError::InvalidRecordCount {
            records_count: header.records_count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    Ok(header)
}

/// Overwrites `baseOffset` (not covered by the CRC). Panics if `buf` is shorter than a header.
pub fn patch_base_offset(buf: &mut [u8], base_offset: i64) {
    buf[BASE_OFFSET..BASE_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Overwrites `partitionLeaderEpoch` (not covered by the CRC).
pub fn patch_partition_leader_epoch(buf: &mut [u8], epoch: i32) {
    buf[PARTITION_LEADER_EPOCH..PARTITION_LEADER_EPOCH + 4].copy_from_slice(&epoch.to_be_bytes());
}

/// Marks the batch as LogAppendTime with `maxTimestamp = ts` and recomputes the CRC.
/// `buf` must hold the whole batch (it may hold more after it).
pub fn set_log_append_time(buf: &mut [u8], ts: i64) {
    let attributes = i16_at(buf, ATTRIBUTES) | TIMESTAMP_TYPE_BIT;
    buf[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    buf[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&ts.to_be_bytes());
    let total = i32_at(buf, BATCH_LENGTH) as usize + LOG_OVERHEAD;
    let crc = crc32c::crc32c(&buf[ATTRIBUTES..total]);
    buf[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Iterator over concatenated batches in a buffer. Yields each header with the byte
/// range of its batch; checks headers only (not CRCs). After the first error it stops.
pub struct BatchIter<'a> {
    buf: &'a [u8],
    pos: usize,
}

/// Iterates over the batches held back to back in `buf`.
pub fn batches(buf: &[u8]) -> BatchIter<'_> {
    BatchIter { buf, pos: 0 }
}

impl BatchIter<'_> {
    /// Byte position of the next batch (the end of the last yielded one).
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl Iterator for BatchIter<'_> {
    type Item = Result<(BatchHeader, Range<usize>), BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let rest = &self.buf[self.pos..];
        let result = parse_header(rest).and_then(|h| {
            if rest.len() < h.total_size() {
                Err(BatchError::Truncated {
                    needed: h.total_size(),
                    available: rest.len(),
                })
            } else {
                Ok(h)
            }
        });
        match result {
            Ok(h) => {
                let range = self.pos..self.pos + h.total_size();
                self.pos = range.end;
                Some(Ok((h, range)))
            }
            Err(e) => {
                self.pos = self.buf.len();
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{batch, kv_batch};
    use kafka_protocol::records::Compression;

    #[test]
    fn parses_encoder_output_for_every_compression() {
        for compression in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let buf = kv_batch(
                &[
                    (Some("a"), Some("1"), 1000),
                    (Some("b"), None, 1005),
                    (None, Some("3"), 1002),
                ],
                compression,
            );
            let h = validate_batch(&buf).unwrap();
            assert_eq!(h.base_offset, 0);
            assert_eq!(h.magic, 2);
            assert_eq!(h.records_count, 3);
            assert_eq!(h.last_offset_delta, 2);
            assert_eq!(h.last_offset(), 2);
            assert_eq!(h.base_timestamp, 1000);
            assert_eq!(h.max_timestamp, 1005);
            assert_eq!(h.total_size(), buf.len());
            assert_eq!(h.compression(), compression as u8);
            assert!(!h.is_control() && !h.is_transactional() && !h.has_producer_id());
            assert!(!h.timestamp_type_is_log_append());
        }
    }

    #[test]
    fn patching_offset_and_epoch_keeps_crc_valid() {
        let mut buf = batch(5, 10);
        patch_base_offset(&mut buf, 1234);
        patch_partition_leader_epoch(&mut buf, 7);
        let h = validate_batch(&buf).unwrap();
        assert_eq!(h.base_offset, 1234);
        assert_eq!(h.partition_leader_epoch, 7);
        assert_eq!(h.last_offset(), 1238);
    }

    #[test]
    fn log_append_time_recomputes_crc() {
        let mut buf = batch(3, 10);
        set_log_append_time(&mut buf, 99_999);
        let h = validate_batch(&buf).unwrap();
        assert!(h.timestamp_type_is_log_append());
        assert_eq!(h.max_timestamp, 99_999);
    }

    #[test]
    fn detects_corruption_truncation_and_bad_magic() {
        let buf = batch(3, 10);
        let mut flipped = buf.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x40;
        assert!(matches!(
            validate_batch(&flipped),
            Err(BatchError::CorruptCrc { .. })
        ));
        assert!(matches!(
            validate_batch(&buf[..buf.len() - 1]),
            Err(BatchError::Truncated { .. })
        ));
        assert!(matches!(
            parse_header(&buf[..60]),
            Err(BatchError::Truncated { .. })
        ));
        let mut magic = buf.clone();
        magic[16] = 1;
        assert_eq!(validate_batch(&magic), Err(BatchError::BadMagic(1)));
        let mut len = buf.clone();
        len[8..12].copy_from_slice(&10i32.to_be_bytes());
        assert_eq!(parse_header(&len), Err(BatchError::InvalidLength(10)));
        let mut count = buf.clone();
        count[57..61].copy_from_slice(&2i32.to_be_bytes());
        // recordsCount is CRC-covered, so fix the CRC to isolate the count check.
        let crc = crc32c::crc32c(&count[21..]);
        count[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            validate_batch(&count),
            Err(BatchError::InvalidRecordCount { .. })
        ));
        assert!(validate_stored_batch(&count).is_ok());
    }

    #[test]
    fn iterates_concatenated_batches() {
        let mut buf = batch(2, 0);
        let second = batch(4, 0);
        buf.extend_from_slice(&second);
        let items: Vec<_> = batches(&buf).collect::<Result<_, _>>().unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].0.records_count, 2);
        assert_eq!(items[1].1, buf.len() - second.len()..buf.len());
        let torn: Vec<_> = batches(&buf[..buf.len() - 3]).collect();
        assert_eq!(torn.len(), 2);
        assert!(matches!(torn[1], Err(BatchError::Truncated { .. })));
    }
}
