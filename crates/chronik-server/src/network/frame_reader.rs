//! Reads size-prefixed request frames off a socket within bounded memory and time.
//!
//! Nothing is allocated for a frame until its body's bytes arrive, and then only as they
//! arrive (doubling from a small first chunk), taken from the shared `RequestMemory`; so a
//! client that sends only a huge size prefix costs nothing, and one that sends half a frame
//! costs what it sent. A prefix above `socket_request_max_bytes` closes the connection, and a
//! frame that has not arrived whole within `request_frame_timeout_ms` of its first byte too.
//!
//! Small frames are read ahead: one read takes up to `READ_AHEAD` bytes (often several
//! pipelined requests) and frames are copied out of them, where reading each size prefix
//! and body on its own cost three reads per request (the last finding the socket empty) and
//! made a producer writing to 100 partitions (one small request per batch) spend half again
//! as much broker CPU per message. The read-ahead buffer is let go whenever the connection
//! has nothing more to read, so an idle connection, or one waiting for the rest of a body,
//! holds none.

use std::time::Duration;

use std::future::Future;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::net::tcp::OwnedReadHalf;
use tokio::time::Instant;

use super::request_memory::{RequestMemory, Reservation};

/// The first allocation of a large body; later ones double it.
const FIRST_CHUNK: usize = 64 * 1024;
/// How much one read takes beyond the frame being read (see the module note).
const READ_AHEAD: usize = 16 * 1024;

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
    /// Bytes read but not yet framed.
    ahead: BytesMut,
}

impl<R: FrameSource> FrameReader<R> {
    pub fn new(half: R, memory: RequestMemory, max_frame: usize, frame_timeout: Duration) -> Self {
        FrameReader {
            half,
            memory,
            max_frame,
            frame_timeout,
            ahead: BytesMut::new(),
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
        if self.ahead.is_empty() {
            self.wait_readable().await?;
        }
        let deadline = Instant::now() + self.frame_timeout;
        match tokio::time::timeout_at(deadline, self.read_frame()).await {
            Ok(result) => result,
            Err(_) => Err("request frame not completed in time"),
        }
    }

    /// Waits for bytes to read, holding no read-ahead buffer meanwhile.
    async fn wait_readable(&mut self) -> Result<(), &'static str> {
        self.ahead = BytesMut::new();
        self.half.ready().await.map_err(|_| "read error")
    }

    async fn read_frame(&mut self) -> Result<Option<Frame>, &'static str> {
        while self.ahead.len() < 4 {
            let room = READ_AHEAD - self.ahead.len();
            self.ahead.reserve(room);
            match (&mut self.half)
                .take(room as u64)
                .read_buf(&mut self.ahead)
                .await
            {
                Ok(0) if self.ahead.is_empty() => return Ok(None),
                Ok(0) => return Err("connection closed mid-frame"),
                Ok(_) => {}
                Err(_) => return Err("read error"),
            }
        }
        let size = self.ahead.get_i32();
        if size < 8 || size as usize > self.max_frame {
            return Err("frame size out of bounds");
        }
        let size = size as usize;
        let mut body = BytesMut::new();
        let mut memory = Reservation::default();
        while body.len() < size {
            if body.len() == body.capacity() {
                // Only once more bytes are there: a silent client holds no buffer.
                if self.ahead.is_empty() {
                    self.wait_readable().await?;
                }
                let target = size.min((body.capacity() * 2).max(FIRST_CHUNK));
                self.memory
                    .reserve(target - memory.bytes(), &mut memory)
                    .await;
                body.reserve(target - body.len());
            }
            if !self.ahead.is_empty() {
                let room = (size - body.len()).min(body.capacity() - body.len());
                let n = self.ahead.len().min(room);
                body.extend_from_slice(&self.ahead[..n]);
                self.ahead.advance(n);
                continue;
            }
            // The rest of a body goes straight into it, not through the read-ahead.
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    /// A frame reader on one end of a real socket, and the other end to write to.
    async fn pair() -> (FrameReader<OwnedReadHalf>, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let (read, _write) = server.into_split();
        let memory = RequestMemory::new(16 << 20);
        let reader = FrameReader::new(read, memory, 8 << 20, Duration::from_secs(5));
        (reader, client)
    }

    fn framed(body: &[u8]) -> Vec<u8> {
        let mut out = (body.len() as i32).to_be_bytes().to_vec();
        out.extend_from_slice(body);
        out
    }

    fn body(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| (i as u8).wrapping_mul(7) ^ seed).collect()
    }

    #[tokio::test]
    async fn frames_read_ahead_together_come_out_whole_and_in_order() {
        let (mut reader, mut client) = pair().await;
        // Small frames, a frame larger than the read-ahead and the first chunk, and small
        // ones after it, all in one write.
        let bodies = [
            body(8, 1),
            body(300, 2),
            body(200_000, 3),
            body(17, 4),
            body(READ_AHEAD, 5),
            body(9, 6),
        ];
        let mut bytes = Vec::new();
        for b in &bodies {
            bytes.extend(framed(b));
        }
        client.write_all(&bytes).await.unwrap();
        for expected in &bodies {
            let frame = reader.next().await.unwrap().expect("a frame");
            assert_eq!(frame.body.as_ref(), expected.as_slice());
            assert_eq!(frame.memory.bytes(), expected.len());
        }
        drop(client);
        assert!(reader.next().await.unwrap().is_none(), "a clean end");
    }

    #[tokio::test]
    async fn a_frame_sent_a_byte_at_a_time_comes_out_whole() {
        let (mut reader, mut client) = pair().await;
        let bodies = [body(40, 7), body(12, 8)];
        let bytes: Vec<u8> = bodies.iter().flat_map(|b| framed(b)).collect();
        let writer = tokio::spawn(async move {
            for b in bytes {
                client.write_all(&[b]).await.unwrap();
                client.flush().await.unwrap();
                tokio::task::yield_now().await;
            }
            client
        });
        for expected in &bodies {
            let frame = reader.next().await.unwrap().expect("a frame");
            assert_eq!(frame.body.as_ref(), expected.as_slice());
        }
        let client = writer.await.unwrap();
        drop(client);
        assert!(reader.next().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_stream_ending_inside_a_frame_is_an_error() {
        let (mut reader, mut client) = pair().await;
        let mut bytes = framed(&body(10, 9));
        bytes.extend_from_slice(&framed(&body(100, 10))[..50]);
        client.write_all(&bytes).await.unwrap();
        drop(client);
        assert!(reader.next().await.unwrap().is_some());
        assert_eq!(
            reader.next().await.err(),
            Some("connection closed mid-frame")
        );
    }
}
