//! Reads size-prefixed request frames off a socket within bounded memory and time.
//!
//! Nothing is allocated for a frame until its body's bytes arrive, and then only as they
//! arrive (doubling from a small first chunk), taken from the shared `RequestMemory`; so a
//! client that sends only a huge size prefix costs nothing, and one that sends half a frame
//! costs what it sent. A prefix above `socket_request_max_bytes` closes the connection, and a
//! frame that has not arrived whole within `request_frame_timeout_ms` of its first byte too.

use std::time::Duration;

use std::future::Future;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::net::tcp::OwnedReadHalf;
use tokio::time::Instant;

use super::request_memory::{RequestMemory, Reservation};

/// The first allocation of a large body; later ones double it.
const FIRST_CHUNK: usize = 64 * 1024;

/// What frames are read from: a plain socket's read half, or a TLS stream's behind a small
/// buffer. Generic, so the plaintext path stays what it was.
pub trait FrameSource: AsyncRead + Unpin + Send + 'static {
    /// Waits until bytes (or the end of the stream) can be read, reading none.
    fn ready(&mut self) -> impl Future<Output = std::io::Result<()>> + Send;
}

impl FrameSource for OwnedReadHalf {
    async fn ready(&mut self) -> std::io::Result<()> {
        self.readable().await
    }
}

/// TLS: readiness of the socket says nothing about decrypted bytes, so wait for some to be
/// buffered.
impl<R: AsyncRead + Unpin + Send + 'static> FrameSource for BufReader<R> {
    async fn ready(&mut self) -> std::io::Result<()> {
        self.fill_buf().await.map(|_| ())
    }
}

/// A request frame (without its size prefix) and the pool memory it holds.
pub struct Frame {
    pub body: Bytes,
    pub memory: Reservation,
}

pub struct FrameReader<R> {
    half: R,
    memory: RequestMemory,
    max_frame: usize,
    frame_timeout: Duration,
}

impl<R: FrameSource> FrameReader<R> {
    pub fn new(half: R, memory: RequestMemory, max_frame: usize, frame_timeout: Duration) -> Self {
        FrameReader {
            half,
            memory,
            max_frame,
            frame_timeout,
        }
    }

    /// Frames above `max_frame` close the connection from now on (lower before a SASL
    /// connection has authenticated).
    pub fn set_max_frame(&mut self, max_frame: usize) {
        self.max_frame = max_frame;
    }

    /// The next frame; Ok(None) at a clean end of stream (between frames).
    pub async fn next(&mut self) -> Result<Option<Frame>, &'static str> {
        // Between frames a connection may wait as long as it likes (the idle timeout is the
        // writer's); the deadline starts with the frame's first byte.
        self.half.ready().await.map_err(|_| "read error")?;
        let deadline = Instant::now() + self.frame_timeout;
        match tokio::time::timeout_at(deadline, self.read_frame()).await {
            Ok(result) => result,
            Err(_) => Err("request frame not completed in time"),
        }
    }

    async fn read_frame(&mut self) -> Result<Option<Frame>, &'static str> {
        let mut prefix = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            match self.half.read(&mut prefix[got..]).await {
                Ok(0) if got == 0 => return Ok(None),
                Ok(0) => return Err("connection closed mid-frame"),
                Ok(n) => got += n,
                Err(_) => return Err("read error"),
            }
        }
        let size = i32::from_be_bytes(prefix);
        if size < 8 || size as usize > self.max_frame {
            return Err("frame size out of bounds");
        }
        let size = size as usize;
        let mut body = BytesMut::new();
        let mut memory = Reservation::default();
        while body.len() < size {
            if body.len() == body.capacity() {
                // Only once more bytes are there: a silent client holds no buffer.
                self.half.ready().await.map_err(|_| "read error")?;
                let target = size.min((body.capacity() * 2).max(FIRST_CHUNK));
                self.memory
                    .reserve(target - memory.bytes(), &mut memory)
                    .await;
                body.reserve(target - body.len());
            }
            let left = (size - body.len()) as u64;
            match (&mut self.half).take(left).read_buf(&mut body).await {
                Ok(0) => return Err("connection closed mid-frame"),
                Ok(_) => {}
                Err(_) => return Err("read error"),
            }
        }
        Ok(Some(Frame {
            body: body.freeze(),
            memory,
        }))
    }
}
