//! The control channel: a TCP or Unix listener; each connection carries one
//! request, parsed and answered by the core's `control::Control` in the
//! request's dialect, with the daemon's answer in between: one function per
//! request kind ([`console`], [`list`], [`kill`], [`stats`]); live sessions
//! come from the session registry (`sessions.rs`), a session's id being its
//! ticket's. Bounded by [`CONTROL_TIMEOUT`] per
//! connection, on the daemon's one clock. With `--control-tls` every TCP
//! control connection is TLS (snf's `--enable-ssl`); a client that does not
//! speak it is closed unanswered.

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
use std::time::Duration;
use vncap_core::control::{self, Console, Control, Event, Host, Kill, List, Request};
use vncap_core::text::Text;
use vncap_core::{Instant, Machine};

/// How long a control client has to send its request.
pub const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);

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
/// only), each one is a TLS connection first. A connection has
/// [`CONTROL_TIMEOUT`] from its accept for everything: handshake, request,
/// reply.
pub async fn accept_loop(
    d: Rc<Daemon>,
    listener: Rc<Listener>,
    public_address: Option<String>,
    tls: Option<Acceptor>,
) {
    loop {
        let accepted = match &*listener {
            Listener::Tcp(l) => l.accept().await.map(|(s, peer)| {
                let local = s
                    .local_addr()
                    .map(|a| a.ip().to_string())
                    .unwrap_or_default();
                let proxy = public_address.clone().unwrap_or(local);
                let d = d.clone();
                let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port()).to_string();
                let deadline = deadline_from_now(&d);
                match tls.clone() {
                    None => {
                        d.ex.spawn(connection(d.clone(), (s.clone(), s), peer, proxy, deadline))
                    }
                    Some(tls) => {
                        d.ex.spawn(tls_connection(d.clone(), tls, s, peer, proxy, deadline))
                    }
                }
            }),
            Listener::Unix(l, path) => l.accept().await.map(|(s, _)| {
                let proxy = public_address.clone().unwrap_or_else(|| "localhost".into());
                let d = d.clone();
                let peer = format!("unix:{}", path.display());
                let deadline = deadline_from_now(&d);
                d.ex.spawn(connection(d.clone(), (s.clone(), s), peer, proxy, deadline))
            }),
        };
        match accepted {
            Ok(task) => task.detach(),
            Err(e) => crate::accept_failed("control", e).await,
        }
    }
}

/// One control connection over TLS: the handshake, then [`connection`].
async fn tls_connection(
    d: Rc<Daemon>,
    tls: Acceptor,
    s: TcpStream,
    peer: String,
    proxy_address: String,
    deadline: Instant,
) {
    match crate::backend::with_timeout(time_left(&d, deadline), tls.accept(&[], s)).await {
        Ok(halves) => connection(d, halves, peer, proxy_address, deadline).await,
        Err(e) => log::warn!("control {peer}: TLS handshake: {e}"),
    }
}

/// One control connection: request in, ticket, reply out, close; by
/// `deadline`.
async fn connection<R, W>(
    d: Rc<Daemon>,
    (r, w): (R, W),
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
        Ok(request(&d, &mut ctl, &mut r, &mut w).await)
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
) -> Result<String, String>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut input = InBuf::new(d.settings.max_request_bytes);
    let event = match drive(ctl, r, w, &mut input, &d.clock).await {
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
    let result = match &req {
        Request::Console(c) => console(d, ctl, c).await,
        Request::List => list(d, ctl, w).await,
        Request::Kill(k) => kill(d, ctl, k),
        Request::Stats => stats(d, ctl),
    };
    flush(ctl, w).await.map_err(|e| e.to_string())?;
    result
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
