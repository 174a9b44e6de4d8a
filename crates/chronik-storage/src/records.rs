//! Walks the records inside one RecordBatch v2 and checks that they are what the header claims,
//! as Kafka's broker does before an append (`DefaultRecord.readFrom`, `LogValidator`).
//!
//! Checked: the record count against the bytes (a count the payload cannot hold is refused
//! before any walking), each record's length prefix (fits the payload, consumed exactly), its
//! key/value/header lengths, its offset delta (0, 1, 2, … in a producer's batch; increasing and
//! within `lastOffsetDelta` in a compacted one), and that nothing follows the last record.
//! An uncompressed batch is walked in place: a linear pass over varints, no allocation.
//! A compressed one is read through [`crate::decompress::bounded_reader`], one record at a time
//! into one reused buffer, so it costs at most [`decompression_limit`] bytes of inflation and
//! never more memory than its largest record plus the codec's buffers.
//!
//! Record layout (varints are zigzag, as in protobuf):
//! ```text
//! length varint | attributes i8 | timestampDelta varlong | offsetDelta varint
//! keyLength varint | key | valueLength varint | value | headerCount varint
//! [headerKeyLength varint | headerKey | headerValueLength varint | headerValue]*
//! ```

use crate::batch::{BatchHeader, HEADER_SIZE};
use crate::decompress::{bounded_reader, DecompressError};

/// The smallest encoded record: a length byte and six one-byte fields.
const MIN_RECORD_SIZE: u64 = 7;

/// How much a compressed batch may inflate to, relative to `max.message.bytes` (at least 1 MiB).
pub const DECOMPRESSION_RATIO: usize = 64;

/// The bound on one batch's decompressed records for a log whose `max.message.bytes` is given:
/// 64 MiB at Kafka's default of 1 MiB.
pub fn decompression_limit(max_message_bytes: i32) -> usize {
    (max_message_bytes.max(1 << 20) as usize).saturating_mul(DECOMPRESSION_RATIO)
}

/// One record, borrowed from the batch (uncompressed) or the walker's buffer (compressed).
#[derive(Debug)]
pub struct RecordView<'a> {
    pub offset_delta: i32,
    pub timestamp_delta: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    /// The record's encoding after its length prefix.
    pub body: &'a [u8],
}

/// What the records' offset deltas must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffsetDeltas {
    /// 0, 1, 2, …: a batch as a producer builds it.
    Consecutive,
    /// Strictly increasing and at most `lastOffsetDelta`: a batch compaction has thinned.
    Increasing,
}

/// Why a batch's records are not what its header claims.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("record {index}: {reason}")]
    Malformed { index: u32, reason: &'static str },
    #[error("batch claims {claimed} records but its bytes hold {found}")]
    CountMismatch { claimed: i32, found: String },
    #[error("bytes follow the batch's last record")]
    TrailingBytes,
    /// A header a client may not send (Kafka's `LogValidator.validateBatch`).
    #[error("{0}")]
    Refused(&'static str),
    #[error(transparent)]
    Decompress(#[from] DecompressError),
}

/// Everything Kafka checks of a producer's batch beyond its header and CRC
/// ([`crate::batch::validate_batch`]): no control batch, a sequence with a producer id, and
/// records that are what the header claims (walked with `visit`, see [`walk_records`]).
pub fn check_client_batch(
    batch: &[u8],
    header: &BatchHeader,
    limit: usize,
    visit: impl FnMut(&RecordView<'_>),
) -> Result<u32, RecordError> {
    if header.is_control() {
        return Err(RecordError::Refused(
            "clients may not write control records",
        ));
    }
    if header.has_producer_id() && header.base_sequence < 0 {
        return Err(RecordError::Refused(
            "invalid sequence number for a producer id",
        ));
    }
    walk_records(batch, header, OffsetDeltas::Consecutive, limit, visit)
}

/// Walks the records of `batch` (a whole batch, header included, whose `header` was validated),
/// checks them and hands each to `visit`; returns how many there were.
pub fn walk_records(
    batch: &[u8],
    header: &BatchHeader,
    deltas: OffsetDeltas,
    limit: usize,
    mut visit: impl FnMut(&RecordView<'_>),
) -> Result<u32, RecordError> {
    let payload = &batch[HEADER_SIZE..header.total_size()];
    let claimed = header.records_count.max(0) as u64;
    let codec = header.compression();
    let room = if codec == 0 { payload.len() } else { limit };
    if claimed * MIN_RECORD_SIZE > room as u64 {
        return Err(RecordError::CountMismatch {
            claimed: header.records_count,
            found: format!("at most {}", room as u64 / MIN_RECORD_SIZE),
        });
    }
    let mut check = DeltaCheck::new(deltas, header.last_offset_delta);
    if codec == 0 {
        let mut pos = 0;
        for index in 0..claimed as u32 {
            let len = read_varint(payload, &mut pos)
                .filter(|len| *len >= 0 && *len as usize <= payload.len() - pos)
                .ok_or(RecordError::Malformed {
                    index,
                    reason: "invalid record length",
                })? as usize;
            let body = &payload[pos..pos + len];
            pos += len;
            let record =
                parse_body(body).map_err(|reason| RecordError::Malformed { index, reason })?;
            check.next(index, &record)?;
            visit(&record);
        }
        if pos != payload.len() {
            return Err(RecordError::TrailingBytes);
        }
        return Ok(claimed as u32);
    }
    let mut reader = bounded_reader(codec, payload, limit)?;
    let mut buf = Vec::new();
    for index in 0..claimed as u32 {
        let len = read_stream_varint(&mut reader, index)?.ok_or(RecordError::CountMismatch {
            claimed: header.records_count,
            found: index.to_string(),
        })?;
        if len < 0 {
            return Err(RecordError::Malformed {
                index,
                reason: "invalid record length",
            });
        }
        if len as u64 > reader.remaining() as u64 {
            return Err(DecompressError::TooLarge { limit }.into());
        }
        buf.resize(len as usize, 0);
        reader.read_exact_bounded(&mut buf)?;
        let record = parse_body(&buf).map_err(|reason| RecordError::Malformed { index, reason })?;
        check.next(index, &record)?;
        visit(&record);
    }
    if reader.next_byte()?.is_some() {
        return Err(RecordError::TrailingBytes);
    }
    Ok(claimed as u32)
}

struct DeltaCheck {
    deltas: OffsetDeltas,
    last_offset_delta: i32,
    previous: i64,
}

impl DeltaCheck {
    fn new(deltas: OffsetDeltas, last_offset_delta: i32) -> Self {
        DeltaCheck {
            deltas,
            last_offset_delta,
            previous: -1,
        }
    }

    fn next(&mut self, index: u32, record: &RecordView<'_>) -> Result<(), RecordError> {
        let delta = record.offset_delta as i64;
        let ok = match self.deltas {
            OffsetDeltas::Consecutive => delta == index as i64,
            OffsetDeltas::Increasing => {
                delta > self.previous && delta <= self.last_offset_delta as i64
            }
        };
        if !ok {
            return Err(RecordError::Malformed {
                index,
                reason: "offset delta out of sequence",
            });
        }
        self.previous = delta;
        Ok(())
    }
}

/// Parses a record's fields after its length prefix; the body must be consumed exactly.
fn parse_body(body: &[u8]) -> Result<RecordView<'_>, &'static str> {
    let mut pos = 1; // attributes, unused in v2
    if body.is_empty() {
        return Err("empty record");
    }
    let timestamp_delta = read_varint(body, &mut pos).ok_or("invalid timestamp delta")?;
    let offset_delta = read_varint(body, &mut pos)
        .and_then(|d| i32::try_from(d).ok())
        .ok_or("invalid offset delta")?;
    let key = read_nullable(body, &mut pos).ok_or("invalid key length")?;
    let value = read_nullable(body, &mut pos).ok_or("invalid value length")?;
    let headers = read_varint(body, &mut pos)
        .filter(|n| *n >= 0)
        .ok_or("invalid header count")?;
    for _ in 0..headers {
        // Header keys are non-null strings; the loop ends as soon as the bytes run out.
        read_nullable(body, &mut pos)
            .and_then(|k| k)
            .ok_or("invalid header key")?;
        read_nullable(body, &mut pos).ok_or("invalid header value")?;
    }
    if pos != body.len() {
        return Err("record length does not match its fields");
    }
    Ok(RecordView {
        offset_delta,
        timestamp_delta,
        key,
        value,
        body,
    })
}

/// A varint-length-prefixed byte string (-1 = null) at `pos`; `None` if malformed.
fn read_nullable<'a>(buf: &'a [u8], pos: &mut usize) -> Option<Option<&'a [u8]>> {
    let len = read_varint(buf, pos)?;
    if len == -1 {
        return Some(None);
    }
    if len < 0 || len as u64 > (buf.len() - *pos) as u64 {
        return None;
    }
    let bytes = &buf[*pos..*pos + len as usize];
    *pos += len as usize;
    Some(Some(bytes))
}

/// A zigzag varlong (at most 10 bytes) at `pos`, which it advances; `None` if malformed.
pub(crate) fn read_varint(buf: &[u8], pos: &mut usize) -> Option<i64> {
    let mut raw = 0u64;
    for shift in (0..70).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        raw |= ((b & 0x7f) as u64) << shift;
        if b & 0x80 == 0 {
            return Some((raw >> 1) as i64 ^ -((raw & 1) as i64));
        }
    }
    None
}

/// A zigzag varint (a record length, at most 5 bytes) from a stream; `None` at its clean end.
fn read_stream_varint<R: std::io::Read>(
    reader: &mut crate::decompress::Bounded<R>,
    index: u32,
) -> Result<Option<i64>, RecordError> {
    let mut raw = 0u64;
    for shift in (0..35).step_by(7) {
        let Some(b) = reader.next_byte()? else {
            return if shift == 0 {
                Ok(None)
            } else {
                Err(DecompressError::Corrupt("records end inside a length".into()).into())
            };
        };
        raw |= ((b & 0x7f) as u64) << shift;
        if b & 0x80 == 0 {
            return Ok(Some((raw >> 1) as i64 ^ -((raw & 1) as i64)));
        }
    }
    Err(RecordError::Malformed {
        index,
        reason: "record length varint too long",
    })
}

/// Appends `v` as a zigzag varint.
pub(crate) fn put_varint(buf: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        buf.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
    buf.push(z as u8);
}

#[cfg(test)]
#[path = "records_tests.rs"]
mod tests;
