//! The control channel: a TCP or Unix listener; each connection carries one
//! request, parsed and answered by the core's `control::Control` in the
//! request's dialect, with a ticket issued (and its entry listener opened) by
//! the daemon in between. Bounded by [`CONTROL_TIMEOUT`] per connection.
//! With `--control-tls` every TCP control connection is TLS (snf's
//! `--enable-ssl`); a client that does not speak it is closed unanswered.

use crate::buffer::InBuf;
use crate::daemon::Daemon;
use crate::drive::{drive, flush, DriveError};
use crate::tls::Acceptor;
use crate::transport::{ByteWrite, Plain};
use futures_lite::io::{AsyncRead, AsyncWrite};
use smol::net::unix::UnixListener;
use smol::net::{TcpListener, TcpStream};
use std::io;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};
use vncap_core::control::{self, Control, Event, Host};
use vncap_core::Machine;

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
                let peer = peer.to_string();
                let deadline = Instant::now() + CONTROL_TIMEOUT;
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
                let deadline = Instant::now() + CONTROL_TIMEOUT;
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
    let left = deadline.saturating_duration_since(Instant::now());
    match crate::backend::with_timeout(left, tls.accept(&[], s)).await {
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
    let mut proxy = Host::new();
    // --public-address is checked at startup (ASCII, at most HOST_CAP); the
    // cut stays on a character boundary whatever comes here.
    let cut = (0..=proxy_address.len().min(control::HOST_CAP))
        .rev()
        .find(|&i| proxy_address.is_char_boundary(i))
        .unwrap_or(0);
    let _ = proxy.push_str(&proxy_address[..cut]);
    let mut ctl = Control::new(control::Config {
        max_timeout_ms: d.max_ticket_timeout_ms(),
        proxy_address: proxy,
        max_input: d.settings.max_request_bytes,
    });
    let left = deadline.saturating_duration_since(Instant::now());
    let outcome = crate::backend::with_timeout(left, async {
        Ok(request(&d, &mut ctl, &mut r, &mut w).await)
    })
    .await;
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
    let what = format!("console for {}:{}", req.host, req.port);
    let result = match d.issue(&req).await {
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
    };
    flush(ctl, w).await.map_err(|e| e.to_string())?;
    result
}
