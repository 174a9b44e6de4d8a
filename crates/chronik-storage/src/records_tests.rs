//! Tests of the record walker: real encoder output passes for every codec, every lie a header
//! or a record can tell is refused, and no input panics or inflates past the bound.

use super::*;
use crate::batch::validate_batch;
use crate::test_util::kv_batch;
use kafka_protocol::records::Compression;
use proptest::prelude::*;

const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

fn fix_crc(buf: &mut [u8]) {
    let crc = crc32c::crc32c(&buf[21..]);
    buf[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// A record's key and value, owned.
type Kv = (Option<Vec<u8>>, Option<Vec<u8>>);

fn walk(buf: &[u8], limit: usize) -> Result<Vec<Kv>, RecordError> {
    let header = validate_batch(buf).expect("valid header");
    let mut seen = Vec::new();
    check_client_batch(buf, &header, limit, |r| {
        seen.push((r.key.map(<[u8]>::to_vec), r.value.map(<[u8]>::to_vec)))
    })?;
    Ok(seen)
}

#[test]
fn encoder_output_passes_for_every_codec() {
    for compression in CODECS {
        let buf = kv_batch(
            &[
                (Some("a"), Some("1"), 10),
                (None, Some("2"), 11),
                (Some("c"), None, 12),
            ],
            compression,
        );
        let seen = walk(&buf, 1 << 20).unwrap();
        assert_eq!(
            seen,
            vec![
                (Some(b"a".to_vec()), Some(b"1".to_vec())),
                (None, Some(b"2".to_vec())),
                (Some(b"c".to_vec()), None),
            ],
            "{compression:?}"
        );
    }
}

#[test]
fn a_batch_claiming_two_billion_records_is_refused_at_once() {
    for compression in CODECS {
        let started = std::time::Instant::now();
        assert!(
            matches!(
                walk(&claiming(i32::MAX, compression), 64 << 20),
                Err(RecordError::CountMismatch { .. })
            ),
            "{compression:?}"
        );
        assert!(started.elapsed() < std::time::Duration::from_millis(100));
    }
}

/// A one-record batch whose header claims `count` records (lastOffsetDelta to match).
fn claiming(count: i32, compression: Compression) -> Vec<u8> {
    let mut buf = kv_batch(&[(Some("key"), Some("a-longer-value"), 1)], compression);
    buf[23..27].copy_from_slice(&(count - 1).to_be_bytes());
    buf[57..61].copy_from_slice(&count.to_be_bytes());
    fix_crc(&mut buf);
    buf
}

#[test]
fn a_count_the_bytes_almost_hold_is_still_counted() {
    // Two records claimed, one present: the walk, not the size check, must catch it.
    assert!(matches!(
        walk(&claiming(2, Compression::None), 1 << 20),
        Err(RecordError::Malformed { index: 1, .. })
    ));
    assert!(matches!(
        walk(&claiming(2, Compression::Zstd), 1 << 20),
        Err(RecordError::CountMismatch { .. })
    ));
}

#[test]
fn lying_records_are_refused() {
    let good = kv_batch(
        &[(Some("k1"), Some("v1"), 1), (Some("k2"), Some("v2"), 2)],
        Compression::None,
    );
    // The first record starts at 61: its length varint, attributes, timestamp delta, offset delta.
    let mut long = good.clone();
    long[61] += 2; // length claims 1 byte more than its fields
    fix_crc(&mut long);
    assert!(matches!(
        walk(&long, 1 << 20),
        Err(RecordError::Malformed { index: 0, .. })
    ));

    let mut delta = good.clone();
    let second = 61 + 1 + (good[61] / 2) as usize; // zigzag length of record 0
    delta[second + 3] = 2 * 5; // offset delta 5 instead of 1
    fix_crc(&mut delta);
    assert!(matches!(
        walk(&delta, 1 << 20),
        Err(RecordError::Malformed { index: 1, .. })
    ));

    let mut key = good.clone();
    key[61 + 4] = 2 * 100; // key length 100 in a record of a few bytes
    fix_crc(&mut key);
    assert!(matches!(
        walk(&key, 1 << 20),
        Err(RecordError::Malformed { index: 0, .. })
    ));

    let mut trailing = good.clone();
    trailing.push(0);
    let len = i32::from_be_bytes(trailing[8..12].try_into().unwrap()) + 1;
    trailing[8..12].copy_from_slice(&len.to_be_bytes());
    fix_crc(&mut trailing);
    assert!(matches!(
        walk(&trailing, 1 << 20),
        Err(RecordError::TrailingBytes)
    ));

    let mut control = good.clone();
    control[22] |= 1 << 5;
    fix_crc(&mut control);
    assert!(matches!(
        walk(&control, 1 << 20),
        Err(RecordError::Refused(_))
    ));
}

#[test]
fn a_compression_bomb_stops_at_the_limit() {
    // One record whose value is 8 MiB of zeros: zstd squeezes it to a few hundred bytes.
    let value = "\0".repeat(8 << 20);
    let buf = kv_batch(&[(Some("k"), Some(&value), 1)], Compression::Zstd);
    assert!(buf.len() < 4096, "{}", buf.len());
    assert!(matches!(
        walk(&buf, 1 << 20),
        Err(RecordError::Decompress(DecompressError::TooLarge { .. }))
    ));
    assert_eq!(walk(&buf, 16 << 20).unwrap().len(), 1);
}

#[test]
fn thinned_batches_walk_with_increasing_deltas() {
    let mut buf = kv_batch(
        &[(Some("a"), Some("1"), 1), (Some("b"), Some("2"), 2)],
        Compression::None,
    );
    let header = validate_batch(&buf).unwrap();
    assert!(walk_records(&buf, &header, OffsetDeltas::Increasing, 1 << 20, |_| {}).is_ok());
    // Drop the first record, keep lastOffsetDelta 1: what compaction writes.
    let first_len = 1 + (buf[61] / 2) as usize;
    buf.drain(61..61 + first_len);
    let len = i32::from_be_bytes(buf[8..12].try_into().unwrap()) - first_len as i32;
    buf[8..12].copy_from_slice(&len.to_be_bytes());
    buf[57..61].copy_from_slice(&1i32.to_be_bytes());
    fix_crc(&mut buf);
    let header = crate::batch::validate_stored_batch(&buf).unwrap();
    let mut deltas = Vec::new();
    walk_records(&buf, &header, OffsetDeltas::Increasing, 1 << 20, |r| {
        deltas.push(r.offset_delta)
    })
    .unwrap();
    assert_eq!(deltas, vec![1]);
}

proptest! {
    #[test]
    fn random_records_walk_back_as_written(
        records in prop::collection::vec(
            (prop::option::of("[a-z]{0,12}"), prop::option::of("[ -~]{0,40}")), 1..30),
        codec in 0usize..5,
    ) {
        let kvs: Vec<_> = records.iter().enumerate()
            .map(|(i, (k, v))| (k.as_deref(), v.as_deref(), i as i64)).collect();
        let buf = kv_batch(&kvs, CODECS[codec]);
        let seen = walk(&buf, 1 << 20).unwrap();
        let expected: Vec<_> = records.iter()
            .map(|(k, v)| (k.clone().map(String::into_bytes), v.clone().map(String::into_bytes)))
            .collect();
        prop_assert_eq!(seen, expected);
    }

    #[test]
    fn corrupted_payloads_never_panic(
        flips in prop::collection::vec((0usize..400, any::<u8>()), 1..8),
        codec in 0usize..5,
    ) {
        let kvs: Vec<_> = (0..10).map(|i| (Some("key"), Some("some value"), i as i64)).collect();
        let mut buf = kv_batch(&kvs, CODECS[codec]);
        for (at, byte) in flips {
            let at = HEADER_SIZE + at % (buf.len() - HEADER_SIZE);
            buf[at] = byte;
        }
        fix_crc(&mut buf);
        let _ = walk(&buf, 64 << 10);
    }
}
