//! The control channel: one request in, one reply out (DESIGN.md, "The
//! control channel").
//!
//! What it is: [`Control`], a [`Machine`] for one control connection. It
//! frames the request, parses it ([`request`]: both console dialects and
//! the operator actions, typed, checked) and writes the reply ([`reply`])
//! in the request's dialect (actions: JSON). Both message files read and
//! write JSON with [`json`]. The other end, writing a request and parsing
//! its reply, is [`client`]. What it is not: the ticket table
//! ([`crate::ticket`]), the sessions, or any socket.
//!
//! # Framing
//!
//! A request ends at the first `\n` (GWM sends `\r\n`; the `\r` is dropped),
//! **or** as soon as the top-level JSON object closes, because
//! snf-vncauthproxy's clients send `json.dumps(req)` with no newline and then
//! wait for the answer; **or** at EOF ([`Machine::handle_eof`], as for every machine). Whitespace
//! after the request (the `\r\n` of a closed object) is consumed; any other
//! trailing byte is left to the caller (one request per connection). A
//! request that has not ended within [`Config::max_input`] bytes (default
//! [`MAX_INPUT`]) is
//! [`Error::LineTooLong`]; nesting deeper than [`request::MAX_DEPTH`] is
//! [`Error::NestedTooDeep`].
//!
//! # Deadlines
//!
//! The machine is made at the accept ([`Control::new`] takes the time) and
//! keeps two deadlines on the caller's clock ([`Machine::poll_timeout`]):
//! a client that has sent nothing within [`Config::silence_ms`] (default
//! [`SILENCE_MS`]: a client sends its request at once, so an idle flood
//! gives its places back early) is [`Error::Silent`]; a connection not done
//! within [`Config::timeout_ms`] (default [`TIMEOUT_MS`]) is
//! [`Error::TimedOut`]. Neither is answered. [`Control::deadline`] is the
//! second one, for the driver to bound its own work between the request
//! and the reply (issuing a ticket) and the sending of the reply.
//!
//! # Behind a proxy, inside TLS
//!
//! Before the request, in this order, two layers may come:
//!
//! - From a peer the driver trusts ([`Control::from_trusted_proxy`]), a
//!   PROXY protocol header, v1 or v2 ([`crate::proxy`]). It is optional (a
//!   trusted host may speak for itself); either way [`Event::Client`]
//!   reports the client settled on ([`Control::client`]) before anything
//!   else, for the driver's per-source checks. A malformed header is
//!   closed unanswered ([`Error::Proxy`]). From anyone else a header is
//!   just bytes that are not a request.
//! - With [`Config::tls`] (snf's `--enable-ssl`), TLS: once the client's
//!   first byte is there, [`Event::StartTls`] asks the driver (who owns
//!   rustls) to run it over the unconsumed input, then
//!   [`Control::tls_started`]; the plaintext is fed from then on.
//!
//! # Driver story
//!
//! ```text
//! loop: read into buf; n = handle_input(&buf)?  (Ok(0): read more)
//!       at EOF: handle_eof(&buf); at poll_timeout(): handle_timeout(now)
//! on Event::Client: check the client (from_trusted_proxy only)
//! on Event::StartTls: TLS over the socket, tls_started(), feed plaintext
//! on Event::Request(Request::Console(c)): ticket table issue(...), then
//!       reply_ok(&Granted{..}) or reply_failed(err.reason())
//! on Request::List: reply_list(&List{..}, &mut buf) (write buf[..n])
//! on Request::Kill(..): reply_killed(n); on Request::Stats: reply_stats(&s)
//! write poll_output(..) until 0, close.
//! On Err: write poll_output (the FAILED reply is queued), close.
//! ```

pub mod client;
pub mod json;
pub mod reply;
pub mod request;

use core::fmt;
use core::net::SocketAddr;

use reply::Form;
pub use reply::{
    Door, Granted, Layers, List, Logins, SessionRow, Stats, TicketRow, REASON_CAP, REPLY_CAP,
};
pub use request::{
    Auth, Console, Credentials, Dialect, Field, Host, Kill, Need, Password, Request, Transport,
    User, HOST_CAP, PASSWORD_CAP, USER_CAP,
};

use crate::machine::Machine;
use crate::proxy;
use crate::time::Instant;

/// Longest request accepted by default, terminator included
/// ([`Config::max_input`]).
pub const MAX_INPUT: usize = 4096;

/// How long a client may stay silent after connecting, by default
/// ([`Config::silence_ms`]), in milliseconds.
pub const SILENCE_MS: u64 = 3_000;

/// How long a connection may take, request and reply, by default
/// ([`Config::timeout_ms`]), in milliseconds.
pub const TIMEOUT_MS: u64 = 10_000;

/// Why a control request was refused. [`Error::reason`] is the text sent
/// back (after `FAILED ` in dialect 1, as `"reason"` in dialect 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// Not a JSON object (syntax error, or another JSON value).
    NotJson,
    /// Objects/arrays nested deeper than [`request::MAX_DEPTH`].
    NestedTooDeep,
    /// A string with an invalid escape, a `\u` surrogate, a raw control
    /// character, invalid UTF-8, or longer than [`request::UNESCAPE_CAP`]
    /// once unescaped (in an ignored key).
    BadString,
    /// No `daddr`/`dport`/... nor `destination_address`/... key.
    UnknownDialect,
    /// Keys of both dialects in one request.
    MixedDialect,
    /// An `action` (or `id`, `backend`) with console keys in one request.
    MixedAction,
    /// `action` is not `list`, `kill` or `stats`.
    UnknownAction,
    /// A `kill` with neither `id` nor `backend`, or with both.
    KillTarget,
    /// A `kill`'s `backend` is not `HOST:PORT` (`[V6]:PORT`).
    BadBackend,
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
    /// No end of request within [`Config::max_input`] bytes.
    LineTooLong,
    /// The connection closed before any request.
    NoRequest,
    /// Nothing arrived within [`Config::silence_ms`] of the accept. No
    /// answer.
    Silent,
    /// No request, or no reply, within [`Config::timeout_ms`] of the
    /// accept. No answer.
    TimedOut,
    /// A trusted proxy's connection opened with a malformed PROXY protocol
    /// header, or closed inside one. No answer.
    Proxy(proxy::Error),
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
            Error::MixedAction => "request mixes an action with console keys",
            Error::UnknownAction => "unknown action (expected list, kill or stats)",
            Error::KillTarget => "kill needs one of id or backend",
            Error::BadBackend => "backend is not HOST:PORT",
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
            Error::LineTooLong => "request longer than the limit",
            Error::NoRequest => "connection closed before a request",
            Error::Silent => "nothing sent within the silence allowed",
            Error::TimedOut => "no request within the time allowed",
            Error::Proxy(e) => e.reason(),
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
    /// Longest request, terminator included (default [`MAX_INPUT`]); the
    /// caller's input buffer should be this large (and at least
    /// [`proxy::MAX_INPUT`] for [`Control::from_trusted_proxy`]).
    pub max_input: usize,
    /// How long the client may stay silent after the accept, in
    /// milliseconds ([`Error::Silent`]).
    pub silence_ms: u64,
    /// How long the connection may take from the accept, request and
    /// reply, in milliseconds ([`Error::TimedOut`]).
    pub timeout_ms: u64,
    /// Every connection is TLS ([`Event::StartTls`]).
    pub tls: bool,
}

impl Default for Config {
    /// 300 s maximum timeout, `proxy_address` empty, [`MAX_INPUT`] bytes,
    /// [`SILENCE_MS`], [`TIMEOUT_MS`], no TLS.
    fn default() -> Self {
        Config {
            max_timeout_ms: 300_000,
            proxy_address: Host::new(),
            max_input: MAX_INPUT,
            silence_ms: SILENCE_MS,
            timeout_ms: TIMEOUT_MS,
            tls: false,
        }
    }
}

/// What [`Control`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
// The request is what the machine is for, reported once per connection, and
// `no_std` has no box to put it in: the small variants' size is no waste.
#[allow(clippy::large_enum_variant)]
pub enum Event {
    /// From [`Control::from_trusted_proxy`] only, first: the client is
    /// settled ([`Control::client`]: named by a PROXY header, or the proxy's
    /// host itself); check and count it, then go on.
    Client,
    /// With [`Config::tls`]: run TLS over the connection (starting with the
    /// unconsumed input), then call [`Control::tls_started`].
    StartTls,
    /// A well-formed request; answer a console with [`Control::reply_ok`],
    /// a `list` with [`Control::reply_list`], a `kill` with
    /// [`Control::reply_killed`], `stats` with [`Control::reply_stats`], or
    /// any of them with [`Control::reply_failed`].
    Request(Request),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// A trusted proxy's connection: a PROXY header, or none (then
    /// [`State::after_front`]).
    Front,
    /// Waiting for the first byte of the TLS handshake.
    Tls,
    /// [`Event::StartTls`] was reported; [`Control::tls_started`] not yet.
    Handshaking,
    Reading,
    /// A request was parsed; its reply is not queued yet.
    Awaiting(Form),
    Replied,
    Failed(Error),
}

impl State {
    /// Where a connection starts once past any PROXY header: TLS first
    /// with [`Config::tls`], else the request.
    fn after_front(config: &Config) -> State {
        if config.tls {
            State::Tls
        } else {
            State::Reading
        }
    }
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
    /// Scans `input` (at most `limit` bytes of it) for the end of a request.
    fn feed(&mut self, input: &[u8], limit: usize) -> Framed {
        if input.len() < self.pos {
            // The caller did not present the same bytes again; start over.
            *self = Scan::default();
        }
        let limit = input.len().min(limit);
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
                        // Take the line end (and any whitespace) after it.
                        let rest = input.get(i + 1..).unwrap_or(&[]);
                        let ws = rest.iter().take_while(|b| b.is_ascii_whitespace()).count();
                        return Framed::Done {
                            end: i + 1,
                            consumed: i + 1 + ws,
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
    event: Option<Event>,
    auth: Auth,
    out: reply::Buf,
    sent: usize,
    /// Whether any byte arrived.
    spoke: bool,
    silence_at: Instant,
    deadline: Instant,
    /// A trusted proxy's connection: its peer, then the client settled on.
    client: Option<SocketAddr>,
}

impl Control {
    /// A machine for a connection accepted at `now`, waiting for a request
    /// (or first for TLS, with [`Config::tls`]). A PROXY header from this
    /// peer is not believed (it is no request).
    pub fn new(config: Config, now: Instant) -> Self {
        let state = State::after_front(&config);
        Control {
            silence_at: now + config.silence_ms,
            deadline: now + config.timeout_ms,
            config,
            state,
            scan: Scan::default(),
            event: None,
            auth: Auth::default(),
            out: reply::Buf::new(),
            sent: 0,
            spoke: false,
            client: None,
        }
    }

    /// [`Control::new`] for a connection whose socket peer, `peer`, is a
    /// trusted proxy: it may open with a PROXY header naming the client
    /// ([`Event::Client`]).
    pub fn from_trusted_proxy(config: Config, now: Instant, peer: SocketAddr) -> Self {
        Control {
            state: State::Front,
            client: Some(peer),
            ..Control::new(config, now)
        }
    }

    /// From [`Control::from_trusted_proxy`]: the client a PROXY header
    /// named, or the peer itself (final once [`Event::Client`] was
    /// reported). `None` from [`Control::new`]: the socket's peer is the
    /// client.
    pub fn client(&self) -> Option<SocketAddr> {
        self.client
    }

    /// After [`Event::StartTls`]: TLS is up; feed its plaintext from now on.
    pub fn tls_started(&mut self) {
        if self.state == State::Handshaking {
            self.state = State::Reading;
        }
    }

    /// When the connection must be over ([`Config::timeout_ms`] after the
    /// accept): the driver bounds by it what it does between the request
    /// and the reply, and the sending of the reply.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The control credentials (`auth_user`, `auth_password`) the request
    /// last reported carried, a console's or an action's (empty before a
    /// request, or when it carried none).
    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    /// Queues the success reply for the console request last reported.
    /// Returns `false` (and does nothing) if no request awaits a reply.
    pub fn reply_ok(&mut self, granted: &Granted<'_>) -> bool {
        let State::Awaiting(form) = self.state else {
            return false;
        };
        if reply::ok(&mut self.out, form, &self.config.proxy_address, granted).is_err() {
            warn!("control: reply does not fit, answering FAILED");
            self.queue_failed(form, "reply too long");
        }
        self.replied();
        true
    }

    /// Queues the failure reply (`reason` is cut to [`REASON_CAP`] bytes,
    /// control characters blanked in dialect 1). Returns `false` (and does
    /// nothing) if no request awaits a reply.
    pub fn reply_failed(&mut self, reason: &str) -> bool {
        let State::Awaiting(form) = self.state else {
            return false;
        };
        self.queue_failed(form, reason);
        self.replied();
        true
    }

    /// Queues `{"status": "OK", "killed": n}` for a `kill`. Returns `false`
    /// (and does nothing) if no request awaits a reply.
    pub fn reply_killed(&mut self, n: u64) -> bool {
        let State::Awaiting(_) = self.state else {
            return false;
        };
        if reply::killed(&mut self.out, n).is_err() {
            self.queue_failed(Form::Action, "reply too long");
        }
        self.replied();
        true
    }

    /// Queues the counters for a `stats`. Returns `false` (and does
    /// nothing) if no request awaits a reply.
    pub fn reply_stats(&mut self, stats: &Stats) -> bool {
        let State::Awaiting(_) = self.state else {
            return false;
        };
        self.out.clear();
        if stats.emit_to(&mut self.out).is_err() {
            self.queue_failed(Form::Action, "reply too long");
        }
        self.replied();
        true
    }

    /// Answers a `list`: writes the reply into `out` (at least
    /// [`List::buffer_len`] bytes) and returns its length, for the driver
    /// to send instead of [`Machine::poll_output`]'s (which then has
    /// nothing). `None` when no request awaits a reply, or when `out` is too
    /// short (then a `FAILED` reply is queued for `poll_output`).
    pub fn reply_list<'a, 'b, S, T>(&mut self, list: &List<S, T>, out: &mut [u8]) -> Option<usize>
    where
        S: IntoIterator<Item = SessionRow<'a>> + Clone,
        T: IntoIterator<Item = TicketRow<'b>> + Clone,
    {
        let State::Awaiting(_) = self.state else {
            return None;
        };
        self.out.clear();
        let n = list.emit(out);
        if n.is_none() {
            self.queue_failed(Form::Action, "reply too long");
        }
        self.replied();
        n
    }

    fn queue_failed(&mut self, form: Form, reason: &str) {
        reply::failed(&mut self.out, form, &self.config.proxy_address, reason);
    }

    fn replied(&mut self) {
        self.sent = 0;
        self.state = State::Replied;
    }

    /// Whether the reply (success or failure) is queued and fully taken by
    /// [`Machine::poll_output`]: the driver may close.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Replied | State::Failed(_)) && self.sent >= self.out.len()
    }

    fn fail(&mut self, e: Error, form: Form) -> Error {
        debug!("control: refused: {}", e.reason());
        self.queue_failed(form, e.reason());
        self.sent = 0;
        self.state = State::Failed(e);
        e
    }

    /// Fails with no answer (before the request's layers, or at a
    /// deadline).
    fn fail_unanswered(&mut self, e: Error) -> Error {
        debug!("control: closed: {}", e.reason());
        self.out.clear();
        self.sent = 0;
        self.event = None;
        self.state = State::Failed(e);
        e
    }

    /// A trusted proxy's first bytes: a PROXY header (consumed), or not one
    /// (left for the request). Either way the client is settled.
    fn front(&mut self, input: &[u8]) -> Result<usize, Error> {
        let taken = match proxy::parse(input) {
            Ok(None) => return Ok(0),
            Ok(Some(header)) => {
                if let Some(peer) = self.client {
                    self.client = Some(header.client_or(peer));
                }
                header.len
            }
            Err(proxy::Error::NotProxy) => 0,
            Err(e) => return Err(self.fail_unanswered(Error::Proxy(e))),
        };
        self.state = State::after_front(&self.config);
        self.event = Some(Event::Client);
        Ok(taken)
    }

    fn finish(&mut self, json: &[u8], consumed: usize) -> Result<usize, Error> {
        match request::parse(json, self.config.max_timeout_ms) {
            Ok((req, auth)) => {
                self.auth = auth;
                self.state = State::Awaiting(match &req {
                    Request::Console(c) => c.dialect.into(),
                    _ => Form::Action,
                });
                self.event = Some(Event::Request(req));
                Ok(consumed)
            }
            Err((e, form)) => Err(self.fail(e, form)),
        }
    }
}

impl Machine for Control {
    type Event = Event;
    type Error = Error;

    fn handle_input(&mut self, input: &[u8]) -> Result<usize, Error> {
        if let State::Failed(e) = self.state {
            return Err(e);
        }
        if self.event.is_some() {
            // One event at a time: the driver takes it first.
            return Ok(0);
        }
        self.spoke |= !input.is_empty();
        match self.state {
            State::Failed(e) => Err(e),
            State::Front => self.front(input),
            State::Tls if input.is_empty() => Ok(0),
            State::Tls => {
                self.state = State::Handshaking;
                self.event = Some(Event::StartTls);
                Ok(0)
            }
            State::Handshaking => Ok(0),
            State::Awaiting(_) | State::Replied => {
                Ok(input.iter().take_while(|b| b.is_ascii_whitespace()).count())
            }
            State::Reading => match self.scan.feed(input, self.config.max_input) {
                Framed::More if input.len() >= self.config.max_input => {
                    Err(self.fail(Error::LineTooLong, Form::Twisted))
                }
                Framed::More => Ok(0),
                Framed::TooDeep => Err(self.fail(Error::NestedTooDeep, Form::Twisted)),
                Framed::Done { end, consumed } => {
                    self.finish(input.get(..end).unwrap_or(&[]), consumed)
                }
            },
        }
    }

    /// The peer closed its sending side: whatever `input` holds (the bytes
    /// not yet consumed) is the request, newline or not. Returns the bytes
    /// consumed. Empty input before any request is [`Error::NoRequest`].
    fn handle_eof(&mut self, input: &[u8]) -> Result<usize, Error> {
        match self.state {
            State::Failed(e) => Err(e),
            State::Awaiting(_) | State::Replied => Ok(0),
            State::Front if input.is_empty() => Err(self.fail(Error::NoRequest, Form::Twisted)),
            State::Front => match self.handle_input(input)? {
                // A header cut short by the end.
                0 if self.state == State::Front => Err(self.fail_unanswered(Error::NoRequest)),
                n => Ok(n),
            },
            State::Tls | State::Handshaking => Err(self.fail_unanswered(Error::NoRequest)),
            State::Reading => {
                // A complete line or object in `input` takes precedence.
                let n = self.handle_input(input)?;
                if n > 0 || self.state != State::Reading {
                    return Ok(n);
                }
                if input.iter().all(|b| b.is_ascii_whitespace()) {
                    return Err(self.fail(Error::NoRequest, Form::Twisted));
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

    fn poll_output(&mut self, out: &mut [u8]) -> usize {
        crate::machine::send_queued(&self.out, &mut self.sent, out)
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.event.take()
    }

    /// The silence deadline until a byte arrives, then the connection's
    /// ([`Control::deadline`]); none once it is over.
    fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Failed(_) => None,
            State::Replied if self.sent >= self.out.len() => None,
            _ if self.spoke => Some(self.deadline),
            _ => Some(self.silence_at.min(self.deadline)),
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        match self.poll_timeout() {
            Some(at) if now >= at => {}
            _ => return,
        }
        // Which deadline `poll_timeout` gave: the silence while nothing
        // came, unless the whole deadline is earlier.
        if !self.spoke && self.silence_at <= self.deadline {
            self.fail_unanswered(Error::Silent);
        } else {
            self.fail_unanswered(Error::TimedOut);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{IpAddr, Ipv4Addr};

    const GWM: &[u8] = b"{\"daddr\": \"node1.example.org\", \"dport\": 12001, \"password\": \"Ab3dE6gH\", \"ws\": true, \"tls\": false}\r\n";
    const SNF: &[u8] = b"{\"source_port\": 0, \"destination_address\": \"node1\", \"destination_port\": 5900, \"password\": \"pw\", \"type\": \"vnc-ws\"}\n";

    fn config() -> Config {
        let mut c = Config::default();
        c.proxy_address.push_str("vnc.example.org").unwrap();
        c
    }

    fn parse(input: &[u8]) -> Result<Console, Error> {
        let mut c = Control::new(config(), Instant::from_millis(0));
        match c.handle_input(input) {
            Ok(0) => c.handle_eof(input).map(|_| ())?,
            Ok(_) => {}
            Err(e) => return Err(e),
        }
        match c.poll_event() {
            Some(Event::Request(Request::Console(r))) => Ok(r),
            other => panic!("no console: {other:?}"),
        }
    }

    fn output(c: &mut Control) -> heapless::Vec<u8, 4096> {
        let mut v = heapless::Vec::new();
        let mut buf = [0u8; 5];
        loop {
            let n = c.poll_output(&mut buf);
            if n == 0 {
                return v;
            }
            v.extend_from_slice(&buf[..n]).unwrap();
        }
    }

    #[test]
    fn the_line_limit_is_configurable() {
        let limited = |max_input| {
            Control::new(
                Config {
                    max_input,
                    ..config()
                },
                Instant::from_millis(0),
            )
        };
        let mut c = limited(GWM.len());
        assert_eq!(c.handle_input(GWM), Ok(GWM.len()));
        let mut c = limited(64);
        assert_eq!(c.handle_input(&GWM[..63]), Ok(0));
        assert_eq!(c.handle_input(&GWM[..64]), Err(Error::LineTooLong));
        assert!(output(&mut c).starts_with(b"FAILED request longer than the limit"));
        let mut c = limited(64);
        assert_eq!(c.handle_eof(&GWM[..64]), Err(Error::LineTooLong));
    }

    #[test]
    fn transport_needs_decide_what_an_entry_point_accepts() {
        let gwm_ws = parse(GWM).unwrap().transport;
        assert!(gwm_ws.allows(false, true));
        assert!(
            !gwm_ws.allows(false, false),
            "ws: true refuses a native viewer"
        );
        assert!(!gwm_ws.allows(true, true), "tls: false refuses TLS");
        assert_eq!(
            gwm_ws.check(false, false),
            Err("this console is offered over WebSocket only")
        );
        assert_eq!(
            gwm_ws.check(true, true),
            Err("this console is not offered over TLS")
        );
        assert_eq!(gwm_ws.check(false, true), Ok(()));
        assert!(Transport::AUTO.allows(false, false) && Transport::AUTO.allows(true, true));
        assert!(Transport::PLAIN.allows(false, false) && !Transport::PLAIN.allows(false, true));
        assert!(
            Transport::WEBSOCKET_TLS.allows(true, true)
                && !Transport::WEBSOCKET_TLS.allows(false, true)
        );
    }

    #[test]
    fn debug_never_shows_a_password() {
        use core::fmt::Write;
        let req = parse(GWM).unwrap();
        let mut s: heapless::String<1024> = heapless::String::new();
        write!(s, "{req:?}").unwrap();
        assert!(!s.contains("Ab3dE6gH"), "{s}");
        assert!(s.contains("node1.example.org"));
    }

    fn failure(input: &[u8]) -> (Error, heapless::Vec<u8, 4096>) {
        let mut c = Control::new(config(), Instant::from_millis(0));
        let e = match c.handle_input(input) {
            Err(e) => e,
            Ok(0) => c.handle_eof(input).expect_err("should fail"),
            Ok(_) => panic!("parsed: {:?}", c.poll_event()),
        };
        // Sticky.
        assert_eq!(c.handle_input(b"{}"), Err(e));
        assert!(!c.reply_ok(&Granted::default()));
        (e, output(&mut c))
    }

    #[test]
    fn gwm_exact_bytes() {
        let mut c = Control::new(config(), Instant::from_millis(0));
        assert_eq!(c.handle_input(GWM), Ok(GWM.len()));
        let Some(Event::Request(Request::Console(r))) = c.poll_event() else {
            panic!()
        };
        assert_eq!(r.dialect, Dialect::Twisted);
        assert_eq!(r.host.as_str(), "node1.example.org");
        assert_eq!(r.port, 12001);
        assert_eq!(
            r.password.as_ref().and_then(|s| s.as_str()),
            Some("Ab3dE6gH")
        );
        assert_eq!(r.transport, Transport::WEBSOCKET);
        assert_eq!(r.preferred_port, None);
        assert_eq!(r.timeout_ms, None);
        assert_eq!(
            r.viewer_password().and_then(|p| p.as_str()),
            Some("Ab3dE6gH")
        );
        assert_eq!(r.backend_password(None), Some(&b"Ab3dE6gH"[..]));
        assert_eq!(r.backend_password(Some(b"cluster")), Some(&b"cluster"[..]));
        assert!(c.reply_ok(&Granted {
            port: 7000,
            password: Some("ignored"),
            ..Granted::default()
        }));
        assert!(!c.reply_ok(&Granted::default()), "one reply only");
        assert_eq!(&output(&mut c)[..], b"7000\n");
        assert!(c.is_done());
    }

    #[test]
    fn gwm_failed_reply() {
        let mut c = Control::new(config(), Instant::from_millis(0));
        c.handle_input(GWM).unwrap();
        c.poll_event().unwrap();
        assert!(c.reply_failed("no free port\r\nin the pool"));
        assert_eq!(&output(&mut c)[..], b"FAILED no free port  in the pool\n");
    }

    #[test]
    fn snf_exact_bytes() {
        let mut c = Control::new(config(), Instant::from_millis(0));
        assert_eq!(c.handle_input(SNF), Ok(SNF.len()));
        let Some(Event::Request(Request::Console(r))) = c.poll_event() else {
            panic!()
        };
        assert_eq!(r.dialect, Dialect::Snf);
        assert_eq!(r.host.as_str(), "node1");
        assert_eq!(r.port, 5900);
        assert_eq!(r.preferred_port, None);
        assert_eq!(r.transport, Transport::WEBSOCKET);
        assert_eq!(r.viewer_password().and_then(|p| p.as_str()), Some("pw"));
        assert_eq!(r.backend_password(None), None);
        assert_eq!(r.backend_password(Some(b"c")), Some(&b"c"[..]));
        c.reply_ok(&Granted {
            port: 7001,
            ..Granted::default()
        });
        assert_eq!(
            &output(&mut c)[..],
            &b"{\"status\": \"OK\", \"source_port\": 7001, \"proxy_address\": \"vnc.example.org\"}\n"[..]
        );
    }

    #[test]
    fn snf_extension_reply_and_failure() {
        let mut c = Control::new(config(), Instant::from_millis(0));
        let req = b"{\"destination_address\": \"n\", \"destination_port\": 5900, \"type\": \"vnc-wss\", \"timeout\": 12.5}";
        assert_eq!(c.handle_input(req), Ok(req.len()));
        let Some(Event::Request(Request::Console(r))) = c.poll_event() else {
            panic!()
        };
        assert_eq!(r.password, None);
        assert_eq!(r.viewer_password(), None);
        assert_eq!(r.transport, Transport::WEBSOCKET_TLS);
        assert_eq!(r.timeout_ms, Some(12_500));
        c.reply_ok(&Granted {
            port: 6080,
            password: Some("aB3dE6gH"),
            expires_in: Some(13),
            token: Some("00ff"),
            url_path: Some("websockify?token=00ff"),
        });
        assert_eq!(
            &output(&mut c)[..],
            &b"{\"status\": \"OK\", \"source_port\": 6080, \"proxy_address\": \"vnc.example.org\", \"password\": \"aB3dE6gH\", \"expires_in\": 13, \"token\": \"00ff\", \"url_path\": \"websockify?token=00ff\"}\n"[..]
        );

        let mut c = Control::new(config(), Instant::from_millis(0));
        c.handle_input(SNF).unwrap();
        c.poll_event();
        c.reply_failed("backend \"x\" unreachable");
        assert_eq!(
            &output(&mut c)[..],
            &b"{\"status\": \"FAILED\", \"source_port\": 0, \"proxy_address\": \"vnc.example.org\", \"reason\": \"backend \\\"x\\\" unreachable\"}\n"[..]
        );
    }

    #[test]
    fn framing() {
        // snf clients send no newline: the closed object is the request.
        let mut c = Control::new(config(), Instant::from_millis(0));
        let obj = &SNF[..SNF.len() - 1];
        assert_eq!(c.handle_input(&obj[..obj.len() - 1]), Ok(0));
        assert_eq!(c.handle_input(obj), Ok(obj.len()));
        assert!(c.poll_event().is_some());
        // The line end that follows is consumed; other bytes are not.
        assert_eq!(c.handle_input(b"\r\n"), Ok(2));
        assert_eq!(c.handle_input(b"x"), Ok(0));
        // Braces inside strings do not count.
        let r = parse(b"{\"daddr\": \"h}{\", \"dport\": 1, \"password\": \"p\\\"}\"}").unwrap();
        assert_eq!(r.host.as_str(), "h}{");
        assert_eq!(r.password.as_ref().and_then(|s| s.as_str()), Some("p\"}"));
        // EOF ends a request too (here a line that is not a closed object).
        let mut c = Control::new(config(), Instant::from_millis(0));
        assert_eq!(c.handle_input(b"{\"daddr\""), Ok(0));
        assert_eq!(c.handle_eof(b"{\"daddr\""), Err(Error::NotJson));
        let mut c = Control::new(config(), Instant::from_millis(0));
        assert_eq!(c.handle_eof(b" \r"), Err(Error::NoRequest));
        assert_eq!(
            &output(&mut c)[..],
            b"FAILED connection closed before a request\n"
        );
    }

    #[test]
    fn escapes() {
        let r = parse(br#"{"daddr": "a\/b", "dport": 1, "password": "\u00e9\\\"\n\t"}"#).unwrap();
        assert_eq!(r.host.as_str(), "a/b");
        assert_eq!(
            r.password.as_ref().and_then(|s| s.as_str()),
            Some("\u{e9}\\\"\n\t")
        );
        // Escaped keys are unescaped too.
        let r = parse(br#"{"d\u0061ddr": "h", "dport": 1, "password": "p"}"#).unwrap();
        assert_eq!(r.host.as_str(), "h");
        // Raw UTF-8 is kept; a surrogate pair escape is refused.
        let r = parse("{\"daddr\": \"h\", \"dport\": 1, \"password\": \"p\u{1F600}\"}".as_bytes())
            .unwrap();
        assert_eq!(
            r.password.as_ref().and_then(|s| s.as_str()),
            Some("p\u{1F600}")
        );
        assert_eq!(
            failure(br#"{"daddr": "h", "dport": 1, "password": "\ud83d\ude00"}"#).0,
            Error::BadString
        );
        assert_eq!(
            failure(br#"{"daddr": "h", "dport": 1, "password": "\x"}"#).0,
            Error::BadString
        );
        assert_eq!(
            failure(b"{\"daddr\": \"h\", \"dport\": 1, \"password\": \"\xff\"}").0,
            Error::BadString
        );
    }

    #[test]
    fn twisted_fields() {
        let r = parse(br#"{"daddr": "h", "dport": 5901, "password": "twelve-chars", "sport": 7010, "timeout": 20, "client": {"ip": "192.0.2.7", "password": "viewerpw"}}"#).unwrap();
        assert_eq!(r.preferred_port, Some(7010));
        assert_eq!(r.timeout_ms, Some(20_000));
        assert_eq!(r.client_ip, Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7))));
        assert_eq!(r.transport, Transport::AUTO);
        assert_eq!(
            r.viewer_password().and_then(|p| p.as_str()),
            Some("viewerpw")
        );
        assert_eq!(r.backend_password(None), Some(&b"twelve-chars"[..]));
        let r = parse(br#"{"daddr": "::1", "dport": 5900.0, "password": "p", "sport": 0, "ws": false, "tls": true, "client": {"ip": "::ffff:10.0.0.1"}, "extra": [1, {"a": null}]}"#).unwrap();
        assert_eq!(r.preferred_port, None);
        assert_eq!(r.port, 5900);
        assert_eq!(
            r.transport,
            Transport {
                tls: Need::Yes,
                websocket: Need::No
            }
        );
        assert!(r.client_ip.is_some());
        assert_eq!(r.viewer_password().and_then(|p| p.as_str()), Some("p"));
        // null is absent.
        let r = parse(br#"{"daddr": "h", "dport": 1, "password": "p", "sport": null, "client": null, "ws": null}"#).unwrap();
        assert_eq!(r.preferred_port, None);
        assert_eq!(r.transport.websocket, Need::Either);
    }

    #[test]
    fn rejections() {
        use Field::*;
        let cases: &[(&[u8], Error)] = &[
            (b"hello\n", Error::NotJson),
            (b"[1, 2]\n", Error::NotJson),
            (b"{\"daddr\": \"h\",}\n", Error::NotJson),
            (b"\n", Error::NotJson),
            (b"{\"a\": [[[[1]]]]}", Error::NestedTooDeep),
            (b"{}", Error::UnknownDialect),
            (b"{\"password\": \"p\"}", Error::UnknownDialect),
            (br#"{"daddr": "h", "destination_port": 1, "password": "p"}"#, Error::MixedDialect),
            (br#"{"dport": 1, "password": "p"}"#, Error::MissingField(Daddr)),
            (br#"{"daddr": "h", "password": "p"}"#, Error::MissingField(Dport)),
            (br#"{"daddr": "h", "dport": 1}"#, Error::MissingField(Password)),
            (br#"{"daddr": null, "dport": 1, "password": "p"}"#, Error::MissingField(Daddr)),
            (br#"{"destination_port": 1}"#, Error::MissingField(DestinationAddress)),
            (br#"{"destination_address": "h"}"#, Error::MissingField(DestinationPort)),
            (br#"{"daddr": 1, "dport": 1, "password": "p"}"#, Error::WrongType(Daddr)),
            (br#"{"daddr": "h", "dport": "5900", "password": "p"}"#, Error::WrongType(Dport)),
            (br#"{"daddr": "h", "dport": 59.5, "password": "p"}"#, Error::WrongType(Dport)),
            (br#"{"daddr": "h", "dport": 1, "password": 12345678}"#, Error::WrongType(Password)),
            (br#"{"daddr": "h", "dport": 1, "password": "p", "ws": "yes"}"#, Error::WrongType(Ws)),
            (br#"{"daddr": "h", "dport": 1, "password": "p", "tls": 1}"#, Error::WrongType(Tls)),
            (br#"{"daddr": "h", "dport": 1, "password": "p", "client": "x"}"#, Error::WrongType(Client)),
            (br#"{"daddr": "h", "dport": 1, "password": "p", "client": {"password": 1}}"#, Error::WrongType(ClientPassword)),
            (br#"{"daddr": "h", "dport": 1, "password": "p", "timeout": "5"}"#, Error::WrongType(Timeout)),
            (br#"{"daddr": "h", "dport": 0, "password": "p"}"#, Error::PortOutOfRange(Dport)),
            (br#"{"daddr": "h", "dport": 65536, "password": "p"}"#, Error::PortOutOfRange(Dport)),
            (br#"{"daddr": "h", "dport": -1, "password": "p"}"#, Error::PortOutOfRange(Dport)),
            (br#"{"daddr": "h", "dport": 1, "password": "p", "sport": 70000}"#, Error::PortOutOfRange(Sport)),
            (br#"{"destination_address": "h", "destination_port": 1, "source_port": 65536}"#, Error::PortOutOfRange(SourcePort)),
            (br#"{"daddr": "h", "dport": 1, "password": ""}"#, Error::Empty(Password)),
            (br#"{"destination_address": "h", "destination_port": 1, "password": ""}"#, Error::Empty(Password)),
            (br#"{"daddr": "", "dport": 1, "password": "p"}"#, Error::Empty(Daddr)),
            (br#"{"daddr": "h", "dport": 1, "password": "p", "client": {"password": ""}}"#, Error::Empty(ClientPassword)),
            (br#"{"daddr": "a b", "dport": 1, "password": "p"}"#, Error::BadHost(Daddr)),
            (br#"{"daddr": "h", "dport": 1, "password": "p", "timeout": 301}"#, Error::TimeoutTooLong),
            (br#"{"daddr": "h", "dport": 1, "password": "p", "timeout": 0}"#, Error::BadTimeout),
            (br#"{"daddr": "h", "dport": 1, "password": "p", "timeout": -3}"#, Error::BadTimeout),
            (br#"{"daddr": "h", "dport": 1, "password": "p", "timeout": 0.0001}"#, Error::BadTimeout),
            (br#"{"daddr": "h", "dport": 1, "password": "p", "client": {"ip": "1.2.3"}}"#, Error::BadClientIp),
            (br#"{"daddr": "h", "dport": 1, "password": "p", "client": {"ip": "1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17.18.19.20.21.22.23.24.25"}}"#, Error::BadClientIp),
            (br#"{"destination_address": "h", "destination_port": 1, "type": "rdp"}"#, Error::UnknownType),
            (br#"{"destination_address": "h", "destination_port": 1, "type": "vnc-wss-and-more-and-more"}"#, Error::UnknownType),
            (br#"{"daddr": "h", "daddr": "h", "dport": 1, "password": "p"}"#, Error::Duplicate(Daddr)),
        ];
        for (input, want) in cases {
            let (got, _) = failure(input);
            assert_eq!(got, *want, "{}", core::str::from_utf8(input).unwrap_or("?"));
        }
    }

    #[test]
    fn too_long() {
        let mut long = heapless::Vec::<u8, 8192>::new();
        long.extend_from_slice(b"{\"daddr\": \"").unwrap();
        for _ in 0..256 {
            long.push(b'h').unwrap();
        }
        long.extend_from_slice(b"\", \"dport\": 1, \"password\": \"p\"}")
            .unwrap();
        assert_eq!(failure(&long).0, Error::TooLong(Field::Daddr));
        let (e, out) = failure(&[b' '; MAX_INPUT]);
        assert_eq!(e, Error::LineTooLong);
        assert_eq!(&out[..], b"FAILED request longer than the limit\n");
        // 4095 bytes and a newline: still a request (here a bad one).
        let mut line = [b' '; MAX_INPUT];
        line[MAX_INPUT - 1] = b'\n';
        assert_eq!(failure(&line).0, Error::NotJson);
    }

    #[test]
    fn failure_reply_dialect() {
        // Unknown dialect: dialect 1 reply.
        assert_eq!(
            &failure(b"nope\n").1[..],
            b"FAILED request is not a JSON object\n"
        );
        // snf keys seen: JSON reply.
        assert_eq!(
            &failure(br#"{"destination_address": "h"}"#).1[..],
            &b"{\"status\": \"FAILED\", \"source_port\": 0, \"proxy_address\": \"vnc.example.org\", \"reason\": \"missing field destination_port\"}\n"[..]
        );
        assert_eq!(
            &failure(br#"{"daddr": "h", "dport": 1}"#).1[..],
            b"FAILED missing field password\n"
        );
    }

    #[test]
    fn reasons_are_specific() {
        assert_eq!(
            Error::MissingField(Field::Daddr).reason(),
            "missing field daddr"
        );
        assert_eq!(
            Error::WrongType(Field::ClientIp).reason(),
            "wrong type for client.ip"
        );
        assert_eq!(
            Error::PortOutOfRange(Field::SourcePort).reason(),
            "port out of range for source_port"
        );
    }

    fn request(input: &[u8]) -> (Request, Control) {
        let mut c = Control::new(config(), Instant::from_millis(0));
        assert_eq!(c.handle_input(input), Ok(input.len()), "{input:?}");
        let Some(Event::Request(r)) = c.poll_event() else {
            panic!("no request")
        };
        (r, c)
    }

    #[test]
    fn actions_parse() {
        assert_eq!(request(b"{\"action\": \"list\"}\n").0, Request::List);
        assert_eq!(request(b"{\"action\": \"stats\"}").0, Request::Stats);
        assert_eq!(
            request(br#"{"action": "kill", "id": 12}"#).0,
            Request::Kill(Kill::Id(12))
        );
        let host = |h: &str| Host::try_from(h).unwrap();
        assert_eq!(
            request(br#"{"action": "kill", "backend": "node1.example.org:5901"}"#).0,
            Request::Kill(Kill::Backend {
                host: host("node1.example.org"),
                port: 5901
            })
        );
        assert_eq!(
            request(br#"{"backend": "[2001:db8::1]:5900", "action": "kill", "x": [1]}"#).0,
            Request::Kill(Kill::Backend {
                host: host("2001:db8::1"),
                port: 5900
            })
        );
        // Emit writes what parse reads.
        for r in [
            Request::List,
            Request::Stats,
            Request::Kill(Kill::Id(u64::MAX)),
            Request::Kill(Kill::Backend {
                host: host("::1"),
                port: 1,
            }),
        ] {
            let mut buf = [0u8; 128];
            let n = r.emit(&mut buf).unwrap();
            assert_eq!(request(&buf[..n]).0, r);
        }
        let mut buf = [0u8; 64];
        let n = Request::List.emit(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"{\"action\": \"list\"}\n");
        assert!(Request::Stats.emit(&mut buf[..5]).is_err());
    }

    #[test]
    fn credentials_ride_on_snf_consoles_and_actions() {
        let user = |u: &str| Some(User::try_from(u).unwrap());
        let pw = |p: &str| Some(Password::from_str(p).unwrap());
        let (r, c) =
            request(br#"{"action": "list", "auth_user": "ganeti", "auth_password": "s3cret"}"#);
        assert_eq!(r, Request::List);
        assert_eq!(c.auth().user, user("ganeti"));
        assert_eq!(c.auth().password, pw("s3cret"));
        let snf = br#"{"source_port": 0, "destination_address": "n", "destination_port": 1, "type": "vnc", "auth_user": "u", "auth_password": "p"}"#;
        let (r, c) = request(snf);
        let Request::Console(con) = r else {
            panic!("not a console")
        };
        assert_eq!(con.dialect, Dialect::Snf);
        assert_eq!(
            (c.auth().user.clone(), con.auth_user),
            (user("u"), user("u"))
        );
        // Credentials alone make a console dialect 2; with GWM's keys they mix.
        let (_, c) = request(br#"{"destination_address": "n", "destination_port": 1}"#);
        assert_eq!(c.auth(), &Auth::default());
        let (e, _) = failure(br#"{"daddr": "n", "dport": 1, "password": "p", "auth_user": "u"}"#);
        assert_eq!(e, Error::MixedDialect);
        // Emit writes what parse reads, credentials after the other keys.
        let creds = Credentials {
            user: "ganeti",
            password: "pa\"ss",
        };
        let mut buf = [0u8; 256];
        let n = Request::Kill(Kill::Id(3))
            .emit_with(Some(creds), &mut buf)
            .unwrap();
        assert_eq!(
            &buf[..n],
            br#"{"action": "kill", "id": 3, "auth_user": "ganeti", "auth_password": "pa\"ss"}
"#
        );
        let (_, c) = request(&buf[..n]);
        assert_eq!(c.auth().password, pw("pa\"ss"));
        let ask = client::Ask {
            dialect: Dialect::Snf,
            host: "n",
            port: 1,
            password: None,
            transport: Transport::PLAIN,
            preferred_port: None,
            timeout_secs: None,
        };
        let n = ask.emit_with(Some(creds), &mut buf).unwrap();
        let (_, c) = request(&buf[..n]);
        assert_eq!(c.auth().user, user("ganeti"));
        let twisted = client::Ask {
            dialect: Dialect::Twisted,
            password: Some("p"),
            ..ask
        };
        assert_eq!(
            twisted.emit_with(Some(creds), &mut buf),
            Err(client::ClientError::CredentialsNeedSnf)
        );
    }

    #[test]
    fn action_rejections_answer_in_json() {
        let cases: &[(&[u8], Error)] = &[
            (br#"{"action": "list", "daddr": "h"}"#, Error::MixedAction),
            (br#"{"action": "list", "password": "p"}"#, Error::MixedAction),
            (br#"{"destination_address": "h", "destination_port": 1, "action": "kill", "id": 1}"#, Error::MixedAction),
            (br#"{"action": "reboot"}"#, Error::UnknownAction),
            (br#"{"action": "a-very-long-unknown-action"}"#, Error::UnknownAction),
            (br#"{"action": 1}"#, Error::WrongType(Field::Action)),
            (br#"{"action": null}"#, Error::MissingField(Field::Action)),
            (br#"{"id": 1}"#, Error::MissingField(Field::Action)),
            (br#"{"action": "kill"}"#, Error::KillTarget),
            (br#"{"action": "kill", "id": 1, "backend": "h:1"}"#, Error::KillTarget),
            (br#"{"action": "kill", "id": -1}"#, Error::WrongType(Field::Id)),
            (br#"{"action": "kill", "id": 1.5}"#, Error::WrongType(Field::Id)),
            (br#"{"action": "kill", "id": "1"}"#, Error::WrongType(Field::Id)),
            (br#"{"action": "kill", "backend": "h"}"#, Error::BadBackend),
            (br#"{"action": "kill", "backend": "h:0"}"#, Error::BadBackend),
            (br#"{"action": "kill", "backend": "h:+1"}"#, Error::BadBackend),
            (br#"{"action": "kill", "backend": "::1:5900"}"#, Error::BadBackend),
            (br#"{"action": "kill", "backend": ":5900"}"#, Error::Empty(Field::Backend)),
            (br#"{"action": "kill", "backend": "a b:5900"}"#, Error::BadHost(Field::Backend)),
            (br#"{"action": "list", "action": "list"}"#, Error::Duplicate(Field::Action)),
        ];
        for (input, want) in cases {
            let (got, out) = failure(input);
            assert_eq!(got, *want, "{}", core::str::from_utf8(input).unwrap());
            let mut expect: heapless::Vec<u8, 256> = heapless::Vec::new();
            expect
                .extend_from_slice(b"{\"status\": \"FAILED\", \"reason\": \"")
                .unwrap();
            expect.extend_from_slice(want.reason().as_bytes()).unwrap();
            expect.extend_from_slice(b"\"}\n").unwrap();
            assert_eq!(&out[..], &expect[..]);
        }
        // A refused action, e.g. one the driver cannot answer yet.
        let (_, mut c) = request(br#"{"action": "stats"}"#);
        assert!(c.reply_failed("not supported yet"));
        assert_eq!(
            &output(&mut c)[..],
            b"{\"status\": \"FAILED\", \"reason\": \"not supported yet\"}\n"
        );
    }

    #[test]
    fn action_replies() {
        let (_, mut c) = request(br#"{"action": "kill", "id": 3}"#);
        assert!(c.reply_killed(2));
        assert!(!c.reply_killed(2), "one reply only");
        assert_eq!(
            &output(&mut c)[..],
            b"{\"status\": \"OK\", \"killed\": 2}\n"
        );
        assert!(c.is_done());

        let stats = Stats {
            sessions_active: 1,
            tickets_pending: 2,
            tickets_issued_total: 3,
            tickets_expired_total: 4,
            logins_total: Logins {
                ok: 5,
                wrong_password: 6,
                backend_unreachable: 7,
                backend_refused: 8,
                refused: 9,
            },
            bytes_to_viewer: 10,
            bytes_to_backend: 11,
            control_ok: 12,
            control_failed: 13,
            refused_control: 14,
            refused_entry: 15,
        };
        let (_, mut c) = request(br#"{"action": "stats"}"#);
        assert!(c.reply_stats(&stats));
        let out = output(&mut c);
        assert_eq!(
            &out[..],
            &b"{\"status\": \"OK\", \"vncap_sessions_active\": 1, \"vncap_tickets_pending\": 2, \"vncap_tickets_issued_total\": 3, \"vncap_tickets_expired_total\": 4, \"vncap_logins_total\": {\"ok\": 5, \"wrong_password\": 6, \"backend_unreachable\": 7, \"backend_refused\": 8, \"refused\": 9}, \"vncap_bytes_total\": {\"to_viewer\": 10, \"to_backend\": 11}, \"vncap_control_requests_total\": {\"ok\": 12, \"failed\": 13}, \"vncap_connections_refused_total\": {\"control\": 14, \"entry\": 15}}\n"[..]
        );
        assert_eq!(Stats::parse(&out), Ok(Ok(stats)));
        assert_eq!(
            Stats::parse(b"{\"status\": \"FAILED\", \"reason\": \"not yet\"}"),
            Ok(Err(Some(reply::Reason::from_str_truncated("not yet"))))
        );
    }

    #[test]
    fn list_reply_from_rows_into_the_callers_buffer() {
        use core::net::{Ipv6Addr, SocketAddr};
        use reply::Row;
        let sessions = [SessionRow {
            id: 7,
            backend_host: "node\"1",
            backend_port: 5900,
            viewer: SocketAddr::new(
                IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped()),
                50000,
            ),
            door: Door::Single,
            transport: Layers {
                tls: true,
                websocket: true,
            },
            started: 1_700_000_000,
            bytes_to_viewer: 1,
            bytes_to_backend: 2,
        }];
        let tickets = [
            TicketRow {
                id: 8,
                backend_host: "::1",
                backend_port: 5901,
                port: 7000,
                expires_in: 30,
            },
            TicketRow {
                id: 9,
                backend_host: "h",
                backend_port: 1,
                port: 6080,
                expires_in: 0,
            },
        ];
        let list = List {
            sessions: sessions.iter().copied(),
            tickets: tickets.iter().copied(),
        };
        let (_, mut c) = request(br#"{"action": "list"}"#);
        let mut buf = [0u8; 1024];
        let len = list.buffer_len();
        assert_eq!(c.reply_list(&list, &mut buf[..len]), Some(len));
        assert!(c.reply_list(&list, &mut buf).is_none(), "one reply only");
        assert!(output(&mut c).is_empty() && c.is_done());
        let out = &buf[..len];
        assert_eq!(
            out,
            &b"{\"status\": \"OK\", \"sessions\": [{\"id\": 7, \"backend\": \"node\\\"1:5900\", \"viewer\": \"192.0.2.1:50000\", \"door\": \"single\", \"transport\": \"vnc-wss\", \"started\": 1700000000, \"bytes_to_viewer\": 1, \"bytes_to_backend\": 2}], \"tickets\": [{\"id\": 8, \"backend\": \"[::1]:5901\", \"port\": 7000, \"expires_in\": 30}, {\"id\": 9, \"backend\": \"h:1\", \"port\": 6080, \"expires_in\": 0}]}\n"[..]
        );
        let mut seen_sessions = 0;
        let mut seen_tickets = 0;
        let outcome = List::parse(out, |row| match row {
            Row::Session(s) => {
                let want = SessionRow {
                    viewer: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 50000),
                    ..sessions[0]
                };
                assert_eq!(s, want);
                seen_sessions += 1;
            }
            Row::Ticket(t) => {
                assert_eq!(t, tickets[seen_tickets]);
                seen_tickets += 1;
            }
        });
        assert_eq!(outcome, Ok(Ok(())));
        assert_eq!((seen_sessions, seen_tickets), (1, 2));
        // Too short a buffer: a FAILED reply is queued instead.
        let (_, mut c) = request(br#"{"action": "list"}"#);
        assert_eq!(c.reply_list(&list, &mut buf[..len - 1]), None);
        assert_eq!(
            &output(&mut c)[..],
            b"{\"status\": \"FAILED\", \"reason\": \"reply too long\"}\n"
        );
        // An empty list.
        let empty = List {
            sessions: core::iter::empty(),
            tickets: core::iter::empty(),
        };
        let n = empty.emit(&mut buf).unwrap();
        assert_eq!(
            &buf[..n],
            b"{\"status\": \"OK\", \"sessions\": [], \"tickets\": []}\n"
        );
        let _ = Ipv6Addr::LOCALHOST;
    }

    #[test]
    fn raw_control_characters_and_nul_passwords_are_refused() {
        // RFC 8259 §7: U+0000-U+001F must be escaped inside a string.
        assert_eq!(
            failure(b"{\"daddr\": \"h\x01\", \"dport\": 1, \"password\": \"p\"}").0,
            Error::BadString
        );
        assert_eq!(
            failure(b"{\"daddr\": \"h\", \"dport\": 1, \"password\": \"p\tq\"}").0,
            Error::BadString
        );
        assert_eq!(
            failure(b"{\"x\": \"\x1b[2J\", \"daddr\": \"h\", \"dport\": 1, \"password\": \"p\"}").0,
            Error::BadString
        );
        // Escaped, they are text (a tab in a password is allowed).
        let r = parse(br#"{"daddr": "h", "dport": 1, "password": "p\tq"}"#).unwrap();
        assert_eq!(r.password.unwrap().as_bytes(), b"p\tq");
        // NUL padding makes these the empty password.
        for pw in [r#""\u0000""#, r#""\u0000\u0000""#, r#""\u0000abc""#] {
            let mut req: heapless::String<128> = heapless::String::new();
            core::fmt::Write::write_fmt(
                &mut req,
                format_args!("{{\"daddr\": \"h\", \"dport\": 1, \"password\": {pw}}}"),
            )
            .unwrap();
            assert_eq!(failure(req.as_bytes()).0, Error::Empty(Field::Password));
        }
        assert_eq!(
            failure(
                br#"{"daddr": "h", "dport": 1, "password": "p", "client": {"password": "\u0000"}}"#
            )
            .0,
            Error::Empty(Field::ClientPassword)
        );
        // A NUL after the first byte is kept (the key is its first 8 bytes).
        let r = parse(br#"{"daddr": "h", "dport": 1, "password": "a\u0000"}"#).unwrap();
        assert_eq!(r.password.unwrap().as_bytes(), b"a\0");
    }

    const T0: Instant = Instant::from_millis(1_000);

    fn peer() -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9)), 51000)
    }

    /// Feeds `input` as the daemon's driver does (event by event) and
    /// returns the events, or the error; `input` is consumed as it goes.
    fn drive(c: &mut Control, mut input: &[u8]) -> Result<heapless::Vec<Event, 4>, Error> {
        let mut events = heapless::Vec::new();
        loop {
            let n = c.handle_input(input)?;
            input = &input[n..];
            match c.poll_event() {
                Some(e) => events.push(e).unwrap(),
                None if n == 0 => return Ok(events),
                None => {}
            }
        }
    }

    #[test]
    fn a_silent_client_is_closed_unanswered_at_exactly_the_silence() {
        let mut c = Control::new(config(), T0);
        assert_eq!(c.poll_timeout(), Some(T0 + SILENCE_MS));
        c.handle_timeout(T0 + SILENCE_MS - 1);
        assert_eq!(c.handle_input(&[]), Ok(0), "not yet");
        c.handle_timeout(T0 + SILENCE_MS);
        assert_eq!(c.handle_input(&[]), Err(Error::Silent));
        assert!(output(&mut c).is_empty(), "no answer");
        assert_eq!(c.poll_timeout(), None);
    }

    #[test]
    fn a_first_byte_leaves_the_whole_deadline_which_is_also_unanswered() {
        let mut c = Control::new(config(), T0);
        assert_eq!(c.handle_input(&GWM[..10]), Ok(0));
        assert_eq!(c.poll_timeout(), Some(T0 + TIMEOUT_MS));
        assert_eq!(c.deadline(), T0 + TIMEOUT_MS);
        c.handle_timeout(T0 + SILENCE_MS);
        assert_eq!(c.handle_input(&GWM[..10]), Ok(0), "past the silence: spoke");
        c.handle_timeout(T0 + TIMEOUT_MS - 1);
        assert_eq!(c.handle_input(&GWM[..10]), Ok(0));
        c.handle_timeout(T0 + TIMEOUT_MS);
        assert_eq!(c.handle_input(GWM), Err(Error::TimedOut));
        assert!(output(&mut c).is_empty());
    }

    #[test]
    fn the_deadline_covers_the_reply_and_ends_with_it() {
        let mut c = Control::new(config(), T0);
        assert_eq!(c.handle_input(GWM), Ok(GWM.len()));
        assert!(matches!(c.poll_event(), Some(Event::Request(_))));
        assert_eq!(
            c.poll_timeout(),
            Some(T0 + TIMEOUT_MS),
            "awaiting the reply"
        );
        assert!(c.reply_failed("no"));
        assert_eq!(c.poll_timeout(), Some(T0 + TIMEOUT_MS), "reply not sent");
        assert!(output(&mut c).starts_with(b"FAILED no"));
        assert_eq!(c.poll_timeout(), None);
        c.handle_timeout(T0 + TIMEOUT_MS);
        assert!(c.is_done(), "a sent reply is not undone");
        // A reply the driver did not get to before the deadline is dropped.
        let mut c = Control::new(config(), T0);
        assert_eq!(c.handle_input(GWM), Ok(GWM.len()));
        c.handle_timeout(T0 + TIMEOUT_MS);
        assert!(!c.reply_failed("late"));
        assert!(output(&mut c).is_empty());
    }

    #[test]
    fn both_deadlines_are_configurable() {
        let config = Config {
            silence_ms: 50,
            timeout_ms: 20,
            ..config()
        };
        let mut c = Control::new(config, T0);
        assert_eq!(c.poll_timeout(), Some(T0 + 20), "the earlier one");
        c.handle_timeout(T0 + 20);
        assert_eq!(c.handle_input(&[]), Err(Error::TimedOut));
    }

    #[test]
    fn a_trusted_proxys_header_names_the_client_before_the_request() {
        let header = b"PROXY TCP4 192.0.2.7 10.0.0.1 40000 8888\r\n";
        let mut input = heapless::Vec::<u8, 512>::new();
        input.extend_from_slice(header).unwrap();
        input.extend_from_slice(GWM).unwrap();
        // Any split: the same events, the same client.
        for cut in 0..=input.len() {
            let mut c = Control::from_trusted_proxy(config(), T0, peer());
            assert_eq!(c.client(), Some(peer()));
            let mut events = drive(&mut c, &input[..cut]).unwrap();
            let consumed = if events.is_empty() { 0 } else { header.len() };
            let rest = drive(&mut c, &input[consumed..]).unwrap();
            events.extend(rest);
            assert!(
                matches!(&events[..], [Event::Client, Event::Request(_)]),
                "cut {cut}: {events:?}"
            );
            assert_eq!(c.client(), Some("192.0.2.7:40000".parse().unwrap()));
        }
    }

    #[test]
    fn a_trusted_host_may_speak_for_itself() {
        let mut c = Control::from_trusted_proxy(config(), T0, peer());
        let events = drive(&mut c, GWM).unwrap();
        assert!(matches!(&events[..], [Event::Client, Event::Request(_)]));
        assert_eq!(c.client(), Some(peer()));
        // A health check's LOCAL header keeps the peer, too.
        let mut local = heapless::Vec::<u8, 512>::new();
        local.extend_from_slice(&proxy::V2_SIGNATURE).unwrap();
        local.extend_from_slice(&[0x20, 0x00, 0x00, 0x00]).unwrap();
        local.extend_from_slice(GWM).unwrap();
        let mut c = Control::from_trusted_proxy(config(), T0, peer());
        let events = drive(&mut c, &local).unwrap();
        assert!(matches!(&events[..], [Event::Client, Event::Request(_)]));
        assert_eq!(c.client(), Some(peer()));
    }

    #[test]
    fn a_malformed_header_is_closed_unanswered_and_anyone_elses_is_no_request() {
        let mut c = Control::from_trusted_proxy(config(), T0, peer());
        assert_eq!(
            c.handle_input(b"PROXY TCP4 nonsense\r\n"),
            Err(Error::Proxy(proxy::Error::BadV1))
        );
        assert!(output(&mut c).is_empty());
        let mut c = Control::from_trusted_proxy(config(), T0, peer());
        assert_eq!(c.handle_eof(b"PROXY TCP4 192.0.2.7"), Err(Error::NoRequest));
        assert!(output(&mut c).is_empty(), "cut short: no answer");
        let mut c = Control::new(config(), T0);
        let header = b"PROXY TCP4 192.0.2.7 10.0.0.1 40000 8888\r\n";
        assert_eq!(c.handle_input(header), Err(Error::NotJson));
        assert!(output(&mut c).starts_with(b"FAILED "));
        assert_eq!(c.client(), None);
    }

    #[test]
    fn tls_is_asked_for_once_the_first_byte_is_there() {
        let tls = Config {
            tls: true,
            ..config()
        };
        let mut c = Control::new(tls.clone(), T0);
        assert_eq!(drive(&mut c, &[]).unwrap().len(), 0);
        assert_eq!(c.poll_timeout(), Some(T0 + SILENCE_MS), "silent until then");
        let hello = [0x16, 0x03, 0x01];
        assert_eq!(drive(&mut c, &hello).unwrap()[..], [Event::StartTls]);
        assert_eq!(drive(&mut c, &hello).unwrap().len(), 0, "once");
        assert_eq!(c.poll_timeout(), Some(T0 + TIMEOUT_MS));
        c.tls_started();
        assert!(matches!(
            &drive(&mut c, GWM).unwrap()[..],
            [Event::Request(_)]
        ));
        // Closed before TLS: nothing in plaintext.
        let mut c = Control::new(tls.clone(), T0);
        assert_eq!(c.handle_eof(&[]), Err(Error::NoRequest));
        assert!(output(&mut c).is_empty());
        // Behind a trusted proxy: the header, the client, then TLS.
        let mut c = Control::from_trusted_proxy(tls, T0, peer());
        let mut input = heapless::Vec::<u8, 512>::new();
        input
            .extend_from_slice(b"PROXY TCP6 2001:db8::7 2001:db8::1 40000 8888\r\n")
            .unwrap();
        input.extend_from_slice(&hello).unwrap();
        assert_eq!(
            drive(&mut c, &input).unwrap()[..],
            [Event::Client, Event::StartTls]
        );
        assert_eq!(c.client(), Some("[2001:db8::7]:40000".parse().unwrap()));
    }
}
