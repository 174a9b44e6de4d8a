//! Message keys and values: the filler after the bench header (`--payload-pattern`) and
//! the key (`--key-pattern`), built into reused buffers without allocating per message.
//!
//! Random filler: one small pool of random bytes per run (`POOL_BYTES`, cache-resident),
//! shared by every task; each message copies its filler from a random offset in it,
//! XORed with a fresh random 64-bit word. Drawing fresh random bytes per message cost
//! more than the rest of a send, and copying from a pool too large for the caches cost a
//! cache miss per line. The XOR keeps filler incompressible all the same: two messages
//! share no run of bytes longer than chance would give (LZ-style codecs need exact
//! repeats of 4+ bytes), and every byte is still uniformly random. The header (and its
//! checksum over the whole value) is written per message.

use std::sync::Arc;

use crate::cli::{KeyPattern, PayloadPattern};
use crate::payload::{write_header, Header, HEADER_LEN};

/// Random bytes per run that filler is drawn from (plus one message body).
const POOL_BYTES: usize = 64 << 10;
const TEXT: &[u8] = b"the quick brown fox jumps over the lazy dog while the broker \
appends another batch to the log and the follower fetches it; ";
const HEX: &[u8; 16] = b"0123456789abcdef";

/// SplitMix64: a tiny, fast generator for filler and keys (not for secrets).
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn seeded() -> SplitMix64 {
        SplitMix64(rand::random())
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// What follows the header, shared by all the builders of a run (cheap to clone).
#[derive(Debug, Clone)]
pub enum Filler {
    /// Copied per message from a random offset of this pool, XORed with a random word.
    Random(Arc<[u8]>),
    Zeros,
    Text,
}

impl Filler {
    /// The filler for values whose body (after any header) is `body_len` bytes.
    pub fn new(pattern: PayloadPattern, body_len: usize) -> Filler {
        Filler::with_pool(pattern, body_len, POOL_BYTES)
    }

    /// As `new`, with a random pool of `pool_bytes` + `body_len` bytes.
    pub fn with_pool(pattern: PayloadPattern, body_len: usize, pool_bytes: usize) -> Filler {
        match pattern {
            PayloadPattern::Random => {
                let mut rng = SplitMix64::seeded();
                let mut pool = vec![0u8; pool_bytes + body_len];
                for chunk in pool.chunks_mut(8) {
                    let r = rng.next_u64().to_le_bytes();
                    chunk.copy_from_slice(&r[..chunk.len()]);
                }
                Filler::Random(pool.into())
            }
            PayloadPattern::Zeros => Filler::Zeros,
            PayloadPattern::Text => Filler::Text,
        }
    }
}

/// Builds the key and value of each message of one producer task.
pub struct MessageBuilder {
    run_id: u32,
    producer_id: u32,
    with_header: bool,
    filler: Filler,
    key_pattern: KeyPattern,
    value: Vec<u8>,
    key: Vec<u8>,
    /// `<producer id>-`, the fixed part of sequential keys.
    key_prefix_len: usize,
    rng: SplitMix64,
}

impl MessageBuilder {
    pub fn new(
        run_id: u32,
        producer_id: u32,
        size: usize,
        with_header: bool,
        filler: Filler,
        key_pattern: KeyPattern,
    ) -> MessageBuilder {
        let mut value = vec![0u8; size];
        if let Filler::Text = filler {
            for (i, b) in value.iter_mut().enumerate() {
                *b = TEXT[i % TEXT.len()];
            }
        }
        let key = match key_pattern {
            KeyPattern::Random => vec![0u8; 16],
            KeyPattern::Sequential => format!("{producer_id}-").into_bytes(),
            KeyPattern::Fixed => b"chronik-bench".to_vec(),
        };
        MessageBuilder {
            run_id,
            producer_id,
            with_header,
            filler,
            key_pattern,
            value,
            key_prefix_len: key.len(),
            key,
            rng: SplitMix64::seeded(),
        }
    }

    /// Key and value of message `sequence`, stamped with `send_time_ns`.
    pub fn build(&mut self, sequence: u64, send_time_ns: u64) -> (&[u8], &[u8]) {
        let body_start = if self.with_header { HEADER_LEN } else { 0 };
        if let Filler::Random(pool) = &self.filler {
            let body = &mut self.value[body_start..];
            let span = (pool.len() - body.len() + 1) as u128;
            // A uniform offset in 0..span, by multiplication (a division costs more).
            let at = ((u128::from(self.rng.next_u64()) * span) >> 64) as usize;
            xor_copy(body, &pool[at..at + body.len()], self.rng.next_u64());
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
        match self.key_pattern {
            KeyPattern::Random => {
                let k = self.rng.next_u64();
                for (i, b) in self.key.iter_mut().enumerate() {
                    *b = HEX[((k >> (60 - 4 * i)) & 0xf) as usize];
                }
            }
            KeyPattern::Sequential => {
                self.key.truncate(self.key_prefix_len);
                push_decimal(&mut self.key, sequence);
            }
            KeyPattern::Fixed => {}
        }
        (&self.key, &self.value)
    }
}

/// `dst = src ^ key`, with `key` repeated every 8 bytes.
fn xor_copy(dst: &mut [u8], src: &[u8], key: u64) {
    let mut d = dst.chunks_exact_mut(8);
    let mut s = src.chunks_exact(8);
    for (d, s) in (&mut d).zip(&mut s) {
        let w = u64::from_le_bytes(s.try_into().expect("8 bytes")) ^ key;
        d.copy_from_slice(&w.to_le_bytes());
    }
    let k = key.to_le_bytes();
    for ((d, s), k) in d.into_remainder().iter_mut().zip(s.remainder()).zip(k) {
        *d = s ^ k;
    }
}

/// Appends `n` in decimal.
fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::decode;

    fn builder(size: usize, pattern: PayloadPattern, keys: KeyPattern) -> MessageBuilder {
        let body = size.saturating_sub(HEADER_LEN);
        let filler = Filler::with_pool(pattern, body, 4096);
        MessageBuilder::new(7, 3, size, size >= HEADER_LEN, filler, keys)
    }

    #[test]
    fn values_decode_with_their_identity() {
        for pattern in [
            PayloadPattern::Random,
            PayloadPattern::Zeros,
            PayloadPattern::Text,
        ] {
            let mut b = builder(256, pattern, KeyPattern::Sequential);
            for seq in [0, 42, 1_000_000_007] {
                let (key, value) = b.build(seq, 1_000 + seq);
                assert_eq!(key, format!("3-{seq}").as_bytes());
                assert_eq!(value.len(), 256);
                let h = decode(value).unwrap();
                assert_eq!(
                    h,
                    Header {
                        run_id: 7,
                        producer_id: 3,
                        sequence: seq,
                        send_time_ns: 1_000 + seq
                    }
                );
            }
        }
    }

    #[test]
    fn exact_header_size_and_no_header() {
        let mut b = builder(HEADER_LEN, PayloadPattern::Random, KeyPattern::Fixed);
        let (key, value) = b.build(0, 5);
        assert_eq!(key, b"chronik-bench");
        assert_eq!(decode(value).unwrap().sequence, 0);
        let mut b = builder(8, PayloadPattern::Zeros, KeyPattern::Random);
        let (key, value) = b.build(0, 5);
        assert_eq!(key.len(), 16);
        assert!(key.iter().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(value, &[0u8; 8]);
    }

    #[test]
    fn random_filler_and_keys_differ_between_messages() {
        let mut b = builder(128, PayloadPattern::Random, KeyPattern::Random);
        let (k1, v1) = b.build(0, 0);
        let (k1, first) = (k1.to_vec(), v1[HEADER_LEN..].to_vec());
        let (k2, v2) = b.build(1, 0);
        assert_ne!(first, v2[HEADER_LEN..]);
        assert_ne!(k1, k2);
        let mut b = builder(16, PayloadPattern::Random, KeyPattern::Fixed);
        let first = b.build(0, 0).1.to_vec();
        assert_ne!(first, b.build(1, 0).1);
    }

    #[test]
    fn random_filler_does_not_repeat_across_messages() {
        // Even with a tiny pool, so that every message's slice overlaps the others', no
        // 8-byte run of one message's filler appears in another's.
        let filler = Filler::with_pool(PayloadPattern::Random, 200, 64);
        let mut b = MessageBuilder::new(1, 0, 240, true, filler, KeyPattern::Fixed);
        let bodies: Vec<Vec<u8>> = (0..50)
            .map(|i| b.build(i, 0).1[HEADER_LEN..].to_vec())
            .collect();
        let mut seen = std::collections::HashMap::new();
        let mut repeats = 0;
        for (m, body) in bodies.iter().enumerate() {
            for w in body.windows(8) {
                if let Some(&other) = seen.get(w) {
                    repeats += usize::from(other != m);
                }
                seen.insert(w.to_vec(), m);
            }
        }
        assert_eq!(repeats, 0);
    }

    #[test]
    fn xor_copy_handles_every_tail() {
        let src: Vec<u8> = (0..23).collect();
        for len in 0..=23 {
            let mut dst = vec![0u8; len];
            xor_copy(&mut dst, &src[..len], 0x0102_0304_0506_0708);
            let k = 0x0102_0304_0506_0708u64.to_le_bytes();
            let want: Vec<u8> = (0..len).map(|i| src[i] ^ k[i % 8]).collect();
            assert_eq!(dst, want);
        }
    }

    #[test]
    fn decimal() {
        for n in [0, 7, 10, 99, 12345, u64::MAX] {
            let mut v = b"x-".to_vec();
            push_decimal(&mut v, n);
            assert_eq!(v, format!("x-{n}").as_bytes());
        }
    }
}
