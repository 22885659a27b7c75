//! One control request as a typed value, and the JSON parse that makes it.
//!
//! What it is: the two request dialects of DESIGN.md "The control channel"
//! (twisted-vncauthproxy as sent by Ganeti Web Manager, and snf-vncauthproxy),
//! parsed with `serde-json-core` into fixed-capacity storage, then checked
//! field by field. What it is not: line framing (see `mod.rs`) or the reply
//! (see `reply.rs`).
//!
//! Decisions, each with its reason:
//! - **Dialects are told apart by their keys.** Keys only dialect 1 has:
//!   `daddr dport sport ws tls client`; only dialect 2: `source_port
//!   destination_address destination_port type auth_user auth_password`;
//!   both: `password timeout`. A request with keys of both is
//!   [`Error::MixedDialect`]; one with neither is [`Error::UnknownDialect`].
//! - **Unknown extra keys are ignored.** Both reference daemons read a Python
//!   dict and ignored what they did not look up; a stricter proxy would break
//!   clients that add a key, and the mixing rule already catches the
//!   dangerous confusion. Their values must still be well-formed JSON.
//! - **`null` is the same as an absent key** (Python's `d.get(key)`).
//! - **Numbers are JSON numbers.** A port must be integral (`5900` or
//!   `5900.0`); a string `"5900"` is [`Error::WrongType`]. `timeout` is
//!   seconds, fractional allowed, rounded down to milliseconds.
//! - **String escapes** (`\"`, `\\`, `\/`, `\n`, `\u00e9`, ...) are unescaped
//!   by `serde-json-core` into a [`UNESCAPE_CAP`]-byte stack buffer and then
//!   copied into the field's storage. Without that buffer `serde-json-core`
//!   hands out the raw escaped text (so `a\"b` would stay 4 bytes); with it,
//!   an escaped string arrives through `visit_str`, never borrowed, which is
//!   why every field is an owned `heapless::String`. A `\u` escape of a UTF-16
//!   surrogate (`\ud83d\ude00`, how Python's `json.dumps` writes characters
//!   outside the BMP) is rejected as [`Error::BadString`]: `serde-json-core`
//!   does not join surrogate pairs. Raw UTF-8 is accepted as is.
//! - **Passwords longer than 8 bytes are accepted** (GWM sends 12
//!   characters); VNC authentication uses the first 8 (RFC 6143 §7.2.2), as
//!   viewers do. Up to [`PASSWORD_CAP`] bytes are kept.
//! - **Nesting is limited** before `serde-json-core` sees the text (the
//!   framer in `mod.rs` rejects depth over [`MAX_DEPTH`]), because skipping an
//!   unknown value recurses once per level.

use core::cell::Cell;
use core::fmt;
use core::net::IpAddr;

use heapless::String;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::Error;

/// Capacity of a backend host name or address (`daddr`,
/// `destination_address`): 255 bytes, the DNS maximum.
pub const HOST_CAP: usize = 255;
/// Capacity of a password (`password`, `client.password`, `auth_password`).
pub const PASSWORD_CAP: usize = 64;
/// Capacity of `auth_user`.
pub const USER_CAP: usize = 64;
/// Size of the scratch buffer escaped strings are unescaped into; an escaped
/// string longer than this once unescaped is rejected.
pub const UNESCAPE_CAP: usize = 256;
/// Deepest nesting of `{`/`[` accepted in a request (the schema needs 2).
pub const MAX_DEPTH: usize = 4;

/// A backend host name or address.
pub type Host = String<HOST_CAP>;
/// A password as sent in a request.
pub type Password = String<PASSWORD_CAP>;
/// An snf `auth_user`.
pub type User = String<USER_CAP>;

/// Which control dialect a request (and so its reply) speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// Dialect 1: twisted-vncauthproxy, as sent by Ganeti Web Manager.
    /// Reply: the port in decimal, or `FAILED <reason>`, then `\n`.
    Twisted,
    /// Dialect 2: snf-vncauthproxy (Synnefo). Reply: one JSON object.
    Snf,
}

/// Whether an entry point requires, forbids or accepts (by sniffing) a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Need {
    /// The layer must not be there.
    No,
    /// The layer must be there.
    Yes,
    /// Sniff: accept the connection with or without it.
    Either,
}

/// Which layers a viewer may use on the entry point.
///
/// Dialect 1: `ws` and `tls` booleans map to [`Need::Yes`]/[`Need::No`]; an
/// absent key is [`Need::Either`] (the entry point sniffs, as later
/// twisted-vncauthproxy did). Dialect 2: `type` `vnc` (the default, what snf
/// served before `type` existed) is plain RFB, `vnc-ws` WebSocket over TCP,
/// `vnc-wss` WebSocket over TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Transport {
    /// TLS around the connection.
    pub tls: Need,
    /// WebSocket (RFC 6455) carrying RFB.
    pub websocket: Need,
}

impl Transport {
    /// Anything the entry point can sniff.
    pub const AUTO: Transport = Transport {
        tls: Need::Either,
        websocket: Need::Either,
    };
    /// Native RFB over TCP only.
    pub const PLAIN: Transport = Transport {
        tls: Need::No,
        websocket: Need::No,
    };
    /// WebSocket over TCP only.
    pub const WEBSOCKET: Transport = Transport {
        tls: Need::No,
        websocket: Need::Yes,
    };
    /// WebSocket over TLS only.
    pub const WEBSOCKET_TLS: Transport = Transport {
        tls: Need::Yes,
        websocket: Need::Yes,
    };

    /// Whether a viewer that arrived with (or without) TLS and WebSocket, as
    /// the entry point sniffed it, may use this console.
    pub const fn allows(&self, tls: bool, websocket: bool) -> bool {
        self.tls.allows(tls) && self.websocket.allows(websocket)
    }

    /// [`Transport::allows`], with the reason to tell a viewer that may not.
    pub const fn check(&self, tls: bool, websocket: bool) -> Result<(), &'static str> {
        if !self.tls.allows(tls) {
            Err(if tls {
                "this console is not offered over TLS"
            } else {
                "this console is offered over TLS only"
            })
        } else if !self.websocket.allows(websocket) {
            Err(if websocket {
                "this console is not offered over WebSocket"
            } else {
                "this console is offered over WebSocket only"
            })
        } else {
            Ok(())
        }
    }
}

impl Need {
    /// Whether a layer that is (or is not) there satisfies this need.
    pub const fn allows(self, present: bool) -> bool {
        match self {
            Need::No => !present,
            Need::Yes => present,
            Need::Either => true,
        }
    }
}

/// A parsed, checked control request. Its `Debug` shows no password.
#[derive(Clone, PartialEq, Eq)]
pub struct Request {
    /// The dialect it came in (and its reply goes out in).
    pub dialect: Dialect,
    /// Backend VNC server host (`daddr` / `destination_address`), not empty.
    pub host: Host,
    /// Backend VNC server port (`dport` / `destination_port`), 1..=65535.
    pub port: u16,
    /// `password`. Always there in dialect 1; `None` in dialect 2 means
    /// "generate one" (extension).
    pub password: Option<Password>,
    /// Dialect 1 `client.password`: what the viewer must present instead of
    /// `password`.
    pub client_password: Option<Password>,
    /// Dialect 1 `client.ip`: the only address the viewer may come from.
    pub client_ip: Option<IpAddr>,
    /// Preferred entry port (`sport` / `source_port`); `None` (or 0 on the
    /// wire) means "pick one".
    pub preferred_port: Option<u16>,
    /// Which layers the viewer may use.
    pub transport: Transport,
    /// How long the ticket lives, in milliseconds (`timeout`, seconds on the
    /// wire); `None` means the configured default. Never over the configured
    /// maximum, never 0.
    pub timeout_ms: Option<u64>,
    /// snf `auth_user`, carried for a driver that authenticates control
    /// clients; the core does not check it.
    pub auth_user: Option<User>,
    /// snf `auth_password`, carried like `auth_user`.
    pub auth_password: Option<Password>,
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redact = |p: &Option<Password>| p.as_ref().map(|_| "<redacted>");
        f.debug_struct("Request")
            .field("dialect", &self.dialect)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("password", &redact(&self.password))
            .field("client_password", &redact(&self.client_password))
            .field("client_ip", &self.client_ip)
            .field("preferred_port", &self.preferred_port)
            .field("transport", &self.transport)
            .field("timeout_ms", &self.timeout_ms)
            .field("auth_user", &self.auth_user)
            .field("auth_password", &redact(&self.auth_password))
            .finish()
    }
}

impl Request {
    /// The password the viewer must present, or `None` when the proxy must
    /// generate one (dialect 2 without `password`).
    ///
    /// Dialect 1: `client.password` when given, else `password`. Dialect 2:
    /// `password`. (DESIGN.md, "Which password goes where".)
    pub fn viewer_password(&self) -> Option<&str> {
        match self.dialect {
            Dialect::Twisted => self.client_password.as_deref().or(self.password.as_deref()),
            Dialect::Snf => self.password.as_deref(),
        }
    }

    /// The password to give a backend that asks for VNC authentication.
    ///
    /// `cluster` is the configured backend password (`--backend-password-file`),
    /// if any. Dialect 1: `cluster` when configured, else `password` (one
    /// password for both sides, as twisted-vncauthproxy did). Dialect 2:
    /// `cluster` only (snf reached backends without authentication).
    pub fn backend_password<'a>(&'a self, cluster: Option<&'a [u8]>) -> Option<&'a [u8]> {
        match self.dialect {
            Dialect::Twisted => cluster.or(self.password.as_deref().map(str::as_bytes)),
            Dialect::Snf => cluster,
        }
    }
}

macro_rules! fields {
    ($($variant:ident => $name:literal, $mask:ident;)*) => {
        /// A key of a control request, named as on the wire.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Field {
            $(
                #[doc = concat!("`", $name, "`")]
                $variant,
            )*
        }

        impl Field {
            /// The key as on the wire (`client.ip` for the nested ones).
            pub const fn name(self) -> &'static str {
                match self { $(Field::$variant => $name,)* }
            }
            pub(crate) const fn missing(self) -> &'static str {
                match self { $(Field::$variant => concat!("missing field ", $name),)* }
            }
            pub(crate) const fn wrong_type(self) -> &'static str {
                match self { $(Field::$variant => concat!("wrong type for ", $name),)* }
            }
            pub(crate) const fn too_long(self) -> &'static str {
                match self { $(Field::$variant => concat!("value too long for ", $name),)* }
            }
            pub(crate) const fn duplicate(self) -> &'static str {
                match self { $(Field::$variant => concat!("duplicate key ", $name),)* }
            }
            pub(crate) const fn empty(self) -> &'static str {
                match self { $(Field::$variant => concat!("empty ", $name),)* }
            }
            pub(crate) const fn out_of_range(self) -> &'static str {
                match self { $(Field::$variant => concat!("port out of range for ", $name),)* }
            }
            pub(crate) const fn bad_host(self) -> &'static str {
                match self { $(Field::$variant => concat!("not a host name: ", $name),)* }
            }
            const fn bit(self) -> u32 {
                1 << (self as u32)
            }
            const fn dialect_mask(self) -> u32 {
                match self { $(Field::$variant => $mask,)* }
            }
        }
    };
}

const BOTH: u32 = 0;
const TWISTED: u32 = 1;
const SNF: u32 = 2;
const NESTED: u32 = 0;

fields! {
    Daddr => "daddr", TWISTED;
    Dport => "dport", TWISTED;
    Password => "password", BOTH;
    Sport => "sport", TWISTED;
    Ws => "ws", TWISTED;
    Tls => "tls", TWISTED;
    Timeout => "timeout", BOTH;
    Client => "client", TWISTED;
    ClientIp => "client.ip", NESTED;
    ClientPassword => "client.password", NESTED;
    SourcePort => "source_port", SNF;
    DestinationAddress => "destination_address", SNF;
    DestinationPort => "destination_port", SNF;
    Type => "type", SNF;
    AuthUser => "auth_user", SNF;
    AuthPassword => "auth_password", SNF;
}

impl Field {
    fn top_level(key: &str) -> Option<Field> {
        Some(match key {
            "daddr" => Field::Daddr,
            "dport" => Field::Dport,
            "password" => Field::Password,
            "sport" => Field::Sport,
            "ws" => Field::Ws,
            "tls" => Field::Tls,
            "timeout" => Field::Timeout,
            "client" => Field::Client,
            "source_port" => Field::SourcePort,
            "destination_address" => Field::DestinationAddress,
            "destination_port" => Field::DestinationPort,
            "type" => Field::Type,
            "auth_user" => Field::AuthUser,
            "auth_password" => Field::AuthPassword,
            _ => return None,
        })
    }

    fn in_client(key: &str) -> Option<Field> {
        match key {
            "ip" => Some(Field::ClientIp),
            "password" => Some(Field::ClientPassword),
            _ => None,
        }
    }
}

/// Values as they came, before the checks.
#[derive(Default)]
struct Raw {
    daddr: Option<Host>,
    dport: Option<f64>,
    password: Option<Password>,
    sport: Option<f64>,
    ws: Option<bool>,
    tls: Option<bool>,
    timeout: Option<f64>,
    client_ip: Option<String<64>>,
    client_password: Option<Password>,
    source_port: Option<f64>,
    destination_address: Option<Host>,
    destination_port: Option<f64>,
    kind: Option<String<16>>,
    auth_user: Option<User>,
    auth_password: Option<Password>,
}

/// What the parse saw, kept outside serde's error type (which cannot carry a
/// field name without allocation).
#[derive(Default)]
struct Track {
    /// The key whose value is being parsed.
    current: Cell<Option<Field>>,
    /// A problem found by our own visitors (wins over serde's error).
    problem: Cell<Option<Error>>,
    /// Keys seen so far (bits of [`Field::bit`]), also for duplicates.
    seen: Cell<u32>,
}

impl Track {
    fn fail<E: de::Error>(&self, e: Error) -> E {
        self.problem.set(Some(e));
        E::custom("")
    }

    /// The dialect the keys seen so far point to (for the failure reply).
    fn dialect_hint(&self) -> Dialect {
        dialect_of(self.seen.get()).unwrap_or(Dialect::Twisted)
    }
}

fn dialect_of(seen: u32) -> Option<Dialect> {
    let mut twisted = false;
    let mut snf = false;
    for f in ALL {
        if seen & f.bit() != 0 {
            match f.dialect_mask() {
                TWISTED => twisted = true,
                SNF => snf = true,
                _ => {}
            }
        }
    }
    match (twisted, snf) {
        (true, false) => Some(Dialect::Twisted),
        (false, true) => Some(Dialect::Snf),
        _ => None,
    }
}

const ALL: [Field; 16] = [
    Field::Daddr,
    Field::Dport,
    Field::Password,
    Field::Sport,
    Field::Ws,
    Field::Tls,
    Field::Timeout,
    Field::Client,
    Field::ClientIp,
    Field::ClientPassword,
    Field::SourcePort,
    Field::DestinationAddress,
    Field::DestinationPort,
    Field::Type,
    Field::AuthUser,
    Field::AuthPassword,
];

/// Parses one request from `json` (the request without its line end).
///
/// On error, also returns the dialect the reply should use: the one the keys
/// seen before the error point to, else dialect 1.
pub(crate) fn parse(json: &[u8], max_timeout_ms: u64) -> Result<Request, (Error, Dialect)> {
    let track = Track::default();
    let raw = parse_raw(json, &track).map_err(|e| (e, track.dialect_hint()))?;
    check(raw, track.seen.get(), max_timeout_ms).map_err(|e| (e, track.dialect_hint()))
}

fn parse_raw(json: &[u8], track: &Track) -> Result<Raw, Error> {
    use serde_json_core::de::Error as J;
    let mut scratch = [0u8; UNESCAPE_CAP];
    let mut de = serde_json_core::de::Deserializer::new(json, Some(&mut scratch));
    let result = RequestSeed(track)
        .deserialize(&mut de)
        .and_then(|raw| de.end().map(|_| raw));
    result.map_err(|e| {
        if let Some(problem) = track.problem.get() {
            return problem;
        }
        match (e, track.current.get()) {
            (J::InvalidType | J::InvalidNumber, Some(f)) => Error::WrongType(f),
            (J::EscapedStringIsTooLong, Some(f)) => Error::TooLong(f),
            (
                J::InvalidUnicodeCodePoint | J::InvalidEscapeSequence | J::EscapedStringIsTooLong,
                _,
            ) => Error::BadString,
            _ => Error::NotJson,
        }
    })
}

struct RequestSeed<'t>(&'t Track);

impl<'de> DeserializeSeed<'de> for RequestSeed<'_> {
    type Value = Raw;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RequestSeed<'_> {
    type Value = Raw;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a control request object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        let t = self.0;
        let mut raw = Raw::default();
        while let Some(key) = map.next_key_seed(KeySeed(Field::top_level))? {
            let Some(field) = key else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            if t.seen.get() & field.bit() != 0 {
                return Err(t.fail(Error::Duplicate(field)));
            }
            t.seen.set(t.seen.get() | field.bit());
            t.current.set(Some(field));
            match field {
                Field::Daddr => raw.daddr = map.next_value_seed(Opt(Str(t)))?,
                Field::Dport => raw.dport = map.next_value_seed(Opt(Num))?,
                Field::Password => raw.password = map.next_value_seed(Opt(Str(t)))?,
                Field::Sport => raw.sport = map.next_value_seed(Opt(Num))?,
                Field::Ws => raw.ws = map.next_value_seed(Opt(Bool))?,
                Field::Tls => raw.tls = map.next_value_seed(Opt(Bool))?,
                Field::Timeout => raw.timeout = map.next_value_seed(Opt(Num))?,
                Field::Client => {
                    if let Some((ip, pw)) = map.next_value_seed(Opt(ClientSeed(t)))? {
                        raw.client_ip = ip;
                        raw.client_password = pw;
                    }
                }
                Field::SourcePort => raw.source_port = map.next_value_seed(Opt(Num))?,
                Field::DestinationAddress => {
                    raw.destination_address = map.next_value_seed(Opt(Str(t)))?
                }
                Field::DestinationPort => raw.destination_port = map.next_value_seed(Opt(Num))?,
                Field::Type => {
                    raw.kind =
                        map.next_value_seed(Opt(Str(t)))
                            .map_err(|e| match t.problem.get() {
                                Some(Error::TooLong(_)) => t.fail(Error::UnknownType),
                                _ => e,
                            })?
                }
                Field::AuthUser => raw.auth_user = map.next_value_seed(Opt(Str(t)))?,
                Field::AuthPassword => raw.auth_password = map.next_value_seed(Opt(Str(t)))?,
                Field::ClientIp | Field::ClientPassword => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            t.current.set(None);
        }
        Ok(raw)
    }
}

type ClientValue = (Option<String<64>>, Option<Password>);

struct ClientSeed<'t>(&'t Track);

impl<'de> DeserializeSeed<'de> for ClientSeed<'_> {
    type Value = ClientValue;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<ClientValue, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ClientSeed<'_> {
    type Value = ClientValue;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object {\"ip\", \"password\"}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ClientValue, A::Error> {
        let t = self.0;
        let mut ip = None;
        let mut pw = None;
        while let Some(key) = map.next_key_seed(KeySeed(Field::in_client))? {
            let Some(field) = key else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            if t.seen.get() & field.bit() != 0 {
                return Err(t.fail(Error::Duplicate(field)));
            }
            t.seen.set(t.seen.get() | field.bit());
            t.current.set(Some(field));
            if field == Field::ClientIp {
                ip = map
                    .next_value_seed(Opt(Str(t)))
                    .map_err(|e| match t.problem.get() {
                        Some(Error::TooLong(_)) => t.fail(Error::BadClientIp),
                        _ => e,
                    })?;
            } else {
                pw = map.next_value_seed(Opt(Str(t)))?;
            }
            t.current.set(Some(Field::Client));
        }
        Ok((ip, pw))
    }
}

/// A key: known (`Some(field)`) or to be skipped (`None`).
struct KeySeed(fn(&str) -> Option<Field>);

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Option<Field>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<Field>, D::Error> {
        d.deserialize_identifier(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Option<Field>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<Field>, E> {
        Ok((self.0)(v))
    }
}

/// `null` or the inner value (also used by [`super::client`]).
pub(super) struct Opt<S>(pub(super) S);

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Opt<S> {
    type Value = Option<S::Value>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de, S: DeserializeSeed<'de>> Visitor<'de> for Opt<S> {
    type Value = Option<S::Value>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a value or null")
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.0.deserialize(d).map(Some)
    }
}

/// A string copied into `String<N>`; longer is [`Error::TooLong`].
struct Str<'t, const N: usize>(&'t Track);

impl<'de, const N: usize> DeserializeSeed<'de> for Str<'_, N> {
    type Value = String<N>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String<N>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de, const N: usize> Visitor<'de> for Str<'_, N> {
    type Value = String<N>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String<N>, E> {
        let mut s = String::new();
        if s.push_str(v).is_err() {
            let field = self.0.current.get().unwrap_or(Field::Password);
            return Err(self.0.fail(Error::TooLong(field)));
        }
        Ok(s)
    }
}

/// A JSON number, as `f64` (integral checks come later). Also read by
/// [`super::client`] for reply numbers.
pub(super) struct Num;

impl<'de> DeserializeSeed<'de> for Num {
    type Value = f64;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<f64, D::Error> {
        d.deserialize_f64(self)
    }
}

impl<'de> Visitor<'de> for Num {
    type Value = f64;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number")
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
        Ok(v)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
        Ok(v as f64)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
        Ok(v as f64)
    }
}

/// `true` or `false`.
struct Bool;

impl<'de> DeserializeSeed<'de> for Bool {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_bool(self)
    }
}

impl<'de> Visitor<'de> for Bool {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a boolean")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
        Ok(v)
    }
}

/// The checks after the JSON parse.
fn check(raw: Raw, seen: u32, max_timeout_ms: u64) -> Result<Request, Error> {
    let twisted = seen & (TWISTED_KEYS) != 0;
    let snf = seen & (SNF_KEYS) != 0;
    let dialect = match (twisted, snf) {
        (true, true) => return Err(Error::MixedDialect),
        (false, false) => return Err(Error::UnknownDialect),
        (true, false) => Dialect::Twisted,
        (false, true) => Dialect::Snf,
    };
    let timeout_ms = match raw.timeout {
        None => None,
        Some(s) => Some(timeout(s, max_timeout_ms)?),
    };
    let password = match raw.password {
        Some(p) if p.is_empty() => return Err(Error::Empty(Field::Password)),
        p => p,
    };
    match dialect {
        Dialect::Twisted => {
            let host = host(raw.daddr, Field::Daddr)?;
            let port = backend_port(raw.dport, Field::Dport)?;
            if password.is_none() {
                return Err(Error::MissingField(Field::Password));
            }
            let preferred_port = entry_port(raw.sport, Field::Sport)?;
            let client_password = match raw.client_password {
                Some(p) if p.is_empty() => return Err(Error::Empty(Field::ClientPassword)),
                p => p,
            };
            let client_ip = match raw.client_ip {
                None => None,
                Some(s) => Some(s.parse::<IpAddr>().map_err(|_| Error::BadClientIp)?),
            };
            let need = |b: Option<bool>| match b {
                None => Need::Either,
                Some(true) => Need::Yes,
                Some(false) => Need::No,
            };
            Ok(Request {
                dialect,
                host,
                port,
                password,
                client_password,
                client_ip,
                preferred_port,
                transport: Transport {
                    tls: need(raw.tls),
                    websocket: need(raw.ws),
                },
                timeout_ms,
                auth_user: None,
                auth_password: None,
            })
        }
        Dialect::Snf => {
            let host = host(raw.destination_address, Field::DestinationAddress)?;
            let port = backend_port(raw.destination_port, Field::DestinationPort)?;
            let preferred_port = entry_port(raw.source_port, Field::SourcePort)?;
            let transport = match raw.kind.as_deref() {
                None | Some("vnc") => Transport::PLAIN,
                Some("vnc-ws") => Transport::WEBSOCKET,
                Some("vnc-wss") => Transport::WEBSOCKET_TLS,
                Some(_) => return Err(Error::UnknownType),
            };
            Ok(Request {
                dialect,
                host,
                port,
                password,
                client_password: None,
                client_ip: None,
                preferred_port,
                transport,
                timeout_ms,
                auth_user: raw.auth_user,
                auth_password: raw.auth_password,
            })
        }
    }
}

const TWISTED_KEYS: u32 = Field::Daddr.bit()
    | Field::Dport.bit()
    | Field::Sport.bit()
    | Field::Ws.bit()
    | Field::Tls.bit()
    | Field::Client.bit();
const SNF_KEYS: u32 = Field::SourcePort.bit()
    | Field::DestinationAddress.bit()
    | Field::DestinationPort.bit()
    | Field::Type.bit()
    | Field::AuthUser.bit()
    | Field::AuthPassword.bit();

fn host(v: Option<Host>, field: Field) -> Result<Host, Error> {
    let h = v.ok_or(Error::MissingField(field))?;
    if h.is_empty() {
        return Err(Error::Empty(field));
    }
    // A host name or address literal never holds whitespace or control
    // characters; refusing them keeps them out of logs and resolvers.
    if h.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::BadHost(field));
    }
    Ok(h)
}

/// An integral JSON number in `0..=65535`, else the right error.
fn port_number(v: f64, field: Field) -> Result<u16, Error> {
    if !(0.0..=65535.0).contains(&v) {
        // Negative, too large, or NaN/infinite.
        return Err(Error::PortOutOfRange(field));
    }
    let p = v as u16;
    if f64::from(p) != v {
        return Err(Error::WrongType(field));
    }
    Ok(p)
}

fn backend_port(v: Option<f64>, field: Field) -> Result<u16, Error> {
    match port_number(v.ok_or(Error::MissingField(field))?, field)? {
        0 => Err(Error::PortOutOfRange(field)),
        p => Ok(p),
    }
}

fn entry_port(v: Option<f64>, field: Field) -> Result<Option<u16>, Error> {
    match v {
        None => Ok(None),
        Some(v) => match port_number(v, field)? {
            0 => Ok(None),
            p => Ok(Some(p)),
        },
    }
}

fn timeout(seconds: f64, max_ms: u64) -> Result<u64, Error> {
    if seconds.is_nan() || seconds <= 0.0 || seconds.is_infinite() {
        return Err(Error::BadTimeout);
    }
    let ms = seconds * 1000.0;
    if ms > max_ms as f64 {
        return Err(Error::TimeoutTooLong);
    }
    // Float to int casts saturate; `ms` is within u64 here.
    match ms as u64 {
        0 => Err(Error::BadTimeout),
        ms => Ok(ms),
    }
}
