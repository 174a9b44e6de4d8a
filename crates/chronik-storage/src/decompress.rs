//! Bounded, streaming decompression of a batch's records payload.
//!
//! kafka-protocol's decoders inflate a whole payload into one buffer however large it grows, so
//! a 1 MB zstd "bomb" could cost the broker tens of GB. Here every codec is a [`Read`] that
//! yields at most `limit` decompressed bytes and then fails with [`DecompressError::TooLarge`];
//! callers read the records out of it one at a time (see `records`), so memory stays at the
//! codec's own buffers plus the largest record, never the whole payload.
//!
//! Memory per decoder: gzip ~64 KiB; LZ4 frames at most one 4 MiB block; zstd its window, capped
//! at 2^[`ZSTD_WINDOW_LOG_MAX`] bytes (frames that declare a larger window are refused: producers'
//! zstd levels use at most 8 MiB windows for Kafka-sized batches); Snappy one block — xerial
//! blocks are checked against `limit` before they are inflated.

use std::io::{self, BufReader, Read};

/// Largest zstd window accepted (16 MiB).
pub const ZSTD_WINDOW_LOG_MAX: u32 = 24;

/// Why a payload could not be decompressed.
#[derive(Debug, thiserror::Error)]
pub enum DecompressError {
    /// It inflates past the bound.
    #[error("decompressed records exceed {limit} bytes")]
    TooLarge { limit: usize },
    /// The codec refused the bytes.
    #[error("cannot decompress records: {0}")]
    Corrupt(String),
    /// The batch names a codec Kafka does not have.
    #[error("unknown compression codec {0}")]
    UnknownCodec(u8),
}

/// A reader of the decompressed bytes of `payload` (compressed with Kafka codec id `codec`,
/// 1..=4) that fails once more than `limit` bytes came out.
pub fn bounded_reader<'a>(
    codec: u8,
    payload: &'a [u8],
    limit: usize,
) -> Result<Bounded<BufReader<Box<dyn Read + 'a>>>, DecompressError> {
    let inner: Box<dyn Read + 'a> = match codec {
        1 => Box::new(flate2::read::MultiGzDecoder::new(payload)),
        2 => Box::new(SnappyReader::new(payload, limit)),
        3 => Box::new(lz4::Decoder::new(payload).map_err(corrupt)?),
        4 => {
            let mut decoder = zstd::stream::read::Decoder::with_buffer(payload).map_err(corrupt)?;
            decoder
                .window_log_max(ZSTD_WINDOW_LOG_MAX)
                .map_err(corrupt)?;
            Box::new(decoder)
        }
        c => return Err(DecompressError::UnknownCodec(c)),
    };
    Ok(Bounded {
        // Records are read a varint byte at a time: buffer so each is not a codec call.
        inner: BufReader::with_capacity(32 * 1024, inner),
        remaining: limit,
        limit,
    })
}

fn corrupt(e: io::Error) -> DecompressError {
    DecompressError::Corrupt(e.to_string())
}

/// A reader that refuses to yield more than its limit.
pub struct Bounded<R> {
    inner: R,
    remaining: usize,
    limit: usize,
}

impl<R: Read> Bounded<R> {
    /// Bytes yielded so far.
    pub fn consumed(&self) -> usize {
        self.limit - self.remaining
    }

    /// Bytes still allowed.
    pub fn remaining(&self) -> usize {
        self.remaining
    }

    /// Fills `buf` completely; a short stream is corrupt, going past the limit too large.
    pub fn read_exact_bounded(&mut self, buf: &mut [u8]) -> Result<(), DecompressError> {
        if buf.len() > self.remaining {
            return Err(DecompressError::TooLarge { limit: self.limit });
        }
        self.inner.read_exact(buf).map_err(|e| self.map_err(e))?;
        self.remaining -= buf.len();
        Ok(())
    }

    /// The next byte, or `None` at the end of the stream.
    pub fn next_byte(&mut self) -> Result<Option<u8>, DecompressError> {
        let mut b = [0u8; 1];
        loop {
            match self.inner.read(&mut b) {
                Ok(0) => return Ok(None),
                Ok(_) => {
                    if self.remaining == 0 {
                        return Err(DecompressError::TooLarge { limit: self.limit });
                    }
                    self.remaining -= 1;
                    return Ok(Some(b[0]));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.map_err(e)),
            }
        }
    }

    fn map_err(&self, e: io::Error) -> DecompressError {
        match e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<TooLargeBlock>())
        {
            Some(_) => DecompressError::TooLarge { limit: self.limit },
            None => DecompressError::Corrupt(e.to_string()),
        }
    }
}

/// The Snappy reader's signal that a block alone exceeds the bound.
#[derive(Debug)]
struct TooLargeBlock;

impl std::fmt::Display for TooLargeBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("snappy block exceeds the decompression bound")
    }
}

impl std::error::Error for TooLargeBlock {}

/// xerial-framed Snappy (what the Java client writes: a 16-byte magic header, then blocks of
/// u32 length + raw Snappy) or, without that header, one raw Snappy block (librdkafka).
struct SnappyReader<'a> {
    input: &'a [u8],
    block: Vec<u8>,
    pos: usize,
    /// Decompressed bytes still allowed across all blocks.
    budget: usize,
    framed: Option<bool>,
}

const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_LEN: usize = 16;

impl<'a> SnappyReader<'a> {
    fn new(input: &'a [u8], budget: usize) -> Self {
        SnappyReader {
            input,
            block: Vec::new(),
            pos: 0,
            budget,
            framed: None,
        }
    }

    /// Inflates the next block into `self.block`; false at the end of the input.
    fn next_block(&mut self) -> io::Result<bool> {
        let framed = *self.framed.get_or_insert_with(|| {
            self.input.len() >= XERIAL_HEADER_LEN && self.input.starts_with(XERIAL_MAGIC)
        });
        if framed && self.input.len() >= XERIAL_HEADER_LEN && self.input.starts_with(XERIAL_MAGIC) {
            self.input = &self.input[XERIAL_HEADER_LEN..];
        }
        if self.input.is_empty() {
            return Ok(false);
        }
        let compressed = if framed {
            if self.input.len() < 4 {
                return Err(io::Error::other("truncated snappy block length"));
            }
            let len = u32::from_be_bytes(self.input[..4].try_into().expect("4 bytes")) as usize;
            let rest = &self.input[4..];
            if rest.len() < len {
                return Err(io::Error::other("truncated snappy block"));
            }
            self.input = &rest[len..];
            &rest[..len]
        } else {
            std::mem::take(&mut self.input)
        };
        let len = snap::raw::decompress_len(compressed).map_err(io::Error::other)?;
        if len > self.budget {
            return Err(io::Error::other(TooLargeBlock));
        }
        self.budget -= len;
        self.block.resize(len, 0);
        snap::raw::Decoder::new()
            .decompress(compressed, &mut self.block)
            .map_err(io::Error::other)?;
        self.pos = 0;
        Ok(true)
    }
}

impl Read for SnappyReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.block.len() {
            if !self.next_block()? {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.block.len() - self.pos);
        buf[..n].copy_from_slice(&self.block[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};
    use kafka_protocol::compression::{self as cmpr, Compressor};

    fn compress<C: Compressor<BytesMut, BufMut = BytesMut>>(raw: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        C::compress(&mut out, |b: &mut BytesMut| {
            b.put_slice(raw);
            Ok(())
        })
        .unwrap();
        out.to_vec()
    }

    fn read_all(codec: u8, payload: &[u8], limit: usize) -> Result<Vec<u8>, DecompressError> {
        let mut reader = bounded_reader(codec, payload, limit)?;
        let mut out = Vec::new();
        while let Some(b) = reader.next_byte()? {
            out.push(b);
        }
        Ok(out)
    }

    #[test]
    fn every_codec_round_trips_and_stops_at_the_limit() {
        let raw: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        for (codec, payload) in [
            (1, compress::<cmpr::Gzip>(&raw)),
            (2, compress::<cmpr::Snappy>(&raw)),
            (3, compress::<cmpr::Lz4>(&raw)),
            (4, compress::<cmpr::Zstd>(&raw)),
        ] {
            assert_eq!(
                read_all(codec, &payload, raw.len()).unwrap(),
                raw,
                "codec {codec}"
            );
            assert!(
                matches!(
                    read_all(codec, &payload, raw.len() - 1),
                    Err(DecompressError::TooLarge { .. })
                ),
                "codec {codec}"
            );
        }
    }

    #[test]
    fn raw_snappy_block_is_checked_before_inflating() {
        let raw = vec![0u8; 1 << 20];
        let block = snap::raw::Encoder::new().compress_vec(&raw).unwrap();
        assert_eq!(read_all(2, &block, 1 << 20).unwrap().len(), 1 << 20);
        assert!(matches!(
            read_all(2, &block, 1000),
            Err(DecompressError::TooLarge { .. })
        ));
    }

    #[test]
    fn garbage_is_corrupt_not_a_panic() {
        for codec in 1..=4 {
            let r = read_all(codec, b"definitely not compressed data", 1 << 20);
            assert!(r.is_err(), "codec {codec}");
        }
        assert!(matches!(
            bounded_reader(7, b"", 10),
            Err(DecompressError::UnknownCodec(7))
        ));
    }
}
