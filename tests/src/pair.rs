//! A viewer and the core's entry machine in memory, on a virtual clock (as
//! quinn-proto's tests run both ends of a connection in a `Pair`): no
//! sockets, no real time. The test is the viewer: it delivers bytes (in
//! whatever chunks it likes), closes, or advances the clock; the pair plays
//! the daemon's part exactly as `smol-daemon/src/entry.rs` does — the ticket
//! table answers the admit step, an authenticated viewer takes its ticket
//! and logs in to a scripted backend through the core's `rfb::client`, and a
//! wrong password is charged to the ticket — and keeps everything that
//! happened for the test to assert on.

use crate::fixture::{Dir, Fixture};
use vncap_core::control::{self, Console, Control, Request};
use vncap_core::entry::{self, Door, Entry, Event, Rejection, Relay};
use vncap_core::rfb::client;
use vncap_core::ticket::{self, Attempt, Issued, Slot, Table, Ticket};
use vncap_core::{policy, ws, Instant, Machine};

/// Tickets the pair's table holds.
pub const TICKETS: usize = 8;
/// The handshake deadline the pair's machines get, in milliseconds.
pub const HANDSHAKE_MS: u64 = 10_000;
/// The challenge every pair's RFB server sends.
pub const CHALLENGE: [u8; 16] = *b"vncap-pair-chall";

/// The ticket table's settings for the pair (pool 7000-7007, 30 s
/// tickets, no TLS: see [`tls_config`]).
pub fn table_config() -> ticket::Config {
    ticket::Config {
        first_port: 7000,
        last_port: 7007,
        ..ticket::Config::default()
    }
}

/// [`table_config`] for a vncap with a certificate: TLS is offered (a
/// sniffed ClientHello, VeNCrypt to native viewers).
pub fn tls_config() -> ticket::Config {
    ticket::Config {
        tls: true,
        ..table_config()
    }
}

/// The pair's ticket table: its storage is an array of slots.
pub type Tickets = Table<[Slot; TICKETS]>;

/// A table with `config` in fresh storage.
pub fn new_table(config: ticket::Config) -> Box<Tickets> {
    let storage = core::array::from_fn(|_| Slot::new());
    Box::new(Table::new(config, storage).expect("table config"))
}

/// Parses one console request line (either dialect).
pub fn request(json: &str) -> Console {
    let mut c = Control::new(control::Config::default(), vncap_core::Instant::default());
    let line = format!("{json}\n");
    let mut input = line.as_bytes();
    loop {
        match c.handle_input(input) {
            Ok(0) => break,
            Ok(n) => input = &input[n..],
            Err(e) => panic!("request {json}: {e}"),
        }
    }
    match c.poll_event() {
        Some(control::Event::Request(Request::Console(c))) => c,
        other => panic!("request {json}: {other:?}"),
    }
}

/// How the scripted backend answers the login.
#[derive(Debug, Clone)]
pub enum Backend {
    /// Logs in at once (no backend bytes).
    Accepts,
    /// The backend's side of a recorded session (`S:` of a backend-leg
    /// fixture) and its password.
    Recorded(Vec<u8>, Option<Vec<u8>>),
    /// Cannot be reached.
    Unreachable,
}

impl Backend {
    /// The backend leg of a recorded fixture.
    pub fn from_fixture(f: &Fixture) -> Backend {
        let pw = f.get("server-password");
        Backend::Recorded(
            f.stream(Dir::Server),
            (!pw.is_empty()).then(|| pw.as_bytes().to_vec()),
        )
    }
}

/// The viewer, the entry machine, the table and the clock.
pub struct Pair {
    /// The virtual clock.
    pub now: Instant,
    /// The machine under test.
    pub entry: Entry<'static>,
    /// The ticket table the admit step asks.
    pub table: Box<Tickets>,
    /// Viewer bytes delivered and not consumed.
    pub pending: Vec<u8>,
    /// Every byte the machine sent the viewer.
    pub to_viewer: Vec<u8>,
    /// Every event, in order.
    pub events: Vec<Event>,
    /// The error that ended it.
    pub error: Option<entry::Error>,
    /// What a wrong password did to the ticket.
    pub attempt: Option<Attempt>,
    /// The ticket the viewer took.
    pub ticket: Option<Ticket>,
    /// What the backend does.
    pub backend: Backend,
    /// Every byte the backend login sent the backend.
    pub to_backend: Vec<u8>,
    /// The reason sent when the login failed.
    pub rejected: Option<String>,
    /// What `into_relay` handed over, after an accept.
    pub relay: Option<Relay>,
    /// The viewer's address the machine settled on, as it was at the admit
    /// step (`Entry::client`; the machine is gone after the hand-over).
    pub client: Option<entry::Client>,
    /// Answer `StartTls` by "running TLS" at once (the test then delivers
    /// plaintext).
    pub tls_answered: bool,
}

/// The entry machine's settings for `door`.
pub fn entry_config(door: Door, tls: bool) -> entry::Config<'static> {
    entry::Config {
        door,
        peer: "127.0.0.1".parse().unwrap(),
        tls,
        handshake_timeout_ms: HANDSHAKE_MS,
        websocket: ws::handshake::Config::default(),
        frames: ws::frame::Config {
            max_message: 1 << 20,
        },
        policy: policy::Config::default(),
        transcript: true,
    }
}

impl Pair {
    /// A table holding one ticket issued for `json` at time 0, and a viewer
    /// arriving at `arrival` ms through that ticket's door (its port, or the
    /// single port 6080 for a token ticket).
    pub fn new(json: &str, arrival: u64) -> (Pair, Issued) {
        Pair::with_config(json, arrival, table_config(), CHALLENGE)
    }

    /// [`Pair::new`] with the table's settings and the RFB challenge.
    pub fn with_config(
        json: &str,
        arrival: u64,
        config: ticket::Config,
        challenge: [u8; 16],
    ) -> (Pair, Issued) {
        let (door, table, issued) = Self::issue(json, config);
        let pair = Pair::at(door, table, arrival, challenge);
        (pair, issued)
    }

    /// [`Pair::with_config`] for a connection whose socket peer (127.0.0.1)
    /// is a trusted proxy (`Entry::from_trusted_proxy`).
    pub fn behind_proxy(json: &str, arrival: u64, config: ticket::Config) -> (Pair, Issued) {
        let (door, table, issued) = Self::issue(json, config);
        (Pair::behind_proxy_at(door, table, arrival), issued)
    }

    /// [`Pair::at`] for a connection from a trusted proxy.
    pub fn behind_proxy_at(door: Door, table: Box<Tickets>, arrival: u64) -> Pair {
        let now = Instant::from_millis(arrival);
        let tls = table.config().tls;
        let entry = Entry::from_trusted_proxy(entry_config(door, tls), now, CHALLENGE);
        Pair::with_entry(entry, table, now)
    }

    /// A table holding one ticket issued for `json` at time 0, and its door.
    fn issue(json: &str, config: ticket::Config) -> (Door, Box<Tickets>, Issued) {
        let mut table = new_table(config);
        let req = request(json);
        let issued = table
            .issue(Instant::from_millis(0), &req, &[7u8; ticket::RANDOM_LEN])
            .expect("issue");
        let door = if issued.own_port {
            let offers = table.get(issued.handle).unwrap().transport;
            Door::Port {
                port: issued.port,
                handle: issued.handle,
                offers,
            }
        } else {
            Door::Single { port: issued.port }
        };
        (door, table, issued)
    }

    /// A viewer arriving at `arrival` ms through `door` of `table`.
    pub fn at(door: Door, table: Box<Tickets>, arrival: u64, challenge: [u8; 16]) -> Pair {
        let now = Instant::from_millis(arrival);
        let tls = table.config().tls;
        let entry = Entry::new(entry_config(door, tls), now, challenge);
        Pair::with_entry(entry, table, now)
    }

    /// The pair around `entry`, created at `now`.
    fn with_entry(entry: Entry<'static>, table: Box<Tickets>, now: Instant) -> Pair {
        let mut p = Pair {
            now,
            entry,
            table,
            pending: Vec::new(),
            to_viewer: Vec::new(),
            events: Vec::new(),
            error: None,
            attempt: None,
            ticket: None,
            backend: Backend::Accepts,
            to_backend: Vec::new(),
            rejected: None,
            relay: None,
            client: None,
            tls_answered: true,
        };
        p.drain();
        p
    }

    /// Delivers viewer bytes; the machine takes what it can.
    pub fn deliver(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
        self.feed(false);
    }

    /// Delivers `bytes` in chunks of the given sizes (cycled; 0 counts as 1).
    pub fn deliver_split(&mut self, bytes: &[u8], sizes: &[usize]) {
        let mut at = 0;
        let mut sizes = sizes.iter().copied().cycle();
        while at < bytes.len() {
            let n = sizes.next().unwrap_or(bytes.len()).max(1);
            let end = (at + n).min(bytes.len());
            self.deliver(&bytes[at..end]);
            at = end;
        }
    }

    /// The viewer closes its side.
    pub fn close(&mut self) {
        self.feed(true);
    }

    /// Advances the clock by `ms`, firing the machine's timer when due.
    pub fn advance(&mut self, ms: u64) {
        self.advance_to(self.now + ms);
    }

    /// Sets the clock to `t`, firing the machine's timer when due (at its
    /// own time first, then at `t`, as a driver's timer would).
    pub fn advance_to(&mut self, t: Instant) {
        while let Some(at) = self.entry.poll_timeout() {
            if at > t || self.finished() {
                break;
            }
            self.now = at;
            self.entry.handle_timeout(at);
            // A failure at the timeout is reported by the next input call,
            // as a driver's loop makes it.
            self.feed(false);
            if self.entry.poll_timeout() == Some(at) {
                break;
            }
        }
        self.now = t;
    }

    /// Whether the machine stopped (an error, or accepted and handed over).
    pub fn finished(&self) -> bool {
        self.error.is_some() || self.relay.is_some()
    }

    fn feed(&mut self, eof: bool) {
        self.drain();
        if self.finished() {
            return;
        }
        loop {
            let r = if eof {
                self.entry.handle_eof(&self.pending)
            } else {
                self.entry.handle_input(&self.pending)
            };
            match r {
                Ok(n) => {
                    self.pending.drain(..n);
                    self.drain();
                    if n == 0 || self.finished() {
                        break;
                    }
                }
                Err(e) => {
                    self.fail(e);
                    break;
                }
            }
        }
    }

    fn fail(&mut self, e: entry::Error) {
        self.error = Some(e);
        self.drain();
        self.attempt = self.entry.charge_attempt(&mut self.table);
    }

    /// Writes the machine's output and acts on its events, as the daemon.
    fn drain(&mut self) {
        loop {
            // A small buffer: output in pieces.
            let mut buf = [0u8; 11];
            let mut progressed = false;
            loop {
                let n = self.entry.poll_output(&mut buf);
                if n == 0 {
                    break;
                }
                self.to_viewer.extend_from_slice(&buf[..n]);
                progressed = true;
            }
            if let Some(ev) = self.entry.poll_event() {
                self.events.push(ev);
                self.act(ev);
                progressed = true;
            }
            if !progressed {
                return;
            }
        }
    }

    fn act(&mut self, ev: Event) {
        match ev {
            Event::StartTls if self.tls_answered => self.entry.tls_started(self.now),
            Event::StartTls | Event::PolicyServed | Event::Client => {}
            // No web root here: tests/web_entry.rs drives that route.
            Event::Serve => {}
            Event::Admit => {
                self.client = Some(self.entry.client());
                self.entry.admit_from(&self.table, self.now)
            }
            Event::Authenticated(_) => match self.entry.take_ticket(&mut self.table, self.now) {
                Ok(t) => {
                    self.ticket = Some(t);
                    self.login();
                }
                Err(_) => self.error = Some(entry::Error::Rejected),
            },
        }
    }

    /// Logs in to the scripted backend, then accepts or rejects the viewer.
    fn login(&mut self) {
        let outcome = match self.backend.clone() {
            Backend::Accepts => Ok(()),
            Backend::Unreachable => Err("connection refused".to_string()),
            Backend::Recorded(from_backend, password) => {
                let mut c = client::Client::new(password.as_deref());
                let mut input = &from_backend[..];
                let mut out = [0u8; 64];
                loop {
                    let r = c.handle_input(input);
                    loop {
                        let n = c.poll_output(&mut out);
                        if n == 0 {
                            break;
                        }
                        self.to_backend.extend_from_slice(&out[..n]);
                    }
                    match r {
                        Ok(0) if c.poll_event().is_some() => break Ok(()),
                        Ok(0) => break Err("backend: closed".into()),
                        Ok(n) => input = &input[n..],
                        Err(e) => {
                            let why = Rejection::LoginFailed(e, c.server_reason());
                            let reason = self.entry.reject(why);
                            self.rejected = Some(reason.as_str().to_string());
                            self.error = Some(entry::Error::Rejected);
                            return;
                        }
                    }
                }
            }
        };
        match outcome {
            Ok(()) => {
                assert!(self.entry.accept(), "accept after Authenticated");
                self.drain_output();
                let entry = std::mem::replace(
                    &mut self.entry,
                    Entry::new(
                        entry_config(Door::Single { port: 0 }, false),
                        self.now,
                        CHALLENGE,
                    ),
                );
                self.relay = Some(entry.into_relay());
            }
            Err(detail) => {
                let reason = self.entry.reject(Rejection::Unreachable(&detail));
                self.rejected = Some(reason.as_str().to_string());
                self.error = Some(entry::Error::Rejected);
            }
        }
    }

    fn drain_output(&mut self) {
        let mut buf = [0u8; 11];
        loop {
            let n = self.entry.poll_output(&mut buf);
            if n == 0 {
                break;
            }
            self.to_viewer.extend_from_slice(&buf[..n]);
        }
    }
}

/// A masked client WebSocket frame (binary, or text for `base64` sessions)
/// carrying `payload`, written here independently of the core's codec.
pub fn client_frame(payload: &[u8], mask: [u8; 4], text: bool) -> Vec<u8> {
    let mut f = vec![if text { 0x81 } else { 0x82 }];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n < 65536 => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// The payloads of the server's (unmasked) frames in `bytes`, after an HTTP
/// response head if there is one; stops at a partial frame.
pub fn server_payloads(bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut at = match bytes.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) if bytes.starts_with(b"HTTP/1.1") => i + 4,
        _ => 0,
    };
    let mut frames = Vec::new();
    while at + 2 <= bytes.len() {
        let opcode = bytes[at] & 0x0f;
        let (len, head) = match bytes[at + 1] & 0x7f {
            126 if at + 4 <= bytes.len() => (
                u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]) as usize,
                4,
            ),
            127 => break,
            n if n < 126 => (n as usize, 2),
            _ => break,
        };
        if at + head + len > bytes.len() {
            break;
        }
        frames.push((opcode, bytes[at + head..at + head + len].to_vec()));
        at += head + len;
    }
    frames
}

/// The payloads of masked client frames in `bytes` (the frames a viewer
/// sent that the relay still has to decode); stops at a partial frame.
pub fn client_payloads(bytes: &[u8]) -> Vec<u8> {
    let mut at = 0;
    let mut out = Vec::new();
    while at + 6 <= bytes.len() {
        let (len, head) = match bytes[at + 1] & 0x7f {
            126 => (
                u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]) as usize,
                8,
            ),
            n if n < 126 => (n as usize, 6),
            _ => break,
        };
        if at + head + len > bytes.len() {
            break;
        }
        let mask = &bytes[at + head - 4..at + head];
        let body = &bytes[at + head..at + head + len];
        out.extend(body.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        at += head + len;
    }
    out
}
