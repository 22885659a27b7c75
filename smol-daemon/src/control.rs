//! The control channel: a TCP or Unix listener; each connection carries one
//! request, parsed and answered by the core's `control::Control` in the
//! request's dialect, with the daemon's answer in between: one function per
//! request kind ([`console`], [`list`], [`kill`], [`stats`]); live sessions
//! come from the session registry (`sessions.rs`), a session's id being its
//! ticket's. Bounded by [`CONTROL_TIMEOUT`] per
//! connection, on the daemon's one clock. With `--control-tls` every TCP
//! control connection is TLS (snf's `--enable-ssl`); a client that does not
//! speak it is closed unanswered. Who gets in is decided at the accept,
//! before a byte is read (`access.rs`: `--control-allow`, the connection
//! limits, a `--trusted-proxy`'s PROXY header, read here with the core's
//! `proxy::parse`); with `--control-users` every request's `auth_user` and
//! `auth_password` are checked ([`authenticate`]) before it is answered.

use crate::access::Admit;
use crate::buffer::InBuf;
use crate::daemon::Daemon;
use crate::drive::{drive, flush, DriveError};
use crate::tls::Acceptor;
use crate::transport::{ByteRead, ByteWrite, Plain};
use futures_lite::io::{AsyncRead, AsyncWrite};
use smol::net::unix::UnixListener;
use smol::net::{TcpListener, TcpStream};
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;
use vncap_core::control::{self, Console, Control, Event, Host, Kill, List, Request};
use vncap_core::text::Text;
use vncap_core::{proxy, Instant, Machine};

/// How long a control client has to send its request.
pub const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a control client may stay silent after connecting: a client
/// sends its request at once, so an idle flood gives its places back well
/// before [`CONTROL_TIMEOUT`].
pub const CONTROL_SILENCE: Duration = Duration::from_secs(3);

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
/// connection limits, `--trusted-proxy`). A connection has
/// [`CONTROL_TIMEOUT`] from its accept for everything (PROXY header,
/// handshake, request, reply), and [`CONTROL_SILENCE`] for its first byte.
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
                    let deadline = deadline_from_now(&d);
                    let input = InBuf::new(d.settings.max_request_bytes);
                    let d2 = d.clone();
                    d.ex.spawn(async move {
                        let _place = place;
                        connection(d2, (s.clone(), s), input, peer, proxy, deadline).await
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
    let deadline = deadline_from_now(d);
    d.ex.spawn(tcp_connection(
        d.clone(),
        s,
        peer,
        admit,
        proxy,
        tls.clone(),
        deadline,
    ))
    .detach();
}

/// One admitted TCP control connection: its first byte within
/// [`CONTROL_SILENCE`], a trusted proxy's PROXY header (the client it names
/// is then checked, counted and logged), TLS with `--control-tls`, then
/// [`connection`].
async fn tcp_connection(
    d: Rc<Daemon>,
    s: TcpStream,
    peer: SocketAddr,
    admit: Admit,
    proxy_address: String,
    tls: Option<Acceptor>,
    deadline: Instant,
) {
    let access = &d.control_access;
    let silence = time_left(&d, deadline).min(CONTROL_SILENCE);
    match crate::backend::with_timeout(silence, s.peek(&mut [0u8; 1])).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::TimedOut => {
            let what = format!(
                "control {peer}: closed: nothing sent within {}s",
                silence.as_secs()
            );
            access.refusals.note(&d.ex, what);
            return;
        }
        Err(e) => return log::debug!("control {peer}: {e}"),
    }
    let capacity = d.settings.max_request_bytes.max(proxy::MAX_INPUT);
    let mut input = InBuf::new(capacity);
    let (_place, client) = match admit {
        Admit::Serve(place) => (place, peer.to_string()),
        Admit::ReadProxyHeader(whole) => {
            let mut r = Plain(s.clone());
            let read = proxy_header(&mut r, &mut input);
            let header = match crate::backend::with_timeout(time_left(&d, deadline), read).await {
                Ok(h) => h,
                Err(e) => return log::warn!("control {peer} (trusted proxy): closed: {e}"),
            };
            // No header: a trusted host speaking for itself.
            let (client, who) = match header {
                Some(h) => {
                    let client = h.client_or(peer);
                    (client, format!("{client} (via proxy {peer})"))
                }
                None => (peer, peer.to_string()),
            };
            match access.behind_proxy(whole, client.ip()) {
                Ok(place) => (place, who),
                Err(why) => {
                    let what = format!("control {who}: closed: {why}");
                    return access.refusals.note(&d.ex, what);
                }
            }
        }
    };
    match tls {
        None => connection(d, (s.clone(), s), input, client, proxy_address, deadline).await,
        Some(tls) => {
            let handshake = tls.accept(input.data(), s);
            match crate::backend::with_timeout(time_left(&d, deadline), handshake).await {
                Ok(halves) => {
                    let input = InBuf::new(capacity);
                    connection(d, halves, input, client, proxy_address, deadline).await
                }
                Err(e) => log::warn!("control {client}: TLS handshake: {e}"),
            }
        }
    }
}

/// Reads a PROXY protocol header (the core's `proxy::parse`) at the start
/// of a trusted proxy's connection, or finds there is none (`None`: the
/// first bytes are not one; a trusted host may speak for itself, as on the
/// entry points); the bytes after it stay in `input`.
async fn proxy_header<R: ByteRead>(
    r: &mut R,
    input: &mut InBuf,
) -> io::Result<Option<proxy::Header>> {
    let refused = |why: &str| io::Error::new(io::ErrorKind::InvalidData, why.to_string());
    loop {
        match proxy::parse(input.data()) {
            Ok(Some(header)) => {
                input.consume(header.len);
                return Ok(Some(header));
            }
            // Not a PROXY header: the request itself, from the proxy's host.
            Err(proxy::Error::NotProxy) => return Ok(None),
            Ok(None) if input.is_full() => return Err(refused("PROXY header too long")),
            Ok(None) => {
                if input.fill(r).await? == 0 {
                    return match input.data() {
                        [] => Ok(None),
                        _ => Err(refused("closed before its PROXY header ended")),
                    };
                }
            }
            Err(e) => return Err(refused(e.reason())),
        }
    }
}

/// One control connection: request in, ticket, reply out, close; by
/// `deadline`. `input` may hold the request's first bytes already.
async fn connection<R, W>(
    d: Rc<Daemon>,
    (r, w): (R, W),
    mut input: InBuf,
    peer: String,
    proxy_address: String,
    deadline: Instant,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (mut r, mut w) = (Plain(r), Plain(w));
    // Cut at a character boundary (a byte index could split one and panic).
    let mut proxy = Host::new();
    let _ = proxy.push_str(&Text::<{ control::HOST_CAP }>::from_str_truncated(
        &proxy_address,
    ));
    let mut ctl = Control::new(control::Config {
        max_timeout_ms: d.max_ticket_timeout_ms(),
        proxy_address: proxy,
        max_input: d.settings.max_request_bytes,
    });
    let outcome = crate::backend::with_timeout(time_left(&d, deadline), async {
        Ok(request(&d, &mut ctl, &mut r, &mut w, &mut input).await)
    })
    .await;
    d.sessions.count_control(matches!(outcome, Ok(Ok(_))));
    match outcome {
        Ok(Ok(msg)) => log::info!("control {peer}: {msg}"),
        Ok(Err(msg)) => log::warn!("control {peer}: {msg}"),
        Err(_) => log::warn!(
            "control {peer}: no request within {}s",
            CONTROL_TIMEOUT.as_secs()
        ),
    }
    w.close().await;
}

async fn request<R, W>(
    d: &Rc<Daemon>,
    ctl: &mut Control,
    r: &mut Plain<R>,
    w: &mut Plain<W>,
    input: &mut InBuf,
) -> Result<String, String>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let event = match drive(ctl, r, w, input, &d.clock).await {
        Ok(ev) => ev,
        Err(DriveError::Closed) => {
            let eof = ctl.handle_eof(input.data());
            flush(ctl, w).await.map_err(|e| e.to_string())?;
            eof.map_err(|e| format!("refused: {}", e.reason()))?;
            ctl.poll_event().ok_or("closed without a request")?
        }
        Err(DriveError::Protocol(e)) => return Err(format!("refused: {}", e.reason())),
        Err(e) => return Err(e.to_string()),
    };
    let Event::Request(req) = event;
    if let Err(why) = authenticate(d, ctl).await {
        ctl.reply_failed(why.reply());
        flush(ctl, w).await.map_err(|e| e.to_string())?;
        return Err(format!("refused {}: {}", what(&req), why));
    }
    let result = match &req {
        Request::Console(c) => console(d, ctl, c).await,
        Request::List => list(d, ctl, w).await,
        Request::Kill(k) => kill(d, ctl, k),
        Request::Stats => stats(d, ctl),
    };
    flush(ctl, w).await.map_err(|e| e.to_string())?;
    result
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

/// When a control connection accepted now must be done.
fn deadline_from_now(d: &Daemon) -> Instant {
    d.clock.now() + CONTROL_TIMEOUT.as_millis() as u64
}

/// What is left of a control connection's time.
fn time_left(d: &Daemon, deadline: Instant) -> Duration {
    Duration::from_millis(deadline.millis_since(d.clock.now()))
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
