//! WebSocket (RFC 6455) for the browser side of vncap: the opening handshake
//! ([`handshake`]), the frame codec ([`frame`]) and a connection-level wrapper
//! ([`Connection`]) that a driver uses to run RFB over WebSocket.
//!
//! It is not a general WebSocket library: it is the server side only, speaks
//! no extensions (no permessage-deflate), and carries one byte stream (RFB)
//! in binary frames, or in base64 text frames for legacy clients (noVNC 0.4 as
//! bundled by Ganeti Web Manager, subprotocol `base64`).
//!
//! # Driver story
//!
//! ```text
//! socket bytes ──► sniff (HTTP) ──► Handshake::handle_input ──► Event::Request
//!     driver checks path/query/origin, calls accept() or reject(status)
//!     driver writes Handshake::poll_output (the 101 or the 4xx)
//! leftover bytes + later reads ──► Connection::decode ──► RFB bytes (in place)
//! RFB bytes to send ──► Connection::encode / frame::header ──► socket
//! Connection::poll_output (pongs, close frames) ──► socket, between frames
//! ```
//!
//! A driver loop for the data phase (`buf` is the session's read buffer, with
//! `start..end` the bytes read but not yet consumed):
//!
//! ```
//! # use vncap_core::ws::{Connection, frame::{Config, Decoded}, Subprotocol};
//! let mut conn = Connection::new(Subprotocol::Binary, Config::default());
//! // A masked binary frame "hi" as a browser sends it.
//! let mut buf = [0x82, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2, 0, 0];
//! let (mut start, end) = (0, 8);
//! let mut rfb = [0u8; 16];
//! let mut got = 0;
//! loop {
//!     let (used, item) = conn.decode(&mut buf[start..end]).expect("peer error: flush poll_output, close");
//!     start += used;
//!     match item {
//!         Some(Decoded::Data { bytes, .. }) => {
//!             rfb[got..got + bytes.len()].copy_from_slice(bytes); // or: write to the backend
//!             got += bytes.len();
//!         }
//!         Some(Decoded::Closed { .. }) => break, // flush poll_output, then close
//!         None if used == 0 => break,           // need more bytes: move start..end to the front, read
//!         None => {}
//!     }
//! }
//! assert_eq!(&rfb[..got], b"hi");
//! // Always drain poll_output (pongs, close frames) between whole frames you write.
//! let mut out = [0u8; 256];
//! assert_eq!(conn.poll_output(&mut out), 0);
//! ```
//!
//! Spec: RFC 6455 sections 4 (handshake), 5 (framing), 7 (closing).

pub mod connection;
pub mod frame;
pub mod handshake;
mod unbase64;

pub use connection::{Connection, Keepalive};
pub use frame::{Decoder, Encoder};
pub use handshake::Handshake;

use core::fmt;

/// The subprotocol a session runs with, chosen by [`handshake`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subprotocol {
    /// The client offered none (noVNC 1.2 and later): binary frames, and no
    /// `Sec-WebSocket-Protocol` header in the answer.
    None,
    /// The client offered `binary`: binary frames, `binary` echoed.
    Binary,
    /// The client offered only `base64` (noVNC 0.4): the byte stream travels
    /// base64-encoded in text frames.
    Base64,
}

impl Subprotocol {
    /// The token echoed in `Sec-WebSocket-Protocol`, if any.
    pub const fn token(self) -> Option<&'static str> {
        match self {
            Subprotocol::None => None,
            Subprotocol::Binary => Some("binary"),
            Subprotocol::Base64 => Some("base64"),
        }
    }

    /// Whether data travels base64-encoded in text frames.
    pub const fn is_base64(self) -> bool {
        matches!(self, Subprotocol::Base64)
    }
}

/// Why a WebSocket handshake or connection stopped. Handshake errors know
/// their HTTP status ([`Error::http_status`]), frame errors their close code
/// ([`Error::close_code`]); the answer is queued in `poll_output` when the
/// error is returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    // ---- handshake (HTTP status) ----
    /// The buffer holds `max_header_bytes` without a complete header block (431).
    HeaderTooLarge,
    /// More header lines than the parser has room for (431).
    TooManyHeaders,
    /// Not parseable as an HTTP/1.1 request (400).
    MalformedRequest,
    /// The method is not GET (405).
    MethodNotAllowed,
    /// The request target is longer than the path storage (414).
    UriTooLong,
    /// No `Host` header (400).
    MissingHost,
    /// No `Upgrade: websocket` (400).
    NotWebSocket,
    /// `Connection` lacks the `upgrade` token (400).
    MissingConnectionUpgrade,
    /// `Sec-WebSocket-Version` is missing or not 13 (426, with
    /// `Sec-WebSocket-Version: 13`).
    UnsupportedVersion,
    /// `Sec-WebSocket-Key` missing, repeated, or not base64 of 16 bytes (400).
    BadKey,
    /// `Host`, `Origin`, `Upgrade` or `Sec-WebSocket-Version` sent twice
    /// (400): the two could be read differently by different parties.
    DuplicateHeader,
    /// The `Origin` header is too long to store (400).
    OriginTooLong,
    /// The `Origin` is not on the configured allow-list (403).
    OriginNotAllowed,
    /// The driver refused the request with this HTTP status (e.g. 404 for an
    /// unknown token).
    Rejected(u16),
    // ---- frames (close code) ----
    /// A client frame without the mask bit (1002).
    UnmaskedFrame,
    /// A reserved bit set without a negotiated extension (1002).
    ReservedBits,
    /// A reserved opcode (1002).
    ReservedOpcode,
    /// A length not in its minimal encoding, or with the top bit set (1002).
    NonMinimalLength,
    /// A control frame that is fragmented or longer than 125 bytes (1002).
    BadControlFrame,
    /// A continuation frame with no message in progress, or a new message
    /// before the last one ended (1002).
    BadFragmentation,
    /// A close frame with a 1-byte payload or an invalid status code (1002).
    BadCloseFrame,
    /// A text frame in a binary session, or a binary frame in a base64
    /// session (1003).
    UnsupportedData,
    /// Text that is not valid (UTF-8 in a close reason, base64 in a base64
    /// session) (1007).
    InvalidPayload,
    /// A message larger than the configured limit (1009).
    MessageTooBig,
}

impl Error {
    /// What went wrong, in protocol words (also the close reason / HTTP body).
    pub const fn reason(&self) -> &'static str {
        match self {
            Error::HeaderTooLarge => "request header block too large",
            Error::TooManyHeaders => "too many request header lines",
            Error::MalformedRequest => "malformed HTTP request",
            Error::MethodNotAllowed => "only GET can upgrade to WebSocket",
            Error::UriTooLong => "request target too long",
            Error::MissingHost => "missing Host header",
            Error::NotWebSocket => "missing Upgrade: websocket",
            Error::MissingConnectionUpgrade => "missing Connection: upgrade",
            Error::UnsupportedVersion => "unsupported Sec-WebSocket-Version (13 only)",
            Error::BadKey => "missing or invalid Sec-WebSocket-Key",
            Error::DuplicateHeader => "a header that must come once came twice",
            Error::OriginTooLong => "Origin header too long",
            Error::OriginNotAllowed => "Origin not allowed",
            Error::Rejected(_) => "request refused",
            Error::UnmaskedFrame => "client frame not masked",
            Error::ReservedBits => "reserved bits set",
            Error::ReservedOpcode => "reserved opcode",
            Error::NonMinimalLength => "frame length not minimally encoded",
            Error::BadControlFrame => "control frame fragmented or over 125 bytes",
            Error::BadFragmentation => "bad message fragmentation",
            Error::BadCloseFrame => "invalid close frame",
            Error::UnsupportedData => "unsupported data type for this subprotocol",
            Error::InvalidPayload => "invalid text payload",
            Error::MessageTooBig => "message too big",
        }
    }

    /// The HTTP status to answer a handshake error with.
    pub const fn http_status(&self) -> Option<u16> {
        Some(match self {
            Error::HeaderTooLarge | Error::TooManyHeaders => 431,
            Error::MalformedRequest
            | Error::MissingHost
            | Error::NotWebSocket
            | Error::MissingConnectionUpgrade
            | Error::BadKey
            | Error::DuplicateHeader
            | Error::OriginTooLong => 400,
            Error::MethodNotAllowed => 405,
            Error::UriTooLong => 414,
            Error::UnsupportedVersion => 426,
            Error::OriginNotAllowed => 403,
            Error::Rejected(s) => *s,
            _ => return None,
        })
    }

    /// The close code to answer a frame error with.
    pub const fn close_code(&self) -> Option<u16> {
        Some(match self {
            Error::UnmaskedFrame
            | Error::ReservedBits
            | Error::ReservedOpcode
            | Error::NonMinimalLength
            | Error::BadControlFrame
            | Error::BadFragmentation
            | Error::BadCloseFrame => 1002,
            Error::UnsupportedData => 1003,
            Error::InvalidPayload => 1007,
            Error::MessageTooBig => 1009,
            _ => return None,
        })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())?;
        if let Some(s) = self.http_status() {
            write!(f, " (HTTP {s})")?;
        }
        if let Some(c) = self.close_code() {
            write!(f, " (close {c})")?;
        }
        Ok(())
    }
}
