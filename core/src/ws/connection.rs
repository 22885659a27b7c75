//! A WebSocket connection after the handshake: the [`Decoder`] for what the
//! browser sends and the [`Encoder`] for what vncap sends, with one output
//! queue for control frames. The daemon runs RFB over it (see the module docs
//! of [`crate::ws`] for the driver loop).
//!
//! It is not a [`crate::Machine`]: the data path unmasks in place and hands
//! back slices of the caller's buffer instead of copying out (RFC 6455
//! section 5; the style's one exception). Its one timer is the Machine's
//! pair all the same: with [`Connection::keepalive`] it pings a quiet
//! viewer every interval and gives up on one that sends no frame at all
//! within the timeout after a ping ([`Connection::poll_timeout`],
//! [`Connection::handle_timeout`], time injected).

use super::frame::{Config, Decoded, Decoder, Encoder, Opcode};
use super::{Error, Subprotocol};
use crate::Instant;

/// WebSocket pings to the viewer (`--ping-interval`, `--ping-timeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// Milliseconds between pings (from one ping to the next).
    pub interval_ms: u64,
    /// Milliseconds after a ping within which some frame must arrive.
    pub timeout_ms: u64,
}

/// The close code for a viewer that stopped answering pings (1011:
/// the server met a condition that keeps it from going on).
pub const NO_ANSWER_CODE: u16 = 1011;
/// Its close reason, and what the daemon logs.
pub const NO_ANSWER: &str = "viewer stopped answering";

/// Where the ping timer is.
#[derive(Debug, Clone, Copy)]
enum Ping {
    /// No keepalive.
    Off,
    /// The next ping goes at this instant.
    Due(Instant),
    /// A ping went at `sent`; some frame must arrive by `deadline`.
    Waiting { sent: Instant, deadline: Instant },
    /// The viewer did not answer: the close is queued.
    Gone,
}

/// One WebSocket connection, server side.
#[derive(Debug)]
pub struct Connection {
    decoder: Decoder,
    encoder: Encoder,
    subprotocol: Subprotocol,
    keepalive: Option<Keepalive>,
    ping: Ping,
    /// Bytes of a frame arrived since the last ping.
    heard: bool,
}

impl Connection {
    /// A connection with the subprotocol the handshake chose.
    pub fn new(subprotocol: Subprotocol, config: Config) -> Self {
        Connection {
            decoder: Decoder::new(subprotocol, config),
            encoder: Encoder::new(subprotocol),
            subprotocol,
            keepalive: None,
            ping: Ping::Off,
            heard: false,
        }
    }

    /// Pings the viewer every `k.interval_ms` from `now` on (an interval of
    /// 0 turns pings off).
    pub fn keepalive(&mut self, k: Keepalive, now: Instant) {
        if k.interval_ms == 0 {
            self.keepalive = None;
            self.ping = Ping::Off;
        } else {
            self.keepalive = Some(k);
            self.ping = Ping::Due(now + k.interval_ms);
        }
    }

    /// When [`Connection::handle_timeout`] must be called next, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.ping {
            Ping::Due(at) => Some(at),
            Ping::Waiting { deadline, .. } => Some(deadline),
            Ping::Off | Ping::Gone => None,
        }
    }

    /// Runs the ping timer at `now`: queues a ping when one is due, and
    /// when no frame arrived within the timeout after one, queues a close
    /// ([`NO_ANSWER_CODE`], [`NO_ANSWER`]) and returns `false` (flush
    /// [`Connection::poll_output`], then end the session). Called early, it
    /// does nothing.
    pub fn handle_timeout(&mut self, now: Instant) -> bool {
        let Some(k) = self.keepalive else {
            return true;
        };
        match self.ping {
            Ping::Due(at) if now >= at => {
                self.decoder.ping(b"vncap");
                self.heard = false;
                self.ping = Ping::Waiting {
                    sent: now,
                    deadline: now + k.timeout_ms,
                };
            }
            Ping::Waiting { sent, deadline } if now >= deadline || self.heard => {
                if self.heard {
                    let next = sent + k.interval_ms;
                    self.ping = Ping::Due(if next > now { next } else { now });
                    return self.handle_timeout(now);
                }
                self.decoder.close(NO_ANSWER_CODE, NO_ANSWER);
                self.ping = Ping::Gone;
                return false;
            }
            Ping::Gone => return false,
            _ => {}
        }
        true
    }

    /// The subprotocol.
    pub fn subprotocol(&self) -> Subprotocol {
        self.subprotocol
    }

    /// Decodes socket bytes; see [`Decoder::decode`].
    pub fn decode<'b>(&mut self, buf: &'b mut [u8]) -> Result<(usize, Option<Decoded<'b>>), Error> {
        let out = self.decoder.decode(buf);
        if matches!(out, Ok((used, _)) if used > 0) {
            self.heard = true;
        }
        out
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

#[cfg(test)]
mod tests {
    use super::*;

    const K: Keepalive = Keepalive {
        interval_ms: 20_000,
        timeout_ms: 10_000,
    };

    fn at(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    fn output(c: &mut Connection) -> ([u8; 256], usize) {
        let mut out = [0u8; 256];
        let n = c.poll_output(&mut out);
        (out, n)
    }

    #[test]
    fn a_silent_viewer_is_pinged_then_closed_with_1011() {
        let mut c = Connection::new(Subprotocol::Binary, Config::default());
        c.keepalive(K, at(0));
        assert_eq!(c.poll_timeout(), Some(at(20_000)));
        assert!(c.handle_timeout(at(19_999)));
        assert_eq!(output(&mut c).1, 0);
        assert!(c.handle_timeout(at(20_000)));
        let (out, n) = output(&mut c);
        assert_eq!(&out[..n], b"\x89\x05vncap");
        assert_eq!(c.poll_timeout(), Some(at(30_000)));
        assert!(c.handle_timeout(at(29_999)));
        assert!(!c.handle_timeout(at(30_000)));
        let (out, n) = output(&mut c);
        assert_eq!(&out[..4], [0x88, (2 + NO_ANSWER.len()) as u8, 0x03, 0xf3]);
        assert_eq!(&out[4..n], NO_ANSWER.as_bytes());
        assert_eq!(c.poll_timeout(), None);
    }

    #[test]
    fn any_frame_after_a_ping_keeps_the_session() {
        let mut c = Connection::new(Subprotocol::Binary, Config::default());
        c.keepalive(K, at(0));
        assert!(c.handle_timeout(at(20_000)));
        output(&mut c);
        // A masked pong, empty.
        let mut pong = [0x8a, 0x80, 1, 2, 3, 4];
        assert_eq!(c.decode(&mut pong).unwrap().0, 6);
        assert!(c.handle_timeout(at(30_000)));
        assert_eq!(c.poll_timeout(), Some(at(40_000)));
        // Nothing after the next ping: closed.
        assert!(c.handle_timeout(at(40_000)));
        assert!(!c.handle_timeout(at(50_000)));
    }

    #[test]
    fn an_interval_of_zero_is_off() {
        let mut c = Connection::new(Subprotocol::Binary, Config::default());
        c.keepalive(
            Keepalive {
                interval_ms: 0,
                timeout_ms: 10,
            },
            at(0),
        );
        assert_eq!(c.poll_timeout(), None);
        assert!(c.handle_timeout(at(1 << 40)));
    }
}
