//! One viewer connection on an entry point, from its first byte to
//! "authenticated, here is the ticket": the viewer's way in (DESIGN
//! "Entry points" and "Sessions"). It is not the relay, not TLS (rustls is
//! the driver's: the machine asks for it with [`Event::StartTls`] and is fed
//! the plaintext) and not the backend login (`rfb::client`); it sequences the
//! machines of [`crate::sniff`], [`crate::policy`], [`crate::ws::handshake`],
//! [`crate::ws::frame`] and [`crate::rfb::server`], asks its driver who may
//! come in (the ticket table decides, [`Entry::admit_from`]), and answers
//! every failure and every deadline on the wire.
//!
//! # What arrives, and what it gets
//!
//! - A ticket's port whose console cannot be a WebSocket and is not TLS-only
//!   (GWM's `"ws": false`, snf's `vnc`) serves native viewers only: RFB's
//!   ProtocolVersion goes out at once, with no sniffing silence.
//! - Anywhere else the first bytes are sniffed: a TLS ClientHello
//!   ([`Event::StartTls`]; without a certificate, a `handshake_failure`
//!   alert), an HTTP request (the WebSocket handshake; its `token` query
//!   parameter names a single-port console; on the single port with
//!   [`Entry::with_web_root`], a request that is not an upgrade asks for a
//!   static file instead, [`Event::Serve`]), a Flash policy request (the
//!   policy, then close), or — after [`sniff::SILENCE_TIMEOUT_MS`] of
//!   silence — a native viewer waiting for the server. Inside TLS only a
//!   WebSocket upgrade or a silence may follow. Bytes that are none of these
//!   are closed unanswered.
//! - Who may come in is decided once the layers are known ([`Event::Admit`]):
//!   a refused viewer on the single port gets the HTTP status of its refusal
//!   ([`ticket::Error::http_status`]); anywhere else it gets RFB's
//!   "connection failed" with the reason (inside the WebSocket when one was
//!   opened), which noVNC and native viewers show.
//! - The RFB server handshake runs with the ticket's password (inside
//!   WebSocket frames when there are some). A wrong password costs its
//!   source a guess ([`Entry::charge_attempt`]); a right one reports
//!   [`Event::Authenticated`]: the driver takes the ticket
//!   ([`Entry::take_ticket`], or [`Entry::claim_ticket`] first and
//!   `take_ticket` once the session's resources are in hand), logs in to
//!   the backend, and then calls
//!   [`Entry::accept`] or [`Entry::reject`] (the reason the viewer sees is
//!   chosen here, [`Rejection`]). After `accept` and a last flush,
//!   [`Entry::into_relay`] hands over the WebSocket connection and every byte
//!   read past the handshake, in order.
//! - One deadline bounds everything before authentication
//!   ([`Config::handshake_timeout_ms`] from the accept): at it, an HTTP
//!   request still being read gets `408`, a viewer answering the challenge
//!   gets SecurityResult failed with "handshake timed out", and the
//!   connection ends ([`Error::TimedOut`]).
//!
//! # Behind a load balancer
//!
//! The driver says whether the connection's socket peer is a trusted proxy
//! (it decides, e.g. with `cidr::CidrList::contains`): [`Entry::new`] for
//! anyone, [`Entry::from_trusted_proxy`] for a proxy the operator trusts.
//! The address the machine settles on is [`Entry::client`]; the admit step
//! checks a ticket's pinned client against it, and a wrong password is
//! charged to it.
//!
//! - From a trusted proxy the first bytes may be a PROXY protocol header,
//!   v1 or v2 ([`crate::proxy`], as HAProxy's `send-proxy` and
//!   `send-proxy-v2` write it at connect, before any byte of the client's):
//!   it is read before anything else (before a TLS ClientHello, too), and
//!   the client it names is the viewer from then on. It is optional: a
//!   trusted host may also connect directly, and a health check's `LOCAL`
//!   (v2) or `UNKNOWN` (v1) header keeps the socket's address. Bytes that
//!   are not a PROXY header go on to sniffing or RFB as they are; a header
//!   that is malformed is closed unanswered ([`Error::Proxy`]); a header cut
//!   short waits for the rest until the handshake deadline.
//! - A native-only port speaks RFB first, but a proxy writes its header
//!   first: for a trusted proxy, ProtocolVersion waits for the header, or
//!   for the sniffing silence ([`sniff::SILENCE_TIMEOUT_MS`] from the
//!   accept) when nothing arrives — a trusted host connecting directly, as
//!   a native viewer, is greeted that much later. Any other port's silence
//!   counts from the accept as for anyone.
//! - On the single port, when no PROXY header named the client, a trusted
//!   proxy's `X-Forwarded-For` or `Forwarded: for=` (RFC 7239; the last
//!   entry, the one that proxy appended: [`crate::forwarded`]) names it.
//!   Trust only proxies that write one of these themselves or send a PROXY
//!   header, or a client's own header would be believed.
//! - From anyone else such headers are never believed: `X-Forwarded-For`
//!   and `Forwarded` are ignored (browsers behind corporate proxies send
//!   them legitimately), and a PROXY header — or a second one after a
//!   trusted proxy's — is refused: closed unanswered, on a native-only port
//!   too, where it would otherwise be taken for the viewer's
//!   ProtocolVersion ([`Error::ProxyHeaderRefused`]).
//! - For a trusted proxy's connection, [`Event::Client`] says once when the
//!   client is settled (right after a header that names one; on the single
//!   port otherwise with the upgrade request; always before
//!   [`Event::Admit`]), so the driver can count the client, not the proxy,
//!   in its per-source limits. The machine never reports it for anyone
//!   else: there the socket's peer is the client from the start.
//!
//! # Driver order
//!
//! As for every [`Machine`] (see `machine.rs`), in a loop:
//!
//! 1. [`Machine::poll_output`] until 0, writing to the viewer (inside TLS
//!    once TLS has started);
//! 2. [`Machine::poll_event`], acting on:
//!    - [`Event::StartTls`]: run the TLS server handshake over the socket,
//!      giving it the unconsumed input (the ClientHello); within
//!      [`Machine::poll_timeout`]; then [`Entry::tls_started`] and feed the
//!      plaintext from then on;
//!    - [`Event::Client`] (a trusted proxy's connection only): the client
//!      is [`Entry::client`] from now on (count it, log it), then go on;
//!    - [`Event::Admit`]: [`Entry::admit_from`] (with signed single-port
//!      tickets [`Entry::admit_signed_from`]; or [`Entry::incoming`] and
//!      [`Entry::admit`] for a table of one's own), then go on;
//!    - [`Event::PolicyServed`]: flush, close;
//!    - [`Event::Serve`]: open [`Entry::web_request`]'s file, then
//!      [`Entry::web_respond`], flush, send the file when it says so, close;
//!    - [`Event::Authenticated`]: [`Entry::take_ticket`], the backend, then
//!      [`Entry::accept`] or [`Entry::reject`], flush, and on accept
//!      [`Entry::into_relay`];
//! 3. wait for input or for [`Machine::poll_timeout`]: feed
//!    [`Machine::handle_input`] (again after every `Ok(n > 0)`, with the
//!    rest), [`Machine::handle_eof`] when the viewer closed, or
//!    [`Machine::handle_timeout`].
//!
//! On `Err`, flush the queued answer, call [`Entry::charge_attempt`] (a
//! wrong password costs its source a guess), and close.
//!
//! What it consumes, says and sends never depends on how the input was
//! split, with one exception that cannot matter: inside WebSocket the
//! machine copies frames in (the caller's buffer is read-only, and frames
//! are unmasked in place), so how many bytes it had taken when it found an
//! error depends on the reads. An error ends the connection.

use core::fmt::{self, Write as _};
use core::net::IpAddr;

use heapless::Vec;

use crate::control::{Need, Transport};
use crate::forwarded;
use crate::machine::Machine;
use crate::policy;
use crate::proxy;
use crate::rfb::des::CHALLENGE_LEN;
use crate::rfb::server::{self, Server};
use crate::rfb::wire::{Reason, REASON_MAX};
use crate::sniff::{self, Kind};
use crate::ticket::{self, Attempt, Handle, Lookup, Slot, Table, Ticket};
use crate::time::Instant;
use crate::web;
use crate::ws::frame::{self, Decoded};
use crate::ws::handshake::{self, Handshake};
use crate::ws::{self, Connection};

/// Undecoded WebSocket bytes the machine holds during the RFB handshake
/// (frames are decoded in place here; the caller's input is read-only).
pub const RAW_CAP: usize = 512;
/// Decoded RFB bytes the machine holds for the RFB server (an early
/// ClientInit or more after the viewer's response is handed on).
pub const RFB_CAP: usize = 256;
/// The WebSocket close code after a failed handshake inside WebSocket
/// (RFC 6455 section 7.4.1: policy violation); frame errors send their own.
pub const CLOSE_REFUSED: u16 = 1008;
/// Bytes of RFB kept by a transcript ([`Config::transcript`]): more than a
/// whole handshake both ways.
pub const TRANSCRIPT_CAP: usize = 512;
/// Messages kept by a transcript.
const TRANSCRIPT_RECORDS: usize = 32;
/// Frames queued for a WebSocket viewer (RFB answers, pongs, the close).
const WIRE_CAP: usize = 1024;
/// Room in that queue kept for RFB answers: the bytes of pongs a handshake
/// answers in all. Pongs past them are dropped (a ping flood during the
/// handshake gets no more), however fast the driver sends what is queued,
/// so what the viewer hears does not depend on how its bytes were read.
const PONG_BUDGET: usize = WIRE_CAP - 512;
/// What a viewer is told when the handshake deadline passes.
const TIMED_OUT: &str = "handshake timed out";

/// Which door a viewer came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    /// The entry port of one ticket.
    Port {
        /// Its port.
        port: u16,
        /// The ticket the port was opened for.
        handle: Handle,
        /// The layers that ticket's console allows (its request's).
        offers: Transport,
    },
    /// The single-port WebSocket listener: the URL's token names the ticket.
    Single {
        /// The listener's port.
        port: u16,
    },
}

impl Door {
    /// Whether a viewer here can only be a native one: a ticket's port whose
    /// console cannot be a WebSocket and is not TLS-only. Such a door speaks
    /// RFB first, without waiting for a silence.
    pub const fn native_only(&self) -> bool {
        match self {
            Door::Port { offers, .. } => {
                matches!(offers.websocket, Need::No) && !matches!(offers.tls, Need::Yes)
            }
            Door::Single { .. } => false,
        }
    }
}

impl fmt::Display for Door {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Door::Port { port, .. } => write!(f, "port {port}"),
            Door::Single { port } => write!(f, "single port {port}"),
        }
    }
}

/// The layers a viewer arrived with, as sniffed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Layers {
    /// TLS around the connection.
    pub tls: bool,
    /// WebSocket carrying RFB.
    pub websocket: bool,
}

impl fmt::Display for Layers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match (self.tls, self.websocket) {
            (false, false) => "native RFB",
            (false, true) => "WebSocket",
            (true, false) => "native RFB over TLS",
            (true, true) => "WebSocket over TLS",
        })
    }
}

/// Settings of one entry machine.
#[derive(Debug, Clone, Copy)]
pub struct Config<'a> {
    /// Where the viewer came in.
    pub door: Door,
    /// The socket's peer: the viewer's address, unless a trusted proxy
    /// names another ([`Entry::client`]).
    pub peer: IpAddr,
    /// Whether TLS is offered (a certificate is configured).
    pub tls: bool,
    /// Milliseconds from the accept until the viewer must have
    /// authenticated.
    pub handshake_timeout_ms: u64,
    /// The WebSocket handshake's limits and Origin allow-list.
    pub websocket: handshake::Config<'a>,
    /// The WebSocket frames' limits.
    pub frames: frame::Config,
    /// The Flash policy served on a ticket's port.
    pub policy: policy::Config<'a>,
    /// Keep the RFB bytes of the handshake, each way in order
    /// ([`Entry::transcript`]), for recording sessions.
    pub transcript: bool,
}

/// Who the viewer is: the address the machine settled on
/// ([`Entry::client`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Client {
    /// The viewer's address: the socket's peer, or the client a trusted
    /// proxy named (an IPv4-mapped address is its IPv4 address).
    pub ip: IpAddr,
    /// Its port, when a PROXY header named it.
    pub port: Option<u16>,
    /// How it was learnt.
    pub via: Via,
}

/// How the machine learnt the viewer's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Via {
    /// The socket's peer ([`Config::peer`]).
    Peer,
    /// A trusted proxy's PROXY protocol header, of this version (1 or 2).
    Proxy(u8),
    /// A trusted proxy's HTTP header on the single port.
    Header(forwarded::Header),
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Via::Peer => f.write_str("the connection"),
            Via::Proxy(v) => write!(f, "PROXY v{v}"),
            Via::Header(h) => f.write_str(h.name()),
        }
    }
}

/// The RFB bytes of a handshake in the order they crossed, without TLS and
/// WebSocket framing ([`Entry::transcript`]).
#[derive(Debug, Default)]
pub struct Transcript {
    bytes: Vec<u8, TRANSCRIPT_CAP>,
    records: Vec<(bool, u16), TRANSCRIPT_RECORDS>,
    /// Some bytes did not fit (the transcript is a prefix).
    pub truncated: bool,
}

impl Transcript {
    fn push(&mut self, from_viewer: bool, b: &[u8]) {
        if b.is_empty() {
            return;
        }
        if self.bytes.extend_from_slice(b).is_err()
            || self.records.push((from_viewer, b.len() as u16)).is_err()
        {
            self.truncated = true;
        }
    }

    /// Each message: whether the viewer sent it (else vncap did), and its
    /// bytes.
    pub fn records(&self) -> impl Iterator<Item = (bool, &[u8])> {
        let mut at = 0usize;
        self.records.iter().map(move |&(from_viewer, len)| {
            let b = self
                .bytes
                .get(at..at + usize::from(len))
                .unwrap_or_default();
            at += usize::from(len);
            (from_viewer, b)
        })
    }
}

/// Why a viewer may not use a console, and how that is said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// What the viewer is told (RFB's "connection failed" reason).
    pub reason: &'static str,
    /// The HTTP status on the single port.
    pub http_status: u16,
}

impl Refusal {
    /// A viewer on the single port that named no token (or no WebSocket).
    pub const NO_TOKEN: Refusal = Refusal {
        reason: "this entry point serves WebSocket consoles named by a token",
        http_status: 404,
    };
}

impl From<ticket::signed::Error> for Refusal {
    fn from(e: ticket::signed::Error) -> Self {
        Refusal {
            reason: e.reason(),
            http_status: e.http_status(),
        }
    }
}

impl From<ticket::Error> for Refusal {
    fn from(e: ticket::Error) -> Self {
        Refusal {
            reason: e.reason(),
            http_status: e.http_status(),
        }
    }
}

/// What the viewer asks for, for the admit step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Incoming<'a> {
    /// The ticket it names: its port, or its token; `None` on the single
    /// port without a token.
    pub lookup: Option<Lookup<'a>>,
    /// The layers it arrived with.
    pub layers: Layers,
}

/// What the entry machine reports to its driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Run TLS over the connection (starting with the unconsumed input),
    /// then call [`Entry::tls_started`]: a TLS ClientHello arrived, or a
    /// native viewer chose VeNCrypt (X509Vnc) and RFB goes on inside TLS.
    StartTls,
    /// A trusted proxy's connection only, once, before [`Event::Admit`]:
    /// the viewer's address is settled ([`Entry::client`]); count it in
    /// per-source limits, then go on.
    Client,
    /// The layers are known: decide with [`Entry::admit_from`] or
    /// [`Entry::admit`].
    Admit,
    /// A Flash policy request was answered: flush, then close.
    PolicyServed,
    /// On the single port with a web root: a request for a static file
    /// ([`Entry::web_request`]); open it, then [`Entry::web_respond`].
    Serve,
    /// The viewer knows the password of this ticket: [`Entry::take_ticket`],
    /// the backend, then [`Entry::accept`] or [`Entry::reject`].
    Authenticated(Handle),
}

/// Why the connection ends before a session. The answer the protocol has is
/// queued in `poll_output` when the error is returned; errors are sticky.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The viewer closed its side before authenticating. No answer.
    Closed,
    /// A ClientHello where no TLS is offered: a `handshake_failure` alert.
    TlsNotOffered,
    /// The viewer spoke first with something that is not TLS, HTTP or a
    /// Flash policy request. No answer.
    UnknownProtocol,
    /// Inside TLS, something other than a WebSocket upgrade. No answer.
    NotWebSocketInsideTls,
    /// A trusted proxy's connection opened with a malformed PROXY protocol
    /// header. No answer.
    Proxy(proxy::Error),
    /// A PROXY protocol header where none is believed: from a peer that is
    /// not a trusted proxy, or a second one. No answer.
    ProxyHeaderRefused,
    /// The handshake deadline passed: 408, or RFB's failure, where the
    /// protocol has room.
    TimedOut,
    /// A malformed Flash policy request. No answer.
    Policy(policy::Error),
    /// A bad WebSocket upgrade request: its HTTP status.
    Handshake(ws::Error),
    /// A request for a static file that gets none (a refused path, a
    /// method other than GET or HEAD, no such file): its HTTP status.
    Web(web::Error),
    /// A bad WebSocket frame during the RFB handshake: its close code.
    Frame(ws::Error),
    /// The viewer may not use a console: its HTTP status on the single
    /// port, else RFB's "connection failed" with the reason.
    Refused(Refusal),
    /// The RFB handshake failed (the viewer's version or security type):
    /// RFB's answer.
    Rfb(server::Error),
    /// The viewer's response does not match the password: SecurityResult
    /// failed; the ticket loses an attempt ([`Entry::charge_attempt`]).
    WrongPassword,
    /// The driver called [`Entry::reject`] (or the ticket went before
    /// [`Entry::take_ticket`]): SecurityResult failed with the reason.
    Rejected,
}

impl Error {
    /// The variant's name, for logs that cannot format (defmt).
    pub const fn name(&self) -> &'static str {
        match self {
            Error::Closed => "closed",
            Error::TlsNotOffered => "TLS not offered",
            Error::UnknownProtocol => "unknown protocol",
            Error::NotWebSocketInsideTls => "not WebSocket inside TLS",
            Error::Proxy(_) => "PROXY header",
            Error::ProxyHeaderRefused => "PROXY header refused",
            Error::TimedOut => "timed out",
            Error::Policy(_) => "Flash policy",
            Error::Handshake(_) => "WebSocket handshake",
            Error::Web(_) => "static file",
            Error::Frame(_) => "WebSocket frame",
            Error::Refused(_) => "refused",
            Error::Rfb(_) => "RFB handshake",
            Error::WrongPassword => "wrong password",
            Error::Rejected => "rejected",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Closed => f.write_str("closed before authenticating"),
            Error::TlsNotOffered => {
                f.write_str("TLS is not offered on this entry point; sent handshake_failure")
            }
            Error::UnknownProtocol => {
                f.write_str("spoke first and is not a known protocol; closed")
            }
            Error::NotWebSocketInsideTls => {
                f.write_str("TLS: spoke first and is not a WebSocket upgrade; closed")
            }
            Error::Proxy(e) => write!(f, "{e}; closed"),
            Error::ProxyHeaderRefused => f.write_str(
                "a PROXY protocol header not from a trusted proxy (or a second one); closed",
            ),
            Error::TimedOut => f.write_str("handshake timed out"),
            Error::Policy(e) => write!(f, "Flash policy: {e}"),
            Error::Handshake(e) => write!(f, "WebSocket handshake: {e}"),
            Error::Web(e) => write!(f, "static file: {e}"),
            Error::Frame(e) => write!(f, "WebSocket: {e}"),
            Error::Refused(r) => write!(f, "refused: {}", r.reason),
            Error::Rfb(e) => write!(f, "RFB handshake: {e}"),
            Error::WrongPassword => f.write_str("wrong password"),
            Error::Rejected => f.write_str("rejected"),
        }
    }
}

/// Why the driver cannot give an authenticated viewer its console; the
/// viewer sees [`Rejection::reason`].
#[derive(Debug, Clone, Copy)]
pub enum Rejection<'a> {
    /// The backend could not be reached (the detail, for the driver's log:
    /// the connect error, the allow-list's refusal). The viewer is told
    /// [`BACKEND_UNREACHABLE`], as for the three below that say whether
    /// something listens.
    Unreachable(&'a str),
    /// The backend refused the login: the RFB client's error, and the
    /// reason the backend gave, if any.
    LoginFailed(crate::rfb::client::Error, Option<&'a str>),
    /// The backend's connection failed during the login (the detail).
    LoginBroken(&'a str),
    /// TLS toward the backend (VeNCrypt) failed; the detail is the driver's
    /// TLS library's finding (certificate not trusted, name mismatch, a
    /// client certificate demanded), sent as it is.
    BackendTls(&'a str),
    /// The backend accepted the connection but did not finish RFB in time.
    LoginTimedOut,
    /// The ticket can no longer be used (it expired while the viewer
    /// answered, or a second viewer was faster).
    Ticket(ticket::Error),
    /// The proxy holds as many sessions as it may; the ticket is kept for
    /// a later try.
    Full,
    /// The proxy could not take what the session needs (the resource:
    /// "file descriptors", "memory"); the ticket is kept for a later try.
    OutOfResources(&'a str),
}

/// What a viewer is told for every backend that cannot be reached, whatever
/// the cause ([`Rejection::Unreachable`]).
pub const BACKEND_UNREACHABLE: &str = "backend unreachable";

impl Rejection<'_> {
    /// The reason sent to the viewer (RFB 3.8 SecurityResult), at most
    /// [`REASON_MAX`] bytes.
    pub fn reason(&self) -> Reason {
        let mut s: heapless::String<REASON_MAX> = heapless::String::new();
        // A longer text is cut by the write: what fits is sent.
        let _ = match self {
            // Closed, filtered, refused by --backend-allow, silent, not
            // VNC: one answer, so a viewer cannot scan with tickets (the
            // driver logs the detail).
            Rejection::Unreachable(_)
            | Rejection::LoginBroken(_)
            | Rejection::LoginTimedOut
            | Rejection::LoginFailed(crate::rfb::client::Error::NotRfb, _) => {
                s.write_str(BACKEND_UNREACHABLE)
            }
            Rejection::LoginFailed(e, Some(r)) if !r.is_empty() => write!(s, "backend: {e}: {r}"),
            Rejection::LoginFailed(e, _) => write!(s, "backend: {e}"),
            Rejection::BackendTls(detail) => s.write_str(detail),
            Rejection::OutOfResources(what) => {
                write!(s, "the proxy is out of {what}; try again in a moment")
            }
            Rejection::Ticket(e) => s.write_str(e.reason()),
            Rejection::Full => s.write_str("the proxy is full; try again in a moment"),
        };
        Reason::from_str_truncated(&s)
    }
}

/// What [`Entry::into_relay`] hands over once the viewer is accepted.
#[derive(Debug)]
pub struct Relay {
    /// The WebSocket connection (its decoder's state included), if the
    /// viewer came over WebSocket.
    pub websocket: Option<Connection>,
    /// RFB bytes the viewer sent after its response (decoded from frames):
    /// write them to the backend first.
    pub early_rfb: Vec<u8, RFB_CAP>,
    /// Undecoded WebSocket bytes the machine had read: they come before the
    /// driver's own unconsumed input. (Without WebSocket, the early bytes
    /// are all in the driver's unconsumed input.)
    pub raw: Vec<u8, RAW_CAP>,
}

#[derive(Debug)]
enum State {
    /// A trusted proxy's connection: reading a PROXY header, if one comes;
    /// then [`State::Sniff`] with the same silence (or, on a native-only
    /// port, the greeting).
    Front { silence_at: Instant },
    /// Looking at the first bytes (the second time inside TLS).
    Sniff {
        inside_tls: bool,
        silence_at: Instant,
    },
    /// [`Event::StartTls`] reported; waiting for [`Entry::tls_started`].
    Tls,
    /// Answering a Flash policy request (`Entry::policy`).
    Policy,
    /// Reading the WebSocket upgrade request.
    Upgrade,
    /// On the single port with a web root: reading an HTTP request head,
    /// an upgrade or a request for a file (`Entry::web`).
    Http,
    /// [`Event::Serve`] reported; waiting for [`Entry::web_respond`].
    Serve,
    /// [`Event::Admit`] reported; waiting for the decision.
    Admit,
    /// The RFB server handshake.
    Rfb,
    /// VeNCrypt: [`Event::StartTls`] reported from inside the RFB
    /// handshake; waiting for [`Entry::tls_started`], then RFB goes on
    /// inside TLS.
    VencryptTls,
    /// [`Event::Authenticated`] reported; waiting for accept or reject.
    Decision,
    /// SecurityResult OK queued.
    Accepted,
    /// Done: the policy was served, or `error`.
    Done,
}

/// One viewer connection's way in (see the module docs).
pub struct Entry<'a> {
    config: Config<'a>,
    state: State,
    layers: Layers,
    deadline: Instant,
    challenge: [u8; CHALLENGE_LEN],
    /// Input was offered while sniffing (bytes that are not yet anything).
    spoke: bool,
    upgrade: Option<Handshake<'a>>,
    /// Requests that are not upgrades get static files
    /// ([`Entry::with_web_root`]).
    web_root: bool,
    web: Option<web::Exchange>,
    policy: Option<policy::Policy>,
    server: Option<Server>,
    websocket: Option<Connection>,
    admitted: Option<Handle>,
    refusal: Option<Refusal>,
    raw: Vec<u8, RAW_CAP>,
    rfb: Vec<u8, RFB_CAP>,
    alert_sent: Option<usize>,
    /// Inside WebSocket: the frames for the viewer, in the order the
    /// machine made them (one data frame per RFB answer), and how much of
    /// it is sent.
    wire: Vec<u8, WIRE_CAP>,
    wire_sent: usize,
    /// Bytes of pongs queued so far ([`PONG_BUDGET`]).
    pongs: usize,
    transcript: Option<Transcript>,
    /// The socket's peer is a trusted proxy.
    trusted: bool,
    /// The viewer's address as far as known.
    client: Client,
    /// The client is settled (from the start unless `trusted`).
    settled: bool,
    /// [`Event::Client`] is due (it goes out before `event`).
    client_event: bool,
    /// A native viewer's first bytes were seen not to be a PROXY header.
    native_checked: bool,
    event: Option<Event>,
    error: Option<Error>,
}

impl fmt::Debug for Entry<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("door", &self.config.door)
            .field("state", &self.state)
            .field("layers", &self.layers)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl<'a> Entry<'a> {
    /// The machine for a viewer accepted at `now`. `challenge` is the VNC
    /// authentication challenge, from a secure RNG. A PROXY header from
    /// this peer is refused ([`Entry::from_trusted_proxy`] believes one).
    pub fn new(config: Config<'a>, now: Instant, challenge: [u8; CHALLENGE_LEN]) -> Self {
        Self::start(config, now, challenge, false)
    }

    /// [`Entry::new`] for a connection whose socket peer is a trusted proxy:
    /// it may open with a PROXY header naming the client, and on the single
    /// port its `X-Forwarded-For`/`Forwarded` may name it (see the module
    /// docs, "Behind a load balancer").
    pub fn from_trusted_proxy(
        config: Config<'a>,
        now: Instant,
        challenge: [u8; CHALLENGE_LEN],
    ) -> Self {
        Self::start(config, now, challenge, true)
    }

    fn start(
        config: Config<'a>,
        now: Instant,
        challenge: [u8; CHALLENGE_LEN],
        trusted: bool,
    ) -> Self {
        let silence_at = now + sniff::SILENCE_TIMEOUT_MS;
        let mut entry = Entry {
            config,
            state: if trusted {
                State::Front { silence_at }
            } else {
                State::Sniff {
                    inside_tls: false,
                    silence_at,
                }
            },
            layers: Layers::default(),
            deadline: now + config.handshake_timeout_ms,
            challenge,
            spoke: false,
            upgrade: None,
            web_root: false,
            web: None,
            policy: None,
            server: None,
            websocket: None,
            admitted: None,
            refusal: None,
            raw: Vec::new(),
            rfb: Vec::new(),
            alert_sent: None,
            wire: Vec::new(),
            wire_sent: 0,
            pongs: 0,
            transcript: config.transcript.then(Transcript::default),
            trusted,
            client: Client {
                ip: config.peer.to_canonical(),
                port: None,
                via: Via::Peer,
            },
            settled: !trusted,
            client_event: false,
            native_checked: false,
            event: None,
            error: None,
        };
        if !trusted && config.door.native_only() {
            entry.ask_admit();
        }
        entry
    }

    /// The viewer's address the machine settled on: the socket's peer, or
    /// the client a trusted proxy named (final once [`Event::Client`] was
    /// reported, or from the start for anyone but a trusted proxy).
    pub fn client(&self) -> Client {
        self.client
    }

    /// On the single port, serve static files: an HTTP request that is not
    /// a WebSocket upgrade asks for one ([`Event::Serve`]) instead of
    /// failing the handshake. Call before the first input; no effect on a
    /// ticket's port.
    pub fn with_web_root(mut self) -> Self {
        self.web_root = matches!(self.config.door, Door::Single { .. });
        self
    }

    /// After [`Event::Serve`]: the file asked for.
    pub fn web_request(&self) -> Option<&web::Request> {
        self.web.as_ref().and_then(web::Exchange::request)
    }

    /// After [`Event::Serve`]: the file found (its length), or `None`
    /// (404). Queues the response head and ends the machine; returns
    /// whether the file's bytes follow the head (a GET of a file found).
    /// `None` fails the machine with [`Error::Web`] (the 404 queued).
    pub fn web_respond(&mut self, found: Option<web::Body>) -> bool {
        if !matches!(self.state, State::Serve) {
            return false;
        }
        let Some(x) = self.web.as_mut() else {
            return false;
        };
        let body = x.respond(found);
        match x.handle_input(&[]) {
            Err(e) => {
                self.fail(Error::Web(e));
            }
            Ok(_) => self.state = State::Done,
        }
        body
    }

    /// The door.
    pub fn door(&self) -> Door {
        self.config.door
    }

    /// The layers the viewer arrived with (as far as known).
    pub fn layers(&self) -> Layers {
        self.layers
    }

    /// The RFB bytes so far, with [`Config::transcript`].
    pub fn transcript(&self) -> Option<&Transcript> {
        self.transcript.as_ref()
    }

    /// The ticket the viewer was admitted to, once admitted.
    pub fn admitted(&self) -> Option<Handle> {
        self.admitted
    }

    /// After [`Event::StartTls`]: TLS is up at `now`; feed its plaintext
    /// from now on. Inside, a WebSocket upgrade or a silence may follow.
    pub fn tls_started(&mut self, now: Instant) {
        match self.state {
            State::Tls => {
                self.layers.tls = true;
                self.spoke = false;
                self.state = State::Sniff {
                    inside_tls: true,
                    silence_at: now + sniff::SILENCE_TIMEOUT_MS,
                };
            }
            State::VencryptTls => {
                self.layers.tls = true;
                if let Some(s) = self.server.as_mut() {
                    s.tls_established();
                }
                self.state = State::Rfb;
            }
            _ => {}
        }
    }

    /// What RFB security the server offers a viewer that arrived with
    /// `layers`: VeNCrypt (X509Vnc, TLS from vncap's certificate) to a
    /// native viewer on plain TCP when a certificate is configured and the
    /// console allows TLS — alone for a TLS-only console — else VNC
    /// authentication only (inside TLS or WebSocket, or without a
    /// certificate). Never None, Plain or anonymous TLS.
    pub fn security_offer(&self) -> server::Offer {
        let plain_native = !self.layers.tls && !self.layers.websocket;
        let tls = match self.config.door {
            Door::Port { offers, .. } => offers.tls,
            Door::Single { .. } => Need::No,
        };
        match (plain_native && self.config.tls, tls) {
            (true, Need::Yes) => server::Offer::VencryptOnly,
            (true, Need::Either) => server::Offer::VencryptAndVncAuth,
            _ => server::Offer::VncAuth,
        }
    }

    /// After [`Event::Admit`]: what the viewer asks for.
    pub fn incoming(&self) -> Incoming<'_> {
        let lookup = match self.config.door {
            Door::Port { port, .. } => Some(Lookup::Port(port)),
            Door::Single { .. } => self
                .upgrade
                .as_ref()
                .and_then(Handshake::request)
                .and_then(|r| r.query_param("token"))
                .map(|t| Lookup::Token(t.as_bytes())),
        };
        Incoming {
            lookup,
            layers: self.layers,
        }
    }

    /// After [`Event::Admit`]: asks `table` whether the viewer may come in
    /// at `now` ([`Table::admit`]: the ticket exists, is pending, is not
    /// pinned to another address, offers these layers; on a ticket's port,
    /// it is still the ticket the port was opened for), and goes on.
    pub fn admit_from<S: AsRef<[Slot]> + AsMut<[Slot]>>(&mut self, table: &Table<S>, now: Instant) {
        let Incoming { lookup, layers } = self.incoming();
        // A native viewer offered VeNCrypt alone will be inside TLS.
        let vencrypt = self.security_offer() == server::Offer::VencryptOnly;
        let found = lookup.ok_or(Refusal::NO_TOKEN).and_then(|lookup| {
            let arrived = (layers.tls || vencrypt, layers.websocket);
            let h = table.admit(lookup, self.client.ip, now, arrived)?;
            match self.config.door {
                Door::Port { handle, .. } if handle != h => Err(ticket::Error::NoSuchTicket.into()),
                _ => Ok(h),
            }
        });
        match found.and_then(|h| {
            let t = table.get(h).ok_or(ticket::Error::NoSuchTicket)?;
            Ok((h, t))
        }) {
            Ok((h, t)) => self.admit(Ok((h, t.viewer_password.as_bytes()))),
            Err(refusal) => self.admit(Err(refusal)),
        }
    }

    /// After [`Event::Admit`], where single-port tokens are signed
    /// (`--ticket-key`): on the single port the token is opened with `keys`
    /// at the wall clock `wall` and adopted into `table` once per instance
    /// ([`Table::admit_signed`]: tampered or foreign-key tokens get 403,
    /// expired or used ones 404, a full memory 503, before any upgrade);
    /// any other door is [`Entry::admit_from`]. Returns the decision, for
    /// the driver's log.
    pub fn admit_signed_from<S, N>(
        &mut self,
        table: &mut Table<S>,
        nonces: &mut ticket::nonces::Nonces<N>,
        keys: &ticket::signed::Keys,
        (now, wall): (Instant, ticket::signed::UnixTime),
    ) -> Result<(), Refusal>
    where
        S: AsRef<[Slot]> + AsMut<[Slot]>,
        N: AsRef<[ticket::nonces::Slot]> + AsMut<[ticket::nonces::Slot]>,
    {
        if !matches!(self.config.door, Door::Single { .. }) {
            self.admit_from(table, now);
            return match self.error {
                Some(Error::Refused(r)) => Err(r),
                _ => Ok(()),
            };
        }
        let Incoming { lookup, layers } = self.incoming();
        let found = match lookup {
            Some(Lookup::Token(token)) => table
                .admit_signed(
                    nonces,
                    keys,
                    token,
                    self.client.ip,
                    (now, wall),
                    (layers.tls, layers.websocket),
                )
                .map_err(Refusal::from),
            _ => Err(Refusal::NO_TOKEN),
        };
        let decision = found.and_then(|h| {
            let t = table
                .get(h)
                .ok_or(Refusal::from(ticket::Error::NoSuchTicket))?;
            Ok((h, t.viewer_password.as_bytes()))
        });
        let result = decision.map(drop);
        self.admit(decision);
        result
    }

    /// After [`Event::Admit`]: the decision (the ticket and its viewer
    /// password, or why not). A refusal is answered as the door requires.
    pub fn admit(&mut self, decision: Result<(Handle, &[u8]), Refusal>) {
        if !matches!(self.state, State::Admit) {
            return;
        }
        let server = match decision {
            Ok((handle, password)) => {
                self.admitted = Some(handle);
                Server::new(password, self.challenge).with_offer(self.security_offer())
            }
            Err(refusal) => {
                if let (Door::Single { .. }, Some(up)) = (self.config.door, self.upgrade.as_mut()) {
                    // No console behind this URL: an HTTP answer.
                    up.reject(refusal.http_status);
                    self.fail(Error::Refused(refusal));
                    return;
                }
                self.refusal = Some(refusal);
                Server::refusing(refusal.reason)
            }
        };
        if let Some(up) = self.upgrade.as_mut() {
            up.accept();
            let sub = match up.poll_event() {
                Some(handshake::Event::Upgraded(sub)) => sub,
                _ => up.subprotocol().unwrap_or(ws::Subprotocol::None),
            };
            self.websocket = Some(Connection::new(sub, self.config.frames));
        }
        self.server = Some(server);
        self.state = State::Rfb;
        self.frame_output();
    }

    /// The admitted ticket, while the driver decides on an authenticated
    /// viewer ([`Event::Authenticated`]).
    fn decided(&self) -> Result<Handle, ticket::Error> {
        match (&self.state, self.admitted) {
            (State::Decision, Some(h)) => Ok(h),
            _ => Err(ticket::Error::NoSuchTicket),
        }
    }

    /// After [`Event::Authenticated`]: takes the ticket out of `table` (it is
    /// one-time: its port closes, [`ticket::Event::Closed`] is queued). If
    /// it can no longer be had, the viewer is told why and the machine stops
    /// with [`Error::Rejected`].
    pub fn take_ticket<S: AsRef<[Slot]> + AsMut<[Slot]>>(
        &mut self,
        table: &mut Table<S>,
        now: Instant,
    ) -> Result<Ticket, ticket::Error> {
        let handle = self.decided()?;
        table.authenticated(handle, now).inspect_err(|&e| {
            self.reject(Rejection::Ticket(e));
        })
    }

    /// After [`Event::Authenticated`], when the session's resources come
    /// first: claims the ticket in `table` ([`Table::claim`]: it stays, no
    /// other viewer finds it, it does not expire) and returns a copy (the
    /// backend to reach). Then either [`Entry::take_ticket`] once
    /// everything is in hand, or [`Entry::release_ticket`] and
    /// [`Entry::reject`] if something cannot be had. If the ticket can no
    /// longer be had, the viewer is told why, as by `take_ticket`.
    pub fn claim_ticket<S: AsRef<[Slot]> + AsMut<[Slot]>>(
        &mut self,
        table: &mut Table<S>,
        now: Instant,
    ) -> Result<Ticket, ticket::Error> {
        let handle = self.decided()?;
        table.claim(handle, now).inspect_err(|&e| {
            self.reject(Rejection::Ticket(e));
        })
    }

    /// Gives a ticket [`Entry::claim_ticket`] claimed back to `table`: the
    /// viewer keeps it for another try (with [`Rejection::OutOfResources`]
    /// or [`Rejection::Full`]).
    pub fn release_ticket<S: AsRef<[Slot]> + AsMut<[Slot]>>(&self, table: &mut Table<S>) {
        if let Some(h) = self.admitted {
            let _ = table.release(h);
        }
    }

    /// After [`Event::Authenticated`] and the backend's login: sends
    /// SecurityResult OK. Flush, then [`Entry::into_relay`].
    pub fn accept(&mut self) -> bool {
        if !matches!(self.state, State::Decision) {
            return false;
        }
        let ok = self.server.as_mut().is_some_and(Server::accept);
        if ok {
            self.state = State::Accepted;
            self.frame_output();
        }
        ok
    }

    /// After [`Event::Authenticated`]: sends SecurityResult failed with the
    /// reason for `why` (and closes the WebSocket after it); the machine
    /// stops with [`Error::Rejected`]. Returns the reason sent, for the log.
    pub fn reject(&mut self, why: Rejection<'_>) -> Reason {
        let reason = why.reason();
        if matches!(self.state, State::Decision) {
            if let Some(s) = self.server.as_mut() {
                s.reject(reason.as_str());
            }
            self.fail(Error::Rejected);
        }
        reason
    }

    /// After an error: applies the ticket rule for it to `table`. A wrong
    /// password uses one of its source's guesses (with the last failing
    /// source, the ticket is gone: [`Table::failed_attempt`]); every other
    /// failure leaves the ticket alone. Returns what
    /// became of the attempts, when one was used.
    pub fn charge_attempt<S: AsRef<[Slot]> + AsMut<[Slot]>>(
        &self,
        table: &mut Table<S>,
    ) -> Option<Attempt> {
        match (self.error, self.admitted) {
            (Some(Error::WrongPassword), Some(h)) => table.failed_attempt(h, self.client.ip).ok(),
            _ => None,
        }
    }

    /// After [`Entry::accept`] (and the flush): the WebSocket connection and
    /// the bytes read past the handshake, for the relay.
    pub fn into_relay(self) -> Relay {
        Relay {
            websocket: self.websocket,
            early_rfb: self.rfb,
            raw: self.raw,
        }
    }

    fn ask_admit(&mut self) {
        if !self.settled {
            // On the single port, a trusted proxy's HTTP header names the
            // client when no PROXY header did.
            let named = self
                .upgrade
                .as_ref()
                .and_then(Handshake::request)
                .and_then(|r| r.forwarded);
            if let (Door::Single { .. }, Via::Peer, Some(n)) =
                (self.config.door, self.client.via, named)
            {
                self.client = Client {
                    ip: n.ip,
                    port: None,
                    via: Via::Header(n.header),
                };
            }
            self.settle();
        }
        self.state = State::Admit;
        self.event = Some(Event::Admit);
    }

    /// The client is final: a trusted proxy's driver hears of it.
    fn settle(&mut self) {
        if !self.settled {
            self.settled = true;
            self.client_event = self.trusted;
        }
    }

    /// A trusted proxy's connection: the PROXY header (if any) is behind
    /// us. Settles the client unless the single port's upgrade request may
    /// still name it; a native-only port greets now.
    fn end_front(&mut self, silence_at: Instant) {
        self.spoke = false;
        self.state = State::Sniff {
            inside_tls: false,
            silence_at,
        };
        if !matches!(self.config.door, Door::Single { .. }) || self.client.via != Via::Peer {
            self.settle();
        }
        if self.config.door.native_only() {
            self.ask_admit();
        }
    }

    /// A trusted proxy's first bytes: a PROXY header, or not one.
    fn front(&mut self, input: &[u8], silence_at: Instant) -> Result<usize, Error> {
        if input.is_empty() {
            return Ok(0);
        }
        match proxy::parse(input) {
            Ok(None) => {
                self.spoke = true;
                Ok(0)
            }
            Ok(Some(header)) => {
                if let proxy::Source::Tcp { source, .. } = header.source {
                    self.client = Client {
                        ip: source.ip().to_canonical(),
                        port: Some(source.port()),
                        via: Via::Proxy(header.version),
                    };
                }
                self.end_front(silence_at);
                Ok(header.len)
            }
            Err(proxy::Error::NotProxy) => {
                self.end_front(silence_at);
                self.step(input)
            }
            Err(e) => Err(self.fail(Error::Proxy(e))),
        }
    }

    fn fail(&mut self, e: Error) -> Error {
        if self.error.is_none() {
            debug!("entry: {}", e.name());
            self.error = Some(e);
            self.state = State::Done;
            let why = match e {
                Error::Frame(_) | Error::Closed => None,
                Error::WrongPassword => Some("authentication failed"),
                Error::TimedOut => Some(TIMED_OUT),
                Error::Rejected => Some("no session"),
                _ => Some("refused"),
            };
            // Inside WebSocket: the RFB answer, then a close frame.
            self.frame_output();
            if let (Some(conn), Some(why)) = (self.websocket.as_mut(), why) {
                conn.close(CLOSE_REFUSED, why);
                self.frame_output();
            }
        }
        self.error.unwrap_or(e)
    }

    fn rfb_failed(&mut self, e: server::Error) -> Error {
        let err = match e {
            server::Error::AuthenticationFailed => Error::WrongPassword,
            server::Error::Refused => Error::Refused(self.refusal.unwrap_or(Refusal {
                reason: e.reason(),
                http_status: 403,
            })),
            server::Error::TimedOut => Error::TimedOut,
            server::Error::Rejected => Error::Rejected,
            other => Error::Rfb(other),
        };
        self.fail(err)
    }

    /// One step on `input`; `Ok(0)`: needs more (or waits for the driver).
    fn step(&mut self, input: &[u8]) -> Result<usize, Error> {
        match &mut self.state {
            State::Front { silence_at } => {
                let silence_at = *silence_at;
                self.front(input, silence_at)
            }
            State::Sniff { inside_tls, .. } => {
                let inside_tls = *inside_tls;
                if !input.is_empty() {
                    self.spoke = true;
                }
                match sniff::sniff(input) {
                    None => Ok(0),
                    Some(Kind::Tls) if inside_tls => Err(self.fail(Error::NotWebSocketInsideTls)),
                    Some(Kind::Tls) if self.config.tls => {
                        self.state = State::Tls;
                        self.event = Some(Event::StartTls);
                        Ok(0)
                    }
                    Some(Kind::Tls) => {
                        self.alert_sent = Some(0);
                        Err(self.fail(Error::TlsNotOffered))
                    }
                    Some(Kind::Http) if self.web_root => {
                        let max = self.config.websocket.max_header_bytes;
                        self.web = Some(web::Exchange::new(max));
                        self.state = State::Http;
                        self.step(input)
                    }
                    Some(Kind::Http) => self.start_upgrade(input),
                    Some(Kind::FlashPolicy) if !inside_tls => {
                        match policy::Policy::new(&self.config.policy) {
                            Ok(p) => {
                                self.policy = Some(p);
                                self.state = State::Policy;
                                self.step(input)
                            }
                            Err(_) => {
                                Err(self.fail(Error::Policy(policy::Error::NotPolicyRequest)))
                            }
                        }
                    }
                    Some(Kind::FlashPolicy) => Err(self.fail(Error::NotWebSocketInsideTls)),
                    Some(Kind::Unknown) if inside_tls => {
                        Err(self.fail(Error::NotWebSocketInsideTls))
                    }
                    Some(Kind::Unknown) => match proxy::starts_header(input) {
                        None => Ok(0),
                        Some(true) => Err(self.fail(Error::ProxyHeaderRefused)),
                        Some(false) => Err(self.fail(Error::UnknownProtocol)),
                    },
                }
            }
            State::Policy => match self
                .policy
                .as_mut()
                .map_or(Ok(0), |p| p.handle_input(input))
            {
                Ok(n) => {
                    if self.policy.as_mut().and_then(Machine::poll_event).is_some() {
                        self.event = Some(Event::PolicyServed);
                    }
                    Ok(n)
                }
                Err(e) => Err(self.fail(Error::Policy(e))),
            },
            State::Upgrade => {
                let Some(up) = self.upgrade.as_mut() else {
                    return Err(self.fail(Error::Closed));
                };
                match up.handle_input(input) {
                    Ok(n) => {
                        if let Some(handshake::Event::Request) = up.poll_event() {
                            self.ask_admit();
                        }
                        Ok(n)
                    }
                    Err(e) => Err(self.fail(Error::Handshake(e))),
                }
            }
            // A request that is not an upgrade (with a web root).
            State::Http => {
                let Some(x) = self.web.as_mut() else {
                    return Err(self.fail(Error::Closed));
                };
                match x.handle_input(input) {
                    Ok(n) => match x.poll_event() {
                        Some(web::Event::Upgrade) => {
                            self.web = None;
                            self.start_upgrade(input)
                        }
                        Some(web::Event::Request) => {
                            self.state = State::Serve;
                            self.event = Some(Event::Serve);
                            Ok(n)
                        }
                        None => Ok(n),
                    },
                    Err(e) => Err(self.fail(Error::Web(e))),
                }
            }
            State::Rfb if self.websocket.is_some() => self.rfb_in_frames(input),
            State::Rfb => {
                if !self.native_checked && !self.layers.tls {
                    // A native-only port greets at once: a PROXY header here
                    // is not the viewer's ProtocolVersion.
                    match proxy::starts_header(input) {
                        None => return Ok(0),
                        Some(true) => return Err(self.fail(Error::ProxyHeaderRefused)),
                        Some(false) => self.native_checked = true,
                    }
                }
                let Some(server) = self.server.as_mut() else {
                    return Err(self.fail(Error::Closed));
                };
                match server.handle_input(input) {
                    Ok(n) => {
                        if let Some(t) = self.transcript.as_mut() {
                            t.push(true, input.get(..n).unwrap_or_default());
                        }
                        self.after_rfb_step();
                        Ok(n)
                    }
                    Err(e) => Err(self.rfb_failed(e)),
                }
            }
            // The rest of the frame that finished the handshake, if the
            // response ended inside one.
            State::Decision | State::Accepted => Ok(self.rest_of_frame(input)),
            State::Tls | State::VencryptTls | State::Admit | State::Serve => Ok(0),
            State::Done => Err(self.error.unwrap_or(Error::Closed)),
        }
    }

    /// The WebSocket upgrade request begins at `input`.
    fn start_upgrade(&mut self, input: &[u8]) -> Result<usize, Error> {
        self.layers.websocket = true;
        self.upgrade = Some(Handshake::new(self.config.websocket));
        self.state = State::Upgrade;
        self.step(input)
    }

    /// Whether the RFB server authenticated the viewer (then reports it).
    fn after_rfb_step(&mut self) -> bool {
        let authenticated = match self.server.as_mut().and_then(Machine::poll_event) {
            Some(server::Event::Authenticated) => true,
            Some(server::Event::StartTls) => {
                // VeNCrypt: TLS inside RFB, run by the driver as for a
                // sniffed ClientHello.
                self.state = State::VencryptTls;
                self.event = Some(Event::StartTls);
                return true;
            }
            None => false,
        };
        if let (true, Some(h)) = (authenticated, self.admitted) {
            self.state = State::Decision;
            self.event = Some(Event::Authenticated(h));
        }
        authenticated
    }

    /// Copies into `raw` what of `input` still belongs to the frame being
    /// read, never past its end (so the hand-over falls at a frame's end
    /// whatever the reads were); returns how many bytes.
    fn take_frame_bytes(&mut self, input: &[u8]) -> usize {
        let Some(conn) = self.websocket.as_ref() else {
            return 0;
        };
        let n = conn
            .decoder()
            .frame_wants(&self.raw)
            .min(RAW_CAP - self.raw.len())
            .min(input.len());
        let _ = self
            .raw
            .extend_from_slice(input.get(..n).unwrap_or_default());
        n
    }

    /// After the handshake: [`Entry::take_frame_bytes`] while a frame is
    /// still being read (the one whose payload ended the handshake), never
    /// the next.
    fn rest_of_frame(&mut self, input: &[u8]) -> usize {
        match self.websocket.as_ref() {
            Some(conn) if conn.decoder().in_frame() => self.take_frame_bytes(input),
            _ => 0,
        }
    }

    /// RFB inside WebSocket frames: takes frame bytes into `raw`, decodes
    /// them into `rfb` and feeds the RFB server until it authenticates;
    /// then takes the rest of that frame.
    fn rfb_in_frames(&mut self, input: &[u8]) -> Result<usize, Error> {
        let mut took = 0;
        loop {
            let rest = input.get(took..).unwrap_or_default();
            if self.feed_server_by_message()? {
                return Ok(took + self.rest_of_frame(rest));
            }
            let taken = self.take_frame_bytes(rest);
            took += taken;
            let Some(conn) = self.websocket.as_mut() else {
                return Ok(took);
            };
            // A window whose decoded piece fits into `rfb` (a piece that
            // did not would be lost: the decoder has consumed it). The
            // frame's own header, not the longest one: in a frame, or
            // after a short header, that would be up to 14 bytes too many.
            let room = RFB_CAP - self.rfb.len();
            let window = conn.decoder().window(&self.raw, room);
            let origin = self.raw.as_ptr() as usize;
            let (used, piece) = match conn.decode(&mut self.raw[..window]) {
                Ok((used, Some(Decoded::Data { bytes, .. }))) => {
                    // Where in `raw` the decoder left the piece (unmasked,
                    // or base64-decoded, in place).
                    let at = bytes.as_ptr() as usize - origin;
                    (used, Some(at..at + bytes.len()))
                }
                Ok((_, Some(Decoded::Closed { .. }))) => return Err(self.fail(Error::Closed)),
                Ok((used, None)) => (used, None),
                Err(e) => return Err(self.fail(Error::Frame(e))),
            };
            // Move the piece to `rfb`, then drop the consumed bytes.
            if let Some(piece) = piece.as_ref() {
                let _ = self
                    .rfb
                    .extend_from_slice(self.raw.get(piece.clone()).unwrap_or_default());
            }
            drop_front(&mut self.raw, used);
            // Pongs go out in order with the answers.
            self.frame_output();
            if used == 0 && taken == 0 && piece.is_none() {
                // Nothing decodable, nothing more to take: read more.
                return Ok(took);
            }
        }
    }

    /// Inside WebSocket: feeds the RFB server the decoded bytes one
    /// message at a time (the shortest prefix it takes), so each answer
    /// goes out as a frame of its own whatever the reads were. Returns
    /// whether the viewer authenticated.
    fn feed_server_by_message(&mut self) -> Result<bool, Error> {
        let mut k = 1;
        while k <= self.rfb.len() {
            let Some(server) = self.server.as_mut() else {
                break;
            };
            match server.handle_input(self.rfb.get(..k).unwrap_or_default()) {
                Ok(0) => k += 1,
                Ok(n) => {
                    if let Some(t) = self.transcript.as_mut() {
                        t.push(true, self.rfb.get(..n).unwrap_or_default());
                    }
                    drop_front(&mut self.rfb, n);
                    self.frame_output();
                    if self.after_rfb_step() {
                        return Ok(true);
                    }
                    k = 1;
                }
                Err(e) => return Err(self.rfb_failed(e)),
            }
        }
        Ok(false)
    }

    /// Inside WebSocket: moves what is queued — the decoder's control
    /// frames, then the RFB server's answer as one data frame — to the
    /// frames for the viewer.
    fn frame_output(&mut self) {
        let Some(conn) = self.websocket.as_mut() else {
            return;
        };
        let mut frame = [0u8; RFB_CAP];
        loop {
            let n = conn.poll_output(&mut frame);
            if n == 0 {
                break;
            }
            if conn.is_closed() || self.error.is_some() {
                let _ = self.wire.extend_from_slice(&frame[..n]);
            } else if self.pongs + n <= PONG_BUDGET {
                self.pongs += n;
                let _ = self.wire.extend_from_slice(&frame[..n]);
            }
        }
        let Some(server) = self.server.as_mut() else {
            return;
        };
        let mut data = [0u8; RFB_CAP];
        let room = conn.encoder().max_data(frame.len()).min(data.len());
        loop {
            let n = server.poll_output(&mut data[..room]);
            if n == 0 {
                break;
            }
            if let Some(t) = self.transcript.as_mut() {
                t.push(false, &data[..n]);
            }
            let (_, written) = conn.encode(&data[..n], &mut frame);
            let _ = self.wire.extend_from_slice(&frame[..written]);
        }
    }
}

/// Removes the first `n` bytes of `v`.
fn drop_front<const N: usize>(v: &mut Vec<u8, N>, n: usize) {
    let n = n.min(v.len());
    v.copy_within(n.., 0);
    v.truncate(v.len() - n);
}

impl Machine for Entry<'_> {
    type Event = Event;
    type Error = Error;

    fn handle_input(&mut self, input: &[u8]) -> Result<usize, Error> {
        if let Some(e) = self.error {
            return Err(e);
        }
        crate::machine::run_steps(input, |rest| self.step(rest))
    }

    fn handle_eof(&mut self, input: &[u8]) -> Result<usize, Error> {
        let n = self.handle_input(input)?;
        if self.event.is_some() || matches!(self.state, State::Accepted | State::Decision) {
            return Ok(n);
        }
        Err(self.fail(Error::Closed))
    }

    fn poll_output(&mut self, out: &mut [u8]) -> usize {
        let mut n = 0;
        if let Some(sent) = self.alert_sent.as_mut() {
            n += crate::machine::send_queued(&sniff::TLS_HANDSHAKE_FAILURE, sent, out);
        }
        if let Some(x) = self.web.as_mut() {
            n += x.poll_output(out.get_mut(n..).unwrap_or_default());
        }
        if let Some(up) = self.upgrade.as_mut() {
            n += up.poll_output(out.get_mut(n..).unwrap_or_default());
        }
        if let Some(p) = self.policy.as_mut() {
            n += p.poll_output(out.get_mut(n..).unwrap_or_default());
        }
        if self.websocket.is_none() {
            if let Some(server) = self.server.as_mut() {
                let rest = out.get_mut(n..).unwrap_or_default();
                let m = server.poll_output(rest);
                if let Some(t) = self.transcript.as_mut() {
                    t.push(false, rest.get(..m).unwrap_or_default());
                }
                n += m;
            }
            return n;
        }
        let rest = out.get_mut(n..).unwrap_or_default();
        n += crate::machine::send_queued(&self.wire, &mut self.wire_sent, rest);
        if self.wire_sent == self.wire.len() {
            self.wire.clear();
            self.wire_sent = 0;
        }
        n
    }

    fn poll_event(&mut self) -> Option<Event> {
        if self.client_event {
            self.client_event = false;
            return Some(Event::Client);
        }
        self.event.take()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Front { .. } if self.spoke => Some(self.deadline),
            State::Front { silence_at } | State::Sniff { silence_at, .. } => {
                Some(silence_at.min(self.deadline))
            }
            State::Decision | State::Accepted | State::Done => None,
            _ => Some(self.deadline),
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        if self.error.is_some() {
            return;
        }
        if now >= self.deadline {
            match self.state {
                State::Decision | State::Accepted | State::Done => return,
                State::Upgrade => {
                    if let Some(up) = self.upgrade.as_mut() {
                        up.reject(408);
                    }
                }
                State::Http => {
                    if let Some(x) = self.web.as_mut() {
                        x.time_out();
                    }
                }
                State::Rfb => {
                    if let Some(s) = self.server.as_mut() {
                        s.time_out(TIMED_OUT);
                    }
                }
                _ => {}
            }
            self.fail(Error::TimedOut);
            return;
        }
        if let State::Front { silence_at } = self.state {
            if now >= silence_at && !self.spoke {
                // No header: a trusted host connecting directly.
                self.end_front(silence_at);
            }
        }
        if let State::Sniff { silence_at, .. } = self.state {
            if now >= silence_at {
                if self.spoke {
                    // Bytes that are not yet anything after the silence.
                    let inside = self.layers.tls;
                    self.fail(if inside {
                        Error::NotWebSocketInsideTls
                    } else {
                        Error::UnknownProtocol
                    });
                } else {
                    // A native viewer waits for the server to speak first.
                    self.ask_admit();
                }
            }
        }
    }
}
