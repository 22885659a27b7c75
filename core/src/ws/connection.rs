//! A WebSocket connection after the handshake: the [`Decoder`] for what the
//! browser sends and the [`Encoder`] for what vncap sends, with one output
//! queue for control frames. The daemon runs RFB over it (see the module docs
//! of [`crate::ws`] for the driver loop).
//!
//! It is not a [`crate::Machine`]: the data path unmasks in place and hands
//! back slices of the caller's buffer instead of copying out (RFC 6455
//! section 5; the style's one exception).

use super::frame::{Config, Decoded, Decoder, Encoder, Opcode};
use super::{Error, Subprotocol};

/// One WebSocket connection, server side.
#[derive(Debug)]
pub struct Connection {
    decoder: Decoder,
    encoder: Encoder,
    subprotocol: Subprotocol,
}

impl Connection {
    /// A connection with the subprotocol the handshake chose.
    pub fn new(subprotocol: Subprotocol, config: Config) -> Self {
        Connection {
            decoder: Decoder::new(subprotocol, config),
            encoder: Encoder::new(subprotocol),
            subprotocol,
        }
    }

    /// The subprotocol.
    pub fn subprotocol(&self) -> Subprotocol {
        self.subprotocol
    }

    /// Decodes socket bytes; see [`Decoder::decode`].
    pub fn decode<'b>(&mut self, buf: &'b mut [u8]) -> Result<(usize, Option<Decoded<'b>>), Error> {
        self.decoder.decode(buf)
    }

    /// Frames as much of `data` as fits into `out` as one message; returns
    /// (data bytes taken, bytes written). Flush [`Connection::poll_output`]
    /// before writing the frame, so control frames never land inside it.
    pub fn encode(&self, data: &[u8], out: &mut [u8]) -> (usize, usize) {
        self.encoder.encode(data, out)
    }

    /// In binary sessions, the header for a frame carrying `len` data bytes,
    /// for a vectored write of header + data without copying; `None` in base64
    /// sessions (the data must be encoded: use [`Connection::encode`]).
    pub fn data_header(&self, len: usize) -> Option<([u8; 10], usize)> {
        (!self.subprotocol.is_base64())
            .then(|| super::frame::header(Opcode::Binary, true, len as u64))
    }

    /// Control frames to write (pongs, the close echo, error closes).
    pub fn poll_output(&mut self, out: &mut [u8]) -> usize {
        self.decoder.poll_output(out)
    }

    /// Queues a close frame (e.g. 1000 "backend closed").
    pub fn close(&mut self, code: u16, reason: &str) {
        self.decoder.close(code, reason)
    }

    /// Whether the peer's close frame arrived.
    pub fn is_closed(&self) -> bool {
        self.decoder.is_closed()
    }

    /// The decoder.
    pub fn decoder(&self) -> &Decoder {
        &self.decoder
    }

    /// The encoder.
    pub fn encoder(&self) -> &Encoder {
        &self.encoder
    }
}
