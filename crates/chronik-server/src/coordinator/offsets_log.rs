//! The records of the internal compacted topic `__consumer_offsets`, in Kafka's own layout, so
//! the data is readable by Kafka tooling and compaction keeps the latest value per key.
//!
//! Keys (big-endian, Kafka's non-flexible encoding: int16-length strings):
//! - offset commit, key version 1: `version:i16 group:string topic:string partition:i32`
//! - group metadata, key version 2: `version:i16 group:string`
//!
//! Values:
//! - offset commit, value version 3: `version:i16 offset:i64 leader_epoch:i32 metadata:string
//!   commit_timestamp:i64`
//! - group metadata, value version 3: `version:i16 protocol_type:string generation:i32
//!   protocol:nullable_string leader:nullable_string current_state_timestamp:i64
//!   members:[member_id client_instance... ]` (see `GroupMetadataValue::encode`)
//!
//! A record with a null value is a tombstone: the offset (or the whole group) is deleted.
//! This module only encodes and decodes; appending and reading the log is the coordinator's job.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use chronik_storage::records::{decompression_limit, walk_records, OffsetDeltas};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// What one `__consumer_offsets` record says.
#[derive(Clone, Debug, PartialEq)]
pub enum OffsetsRecord {
    /// `value` None is a tombstone.
    Offset {
        group: String,
        topic: String,
        partition: i32,
        value: Option<OffsetValue>,
    },
    Group {
        group: String,
        value: Option<GroupMetadataValue>,
    },
}

/// A committed offset as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
}

/// One member as stored in group metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// A group's metadata as stored after each completed rebalance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupMetadataValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub current_state_timestamp: i64,
    pub members: Vec<StoredMember>,
}

#[derive(Debug, thiserror::Error)]
#[error("malformed __consumer_offsets record: {0}")]
pub struct DecodeError(&'static str);

/// A string or byte field too long for its length prefix: writing it would corrupt the record.
#[derive(Debug, thiserror::Error)]
#[error("a {0}-byte field does not fit a __consumer_offsets record")]
pub struct EncodeError(usize);

fn put_str(buf: &mut BytesMut, s: &str) -> Result<(), EncodeError> {
    let len = i16::try_from(s.len()).map_err(|_| EncodeError(s.len()))?;
    buf.put_i16(len);
    buf.put_slice(s.as_bytes());
    Ok(())
}

fn put_nullable_str(buf: &mut BytesMut, s: Option<&str>) -> Result<(), EncodeError> {
    match s {
        Some(s) => put_str(buf, s),
        None => {
            buf.put_i16(-1);
            Ok(())
        }
    }
}

fn put_bytes(buf: &mut BytesMut, b: &[u8]) -> Result<(), EncodeError> {
    let len = i32::try_from(b.len()).map_err(|_| EncodeError(b.len()))?;
    buf.put_i32(len);
    buf.put_slice(b);
    Ok(())
}

fn need(buf: &Bytes, n: usize) -> Result<(), DecodeError> {
    if buf.remaining() < n {
        Err(DecodeError("truncated"))
    } else {
        Ok(())
    }
}

fn get_i16(buf: &mut Bytes) -> Result<i16, DecodeError> {
    need(buf, 2)?;
    Ok(buf.get_i16())
}

fn get_i32(buf: &mut Bytes) -> Result<i32, DecodeError> {
    need(buf, 4)?;
    Ok(buf.get_i32())
}

fn get_i64(buf: &mut Bytes) -> Result<i64, DecodeError> {
    need(buf, 8)?;
    Ok(buf.get_i64())
}

fn get_nullable_str(buf: &mut Bytes) -> Result<Option<String>, DecodeError> {
    let len = get_i16(buf)?;
    if len < 0 {
        return Ok(None);
    }
    need(buf, len as usize)?;
    let raw = buf.split_to(len as usize);
    String::from_utf8(raw.to_vec())
        .map(Some)
        .map_err(|_| DecodeError("string is not UTF-8"))
}

fn get_str(buf: &mut Bytes) -> Result<String, DecodeError> {
    Ok(get_nullable_str(buf)?.unwrap_or_default())
}

fn get_bytes(buf: &mut Bytes) -> Result<Bytes, DecodeError> {
    let len = get_i32(buf)?;
    if len < 0 {
        return Ok(Bytes::new());
    }
    need(buf, len as usize)?;
    Ok(buf.split_to(len as usize))
}

impl OffsetValue {
    fn encode(&self) -> Result<Bytes, EncodeError> {
        let mut buf = BytesMut::with_capacity(32 + self.metadata.len());
        buf.put_i16(3);
        buf.put_i64(self.offset);
        buf.put_i32(self.leader_epoch);
        put_str(&mut buf, &self.metadata)?;
        buf.put_i64(self.commit_timestamp);
        Ok(buf.freeze())
    }

    fn decode(mut buf: Bytes) -> Result<OffsetValue, DecodeError> {
        let version = get_i16(&mut buf)?;
        let offset = get_i64(&mut buf)?;
        let leader_epoch = if version >= 3 { get_i32(&mut buf)? } else { -1 };
        let metadata = get_str(&mut buf)?;
        let commit_timestamp = get_i64(&mut buf)?;
        Ok(OffsetValue {
            offset,
            leader_epoch,
            metadata,
            commit_timestamp,
        })
    }
}

impl GroupMetadataValue {
    fn encode(&self) -> Result<Bytes, EncodeError> {
        let mut buf = BytesMut::with_capacity(128);
        buf.put_i16(3);
        put_str(&mut buf, &self.protocol_type)?;
        buf.put_i32(self.generation);
        put_nullable_str(&mut buf, self.protocol.as_deref())?;
        put_nullable_str(&mut buf, self.leader.as_deref())?;
        buf.put_i64(self.current_state_timestamp);
        buf.put_i32(self.members.len() as i32);
        for m in &self.members {
            put_str(&mut buf, &m.member_id)?;
            put_nullable_str(&mut buf, m.group_instance_id.as_deref())?;
            put_str(&mut buf, &m.client_id)?;
            put_str(&mut buf, &m.client_host)?;
            buf.put_i32(m.rebalance_timeout_ms);
            buf.put_i32(m.session_timeout_ms);
            put_bytes(&mut buf, &m.subscription)?;
            put_bytes(&mut buf, &m.assignment)?;
        }
        Ok(buf.freeze())
    }

    fn decode(mut buf: Bytes) -> Result<GroupMetadataValue, DecodeError> {
        let version = get_i16(&mut buf)?;
        let protocol_type = get_str(&mut buf)?;
        let generation = get_i32(&mut buf)?;
        let protocol = get_nullable_str(&mut buf)?;
        let leader = get_nullable_str(&mut buf)?;
        let current_state_timestamp = if version >= 2 { get_i64(&mut buf)? } else { -1 };
        let count = get_i32(&mut buf)?.max(0);
        let mut members = Vec::new();
        for _ in 0..count {
            let member_id = get_str(&mut buf)?;
            let group_instance_id = if version >= 3 {
                get_nullable_str(&mut buf)?
            } else {
                None
            };
            let client_id = get_str(&mut buf)?;
            let client_host = get_str(&mut buf)?;
            let rebalance_timeout_ms = if version >= 1 { get_i32(&mut buf)? } else { -1 };
            let session_timeout_ms = get_i32(&mut buf)?;
            let subscription = get_bytes(&mut buf)?;
            let assignment = get_bytes(&mut buf)?;
            members.push(StoredMember {
                member_id,
                group_instance_id,
                client_id,
                client_host,
                rebalance_timeout_ms,
                session_timeout_ms,
                subscription,
                assignment,
            });
        }
        Ok(GroupMetadataValue {
            protocol_type,
            generation,
            protocol,
            leader,
            current_state_timestamp,
            members,
        })
    }
}

impl OffsetsRecord {
    /// (key, value) bytes of this record.
    pub fn encode(&self) -> Result<(Bytes, Option<Bytes>), EncodeError> {
        let mut key = BytesMut::with_capacity(64);
        match self {
            OffsetsRecord::Offset {
                group,
                topic,
                partition,
                value,
            } => {
                key.put_i16(1);
                put_str(&mut key, group)?;
                put_str(&mut key, topic)?;
                key.put_i32(*partition);
                let value = value.as_ref().map(OffsetValue::encode).transpose()?;
                Ok((key.freeze(), value))
            }
            OffsetsRecord::Group { group, value } => {
                key.put_i16(2);
                put_str(&mut key, group)?;
                let value = value.as_ref().map(GroupMetadataValue::encode).transpose()?;
                Ok((key.freeze(), value))
            }
        }
    }

    /// Parses one record's key and value; Ok(None) for key versions this broker does not use.
    pub fn decode(key: Bytes, value: Option<Bytes>) -> Result<Option<OffsetsRecord>, DecodeError> {
        let mut key = key;
        match get_i16(&mut key)? {
            0 | 1 => {
                let group = get_str(&mut key)?;
                let topic = get_str(&mut key)?;
                let partition = get_i32(&mut key)?;
                let value = value.map(OffsetValue::decode).transpose()?;
                Ok(Some(OffsetsRecord::Offset {
                    group,
                    topic,
                    partition,
                    value,
                }))
            }
            2 => {
                let group = get_str(&mut key)?;
                let value = value.map(GroupMetadataValue::decode).transpose()?;
                Ok(Some(OffsetsRecord::Group { group, value }))
            }
            _ => Ok(None),
        }
    }
}

/// Encodes records into one uncompressed v2 record batch, ready for `ReplicaManager::append`.
pub fn encode_batch(records: &[OffsetsRecord], timestamp: i64) -> Result<Bytes, EncodeError> {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let (key, value) = r.encode()?;
            Ok(Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: -1,
                timestamp,
                key: Some(key),
                value,
                headers: IndexMap::new(),
            })
        })
        .collect::<Result<_, EncodeError>>()?;
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("encoding an uncompressed record batch cannot fail");
    Ok(buf.freeze())
}

/// Decodes every record of `batches` (whole v2 batches as read from the log), skipping control
/// records and records this broker does not understand. A record (or the rest of a batch) that
/// cannot be decoded is skipped and handed to `skipped` with its offset: one poison record must
/// not keep the coordinator from loading every other group. Compressed batches inflate within
/// the storage layer's bound.
pub fn decode_batches(batches: &[u8], mut skipped: impl FnMut(i64, String)) -> Vec<OffsetsRecord> {
    let limit = decompression_limit(chronik_storage::LogConfig::default().max_message_bytes);
    let mut out = Vec::new();
    for item in chronik_storage::batches(batches) {
        let (header, range) = match item {
            Ok(found) => found,
            Err(e) => {
                skipped(-1, e.to_string());
                break;
            }
        };
        if header.is_control() {
            continue;
        }
        let walked = walk_records(
            &batches[range],
            &header,
            OffsetDeltas::Increasing,
            limit,
            |r| {
                let Some(key) = r.key else { return };
                let offset = header.base_offset + r.offset_delta as i64;
                let key = Bytes::copy_from_slice(key);
                match OffsetsRecord::decode(key, r.value.map(Bytes::copy_from_slice)) {
                    Ok(Some(parsed)) => out.push(parsed),
                    Ok(None) => {}
                    Err(e) => skipped(offset, e.to_string()),
                }
            },
        );
        if let Err(e) = walked {
            skipped(header.base_offset, format!("batch: {e}"));
        }
    }
    out
}

/// Java's `String.hashCode` over UTF-16 code units, as Kafka uses to place groups.
pub fn java_string_hashcode(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32))
}

/// The `__consumer_offsets` partition of a group: Kafka's `Utils.abs(groupId.hashCode) % n`.
pub fn partition_for(group: &str, partitions: i32) -> i32 {
    let h = java_string_hashcode(group);
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_a_batch() {
        let records = vec![
            OffsetsRecord::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 3,
                value: Some(OffsetValue {
                    offset: 42,
                    leader_epoch: 0,
                    metadata: "m".into(),
                    commit_timestamp: 1000,
                }),
            },
            OffsetsRecord::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 4,
                value: None,
            },
            OffsetsRecord::Group {
                group: "g".into(),
                value: Some(GroupMetadataValue {
                    protocol_type: "consumer".into(),
                    generation: 7,
                    protocol: Some("range".into()),
                    leader: Some("m-1".into()),
                    current_state_timestamp: 5,
                    members: vec![StoredMember {
                        member_id: "m-1".into(),
                        group_instance_id: Some("i".into()),
                        client_id: "c".into(),
                        client_host: "/127.0.0.1".into(),
                        rebalance_timeout_ms: 10,
                        session_timeout_ms: 20,
                        subscription: Bytes::from_static(b"sub"),
                        assignment: Bytes::from_static(b"asg"),
                    }],
                }),
            },
            OffsetsRecord::Group {
                group: "h".into(),
                value: None,
            },
        ];
        let batch = encode_batch(&records, 123).unwrap();
        let decoded = decode_batches(&batch, |offset, e| panic!("skipped {offset}: {e}"));
        assert_eq!(decoded, records);
    }

    #[test]
    fn a_poison_record_is_skipped_and_the_rest_loads() {
        let good = |partition| OffsetsRecord::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition,
            value: None,
        };
        let mut bytes = encode_batch(&[good(0)], 1).unwrap().to_vec();
        // A record whose key claims a 100-byte group name it does not hold.
        let poison = OffsetsRecord::Group {
            group: "x".into(),
            value: None,
        };
        let mut batch = encode_batch(&[poison, good(1)], 2).unwrap().to_vec();
        let key_at = batch
            .windows(5)
            .position(|w| w == [0, 2, 0, 1, b'x'])
            .unwrap();
        batch[key_at + 3] = 100;
        let crc = crc32c::crc32c(&batch[21..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
        bytes.extend_from_slice(&batch);
        let mut skipped = Vec::new();
        let decoded = decode_batches(&bytes, |offset, e| skipped.push((offset, e)));
        assert_eq!(decoded, vec![good(0), good(1)]);
        assert_eq!(skipped.len(), 1, "{skipped:?}");
    }

    #[test]
    fn strings_too_long_for_their_prefix_are_refused() {
        let record = OffsetsRecord::Offset {
            group: "g".repeat(40_000),
            topic: "t".into(),
            partition: 0,
            value: None,
        };
        assert!(record.encode().is_err());
        assert!(encode_batch(&[record], 0).is_err());
    }

    #[test]
    fn offset_key_layout_matches_kafka() {
        let (key, _) = OffsetsRecord::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 1,
            value: None,
        }
        .encode()
        .unwrap();
        assert_eq!(&key[..], &[0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 1]);
    }

    #[test]
    fn group_placement_matches_java() {
        // "hello".hashCode() == 99162322 in Java.
        assert_eq!(java_string_hashcode("hello"), 99_162_322);
        assert_eq!(partition_for("hello", 50), 99_162_322 % 50);
        // "polygenelubricants".hashCode() == Integer.MIN_VALUE → Utils.abs gives 0.
        assert_eq!(java_string_hashcode("polygenelubricants"), i32::MIN);
        assert_eq!(partition_for("polygenelubricants", 50), 0);
    }
}
