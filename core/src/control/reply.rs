//! Every control reply, byte for byte: its emit (the proxy's side) and its
//! parse (the client's side), in one place.
//!
//! What it is: the replies of DESIGN.md "The control channel" and of issue
//! 13's actions, each key named once ([`Key`]).
//!
//! - Console, dialect 1 (twisted-vncauthproxy / GWM): the port in decimal
//!   then `\n`, or `FAILED <reason>\n` (GWM tests `startswith("FAIL")`;
//!   twisted-vncauthproxy itself sent a bare `FAILED`, and `\r\n` line
//!   ends, which GWM's `int()` and `startswith` do not mind).
//! - Console, dialect 2 (snf-vncauthproxy): one JSON object with Python
//!   `json.dumps` spacing, then `\n`: `{"status": "OK", "source_port":
//!   7000, "proxy_address": "vnc.example.org"}` plus the extensions
//!   `password`, `expires_in`, `token`, `url_path` when present; on failure
//!   `{"status": "FAILED", "source_port": 0, "proxy_address": "...",
//!   "reason": "..."}`.
//! - Actions: `{"status": "OK", "sessions": [...], "tickets": [...]}`
//!   ([`List`]), `{"status": "OK", "killed": N}`, the counters ([`Stats`]),
//!   or `{"status": "FAILED", "reason": "..."}`. A list is emitted from the
//!   caller's rows into the caller's buffer (its length known first,
//!   [`List::buffer_len`]); no row carries a password, a token or a
//!   challenge, so none can be shown.
//!
//! What it is not: the decision of what to answer (the driver's, from the
//! ticket table and its sessions).
//!
//! Parsing (the client side), each decision with its reason:
//! - **Dialect 1 replies**: leading and trailing whitespace (`\r\n` or `\n`,
//!   or none at EOF) is dropped; a reply starting `FAIL` is a failure, its
//!   reason is what follows `FAILED` (or `FAIL`), trimmed, `None` when
//!   empty (kept up to its first byte that is not UTF-8); otherwise it must
//!   be a port, 1 to 5 decimal digits in 1..=65535. Anything after the one
//!   line is [`ClientError::TrailingBytes`].
//! - **JSON replies** are one JSON object, framed and depth-limited by the
//!   server's own framer (so a deeply nested unknown value cannot exhaust
//!   anything); unknown keys are ignored and `null` is an absent key, as
//!   snf's Python client reads a dict. `status` is required, `"OK"` or
//!   `"FAILED"`; an `OK` console reply needs `source_port` in 1..=65535; a
//!   `FAILED` reply's `source_port` 0 means none. An empty `proxy_address`
//!   is `None`.
//! - **A failure reason is for a terminal**: cut to [`REASON_CAP`] bytes
//!   (at a character boundary) and control characters blanked, in every
//!   form, so a hostile proxy cannot move the operator's cursor.

use core::net::SocketAddr;

use heapless::Vec;

use super::client::ClientError;
use super::json::{self, Reader, Sink, Value};
use super::request::{Dialect, Host, Password};
use super::{Framed, Scan, MAX_INPUT};
use crate::text::Text;
// Either kind of token: a table's (hex) or a signed one.
use crate::ticket::signed::{Token, UrlPath};

/// Room for the longest console or action reply but a list: every string
/// field JSON-escaped at worst 6 bytes per byte would not fit, so a reply
/// that does not fit is replaced by a short failure (never truncated, never
/// a panic).
pub const REPLY_CAP: usize = 2048;

/// Longest failure reason sent or kept, in bytes.
pub const REASON_CAP: usize = 200;

/// A failure reason: cut to [`REASON_CAP`] bytes, control characters
/// blanked.
pub type Reason = Text<REASON_CAP>;

/// A queued reply.
pub(crate) type Buf = Vec<u8, REPLY_CAP>;

/// The shape of a reply: a console request's dialect, or an action's JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Form {
    Twisted,
    Snf,
    Action,
}

impl From<Dialect> for Form {
    fn from(d: Dialect) -> Form {
        match d {
            Dialect::Twisted => Form::Twisted,
            Dialect::Snf => Form::Snf,
        }
    }
}

macro_rules! keys {
    ($($variant:ident => $name:literal;)*) => {
        /// A key of a JSON reply, named as on the wire.
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
            pub(crate) const fn missing(self) -> &'static str {
                match self { $(Key::$variant => concat!("reply lacks ", $name),)* }
            }
            pub(crate) const fn wrong_type(self) -> &'static str {
                match self { $(Key::$variant => concat!("wrong type for ", $name, " in reply"),)* }
            }
            pub(crate) const fn too_long(self) -> &'static str {
                match self { $(Key::$variant => concat!("value too long for ", $name, " in reply"),)* }
            }
            pub(crate) const fn duplicate(self) -> &'static str {
                match self { $(Key::$variant => concat!("duplicate key ", $name, " in reply"),)* }
            }
            fn of(key: &str) -> Option<Key> {
                match key { $($name => Some(Key::$variant),)* _ => None }
            }
            const fn bit(self) -> u64 {
                1 << (self as u64)
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
    Killed => "killed";
    Sessions => "sessions";
    Tickets => "tickets";
    Id => "id";
    Backend => "backend";
    Viewer => "viewer";
    Door => "door";
    Transport => "transport";
    Started => "started";
    BytesToViewer => "bytes_to_viewer";
    BytesToBackend => "bytes_to_backend";
    Port => "port";
    SessionsActive => "vncap_sessions_active";
    TicketsPending => "vncap_tickets_pending";
    TicketsIssuedTotal => "vncap_tickets_issued_total";
    TicketsExpiredTotal => "vncap_tickets_expired_total";
    LoginsTotal => "vncap_logins_total";
    BytesTotal => "vncap_bytes_total";
    ControlRequestsTotal => "vncap_control_requests_total";
    ConnectionsRefusedTotal => "vncap_connections_refused_total";
}

const OK: &str = "OK";
const FAILED: &str = "FAILED";
/// `door` of a session that came in on the single port.
const SINGLE: &str = "single";

// ---------------------------------------------------------------- emit

/// What the driver grants, for [`super::Control::reply_ok`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Granted<'a> {
    /// The entry port (the single-port listener's port in single-port mode).
    pub port: u16,
    /// A password the proxy generated (dialect 2 extension); never an echo
    /// of the caller's.
    pub password: Option<&'a str>,
    /// Seconds until the ticket expires (dialect 2 extension).
    pub expires_in: Option<u64>,
    /// Single-port mode token (dialect 2 extension).
    pub token: Option<&'a str>,
    /// Single-port mode path for the viewer, e.g. `websockify?token=...`
    /// (dialect 2 extension).
    pub url_path: Option<&'a str>,
}

fn status(out: &mut impl Sink, ok: bool) -> Result<(), json::Full> {
    out.put(b"{")?;
    json::key(out, true, Key::Status.name())?;
    json::string(out, if ok { OK } else { FAILED })
}

fn field_u64(out: &mut impl Sink, key: Key, n: u64) -> Result<(), json::Full> {
    json::key(out, false, key.name())?;
    json::number(out, n)
}

fn field_str(out: &mut impl Sink, key: Key, s: &str) -> Result<(), json::Full> {
    json::key(out, false, key.name())?;
    json::string(out, s)
}

/// Writes the success reply of a console; `Err` if it does not fit in
/// [`REPLY_CAP`].
pub(crate) fn ok(
    out: &mut Buf,
    form: Form,
    proxy_address: &str,
    g: &Granted<'_>,
) -> Result<(), json::Full> {
    out.clear();
    match form {
        Form::Twisted => {
            json::number(out, u64::from(g.port))?;
            out.put(b"\n")
        }
        Form::Snf | Form::Action => {
            status(out, true)?;
            field_u64(out, Key::SourcePort, u64::from(g.port))?;
            field_str(out, Key::ProxyAddress, proxy_address)?;
            if let Some(p) = g.password {
                field_str(out, Key::Password, p)?;
            }
            if let Some(s) = g.expires_in {
                field_u64(out, Key::ExpiresIn, s)?;
            }
            if let Some(t) = g.token {
                field_str(out, Key::Token, t)?;
            }
            if let Some(u) = g.url_path {
                field_str(out, Key::UrlPath, u)?;
            }
            out.put(b"}\n")
        }
    }
}

/// Writes the failure reply. Never fails: the reason is cut to
/// [`REASON_CAP`] bytes, an over-long address to 255.
pub(crate) fn failed(out: &mut Buf, form: Form, proxy_address: &str, reason: &str) {
    let reason = Reason::from_str_truncated(reason);
    out.clear();
    let r = match form {
        Form::Twisted => (|| {
            out.put(b"FAILED ")?;
            // One line: no control characters (a newline would end it).
            out.put(Reason::blanked(&reason).as_bytes())?;
            out.put(b"\n")
        })(),
        Form::Snf => (|| {
            status(out, false)?;
            field_u64(out, Key::SourcePort, 0)?;
            let address = Text::<255>::from_str_truncated(proxy_address);
            field_str(out, Key::ProxyAddress, &address)?;
            field_str(out, Key::Reason, &reason)?;
            out.put(b"}\n")
        })(),
        Form::Action => (|| {
            status(out, false)?;
            field_str(out, Key::Reason, &reason)?;
            out.put(b"}\n")
        })(),
    };
    // 200 + 255 bytes escaped at most 6x each plus the frame need not fit
    // REPLY_CAP: fall back to a bare reply.
    if r.is_err() {
        out.clear();
        let bare: &[u8] = match form {
            Form::Twisted => b"FAILED\n",
            Form::Snf => b"{\"status\": \"FAILED\", \"source_port\": 0}\n",
            Form::Action => b"{\"status\": \"FAILED\"}\n",
        };
        let _ = out.extend_from_slice(bare);
    }
}

/// Writes `{"status": "OK", "killed": N}`.
pub(crate) fn killed(out: &mut Buf, n: u64) -> Result<(), json::Full> {
    out.clear();
    status(out, true)?;
    field_u64(out, Key::Killed, n)?;
    out.put(b"}\n")
}

/// `"HOST:PORT"` as a JSON string (`"[V6]:PORT"` for an IPv6 address).
pub(crate) fn backend(out: &mut impl Sink, host: &str, port: u16) -> Result<(), json::Full> {
    let mut s: heapless::String<{ super::HOST_CAP + 8 }> = heapless::String::new();
    let v6 = host.contains(':');
    let mut push = |part: &str| s.push_str(part).map_err(|_| json::Full);
    if v6 {
        push("[")?;
    }
    push(host)?;
    if v6 {
        push("]")?;
    }
    push(":")?;
    let mut digits: Vec<u8, 5> = Vec::new();
    json::number(&mut digits, u64::from(port))?;
    push(core::str::from_utf8(&digits).unwrap_or("0"))?;
    json::string(out, &s)
}

/// A socket address as people write it (`127.0.0.1:5000`, `[::1]:5000`;
/// an IPv4-mapped IPv6 address as IPv4).
fn address(out: &mut impl Sink, a: SocketAddr) -> Result<(), json::Full> {
    use core::fmt::Write;
    let a = SocketAddr::new(a.ip().to_canonical(), a.port());
    let mut s: heapless::String<64> = heapless::String::new();
    write!(s, "{a}").map_err(|_| json::Full)?;
    json::string(out, &s)
}

/// Which layers a viewer came over, as a `list` row shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Layers {
    /// TLS around the connection.
    pub tls: bool,
    /// WebSocket carrying RFB.
    pub websocket: bool,
}

impl Layers {
    /// `vnc`, `vnc-tls`, `vnc-ws` or `vnc-wss` (snf's `type` names, and
    /// `vnc-tls` for native RFB over TLS).
    pub const fn name(self) -> &'static str {
        match (self.tls, self.websocket) {
            (false, false) => "vnc",
            (true, false) => "vnc-tls",
            (false, true) => "vnc-ws",
            (true, true) => "vnc-wss",
        }
    }

    fn of(name: &str) -> Option<Layers> {
        [false, true]
            .into_iter()
            .flat_map(|tls| [false, true].map(|websocket| Layers { tls, websocket }))
            .find(|l| l.name() == name)
    }
}

/// Where a session's viewer came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Door {
    /// Its ticket's own entry port.
    Port(u16),
    /// The single-port listener (`"single"`).
    Single,
}

/// One live session, as `list` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionRow<'a> {
    /// Its id (`kill` takes it).
    pub id: u64,
    /// The backend's host.
    pub backend_host: &'a str,
    /// The backend's port.
    pub backend_port: u16,
    /// The viewer's address.
    pub viewer: SocketAddr,
    /// Where the viewer came in.
    pub door: Door,
    /// Which layers it came over.
    pub transport: Layers,
    /// When it started, in Unix seconds.
    pub started: u64,
    /// Bytes relayed to the viewer.
    pub bytes_to_viewer: u64,
    /// Bytes relayed to the backend.
    pub bytes_to_backend: u64,
}

/// One pending ticket, as `list` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TicketRow<'a> {
    /// Its id (`kill` takes it).
    pub id: u64,
    /// The backend's host.
    pub backend_host: &'a str,
    /// The backend's port.
    pub backend_port: u16,
    /// The port its viewer connects to (the single port's for a token).
    pub port: u16,
    /// Seconds until it expires, rounded up.
    pub expires_in: u64,
}

/// A row of a `list` reply, as [`List::parse`] hands it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Row<'a> {
    /// A live session.
    Session(SessionRow<'a>),
    /// A pending ticket.
    Ticket(TicketRow<'a>),
}

/// The `list` reply, from the caller's rows (iterated twice: once for
/// [`List::buffer_len`], once for [`List::emit`]).
#[derive(Debug, Clone)]
pub struct List<S, T> {
    /// The live sessions.
    pub sessions: S,
    /// The pending tickets.
    pub tickets: T,
}

impl<'a, 'b, S, T> List<S, T>
where
    S: IntoIterator<Item = SessionRow<'a>> + Clone,
    T: IntoIterator<Item = TicketRow<'b>> + Clone,
{
    /// Bytes [`List::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        let mut n = json::Count::default();
        let _ = self.emit_to(&mut n);
        n.0
    }

    /// Writes the reply line into `out`; returns its length, or `None` if
    /// `out` is shorter than [`List::buffer_len`].
    pub fn emit(&self, out: &mut [u8]) -> Option<usize> {
        let mut c = json::Cursor::new(out);
        self.emit_to(&mut c).ok()?;
        Some(c.len())
    }

    fn emit_to(&self, out: &mut impl Sink) -> Result<(), json::Full> {
        status(out, true)?;
        json::key(out, false, Key::Sessions.name())?;
        out.put(b"[")?;
        for (i, s) in self.sessions.clone().into_iter().enumerate() {
            if i > 0 {
                out.put(b", ")?;
            }
            out.put(b"{")?;
            json::key(out, true, Key::Id.name())?;
            json::number(out, s.id)?;
            json::key(out, false, Key::Backend.name())?;
            backend(out, s.backend_host, s.backend_port)?;
            json::key(out, false, Key::Viewer.name())?;
            address(out, s.viewer)?;
            json::key(out, false, Key::Door.name())?;
            match s.door {
                Door::Port(p) => json::number(out, u64::from(p))?,
                Door::Single => json::string(out, SINGLE)?,
            }
            field_str(out, Key::Transport, s.transport.name())?;
            field_u64(out, Key::Started, s.started)?;
            field_u64(out, Key::BytesToViewer, s.bytes_to_viewer)?;
            field_u64(out, Key::BytesToBackend, s.bytes_to_backend)?;
            out.put(b"}")?;
        }
        out.put(b"]")?;
        json::key(out, false, Key::Tickets.name())?;
        out.put(b"[")?;
        for (i, t) in self.tickets.clone().into_iter().enumerate() {
            if i > 0 {
                out.put(b", ")?;
            }
            out.put(b"{")?;
            json::key(out, true, Key::Id.name())?;
            json::number(out, t.id)?;
            json::key(out, false, Key::Backend.name())?;
            backend(out, t.backend_host, t.backend_port)?;
            field_u64(out, Key::Port, u64::from(t.port))?;
            field_u64(out, Key::ExpiresIn, t.expires_in)?;
            out.put(b"}")?;
        }
        out.put(b"]}\n")
    }
}

/// `vncap_logins_total` by `result`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Logins {
    /// `result="ok"`.
    pub ok: u64,
    /// `result="wrong_password"`.
    pub wrong_password: u64,
    /// `result="backend_unreachable"`.
    pub backend_unreachable: u64,
    /// `result="backend_refused"`.
    pub backend_refused: u64,
    /// `result="refused"`.
    pub refused: u64,
}

/// The counters of issue 13, for the `stats` reply: `{"status": "OK",
/// "vncap_sessions_active": N, ..., "vncap_logins_total": {"ok": N, ...},
/// "vncap_bytes_total": {"to_viewer": N, "to_backend": N},
/// "vncap_control_requests_total": {"ok": N, "failed": N},
/// "vncap_connections_refused_total": {"control": N, "entry": N}}` (a
/// labelled counter is an object keyed by its label's values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Stats {
    /// `vncap_sessions_active`.
    pub sessions_active: u64,
    /// `vncap_tickets_pending`.
    pub tickets_pending: u64,
    /// `vncap_tickets_issued_total`.
    pub tickets_issued_total: u64,
    /// `vncap_tickets_expired_total`.
    pub tickets_expired_total: u64,
    /// `vncap_logins_total{result=...}`.
    pub logins_total: Logins,
    /// `vncap_bytes_total{direction="to_viewer"}`.
    pub bytes_to_viewer: u64,
    /// `vncap_bytes_total{direction="to_backend"}`.
    pub bytes_to_backend: u64,
    /// `vncap_control_requests_total{result="ok"}`.
    pub control_ok: u64,
    /// `vncap_control_requests_total{result="failed"}`.
    pub control_failed: u64,
    /// `vncap_connections_refused_total{channel="control"}`: control
    /// connections closed before a request (over the connection limits,
    /// not allowed, silent).
    pub refused_control: u64,
    /// `vncap_connections_refused_total{channel="entry"}`: viewer
    /// connections refused before their handshake (over
    /// `--max-handshakes` or `--max-handshakes-per-ip`).
    pub refused_entry: u64,
}

impl Stats {
    /// The labelled counters: name, then (label value, count) pairs.
    fn labelled(&self) -> [(Key, &'static [&'static str], [u64; 5]); 4] {
        let l = &self.logins_total;
        [
            (
                Key::LoginsTotal,
                &[
                    "ok",
                    "wrong_password",
                    "backend_unreachable",
                    "backend_refused",
                    "refused",
                ],
                [
                    l.ok,
                    l.wrong_password,
                    l.backend_unreachable,
                    l.backend_refused,
                    l.refused,
                ],
            ),
            (
                Key::BytesTotal,
                &["to_viewer", "to_backend"],
                [self.bytes_to_viewer, self.bytes_to_backend, 0, 0, 0],
            ),
            (
                Key::ControlRequestsTotal,
                &["ok", "failed"],
                [self.control_ok, self.control_failed, 0, 0, 0],
            ),
            (
                Key::ConnectionsRefusedTotal,
                &["control", "entry"],
                [self.refused_control, self.refused_entry, 0, 0, 0],
            ),
        ]
    }

    fn plain(&self) -> [(Key, u64); 4] {
        [
            (Key::SessionsActive, self.sessions_active),
            (Key::TicketsPending, self.tickets_pending),
            (Key::TicketsIssuedTotal, self.tickets_issued_total),
            (Key::TicketsExpiredTotal, self.tickets_expired_total),
        ]
    }

    pub(crate) fn emit_to(&self, out: &mut impl Sink) -> Result<(), json::Full> {
        status(out, true)?;
        for (key, n) in self.plain() {
            field_u64(out, key, n)?;
        }
        for (key, labels, counts) in self.labelled() {
            json::key(out, false, key.name())?;
            out.put(b"{")?;
            for (i, (label, n)) in labels.iter().zip(counts).enumerate() {
                json::key(out, i == 0, label)?;
                json::number(out, n)?;
            }
            out.put(b"}")?;
        }
        out.put(b"}\n")
    }

    /// Parses a `stats` reply (what [`super::Control::reply_stats`] wrote):
    /// the counters (absent ones 0), or the failure's reason.
    pub fn parse(reply: &[u8]) -> Result<Result<Stats, Option<Reason>>, ClientError> {
        let mut stats = Stats::default();
        let mut counts = [[0u64; 5]; 4];
        let outcome = action_reply(reply, |r, key| {
            if let Some(i) = stats.plain().iter().position(|(k, _)| *k == key) {
                let n = u64_value(r.value().map_err(|e| json_error(e, Some(key)))?, key)?;
                match i {
                    0 => stats.sessions_active = n,
                    1 => stats.tickets_pending = n,
                    2 => stats.tickets_issued_total = n,
                    _ => stats.tickets_expired_total = n,
                }
                return Ok(true);
            }
            let labelled = stats.labelled();
            let Some(i) = labelled.iter().position(|(k, _, _)| *k == key) else {
                return Ok(false);
            };
            let labels = labelled.get(i).map_or(&[][..], |l| l.1);
            match r.value().map_err(|e| json_error(e, Some(key)))? {
                Value::Null => return Ok(true),
                Value::Object => {}
                _ => return Err(ClientError::WrongType(key)),
            }
            while let Some(label) = r.next_key().map_err(|e| json_error(e, None))? {
                let j = labels.iter().position(|l| *l == label);
                let v = r.value().map_err(|e| json_error(e, Some(key)))?;
                match (j, counts.get_mut(i)) {
                    (Some(j), Some(row)) => {
                        if let Some(slot) = row.get_mut(j) {
                            *slot = u64_value(v, key)?;
                        }
                    }
                    _ => {
                        if let Some(c) = v.container() {
                            r.skip(c).map_err(|e| json_error(e, None))?;
                        }
                    }
                }
            }
            Ok(true)
        })?;
        let [l, b, c, r] = counts;
        stats.logins_total = Logins {
            ok: l[0],
            wrong_password: l[1],
            backend_unreachable: l[2],
            backend_refused: l[3],
            refused: l[4],
        };
        stats.bytes_to_viewer = b[0];
        stats.bytes_to_backend = b[1];
        stats.control_ok = c[0];
        stats.control_failed = c[1];
        stats.refused_control = r[0];
        stats.refused_entry = r[1];
        Ok(outcome.map(|()| stats))
    }
}

// --------------------------------------------------------------- parse

/// A parsed console reply. Its `Debug` shows no password or token.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
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

/// `Some` reason cut to [`REASON_CAP`] with control characters blanked;
/// `None` when empty.
fn reason(text: &str) -> Option<Reason> {
    let r = Reason::blanked(text);
    (!r.is_empty()).then_some(r)
}

fn json_error(e: json::Error, key: Option<Key>) -> ClientError {
    match (e, key) {
        (json::Error::Syntax, _) => ClientError::BadJson,
        (json::Error::TooDeep, _) => ClientError::NestedTooDeep,
        (json::Error::TooLong, Some(k)) => ClientError::TooLong(k),
        (json::Error::BadString | json::Error::TooLong, _) => ClientError::BadString,
    }
}

/// The JSON object of a reply (framed, the rest only whitespace); each
/// member's key goes to `member`, which reads its value (returns `true`) or
/// leaves it to be skipped (`false`). Duplicate known keys are refused.
fn read_json(
    reply: &[u8],
    mut member: impl FnMut(&mut Reader<'_>, Key) -> Result<bool, ClientError>,
) -> Result<(), ClientError> {
    if reply.len() > MAX_INPUT {
        return Err(ClientError::ReplyTooLong);
    }
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
        // Not a closed object: let the reader say what is wrong with it.
        Framed::More => reply,
    };
    let mut r = Reader::new(json);
    let syntax = |e| json_error(e, None);
    if r.value().map_err(syntax)? != Value::Object {
        return Err(ClientError::BadJson);
    }
    let mut seen = 0u64;
    while let Some(name) = r.next_key().map_err(syntax)? {
        let key = Key::of(name);
        if let Some(k) = key {
            if seen & k.bit() != 0 {
                return Err(ClientError::Duplicate(k));
            }
            seen |= k.bit();
        }
        let read = match key {
            Some(k) => member(&mut r, k)?,
            None => false,
        };
        if !read {
            r.skip_value().map_err(syntax)?;
        }
    }
    r.end().map_err(syntax)
}

fn status_value(v: Value<'_>) -> Result<Option<bool>, ClientError> {
    match v {
        Value::Null => Ok(None),
        Value::Str(OK) => Ok(Some(true)),
        Value::Str(FAILED) => Ok(Some(false)),
        Value::Str(_) => Err(ClientError::BadStatus),
        _ => Err(ClientError::WrongType(Key::Status)),
    }
}

fn u64_value(v: Value<'_>, key: Key) -> Result<u64, ClientError> {
    match v {
        Value::Number(n) => n.u64().ok_or(ClientError::WrongType(key)),
        _ => Err(ClientError::WrongType(key)),
    }
}

/// An integral JSON number in 0..=65535 (`7000` or `7000.0`).
fn port_value(v: Value<'_>, key: Key) -> Result<u16, ClientError> {
    let Value::Number(n) = v else {
        return Err(ClientError::WrongType(key));
    };
    let v = n.f64();
    if !(0.0..=65535.0).contains(&v) {
        return Err(ClientError::PortOutOfRange);
    }
    let p = v as u16;
    if f64::from(p) != v {
        return Err(ClientError::WrongType(key));
    }
    Ok(p)
}

fn str_value<const N: usize>(
    v: Value<'_>,
    key: Key,
) -> Result<Option<heapless::String<N>>, ClientError> {
    match v {
        Value::Null => Ok(None),
        Value::Str(s) => {
            let mut out = heapless::String::new();
            out.push_str(s).map_err(|_| ClientError::TooLong(key))?;
            Ok(Some(out))
        }
        _ => Err(ClientError::WrongType(key)),
    }
}

fn secret_value<const N: usize>(
    v: Value<'_>,
    key: Key,
) -> Result<Option<crate::secret::Secret<N>>, ClientError> {
    match v {
        Value::Null => Ok(None),
        Value::Str(s) => crate::secret::Secret::from_str(s)
            .map(Some)
            .map_err(|_| ClientError::TooLong(key)),
        _ => Err(ClientError::WrongType(key)),
    }
}

impl Answer {
    /// Parses the proxy's reply to a console request of `dialect`: dialect
    /// 1 `<port>\n` or `FAILED ...\n`; dialect 2 one JSON object (with or
    /// without a line end). `reply` is everything the proxy sent.
    pub fn parse(dialect: Dialect, reply: &[u8]) -> Result<Answer, ClientError> {
        if reply.len() > MAX_INPUT {
            return Err(ClientError::ReplyTooLong);
        }
        match dialect {
            Dialect::Twisted => Answer::parse_twisted(reply),
            Dialect::Snf => Answer::parse_snf(reply),
        }
    }

    fn parse_twisted(reply: &[u8]) -> Result<Answer, ClientError> {
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

    fn parse_snf(reply: &[u8]) -> Result<Answer, ClientError> {
        let mut a = Answer::default();
        let mut ok = None;
        let mut source_port = None;
        read_json(reply, |r, key| {
            let v = r.value().map_err(|e| json_error(e, Some(key)))?;
            match key {
                Key::Status => ok = status_value(v)?,
                Key::SourcePort => {
                    source_port = match v {
                        Value::Null => None,
                        v => Some(port_value(v, key)?),
                    }
                }
                Key::ProxyAddress => a.proxy_address = str_value(v, key)?,
                Key::Reason => {
                    a.reason = match v {
                        Value::Null => None,
                        Value::Str(s) => reason(s),
                        _ => return Err(ClientError::WrongType(key)),
                    }
                }
                Key::Password => a.password = secret_value(v, key)?,
                Key::ExpiresIn => {
                    a.expires_in = match v {
                        Value::Null => None,
                        v => Some(u64_value(v, key)?),
                    }
                }
                Key::Token => a.token = secret_value(v, key)?,
                Key::UrlPath => a.url_path = secret_value(v, key)?,
                _ => {
                    if let Some(c) = v.container() {
                        r.skip(c).map_err(|e| json_error(e, None))?;
                    }
                }
            }
            Ok(true)
        })?;
        a.ok = ok.ok_or(ClientError::Missing(Key::Status))?;
        a.port = match (a.ok, source_port) {
            (true, None) => return Err(ClientError::Missing(Key::SourcePort)),
            (true, Some(0)) => return Err(ClientError::PortOutOfRange),
            (_, None | Some(0)) => None,
            (_, Some(p)) => Some(p),
        };
        a.proxy_address = a.proxy_address.filter(|p| !p.is_empty());
        Ok(a)
    }
}

/// A parsed action reply's outcome: `Ok(())` for `"status": "OK"`, the
/// reason for `FAILED`.
pub type Outcome = Result<(), Option<Reason>>;

/// Reads `status` and `reason` of an action reply (`member` gets the
/// other keys).
fn action_reply(
    reply: &[u8],
    mut member: impl FnMut(&mut Reader<'_>, Key) -> Result<bool, ClientError>,
) -> Result<Outcome, ClientError> {
    let mut ok = None;
    let mut why = None;
    read_json(reply, |r, key| match key {
        Key::Status => {
            ok = status_value(r.value().map_err(|e| json_error(e, Some(key)))?)?;
            Ok(true)
        }
        Key::Reason => {
            why = match r.value().map_err(|e| json_error(e, Some(key)))? {
                Value::Null => None,
                Value::Str(s) => reason(s),
                _ => return Err(ClientError::WrongType(key)),
            };
            Ok(true)
        }
        _ => member(r, key),
    })?;
    match ok {
        None => Err(ClientError::Missing(Key::Status)),
        Some(true) => Ok(Ok(())),
        Some(false) => Ok(Err(why)),
    }
}

/// Parses a `kill` reply: the number killed, or the failure's reason.
pub fn parse_killed(reply: &[u8]) -> Result<Result<u64, Option<Reason>>, ClientError> {
    let mut killed = None;
    let outcome = action_reply(reply, |r, key| {
        if key != Key::Killed {
            return Ok(false);
        }
        killed = match r.value().map_err(|e| json_error(e, Some(key)))? {
            Value::Null => None,
            v => Some(u64_value(v, key)?),
        };
        Ok(true)
    })?;
    match outcome {
        Ok(()) => killed.map(Ok).ok_or(ClientError::Missing(Key::Killed)),
        Err(why) => Ok(Err(why)),
    }
}

impl List<(), ()> {
    /// Parses a `list` reply, handing each row to `row` in order; returns
    /// the outcome (a failure's reason).
    pub fn parse(reply: &[u8], mut row: impl FnMut(Row<'_>)) -> Result<Outcome, ClientError> {
        let mut sessions = false;
        let mut tickets = false;
        let outcome = action_reply(reply, |r, key| {
            let is_sessions = match key {
                Key::Sessions => true,
                Key::Tickets => false,
                _ => return Ok(false),
            };
            match r.value().map_err(|e| json_error(e, Some(key)))? {
                Value::Array => {}
                _ => return Err(ClientError::WrongType(key)),
            }
            *(if is_sessions {
                &mut sessions
            } else {
                &mut tickets
            }) = true;
            while r.next_element().map_err(|e| json_error(e, None))? {
                if r.value().map_err(|e| json_error(e, Some(key)))? != Value::Object {
                    return Err(ClientError::WrongType(key));
                }
                read_row(r, is_sessions, &mut row)?;
            }
            Ok(true)
        })?;
        if outcome.is_ok() {
            if !sessions {
                return Err(ClientError::Missing(Key::Sessions));
            }
            if !tickets {
                return Err(ClientError::Missing(Key::Tickets));
            }
        }
        Ok(outcome)
    }
}

/// The members of one row object (its `{` read).
fn read_row(
    r: &mut Reader<'_>,
    session: bool,
    row: &mut impl FnMut(Row<'_>),
) -> Result<(), ClientError> {
    let mut id = None;
    let mut backend: Option<(Host, u16)> = None;
    let mut viewer = None;
    let mut door = None;
    let mut transport = None;
    let mut numbers = [None; 4];
    let mut seen = 0u64;
    while let Some(name) = r.next_key().map_err(|e| json_error(e, None))? {
        let Some(key) = Key::of(name) else {
            r.skip_value().map_err(|e| json_error(e, None))?;
            continue;
        };
        if seen & key.bit() != 0 {
            return Err(ClientError::Duplicate(key));
        }
        seen |= key.bit();
        let v = r.value().map_err(|e| json_error(e, Some(key)))?;
        let slot = match (session, key) {
            (_, Key::Id) => {
                id = Some(u64_value(v, key)?);
                continue;
            }
            (_, Key::Backend) => {
                let Value::Str(s) = v else {
                    return Err(ClientError::WrongType(key));
                };
                backend = Some(parse_backend(s).ok_or(ClientError::WrongType(key))?);
                continue;
            }
            (true, Key::Viewer) => {
                let Value::Str(s) = v else {
                    return Err(ClientError::WrongType(key));
                };
                viewer = Some(
                    s.parse::<SocketAddr>()
                        .map_err(|_| ClientError::WrongType(key))?,
                );
                continue;
            }
            (true, Key::Door) => {
                door = Some(match v {
                    Value::Str(SINGLE) => Door::Single,
                    v => Door::Port(port_value(v, key)?),
                });
                continue;
            }
            (true, Key::Transport) => {
                let Value::Str(s) = v else {
                    return Err(ClientError::WrongType(key));
                };
                transport = Some(Layers::of(s).ok_or(ClientError::WrongType(key))?);
                continue;
            }
            (true, Key::Started) => 0,
            (true, Key::BytesToViewer) => 1,
            (true, Key::BytesToBackend) => 2,
            (false, Key::Port) => {
                numbers[0] = Some(u64::from(port_value(v, key)?));
                continue;
            }
            (false, Key::ExpiresIn) => 3,
            _ => {
                if let Some(c) = v.container() {
                    r.skip(c).map_err(|e| json_error(e, None))?;
                }
                continue;
            }
        };
        if let Some(n) = numbers.get_mut(slot) {
            *n = Some(u64_value(v, key)?);
        }
    }
    let need = |v: Option<u64>, key| v.ok_or(ClientError::Missing(key));
    let id = need(id, Key::Id)?;
    let (host, port) = backend.ok_or(ClientError::Missing(Key::Backend))?;
    if session {
        row(Row::Session(SessionRow {
            id,
            backend_host: &host,
            backend_port: port,
            viewer: viewer.ok_or(ClientError::Missing(Key::Viewer))?,
            door: door.ok_or(ClientError::Missing(Key::Door))?,
            transport: transport.ok_or(ClientError::Missing(Key::Transport))?,
            started: need(numbers[0], Key::Started)?,
            bytes_to_viewer: need(numbers[1], Key::BytesToViewer)?,
            bytes_to_backend: need(numbers[2], Key::BytesToBackend)?,
        }));
    } else {
        row(Row::Ticket(TicketRow {
            id,
            backend_host: &host,
            backend_port: port,
            // Read by `port_value`: within u16.
            port: need(numbers[0], Key::Port)? as u16,
            expires_in: need(numbers[3], Key::ExpiresIn)?,
        }));
    }
    Ok(())
}

/// `HOST:PORT` or `[V6]:PORT` back into its parts.
fn parse_backend(s: &str) -> Option<(Host, u16)> {
    let (h, p) = s.rsplit_once(':')?;
    let h = match h.strip_prefix('[') {
        Some(v6) => v6.strip_suffix(']')?,
        None => h,
    };
    if !p.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let port = p.parse().ok()?;
    let mut host = Host::new();
    host.push_str(h).ok()?;
    Some((host, port))
}
