//! The table of pending consoles (DESIGN.md, "Entry points" and "Sessions").
//!
//! What it is: [`Table`], a fixed-capacity table of [`Ticket`]s with the
//! entry-port [`pool::Pool`], expiry, one-time use, the attempt limit, the
//! optional client-IP pin, and tokens for single-port mode. What it is not:
//! a listener, a session, or the control parse ([`crate::control`]).
//!
//! # Storage
//!
//! The caller owns the table's memory, as smoltcp's `SocketSet::new(storage)`
//! takes its sockets': [`Table::new`] takes anything that is a `[Slot]`
//! (an array, `&mut [Slot]`, a `Box<[Slot]>` built slot by slot), and its
//! length is the capacity. Nothing large is built on the stack or returned
//! by value: a daemon with 1024 slots (about 0.5 MB) allocates them once,
//! in place.
//!
//! # Life of a ticket
//!
//! `issue` → **pending** (its listener is open) → (`claim` → **claimed**
//! while the session's resources are taken: no other viewer finds it, it
//! does not expire; `release` makes it pending again) → `authenticated` →
//! gone from the table, handed to the session (one-time use: the session
//! keeps what it needs, the table bounds only consoles nobody has used
//! yet). A pending ticket is also gone when it expires (`handle_timeout`),
//! when `failed_attempt` makes its last failing source (a wrong password
//! blocks its [`source`]; [`Config::failing_sources`] blocked sources end
//! the ticket), or when the driver `withdraw`s it.
//! Whenever a ticket goes, its port returns to the pool and an [`Event`] says
//! which port's listener to close.
//!
//! A ticket is usable (`lookup`, `authenticated`) only while `now <
//! expires`: at `expires` exactly it is expired, whether or not
//! `handle_timeout` has run yet.
//!
//! # Driver story
//!
//! ```text
//! control request → table.issue(now, &console, &random[..RANDOM_LEN])
//!     → open a listener on issued.port (pool port), reply issued.granted()
//! viewer connects → table.lookup(Lookup::Port(p) or Lookup::Token(t), peer_ip, now)
//!     → handle; RFB server with table.get(handle).viewer_password
//!     → good password: copy = table.claim(handle, now)?; take what the
//!       session needs and reach copy's backend; then
//!       ticket = table.authenticated(handle, now)?, close that listener,
//!       relay (or, out of resources: table.release(handle), try later)
//!     → bad password: table.failed_attempt(handle, peer_ip)
//! a listener cannot open → table.withdraw(handle)
//! one timer: table.poll_timeout(); on it table.handle_timeout(now)
//! after every call: while let Some(ev) = table.poll_event() { close ev's listener }
//! ```
//!
//! # Signed tickets
//!
//! With a ticket key, a request the single port serves gets a sealed,
//! self-contained token instead of an entry here ([`signed`]:
//! `Table::issue_signed`); any instance with the key adopts it as a
//! pending entry when its viewer comes, once ([`nonces`]:
//! `Table::admit_signed`), and from there on the rules below are the
//! same.
//!
//! # Randomness
//!
//! `issue` takes caller-supplied random bytes ([`RANDOM_LEN`] is enough):
//! the first [`TOKEN_BYTES`] make the token (hex), the rest make the
//! generated password by rejection sampling: a byte `b < 248` (= 4 × 62)
//! picks `ALPHABET[b % 62]`, larger bytes are skipped, so every character of
//! the 62 letters and digits is equally likely. Eight characters (the VNC
//! maximum) need 8 accepted bytes; 48 bytes fall short with probability
//! below 10^-40.

pub mod nonces;
pub mod pool;
pub mod signed;

use core::fmt;
use core::net::IpAddr;

use heapless::String;
use subtle::{ConditionallySelectable, ConstantTimeEq};

use crate::control::{Console, Dialect, Granted, Host, Need, Password, TicketRow, Transport};
use crate::time::Instant;
use pool::Pool;

/// Random bytes that make a token.
pub const TOKEN_BYTES: usize = 16;
/// Length of a token: [`TOKEN_BYTES`] in lowercase hex.
pub const TOKEN_LEN: usize = 2 * TOKEN_BYTES;
/// Length of a generated password (the VNC maximum).
pub const GENERATED_PASSWORD_LEN: usize = 8;
/// Random bytes `issue` should be given: always enough.
pub const RANDOM_LEN: usize = 64;
/// The generated-password alphabet: letters and digits.
pub const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/// The path prefix of a single-port mode URL (`url_path` = this + token).
pub const URL_PATH_PREFIX: &str = "websockify?token=";

/// A single-port mode token.
pub type Token = crate::secret::Secret<TOKEN_LEN>;
/// A password as bytes (a configured backend password need not be UTF-8):
/// the same type as a request's [`Password`].
pub type Secret = Password;
/// A generated password.
pub type GeneratedPassword = crate::secret::Secret<GENERATED_PASSWORD_LEN>;
/// `url_path` for a token (it holds the token: a secret too).
pub type UrlPath = crate::secret::Secret<{ URL_PATH_PREFIX.len() + TOKEN_LEN }>;

/// Why the table refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// The configuration is unusable (empty port range, default timeout over
    /// the maximum, zero timeout).
    BadConfig,
    /// Every slot of the table holds a ticket.
    TableFull,
    /// Every port of the pool is held.
    PortsExhausted,
    /// Too few random bytes were given to `issue`.
    NotEnoughRandom,
    /// The random bytes given to `issue` make the token of a ticket already
    /// in the table (they repeated: the caller's RNG is broken).
    TokenCollision,
    /// The request wants TLS on the entry point and the proxy has no TLS
    /// configured.
    TlsUnavailable,
    /// No such ticket (never was, or gone: used, expired, failed).
    NoSuchTicket,
    /// The ticket's time is up.
    Expired,
    /// The viewer's address is not the pinned `client.ip`.
    WrongClient,
    /// The viewer came over a transport its console refuses (the reason says
    /// which: [`crate::control::Transport::check`]).
    WrongTransport(&'static str),
    /// The viewer's address has used its guesses at this console's password.
    TooManyGuesses,
}

impl Error {
    /// A short reason, for a control reply or a log line.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::BadConfig => "bad ticket configuration",
            Error::TableFull => "too many pending consoles",
            Error::PortsExhausted => "no free port in the pool",
            Error::NotEnoughRandom => "not enough random bytes",
            Error::TokenCollision => "token collision (random bytes repeated)",
            Error::TlsUnavailable => "TLS requested, but this proxy has no TLS configured",
            Error::NoSuchTicket => "no such console (used, expired or unknown)",
            Error::Expired => "console expired",
            Error::WrongClient => "viewer address does not match client.ip",
            Error::WrongTransport(why) => why,
            Error::TooManyGuesses => "too many wrong passwords from this address",
        }
    }

    /// The HTTP status a WebSocket upgrade refused for this reason gets on
    /// the single port: 403 for a console that exists but refuses this
    /// viewer, 404 for no console by that name (now).
    pub const fn http_status(&self) -> u16 {
        match self {
            Error::WrongClient | Error::WrongTransport(_) | Error::TooManyGuesses => 403,
            _ => 404,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

/// Settings of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// First port of the pool (seed: 7000).
    pub first_port: u16,
    /// Last port of the pool, inclusive (seed: 8000).
    pub last_port: u16,
    /// Ticket lifetime when the request names none (30 s).
    pub default_timeout_ms: u64,
    /// Longest ticket lifetime (300 s); longer requests are cut to it.
    pub max_timeout_ms: u64,
    /// Wrong passwords a ticket takes from one source (an IPv4 address, an
    /// IPv6 /64: [`source`]) before it refuses that source (1, the default:
    /// one guess each). 0 is taken as 1.
    pub attempts: u8,
    /// Sources that may use up their guesses before the ticket is gone (3,
    /// the default; at most [`MAX_FAILING_SOURCES`]; 1 is
    /// twisted-vncauthproxy's "a wrong password burns the ticket"). Above
    /// 1, a scanner cannot burn a console for its real viewer from one
    /// source; no ticket ever checks more than `attempts × failing_sources`
    /// wrong passwords, whatever the number of sources guessing.
    pub failing_sources: u8,
    /// Single-port mode: the port of the one WebSocket listener. When set,
    /// dialect 2 requests that allow WebSocket get a token instead of a
    /// pool port (dialect 1 replies carry only a port, so they never do).
    pub single_port: Option<u16>,
    /// The cluster's backend password (`--backend-password-file`), if any.
    pub backend_password: Option<Secret>,
    /// Most tickets held at once (pending), at most the table's
    /// capacity `N` (which is what larger values mean).
    pub max_tickets: usize,
    /// Whether entry points can speak TLS. Without it, a request that
    /// requires TLS is refused at once rather than given a port its viewer
    /// cannot use.
    pub tls: bool,
    /// Every ticket is offered over TLS only, whatever its request said
    /// (`--require-tls`); meaningful with `tls`.
    pub require_tls: bool,
}

impl Default for Config {
    /// Ports 7000-8000, 30 s default, 300 s maximum, 1 attempt per source
    /// and 3 failing sources, no single port, no backend password, no TLS, as many tickets as the table holds.
    fn default() -> Self {
        Config {
            first_port: 7000,
            last_port: 8000,
            default_timeout_ms: 30_000,
            max_timeout_ms: 300_000,
            attempts: 1,
            failing_sources: DEFAULT_FAILING_SOURCES,
            single_port: None,
            backend_password: None,
            tls: false,
            require_tls: false,
            max_tickets: usize::MAX,
        }
    }
}

/// How a viewer reaches a ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// Its own port from the pool.
    Port(u16),
    /// A token on the single-port listener.
    Token(Token),
}

/// What a viewer presents to find its ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// It connected to this entry port.
    Port(u16),
    /// It named this token (single-port mode).
    Token(&'a [u8]),
}

/// One pending console. Its `Debug` shows no password or token
/// ([`crate::secret::Secret`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// Its id: unique for the table's life (1, 2, ... in issue order), shown
    /// by the control channel's `list` and named by its `kill`; a session
    /// made from the ticket keeps it.
    pub id: u64,
    /// How the viewer reaches it.
    pub entry: Entry,
    /// What the viewer must present (generated when the request had none).
    pub viewer_password: Password,
    /// Backend VNC server host.
    pub backend_host: Host,
    /// Backend VNC server port.
    pub backend_port: u16,
    /// What to give a backend that asks for VNC authentication
    /// ([`Console::backend_password`] with the configured cluster password).
    pub backend_password: Option<Secret>,
    /// The only address the viewer may come from.
    pub client_ip: Option<IpAddr>,
    /// Which layers the viewer may use.
    pub transport: Transport,
    /// When it expires while Pending.
    pub expires: Instant,
    /// The sources ([`source`]) that gave a wrong password, and how many
    /// each.
    pub failures: heapless::Vec<(IpAddr, u8), MAX_FAILING_SOURCES>,
}

impl Ticket {
    /// The entry port, for a port ticket.
    pub fn port(&self) -> Option<u16> {
        match self.entry {
            Entry::Port(p) => Some(p),
            Entry::Token(_) => None,
        }
    }

    /// Compares `candidate` with the viewer password in constant time (for
    /// the given lengths). VNC authentication itself compares DES responses
    /// (`rfb::server`); this is for drivers that receive a password in clear.
    pub fn viewer_password_matches(&self, candidate: &[u8]) -> bool {
        self.viewer_password.ct_eq(candidate)
    }
}

/// Names a ticket across calls; stale once the ticket is gone (slots are
/// reused with a new generation, so an old handle never reaches a new ticket).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Handle {
    slot: u16,
    generation: u32,
}

/// What `issue` made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// The new ticket.
    pub handle: Handle,
    /// The port to tell the viewer: the pool port (open a listener on it),
    /// or the single-port listener's port for a token ticket.
    pub port: u16,
    /// Whether `port` is the ticket's own pool port (a listener to open).
    pub own_port: bool,
    /// The token, for a token ticket.
    pub token: Option<Token>,
    /// `websockify?token=...`, for a token ticket.
    pub url_path: Option<UrlPath>,
    /// The generated viewer password, when the request had none.
    pub password: Option<GeneratedPassword>,
    /// When the ticket expires.
    pub expires: Instant,
    /// Its lifetime in whole seconds, rounded up.
    pub expires_in: u64,
}

impl Issued {
    /// The control reply for it ([`crate::control::Control::reply_ok`]).
    pub fn granted(&self) -> Granted<'_> {
        Granted {
            port: self.port,
            password: self.password.as_ref().and_then(|p| p.as_str()),
            expires_in: Some(self.expires_in),
            token: self.token.as_ref().and_then(|t| t.as_str()),
            url_path: self.url_path.as_ref().and_then(|u| u.as_str()),
        }
    }
}

/// A ticket went; close the listener of `port` if it is `Some`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    /// A Pending ticket reached its expiry.
    Expired {
        /// The gone ticket.
        handle: Handle,
        /// Its pool port, back in the pool; `None` for a token ticket.
        port: Option<u16>,
    },
    /// A ticket ended: its last attempt failed or its session ended.
    Closed {
        /// The gone ticket.
        handle: Handle,
        /// Its pool port, back in the pool; `None` for a token ticket.
        port: Option<u16>,
    },
}

/// Most distinct failing source addresses a ticket remembers
/// ([`Config::failing_sources`]).
pub const MAX_FAILING_SOURCES: usize = 8;

/// Failing sources a ticket survives by default ([`Config::failing_sources`]).
pub const DEFAULT_FAILING_SOURCES: u8 = 3;

/// The source a wrong password is charged to: an IPv4 address (an
/// IPv4-mapped IPv6 address is its IPv4 address), or an IPv6 address's /64
/// (one host is given a /64, so its addresses are one source).
pub fn source(peer: IpAddr) -> IpAddr {
    match peer.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & (u128::MAX << 64);
            IpAddr::V6(core::net::Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

/// Result of [`Table::failed_attempt`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Attempt {
    /// The ticket stays; the source that failed has this many guesses left.
    Retry(u8),
    /// The ticket stays for others; the source that failed has no guesses
    /// left ([`Error::TooManyGuesses`] from now on).
    Blocked,
    /// That made the ticket's last failing source: the ticket is gone (an
    /// [`Event::Closed`] is queued).
    Gone,
}

/// One ticket's room in the table's storage ([`Table::new`]).
#[derive(Debug, Clone, Default)]
pub struct Slot {
    ticket: Option<Ticket>,
    /// An authenticated viewer holds the ticket while its session is made
    /// ([`Table::claim`]): nobody else finds it, and it does not expire.
    claimed: bool,
    generation: u32,
    /// The table's event queue is a ring over the slots' `event`s (one
    /// event per slot at most: as many as tickets can go between drains).
    event: Option<Event>,
}

impl Slot {
    /// An empty slot.
    pub const fn new() -> Self {
        Slot {
            ticket: None,
            claimed: false,
            generation: 0,
            event: None,
        }
    }
}

/// The table: as many tickets as its storage has [`Slot`]s.
pub struct Table<S> {
    config: Config,
    slots: S,
    pool: Pool,
    /// The ring of queued events: where the oldest is, and how many.
    event_head: usize,
    event_len: usize,
    next_id: u64,
    issued_total: u64,
    expired_total: u64,
}

impl<S: AsRef<[Slot]> + AsMut<[Slot]>> fmt::Debug for Table<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Table")
            .field("capacity", &self.slots.as_ref().len())
            .field("len", &self.len())
            .field("pool", &self.pool)
            .finish()
    }
}

impl<S: AsRef<[Slot]> + AsMut<[Slot]>> Table<S> {
    /// An empty table in `storage` (every slot is cleared; its length, at
    /// most `u16::MAX`, is the capacity).
    pub fn new(config: Config, mut storage: S) -> Result<Self, Error> {
        if config.first_port > config.last_port
            || config.default_timeout_ms == 0
            || config.default_timeout_ms > config.max_timeout_ms
            || storage.as_ref().len() > usize::from(u16::MAX)
        {
            return Err(Error::BadConfig);
        }
        for slot in storage.as_mut() {
            *slot = Slot::new();
        }
        Ok(Table {
            pool: Pool::new(config.first_port, config.last_port),
            config,
            slots: storage,
            event_head: 0,
            event_len: 0,
            next_id: 1,
            issued_total: 0,
            expired_total: 0,
        })
    }

    fn slots(&self) -> &[Slot] {
        self.slots.as_ref()
    }

    fn tickets_iter(&self) -> impl Iterator<Item = &Ticket> + Clone {
        self.slots().iter().filter_map(|s| s.ticket.as_ref())
    }

    /// The pending tickets, in slot order.
    pub fn tickets(&self) -> impl Iterator<Item = &Ticket> + Clone {
        self.tickets_iter()
    }

    /// The pending tickets as the control channel's `list` shows them at
    /// `now` (no password or token in a row).
    pub fn rows(&self, now: Instant) -> impl Iterator<Item = TicketRow<'_>> + Clone {
        let single = self.config.single_port.unwrap_or(0);
        self.tickets_iter().map(move |t| TicketRow {
            id: t.id,
            backend_host: &t.backend_host,
            backend_port: t.backend_port,
            port: t.port().unwrap_or(single),
            expires_in: t
                .expires
                .millis()
                .saturating_sub(now.millis())
                .div_ceil(1000),
        })
    }

    /// Tickets issued since the table was made (`vncap_tickets_issued_total`).
    pub fn issued_total(&self) -> u64 {
        self.issued_total
    }

    /// Tickets that expired unused (`vncap_tickets_expired_total`).
    pub fn expired_total(&self) -> u64 {
        self.expired_total
    }

    /// The handle of the pending ticket with this id.
    pub fn find_id(&self, id: u64) -> Option<Handle> {
        let slot = self
            .slots()
            .iter()
            .position(|s| s.ticket.as_ref().is_some_and(|t| t.id == id))?;
        Some(self.handle(slot))
    }

    /// Withdraws every pending ticket of the backend `host:port` (issue
    /// 13's kill by backend; [`Event::Closed`] queued for each); returns how
    /// many.
    pub fn withdraw_backend(&mut self, host: &str, port: u16) -> usize {
        let mut n = 0;
        for slot in 0..self.slots().len() {
            let hit = self
                .slots()
                .get(slot)
                .and_then(|s| s.ticket.as_ref())
                .is_some_and(|t| {
                    t.backend_port == port && t.backend_host.eq_ignore_ascii_case(host)
                });
            if hit && self.remove(self.handle(slot), false).is_some() {
                n += 1;
            }
        }
        n
    }

    fn handle(&self, slot: usize) -> Handle {
        Handle {
            slot: slot as u16,
            generation: self.slots().get(slot).map_or(0, |s| s.generation),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Replaces the cluster's backend password (`--backend-password-file`
    /// read again on SIGHUP) for tickets issued from now on.
    pub fn set_backend_password(&mut self, password: Option<Secret>) {
        self.config.backend_password = password;
    }

    /// Tickets in the table (pending).
    pub fn len(&self) -> usize {
        self.tickets_iter().count()
    }

    /// How many tickets the storage holds.
    pub fn capacity(&self) -> usize {
        self.slots().len()
    }

    /// Whether the table holds no ticket.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Free ports in the pool.
    pub fn free_ports(&self) -> u32 {
        self.pool.free_count()
    }

    /// Ports in the pool's range.
    pub fn pool_size(&self) -> u32 {
        self.pool.size()
    }

    /// Makes a ticket for the console request `req` at `now`.
    ///
    /// `random` should be [`RANDOM_LEN`] fresh random bytes. The entry is a
    /// token when single-port mode is configured and `req` is dialect 2 and
    /// allows WebSocket; otherwise a pool port (`req.preferred_port` when
    /// free and in range). The viewer password is `req.viewer_password()`,
    /// or generated. The lifetime is `req.timeout_ms` or the default, cut to
    /// the maximum. With `require_tls` the ticket is TLS-only.
    pub fn issue(&mut self, now: Instant, req: &Console, random: &[u8]) -> Result<Issued, Error> {
        let transport = self.transport_for(req)?;
        if self.len() >= self.config.max_tickets {
            return Err(Error::TableFull);
        }
        let slot = self
            .slots()
            .iter()
            .position(|s| s.ticket.is_none())
            .ok_or(Error::TableFull)?;
        let wants_token = self.wants_token(req);

        let token_bytes = random.get(..TOKEN_BYTES).ok_or(Error::NotEnoughRandom)?;
        let rest = random.get(TOKEN_BYTES..).unwrap_or(&[]);
        let (viewer_password, generated) = viewer_password_for(req, rest)?;

        let (entry, port, token, url_path) = match (wants_token, self.config.single_port) {
            (true, Some(single)) => {
                let token = hex_token(token_bytes);
                let taken = self.tickets_iter().any(|t| match &t.entry {
                    Entry::Token(other) => *other == token,
                    Entry::Port(_) => false,
                });
                if taken {
                    return Err(Error::TokenCollision);
                }
                let mut url: String<{ URL_PATH_PREFIX.len() + TOKEN_LEN }> = String::new();
                let _ = url.push_str(URL_PATH_PREFIX);
                let _ = url.push_str(token.as_str().unwrap_or_default());
                let url = UrlPath::from_str(&url).unwrap_or_default();
                (Entry::Token(token.clone()), single, Some(token), Some(url))
            }
            _ => {
                let p = self
                    .pool
                    .take(req.preferred_port)
                    .ok_or(Error::PortsExhausted)?;
                (Entry::Port(p), p, None, None)
            }
        };
        let own_port = matches!(entry, Entry::Port(_));

        let lifetime = self.lifetime(req);
        let expires = now + lifetime;
        let backend_password = req
            .backend_password(self.config.backend_password.as_ref().map(Secret::as_bytes))
            .map(|b| Secret::from_slice(b).unwrap_or_default());

        let id = self.next_id;
        self.next_id += 1;
        self.issued_total += 1;
        let ticket = Ticket {
            id,
            entry,
            viewer_password,
            backend_host: req.host.clone(),
            backend_port: req.port,
            backend_password,
            client_ip: req.client_ip,
            transport,
            expires,
            failures: heapless::Vec::new(),
        };
        let handle = self.handle(slot);
        if let Some(s) = self.slots.as_mut().get_mut(slot) {
            s.ticket = Some(ticket);
        }
        debug!("ticket: issued, port {}", port);
        Ok(Issued {
            handle,
            port,
            own_port,
            token,
            url_path,
            password: generated,
            expires,
            expires_in: lifetime.div_ceil(1000),
        })
    }

    /// Whether `req` gets a single-port token: single-port mode is
    /// configured, and `req` is dialect 2 and allows WebSocket.
    fn wants_token(&self, req: &Console) -> bool {
        self.config.single_port.is_some()
            && req.dialect == Dialect::Snf
            && req.transport.websocket != Need::No
    }

    /// The layers a ticket for `req` allows (TLS-only with
    /// `require_tls`), or [`Error::TlsUnavailable`].
    fn transport_for(&self, req: &Console) -> Result<Transport, Error> {
        let mut transport = req.transport;
        if self.config.require_tls {
            transport.tls = Need::Yes;
        }
        if transport.tls == Need::Yes && !self.config.tls {
            return Err(Error::TlsUnavailable);
        }
        Ok(transport)
    }

    /// A ticket's lifetime for `req`, ms: its own or the default, cut to
    /// the maximum.
    fn lifetime(&self, req: &Console) -> u64 {
        req.timeout_ms
            .unwrap_or(self.config.default_timeout_ms)
            .min(self.config.max_timeout_ms)
    }

    /// The ticket `handle` names, if it is still there.
    pub fn get(&self, handle: Handle) -> Option<&Ticket> {
        let slot = self.slots().get(usize::from(handle.slot))?;
        if slot.generation != handle.generation {
            return None;
        }
        slot.ticket.as_ref()
    }

    /// Finds the ticket a viewer at `peer` asks for at `now`: it must be
    /// Pending, not expired, and `peer` must match a pinned client IP
    /// (IPv4-mapped IPv6 addresses compare equal to IPv4). Tokens are
    /// compared in constant time against every ticket.
    pub fn lookup(&self, key: Lookup<'_>, peer: IpAddr, now: Instant) -> Result<Handle, Error> {
        self.find(key, peer, now).map(|(h, _)| h)
    }

    /// [`Table::lookup`] for a viewer that arrived with (or without) TLS and
    /// WebSocket, as the entry point saw it: its console must also offer
    /// that transport ([`Error::WrongTransport`] otherwise).
    pub fn admit(
        &self,
        key: Lookup<'_>,
        peer: IpAddr,
        now: Instant,
        (tls, websocket): (bool, bool),
    ) -> Result<Handle, Error> {
        let (handle, ticket) = self.find(key, peer, now)?;
        ticket
            .transport
            .check(tls, websocket)
            .map_err(Error::WrongTransport)?;
        Ok(handle)
    }

    fn find(
        &self,
        key: Lookup<'_>,
        peer: IpAddr,
        now: Instant,
    ) -> Result<(Handle, &Ticket), Error> {
        let slot = match key {
            Lookup::Port(p) => self
                .slots()
                .iter()
                .position(|s| s.ticket.as_ref().is_some_and(|t| t.entry == Entry::Port(p))),
            Lookup::Token(candidate) => {
                let mut found = 0u32;
                let mut any = subtle::Choice::from(0);
                for (i, s) in self.slots().iter().enumerate() {
                    let t: &[u8] = match &s.ticket {
                        Some(Ticket {
                            entry: Entry::Token(t),
                            ..
                        }) => t.as_bytes(),
                        _ => &[],
                    };
                    let eq = t.ct_eq(candidate) & subtle::Choice::from(u8::from(!t.is_empty()));
                    found = u32::conditional_select(&found, &(i as u32), eq);
                    any |= eq;
                }
                bool::from(any).then_some(found as usize)
            }
        }
        .ok_or(Error::NoSuchTicket)?;
        let ticket = self
            .slots()
            .get(slot)
            .filter(|s| !s.claimed)
            .and_then(|s| s.ticket.as_ref())
            .ok_or(Error::NoSuchTicket)?;
        usable(ticket, now)?;
        if let Some(pin) = ticket.client_ip {
            if pin.to_canonical() != peer.to_canonical() {
                return Err(Error::WrongClient);
            }
        }
        let guesses = self.config.attempts.max(1);
        let from = source(peer);
        if ticket
            .failures
            .iter()
            .any(|&(ip, n)| ip == from && n >= guesses)
        {
            return Err(Error::TooManyGuesses);
        }
        Ok((self.handle(slot), ticket))
    }

    /// The viewer authenticated: the ticket leaves the table (its port freed,
    /// [`Event::Closed`] queued) and is returned for the session. Fails if the
    /// ticket is gone (a second viewer that authenticated as well comes too
    /// late) or expired at `now`.
    /// A [`Table::claim`]ed ticket is handed over whatever the time.
    pub fn authenticated(&mut self, handle: Handle, now: Instant) -> Result<Ticket, Error> {
        if !self.is_claimed(handle) {
            usable(self.get(handle).ok_or(Error::NoSuchTicket)?, now)?;
        }
        self.remove(handle, false).ok_or(Error::NoSuchTicket)
    }

    /// The viewer authenticated, and its session is being made (resources,
    /// the backend): the ticket stays in the table, but no other viewer
    /// finds it ([`Error::NoSuchTicket`]) and it does not expire, until the
    /// driver either hands it over ([`Table::authenticated`]) or gives it
    /// back ([`Table::release`]). Returns a copy of it (the backend to
    /// reach). Fails as `authenticated` does, and for a ticket already
    /// claimed (a second viewer that authenticated as well).
    pub fn claim(&mut self, handle: Handle, now: Instant) -> Result<Ticket, Error> {
        if self.is_claimed(handle) {
            return Err(Error::NoSuchTicket);
        }
        let ticket = self.get(handle).ok_or(Error::NoSuchTicket)?;
        usable(ticket, now)?;
        let copy = ticket.clone();
        if let Some(slot) = self.slots.as_mut().get_mut(usize::from(handle.slot)) {
            slot.claimed = true;
        }
        Ok(copy)
    }

    /// Gives a [`Table::claim`]ed ticket back: pending again, with its
    /// expiry (at or past it, the next [`Table::handle_timeout`] ends it).
    /// For a session that could not be made for want of resources: the
    /// viewer may try again.
    pub fn release(&mut self, handle: Handle) -> Result<(), Error> {
        self.get(handle).ok_or(Error::NoSuchTicket)?;
        match self.slots.as_mut().get_mut(usize::from(handle.slot)) {
            Some(slot) if slot.claimed => {
                slot.claimed = false;
                Ok(())
            }
            _ => Err(Error::NoSuchTicket),
        }
    }

    fn is_claimed(&self, handle: Handle) -> bool {
        self.get(handle).is_some()
            && self
                .slots()
                .get(usize::from(handle.slot))
                .is_some_and(|s| s.claimed)
    }

    /// A viewer at `peer` presented a wrong password: that address uses one
    /// of its [`Config::attempts`] guesses, and with none left it is refused
    /// from now on ([`Attempt::Blocked`]). When that makes `attempts ×
    /// failing_sources` wrong passwords in all, or
    /// [`Config::failing_sources`] blocked addresses, the ticket is gone,
    /// its port freed and [`Event::Closed`] queued ([`Attempt::Gone`]). One
    /// address's failures never use another's guesses.
    pub fn failed_attempt(&mut self, handle: Handle, peer: IpAddr) -> Result<Attempt, Error> {
        let guesses = self.config.attempts.max(1);
        let sources = usize::from(self.config.failing_sources).clamp(1, MAX_FAILING_SOURCES);
        let peer = source(peer);
        let t = self.get_mut(handle).ok_or(Error::NoSuchTicket)?;
        let recorded = match t.failures.iter_mut().find(|(ip, _)| *ip == peer) {
            Some((_, n)) => {
                *n = n.saturating_add(1);
                Some(*n)
            }
            None => t.failures.push((peer, 1)).ok().map(|()| 1),
        };
        let total: usize = t.failures.iter().map(|&(_, n)| usize::from(n)).sum();
        let blocked = t.failures.iter().filter(|&&(_, n)| n >= guesses).count();
        // Gone once the guesses checked reach attempts × failing_sources
        // (with one failing source: `attempts` in all, as before), or as
        // many addresses are out of guesses, or there is no room to
        // remember another failing address.
        let Some(used) =
            recorded.filter(|_| total < usize::from(guesses) * sources && blocked < sources)
        else {
            self.remove(handle, false);
            return Ok(Attempt::Gone);
        };
        if used < guesses {
            return Ok(Attempt::Retry(guesses - used));
        }
        Ok(Attempt::Blocked)
    }

    /// The driver gives a pending ticket up (say, its listener could not
    /// open): it is gone, its port freed, [`Event::Closed`] queued.
    pub fn withdraw(&mut self, handle: Handle) -> Result<(), Error> {
        self.remove(handle, false)
            .map(drop)
            .ok_or(Error::NoSuchTicket)
    }

    /// The earliest expiry: when to call
    /// [`Table::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.slots()
            .iter()
            .filter(|s| !s.claimed)
            .filter_map(|s| s.ticket.as_ref())
            .map(|t| t.expires)
            .min()
    }

    /// Removes every Pending ticket with `expires <= now`, queuing
    /// [`Event::Expired`] for each.
    pub fn handle_timeout(&mut self, now: Instant) {
        for slot in 0..self.slots().len() {
            let expired = self
                .slots()
                .get(slot)
                .filter(|s| !s.claimed)
                .and_then(|s| s.ticket.as_ref())
                .is_some_and(|t| t.expires <= now);
            if expired {
                self.remove(self.handle(slot), true);
                self.expired_total += 1;
            }
        }
    }

    /// The next event. Drain after every call that may remove a ticket; the
    /// queue holds as many events as the table has slots and drops (with a
    /// warning) beyond that.
    pub fn poll_event(&mut self) -> Option<Event> {
        if self.event_len == 0 {
            return None;
        }
        let n = self.slots().len();
        let head = self.event_head;
        let event = self.slots.as_mut().get_mut(head)?.event.take();
        self.event_head = (head + 1) % n.max(1);
        self.event_len -= 1;
        event
    }

    fn push_event(&mut self, event: Event) {
        let n = self.slots().len();
        if self.event_len >= n {
            warn!("ticket: event queue full, dropping an event");
            return;
        }
        let at = (self.event_head + self.event_len) % n;
        if let Some(s) = self.slots.as_mut().get_mut(at) {
            s.event = Some(event);
            self.event_len += 1;
        }
    }

    /// Checks the bookkeeping: every port ticket's port is in the range and
    /// held (not free) and no two tickets share a port or a token, and free
    /// ports + held ports = the range size. For tests; O(N²).
    pub fn check_invariants(&self) -> bool {
        let mut held = 0u32;
        for (i, t) in self.slots().iter().enumerate() {
            let Some(t) = &t.ticket else { continue };
            if let Entry::Port(p) = t.entry {
                if !self.pool.contains(p) || self.pool.is_free(p) {
                    return false;
                }
                held += 1;
            }
            let dup = self
                .slots()
                .iter()
                .skip(i + 1)
                .filter_map(|s| s.ticket.as_ref())
                .any(|u| u.entry == t.entry);
            if dup {
                return false;
            }
        }
        self.pool.check() && self.pool.free_count() + held == self.pool.size()
    }

    fn get_mut(&mut self, handle: Handle) -> Option<&mut Ticket> {
        let slot = self.slots.as_mut().get_mut(usize::from(handle.slot))?;
        if slot.generation != handle.generation {
            return None;
        }
        slot.ticket.as_mut()
    }

    /// Takes the ticket out (if `handle` still names it), frees its port and
    /// queues its event.
    fn remove(&mut self, handle: Handle, expired: bool) -> Option<Ticket> {
        self.get(handle)?;
        let slot = self.slots.as_mut().get_mut(usize::from(handle.slot))?;
        let ticket = slot.ticket.take()?;
        slot.claimed = false;
        slot.generation = slot.generation.wrapping_add(1);
        let port = ticket.port();
        if let Some(p) = port {
            if !self.pool.give_back(p) {
                error!("ticket: port {} was not held", p);
            }
        }
        let event = if expired {
            Event::Expired { handle, port }
        } else {
            Event::Closed { handle, port }
        };
        self.push_event(event);
        Some(ticket)
    }
}

fn usable(t: &Ticket, now: Instant) -> Result<(), Error> {
    if now >= t.expires {
        return Err(Error::Expired);
    }
    Ok(())
}

/// Eight characters of [`ALPHABET`] from `random` by rejection sampling.
/// The viewer's password for `req`: its own, or one generated from
/// `random` (then also returned, for the reply).
fn viewer_password_for(
    req: &Console,
    random: &[u8],
) -> Result<(Password, Option<GeneratedPassword>), Error> {
    let generated = match req.viewer_password() {
        Some(_) => None,
        None => Some(generate_password(random)?),
    };
    let pw = match (req.viewer_password(), &generated) {
        (Some(p), _) => p.as_bytes(),
        (None, Some(g)) => g.as_bytes(),
        (None, None) => &[],
    };
    // Both sources are at most PASSWORD_CAP bytes.
    Ok((Password::from_slice(pw).unwrap_or_default(), generated))
}

fn generate_password(random: &[u8]) -> Result<GeneratedPassword, Error> {
    const LIMIT: u8 = (256 - 256 % ALPHABET.len()) as u8; // 248
    let mut pw: String<GENERATED_PASSWORD_LEN> = String::new();
    for &b in random {
        if pw.len() == GENERATED_PASSWORD_LEN {
            break;
        }
        if b < LIMIT {
            let c = ALPHABET[usize::from(b) % ALPHABET.len()];
            let _ = pw.push(char::from(c));
        }
    }
    if pw.len() < GENERATED_PASSWORD_LEN {
        return Err(Error::NotEnoughRandom);
    }
    GeneratedPassword::from_str(&pw).map_err(|_| Error::NotEnoughRandom)
}

fn hex_token(bytes: &[u8]) -> Token {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut t: String<TOKEN_LEN> = String::new();
    for &b in bytes.iter().take(TOKEN_BYTES) {
        let _ = t.push(char::from(HEX[usize::from(b >> 4)]));
        let _ = t.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    Token::from_str(&t).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::{Console, Dialect, Need, Transport};
    use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    const PEER: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
    const RANDOM: [u8; RANDOM_LEN] = [7; RANDOM_LEN];

    fn twisted(pw: &str) -> Console {
        let mut host = Host::new();
        host.push_str("node1").unwrap();
        let p = Password::from_str(pw).unwrap();
        Console {
            dialect: Dialect::Twisted,
            host,
            port: 5900,
            password: Some(p),
            client_password: None,
            client_ip: None,
            preferred_port: None,
            transport: Transport::AUTO,
            timeout_ms: None,
            auth_user: None,
            auth_password: None,
        }
    }

    fn slots<const N: usize>() -> [Slot; N] {
        core::array::from_fn(|_| Slot::new())
    }

    fn config(first: u16, last: u16) -> Config {
        Config {
            first_port: first,
            last_port: last,
            ..Config::default()
        }
    }

    #[test]
    fn max_tickets_caps_the_table_below_its_capacity() {
        let mut t = Table::new(
            Config {
                max_tickets: 1,
                ..config(7000, 7003)
            },
            slots::<4>(),
        )
        .unwrap();
        let now = Instant::from_millis(0);
        let first = t.issue(now, &twisted("pw"), &RANDOM).unwrap();
        assert_eq!(t.issue(now, &twisted("pw"), &RANDOM), Err(Error::TableFull));
        t.withdraw(first.handle).unwrap();
        assert!(t.issue(now, &twisted("pw"), &RANDOM).is_ok(), "room again");
    }

    #[test]
    fn tls_is_refused_at_issue_unless_configured() {
        let mut req = twisted("pw");
        req.transport = Transport::WEBSOCKET_TLS;
        let mut t = Table::new(config(7000, 7001), slots::<2>()).unwrap();
        let now = Instant::from_millis(0);
        assert_eq!(t.issue(now, &req, &RANDOM), Err(Error::TlsUnavailable));
        assert_eq!(t.free_ports(), 2, "nothing held");
        req.transport.tls = Need::Either;
        assert!(
            t.issue(now, &req, &RANDOM).is_ok(),
            "TLS optional: a plain viewer may come"
        );
        let mut with_tls = Table::new(
            Config {
                tls: true,
                ..config(7000, 7001)
            },
            slots::<2>(),
        )
        .unwrap();
        req.transport.tls = Need::Yes;
        assert!(with_tls.issue(now, &req, &RANDOM).is_ok());
    }

    #[test]
    fn require_tls_makes_every_ticket_tls_only() {
        let now = Instant::from_millis(0);
        let mut table = Table::new(
            Config {
                tls: true,
                require_tls: true,
                ..config(7000, 7001)
            },
            slots::<2>(),
        )
        .unwrap();
        let issued = table.issue(now, &twisted("pw"), &RANDOM).unwrap();
        let ticket = table.get(issued.handle).unwrap();
        assert_eq!(ticket.transport.tls, Need::Yes);
        assert_eq!(ticket.transport.websocket, Need::Either);
    }

    #[test]
    fn admit_checks_the_transport_and_says_how_to_refuse() {
        let now = Instant::from_millis(0);
        let mut t = Table::new(
            Config {
                tls: true,
                ..config(7000, 7001)
            },
            slots::<2>(),
        )
        .unwrap();
        let mut req = twisted("pw");
        req.transport = Transport::WEBSOCKET_TLS;
        let i = t.issue(now, &req, &RANDOM).unwrap();
        let at = Lookup::Port(i.port);
        assert_eq!(t.admit(at, PEER, now, (true, true)), Ok(i.handle));
        let plain = t.admit(at, PEER, now, (false, true));
        assert_eq!(
            plain,
            Err(Error::WrongTransport(
                "this console is offered over TLS only"
            ))
        );
        assert_eq!(plain.unwrap_err().http_status(), 403);
        let native = t.admit(at, PEER, now, (true, false)).unwrap_err();
        assert_eq!(
            native.reason(),
            "this console is offered over WebSocket only"
        );
        // A refused transport is not an attempt: the ticket is still there.
        assert_eq!(t.lookup(at, PEER, now), Ok(i.handle));
        let gone = t.admit(Lookup::Port(7001), PEER, now, (true, true));
        assert_eq!(gone, Err(Error::NoSuchTicket));
        assert_eq!(gone.unwrap_err().http_status(), 404);
    }

    #[test]
    fn issue_lookup_use_end() {
        let mut t = Table::new(config(7000, 7001), slots::<4>()).unwrap();
        let now = Instant::from_millis(1000);
        let i = t.issue(now, &twisted("secret12"), &RANDOM).unwrap();
        assert_eq!(i.port, 7000);
        assert!(i.own_port);
        assert_eq!(i.password, None);
        assert_eq!(i.expires, now + 30_000);
        assert_eq!(i.expires_in, 30);
        assert_eq!(t.poll_timeout(), Some(now + 30_000));
        let h = t.lookup(Lookup::Port(7000), PEER, now).unwrap();
        assert_eq!(h, i.handle);
        let ticket = t.get(h).unwrap();
        assert_eq!(ticket.viewer_password.as_str().unwrap(), "secret12");
        assert_eq!(
            ticket.backend_password.as_ref().map(Secret::as_bytes),
            Some(&b"secret12"[..])
        );
        assert!(ticket.viewer_password_matches(b"secret12"));
        assert!(!ticket.viewer_password_matches(b"secret13"));
        assert_eq!(
            t.lookup(Lookup::Port(7001), PEER, now),
            Err(Error::NoSuchTicket)
        );
        let used = t.authenticated(h, now).unwrap();
        assert_eq!(used.backend_port, 5900);
        assert_eq!(
            used.backend_password.as_ref().map(Secret::as_bytes),
            Some(&b"secret12"[..])
        );
        // One-time: the table forgets it at once; nobody else can use it.
        assert_eq!(t.authenticated(h, now), Err(Error::NoSuchTicket));
        assert_eq!(
            t.lookup(Lookup::Port(7000), PEER, now),
            Err(Error::NoSuchTicket)
        );
        assert_eq!(t.poll_timeout(), None);
        assert!(t.is_empty());
        assert_eq!(
            t.poll_event(),
            Some(Event::Closed {
                handle: h,
                port: Some(7000)
            })
        );
        assert_eq!(t.poll_event(), None);
        assert_eq!(t.free_ports(), 2);
        assert_eq!(t.get(h), None);
        assert_eq!(t.withdraw(h), Err(Error::NoSuchTicket));
        assert!(t.check_invariants());
    }

    #[test]
    fn expiry_to_the_millisecond() {
        let mut t = Table::new(config(7000, 7000), slots::<4>()).unwrap();
        let now = Instant::from_millis(0);
        let mut req = twisted("p");
        req.timeout_ms = Some(5_000);
        let i = t.issue(now, &req, &RANDOM).unwrap();
        let at = i.expires;
        assert!(t.lookup(Lookup::Port(7000), PEER, at - 1).is_ok());
        assert_eq!(t.lookup(Lookup::Port(7000), PEER, at), Err(Error::Expired));
        assert_eq!(t.authenticated(i.handle, at), Err(Error::Expired));
        t.handle_timeout(at - 1);
        assert_eq!(t.poll_event(), None);
        t.handle_timeout(at);
        assert_eq!(
            t.poll_event(),
            Some(Event::Expired {
                handle: i.handle,
                port: Some(7000)
            })
        );
        assert_eq!(t.free_ports(), 1);
        // Timeout over the maximum is cut.
        req.timeout_ms = Some(10_000_000);
        let i = t.issue(now, &req, &RANDOM).unwrap();
        assert_eq!(i.expires, now + 300_000);
    }

    #[test]
    fn a_scanner_cannot_burn_a_console_for_its_real_viewer() {
        let mut c = config(7000, 7000);
        c.failing_sources = 3;
        let mut t = Table::new(c, slots::<2>()).unwrap();
        let now = Instant::from_millis(0);
        let i = t.issue(now, &twisted("p"), &RANDOM).unwrap();
        let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
        let (scanner, viewer) = (ip("192.0.2.9"), ip("198.51.100.1"));
        assert_eq!(t.failed_attempt(i.handle, scanner), Ok(Attempt::Blocked));
        let key = Lookup::Port(7000);
        assert_eq!(t.lookup(key, scanner, now), Err(Error::TooManyGuesses));
        // The same address written as IPv4-mapped IPv6 is the same address.
        assert_eq!(
            t.lookup(key, ip("::ffff:192.0.2.9"), now),
            Err(Error::TooManyGuesses)
        );
        assert_eq!(t.lookup(key, viewer, now), Ok(i.handle));
        assert_eq!(
            t.failed_attempt(i.handle, ip("192.0.2.10")),
            Ok(Attempt::Blocked)
        );
        assert_eq!(t.lookup(key, viewer, now), Ok(i.handle));
        // The third address out of guesses ends it.
        assert_eq!(
            t.failed_attempt(i.handle, ip("192.0.2.11")),
            Ok(Attempt::Gone)
        );
        assert_eq!(t.lookup(key, viewer, now), Err(Error::NoSuchTicket));
    }

    #[test]
    fn an_ipv6_source_is_its_slash_64() {
        let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
        assert_eq!(source(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(source(ip("::ffff:192.0.2.9")), ip("192.0.2.9"));
        let mut t = Table::new(config(7000, 7000), slots::<1>()).unwrap();
        let now = Instant::from_millis(0);
        let i = t.issue(now, &twisted("p"), &RANDOM).unwrap();
        let key = Lookup::Port(7000);
        assert_eq!(
            t.failed_attempt(i.handle, ip("2001:db8:1:2::1")),
            Ok(Attempt::Blocked)
        );
        assert_eq!(
            t.lookup(key, ip("2001:db8:1:2:ffff::9"), now),
            Err(Error::TooManyGuesses),
            "another address of the same /64"
        );
        assert_eq!(t.lookup(key, ip("2001:db8:1:3::1"), now), Ok(i.handle));
    }

    #[test]
    fn a_claimed_ticket_is_nobody_elses_and_does_not_expire() {
        let mut t = Table::new(config(7000, 7000), slots::<1>()).unwrap();
        let now = Instant::from_millis(0);
        let i = t.issue(now, &twisted("p"), &RANDOM).unwrap();
        let copy = t.claim(i.handle, now).unwrap();
        assert_eq!(copy.backend_port, 5900);
        assert_eq!(
            t.claim(i.handle, now),
            Err(Error::NoSuchTicket),
            "claimed once"
        );
        assert_eq!(
            t.lookup(Lookup::Port(7000), PEER, now),
            Err(Error::NoSuchTicket)
        );
        assert_eq!(t.poll_timeout(), None);
        t.handle_timeout(i.expires + 1);
        assert!(
            t.get(i.handle).is_some(),
            "a claimed ticket does not expire"
        );
        // Given back, it is pending again (and past its time it expires).
        t.release(i.handle).unwrap();
        assert_eq!(t.release(i.handle), Err(Error::NoSuchTicket));
        assert_eq!(t.lookup(Lookup::Port(7000), PEER, now), Ok(i.handle));
        assert_eq!(t.poll_timeout(), Some(i.expires));
        // Claimed again, it is handed over even past its expiry.
        t.claim(i.handle, now).unwrap();
        assert_eq!(
            t.authenticated(i.handle, i.expires + 5).map(|t| t.id),
            Ok(copy.id)
        );
        assert_eq!(t.free_ports(), 1);
        assert!(t.check_invariants());
    }

    #[test]
    fn attempts() {
        let mut c = config(7000, 7000);
        c.attempts = 2;
        c.failing_sources = 1;
        let mut t = Table::new(c, slots::<2>()).unwrap();
        let now = Instant::from_millis(0);
        let i = t.issue(now, &twisted("p"), &RANDOM).unwrap();
        let peer: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(t.failed_attempt(i.handle, peer), Ok(Attempt::Retry(1)));
        assert_eq!(t.failed_attempt(i.handle, peer), Ok(Attempt::Gone));
        assert_eq!(
            t.poll_event(),
            Some(Event::Closed {
                handle: i.handle,
                port: Some(7000)
            })
        );
        assert_eq!(t.failed_attempt(i.handle, peer), Err(Error::NoSuchTicket));
        // The freed port (and slot) serve a new ticket; the old handle is stale.
        let j = t.issue(now, &twisted("p"), &RANDOM).unwrap();
        assert_eq!(j.port, 7000);
        assert_ne!(j.handle, i.handle);
        assert_eq!(t.get(i.handle), None);
        assert_eq!(
            t.issue(now, &twisted("p"), &RANDOM),
            Err(Error::PortsExhausted)
        );
    }

    #[test]
    fn table_full_and_preferred_port() {
        let mut t = Table::new(config(7000, 7010), slots::<1>()).unwrap();
        let mut req = twisted("p");
        req.preferred_port = Some(7005);
        let now = Instant::from_millis(0);
        assert_eq!(t.issue(now, &req, &RANDOM).unwrap().port, 7005);
        assert_eq!(t.issue(now, &req, &RANDOM), Err(Error::TableFull));
        assert!(Table::new(config(2, 1), slots::<1>()).is_err());
    }

    #[test]
    fn client_pin() {
        let mut t = Table::new(config(7000, 7001), slots::<2>()).unwrap();
        let mut req = twisted("p");
        req.client_ip = Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)));
        req.client_password = Some(Password::from_str("viewer").unwrap());
        let now = Instant::from_millis(0);
        let i = t.issue(now, &req, &RANDOM).unwrap();
        assert_eq!(
            t.lookup(Lookup::Port(i.port), PEER, now),
            Err(Error::WrongClient)
        );
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped());
        let h = t.lookup(Lookup::Port(i.port), mapped, now).unwrap();
        assert_eq!(t.get(h).unwrap().viewer_password.as_str(), Some("viewer"));
        assert_eq!(
            t.lookup(Lookup::Port(i.port), IpAddr::V6(Ipv6Addr::LOCALHOST), now),
            Err(Error::WrongClient)
        );
    }

    #[test]
    fn tokens_and_generated_passwords() {
        let mut c = config(7000, 7001);
        c.single_port = Some(6080);
        c.backend_password = Some(Secret::from_slice(b"cluster").unwrap());
        let mut t = Table::new(c, slots::<4>()).unwrap();
        let mut req = twisted("p");
        req.dialect = Dialect::Snf;
        req.password = None;
        req.transport = Transport::WEBSOCKET;
        let mut random = [0u8; RANDOM_LEN];
        for (i, b) in random.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37);
        }
        // Bytes >= 248 are skipped.
        random[TOKEN_BYTES] = 250;
        let now = Instant::from_millis(0);
        let i = t.issue(now, &req, &random).unwrap();
        assert_eq!(i.port, 6080);
        assert!(!i.own_port);
        let token = i.token.clone().unwrap();
        assert_eq!(token.len(), TOKEN_LEN);
        assert_eq!(&token.as_bytes()[..6], b"00254a");
        assert_eq!(
            i.url_path.as_ref().and_then(|s| s.as_str()),
            Some("websockify?token=00254a6f94b9de03284d7297bce1062b")
        );
        let pw = i.password.clone().unwrap();
        assert_eq!(pw.len(), 8);
        assert!(pw.as_bytes().iter().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(t.free_ports(), 2, "token tickets hold no pool port");
        // The same random bytes again would make a second ticket with the
        // same token (found by fuzz/fuzz_targets/ticket.rs): refused.
        assert_eq!(t.issue(now, &req, &random), Err(Error::TokenCollision));
        assert_eq!(t.len(), 1);
        assert!(t.check_invariants());
        let g = i.granted();
        assert_eq!(g.token, token.as_str());
        assert_eq!(g.password, pw.as_str());
        let h = t
            .lookup(Lookup::Token(token.as_bytes()), PEER, now)
            .unwrap();
        let ticket = t.get(h).unwrap();
        assert_eq!(ticket.viewer_password.as_bytes(), pw.as_bytes());
        assert_eq!(
            ticket.backend_password.as_ref().map(Secret::as_bytes),
            Some(&b"cluster"[..])
        );
        assert_eq!(
            t.lookup(
                Lookup::Token(b"00254a6f94b9de03284d7297bce1062c"),
                PEER,
                now
            ),
            Err(Error::NoSuchTicket)
        );
        assert_eq!(
            t.lookup(Lookup::Token(b""), PEER, now),
            Err(Error::NoSuchTicket)
        );
        t.withdraw(h).unwrap();
        assert_eq!(
            t.poll_event(),
            Some(Event::Closed {
                handle: h,
                port: None
            })
        );
        // Plain snf requests still get pool ports.
        req.transport = Transport::PLAIN;
        assert!(t.issue(now, &req, &random).unwrap().own_port);
        // Too few random bytes for a password.
        req.transport = Transport::WEBSOCKET;
        assert_eq!(
            t.issue(now, &req, &[0; TOKEN_BYTES + 7]),
            Err(Error::NotEnoughRandom)
        );
        assert!(t.check_invariants());
    }

    #[test]
    fn generated_password_is_unbiased_mapping() {
        // Every byte below 248 maps to ALPHABET[b % 62]: each character is
        // hit by exactly 4 byte values.
        let mut hits = [0u8; 62];
        for b in 0u8..=255 {
            if let Ok(pw) = generate_password(&[b; 8]) {
                let c = pw.as_bytes()[0];
                hits[ALPHABET.iter().position(|&a| a == c).unwrap()] += 1;
            }
        }
        assert!(hits.iter().all(|&h| h == 4));
        assert_eq!(generate_password(&[248; 64]), Err(Error::NotEnoughRandom));
        let _ = Need::Either;
    }

    #[test]
    fn caller_storage_ids_rows_and_counters() {
        // Any [Slot] is storage: here a borrowed slice.
        let mut storage: [Slot; 3] = slots();
        let mut t = Table::new(config(7000, 7009), &mut storage[..]).unwrap();
        assert_eq!(t.capacity(), 3);
        let now = Instant::from_millis(1000);
        let mut req = twisted("pw");
        let a = t.issue(now, &req, &RANDOM).unwrap();
        req.host = Host::try_from("NODE1").unwrap();
        req.timeout_ms = Some(1500);
        let b = t.issue(now, &req, &RANDOM).unwrap();
        req.host = Host::try_from("node2").unwrap();
        let c = t.issue(now, &req, &RANDOM).unwrap();
        let ids: heapless::Vec<u64, 3> = t.tickets().map(|t| t.id).collect();
        assert_eq!(&ids[..], &[1, 2, 3]);
        assert_eq!(t.find_id(2), Some(b.handle));
        assert_eq!(t.find_id(4), None);
        {
            let rows: heapless::Vec<TicketRow<'_>, 3> = t.rows(now + 1).collect();
            assert_eq!(
                rows[0],
                TicketRow {
                    id: 1,
                    backend_host: "node1",
                    backend_port: 5900,
                    port: a.port,
                    expires_in: 30,
                }
            );
            assert_eq!(rows[1].expires_in, 2, "1499 ms left: rounded up");
        }
        // Kill by backend: host names compare without case.
        assert_eq!(t.withdraw_backend("node1", 5900), 2);
        assert_eq!(t.withdraw_backend("node1", 5900), 0);
        assert_eq!(t.tickets().count(), 1);
        assert!(matches!(t.poll_event(), Some(Event::Closed { handle, .. }) if handle == a.handle));
        assert!(matches!(t.poll_event(), Some(Event::Closed { handle, .. }) if handle == b.handle));
        assert_eq!(t.poll_event(), None);
        t.handle_timeout(now + 1500);
        assert!(
            matches!(t.poll_event(), Some(Event::Expired { handle, .. }) if handle == c.handle)
        );
        assert_eq!((t.issued_total(), t.expired_total()), (3, 1));
        // Ids are never reused.
        assert_eq!(
            t.issue(now, &req, &RANDOM)
                .map(|i| t.get(i.handle).unwrap().id),
            Ok(4)
        );
        // The event ring wraps: as many events as slots, in order.
        for _ in 0..5 {
            let i = t.issue(now, &req, &RANDOM).unwrap();
            t.withdraw(i.handle).unwrap();
            assert!(
                matches!(t.poll_event(), Some(Event::Closed { handle, .. }) if handle == i.handle)
            );
        }
        assert!(t.check_invariants());
    }

    #[test]
    fn debug_never_shows_a_password_or_token() {
        use core::fmt::Write;
        let mut c = config(7000, 7001);
        c.single_port = Some(6080);
        let mut t = Table::new(c, slots::<2>()).unwrap();
        let mut req = twisted("sekrit12");
        req.dialect = Dialect::Snf;
        req.transport = Transport::WEBSOCKET;
        let i = t.issue(Instant::from_millis(0), &req, &RANDOM).unwrap();
        let mut s: heapless::String<2048> = heapless::String::new();
        write!(s, "{:?} {:?} {:?}", t.get(i.handle).unwrap(), i, req).unwrap();
        let token = i.token.as_ref().unwrap().as_str().unwrap();
        assert!(!s.contains("sekrit12") && !s.contains(token), "{s}");
        assert!(s.contains("<redacted>"));
    }
}
