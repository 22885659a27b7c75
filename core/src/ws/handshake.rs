//! The server side of the WebSocket opening handshake (RFC 6455 section 4.2):
//! parses the HTTP/1.1 Upgrade request with `httparse`, checks it, picks the
//! subprotocol, reports the request (path, query, Origin) to the driver, and
//! writes the `101 Switching Protocols` answer (or a real 4xx) when the driver
//! decides.
//!
//! It is not an HTTP server: one request, no body, no keep-alive. It does not
//! look up tokens: the driver does, with [`Request::query`], then calls
//! [`Handshake::accept`] or [`Handshake::reject`].
//!
//! Flow: [`Machine::handle_input`] consumes exactly the header block (bytes
//! after it stay with the caller: they are the first WebSocket frames) →
//! [`Event::Request`] → `accept()` (queues the 101, then [`Event::Upgraded`]) or
//! `reject(status)` (queues the 4xx; `handle_input` then returns
//! [`Error::Rejected`]). A bad request gets its HTTP answer queued and an
//! [`Error`] with [`Error::http_status`]. The machine has no timer: the
//! driver bounds the whole handshake with its own deadline.

use core::fmt::Write as _;

use base64::Engine as _;
use heapless::{String, Vec};
use sha1::{Digest as _, Sha1};

use super::{Error, Subprotocol};
use crate::machine::Machine;

/// Default limit on the request header block, in bytes (431 beyond it).
pub const DEFAULT_MAX_HEADER_BYTES: usize = 8 * 1024;
/// Room for the request target (path and query), in bytes (414 beyond it).
pub const MAX_TARGET: usize = 512;
/// Room for the `Origin` header value, in bytes.
pub const MAX_ORIGIN: usize = 256;
/// Header lines parsed at most (431 beyond it).
pub const MAX_HEADERS: usize = 48;
/// Headers an upgrade request may carry once only (a second one is 400).
const SINGLE: [&str; 5] = [
    "host",
    "origin",
    "upgrade",
    "sec-websocket-version",
    "sec-websocket-key",
];
/// `Sec-WebSocket-Key` in [`SINGLE`] (its repetition is [`Error::BadKey`]).
const KEY: usize = 4;
/// The GUID of RFC 6455 section 1.3, appended to the key before hashing.
pub const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Handshake configuration.
#[derive(Debug, Clone, Copy)]
pub struct Config<'a> {
    /// The largest request header block accepted (default
    /// [`DEFAULT_MAX_HEADER_BYTES`]). The caller's read buffer should be at
    /// least this large.
    pub max_header_bytes: usize,
    /// Allowed `Origin` values (ASCII case-insensitive, e.g.
    /// `https://gwm.example.org`; `*` allows any). Empty: no check. When the
    /// list is set, a request without `Origin` is refused (403).
    pub allowed_origins: &'a [&'a str],
}

impl Default for Config<'_> {
    fn default() -> Self {
        Config {
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            allowed_origins: &[],
        }
    }
}

/// A checked WebSocket upgrade request, copied into bounded storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The request target (path and query).
    target: String<MAX_TARGET>,
    /// The `Origin` header, if sent.
    pub origin: Option<String<MAX_ORIGIN>>,
    /// The subprotocol that [`Handshake::accept`] will answer with.
    pub subprotocol: Subprotocol,
    /// The client a proxy named in `X-Forwarded-For` or `Forwarded` (the
    /// last entry; see [`crate::forwarded`]). Anyone can write these
    /// headers: believe it only from a trusted proxy.
    pub forwarded: Option<crate::forwarded::Named>,
}

impl Request {
    /// The request path, e.g. `/websockify` (always starts with `/`).
    pub fn path(&self) -> &str {
        self.target
            .split_once('?')
            .map_or(self.target.as_str(), |(p, _)| p)
    }

    /// The query without the `?`, e.g. `token=abc` (empty if none).
    pub fn query(&self) -> &str {
        self.target.split_once('?').map_or("", |(_, q)| q)
    }

    /// The value of the first `name=value` pair of the query named `name`
    /// (raw, not percent-decoded). `query_param("token")` for noVNC's
    /// `websockify?token=…`.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query().split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == name).then_some(v)
        })
    }
}

/// What the handshake reports to its driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A valid upgrade request: read [`Handshake::request`], decide, then
    /// `accept()` or `reject(status)`.
    Request,
    /// `accept()` queued the 101; after writing `poll_output`, the connection
    /// speaks WebSocket frames with this subprotocol.
    Upgraded(Subprotocol),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    ReadingRequest,
    AwaitingDecision,
    Upgraded,
    Failed(Error),
}

/// The server side of one WebSocket opening handshake (a [`Machine`]).
#[derive(Debug)]
pub struct Handshake<'a> {
    config: Config<'a>,
    state: State,
    request: Option<Request>,
    accept_key: [u8; 28],
    event: Option<Event>,
    out: Vec<u8, 384>,
    out_pos: usize,
}

impl<'a> Handshake<'a> {
    /// A handshake waiting for the request.
    pub fn new(config: Config<'a>) -> Self {
        Handshake {
            config,
            state: State::ReadingRequest,
            request: None,
            accept_key: [0; 28],
            event: None,
            out: Vec::new(),
            out_pos: 0,
        }
    }

    /// The request, once parsed.
    pub fn request(&self) -> Option<&Request> {
        self.request.as_ref()
    }

    /// The chosen subprotocol, once the request is parsed.
    pub fn subprotocol(&self) -> Option<Subprotocol> {
        self.request.as_ref().map(|r| r.subprotocol)
    }

    /// Whether the 101 has been queued (the connection is WebSocket now).
    pub fn is_upgraded(&self) -> bool {
        self.state == State::Upgraded
    }

    /// Accepts the request: queues `101 Switching Protocols` and reports
    /// [`Event::Upgraded`]. Does nothing unless a request awaits a decision.
    pub fn accept(&mut self) {
        if self.state != State::AwaitingDecision {
            warn!("ws: accept() with no request awaiting a decision");
            return;
        }
        let sub = self.subprotocol().unwrap_or(Subprotocol::None);
        let key = core::str::from_utf8(&self.accept_key).unwrap_or("");
        let mut s: String<256> = String::new();
        let _ = write!(
            s,
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {key}\r\n"
        );
        if let Some(tok) = sub.token() {
            let _ = write!(s, "Sec-WebSocket-Protocol: {tok}\r\n");
        }
        let _ = s.push_str("\r\n");
        self.out.clear();
        self.out_pos = 0;
        let _ = self.out.extend_from_slice(s.as_bytes());
        self.state = State::Upgraded;
        self.event = Some(Event::Upgraded(sub));
    }

    /// Refuses the request with an HTTP status (4xx or 5xx; anything else is
    /// sent as 400), e.g. 404 for an unknown path or token, 403 for a
    /// forbidden client. Queues the answer; `handle_input` then returns
    /// [`Error::Rejected`]. Does nothing once upgraded or failed.
    pub fn reject(&mut self, status: u16) {
        if matches!(self.state, State::Upgraded | State::Failed(_)) {
            return;
        }
        let status = if (400..600).contains(&status) {
            status
        } else {
            400
        };
        self.fail(Error::Rejected(status));
    }

    fn fail(&mut self, err: Error) -> Error {
        let status = err.http_status().unwrap_or(400);
        let body = err.reason();
        let mut s: String<384> = String::new();
        let _ = write!(
            s,
            "HTTP/1.1 {status} {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n",
            status_text(status),
            body.len() + 1
        );
        match err {
            Error::UnsupportedVersion => {
                let _ = s.push_str("Sec-WebSocket-Version: 13\r\n");
            }
            Error::MethodNotAllowed => {
                let _ = s.push_str("Allow: GET\r\n");
            }
            _ => {}
        }
        let _ = write!(s, "\r\n{body}\n");
        self.out.clear();
        self.out_pos = 0;
        let _ = self.out.extend_from_slice(s.as_bytes());
        self.state = State::Failed(err);
        self.event = None;
        debug!("ws: handshake refused: {}", err.reason());
        err
    }

    fn parse(&mut self, input: &[u8]) -> Result<usize, Error> {
        let limit = input.len().min(self.config.max_header_bytes);
        let window = input.get(..limit).unwrap_or(input);
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        let used = match req.parse(window) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => {
                return if input.len() >= self.config.max_header_bytes {
                    Err(Error::HeaderTooLarge)
                } else {
                    Ok(0)
                };
            }
            Err(httparse::Error::TooManyHeaders) => return Err(Error::TooManyHeaders),
            Err(_) => return Err(Error::MalformedRequest),
        };
        if req.method != Some("GET") {
            return Err(Error::MethodNotAllowed);
        }
        if req.version != Some(1) {
            return Err(Error::MalformedRequest);
        }
        let target = req.path.unwrap_or("");
        if !target.starts_with('/') {
            return Err(Error::MalformedRequest);
        }
        let mut host = false;
        let mut upgrade = false;
        let mut connection = false;
        let mut version = None;
        let mut key: Option<&[u8]> = None;
        let mut key_count = 0;
        let mut origin: Option<&[u8]> = None;
        let (mut binary, mut b64) = (false, false);
        let mut seen = [false; SINGLE.len()];
        let mut forwarded = crate::forwarded::Collector::default();
        for h in req.headers.iter() {
            let name = h.name;
            forwarded.header(name, h.value);
            // A header that names one thing must come once: with two the
            // peers may each believe a different one (RFC 9110 section 5.3).
            if SINGLE.iter().any(|n| name.eq_ignore_ascii_case(n)) {
                let i = SINGLE
                    .iter()
                    .position(|n| name.eq_ignore_ascii_case(n))
                    .unwrap_or(0);
                if let Some(seen) = seen.get_mut(i) {
                    if *seen {
                        return Err(if i == KEY {
                            Error::BadKey
                        } else {
                            Error::DuplicateHeader
                        });
                    }
                    *seen = true;
                }
            }
            if name.eq_ignore_ascii_case("host") {
                host = true;
            } else if name.eq_ignore_ascii_case("upgrade") {
                upgrade |= has_token(h.value, b"websocket");
            } else if name.eq_ignore_ascii_case("connection") {
                connection |= has_token(h.value, b"upgrade");
            } else if name.eq_ignore_ascii_case("sec-websocket-version") {
                version = Some(h.value);
            } else if name.eq_ignore_ascii_case("sec-websocket-key") {
                key = Some(h.value);
                key_count += 1;
            } else if name.eq_ignore_ascii_case("origin") {
                origin = Some(h.value);
            } else if name.eq_ignore_ascii_case("sec-websocket-protocol") {
                for tok in h.value.split(|&b| b == b',') {
                    match trim(tok) {
                        b"binary" => binary = true,
                        b"base64" => b64 = true,
                        _ => {}
                    }
                }
            }
        }
        if !host {
            return Err(Error::MissingHost);
        }
        if !upgrade {
            return Err(Error::NotWebSocket);
        }
        if !connection {
            return Err(Error::MissingConnectionUpgrade);
        }
        if version.map(trim) != Some(b"13") {
            return Err(Error::UnsupportedVersion);
        }
        let key = match key {
            Some(k) if key_count == 1 => trim(k),
            _ => return Err(Error::BadKey),
        };
        let mut raw = [0u8; 18];
        match base64::engine::general_purpose::STANDARD.decode_slice(key, &mut raw) {
            Ok(16) => {}
            _ => return Err(Error::BadKey),
        }
        let origin = match origin.map(trim) {
            None => None,
            Some(o) => {
                let o = core::str::from_utf8(o).map_err(|_| Error::MalformedRequest)?;
                let mut s = String::new();
                s.push_str(o).map_err(|_| Error::OriginTooLong)?;
                Some(s)
            }
        };
        let list = self.config.allowed_origins;
        if !list.is_empty() {
            let ok = origin.as_ref().is_some_and(|o| {
                list.iter()
                    .any(|a| *a == "*" || a.eq_ignore_ascii_case(o.as_str()))
            });
            if !ok {
                return Err(Error::OriginNotAllowed);
            }
        }
        let subprotocol = if binary {
            Subprotocol::Binary
        } else if b64 {
            Subprotocol::Base64
        } else {
            Subprotocol::None
        };
        let mut t = String::new();
        t.push_str(target).map_err(|_| Error::UriTooLong)?;
        self.accept_key = accept_key(key);
        let request = Request {
            target: t,
            origin,
            subprotocol,
            forwarded: forwarded.client(),
        };
        self.event = Some(Event::Request);
        self.request = Some(request);
        self.state = State::AwaitingDecision;
        Ok(used)
    }
}

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key` (RFC 6455 section 4.2.2):
/// base64(SHA-1(key ++ GUID)), 28 ASCII bytes.
pub fn accept_key(key: &[u8]) -> [u8; 28] {
    let mut h = Sha1::new();
    h.update(key);
    h.update(GUID.as_bytes());
    let digest = h.finalize();
    let mut out = [0u8; 28];
    let _ = base64::engine::general_purpose::STANDARD.encode_slice(digest, &mut out);
    out
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if first.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = s {
        if last.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    s
}

/// Whether a comma-separated header value holds `token` (ASCII case-insensitive).
fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| trim(t).eq_ignore_ascii_case(token))
}

fn status_text(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        410 => "Gone",
        414 => "URI Too Long",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Error",
    }
}

impl Machine for Handshake<'_> {
    type Event = Event;
    type Error = Error;

    /// Parses the request header block once it is complete; returns its length
    /// (bytes after it are not consumed). `Ok(0)` while incomplete and after
    /// the request was parsed.
    fn handle_input(&mut self, input: &[u8]) -> Result<usize, Error> {
        match self.state {
            State::Failed(e) => Err(e),
            State::AwaitingDecision | State::Upgraded => Ok(0),
            State::ReadingRequest => self.parse(input).map_err(|e| self.fail(e)),
        }
    }

    fn poll_output(&mut self, out: &mut [u8]) -> usize {
        crate::machine::send_queued(&self.out, &mut self.out_pos, out)
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.event.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6455_section_1_3_accept_key() {
        assert_eq!(
            &accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn tokens() {
        assert!(has_token(b"keep-alive, Upgrade", b"upgrade"));
        assert!(!has_token(b"keep-alive", b"upgrade"));
        assert_eq!(trim(b"  x "), b"x");
        assert_eq!(trim(b"   "), b"");
    }
}
