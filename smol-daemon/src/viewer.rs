//! The viewer's halves once it authenticated, whatever carries its RFB:
//! the transport itself (TCP, or TLS over it), or WebSocket frames over
//! that transport (`ws.rs`). The relay reads and writes through these.

use crate::transport::{ByteRead, ByteWrite, Plain};
use crate::ws;
use futures_lite::io::{AsyncRead, AsyncWrite};
use std::ops::Range;

/// The viewer's reading half, whatever carries it.
pub enum ViewerRead<R, W> {
    /// Native RFB.
    Plain(Plain<R>),
    /// RFB in WebSocket frames.
    Ws(ws::WsRead<R, W>),
}

/// The viewer's writing half, whatever carries it.
pub enum ViewerWrite<W> {
    /// Native RFB.
    Plain(Plain<W>),
    /// RFB in WebSocket frames.
    Ws(ws::WsWrite<W>),
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> ByteRead for ViewerRead<R, W> {
    async fn read_bytes(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            ViewerRead::Plain(r) => r.read_bytes(buf).await,
            ViewerRead::Ws(r) => r.read_bytes(buf).await,
        }
    }
}

impl<W: AsyncWrite + Unpin> ByteWrite for ViewerWrite<W> {
    async fn write_payload(
        &mut self,
        buf: &mut [u8],
        payload: Range<usize>,
    ) -> std::io::Result<()> {
        match self {
            ViewerWrite::Plain(w) => w.write_payload(buf, payload).await,
            ViewerWrite::Ws(w) => w.write_payload(buf, payload).await,
        }
    }

    async fn close(&mut self) {
        match self {
            ViewerWrite::Plain(w) => w.close().await,
            ViewerWrite::Ws(w) => w.close().await,
        }
    }
}
