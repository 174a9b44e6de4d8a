//! Message keys and values, and the bench header that makes every message checkable.
//!
//! Value layout (big-endian), when the message is at least `HEADER_LEN` bytes:
//!
//! | bytes  | field                                                        |
//! |--------|--------------------------------------------------------------|
//! | 0..4   | magic `CHB1`                                                 |
//! | 4..8   | run id (random per run: other runs' messages are "foreign")  |
//! | 8..12  | producer id (the producer task)                              |
//! | 12..20 | sequence number within that producer, from 0                 |
//! | 20..28 | send time, Unix nanoseconds (round-trip latency)             |
//! | 28..32 | total value length                                           |
//! | 32..40 | FNV-1a 64 over bytes 0..32 and 40..end                       |
//!
//! The filler after the header follows `--payload-pattern`. Random filler is drawn fresh
//! for every message so compression codecs cannot find repeats across messages.

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

use crate::cli::{KeyPattern, PayloadPattern};

pub const HEADER_LEN: usize = 40;
const MAGIC: [u8; 4] = *b"CHB1";
const TEXT: &[u8] = b"the quick brown fox jumps over the lazy dog while the broker \
appends another batch to the log and the follower fetches it; ";

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

/// FNV-1a, 64-bit. Not cryptographic; it detects the flipped, truncated or shifted bytes
/// a broker bug produces, and needs no dependency.
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
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
    let sum = fnv1a(&[&value[0..32], &value[HEADER_LEN..]]);
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
    if u64_at(32) != fnv1a(&[&value[0..32], &value[HEADER_LEN..]]) {
        return Err(DecodeError::Corrupt);
    }
    Ok(Header {
        run_id: u32_at(4),
        producer_id: u32_at(8),
        sequence: u64_at(12),
        send_time_ns: u64_at(20),
    })
}

/// Wall-clock time in Unix nanoseconds (for timestamps that cross process boundaries).
pub fn unix_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Builds the key and value of each message of one producer task. Owned by that task.
pub struct MessageBuilder {
    run_id: u32,
    producer_id: u32,
    with_header: bool,
    pattern: PayloadPattern,
    key_pattern: KeyPattern,
    value: Vec<u8>,
    key: Vec<u8>,
    rng: StdRng,
}

impl MessageBuilder {
    pub fn new(
        run_id: u32,
        producer_id: u32,
        size: usize,
        with_header: bool,
        pattern: PayloadPattern,
        key_pattern: KeyPattern,
    ) -> MessageBuilder {
        let mut value = vec![0u8; size];
        if pattern == PayloadPattern::Text {
            for (i, b) in value.iter_mut().enumerate() {
                *b = TEXT[i % TEXT.len()];
            }
        }
        MessageBuilder {
            run_id,
            producer_id,
            with_header,
            pattern,
            key_pattern,
            value,
            key: Vec::with_capacity(32),
            rng: StdRng::from_entropy(),
        }
    }

    /// Key and value of message `sequence`, stamped with `send_time_ns`.
    pub fn build(&mut self, sequence: u64, send_time_ns: u64) -> (&[u8], &[u8]) {
        let body_start = if self.with_header { HEADER_LEN } else { 0 };
        if self.pattern == PayloadPattern::Random {
            self.rng.fill_bytes(&mut self.value[body_start..]);
        }
        if self.with_header {
            let h = Header {
                run_id: self.run_id,
                producer_id: self.producer_id,
                sequence,
                send_time_ns,
            };
            write_header(&mut self.value, &h);
        }
        self.key.clear();
        match self.key_pattern {
            KeyPattern::Random => {
                let k: u64 = self.rng.gen();
                self.key.extend_from_slice(format!("{k:016x}").as_bytes());
            }
            KeyPattern::Sequential => self
                .key
                .extend_from_slice(format!("{}-{sequence}", self.producer_id).as_bytes()),
            KeyPattern::Fixed => self.key.extend_from_slice(b"chronik-bench"),
        }
        (&self.key, &self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_detects_damage() {
        for pattern in [
            PayloadPattern::Random,
            PayloadPattern::Zeros,
            PayloadPattern::Text,
        ] {
            let mut b = MessageBuilder::new(7, 3, 256, true, pattern, KeyPattern::Sequential);
            let (key, value) = b.build(42, 1_000);
            assert_eq!(key, b"3-42");
            assert_eq!(value.len(), 256);
            let h = decode(value).unwrap();
            assert_eq!(
                h,
                Header {
                    run_id: 7,
                    producer_id: 3,
                    sequence: 42,
                    send_time_ns: 1_000
                }
            );
            let mut damaged = value.to_vec();
            for i in [5, 13, 39, 40, 255] {
                damaged[i] ^= 0x01;
                assert_eq!(decode(&damaged), Err(DecodeError::Corrupt), "byte {i}");
                damaged[i] ^= 0x01;
            }
            assert_eq!(decode(&value[..200]), Err(DecodeError::Corrupt));
            let mut longer = value.to_vec();
            longer.push(0);
            assert_eq!(decode(&longer), Err(DecodeError::Corrupt));
        }
    }

    #[test]
    fn foreign_values() {
        assert_eq!(decode(b"hello"), Err(DecodeError::Foreign));
        assert_eq!(decode(&[0u8; 64]), Err(DecodeError::Foreign));
    }

    #[test]
    fn exact_header_size_and_no_header() {
        let mut b = MessageBuilder::new(
            1,
            0,
            HEADER_LEN,
            true,
            PayloadPattern::Random,
            KeyPattern::Fixed,
        );
        let (key, value) = b.build(0, 5);
        assert_eq!(key, b"chronik-bench");
        assert_eq!(decode(value).unwrap().sequence, 0);
        let mut b = MessageBuilder::new(1, 0, 8, false, PayloadPattern::Zeros, KeyPattern::Random);
        let (key, value) = b.build(0, 5);
        assert_eq!(key.len(), 16);
        assert_eq!(value, &[0u8; 8]);
    }

    #[test]
    fn random_filler_differs_between_messages() {
        let mut b =
            MessageBuilder::new(1, 0, 128, true, PayloadPattern::Random, KeyPattern::Random);
        let first = b.build(0, 0).1[HEADER_LEN..].to_vec();
        let second = b.build(1, 0).1[HEADER_LEN..].to_vec();
        assert_ne!(first, second);
    }
}
