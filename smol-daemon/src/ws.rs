//! WebSocket as a daemon transport: [`WsRead`] and [`WsWrite`] put the core's
//! `ws::Connection` between a socket and the [`ByteRead`]/[`ByteWrite`]
//! halves the handshake driver and the relay use. Framing, unmasking, pongs and
//! close codes are the core's; this file only moves bytes and shares the
//! socket's writing half (pongs from the reading side, data from the relay)
//! under one async lock, so control frames never land inside a data frame.
//!
//! Binary sessions are zero-copy outbound (the frame header goes into the
//! headroom in front of the payload). Inbound, decoded bytes are unmasked in
//! place and copied once into the reader's buffer; that direction carries only
//! the viewer's input events. An idle reader waits with a small socket buffer
//! ([`crate::relay::SMALL`]) and takes its large one only while frames stream
//! (a read filled the buffer), as the relay does with its own buffers.

use crate::buffer::InBuf;
use crate::relay::SMALL;
use crate::transport::{ByteRead, ByteWrite, Plain};
use futures_lite::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use smol::lock::Mutex;
use std::cell::RefCell;
use std::io;
use std::ops::Range;
use std::rc::Rc;
use vncap_core::ws::frame::Decoded;
use vncap_core::ws::Connection;

/// State both halves share.
struct Shared<W> {
    conn: RefCell<Connection>,
    sock: Mutex<W>,
}

impl<W: AsyncWrite + Unpin> Shared<W> {
    /// Writes the control frames the core queued; the caller holds the lock.
    async fn flush_control(&self, sock: &mut W) -> io::Result<()> {
        let mut out = [0u8; 256];
        loop {
            let n = self.conn.borrow_mut().poll_output(&mut out);
            if n == 0 {
                return Ok(());
            }
            sock.write_all(&out[..n]).await?;
        }
    }

    async fn flush_control_locked(&self) -> io::Result<()> {
        let mut sock = self.sock.lock().await;
        self.flush_control(&mut sock).await?;
        sock.flush().await
    }
}

/// The reading half: socket bytes in, RFB bytes out.
pub struct WsRead<R, W> {
    sock: R,
    raw: InBuf,
    /// `raw`'s capacity while frames stream.
    large: usize,
    /// The last read filled `raw`: more is probably waiting.
    streaming: bool,
    /// Decoded bytes inside `raw`'s storage not yet handed out.
    ready: Range<usize>,
    shared: Rc<Shared<W>>,
}

/// The writing half: RFB bytes in, frames out.
pub struct WsWrite<W> {
    shared: Rc<Shared<W>>,
    /// Room for base64 text frames (unused in binary sessions).
    scratch: Vec<u8>,
}

/// Splits a WebSocket connection into its halves. `leftover` holds socket
/// bytes read after the handshake (the first frames); `buf_size` bounds the
/// memory of each half (the reader's while frames stream).
pub fn split<R, W>(
    conn: Connection,
    sock_r: R,
    sock_w: W,
    leftover: &[u8],
    buf_size: usize,
) -> (WsRead<R, W>, WsWrite<W>)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let base64 = conn.subprotocol().is_base64();
    let shared = Rc::new(Shared {
        conn: RefCell::new(conn),
        sock: Mutex::new(sock_w),
    });
    let mut raw = InBuf::new(SMALL.max(leftover.len()));
    raw.push(leftover);
    let scratch = if base64 {
        vec![0; buf_size / 3 * 4 + 16]
    } else {
        Vec::new()
    };
    (
        WsRead {
            sock: sock_r,
            raw,
            large: buf_size.max(SMALL),
            streaming: false,
            ready: 0..0,
            shared: shared.clone(),
        },
        WsWrite { shared, scratch },
    )
}

impl<R, W> WsRead<R, W> {
    /// Sizes `raw` before a read: large while streaming, small once idle and
    /// drained. Only called with nothing handed out of `raw` (`ready` empty).
    fn size_raw(&mut self) {
        let want = if self.streaming {
            self.large
        } else if self.raw.data().is_empty() {
            SMALL
        } else {
            return;
        };
        if self.raw.capacity() != want && self.raw.data().len() <= want {
            let mut next = InBuf::new(want);
            next.push(self.raw.data());
            self.raw = next;
        }
    }
}

fn protocol_error(reason: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, reason)
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> ByteRead for WsRead<R, W> {
    async fn read_bytes(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if !self.ready.is_empty() {
                let n = self.ready.len().min(buf.len());
                buf[..n]
                    .copy_from_slice(&self.raw.storage()[self.ready.start..self.ready.start + n]);
                self.ready.start += n;
                return Ok(n);
            }
            let (used, outcome) = {
                let (base, data) = self.raw.data_mut_with_offset();
                let origin = data.as_ptr() as usize;
                let mut conn = self.shared.conn.borrow_mut();
                match conn.decode(data) {
                    Err(e) => (0, Err(e)),
                    Ok((used, Some(Decoded::Data { bytes, .. }))) => {
                        let at = base + (bytes.as_ptr() as usize - origin);
                        (used, Ok(Some(at..at + bytes.len())))
                    }
                    Ok((used, Some(Decoded::Closed { .. }))) => (used, Ok(None)),
                    Ok((used, None)) => (used, Ok(Some(0..0))),
                }
            };
            // `ready` points into bytes now marked consumed: `raw` is not
            // compacted or refilled until `ready` is empty again.
            self.raw.consume(used);
            self.shared.flush_control_locked().await?;
            match outcome {
                Err(e) => return Err(protocol_error(e.reason())),
                Ok(None) => return Ok(0),
                Ok(Some(r)) if !r.is_empty() => self.ready = r,
                Ok(Some(_)) if used > 0 => {}
                Ok(Some(_)) => {
                    self.size_raw();
                    if self.raw.is_full() {
                        return Err(protocol_error("frame header does not fit the buffer"));
                    }
                    if self.raw.fill(&mut Plain(&mut self.sock)).await? == 0 {
                        return Ok(0);
                    }
                    self.streaming = self.raw.is_full();
                }
            }
        }
    }
}

impl<W: AsyncWrite + Unpin> ByteWrite for WsWrite<W> {
    async fn write_payload(&mut self, buf: &mut [u8], payload: Range<usize>) -> io::Result<()> {
        let mut sock = self.shared.sock.lock().await;
        self.shared.flush_control(&mut sock).await?;
        let header = self.shared.conn.borrow().data_header(payload.len());
        match header {
            Some((h, n)) => {
                let start = payload.start - n;
                buf[start..payload.start].copy_from_slice(&h[..n]);
                sock.write_all(&buf[start..payload.end]).await?;
            }
            None => {
                let mut data = &buf[payload];
                while !data.is_empty() {
                    let (took, wrote) = self.shared.conn.borrow().encode(data, &mut self.scratch);
                    if took == 0 {
                        return Err(io::Error::other("base64 frame buffer too small"));
                    }
                    sock.write_all(&self.scratch[..wrote]).await?;
                    data = &data[took..];
                }
            }
        }
        sock.flush().await
    }

    async fn close(&mut self) {
        self.shared.conn.borrow_mut().close(1000, "session ended");
        let mut sock = self.shared.sock.lock().await;
        let _ = self.shared.flush_control(&mut sock).await;
        let _ = sock.close().await;
    }
}

/// The session's hold on a WebSocket viewer beside the relay (`session.rs`):
/// the core's ping timer (`ws::Connection::keepalive`) and a close with a
/// reason, each written under the socket's lock, so never inside a data
/// frame.
pub struct Handle<W>(Rc<Shared<W>>);

impl<W> WsWrite<W> {
    /// A handle on this connection.
    pub fn handle(&self) -> Handle<W> {
        Handle(self.shared.clone())
    }
}

impl<W: AsyncWrite + Unpin> Handle<W> {
    /// Starts the core's ping timer.
    pub fn keepalive(&self, k: vncap_core::ws::Keepalive, now: vncap_core::Instant) {
        self.0.conn.borrow_mut().keepalive(k, now);
    }

    /// When the ping timer runs next.
    pub fn poll_timeout(&self) -> Option<vncap_core::Instant> {
        self.0.conn.borrow().poll_timeout()
    }

    /// Runs the ping timer and writes what it queued; `false` when the
    /// viewer stopped answering (its close frame is written).
    pub async fn handle_timeout(&self, now: vncap_core::Instant) -> io::Result<bool> {
        let alive = self.0.conn.borrow_mut().handle_timeout(now);
        self.0.flush_control_locked().await?;
        Ok(alive)
    }

    /// Sends a close frame with `code` and `reason` (unless one went
    /// already), then closes the socket's writing side.
    pub async fn close(&self, code: u16, reason: &str) {
        let mut sock = self.0.sock.lock().await;
        self.0.conn.borrow_mut().close(code, reason);
        let _ = self.0.flush_control(&mut sock).await;
        let _ = sock.close().await;
    }
}
