//! The control channel: a TCP or Unix listener; each connection carries one
//! request, parsed and answered by the core's `control::Control` in the
//! request's dialect, with the daemon's answer in between: one function per
//! request kind ([`console`], [`list`], [`kill`], [`stats`]); live sessions
//! come from the session registry (`sessions.rs`), a session's id being its
//! ticket's. The machine keeps the connection's deadlines (a silent client
//! is closed after `control::SILENCE_MS`, any connection after
//! `control::TIMEOUT_MS`) on the daemon's one clock, reads a trusted
//! proxy's PROXY header, and asks for TLS with `--control-tls` (snf's
//! `--enable-ssl`: every TCP control connection is TLS; a client that does
//! not speak it is closed unanswered). Who gets in is decided at the
//! accept, before a byte is read (`access.rs`: `--control-allow`, the
//! connection limits), and for a client behind a trusted proxy once the
//! machine names it; with `--control-users` every request's `auth_user`
//! and `auth_password` are checked ([`authenticate`]) before it is
//! answered.

use crate::access::Admit;
use crate::buffer::InBuf;
use crate::daemon::Daemon;
use crate::drive::{drive, flush, DriveError};
use crate::tls::Acceptor;
use crate::transport::{ByteWrite, Plain};
use futures_lite::io::{AsyncRead, AsyncWrite};
use smol::net::unix::UnixListener;
use smol::net::{TcpListener, TcpStream};
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use vncap_core::control::{self, Console, Control, Event, Host, Kill, List, Request};
use vncap_core::text::Text;
use vncap_core::{proxy, Machine};

/// A bound control listener.
pub enum Listener {
    /// `HOST:PORT`.
    Tcp(TcpListener),
    /// `unix:PATH` (the path is removed at shutdown).
    Unix(UnixListener, PathBuf),
}

impl Listener {
    /// Binds `spec`: `unix:PATH` (mode 0600, a stale socket file replaced)
    /// or `HOST:PORT`.
    pub async fn bind(spec: &str) -> io::Result<Listener> {
        if let Some(path) = spec.strip_prefix("unix:") {
            let path = PathBuf::from(path);
            if std::fs::symlink_metadata(&path).is_ok_and(|m| {
                use std::os::unix::fs::FileTypeExt;
                m.file_type().is_socket()
            }) {
                std::fs::remove_file(&path)?;
            }
            let l = UnixListener::bind(&path)?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
            Ok(Listener::Unix(l, path))
        } else {
            Ok(Listener::Tcp(TcpListener::bind(spec).await?))
        }
    }

    /// Where it listens, for the log.
    pub fn describe(&self) -> String {
        match self {
            Listener::Tcp(l) => l.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            Listener::Unix(_, p) => format!("unix:{}", p.display()),
        }
    }

    /// Removes a Unix socket's file.
    pub fn cleanup(&self) {
        if let Listener::Unix(_, p) = self {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Accepts control connections forever; with `tls` (`--control-tls`, TCP
/// only), each one is a TLS connection first. A TCP connection is admitted
/// or closed unread at once (`access.rs`: `--control-allow`, the
/// connection limits, `--trusted-proxy`). Each is then one core
/// `control::Control`, made at the accept: it keeps the connection's
/// deadlines (a silence of `control::SILENCE_MS`, `control::TIMEOUT_MS` in
/// all) and reads a trusted proxy's PROXY header.
pub async fn accept_loop(
    d: Rc<Daemon>,
    listener: Rc<Listener>,
    public_address: Option<String>,
    tls: Option<Acceptor>,
) {
    loop {
        match &*listener {
            Listener::Tcp(l) => match l.accept().await {
                Ok((s, peer)) => {
                    accepted(&d, s, peer, &public_address, &tls);
                    // A flood keeps the listener ready: let the admitted
                    // connections run between two accepts.
                    futures_lite::future::yield_now().await;
                }
                Err(e) => crate::accept_failed("control", e).await,
            },
            Listener::Unix(l, path) => match l.accept().await {
                Ok((s, _)) => {
                    let peer = format!("unix:{}", path.display());
                    let place = match d.control_access.unix() {
                        Ok(p) => p,
                        Err(why) => {
                            let what = format!("control {peer}: closed unread: {why}");
                            d.control_access.refusals.note(&d.ex, what);
                            continue;
                        }
                    };
                    let proxy = public_address.clone().unwrap_or_else(|| "localhost".into());
                    let ctl = Control::new(config(&d, &proxy, false), d.clock.now());
                    let mut conn = Connection::new(d.clone(), ctl, peer, Some(place));
                    let at = d.clock.deadline(conn.ctl.deadline());
                    d.ex.spawn(async move {
                        let input = conn.input();
                        let outcome = within(at, conn.serve((s.clone(), s), input)).await;
                        conn.finish(outcome);
                    })
                    .detach();
                }
                Err(e) => crate::accept_failed("control", e).await,
            },
        }
    }
}

/// A TCP control connection just accepted: closed unread (the refusal
/// logged once per burst), or served in a task of its own.
fn accepted(
    d: &Rc<Daemon>,
    s: TcpStream,
    peer: SocketAddr,
    public_address: &Option<String>,
    tls: &Option<Acceptor>,
) {
    let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
    let admit = match d.control_access.at_accept(peer.ip()) {
        Ok(a) => a,
        Err(why) => {
            let what = format!("control {peer}: closed unread: {why}");
            d.control_access.refusals.note(&d.ex, what);
            return;
        }
    };
    let local = s
        .local_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    let proxy = public_address.clone().unwrap_or(local);
    let config = config(d, &proxy, tls.is_some());
    let now = d.clock.now();
    let (ctl, place, pass) = match admit {
        Admit::Serve(place) => (Control::new(config, now), Some(place), None),
        Admit::ReadProxyHeader(pass) => (
            Control::from_trusted_proxy(config, now, peer),
            None,
            Some(pass),
        ),
    };
    let mut conn = Connection::new(d.clone(), ctl, peer.to_string(), place);
    conn.pass = pass;
    let tls = tls.clone();
    let at = d.clock.deadline(conn.ctl.deadline());
    d.ex.spawn(async move {
        let outcome = within(at, conn.tcp(s, tls)).await;
        conn.finish(outcome);
    })
    .detach();
}

/// The control channel's settings for one connection's machine.
fn config(d: &Daemon, proxy_address: &str, tls: bool) -> control::Config {
    // Cut at a character boundary (a byte index could split one and panic).
    let mut proxy = Host::new();
    let _ = proxy.push_str(&Text::<{ control::HOST_CAP }>::from_str_truncated(
        proxy_address,
    ));
    control::Config {
        max_timeout_ms: d.max_ticket_timeout_ms(),
        proxy_address: proxy,
        max_input: d.settings.max_request_bytes,
        tls,
        ..control::Config::default()
    }
}

/// How a control connection ended, for the log and the counters.
enum Outcome {
    /// A request answered: logged at info, counted as served.
    Answered(String),
    /// A request refused, or the connection failed: logged as a warning,
    /// counted as refused.
    Failed(String),
    /// Closed before a request in a way a flood repeats (silent, or a
    /// client refused behind a proxy): logged once per burst, counted as a
    /// connection refused (`vncap_connections_refused_total`), not as a
    /// request.
    Dropped(String),
}

/// One control connection: its core machine and what the daemon holds for
/// it (its place in the connection limits, the name it is logged by).
struct Connection {
    d: Rc<Daemon>,
    ctl: Control,
    /// Who it is, for the log: the peer, or the client behind a proxy.
    who: String,
    /// Its place in the connection limits, held to the end.
    place: Option<crate::access::Place>,
    /// A trusted proxy's connection: its place before the client is known.
    pass: Option<crate::budget::Pass>,
}

impl Connection {
    fn new(d: Rc<Daemon>, ctl: Control, who: String, place: Option<crate::access::Place>) -> Self {
        Connection {
            d,
            ctl,
            who,
            place,
            pass: None,
        }
    }

    /// An input buffer for the request (and a PROXY header before it).
    fn input(&self) -> InBuf {
        InBuf::new(self.d.settings.max_request_bytes.max(proxy::MAX_INPUT))
    }

    /// A TCP connection: the machine in plaintext, then inside TLS when it
    /// asks for it (`--control-tls`).
    async fn tcp(&mut self, s: TcpStream, tls: Option<Acceptor>) -> Outcome {
        let mut input = self.input();
        match self.step((s.clone(), s.clone()), &mut input).await {
            Step::Done(outcome) => outcome,
            Step::StartTls => {
                let Some(tls) = tls else {
                    return Outcome::Failed("TLS asked for without --control-tls".into());
                };
                match tls.accept(input.data(), s).await {
                    Ok(halves) => {
                        self.ctl.tls_started();
                        let input = self.input();
                        self.serve(halves, input).await
                    }
                    Err(e) => Outcome::Failed(format!("TLS handshake: {e}")),
                }
            }
        }
    }

    /// Serves the request over `(r, w)`: a machine that asks for TLS here
    /// is a bug (only [`Connection::tcp`] offers it).
    async fn serve<R, W>(&mut self, halves: (R, W), mut input: InBuf) -> Outcome
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        match self.step(halves, &mut input).await {
            Step::Done(outcome) => outcome,
            Step::StartTls => Outcome::Failed("TLS asked for twice".into()),
        }
    }

    /// Drives the machine over `(r, w)` to its request, answers it and
    /// closes; or stops where it asks for TLS.
    async fn step<R, W>(&mut self, (r, w): (R, W), input: &mut InBuf) -> Step
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let (mut r, mut w) = (Plain(r), Plain(w));
        let done = loop {
            match self.next(&mut r, &mut w, input).await {
                Ok(Event::Client) => {
                    if let Err(outcome) = self.admit_client() {
                        break outcome;
                    }
                }
                Ok(Event::StartTls) => return Step::StartTls,
                Ok(Event::Request(req)) => break self.answer(&mut w, req).await,
                Err(outcome) => break outcome,
            }
        };
        w.close().await;
        Step::Done(done)
    }

    /// The machine's next event, or how the connection ended without one.
    async fn next<R, W>(
        &mut self,
        r: &mut Plain<R>,
        w: &mut Plain<W>,
        input: &mut InBuf,
    ) -> Result<Event, Outcome>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let ctl = &mut self.ctl;
        let failed = |e: control::Error| match e {
            control::Error::Silent => Outcome::Dropped(format!("closed: {}", e.reason())),
            _ => Outcome::Failed(format!("refused: {}", e.reason())),
        };
        match drive(ctl, r, w, input, &self.d.clock).await {
            Ok(ev) => Ok(ev),
            Err(DriveError::Closed) => {
                let eof = ctl.handle_eof(input.data());
                flush(ctl, w)
                    .await
                    .map_err(|e| Outcome::Failed(e.to_string()))?;
                eof.map_err(failed)?;
                ctl.poll_event()
                    .ok_or_else(|| Outcome::Failed("closed without a request".into()))
            }
            Err(DriveError::Protocol(e)) => Err(failed(e)),
            Err(e) => Err(Outcome::Failed(e.to_string())),
        }
    }

    /// A trusted proxy's client is settled: checked against
    /// `--control-allow` and counted in its own per-source limit.
    fn admit_client(&mut self) -> Result<(), Outcome> {
        let (Some(pass), Some(client)) = (self.pass.take(), self.ctl.client()) else {
            return Ok(());
        };
        if self.who != client.to_string() {
            self.who = format!("{client} (via proxy {})", self.who);
        }
        match self.d.control_access.behind_proxy(pass, client.ip()) {
            Ok(place) => {
                self.place = Some(place);
                Ok(())
            }
            Err(why) => Err(Outcome::Dropped(format!("closed: {why}"))),
        }
    }

    /// A request: its control credentials checked, then answered.
    async fn answer<W>(&mut self, w: &mut Plain<W>, req: Request) -> Outcome
    where
        W: AsyncWrite + Unpin,
    {
        let (d, ctl) = (&self.d, &mut self.ctl);
        if let Err(why) = authenticate(d, ctl).await {
            ctl.reply_failed(why.reply());
            let sent = flush(ctl, w).await;
            return Outcome::Failed(match sent {
                Ok(()) => format!("refused {}: {}", what(&req), why),
                Err(e) => e.to_string(),
            });
        }
        let result = match &req {
            Request::Console(c) => console(d, ctl, c).await,
            Request::List => list(d, ctl, w).await,
            Request::Kill(k) => kill(d, ctl, k),
            Request::Stats => stats(d, ctl),
        };
        match (flush(ctl, w).await, result) {
            (Err(e), _) => Outcome::Failed(e.to_string()),
            (Ok(()), Ok(msg)) => Outcome::Answered(msg),
            (Ok(()), Err(msg)) => Outcome::Failed(msg),
        }
    }

    /// Logs and counts how the connection ended.
    fn finish(self, outcome: Outcome) {
        let who = &self.who;
        match outcome {
            Outcome::Answered(msg) => {
                self.d.sessions.count_control(true);
                log::info!("control {who}: {msg}");
            }
            Outcome::Failed(msg) => {
                self.d.sessions.count_control(false);
                log::warn!("control {who}: {msg}");
            }
            Outcome::Dropped(msg) => {
                let what = format!("control {who}: {msg}");
                self.d.control_access.refusals.note(&self.d.ex, what);
            }
        }
    }
}

/// `work`, ended at `at` (the machine's [`Control::deadline`]) if it is not
/// done by then: the machine bounds the reading, this the answer too.
async fn within(
    at: std::time::Instant,
    work: impl std::future::Future<Output = Outcome>,
) -> Outcome {
    futures_lite::future::or(work, async {
        smol::Timer::at(at).await;
        Outcome::Failed(control::Error::TimedOut.reason().into())
    })
    .await
}

/// Where [`Connection::step`] stopped.
enum Step {
    /// The connection is over.
    Done(Outcome),
    /// The machine asks for TLS over the unconsumed input.
    StartTls,
}

/// Why a request's control credentials were refused (`--control-users`).
#[derive(Debug)]
enum Refusal {
    /// No `auth_user` or no `auth_password` (a GWM request never has them).
    Missing,
    /// No such user (the reply does not say which of these two).
    UnknownUser(String),
    /// The password does not match the user's hash.
    WrongPassword(String),
}

impl Refusal {
    /// The reason sent back.
    fn reply(&self) -> &'static str {
        match self {
            Refusal::Missing => "control authentication required (auth_user and auth_password)",
            _ => "control authentication failed",
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Missing => f.write_str("no auth_user and auth_password (--control-users)"),
            Refusal::UnknownUser(u) => write!(f, "unknown auth_user {u:?}"),
            Refusal::WrongPassword(u) => write!(f, "wrong auth_password for {u:?}"),
        }
    }
}

/// With `--control-users`, the request's `auth_user` and `auth_password`
/// must match the file (checked on a blocking thread: a crypt(3) hash takes
/// thousands of SHA-2 rounds, and the executor has one thread). The
/// password is never logged.
async fn authenticate(d: &Daemon, ctl: &Control) -> Result<(), Refusal> {
    let Some(users) = d.control_access.users() else {
        return Ok(());
    };
    let auth = ctl.auth();
    let (Some(user), Some(password)) = (&auth.user, &auth.password) else {
        return Err(Refusal::Missing);
    };
    let (hash, known) = users.lookup(user);
    let password = password.as_bytes().to_vec();
    let verdict = smol::unblock(move || crate::users::verify(&hash, known, &password)).await;
    match verdict {
        crate::users::Verdict::Known => Ok(()),
        crate::users::Verdict::UnknownUser => Err(Refusal::UnknownUser(user.to_string())),
        crate::users::Verdict::WrongPassword => Err(Refusal::WrongPassword(user.to_string())),
    }
}

/// A request, named for the log.
fn what(req: &Request) -> String {
    match req {
        Request::Console(c) => format!("console for {}:{}", c.host, c.port),
        Request::List => "list".into(),
        Request::Kill(_) => "kill".into(),
        Request::Stats => "stats".into(),
    }
}

/// A console request: a ticket issued (its entry listener open), or why not
/// (`shutting down` once SIGTERM came).
async fn console(d: &Rc<Daemon>, ctl: &mut Control, req: &Console) -> Result<String, String> {
    let what = format!("console for {}:{}", req.host, req.port);
    if d.sessions.shutting_down() {
        ctl.reply_failed(SHUTTING_DOWN);
        return Err(format!("{what} failed: {SHUTTING_DOWN}"));
    }
    match crate::entry::issue(d, req).await {
        Ok(issued) => {
            ctl.reply_ok(&issued.granted());
            Ok(format!(
                "{what} on entry port {} for {}s",
                issued.port, issued.expires_in
            ))
        }
        Err(reason) => {
            ctl.reply_failed(&reason);
            Err(format!("{what} failed: {reason}"))
        }
    }
}

/// `list`: the live sessions from the registry, the pending tickets from
/// the table (never a password, a token or a challenge).
async fn list<W>(d: &Rc<Daemon>, ctl: &mut Control, w: &mut Plain<W>) -> Result<String, String>
where
    W: AsyncWrite + Unpin,
{
    let now = d.clock.now();
    let (reply, sessions, tickets) = d.with_tickets(|t| {
        let live = d.sessions.live();
        let list = List {
            sessions: crate::sessions::rows(&live),
            tickets: t.rows(now),
        };
        let mut buf = vec![0; list.buffer_len()];
        let n = ctl.reply_list(&list, &mut buf);
        buf.truncate(n.unwrap_or(0));
        (buf, live.len(), t.len())
    });
    if reply.is_empty() {
        return Err("list: reply not written".into());
    }
    crate::transport::write_msg(w, &reply)
        .await
        .map_err(|e| e.to_string())?;
    Ok(format!(
        "list: {sessions} sessions, {tickets} pending tickets"
    ))
}

/// `kill`: ends a session or withdraws a pending ticket by id, or every
/// session and ticket of a backend (a VM that moved); answers how many.
fn kill(d: &Rc<Daemon>, ctl: &mut Control, k: &Kill) -> Result<String, String> {
    let why = crate::sessions::Ending::Killed;
    let (n, what) = match k {
        Kill::Id(id) => {
            let ticket = d.with_tickets(|t| t.find_id(*id).map(|h| t.withdraw(h).is_ok()));
            let n = match ticket {
                Some(true) => 1,
                _ => usize::from(d.sessions.kill(*id, why)),
            };
            (n, format!("kill {id}"))
        }
        Kill::Backend { host, port } => {
            let tickets = d.with_tickets(|t| t.withdraw_backend(host, *port));
            let sessions = d.sessions.kill_backend(host, *port, why);
            (tickets + sessions, format!("kill backend {host}:{port}"))
        }
    };
    ctl.reply_killed(n as u64);
    Ok(format!("{what}: {n} killed"))
}

/// `stats`: the counters (as `/metrics` serves them).
fn stats(d: &Rc<Daemon>, ctl: &mut Control) -> Result<String, String> {
    ctl.reply_stats(&d.stats());
    Ok("stats".into())
}

/// The answer to a console request after SIGTERM.
const SHUTTING_DOWN: &str = "shutting down";
