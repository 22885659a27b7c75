//! The control channel: one request in, one reply out (DESIGN.md, "The
//! control channel").
//!
//! What it is: [`Control`], a [`Machine`] for one control connection. It
//! frames the request, parses it ([`request`]: both dialects, typed, checked)
//! and writes the reply ([`reply`]) in the request's dialect. What it is not:
//! the ticket table ([`crate::ticket`]) or any socket.
//!
//! # Framing
//!
//! A request ends at the first `\n` (GWM sends `\r\n`; the `\r` is dropped),
//! **or** as soon as the top-level JSON object closes, because
//! snf-vncauthproxy's clients send `json.dumps(req)` with no newline and then
//! wait for the answer; **or** at EOF ([`Control::handle_eof`]). Whitespace
//! after the request (the `\r\n` of a closed object) is consumed; any other
//! trailing byte is left to the caller (one request per connection). A
//! request that has not ended within [`MAX_INPUT`] bytes is
//! [`Error::LineTooLong`]; nesting deeper than [`request::MAX_DEPTH`] is
//! [`Error::NestedTooDeep`].
//!
//! # Driver story
//!
//! ```text
//! loop: read into buf; n = handle_input(&buf)?  (Ok(0): read more)
//!       at EOF: handle_eof(&buf)
//! on Event::Request(req): ticket table issue(...), then
//!       reply_ok(&Granted{..}) or reply_failed(err.reason())
//! write poll_output(..) until 0, close.
//! On Err: write poll_output (the FAILED reply is queued), close.
//! ```

pub mod reply;
pub mod request;

use core::fmt;

pub use reply::{Granted, REPLY_CAP};
pub use request::{
    Dialect, Field, Host, Need, Password, Request, Transport, User, HOST_CAP, PASSWORD_CAP,
    USER_CAP,
};

use crate::machine::Machine;
use crate::time::Instant;

/// Longest request accepted, terminator included.
pub const MAX_INPUT: usize = 4096;

/// Why a control request was refused. [`Error::reason`] is the text sent
/// back (after `FAILED ` in dialect 1, as `"reason"` in dialect 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// Not a JSON object (syntax error, or another JSON value).
    NotJson,
    /// Objects/arrays nested deeper than [`request::MAX_DEPTH`].
    NestedTooDeep,
    /// A string with an invalid escape, a `\u` surrogate, invalid UTF-8, or
    /// longer than [`request::UNESCAPE_CAP`] once unescaped (in an ignored
    /// key).
    BadString,
    /// No `daddr`/`dport`/... nor `destination_address`/... key.
    UnknownDialect,
    /// Keys of both dialects in one request.
    MixedDialect,
    /// A required key is absent (or `null`).
    MissingField(Field),
    /// A key's value has the wrong JSON type (or a port is not integral).
    WrongType(Field),
    /// A string is longer than its capacity.
    TooLong(Field),
    /// A key appears twice.
    Duplicate(Field),
    /// A host or password is the empty string.
    Empty(Field),
    /// A port is not in 1..=65535 (0 allowed where it means "pick").
    PortOutOfRange(Field),
    /// A host holds whitespace or control characters.
    BadHost(Field),
    /// `timeout` is not a positive number of seconds (at least 1 ms).
    BadTimeout,
    /// `timeout` is over the configured maximum.
    TimeoutTooLong,
    /// `client.ip` is not an IPv4 or IPv6 address.
    BadClientIp,
    /// `type` is not `vnc`, `vnc-ws` or `vnc-wss`.
    UnknownType,
    /// No end of request within [`MAX_INPUT`] bytes.
    LineTooLong,
    /// The connection closed before any request.
    NoRequest,
}

impl Error {
    /// The reason, as sent to the control client and logged.
    pub fn reason(&self) -> &'static str {
        match *self {
            Error::NotJson => "request is not a JSON object",
            Error::NestedTooDeep => "JSON nested too deeply",
            Error::BadString => "bad JSON string (escape, UTF-8 or length)",
            Error::UnknownDialect => "unknown request: no daddr/dport or destination_address keys",
            Error::MixedDialect => {
                "request mixes twisted (daddr) and snf (destination_address) keys"
            }
            Error::MissingField(f) => f.missing(),
            Error::WrongType(f) => f.wrong_type(),
            Error::TooLong(f) => f.too_long(),
            Error::Duplicate(f) => f.duplicate(),
            Error::Empty(f) => f.empty(),
            Error::PortOutOfRange(f) => f.out_of_range(),
            Error::BadHost(f) => f.bad_host(),
            Error::BadTimeout => "timeout is not a positive number of seconds",
            Error::TimeoutTooLong => "timeout over the configured maximum",
            Error::BadClientIp => "client.ip is not an IP address",
            Error::UnknownType => "unknown type (expected vnc, vnc-ws or vnc-wss)",
            Error::LineTooLong => "request longer than 4096 bytes",
            Error::NoRequest => "connection closed before a request",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

/// Settings of the control channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Longest `timeout` a request may ask for, in milliseconds (seed: 300 s).
    pub max_timeout_ms: u64,
    /// The address viewers reach the proxy at, sent as `proxy_address` in
    /// dialect 2 replies.
    pub proxy_address: Host,
}

impl Default for Config {
    /// 300 s maximum timeout, `proxy_address` empty.
    fn default() -> Self {
        Config {
            max_timeout_ms: 300_000,
            proxy_address: Host::new(),
        }
    }
}

/// What [`Control`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A well-formed request; answer it with [`Control::reply_ok`] or
    /// [`Control::reply_failed`].
    Request(Request),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Reading,
    /// A request was parsed; its reply is not queued yet.
    Awaiting(Dialect),
    Replied,
    Failed(Error),
}

/// Where the framer stands in the bytes seen so far.
#[derive(Debug, Clone, Copy, Default)]
struct Scan {
    /// Bytes examined (the caller presents them again with more).
    pos: usize,
    started: bool,
    object: bool,
    depth: usize,
    in_string: bool,
    escape: bool,
}

enum Framed {
    More,
    /// The request is `input[..end]`; `consumed` bytes are taken.
    Done {
        end: usize,
        consumed: usize,
    },
    TooDeep,
}

impl Scan {
    fn feed(&mut self, input: &[u8]) -> Framed {
        if input.len() < self.pos {
            // The caller did not present the same bytes again; start over.
            *self = Scan::default();
        }
        let limit = input.len().min(MAX_INPUT);
        while self.pos < limit {
            let i = self.pos;
            let b = input.get(i).copied().unwrap_or(b'\n');
            self.pos += 1;
            if b == b'\n' {
                // A JSON string holds no raw newline: the line ends here.
                let end = if i > 0 && input.get(i - 1) == Some(&b'\r') {
                    i - 1
                } else {
                    i
                };
                return Framed::Done {
                    end,
                    consumed: i + 1,
                };
            }
            if self.in_string {
                if self.escape {
                    self.escape = false;
                } else if b == b'\\' {
                    self.escape = true;
                } else if b == b'"' {
                    self.in_string = false;
                }
                continue;
            }
            if !self.started {
                if matches!(b, b' ' | b'\t' | b'\r') {
                    continue;
                }
                self.started = true;
                self.object = b == b'{';
                if self.object {
                    self.depth = 1;
                }
                continue;
            }
            if !self.object {
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => {
                    self.depth += 1;
                    if self.depth > request::MAX_DEPTH {
                        return Framed::TooDeep;
                    }
                }
                b'}' | b']' => {
                    self.depth = self.depth.saturating_sub(1);
                    if self.depth == 0 {
                        return Framed::Done {
                            end: i + 1,
                            consumed: i + 1,
                        };
                    }
                }
                _ => {}
            }
        }
        Framed::More
    }
}

/// One control connection: frames and parses the request, queues the reply.
#[derive(Debug, Clone)]
pub struct Control {
    config: Config,
    state: State,
    scan: Scan,
    event: Option<Request>,
    out: reply::Buf,
    sent: usize,
}

impl Control {
    /// A machine waiting for a request.
    pub fn new(config: Config) -> Self {
        Control {
            config,
            state: State::Reading,
            scan: Scan::default(),
            event: None,
            out: reply::Buf::new(),
            sent: 0,
        }
    }

    /// The peer closed its sending side: parse whatever `input` holds (the
    /// bytes not yet consumed) as the request. Returns the bytes consumed.
    /// Empty input before any request is [`Error::NoRequest`].
    pub fn handle_eof(&mut self, input: &[u8]) -> Result<usize, Error> {
        match self.state {
            State::Failed(e) => Err(e),
            State::Awaiting(_) | State::Replied => Ok(0),
            State::Reading => {
                // A complete line or object in `input` takes precedence.
                let n = self.handle_input(input)?;
                if n > 0 || self.state != State::Reading {
                    return Ok(n);
                }
                if input.iter().all(|b| b.is_ascii_whitespace()) {
                    return Err(self.fail(Error::NoRequest, Dialect::Twisted));
                }
                let end = if input.last() == Some(&b'\r') {
                    input.len() - 1
                } else {
                    input.len()
                };
                self.finish(input.get(..end).unwrap_or(&[]), input.len())
            }
        }
    }

    /// Queues the success reply for the request last reported. Returns
    /// `false` (and does nothing) if no request awaits a reply.
    pub fn reply_ok(&mut self, granted: &Granted<'_>) -> bool {
        let State::Awaiting(dialect) = self.state else {
            return false;
        };
        if reply::ok(&mut self.out, dialect, &self.config.proxy_address, granted).is_err() {
            warn!("control: reply does not fit, answering FAILED");
            reply::failed(
                &mut self.out,
                dialect,
                &self.config.proxy_address,
                "reply too long",
            );
        }
        self.sent = 0;
        self.state = State::Replied;
        true
    }

    /// Queues the failure reply (`reason` is cut to 200 bytes, control
    /// characters blanked in dialect 1). Returns `false` (and does nothing)
    /// if no request awaits a reply.
    pub fn reply_failed(&mut self, reason: &str) -> bool {
        let State::Awaiting(dialect) = self.state else {
            return false;
        };
        reply::failed(&mut self.out, dialect, &self.config.proxy_address, reason);
        self.sent = 0;
        self.state = State::Replied;
        true
    }

    /// Whether the reply (success or failure) is queued and fully taken by
    /// [`Machine::poll_output`]: the driver may close.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Replied | State::Failed(_)) && self.sent >= self.out.len()
    }

    fn fail(&mut self, e: Error, dialect: Dialect) -> Error {
        debug!("control: refused: {}", e.reason());
        reply::failed(
            &mut self.out,
            dialect,
            &self.config.proxy_address,
            e.reason(),
        );
        self.sent = 0;
        self.state = State::Failed(e);
        e
    }

    fn finish(&mut self, json: &[u8], consumed: usize) -> Result<usize, Error> {
        match request::parse(json, self.config.max_timeout_ms) {
            Ok(req) => {
                self.state = State::Awaiting(req.dialect);
                self.event = Some(req);
                Ok(consumed)
            }
            Err((e, dialect)) => Err(self.fail(e, dialect)),
        }
    }
}

impl Machine for Control {
    type Event = Event;
    type Error = Error;

    fn handle_input(&mut self, input: &[u8]) -> Result<usize, Error> {
        match self.state {
            State::Failed(e) => Err(e),
            State::Awaiting(_) | State::Replied => {
                Ok(input.iter().take_while(|b| b.is_ascii_whitespace()).count())
            }
            State::Reading => match self.scan.feed(input) {
                Framed::More if input.len() >= MAX_INPUT => {
                    Err(self.fail(Error::LineTooLong, Dialect::Twisted))
                }
                Framed::More => Ok(0),
                Framed::TooDeep => Err(self.fail(Error::NestedTooDeep, Dialect::Twisted)),
                Framed::Done { end, consumed } => {
                    self.finish(input.get(..end).unwrap_or(&[]), consumed)
                }
            },
        }
    }

    fn poll_output(&mut self, out: &mut [u8]) -> usize {
        let pending = self.out.get(self.sent..).unwrap_or(&[]);
        let n = pending.len().min(out.len());
        if let (Some(dst), Some(src)) = (out.get_mut(..n), pending.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.sent += n;
        n
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.event.take().map(Event::Request)
    }

    /// None: the control channel has no timer of its own (the driver bounds
    /// how long it waits for a request).
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    fn handle_timeout(&mut self, _now: Instant) {}
}
