//! The bench header that makes every message checkable, and its checksum.
//!
//! Value layout (big-endian), when the message is at least `HEADER_LEN` bytes:
//!
//! | bytes  | field                                                        |
//! |--------|--------------------------------------------------------------|
//! | 0..4   | magic `CHB2`                                                 |
//! | 4..8   | run id (random per run: other runs' messages are "foreign")  |
//! | 8..12  | producer id (the producer task)                              |
//! | 12..20 | sequence number within that producer, from 0                 |
//! | 20..28 | send time, Unix nanoseconds (round-trip latency)             |
//! | 28..32 | total value length                                           |
//! | 32..40 | `checksum` over bytes 0..32 and 40..end                      |
//!
//! The filler after the header is built by `message.rs`. (`CHB1`, an earlier layout
//! with an FNV-1a checksum, reads as foreign.)

pub const HEADER_LEN: usize = 40;
const MAGIC: [u8; 4] = *b"CHB2";

/// The identity and timestamp a message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub run_id: u32,
    pub producer_id: u32,
    pub sequence: u64,
    pub send_time_ns: u64,
}

/// Why a value did not decode as one of ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Too short or no magic: not written by chronik-bench.
    Foreign,
    /// Our magic, but the length or checksum does not match: damaged in transit or storage.
    Corrupt,
}

const K1: u64 = 0x9e37_79b9_7f4a_7c15;
const K2: u64 = 0xc2b2_ae3d_27d4_eb4f;

/// One step of a lane: a bijection of the lane for a fixed word, and of the word for a
/// fixed lane, so changing any single word always changes the lane's final value.
#[inline(always)]
fn step(lane: u64, word: u64) -> u64 {
    (lane ^ word).wrapping_mul(K1).rotate_left(31)
}

/// MurmurHash3's 64-bit finalizer: every input bit affects every output bit.
fn avalanche(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

fn word(b: &[u8]) -> u64 {
    u64::from_le_bytes(b.try_into().expect("8 bytes"))
}

/// A 64-bit checksum of `head` (32 bytes) followed by `body`, 8 bytes at a time in four
/// independent lanes (so it costs a few ns per 100 bytes, not a multiply per byte).
/// Not cryptographic: it detects the flipped, truncated or shifted bytes a broker bug
/// produces, and needs no dependency. The length is mixed in, so zero padding of the
/// last partial word cannot hide a truncation.
pub fn checksum(head: &[u8; 32], body: &[u8]) -> u64 {
    let mut lanes = [K2, K2 ^ 1, K2 ^ 2, K2 ^ 3];
    let mut block = |b: &[u8]| {
        for (lane, w) in lanes.iter_mut().zip(b.chunks_exact(8)) {
            *lane = step(*lane, word(w));
        }
    };
    block(head);
    let mut blocks = body.chunks_exact(32);
    for b in &mut blocks {
        block(b);
    }
    let rest = blocks.remainder();
    let mut words = rest.chunks_exact(8);
    for (lane, w) in lanes.iter_mut().zip(&mut words) {
        *lane = step(*lane, word(w));
    }
    let mut last = [0u8; 8];
    last[..words.remainder().len()].copy_from_slice(words.remainder());
    let mut h = step(K2, (32 + body.len()) as u64);
    h = step(h, u64::from_le_bytes(last));
    for lane in lanes {
        h = step(h, lane);
    }
    avalanche(h)
}

fn head_of(value: &[u8]) -> &[u8; 32] {
    value[..32].try_into().expect("32 bytes")
}

/// Writes the header (checksum included) into `value[..HEADER_LEN]`; the filler after it
/// must already be in place.
pub fn write_header(value: &mut [u8], h: &Header) {
    assert!(
        value.len() >= HEADER_LEN,
        "value shorter than the bench header"
    );
    value[0..4].copy_from_slice(&MAGIC);
    value[4..8].copy_from_slice(&h.run_id.to_be_bytes());
    value[8..12].copy_from_slice(&h.producer_id.to_be_bytes());
    value[12..20].copy_from_slice(&h.sequence.to_be_bytes());
    value[20..28].copy_from_slice(&h.send_time_ns.to_be_bytes());
    let len = u32::try_from(value.len()).expect("value length fits u32");
    value[28..32].copy_from_slice(&len.to_be_bytes());
    let sum = checksum(head_of(value), &value[HEADER_LEN..]);
    value[32..40].copy_from_slice(&sum.to_be_bytes());
}

/// Reads and verifies the header of a value.
pub fn decode(value: &[u8]) -> Result<Header, DecodeError> {
    if value.len() < HEADER_LEN || value[0..4] != MAGIC {
        return Err(DecodeError::Foreign);
    }
    let u32_at = |i: usize| u32::from_be_bytes(value[i..i + 4].try_into().unwrap());
    let u64_at = |i: usize| u64::from_be_bytes(value[i..i + 8].try_into().unwrap());
    if u32_at(28) as usize != value.len() {
        return Err(DecodeError::Corrupt);
    }
    if u64_at(32) != checksum(head_of(value), &value[HEADER_LEN..]) {
        return Err(DecodeError::Corrupt);
    }
    Ok(Header {
        run_id: u32_at(4),
        producer_id: u32_at(8),
        sequence: u64_at(12),
        send_time_ns: u64_at(20),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(len: usize) -> Vec<u8> {
        let mut v: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
        write_header(
            &mut v,
            &Header {
                run_id: 7,
                producer_id: 3,
                sequence: 42,
                send_time_ns: 1_000,
            },
        );
        v
    }

    #[test]
    fn round_trips_and_detects_damage() {
        for len in [HEADER_LEN, 41, 47, 48, 71, 72, 73, 256, 1000] {
            let v = value(len);
            let h = decode(&v).unwrap();
            assert_eq!((h.run_id, h.producer_id, h.sequence), (7, 3, 42));
            assert_eq!(h.send_time_ns, 1_000);
            // Every single-bit flip anywhere (the checksum bytes included) is caught.
            for i in 4..len {
                for bit in 0..8 {
                    let mut damaged = v.clone();
                    damaged[i] ^= 1 << bit;
                    assert_eq!(
                        decode(&damaged),
                        Err(DecodeError::Corrupt),
                        "len {len} byte {i} bit {bit}"
                    );
                }
            }
            let mut longer = v.clone();
            longer.push(0);
            assert_eq!(decode(&longer), Err(DecodeError::Corrupt));
            if len > HEADER_LEN {
                assert_eq!(decode(&v[..len - 1]), Err(DecodeError::Corrupt));
            }
        }
    }

    #[test]
    fn swapped_and_shifted_filler_is_caught() {
        let v = value(256);
        let mut swapped = v.clone();
        swapped.swap(100, 101);
        assert_eq!(decode(&swapped), Err(DecodeError::Corrupt));
        let mut words = v.clone();
        words[48..56].copy_from_slice(&v[56..64]);
        words[56..64].copy_from_slice(&v[48..56]);
        assert_eq!(decode(&words), Err(DecodeError::Corrupt));
        let mut shifted = v.clone();
        shifted[HEADER_LEN..].rotate_left(1);
        assert_eq!(decode(&shifted), Err(DecodeError::Corrupt));
    }

    #[test]
    fn foreign_values() {
        assert_eq!(decode(b"hello"), Err(DecodeError::Foreign));
        assert_eq!(decode(&[0u8; 64]), Err(DecodeError::Foreign));
        let mut old = value(64);
        old[0..4].copy_from_slice(b"CHB1");
        assert_eq!(decode(&old), Err(DecodeError::Foreign));
    }
}
