//! Test helpers: build real record batches with kafka-protocol's encoder.

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// One record for [`kv_batch`]: key, value (None = tombstone), timestamp.
pub type Kv<'a> = (Option<&'a str>, Option<&'a str>, i64);

/// A batch of records with the given keys/values/timestamps, base offset 0.
pub fn kv_batch(records: &[Kv<'_>], compression: Compression) -> Vec<u8> {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (k, v, ts))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32,
            timestamp: *ts,
            key: k.map(|k| Bytes::copy_from_slice(k.as_bytes())),
            value: v.map(|v| Bytes::copy_from_slice(v.as_bytes())),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .expect("encode");
    buf.to_vec()
}

/// A batch of `n` records with values `v0..`, timestamps `ts, ts+1, ...`.
pub fn batch(n: usize, ts: i64) -> Vec<u8> {
    let values: Vec<String> = (0..n)
        .map(|i| format!("value-{i}-{}", "x".repeat(i % 7)))
        .collect();
    let records: Vec<Kv<'_>> = values
        .iter()
        .enumerate()
        .map(|(i, v)| (None, Some(v.as_str()), ts + i as i64))
        .collect();
    kv_batch(&records, Compression::None)
}

/// Decodes all records in `bytes` as (offset, key, value, timestamp).
pub fn decode_all(bytes: &[u8]) -> Vec<(i64, Option<Bytes>, Option<Bytes>, i64)> {
    let mut buf = Bytes::copy_from_slice(bytes);
    kafka_protocol::records::RecordBatchDecoder::decode_all(&mut buf)
        .expect("decode")
        .into_iter()
        .flat_map(|set| set.records)
        .map(|r| (r.offset, r.key, r.value, r.timestamp))
        .collect()
}
