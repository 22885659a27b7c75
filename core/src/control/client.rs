//! The client side of the control channel: write one request, parse its
//! reply (DESIGN.md, "The control channel").
//!
//! What it is: [`write_request`] turns an [`Ask`] into one request line in
//! either dialect, strings JSON-escaped exactly as the server side
//! ([`super::reply`]) escapes them; [`parse_reply`] turns the bytes the
//! proxy sent back into an [`Answer`]. Used by `vncap request` (the operator
//! CLI) and by tests. What it is not: a socket, a retry policy, or the server
//! side ([`super::Control`]).
//!
//! Decisions, each with its reason:
//! - **The writer is faithful, not a validator.** It refuses only what its
//!   dialect cannot express (a generated password in dialect 1, a transport
//!   other than `vnc`/`vnc-ws`/`vnc-wss` in dialect 2); an empty host or a
//!   port 0 goes out as given and the proxy's `FAILED` reason says why.
//! - **Key order and spacing follow the reference clients** (Python
//!   `json.dumps`: `", "` and `": "`): dialect 1 `daddr`, `dport`,
//!   `password` (what GWM always sends), then `sport`, `ws`, `tls`,
//!   `timeout` when given,
//!   dialect 2 as snf's CLI does (`source_port` first, 0 for "pick one").
//! - **Dialect 1 replies**: leading and trailing whitespace (`\r\n` or `\n`,
//!   or none at EOF) is dropped; a reply starting `FAIL` is a failure (GWM
//!   tests `startswith("FAIL")`), its reason is what follows `FAILED` (or
//!   `FAIL`), trimmed, `None` when empty (kept up to its first byte that is
//!   not UTF-8); otherwise it must be a port,
//!   1 to 5 decimal digits in 1..=65535. Anything after the one line is
//!   [`ClientError::TrailingBytes`].
//! - **Dialect 2 replies** are one JSON object, framed and depth-limited by
//!   the server's own framer (so a deeply nested unknown value cannot
//!   exhaust the stack); unknown keys are ignored and `null` is an absent
//!   key, as snf's Python client reads a dict. `status` is required, `"OK"`
//!   or `"FAILED"`; an `OK` needs `source_port` in 1..=65535; a `FAILED`
//!   reply's `source_port` 0 means none. An empty `proxy_address` is `None`.
//!   Strings are unescaped into an [`UNESCAPE_CAP`]-byte scratch buffer.
//! - **A failure reason is for a terminal**: cut to 200 bytes (at a
//!   character boundary) and control characters blanked, in both dialects,
//!   so a hostile proxy cannot move the operator's cursor.
//! - **`Debug` of an [`Answer`] shows no password, token or URL path.**

use core::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::reply::{self, Sink};
use super::request::{Num, Opt, UNESCAPE_CAP};
use super::{Dialect, Framed, Host, Need, Password, Scan, Transport, MAX_INPUT};
use crate::ticket::{Token, UrlPath};

/// Longest failure reason kept in an [`Answer`], in bytes.
pub const REASON_CAP: usize = 200;

/// A failure reason as kept in an [`Answer`].
pub type Reason = heapless::String<REASON_CAP>;

/// What to ask the proxy for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Ask<'a> {
    /// The dialect to speak (the reply comes back in it).
    pub dialect: Dialect,
    /// Backend VNC server host (`daddr` / `destination_address`).
    pub host: &'a str,
    /// Backend VNC server port (`dport` / `destination_port`).
    pub port: u16,
    /// The password the viewer will present (`password`); `None` asks the
    /// proxy to generate one (dialect 2 extension; dialect 1 refuses with
    /// [`ClientError::GeneratedPasswordNeedsSnf`]).
    pub password: Option<&'a str>,
    /// Which layers the viewer may use. Dialect 1: each [`Need::Yes`] /
    /// [`Need::No`] is `true` / `false` in `ws` and `tls`, [`Need::Either`]
    /// leaves the key out. Dialect 2: [`Transport::PLAIN`] is `"vnc"`,
    /// [`Transport::WEBSOCKET`] `"vnc-ws"`, [`Transport::WEBSOCKET_TLS`]
    /// `"vnc-wss"`; anything else is [`ClientError::TransportNotExpressible`].
    pub transport: Transport,
    /// Preferred entry port (`sport` / `source_port`); `None` lets the proxy
    /// pick (dialect 1 leaves `sport` out, dialect 2 sends 0).
    pub preferred_port: Option<u16>,
    /// Ticket lifetime in seconds (`timeout`); `None` leaves the key out.
    pub timeout_secs: Option<u32>,
}

impl fmt::Debug for Ask<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ask")
            .field("dialect", &self.dialect)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("password", &self.password.map(|_| "<redacted>"))
            .field("transport", &self.transport)
            .field("preferred_port", &self.preferred_port)
            .field("timeout_secs", &self.timeout_secs)
            .finish()
    }
}

/// A parsed reply. Its `Debug` shows no password, token or URL path.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Answer {
    /// `true` for a port / `"status": "OK"`, `false` for `FAILED`.
    pub ok: bool,
    /// The entry port (`source_port` in dialect 2); `None` on failure.
    pub port: Option<u16>,
    /// The password the proxy generated (dialect 2 extension).
    pub password: Option<Password>,
    /// Where viewers reach the proxy (dialect 2 `proxy_address`, if not
    /// empty).
    pub proxy_address: Option<Host>,
    /// Why it failed, when the proxy said (cut to [`REASON_CAP`] bytes,
    /// control characters blanked).
    pub reason: Option<Reason>,
    /// Seconds until the ticket expires (dialect 2 extension).
    pub expires_in: Option<u64>,
    /// Single-port mode token (dialect 2 extension).
    pub token: Option<Token>,
    /// Single-port mode path for the viewer (dialect 2 extension).
    pub url_path: Option<UrlPath>,
}

impl fmt::Debug for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn redact<T>(v: &Option<T>) -> Option<&'static str> {
            v.as_ref().map(|_| "<redacted>")
        }
        f.debug_struct("Answer")
            .field("ok", &self.ok)
            .field("port", &self.port)
            .field("password", &redact(&self.password))
            .field("proxy_address", &self.proxy_address)
            .field("reason", &self.reason)
            .field("expires_in", &self.expires_in)
            .field("token", &redact(&self.token))
            .field("url_path", &redact(&self.url_path))
            .finish()
    }
}

macro_rules! keys {
    ($($variant:ident => $name:literal;)*) => {
        /// A key of a dialect 2 reply, named as on the wire.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Key {
            $(
                #[doc = concat!("`", $name, "`")]
                $variant,
            )*
        }

        impl Key {
            /// The key as on the wire.
            pub const fn name(self) -> &'static str {
                match self { $(Key::$variant => $name,)* }
            }
            const fn missing(self) -> &'static str {
                match self { $(Key::$variant => concat!("reply lacks ", $name),)* }
            }
            const fn wrong_type(self) -> &'static str {
                match self { $(Key::$variant => concat!("wrong type for ", $name, " in reply"),)* }
            }
            const fn too_long(self) -> &'static str {
                match self { $(Key::$variant => concat!("value too long for ", $name, " in reply"),)* }
            }
            const fn duplicate(self) -> &'static str {
                match self { $(Key::$variant => concat!("duplicate key ", $name, " in reply"),)* }
            }
            fn of(key: &str) -> Option<Key> {
                match key { $($name => Some(Key::$variant),)* _ => None }
            }
            const fn bit(self) -> u8 {
                1 << (self as u8)
            }
        }
    };
}

keys! {
    Status => "status";
    SourcePort => "source_port";
    ProxyAddress => "proxy_address";
    Reason => "reason";
    Password => "password";
    ExpiresIn => "expires_in";
    Token => "token";
    UrlPath => "url_path";
}

/// Why a request could not be written or a reply not understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientError {
    /// The request does not fit in the buffer given to [`write_request`].
    BufferTooSmall,
    /// Asking the proxy to generate a password is a dialect 2 extension.
    GeneratedPasswordNeedsSnf,
    /// Dialect 2's `type` has no value for this transport (only plain,
    /// WebSocket, and WebSocket over TLS).
    TransportNotExpressible,
    /// Dialect 1: neither a port nor a line starting `FAIL`.
    NotAReply,
    /// Dialect 1: a port of 0 or over 65535; dialect 2: `source_port` out of
    /// 0..=65535, or 0 with `"status": "OK"`.
    PortOutOfRange,
    /// Bytes other than whitespace after the reply.
    TrailingBytes,
    /// The reply is longer than [`MAX_INPUT`] bytes.
    ReplyTooLong,
    /// Dialect 2: not a JSON object (syntax, another JSON value, or cut
    /// short).
    BadJson,
    /// Dialect 2: nesting deeper than [`super::request::MAX_DEPTH`].
    NestedTooDeep,
    /// Dialect 2: a string with a bad escape, a `\u` surrogate, or invalid
    /// UTF-8.
    BadString,
    /// Dialect 2: `status` is neither `"OK"` nor `"FAILED"`.
    BadStatus,
    /// Dialect 2: a required key is absent or `null`.
    Missing(Key),
    /// Dialect 2: a key's value has the wrong JSON type.
    WrongType(Key),
    /// Dialect 2: a string is longer than its capacity.
    TooLong(Key),
    /// Dialect 2: a key appears twice.
    Duplicate(Key),
}

impl ClientError {
    /// What went wrong, for the operator.
    pub fn reason(&self) -> &'static str {
        match *self {
            ClientError::BufferTooSmall => "request does not fit in the buffer",
            ClientError::GeneratedPasswordNeedsSnf => {
                "a generated password needs the snf (JSON reply) dialect"
            }
            ClientError::TransportNotExpressible => {
                "the snf dialect expresses only vnc, vnc-ws and vnc-wss"
            }
            ClientError::NotAReply => "reply is neither a port nor FAILED",
            ClientError::PortOutOfRange => "port in reply out of range",
            ClientError::TrailingBytes => "bytes after the reply",
            ClientError::ReplyTooLong => "reply longer than 4096 bytes",
            ClientError::BadJson => "reply is not a JSON object",
            ClientError::NestedTooDeep => "reply JSON nested too deeply",
            ClientError::BadString => "bad string in reply (escape, UTF-8 or length)",
            ClientError::BadStatus => "reply status is neither OK nor FAILED",
            ClientError::Missing(k) => k.missing(),
            ClientError::WrongType(k) => k.wrong_type(),
            ClientError::TooLong(k) => k.too_long(),
            ClientError::Duplicate(k) => k.duplicate(),
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

/// The caller's buffer, filled from the front.
struct Cursor<'b> {
    buf: &'b mut [u8],
    len: usize,
}

impl Sink for Cursor<'_> {
    fn put(&mut self, b: &[u8]) -> Result<(), ()> {
        let end = self.len.checked_add(b.len()).ok_or(())?;
        self.buf
            .get_mut(self.len..end)
            .ok_or(())?
            .copy_from_slice(b);
        self.len = end;
        Ok(())
    }
}

/// Writes one request line (a JSON object and `\n`) into `out`, strings
/// JSON-escaped. Returns the bytes written.
pub fn write_request(ask: &Ask<'_>, out: &mut [u8]) -> Result<usize, ClientError> {
    let mut c = Cursor { buf: out, len: 0 };
    match ask.dialect {
        Dialect::Twisted => {
            let password = ask.password.ok_or(ClientError::GeneratedPasswordNeedsSnf)?;
            twisted(&mut c, ask, password)
        }
        Dialect::Snf => {
            let kind = match ask.transport {
                Transport::PLAIN => "vnc",
                Transport::WEBSOCKET => "vnc-ws",
                Transport::WEBSOCKET_TLS => "vnc-wss",
                _ => return Err(ClientError::TransportNotExpressible),
            };
            snf(&mut c, ask, kind)
        }
    }
    .map_err(|()| ClientError::BufferTooSmall)?;
    Ok(c.len)
}

fn twisted(c: &mut Cursor<'_>, ask: &Ask<'_>, password: &str) -> Result<(), ()> {
    reply::raw(c, b"{\"daddr\": ")?;
    reply::string(c, ask.host)?;
    reply::raw(c, b", \"dport\": ")?;
    reply::number(c, u64::from(ask.port))?;
    reply::raw(c, b", \"password\": ")?;
    reply::string(c, password)?;
    if let Some(p) = ask.preferred_port {
        reply::raw(c, b", \"sport\": ")?;
        reply::number(c, u64::from(p))?;
    }
    for (key, need) in [
        (&b", \"ws\": "[..], ask.transport.websocket),
        (&b", \"tls\": "[..], ask.transport.tls),
    ] {
        let value: &[u8] = match need {
            Need::Yes => b"true",
            Need::No => b"false",
            Need::Either => continue,
        };
        reply::raw(c, key)?;
        reply::raw(c, value)?;
    }
    timeout(c, ask.timeout_secs)?;
    reply::raw(c, b"}\n")
}

fn snf(c: &mut Cursor<'_>, ask: &Ask<'_>, kind: &str) -> Result<(), ()> {
    reply::raw(c, b"{\"source_port\": ")?;
    reply::number(c, u64::from(ask.preferred_port.unwrap_or(0)))?;
    reply::raw(c, b", \"destination_address\": ")?;
    reply::string(c, ask.host)?;
    reply::raw(c, b", \"destination_port\": ")?;
    reply::number(c, u64::from(ask.port))?;
    if let Some(p) = ask.password {
        reply::raw(c, b", \"password\": ")?;
        reply::string(c, p)?;
    }
    reply::raw(c, b", \"type\": ")?;
    reply::string(c, kind)?;
    timeout(c, ask.timeout_secs)?;
    reply::raw(c, b"}\n")
}

fn timeout(c: &mut Cursor<'_>, secs: Option<u32>) -> Result<(), ()> {
    match secs {
        Some(s) => {
            reply::raw(c, b", \"timeout\": ")?;
            reply::number(c, u64::from(s))
        }
        None => Ok(()),
    }
}

/// Parses the proxy's reply to a request of `dialect`: dialect 1 `<port>\n`
/// or `FAILED ...\n`; dialect 2 one JSON object (with or without a line
/// end). `reply` is everything the proxy sent.
pub fn parse_reply(dialect: Dialect, reply: &[u8]) -> Result<Answer, ClientError> {
    if reply.len() > MAX_INPUT {
        return Err(ClientError::ReplyTooLong);
    }
    match dialect {
        Dialect::Twisted => twisted_reply(reply),
        Dialect::Snf => snf_reply(reply),
    }
}

fn twisted_reply(reply: &[u8]) -> Result<Answer, ClientError> {
    let line = reply.trim_ascii();
    if line.contains(&b'\n') {
        return Err(ClientError::TrailingBytes);
    }
    if let Some(rest) = line.strip_prefix(b"FAIL") {
        let rest = rest.strip_prefix(b"ED").unwrap_or(rest);
        // A reason that is not UTF-8 is kept up to its first bad byte.
        let text = match core::str::from_utf8(rest) {
            Ok(t) => t,
            Err(e) => rest
                .get(..e.valid_up_to())
                .and_then(|v| core::str::from_utf8(v).ok())
                .unwrap_or(""),
        };
        return Ok(Answer {
            ok: false,
            reason: reason(text.trim()),
            ..Answer::default()
        });
    }
    if line.is_empty() || line.len() > 5 || !line.iter().all(u8::is_ascii_digit) {
        return Err(ClientError::NotAReply);
    }
    let port = line.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
    match u16::try_from(port) {
        Ok(p) if p != 0 => Ok(Answer {
            ok: true,
            port: Some(p),
            ..Answer::default()
        }),
        _ => Err(ClientError::PortOutOfRange),
    }
}

/// `Some` reason cut to [`REASON_CAP`] with control characters blanked;
/// `None` when empty.
fn reason(text: &str) -> Option<Reason> {
    let mut r = Reason::new();
    for c in reply::cut(text, REASON_CAP).chars() {
        let c = if c.is_control() { ' ' } else { c };
        // Blanking keeps the length in bytes, or shortens it: it fits.
        let _ = r.push(c);
    }
    (!r.is_empty()).then_some(r)
}

fn snf_reply(reply: &[u8]) -> Result<Answer, ClientError> {
    // The framer ends a request at an empty line; a reply may start with one.
    let reply = reply.trim_ascii_start();
    let json = match Scan::default().feed(reply, MAX_INPUT) {
        Framed::TooDeep => return Err(ClientError::NestedTooDeep),
        Framed::Done { end, consumed } => {
            let rest = reply.get(consumed..).unwrap_or(&[]);
            if !rest.iter().all(u8::is_ascii_whitespace) {
                return Err(ClientError::TrailingBytes);
            }
            reply.get(..end).unwrap_or(&[])
        }
        // Not a closed object: let the parser say what is wrong with it.
        Framed::More => reply,
    };
    let track = Track::default();
    let raw = parse_raw(json, &track)?;
    let ok = match raw.status {
        None => return Err(ClientError::Missing(Key::Status)),
        Some(Status::Ok) => true,
        Some(Status::Failed) => false,
    };
    let port = match (ok, raw.source_port) {
        (true, None) => return Err(ClientError::Missing(Key::SourcePort)),
        (true, Some(0)) => return Err(ClientError::PortOutOfRange),
        (_, None | Some(0)) => None,
        (_, Some(p)) => Some(p),
    };
    Ok(Answer {
        ok,
        port,
        password: raw.password,
        proxy_address: raw.proxy_address.filter(|a| !a.is_empty()),
        reason: raw.reason,
        expires_in: raw.expires_in,
        token: raw.token,
        url_path: raw.url_path,
    })
}

#[derive(Clone, Copy)]
enum Status {
    Ok,
    Failed,
}

/// Values as they came.
#[derive(Default)]
struct Raw {
    status: Option<Status>,
    source_port: Option<u16>,
    proxy_address: Option<Host>,
    reason: Option<Reason>,
    password: Option<Password>,
    expires_in: Option<u64>,
    token: Option<Token>,
    url_path: Option<UrlPath>,
}

/// What the parse saw, outside serde's error type (which carries no key).
#[derive(Default)]
struct Track {
    current: core::cell::Cell<Option<Key>>,
    problem: core::cell::Cell<Option<ClientError>>,
    seen: core::cell::Cell<u8>,
}

impl Track {
    fn fail<E: de::Error>(&self, e: ClientError) -> E {
        self.problem.set(Some(e));
        E::custom("")
    }
}

fn parse_raw(json: &[u8], track: &Track) -> Result<Raw, ClientError> {
    use serde_json_core::de::Error as J;
    let mut scratch = [0u8; UNESCAPE_CAP];
    let mut de = serde_json_core::de::Deserializer::new(json, Some(&mut scratch));
    let result = ReplySeed(track)
        .deserialize(&mut de)
        .and_then(|raw| de.end().map(|_| raw));
    result.map_err(|e| {
        if let Some(problem) = track.problem.get() {
            return problem;
        }
        match (e, track.current.get()) {
            (J::InvalidType | J::InvalidNumber, Some(k)) => ClientError::WrongType(k),
            (J::EscapedStringIsTooLong, Some(k)) => ClientError::TooLong(k),
            (
                J::InvalidUnicodeCodePoint | J::InvalidEscapeSequence | J::EscapedStringIsTooLong,
                _,
            ) => ClientError::BadString,
            _ => ClientError::BadJson,
        }
    })
}

struct ReplySeed<'t>(&'t Track);

impl<'de> DeserializeSeed<'de> for ReplySeed<'_> {
    type Value = Raw;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ReplySeed<'_> {
    type Value = Raw;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a control reply object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        let t = self.0;
        let mut raw = Raw::default();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let Some(key) = key else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            if t.seen.get() & key.bit() != 0 {
                return Err(t.fail(ClientError::Duplicate(key)));
            }
            t.seen.set(t.seen.get() | key.bit());
            t.current.set(Some(key));
            match key {
                Key::Status => {
                    raw.status = match map.next_value_seed(Opt(Str::<6>(t)))? {
                        None => None,
                        Some(s) if s == "OK" => Some(Status::Ok),
                        Some(s) if s == "FAILED" => Some(Status::Failed),
                        Some(_) => return Err(t.fail(ClientError::BadStatus)),
                    }
                }
                Key::SourcePort => {
                    raw.source_port = match map.next_value_seed(Opt(Num))? {
                        None => None,
                        Some(v) => Some(port(v).map_err(|e| t.fail(e))?),
                    }
                }
                Key::ProxyAddress => raw.proxy_address = map.next_value_seed(Opt(Str(t)))?,
                Key::Reason => raw.reason = map.next_value_seed(Opt(ReasonSeed))?.flatten(),
                Key::Password => raw.password = map.next_value_seed(Opt(Str(t)))?,
                Key::ExpiresIn => raw.expires_in = map.next_value_seed(Opt(U64))?,
                Key::Token => raw.token = map.next_value_seed(Opt(Str(t)))?,
                Key::UrlPath => raw.url_path = map.next_value_seed(Opt(Str(t)))?,
            }
            t.current.set(None);
        }
        Ok(raw)
    }
}

/// An integral JSON number in 0..=65535 (`7000` or `7000.0`).
fn port(v: f64) -> Result<u16, ClientError> {
    if !(0.0..=65535.0).contains(&v) {
        return Err(ClientError::PortOutOfRange);
    }
    let p = v as u16;
    if f64::from(p) != v {
        return Err(ClientError::WrongType(Key::SourcePort));
    }
    Ok(p)
}

/// A key: known (`Some`) or to be skipped (`None`).
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Option<Key>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<Key>, D::Error> {
        d.deserialize_identifier(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Option<Key>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<Key>, E> {
        Ok(Key::of(v))
    }
}

/// A string copied into `String<N>`; longer is [`ClientError::TooLong`].
struct Str<'t, const N: usize>(&'t Track);

impl<'de, const N: usize> DeserializeSeed<'de> for Str<'_, N> {
    type Value = heapless::String<N>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de, const N: usize> Visitor<'de> for Str<'_, N> {
    type Value = heapless::String<N>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        let mut s = heapless::String::new();
        if s.push_str(v).is_err() {
            // `status` longer than "FAILED" is no status.
            let e = match self.0.current.get() {
                Some(Key::Status) => ClientError::BadStatus,
                Some(k) => ClientError::TooLong(k),
                None => ClientError::BadJson,
            };
            return Err(self.0.fail(e));
        }
        Ok(s)
    }
}

/// A reason, cut and blanked (never too long).
struct ReasonSeed;

impl<'de> DeserializeSeed<'de> for ReasonSeed {
    type Value = Option<Reason>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for ReasonSeed {
    type Value = Option<Reason>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(reason(v))
    }
}

/// A non-negative JSON integer.
struct U64;

impl<'de> DeserializeSeed<'de> for U64 {
    type Value = u64;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<u64, D::Error> {
        d.deserialize_u64(self)
    }
}

impl<'de> Visitor<'de> for U64 {
    type Value = u64;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a non-negative integer")
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::{Config, Control, Event, Granted, Request};
    use crate::machine::Machine;

    fn ask(dialect: Dialect) -> Ask<'static> {
        Ask {
            dialect,
            host: "node1.example.org",
            port: 5901,
            password: Some("Ab3dE6gH"),
            transport: Transport::WEBSOCKET,
            preferred_port: None,
            timeout_secs: None,
        }
    }

    fn write(a: &Ask<'_>) -> heapless::Vec<u8, 4096> {
        let mut buf = [0u8; 4096];
        let n = write_request(a, &mut buf).unwrap();
        heapless::Vec::from_slice(&buf[..n]).unwrap()
    }

    fn config() -> Config {
        let mut c = Config::default();
        c.proxy_address.push_str("vnc.example.org").unwrap();
        c.max_timeout_ms = u64::MAX;
        c
    }

    /// The server side's reading of `bytes`, and the machine to reply with.
    fn serve(bytes: &[u8]) -> (Request, Control) {
        let mut c = Control::new(config());
        assert_eq!(c.handle_input(bytes), Ok(bytes.len()));
        let Some(Event::Request(r)) = c.poll_event() else {
            panic!("no request")
        };
        (r, c)
    }

    fn output(c: &mut Control) -> heapless::Vec<u8, 4096> {
        let mut buf = [0u8; 4096];
        let n = c.poll_output(&mut buf);
        heapless::Vec::from_slice(&buf[..n]).unwrap()
    }

    #[test]
    fn exact_request_bytes() {
        assert_eq!(
            &write(&ask(Dialect::Twisted))[..],
            b"{\"daddr\": \"node1.example.org\", \"dport\": 5901, \"password\": \"Ab3dE6gH\", \"ws\": true, \"tls\": false}\n"
        );
        let a = Ask {
            preferred_port: Some(7000),
            timeout_secs: Some(30),
            transport: Transport::AUTO,
            password: Some("a\"b\\c\n\u{1}\u{e9}"),
            ..ask(Dialect::Twisted)
        };
        assert_eq!(
            &write(&a)[..],
            "{\"daddr\": \"node1.example.org\", \"dport\": 5901, \"password\": \"a\\\"b\\\\c\\n\\u0001\u{e9}\", \"sport\": 7000, \"timeout\": 30}\n".as_bytes()
        );
        assert_eq!(
            &write(&ask(Dialect::Snf))[..],
            &b"{\"source_port\": 0, \"destination_address\": \"node1.example.org\", \"destination_port\": 5901, \"password\": \"Ab3dE6gH\", \"type\": \"vnc-ws\"}\n"[..]
        );
        let a = Ask {
            password: None,
            transport: Transport::WEBSOCKET_TLS,
            preferred_port: Some(6000),
            timeout_secs: Some(5),
            ..ask(Dialect::Snf)
        };
        assert_eq!(
            &write(&a)[..],
            &b"{\"source_port\": 6000, \"destination_address\": \"node1.example.org\", \"destination_port\": 5901, \"type\": \"vnc-wss\", \"timeout\": 5}\n"[..]
        );
    }

    #[test]
    fn what_a_dialect_cannot_say() {
        let mut buf = [0u8; 512];
        let a = Ask {
            password: None,
            ..ask(Dialect::Twisted)
        };
        assert_eq!(
            write_request(&a, &mut buf),
            Err(ClientError::GeneratedPasswordNeedsSnf)
        );
        for transport in [
            Transport::AUTO,
            Transport {
                tls: Need::Yes,
                websocket: Need::No,
            },
            Transport {
                tls: Need::Either,
                websocket: Need::Yes,
            },
        ] {
            let a = Ask {
                transport,
                ..ask(Dialect::Snf)
            };
            assert_eq!(
                write_request(&a, &mut buf),
                Err(ClientError::TransportNotExpressible)
            );
        }
        // Every buffer too small is an error, never a panic or a cut line.
        let full = write(&ask(Dialect::Snf));
        for n in 0..full.len() {
            assert_eq!(
                write_request(&ask(Dialect::Snf), &mut buf[..n]),
                Err(ClientError::BufferTooSmall)
            );
        }
        assert_eq!(
            write_request(&ask(Dialect::Snf), &mut buf[..full.len()]),
            Ok(full.len())
        );
    }

    #[test]
    fn requests_read_back_by_the_server() {
        for dialect in [Dialect::Twisted, Dialect::Snf] {
            let a = Ask {
                host: "h\u{e9}st\"\\",
                password: Some("p\"\\\u{7f}\t\u{1F600}"),
                preferred_port: Some(7001),
                timeout_secs: Some(u32::MAX),
                transport: Transport::PLAIN,
                ..ask(dialect)
            };
            let (r, _) = serve(&write(&a));
            assert_eq!(r.dialect, dialect);
            assert_eq!(r.host.as_str(), a.host);
            assert_eq!(r.port, a.port);
            assert_eq!(r.password.as_deref(), a.password);
            assert_eq!(r.transport, a.transport);
            assert_eq!(r.preferred_port, a.preferred_port);
            assert_eq!(r.timeout_ms, Some(u64::from(u32::MAX) * 1000));
        }
    }

    #[test]
    fn replies_from_the_server_side() {
        for dialect in [Dialect::Twisted, Dialect::Snf] {
            let (_, mut c) = serve(&write(&ask(dialect)));
            c.reply_ok(&Granted {
                port: 6080,
                password: Some("aB3dE6gH"),
                expires_in: Some(30),
                token: Some("00112233445566778899aabbccddeeff"),
                url_path: Some("websockify?token=00112233445566778899aabbccddeeff"),
            });
            let a = parse_reply(dialect, &output(&mut c)).unwrap();
            assert!(a.ok);
            assert_eq!(a.port, Some(6080));
            assert_eq!(a.reason, None);
            if dialect == Dialect::Snf {
                assert_eq!(a.password.as_deref(), Some("aB3dE6gH"));
                assert_eq!(a.proxy_address.as_deref(), Some("vnc.example.org"));
                assert_eq!(a.expires_in, Some(30));
                assert_eq!(a.token.as_deref(), Some("00112233445566778899aabbccddeeff"));
                assert_eq!(
                    a.url_path.as_deref(),
                    Some("websockify?token=00112233445566778899aabbccddeeff")
                );
            } else {
                // Dialect 1 has room for the port only.
                assert_eq!(
                    a,
                    Answer {
                        ok: true,
                        port: Some(6080),
                        ..Answer::default()
                    }
                );
            }

            let (_, mut c) = serve(&write(&ask(dialect)));
            c.reply_failed("no \"free\" port\nin the pool");
            let a = parse_reply(dialect, &output(&mut c)).unwrap();
            assert!(!a.ok);
            assert_eq!(a.port, None);
            assert_eq!(a.reason.as_deref(), Some("no \"free\" port in the pool"));
        }
    }

    #[test]
    fn twisted_replies() {
        let ok = |p| Answer {
            ok: true,
            port: Some(p),
            ..Answer::default()
        };
        let failed = |r: Option<&str>| Answer {
            ok: false,
            reason: r.map(|r| Reason::try_from(r).unwrap()),
            ..Answer::default()
        };
        let cases: &[(&[u8], Result<Answer, ClientError>)] = &[
            (b"7000\n", Ok(ok(7000))),
            (b"7000\r\n", Ok(ok(7000))),
            (b"7000", Ok(ok(7000))),
            (b"65535\n", Ok(ok(65535))),
            (b"00001\n", Ok(ok(1))),
            (b"FAILED\n", Ok(failed(None))),
            (b"FAILED\r\n", Ok(failed(None))),
            (b"FAILED", Ok(failed(None))),
            (b"FAILED  \n", Ok(failed(None))),
            (b"FAILED no free port\n", Ok(failed(Some("no free port")))),
            (b"FAILEDx\n", Ok(failed(Some("x")))),
            (b"FAIL\n", Ok(failed(None))),
            (b"FAILED a\x1b[2Jb\n", Ok(failed(Some("a [2Jb")))),
            (b"FAILED ok\xffjunk\n", Ok(failed(Some("ok")))),
            (b"0\n", Err(ClientError::PortOutOfRange)),
            (b"65536\n", Err(ClientError::PortOutOfRange)),
            (b"99999\n", Err(ClientError::PortOutOfRange)),
            (b"123456\n", Err(ClientError::NotAReply)),
            (b"-1\n", Err(ClientError::NotAReply)),
            (b"\n", Err(ClientError::NotAReply)),
            (b"", Err(ClientError::NotAReply)),
            (b"70 00\n", Err(ClientError::NotAReply)),
            (b"failed\n", Err(ClientError::NotAReply)),
            (b"{\"status\": \"OK\"}\n", Err(ClientError::NotAReply)),
            (b"7000\n7001\n", Err(ClientError::TrailingBytes)),
        ];
        for (reply, want) in cases {
            assert_eq!(
                parse_reply(Dialect::Twisted, reply),
                *want,
                "{:?}",
                core::str::from_utf8(reply)
            );
        }
        // A long reason is cut at a character boundary.
        let mut long: heapless::Vec<u8, 1024> = heapless::Vec::new();
        long.extend_from_slice(b"FAILED ").unwrap();
        for _ in 0..150 {
            long.extend_from_slice("\u{e9}".as_bytes()).unwrap();
        }
        let a = parse_reply(Dialect::Twisted, &long).unwrap();
        assert_eq!(a.reason.unwrap().len(), 200);
    }

    #[test]
    fn snf_replies() {
        // As snf-vncauthproxy writes them: json.dumps of a dict, no newline,
        // any key order.
        let a = parse_reply(
            Dialect::Snf,
            b"{\"source_port\": 25641, \"status\": \"OK\", \"proxy_address\": \"10.0.0.1\"}",
        )
        .unwrap();
        assert!(a.ok);
        assert_eq!(a.port, Some(25641));
        assert_eq!(a.proxy_address.as_deref(), Some("10.0.0.1"));
        // Other spacing, extra keys (nested too), null for absent.
        let a = parse_reply(
            Dialect::Snf,
            b"\r\n {\"extra\":[1,{\"a\":null}],\"status\":\"OK\",\"source_port\":7000.0,\"reason\":null,\"proxy_address\":\"\",\"password\":null}\r\n \n",
        )
        .unwrap();
        assert_eq!(
            a,
            Answer {
                ok: true,
                port: Some(7000),
                ..Answer::default()
            }
        );
        let a = parse_reply(
            Dialect::Snf,
            b"{\"status\": \"FAILED\", \"source_port\": 0}",
        )
        .unwrap();
        assert_eq!(a, Answer::default());
        let a = parse_reply(
            Dialect::Snf,
            b"{\"status\": \"FAILED\", \"reason\": \"a\\u001b[2J\\n\\u00e9\"}\n",
        )
        .unwrap();
        assert_eq!(a.reason.as_deref(), Some("a [2J \u{e9}"));
        assert_eq!(a.port, None);
    }

    #[test]
    fn snf_rejections() {
        use ClientError as E;
        let cases: &[(&[u8], ClientError)] = &[
            (b"", E::BadJson),
            (b"7000\n", E::BadJson),
            (b"FAILED\n", E::BadJson),
            (b"{\"status\": \"OK\", \"source_port\": 1", E::BadJson),
            (b"{\"status\": \"OK\", \"source_port\": 1,}", E::BadJson),
            (b"[1]", E::BadJson),
            (b"{\"a\": [[[[1]]]]}", E::NestedTooDeep),
            (b"{\"status\": \"OK\", \"source_port\": 1} x", E::TrailingBytes),
            (b"{\"status\": \"OK\", \"source_port\": 1}\n{}", E::TrailingBytes),
            (b"{\"source_port\": 1}", E::Missing(Key::Status)),
            (b"{\"status\": null, \"source_port\": 1}", E::Missing(Key::Status)),
            (b"{\"status\": \"OK\"}", E::Missing(Key::SourcePort)),
            (b"{\"status\": \"ok\", \"source_port\": 1}", E::BadStatus),
            (b"{\"status\": \"FAILED!\", \"source_port\": 1}", E::BadStatus),
            (b"{\"status\": 1, \"source_port\": 1}", E::WrongType(Key::Status)),
            (b"{\"status\": \"OK\", \"source_port\": 0}", E::PortOutOfRange),
            (b"{\"status\": \"OK\", \"source_port\": 65536}", E::PortOutOfRange),
            (b"{\"status\": \"OK\", \"source_port\": -1}", E::PortOutOfRange),
            (b"{\"status\": \"OK\", \"source_port\": 1.5}", E::WrongType(Key::SourcePort)),
            (b"{\"status\": \"OK\", \"source_port\": \"1\"}", E::WrongType(Key::SourcePort)),
            (b"{\"status\": \"OK\", \"source_port\": 1, \"expires_in\": -1}", E::WrongType(Key::ExpiresIn)),
            (b"{\"status\": \"OK\", \"source_port\": 1, \"expires_in\": 99999999999999999999}", E::WrongType(Key::ExpiresIn)),
            (b"{\"status\": \"OK\", \"source_port\": 1, \"token\": \"00112233445566778899aabbccddeeff0\"}", E::TooLong(Key::Token)),
            (b"{\"status\": \"OK\", \"source_port\": 1, \"password\": true}", E::WrongType(Key::Password)),
            (b"{\"status\": \"OK\", \"status\": \"OK\", \"source_port\": 1}", E::Duplicate(Key::Status)),
            (b"{\"status\": \"OK\", \"source_port\": 1, \"reason\": \"\\ud83d\\ude00\"}", E::BadString),
            (b"{\"status\": \"OK\", \"source_port\": 1, \"x\": \"\xff\"}", E::BadString),
        ];
        for (reply, want) in cases {
            assert_eq!(
                parse_reply(Dialect::Snf, reply),
                Err(*want),
                "{:?}",
                core::str::from_utf8(reply)
            );
        }
        assert_eq!(
            parse_reply(Dialect::Snf, &[b' '; MAX_INPUT + 1]),
            Err(E::ReplyTooLong)
        );
    }

    #[test]
    fn debug_never_shows_secrets() {
        use core::fmt::Write;
        let a = parse_reply(
            Dialect::Snf,
            b"{\"status\": \"OK\", \"source_port\": 1, \"password\": \"sekrit12\", \"token\": \"deadbeef\", \"url_path\": \"websockify?token=deadbeef\"}",
        )
        .unwrap();
        let mut s: heapless::String<1024> = heapless::String::new();
        write!(s, "{a:?} {:?}", ask(Dialect::Twisted)).unwrap();
        assert!(
            !s.contains("sekrit12") && !s.contains("deadbeef") && !s.contains("Ab3dE6gH"),
            "{s}"
        );
    }

    #[test]
    fn reasons_are_specific() {
        assert_eq!(
            ClientError::Missing(Key::SourcePort).reason(),
            "reply lacks source_port"
        );
        assert_eq!(
            ClientError::TooLong(Key::Token).reason(),
            "value too long for token in reply"
        );
    }
}
