//! What carries a viewer's or a backend's bytes, seen from the daemon: a
//! reading half ([`ByteRead`]) and a writing half ([`ByteWrite`]), so the
//! handshake driver and the relay are written once for plain TCP and for
//! WebSocket, over TCP or TLS (`tls.rs` makes TLS a pair of plain halves).
//!
//! Writes get the payload inside a caller buffer with [`HEADROOM`] free bytes
//! in front of it, so a framing layer (WebSocket) can put its header there and
//! send header and payload in one write, without copying the payload.

use futures_lite::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use std::io;
use std::ops::Range;

/// Free bytes every writer may use in front of a payload (a WebSocket frame
/// header is at most 10 bytes from server to client).
pub const HEADROOM: usize = 16;

/// Reads application bytes (after any framing is removed).
pub trait ByteRead {
    /// Reads into `buf`; `Ok(0)` is the end of the stream.
    async fn read_bytes(&mut self, buf: &mut [u8]) -> io::Result<usize>;

    /// Whether a [`ByteRead::read_bytes`] future may be dropped before it
    /// completes without losing bytes or leaving a write half done (a plain
    /// `AsyncRead`: yes; the WebSocket reader, which may be writing a pong:
    /// no). The relay then tries a read without waiting for it.
    fn cancel_safe(&self) -> bool {
        false
    }
}

/// Writes application bytes (framing them as needed).
pub trait ByteWrite {
    /// Writes `buf[payload]`; `buf[..payload.start]` holds at least
    /// [`HEADROOM`] bytes the writer may overwrite.
    async fn write_payload(&mut self, buf: &mut [u8], payload: Range<usize>) -> io::Result<()>;
    /// Ends the stream politely where the protocol has a way (WebSocket close),
    /// then shuts the socket's writing side. Errors are ignored: the peer may
    /// already be gone.
    async fn close(&mut self);
}

/// A plain byte stream half (TCP, Unix, TLS): no framing.
pub struct Plain<S>(pub S);

impl<S: AsyncRead + Unpin> ByteRead for Plain<S> {
    async fn read_bytes(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf).await
    }

    fn cancel_safe(&self) -> bool {
        true
    }
}

impl<S: AsyncWrite + Unpin> ByteWrite for Plain<S> {
    async fn write_payload(&mut self, buf: &mut [u8], payload: Range<usize>) -> io::Result<()> {
        self.0.write_all(&buf[payload]).await?;
        self.0.flush().await
    }

    async fn close(&mut self) {
        let _ = self.0.close().await;
    }
}

/// Writes a short message (handshake output) through `w`, copying it behind
/// the headroom.
pub async fn write_msg<W: ByteWrite>(w: &mut W, msg: &[u8]) -> io::Result<()> {
    let mut buf = vec![0u8; HEADROOM + msg.len()];
    buf[HEADROOM..].copy_from_slice(msg);
    let len = buf.len();
    w.write_payload(&mut buf, HEADROOM..len).await
}
