//! The RFC 6455 frame codec (section 5, closing in section 7): a [`Decoder`]
//! for client frames that unmasks in place in the caller's buffer and hands
//! back payload slices, possibly parts of a frame, and an [`Encoder`] for
//! server frames (unmasked), binary or base64 text.
//!
//! It is not a message assembler: memory is bounded by the caller's buffer,
//! never by a length the peer declares. A 1 MiB frame read through a 16 KiB
//! buffer comes out as 16 KiB pieces; [`Decoded::Data::end`] marks the last
//! piece of a message. Control frames (at most 125 bytes of payload) are
//! handled whole: a ping queues a pong, a pong is ignored, a close is echoed
//! and reported. Extensions are not supported (reserved bits are an error).
//!
//! # Driver loop
//!
//! `buf[start..end]` holds bytes read and not yet consumed; the buffer must
//! be at least [`MIN_BUFFER`] bytes so a whole control frame fits.
//!
//! 1. `let (used, item) = decoder.decode(&mut buf[start..end])?; start += used;`
//! 2. `Some(Decoded::Data { bytes, .. })`: use `bytes` (RFB for the backend),
//!    then go to 1. `Some(Decoded::Closed { .. })`: flush [`Decoder::poll_output`]
//!    and close the socket. `None` with `used == 0`: move `start..end` to the
//!    front, read more, go to 1. `None` otherwise: go to 1.
//! 3. Between whole frames of your own, write what [`Decoder::poll_output`]
//!    gives (pongs, close frames); on `Err`, flush it and close.

use base64::Engine as _;
use heapless::Deque;

use super::unbase64::Unbase64;
use super::{Error, Subprotocol};

/// The smallest read buffer a [`Decoder`] works with: a whole control frame
/// (14 bytes of header + 125 of payload), rounded up.
pub const MIN_BUFFER: usize = 256;
/// Default largest message (sum of its frames' payloads), in bytes (1009 beyond).
pub const DEFAULT_MAX_MESSAGE: u64 = 16 * 1024 * 1024;
/// The largest control frame payload (RFC 6455 section 5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// Frame opcodes (RFC 6455 section 5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Opcode {
    /// A continuation of a fragmented message.
    Continuation = 0,
    /// A text frame (UTF-8; base64 in the `base64` subprotocol).
    Text = 1,
    /// A binary frame.
    Binary = 2,
    /// Close.
    Close = 8,
    /// Ping.
    Ping = 9,
    /// Pong.
    Pong = 10,
}

impl Opcode {
    /// The opcode of a 4-bit value, `None` for the reserved ones.
    pub const fn from_u8(v: u8) -> Option<Opcode> {
        Some(match v {
            0 => Opcode::Continuation,
            1 => Opcode::Text,
            2 => Opcode::Binary,
            8 => Opcode::Close,
            9 => Opcode::Ping,
            10 => Opcode::Pong,
            _ => return None,
        })
    }

    /// Whether this is a control opcode (close, ping, pong).
    pub const fn is_control(self) -> bool {
        (self as u8) & 0x8 != 0
    }
}

/// Decoder limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Largest message accepted (payload bytes on the wire, summed over its
    /// fragments); default [`DEFAULT_MAX_MESSAGE`]. Close 1009 beyond it.
    pub max_message: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_message: DEFAULT_MAX_MESSAGE,
        }
    }
}

/// What [`Decoder::decode`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'b> {
    /// Application data, unmasked (and base64-decoded) in place in the
    /// caller's buffer: a piece of a message, maybe empty.
    Data {
        /// The bytes.
        bytes: &'b [u8],
        /// Whether this piece ends a message.
        end: bool,
    },
    /// The peer sent a close frame (code, if it gave one). The echo is queued
    /// in [`Decoder::poll_output`]; flush it and close the connection.
    Closed {
        /// The peer's status code.
        code: Option<u16>,
    },
}

#[derive(Debug, Clone, Copy)]
struct Header {
    fin: bool,
    opcode: Opcode,
    len: u64,
    mask: [u8; 4],
    size: usize,
}

#[derive(Debug, Clone, Copy)]
struct Current {
    fin: bool,
    remaining: u64,
    mask: [u8; 4],
    phase: usize,
}

enum Item {
    Data(usize, usize, bool),
    Closed(Option<u16>),
}

/// The decoder of client frames for one connection.
#[derive(Debug)]
pub struct Decoder {
    config: Config,
    base64: bool,
    frame: Option<Current>,
    in_message: bool,
    message_len: u64,
    unb: Unbase64,
    out: Deque<u8, 512>,
    close_sent: bool,
    closed: bool,
    error: Option<Error>,
}

impl Decoder {
    /// A decoder for a session with this subprotocol.
    pub fn new(subprotocol: Subprotocol, config: Config) -> Self {
        Decoder {
            config,
            base64: subprotocol.is_base64(),
            frame: None,
            in_message: false,
            message_len: 0,
            unb: Unbase64::default(),
            out: Deque::new(),
            close_sent: false,
            closed: false,
            error: None,
        }
    }

    /// Whether the peer's close frame was received.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Whether a close frame has been queued to the peer (echo, error, or
    /// [`Decoder::close`]).
    pub fn close_sent(&self) -> bool {
        self.close_sent
    }

    /// The error that stopped the decoder, if any.
    pub fn error(&self) -> Option<Error> {
        self.error
    }

    /// Queues a close frame (e.g. 1000 when the backend went away, 1001 on
    /// shutdown); later calls do nothing. Keep decoding until
    /// [`Decoded::Closed`] (the peer's answer), or just flush and close.
    pub fn close(&mut self, code: u16, reason: &str) {
        if self.close_sent {
            return;
        }
        let mut frame = [0u8; 2 + MAX_CONTROL_PAYLOAD];
        let n = encode_close(code, reason, &mut frame);
        self.push_out(frame.get(..n).unwrap_or(&[]));
        self.close_sent = true;
    }

    /// Queues a ping frame with `payload` (at most 125 bytes; longer is
    /// cut), unless a close was sent or the queue has no room for it beside
    /// a close frame.
    pub fn ping(&mut self, payload: &[u8]) {
        let payload = payload.get(..MAX_CONTROL_PAYLOAD).unwrap_or(payload);
        if self.close_sent || self.out.capacity() - self.out.len() < 2 * (2 + MAX_CONTROL_PAYLOAD) {
            return;
        }
        let (h, n) = header(Opcode::Ping, true, payload.len() as u64);
        self.push_out(h.get(..n).unwrap_or(&[]));
        self.push_out(payload);
    }

    /// Copies queued frames (pongs, close) into `out`; returns how many bytes.
    pub fn poll_output(&mut self, out: &mut [u8]) -> usize {
        let mut n = 0;
        for slot in out.iter_mut() {
            match self.out.pop_front() {
                Some(b) => {
                    *slot = b;
                    n += 1;
                }
                None => break,
            }
        }
        n
    }

    fn push_out(&mut self, bytes: &[u8]) {
        for &b in bytes {
            let _ = self.out.push_back(b);
        }
    }

    fn fail(&mut self, e: Error) -> Error {
        if self.error.is_none() {
            debug!("ws: frame error: {}", e.reason());
            self.error = Some(e);
            self.close(e.close_code().unwrap_or(1002), e.reason());
        }
        e
    }

    /// Whether a frame's header has been read and some of its payload not.
    pub fn in_frame(&self) -> bool {
        self.frame.is_some()
    }

    /// How many more socket bytes, beyond `pending` (bytes read and not yet
    /// given to [`Decoder::decode`], all of them inside the frame being
    /// read), still belong to that frame: the rest of a frame in progress,
    /// or of the next one as far as its header in `pending` tells (while
    /// the header is incomplete, the bytes it still needs). 0 when `pending`
    /// holds the whole frame, or a header the decoder will refuse. For a
    /// driver that must not read past a frame (vncap's entry machine hands
    /// over at a frame's end, whatever the reads were).
    pub fn frame_wants(&self, pending: &[u8]) -> usize {
        let have = pending.len() as u64;
        let total = match self.frame {
            Some(cur) => cur.remaining,
            None => match pending {
                [] | [_] => 2,
                [_, b1, ..] => {
                    let ext = match b1 & 0x7f {
                        126 => 2,
                        127 => 8,
                        _ => 0,
                    };
                    let size = 2 + ext + 4;
                    match parse_header(pending) {
                        Ok(Some(h)) => h.size as u64 + h.len,
                        Ok(None) => size,
                        Err(_) => 0,
                    }
                }
            },
        };
        usize::try_from(total.saturating_sub(have)).unwrap_or(usize::MAX)
    }

    /// How much of `pending` (bytes read, not yet given to
    /// [`Decoder::decode`]) to give it so that the data it hands back is at
    /// most `room` bytes: `room` bytes of a frame in progress; the header of
    /// a data frame starting in `pending` and `room` bytes after it; a
    /// control frame whole (it hands back no data). All of `pending` while a
    /// header is incomplete or refused (`decode` says which). For a driver
    /// that copies the data into a buffer of its own (vncap's entry machine):
    /// the header's length is the frame's, 6 to 14 bytes.
    pub fn window(&self, pending: &[u8], room: usize) -> usize {
        let n = match self.frame {
            Some(_) => room,
            None => match parse_header(pending) {
                Ok(Some(h)) if h.opcode.is_control() => h.size.saturating_add(h.len as usize),
                Ok(Some(h)) => h.size.saturating_add(room),
                Ok(None) | Err(_) => pending.len(),
            },
        };
        n.min(pending.len())
    }

    /// Decodes frames from `buf` (bytes read, not yet consumed). Returns how
    /// many bytes were consumed and at most one item; see the module docs for
    /// the loop. `(0, None)` means: read more. After an `Err` the close frame
    /// is queued and the same `Err` comes back forever; after
    /// [`Decoded::Closed`] every call returns `(0, None)`.
    pub fn decode<'b>(&mut self, buf: &'b mut [u8]) -> Result<(usize, Option<Decoded<'b>>), Error> {
        let (used, item) = match self.step(buf) {
            Ok(x) => x,
            Err(e) => return Err(self.fail(e)),
        };
        let buf: &'b [u8] = buf;
        let item = match item {
            None => None,
            Some(Item::Closed(code)) => Some(Decoded::Closed { code }),
            Some(Item::Data(a, b, end)) => Some(Decoded::Data {
                bytes: buf.get(a..b).unwrap_or(&[]),
                end,
            }),
        };
        Ok((used, item))
    }

    fn step(&mut self, buf: &mut [u8]) -> Result<(usize, Option<Item>), Error> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let mut pos = 0;
        loop {
            if self.closed {
                return Ok((pos, None));
            }
            let avail = buf.len() - pos;
            let Some(cur) = self.frame else {
                let rest = buf.get(pos..).unwrap_or(&[]);
                let Some(h) = parse_header(rest)? else {
                    return Ok((pos, None));
                };
                if h.opcode.is_control() {
                    if h.size + h.len as usize > avail {
                        return Ok((pos, None));
                    }
                    let mut payload = [0u8; MAX_CONTROL_PAYLOAD];
                    let len = h.len as usize;
                    let src = buf.get(pos + h.size..pos + h.size + len).unwrap_or(&[]);
                    let p = payload.get_mut(..len).unwrap_or(&mut []);
                    p.copy_from_slice(src);
                    unmask(p, h.mask, 0);
                    pos += h.size + len;
                    if let Some(code) = self.control(h.opcode, p)? {
                        return Ok((pos, Some(Item::Closed(code))));
                    }
                    continue;
                }
                self.check_data(&h)?;
                if self.base64 && h.len > 0 {
                    let k = self.take_base64(avail - h.size, h.len);
                    if k == 0 {
                        return Ok((pos, None));
                    }
                }
                if !self.in_message {
                    self.message_len = 0;
                }
                self.in_message = true;
                self.message_len += h.len;
                pos += h.size;
                self.frame = Some(Current {
                    fin: h.fin,
                    remaining: h.len,
                    mask: h.mask,
                    phase: 0,
                });
                if h.len == 0 {
                    return self.finish_frame(h.fin, pos, pos, pos);
                }
                continue;
            };
            let k = if self.base64 {
                self.take_base64(avail, cur.remaining)
            } else {
                avail.min(usize::try_from(cur.remaining).unwrap_or(usize::MAX))
            };
            if k == 0 {
                return Ok((pos, None));
            }
            let piece = buf.get_mut(pos..pos + k).unwrap_or(&mut []);
            let phase = unmask(piece, cur.mask, cur.phase);
            let remaining = cur.remaining - k as u64;
            self.frame = Some(Current {
                remaining,
                phase,
                ..cur
            });
            let (a, b) = if self.base64 {
                let r = self
                    .unb
                    .decode(buf, pos, pos + k)
                    .map_err(|_| Error::InvalidPayload)?;
                (r.start, r.end)
            } else {
                (pos, pos + k)
            };
            pos += k;
            if remaining == 0 {
                return self.finish_frame(cur.fin, pos, a, b);
            }
            if a == b {
                continue;
            }
            return Ok((pos, Some(Item::Data(a, b, false))));
        }
    }

    /// How many payload bytes of `avail` to take now in base64 mode: whole
    /// groups of four (with the carried characters), or all that remain of the
    /// frame.
    fn take_base64(&self, avail: usize, remaining: u64) -> usize {
        let k = avail.min(usize::try_from(remaining).unwrap_or(usize::MAX));
        if k as u64 == remaining {
            k
        } else {
            let c = self.unb.carried();
            ((c + k) / 4 * 4).saturating_sub(c)
        }
    }

    fn finish_frame(
        &mut self,
        fin: bool,
        pos: usize,
        a: usize,
        b: usize,
    ) -> Result<(usize, Option<Item>), Error> {
        self.frame = None;
        if fin {
            self.in_message = false;
            if self.base64 {
                self.unb.end_message().map_err(|_| Error::InvalidPayload)?;
            }
            return Ok((pos, Some(Item::Data(a, b, true))));
        }
        if a == b {
            // Nothing to report; the caller loops (consumed > 0).
            return Ok((pos, None));
        }
        Ok((pos, Some(Item::Data(a, b, false))))
    }

    fn check_data(&self, h: &Header) -> Result<(), Error> {
        match h.opcode {
            Opcode::Continuation if !self.in_message => return Err(Error::BadFragmentation),
            Opcode::Text | Opcode::Binary if self.in_message => {
                return Err(Error::BadFragmentation)
            }
            Opcode::Text if !self.base64 => return Err(Error::UnsupportedData),
            Opcode::Binary if self.base64 => return Err(Error::UnsupportedData),
            _ => {}
        }
        let so_far = if self.in_message { self.message_len } else { 0 };
        if so_far.saturating_add(h.len) > self.config.max_message {
            return Err(Error::MessageTooBig);
        }
        Ok(())
    }

    /// Handles a whole control frame; `Some(code)` when it was a close.
    fn control(&mut self, op: Opcode, payload: &[u8]) -> Result<Option<Option<u16>>, Error> {
        match op {
            Opcode::Ping => {
                // Keep room for a close frame; a pong that does not fit is
                // dropped (RFC 6455 5.5.3 allows answering only the latest).
                if !self.close_sent
                    && self.out.capacity() - self.out.len() >= 2 * (2 + MAX_CONTROL_PAYLOAD)
                {
                    let (h, n) = header(Opcode::Pong, true, payload.len() as u64);
                    self.push_out(h.get(..n).unwrap_or(&[]));
                    self.push_out(payload);
                }
                Ok(None)
            }
            Opcode::Pong => Ok(None),
            _ => {
                let code = match payload {
                    [] => None,
                    [_] => return Err(Error::BadCloseFrame),
                    [hi, lo, reason @ ..] => {
                        let code = u16::from_be_bytes([*hi, *lo]);
                        if !valid_close_code(code) {
                            return Err(Error::BadCloseFrame);
                        }
                        if core::str::from_utf8(reason).is_err() {
                            return Err(Error::InvalidPayload);
                        }
                        Some(code)
                    }
                };
                if !self.close_sent {
                    let mut frame = [0u8; 4];
                    let n = match code {
                        Some(c) => encode_close(c, "", &mut frame),
                        None => {
                            let (h, n) = header(Opcode::Close, true, 0);
                            frame[..2].copy_from_slice(&h[..2]);
                            n
                        }
                    };
                    self.push_out(frame.get(..n).unwrap_or(&[]));
                    self.close_sent = true;
                }
                self.closed = true;
                Ok(Some(code))
            }
        }
    }
}

/// Whether a received close code is valid (RFC 6455 section 7.4).
pub const fn valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// Parses a client frame header from the start of `b`: `Ok(None)` if more
/// bytes are needed. Checks everything that does not depend on state.
fn parse_header(b: &[u8]) -> Result<Option<Header>, Error> {
    let (b0, b1) = match b {
        [b0, b1, ..] => (*b0, *b1),
        [b0] => (*b0, 0x80),
        [] => return Ok(None),
    };
    if b0 & 0x70 != 0 {
        return Err(Error::ReservedBits);
    }
    let opcode = Opcode::from_u8(b0 & 0x0f).ok_or(Error::ReservedOpcode)?;
    let fin = b0 & 0x80 != 0;
    if b.len() < 2 {
        return Ok(None);
    }
    if b1 & 0x80 == 0 {
        return Err(Error::UnmaskedFrame);
    }
    let short = b1 & 0x7f;
    let ext = match short {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    if opcode.is_control() && (!fin || short > 125) {
        return Err(Error::BadControlFrame);
    }
    let size = 2 + ext + 4;
    let Some(h) = b.get(..size) else {
        return Ok(None);
    };
    let len = match ext {
        2 => {
            let l = u64::from(u16::from_be_bytes([h[2], h[3]]));
            if l < 126 {
                return Err(Error::NonMinimalLength);
            }
            l
        }
        8 => {
            let mut a = [0u8; 8];
            a.copy_from_slice(&h[2..10]);
            let l = u64::from_be_bytes(a);
            if l < 65536 || l >> 63 != 0 {
                return Err(Error::NonMinimalLength);
            }
            l
        }
        _ => u64::from(short),
    };
    let mut mask = [0u8; 4];
    mask.copy_from_slice(&h[size - 4..size]);
    Ok(Some(Header {
        fin,
        opcode,
        len,
        mask,
        size,
    }))
}

/// XORs `data` with the 4-byte `mask`, starting at mask byte `phase` (0..=3),
/// in place, eight bytes at a time; returns the phase after `data`. Unmasking
/// and masking are the same operation.
pub fn unmask(data: &mut [u8], mask: [u8; 4], phase: usize) -> usize {
    let r = [
        mask[phase & 3],
        mask[(phase + 1) & 3],
        mask[(phase + 2) & 3],
        mask[(phase + 3) & 3],
    ];
    let key = u64::from_ne_bytes([r[0], r[1], r[2], r[3], r[0], r[1], r[2], r[3]]);
    let mut chunks = data.chunks_exact_mut(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        c.copy_from_slice(&(u64::from_ne_bytes(w) ^ key).to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= r[i & 3];
    }
    (phase + data.len()) & 3
}

/// The header of a server (unmasked) frame with a payload of `len` bytes:
/// the bytes and how many of them to send (2, 4 or 10). For vectored writes:
/// send `header(..).0[..n]`, then the payload, without copying it.
pub fn header(opcode: Opcode, fin: bool, len: u64) -> ([u8; 10], usize) {
    let mut h = [0u8; 10];
    h[0] = (opcode as u8) | if fin { 0x80 } else { 0 };
    let n = if len <= 125 {
        h[1] = len as u8;
        2
    } else if len <= 0xffff {
        h[1] = 126;
        h[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        4
    } else {
        h[1] = 127;
        h[2..10].copy_from_slice(&len.to_be_bytes());
        10
    };
    (h, n)
}

/// Bytes of header for a payload of `len` bytes (2, 4 or 10).
pub const fn header_len(len: u64) -> usize {
    if len <= 125 {
        2
    } else if len <= 0xffff {
        4
    } else {
        10
    }
}

/// The largest payload that fits with its header in `room` bytes.
pub fn max_payload(room: usize) -> usize {
    if room >= 10 + 65536 {
        room - 10
    } else if room >= 4 + 126 {
        (room - 4).min(0xffff)
    } else {
        room.saturating_sub(2).min(125)
    }
}

/// Encodes a close frame with `code` and `reason` (cut to 123 bytes at a
/// character boundary) into `out` (129 bytes always suffice); returns its
/// length, or 0 if `out` is too small.
pub fn encode_close(code: u16, reason: &str, out: &mut [u8]) -> usize {
    let mut cut = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let reason = reason.as_bytes().get(..cut).unwrap_or(&[]);
    let len = 2 + reason.len();
    let Some(dst) = out.get_mut(..2 + len) else {
        return 0;
    };
    let (h, _) = header(Opcode::Close, true, len as u64);
    dst[..2].copy_from_slice(&h[..2]);
    dst[2..4].copy_from_slice(&code.to_be_bytes());
    dst[4..].copy_from_slice(reason);
    2 + len
}

/// The encoder of server frames for one connection: binary frames, or base64
/// text frames in the `base64` subprotocol. Each call frames one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoder {
    base64: bool,
}

impl Encoder {
    /// An encoder for a session with this subprotocol.
    pub const fn new(subprotocol: Subprotocol) -> Self {
        Encoder {
            base64: subprotocol.is_base64(),
        }
    }

    /// The opcode data frames carry (binary, or text for base64).
    pub const fn opcode(&self) -> Opcode {
        if self.base64 {
            Opcode::Text
        } else {
            Opcode::Binary
        }
    }

    /// The most data bytes one [`Encoder::encode`] call can put in `room` bytes.
    pub fn max_data(&self, room: usize) -> usize {
        let p = max_payload(room);
        if self.base64 {
            p / 4 * 3
        } else {
            p
        }
    }

    /// Frames as much of `data` as fits in `out` as one message; returns
    /// (data bytes taken, bytes written). Call again with the rest. `(0, 0)`
    /// only if `data` is empty or `out` is too small for one byte (3 bytes
    /// binary, 6 base64).
    pub fn encode(&self, data: &[u8], out: &mut [u8]) -> (usize, usize) {
        let take = data.len().min(self.max_data(out.len()));
        let Some(data) = data.get(..take) else {
            return (0, 0);
        };
        if take == 0 {
            return (0, 0);
        }
        let plen = if self.base64 {
            take.div_ceil(3) * 4
        } else {
            take
        };
        let (h, n) = header(self.opcode(), true, plen as u64);
        let Some(dst) = out.get_mut(..n + plen) else {
            return (0, 0);
        };
        dst[..n].copy_from_slice(&h[..n]);
        if self.base64 {
            let _ = base64::engine::general_purpose::STANDARD.encode_slice(data, &mut dst[n..]);
        } else {
            dst[n..].copy_from_slice(data);
        }
        (take, n + plen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unmask_matches_bytewise() {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        for phase in 0..4 {
            for len in 0..40 {
                let mut a: [u8; 40] = core::array::from_fn(|i| (i * 7) as u8);
                let mut b = a;
                let p = unmask(&mut a[..len], mask, phase);
                for (i, x) in b[..len].iter_mut().enumerate() {
                    *x ^= mask[(phase + i) % 4];
                }
                assert_eq!(a, b);
                assert_eq!(p, (phase + len) % 4);
            }
        }
    }

    #[test]
    fn max_payload_fits() {
        for room in 0..70_000 {
            let p = max_payload(room);
            if p > 0 {
                assert!(header_len(p as u64) + p <= room, "room {room}");
            }
            if room >= 3 {
                assert!(p + 1 + header_len(p as u64 + 1) > room || p == 125 && room < 130);
            }
        }
    }
}
