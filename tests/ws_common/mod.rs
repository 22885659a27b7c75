//! Shared helpers of the `ws_*` tests: client frame building (masked, as a
//! browser sends), a tiny independent parser of server frames, and
//! [`WsServer`], a `Machine` adapter that runs `ws::Handshake` then
//! `ws::Connection` the way a driver does, so the shared replay harness can
//! feed it recorded sessions whole, byte by byte and in random splits.

#![allow(dead_code)]

use std::collections::VecDeque;

use vncap_core::ws::frame::{self, Decoded};
use vncap_core::ws::handshake::{self, Handshake};
use vncap_core::ws::{Connection, Error, Subprotocol};
use vncap_core::Machine;

/// A client frame: `b0` is FIN/RSV/opcode, the payload is masked with `mask`.
pub fn client_frame(b0: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut f = vec![b0];
    let n = payload.len();
    if n <= 125 {
        f.push(0x80 | n as u8);
    } else if n <= 0xffff {
        f.push(0x80 | 126);
        f.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        f.push(0x80 | 127);
        f.extend_from_slice(&(n as u64).to_be_bytes());
    }
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// Parses unmasked server frames: (fin, opcode, payload) each. Panics on a
/// malformed or masked frame (test data).
pub fn server_frames(mut b: &[u8]) -> Vec<(bool, u8, Vec<u8>)> {
    let mut v = Vec::new();
    while !b.is_empty() {
        let fin = b[0] & 0x80 != 0;
        let op = b[0] & 0x0f;
        assert_eq!(b[1] & 0x80, 0, "server frames are not masked");
        let (len, h) = match b[1] & 0x7f {
            126 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
            127 => (
                u64::from_be_bytes(b[2..10].try_into().unwrap()) as usize,
                10,
            ),
            l => (l as usize, 2),
        };
        v.push((fin, op, b[h..h + len].to_vec()));
        b = &b[h + len..];
    }
    v
}

/// What [`WsServer`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ev {
    /// The handshake's request (path, query, origin, subprotocol).
    Request(String, String, Option<String>, Subprotocol),
    /// Upgraded with this subprotocol.
    Upgraded(Subprotocol),
    /// One whole application message (assembled here, by the test).
    Message(Vec<u8>),
    /// The peer closed.
    Closed(Option<u16>),
}

/// Handshake (accepting every request) then connection, as one `Machine`.
pub struct WsServer {
    hs: Handshake<'static>,
    conn: Option<Connection>,
    config: frame::Config,
    window: usize,
    events: VecDeque<Ev>,
    msg: Vec<u8>,
    scratch: Vec<u8>,
}

impl WsServer {
    /// `window`: the most bytes given to the decoder per call (the size of a
    /// driver's read buffer).
    pub fn new(hs: handshake::Config<'static>, config: frame::Config, window: usize) -> Self {
        WsServer {
            hs: Handshake::new(hs),
            conn: None,
            config,
            window,
            events: VecDeque::new(),
            msg: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// Starts in the data phase directly (no handshake).
    pub fn connected(sub: Subprotocol, config: frame::Config, window: usize) -> Self {
        let mut s = WsServer::new(handshake::Config::default(), config, window);
        s.conn = Some(Connection::new(sub, config));
        s
    }
}

impl Machine for WsServer {
    type Event = Ev;
    type Error = Error;

    fn handle_input(&mut self, input: &[u8]) -> Result<usize, Error> {
        let Some(conn) = self.conn.as_mut() else {
            let used = self.hs.handle_input(input)?;
            while let Some(e) = self.hs.poll_event() {
                match e {
                    handshake::Event::Request => {
                        let r = self.hs.request().unwrap();
                        self.events.push_back(Ev::Request(
                            r.path().to_string(),
                            r.query().to_string(),
                            r.origin.as_ref().map(|o| o.to_string()),
                            r.subprotocol,
                        ));
                        self.hs.accept();
                    }
                    handshake::Event::Upgraded(sub) => {
                        self.events.push_back(Ev::Upgraded(sub));
                        self.conn = Some(Connection::new(sub, self.config));
                    }
                }
            }
            return Ok(used);
        };
        let n = input.len().min(self.window);
        self.scratch.clear();
        self.scratch.extend_from_slice(&input[..n]);
        let (used, item) = conn.decode(&mut self.scratch)?;
        match item {
            Some(Decoded::Data { bytes, end }) => {
                self.msg.extend_from_slice(bytes);
                if end {
                    self.events
                        .push_back(Ev::Message(std::mem::take(&mut self.msg)));
                }
            }
            Some(Decoded::Closed { code }) => self.events.push_back(Ev::Closed(code)),
            None => {}
        }
        Ok(used)
    }

    fn poll_output(&mut self, out: &mut [u8]) -> usize {
        let n = self.hs.poll_output(out);
        if n > 0 {
            return n;
        }
        self.conn.as_mut().map_or(0, |c| c.poll_output(out))
    }

    fn poll_event(&mut self) -> Option<Ev> {
        self.events.pop_front()
    }
}
