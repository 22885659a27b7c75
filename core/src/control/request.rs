//! One control request as a typed value ([`Request`]): its parse from JSON
//! and its emit back to JSON, in one place.
//!
//! What it is: the two console dialects of DESIGN.md "The control channel"
//! (twisted-vncauthproxy as sent by Ganeti Web Manager, and
//! snf-vncauthproxy), and the operator actions of issue 13 (`{"action":
//! "list"}`, `{"action": "kill", "id": N}` or `{"action": "kill",
//! "backend": "HOST:PORT"}`, `{"action": "stats"}`), read with the
//! control channel's own JSON reader ([`super::json`]) into fixed-capacity
//! storage and checked field by field; every key is named once, in the
//! [`Field`] table, which both the parse and the emit use. What it is not:
//! line framing (see `mod.rs`) or the reply (see `reply.rs`).
//!
//! Decisions, each with its reason:
//! - **Requests are told apart by their keys.** Keys only dialect 1 has:
//!   `daddr dport sport ws tls client`; only dialect 2: `source_port
//!   destination_address destination_port type auth_user auth_password`;
//!   both: `password timeout`; actions: `action id backend`. A request
//!   with keys of both dialects is [`Error::MixedDialect`]; an action with
//!   any console key is [`Error::MixedAction`]; one with none of them is
//!   [`Error::UnknownDialect`].
//! - **Credentials go with a console or an action.** snf's `auth_user` and
//!   `auth_password` ([`Auth`]) mark a console as dialect 2 (so a GWM
//!   request carrying them is [`Error::MixedDialect`]), and an action may
//!   carry them too (`{"action": "list", "auth_user": ..}`), for a driver
//!   that authenticates its control clients (`--control-users`); the core
//!   parses them and never checks them.
//! - **Unknown extra keys are ignored.** Both reference daemons read a Python
//!   dict and ignored what they did not look up; a stricter proxy would break
//!   clients that add a key, and the mixing rules already catch the
//!   dangerous confusion. Their values must still be well-formed JSON.
//! - **`null` is the same as an absent key** (Python's `d.get(key)`).
//! - **Numbers are JSON numbers.** A port must be integral (`5900` or
//!   `5900.0`); a string `"5900"` is [`Error::WrongType`]. `timeout` is
//!   seconds, fractional allowed, rounded down to milliseconds. A `kill`
//!   `id` is a non-negative integer written as digits.
//! - **Strings** are unescaped by the reader (at most
//!   [`UNESCAPE_CAP`] bytes once unescaped when they hold escapes); a raw
//!   control character in a string, invalid UTF-8 and a `\u` surrogate
//!   escape are [`Error::BadString`].
//! - **Passwords longer than 8 bytes are accepted** (GWM sends 12
//!   characters); VNC authentication uses the first 8 (RFC 6143 §7.2.2), as
//!   viewers do. Up to [`PASSWORD_CAP`] bytes are kept. A password that
//!   starts with NUL (`"\u0000..."`) is [`Error::Empty`]: VNC pads the key
//!   with NULs and C viewers end it at the first, so it is the empty
//!   password.
//! - **Nesting is limited** before the reader sees the text (the framer in
//!   `mod.rs` rejects depth over [`MAX_DEPTH`]).

use core::net::IpAddr;

use heapless::String;

use super::client::ClientError;
use super::json::{self, Cursor, Reader, Sink, Value};
use super::reply::Form;
use super::Error;
use crate::secret::Secret;

pub use super::json::UNESCAPE_CAP;

/// Capacity of a backend host name or address (`daddr`,
/// `destination_address`): 255 bytes, the DNS maximum.
pub const HOST_CAP: usize = 255;
/// Capacity of a password (`password`, `client.password`, `auth_password`).
pub const PASSWORD_CAP: usize = 64;
/// Capacity of `auth_user`.
pub const USER_CAP: usize = 64;
/// Deepest nesting of `{`/`[` accepted in a request (the schema needs 2).
pub const MAX_DEPTH: usize = 4;

/// A backend host name or address.
pub type Host = String<HOST_CAP>;
/// A password as sent in a request.
pub type Password = Secret<PASSWORD_CAP>;
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

/// A parsed, checked control request.
// No allocation in the core: a request is fixed storage, its size the
// largest variant's (boxing the console would need the heap).
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// A console, in either dialect: issue a ticket, reply with its port.
    Console(Console),
    /// `{"action": "list"}`: the live sessions and pending tickets.
    List,
    /// `{"action": "kill", ...}`: end sessions and tickets.
    Kill(Kill),
    /// `{"action": "stats"}`: the counters.
    Stats,
}

/// What a `kill` names.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kill {
    /// `"id": N`: the session or ticket with this id (as `list` shows).
    Id(u64),
    /// `"backend": "HOST:PORT"`: every console and pending ticket of this
    /// backend (a VM that moved).
    Backend {
        /// The backend's host, as the console requests named it.
        host: Host,
        /// The backend's port.
        port: u16,
    },
}

/// A console request. Its `Debug` shows no password ([`Secret`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Console {
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
    /// clients; the core does not check it (also in [`Auth`], which actions
    /// carry too).
    pub auth_user: Option<User>,
    /// snf `auth_password`, carried like `auth_user`.
    pub auth_password: Option<Password>,
}

/// The control credentials a request carried (snf's `auth_user` and
/// `auth_password`), on a dialect-2 console or on an action; both `None`
/// when absent. Checking them is the driver's (`--control-users`). Its
/// `Debug` shows no password.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Auth {
    /// `auth_user`.
    pub user: Option<User>,
    /// `auth_password`.
    pub password: Option<Password>,
}

/// Control credentials to send with a request ([`Ask::emit_with`],
/// [`Request::emit_with`]): `auth_user` and `auth_password`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Credentials<'a> {
    /// `auth_user`.
    pub user: &'a str,
    /// `auth_password`.
    pub password: &'a str,
}

impl core::fmt::Debug for Credentials<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &crate::secret::REDACTED)
            .finish()
    }
}

impl Console {
    /// The password the viewer must present, or `None` when the proxy must
    /// generate one (dialect 2 without `password`).
    ///
    /// Dialect 1: `client.password` when given, else `password`. Dialect 2:
    /// `password`. (DESIGN.md, "Which password goes where".)
    pub fn viewer_password(&self) -> Option<&Password> {
        match self.dialect {
            Dialect::Twisted => self.client_password.as_ref().or(self.password.as_ref()),
            Dialect::Snf => self.password.as_ref(),
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
            Dialect::Twisted => cluster.or(self.password.as_ref().map(Password::as_bytes)),
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
            const fn group(self) -> u8 {
                match self { $(Field::$variant => $mask,)* }
            }
            const ALL: &'static [Field] = &[$(Field::$variant,)*];
        }
    };
}

const BOTH: u8 = 0;
const TWISTED: u8 = 1;
const SNF: u8 = 2;
const NESTED: u8 = 3;
const ACTION: u8 = 4;
/// `auth_user`, `auth_password`: snf's keys on a console, allowed on an
/// action.
const AUTH: u8 = 5;

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
    AuthUser => "auth_user", AUTH;
    AuthPassword => "auth_password", AUTH;
    Action => "action", ACTION;
    Id => "id", ACTION;
    Backend => "backend", ACTION;
}

/// The keys of `client`, as inside it.
const CLIENT_IP: &str = "ip";
const CLIENT_PASSWORD: &str = "password";

/// `type` values (dialect 2), and `action` values.
const TYPE_VNC: &str = "vnc";
const TYPE_VNC_WS: &str = "vnc-ws";
const TYPE_VNC_WSS: &str = "vnc-wss";
const ACTION_LIST: &str = "list";
const ACTION_KILL: &str = "kill";
const ACTION_STATS: &str = "stats";

impl Field {
    fn top_level(key: &str) -> Option<Field> {
        Field::ALL
            .iter()
            .copied()
            .find(|f| f.group() != NESTED && f.name() == key)
    }

    fn in_client(key: &str) -> Option<Field> {
        match key {
            CLIENT_IP => Some(Field::ClientIp),
            CLIENT_PASSWORD => Some(Field::ClientPassword),
            _ => None,
        }
    }

    fn mask(group: u8) -> u32 {
        Field::ALL
            .iter()
            .filter(|f| f.group() == group)
            .fold(0, |m, f| m | f.bit())
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
    action: Option<String<16>>,
    id: Option<u64>,
    backend: Option<String<{ HOST_CAP + 8 }>>,
}

/// The reply form the keys seen so far point to (for a failure reply).
fn form_of(seen: u32) -> Form {
    if seen & Field::mask(ACTION) != 0 {
        return Form::Action;
    }
    let twisted = seen & Field::mask(TWISTED) != 0;
    let snf = seen & (Field::mask(SNF) | Field::mask(AUTH)) != 0;
    match (twisted, snf) {
        (false, true) => Form::Snf,
        _ => Form::Twisted,
    }
}

/// Parses one request from `json` (the request without its line end).
///
/// On error, also returns the reply form to answer in: the one the keys
/// seen before the error point to, else dialect 1.
pub(crate) fn parse(json: &[u8], max_timeout_ms: u64) -> Result<(Request, Auth), (Error, Form)> {
    let mut raw = Raw::default();
    let mut seen = 0u32;
    read(json, &mut raw, &mut seen).map_err(|e| (e, form_of(seen)))?;
    let auth = Auth {
        user: raw.auth_user.clone(),
        password: raw.auth_password.clone(),
    };
    let req = check(raw, seen, max_timeout_ms).map_err(|e| (e, form_of(seen)))?;
    Ok((req, auth))
}

/// The request error for a JSON error, in the value of `field` if any.
fn json_error(e: json::Error, field: Option<Field>) -> Error {
    match (e, field) {
        (json::Error::Syntax, _) => Error::NotJson,
        (json::Error::TooDeep, _) => Error::NestedTooDeep,
        (json::Error::TooLong, Some(Field::Type)) => Error::UnknownType,
        (json::Error::TooLong, Some(Field::Action)) => Error::UnknownAction,
        (json::Error::TooLong, Some(Field::ClientIp)) => Error::BadClientIp,
        (json::Error::TooLong, Some(f)) => Error::TooLong(f),
        (json::Error::BadString | json::Error::TooLong, _) => Error::BadString,
    }
}

fn read(json: &[u8], raw: &mut Raw, seen: &mut u32) -> Result<(), Error> {
    let mut r = Reader::new(json);
    let syntax = |e| json_error(e, None);
    if r.value().map_err(syntax)? != Value::Object {
        return Err(Error::NotJson);
    }
    while let Some(key) = r.next_key().map_err(syntax)? {
        let Some(field) = Field::top_level(key) else {
            r.skip_value().map_err(syntax)?;
            continue;
        };
        mark(seen, field)?;
        read_field(&mut r, field, raw, seen)?;
    }
    r.end().map_err(syntax)
}

fn mark(seen: &mut u32, field: Field) -> Result<(), Error> {
    if *seen & field.bit() != 0 {
        return Err(Error::Duplicate(field));
    }
    *seen |= field.bit();
    Ok(())
}

/// A string value copied into `String<N>` (`None` for `null`); longer is
/// `too_long`.
fn text<const N: usize>(
    v: Value<'_>,
    field: Field,
    too_long: Error,
) -> Result<Option<String<N>>, Error> {
    match v {
        Value::Null => Ok(None),
        Value::Str(s) => {
            let mut out = String::new();
            out.push_str(s).map_err(|_| too_long)?;
            Ok(Some(out))
        }
        _ => Err(Error::WrongType(field)),
    }
}

fn secret(v: Value<'_>, field: Field) -> Result<Option<Password>, Error> {
    match v {
        Value::Null => Ok(None),
        Value::Str(s) => Password::from_str(s)
            .map(Some)
            .map_err(|_| Error::TooLong(field)),
        _ => Err(Error::WrongType(field)),
    }
}

fn number(v: Value<'_>, field: Field) -> Result<Option<f64>, Error> {
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => Ok(Some(n.f64())),
        _ => Err(Error::WrongType(field)),
    }
}

fn boolean(v: Value<'_>, field: Field) -> Result<Option<bool>, Error> {
    match v {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(b)),
        _ => Err(Error::WrongType(field)),
    }
}

fn read_field(
    r: &mut Reader<'_>,
    field: Field,
    raw: &mut Raw,
    seen: &mut u32,
) -> Result<(), Error> {
    let v = r.value().map_err(|e| json_error(e, Some(field)))?;
    let too_long = Error::TooLong(field);
    match field {
        Field::Daddr => raw.daddr = text(v, field, too_long)?,
        Field::Dport => raw.dport = number(v, field)?,
        Field::Password => raw.password = secret(v, field)?,
        Field::Sport => raw.sport = number(v, field)?,
        Field::Ws => raw.ws = boolean(v, field)?,
        Field::Tls => raw.tls = boolean(v, field)?,
        Field::Timeout => raw.timeout = number(v, field)?,
        Field::Client => match v {
            Value::Null => {}
            Value::Object => read_client(r, raw, seen)?,
            _ => return Err(Error::WrongType(field)),
        },
        Field::SourcePort => raw.source_port = number(v, field)?,
        Field::DestinationAddress => raw.destination_address = text(v, field, too_long)?,
        Field::DestinationPort => raw.destination_port = number(v, field)?,
        Field::Type => raw.kind = text(v, field, Error::UnknownType)?,
        Field::AuthUser => raw.auth_user = text(v, field, too_long)?,
        Field::AuthPassword => raw.auth_password = secret(v, field)?,
        Field::Action => raw.action = text(v, field, Error::UnknownAction)?,
        Field::Id => {
            raw.id = match v {
                Value::Null => None,
                Value::Number(n) => Some(n.u64().ok_or(Error::WrongType(field))?),
                _ => return Err(Error::WrongType(field)),
            }
        }
        Field::Backend => raw.backend = text(v, field, too_long)?,
        // Not top-level keys.
        Field::ClientIp | Field::ClientPassword => {
            if let Some(c) = v.container() {
                r.skip(c).map_err(|e| json_error(e, None))?;
            }
        }
    }
    Ok(())
}

/// The members of `client` (its `{` read).
fn read_client(r: &mut Reader<'_>, raw: &mut Raw, seen: &mut u32) -> Result<(), Error> {
    let syntax = |e| json_error(e, None);
    while let Some(key) = r.next_key().map_err(syntax)? {
        let Some(field) = Field::in_client(key) else {
            r.skip_value().map_err(syntax)?;
            continue;
        };
        mark(seen, field)?;
        let v = r.value().map_err(|e| json_error(e, Some(field)))?;
        if field == Field::ClientIp {
            raw.client_ip = text(v, field, Error::BadClientIp)?;
        } else {
            raw.client_password = secret(v, field)?;
        }
    }
    Ok(())
}

/// The checks after the JSON parse.
fn check(raw: Raw, seen: u32, max_timeout_ms: u64) -> Result<Request, Error> {
    let console_keys = Field::mask(TWISTED) | Field::mask(SNF) | Field::mask(BOTH);
    if seen & Field::mask(ACTION) != 0 {
        if seen & console_keys != 0 {
            return Err(Error::MixedAction);
        }
        return action(raw);
    }
    let twisted = seen & Field::mask(TWISTED) != 0;
    let snf = seen & (Field::mask(SNF) | Field::mask(AUTH)) != 0;
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
    let password = vnc_password(raw.password, Field::Password)?;
    let console = match dialect {
        Dialect::Twisted => {
            let host = host(raw.daddr, Field::Daddr)?;
            let port = backend_port(raw.dport, Field::Dport)?;
            if password.is_none() {
                return Err(Error::MissingField(Field::Password));
            }
            let preferred_port = entry_port(raw.sport, Field::Sport)?;
            let client_password = vnc_password(raw.client_password, Field::ClientPassword)?;
            let client_ip = match raw.client_ip {
                None => None,
                Some(s) => Some(s.parse::<IpAddr>().map_err(|_| Error::BadClientIp)?),
            };
            let need = |b: Option<bool>| match b {
                None => Need::Either,
                Some(true) => Need::Yes,
                Some(false) => Need::No,
            };
            Console {
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
            }
        }
        Dialect::Snf => {
            let host = host(raw.destination_address, Field::DestinationAddress)?;
            let port = backend_port(raw.destination_port, Field::DestinationPort)?;
            let preferred_port = entry_port(raw.source_port, Field::SourcePort)?;
            let transport = match raw.kind.as_deref() {
                None | Some(TYPE_VNC) => Transport::PLAIN,
                Some(TYPE_VNC_WS) => Transport::WEBSOCKET,
                Some(TYPE_VNC_WSS) => Transport::WEBSOCKET_TLS,
                Some(_) => return Err(Error::UnknownType),
            };
            Console {
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
            }
        }
    };
    Ok(Request::Console(console))
}

fn action(raw: Raw) -> Result<Request, Error> {
    match raw.action.as_deref() {
        None => Err(Error::MissingField(Field::Action)),
        Some(ACTION_LIST) => Ok(Request::List),
        Some(ACTION_STATS) => Ok(Request::Stats),
        Some(ACTION_KILL) => match (raw.id, raw.backend) {
            (Some(id), None) => Ok(Request::Kill(Kill::Id(id))),
            (None, Some(b)) => {
                let (host, port) = backend(&b)?;
                Ok(Request::Kill(Kill::Backend { host, port }))
            }
            _ => Err(Error::KillTarget),
        },
        Some(_) => Err(Error::UnknownAction),
    }
}

/// `HOST:PORT` (`[V6]:PORT` for an IPv6 address).
fn backend(s: &str) -> Result<(Host, u16), Error> {
    let (h, p) = s.rsplit_once(':').ok_or(Error::BadBackend)?;
    let h = match h.strip_prefix('[') {
        Some(v6) => v6.strip_suffix(']').ok_or(Error::BadBackend)?,
        None if h.contains(':') => return Err(Error::BadBackend),
        None => h,
    };
    let port = match p.parse::<u16>() {
        Ok(port) if port != 0 && p.bytes().all(|b| b.is_ascii_digit()) => port,
        _ => return Err(Error::BadBackend),
    };
    let mut host = Host::new();
    host.push_str(h)
        .map_err(|_| Error::TooLong(Field::Backend))?;
    Ok((self::host(Some(host), Field::Backend)?, port))
}

/// A viewer password: an empty one (or one that starts with NUL, empty to
/// VNC's NUL-padded key and to C viewers) is [`Error::Empty`].
fn vnc_password(p: Option<Password>, field: Field) -> Result<Option<Password>, Error> {
    match p {
        Some(p) if !matches!(p.as_bytes().first(), Some(&b) if b != 0) => Err(Error::Empty(field)),
        p => Ok(p),
    }
}

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

/// A console request to write (the client side's view of a [`Console`]).
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

impl core::fmt::Debug for Ask<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Ask")
            .field("dialect", &self.dialect)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("password", &self.password.map(|_| crate::secret::REDACTED))
            .field("transport", &self.transport)
            .field("preferred_port", &self.preferred_port)
            .field("timeout_secs", &self.timeout_secs)
            .finish()
    }
}

impl Ask<'_> {
    /// Writes the request line (a JSON object and `\n`) into `out`,
    /// strings JSON-escaped, keys in the reference clients' order (Python
    /// `json.dumps` spacing): dialect 1 `daddr`, `dport`, `password`, then
    /// `sport`, `ws`, `tls`, `timeout` when given; dialect 2 as snf's CLI
    /// does (`source_port` first, 0 for "pick one"). Returns the bytes
    /// written. Faithful, not a validator: it refuses only what the dialect
    /// cannot express.
    pub fn emit(&self, out: &mut [u8]) -> Result<usize, ClientError> {
        self.emit_with(None, out)
    }

    /// [`Ask::emit`] with control credentials (`auth_user`,
    /// `auth_password` after the other keys). Only dialect 2 carries them
    /// ([`ClientError::CredentialsNeedSnf`] in dialect 1).
    pub fn emit_with(
        &self,
        auth: Option<Credentials<'_>>,
        out: &mut [u8],
    ) -> Result<usize, ClientError> {
        let mut c = Cursor::new(out);
        match self.dialect {
            Dialect::Twisted if auth.is_some() => return Err(ClientError::CredentialsNeedSnf),
            Dialect::Twisted => {
                let password = self
                    .password
                    .ok_or(ClientError::GeneratedPasswordNeedsSnf)?;
                self.emit_twisted(&mut c, password)
            }
            Dialect::Snf => {
                let kind = match self.transport {
                    Transport::PLAIN => TYPE_VNC,
                    Transport::WEBSOCKET => TYPE_VNC_WS,
                    Transport::WEBSOCKET_TLS => TYPE_VNC_WSS,
                    _ => return Err(ClientError::TransportNotExpressible),
                };
                self.emit_snf(&mut c, kind, auth)
            }
        }
        .map_err(|_| ClientError::BufferTooSmall)?;
        Ok(c.len())
    }

    fn emit_twisted(&self, c: &mut impl Sink, password: &str) -> Result<(), json::Full> {
        c.put(b"{")?;
        json::key(c, true, Field::Daddr.name())?;
        json::string(c, self.host)?;
        json::key(c, false, Field::Dport.name())?;
        json::number(c, u64::from(self.port))?;
        json::key(c, false, Field::Password.name())?;
        json::string(c, password)?;
        if let Some(p) = self.preferred_port {
            json::key(c, false, Field::Sport.name())?;
            json::number(c, u64::from(p))?;
        }
        for (field, need) in [
            (Field::Ws, self.transport.websocket),
            (Field::Tls, self.transport.tls),
        ] {
            let value: &[u8] = match need {
                Need::Yes => b"true",
                Need::No => b"false",
                Need::Either => continue,
            };
            json::key(c, false, field.name())?;
            c.put(value)?;
        }
        self.emit_timeout(c)?;
        c.put(b"}\n")
    }

    fn emit_snf(
        &self,
        c: &mut impl Sink,
        kind: &str,
        auth: Option<Credentials<'_>>,
    ) -> Result<(), json::Full> {
        c.put(b"{")?;
        json::key(c, true, Field::SourcePort.name())?;
        json::number(c, u64::from(self.preferred_port.unwrap_or(0)))?;
        json::key(c, false, Field::DestinationAddress.name())?;
        json::string(c, self.host)?;
        json::key(c, false, Field::DestinationPort.name())?;
        json::number(c, u64::from(self.port))?;
        if let Some(p) = self.password {
            json::key(c, false, Field::Password.name())?;
            json::string(c, p)?;
        }
        json::key(c, false, Field::Type.name())?;
        json::string(c, kind)?;
        self.emit_timeout(c)?;
        emit_auth(c, auth)?;
        c.put(b"}\n")
    }

    fn emit_timeout(&self, c: &mut impl Sink) -> Result<(), json::Full> {
        match self.timeout_secs {
            Some(s) => {
                json::key(c, false, Field::Timeout.name())?;
                json::number(c, u64::from(s))
            }
            None => Ok(()),
        }
    }
}

/// `auth_user` and `auth_password`, when given.
fn emit_auth(c: &mut impl Sink, auth: Option<Credentials<'_>>) -> Result<(), json::Full> {
    if let Some(a) = auth {
        json::key(c, false, Field::AuthUser.name())?;
        json::string(c, a.user)?;
        json::key(c, false, Field::AuthPassword.name())?;
        json::string(c, a.password)?;
    }
    Ok(())
}

impl Request {
    /// Writes an action request line (`{"action": "list"}` and so on, then
    /// `\n`) into `out`; returns the bytes written. A console is written
    /// with [`Ask::emit`] ([`ClientError::NotAnAction`] here).
    pub fn emit(&self, out: &mut [u8]) -> Result<usize, ClientError> {
        self.emit_with(None, out)
    }

    /// [`Request::emit`] with control credentials (`auth_user`,
    /// `auth_password` after the action's keys).
    pub fn emit_with(
        &self,
        auth: Option<Credentials<'_>>,
        out: &mut [u8],
    ) -> Result<usize, ClientError> {
        let mut c = Cursor::new(out);
        let action = match self {
            Request::Console(_) => return Err(ClientError::NotAnAction),
            Request::List => ACTION_LIST,
            Request::Stats => ACTION_STATS,
            Request::Kill(_) => ACTION_KILL,
        };
        (|| {
            c.put(b"{")?;
            json::key(&mut c, true, Field::Action.name())?;
            json::string(&mut c, action)?;
            match self {
                Request::Kill(Kill::Id(id)) => {
                    json::key(&mut c, false, Field::Id.name())?;
                    json::number(&mut c, *id)?;
                }
                Request::Kill(Kill::Backend { host, port }) => {
                    json::key(&mut c, false, Field::Backend.name())?;
                    super::reply::backend(&mut c, host, *port)?;
                }
                _ => {}
            }
            emit_auth(&mut c, auth)?;
            c.put(b"}\n")
        })()
        .map_err(|_| ClientError::BufferTooSmall)?;
        Ok(c.len())
    }
}
