//! Entry points, and one viewer connection up to its authentication.
//!
//! Two doors lead to a console. A ticket's own port ([`accept_loop`], one
//! listener per ticket, cancelled once the ticket is taken or gone, which
//! closes the socket) serves whatever arrives: a WebSocket upgrade, a native
//! viewer, a Flash policy request. The single-port listener
//! ([`single_port_loop`], `--single-port`) serves WebSocket consoles named by
//! the token in their URL (`websockify?token=…`).
//!
//! Each connection: sniff (a silence means a native viewer) → (TLS, when
//! `--cert` is given, then sniff again inside: a WebSocket upgrade or a
//! silence) → (WebSocket handshake; on the single port, the token picks the
//! ticket) → RFB server handshake with the ticket password → the ticket is
//! taken. What follows is `session.rs`. Every decision is a core machine's
//! (TLS is rustls's, `tls.rs`); this file sequences them, owns the sockets
//! and logs each outcome once, with the peer address.

use crate::buffer::InBuf;
use crate::daemon::Daemon;
use crate::drive::{drive, flush, DriveError};
use crate::record::{self, Recording, Tag, Tap};
use crate::session::{Authenticated, ViewerRead, ViewerWrite};
use crate::tls;
use crate::transport::{ByteWrite, Plain};
use crate::ws;
use futures_lite::io::{AsyncRead, AsyncWrite};
use smol::net::{TcpListener, TcpStream};
use std::fmt;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;
use vncap_core::control::Password;
use vncap_core::rfb::server;
use vncap_core::sniff::{self, Kind};
use vncap_core::ticket::{self, Handle, Lookup};
use vncap_core::ws::handshake::{self, Handshake};
use vncap_core::{policy, Instant};

/// A WebSocket viewer's socket buffer while its frames stream (an idle
/// viewer's reader waits with a small one: `ws.rs`).
const WS_INPUT_BUFFER: usize = 64 * 1024;

/// Bytes a connection may hold during RFB authentication (the 16-byte
/// response, plus whatever a viewer sends early).
const RFB_BUFFER: usize = 4096;

/// Which door a viewer came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    /// The entry port of one ticket.
    Port {
        /// The ticket.
        handle: Handle,
        /// Its port.
        port: u16,
    },
    /// The single-port WebSocket listener; the URL's token names the ticket.
    Single {
        /// The listener's port.
        port: u16,
    },
}

impl fmt::Display for Door {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Door::Port { port, .. } => write!(f, "port {port}"),
            Door::Single { port } => write!(f, "single port {port}"),
        }
    }
}

/// A ticket's listening socket; logs when it is closed (the task holding it
/// was cancelled), after the socket is gone.
struct EntryListener {
    listener: Option<TcpListener>,
    port: u16,
}

impl Drop for EntryListener {
    fn drop(&mut self) {
        drop(self.listener.take());
        log::debug!("entry port {} closed", self.port);
    }
}

/// Accepts viewers on a ticket's entry port until cancelled.
pub async fn accept_loop(d: Rc<Daemon>, handle: Handle, port: u16, listener: TcpListener) {
    let entry = EntryListener {
        listener: Some(listener),
        port,
    };
    if let Some(listener) = entry.listener.as_ref() {
        serve_door(&d, listener, Door::Port { handle, port }).await;
    }
}

/// Accepts WebSocket viewers on the single port until cancelled (shutdown).
pub async fn single_port_loop(d: Rc<Daemon>, listener: TcpListener, port: u16) {
    serve_door(&d, &listener, Door::Single { port }).await;
}

async fn serve_door(d: &Rc<Daemon>, listener: &TcpListener, door: Door) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                crate::accept_failed(door, e).await;
                continue;
            }
        };
        let Some(slot) = d.connection_slot() else {
            log::warn!("{peer} on {door}: refused, --max-sessions reached");
            continue;
        };
        let d2 = d.clone();
        d.ex.spawn(async move {
            let _slot = slot;
            viewer(d2, door, stream, peer).await;
        })
        .detach();
    }
}

/// One viewer connection, from accept to close, bounded by the handshake
/// deadline until it authenticates.
async fn viewer(d: Rc<Daemon>, door: Door, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let deadline = d.settings.handshake_timeout;
    let pre_auth = async { Some(authenticate(&d, door, stream, peer).await) };
    let timeout = async {
        smol::Timer::after(deadline).await;
        None
    };
    match futures_lite::future::or(pre_auth, timeout).await {
        None => log::info!(
            "{peer} on {door}: handshake timed out after {}s",
            deadline.as_secs()
        ),
        Some(Err(msg)) => log::info!("{peer} on {door}: {msg}"),
        Some(Ok(Viewer::Tcp(session))) => session.run_tcp(&d, peer, &door.to_string()).await,
        Some(Ok(Viewer::Tls(session))) => session.run(&d, peer, &format!("{door} (TLS)")).await,
    }
}

/// An authenticated viewer, over whichever stream carries it.
enum Viewer {
    /// Plain TCP (native RFB or WebSocket).
    Tcp(Authenticated<TcpStream, TcpStream>),
    /// TLS over TCP (native RFB or WebSocket inside).
    Tls(Authenticated<tls::Read<TcpStream>, tls::Write<TcpStream>>),
}

/// What a connection carries, as sniffed: the layers `find_ticket` checks
/// against the ticket's transport.
#[derive(Debug, Clone, Copy)]
struct Layers {
    tls: bool,
    websocket: bool,
}

/// What the first bytes (or their absence) said.
enum Arrival {
    Sniffed(Kind),
    Silent,
}

/// Reads until `sniff` decides or the silence timeout passes.
async fn sniff_arrival<R: AsyncRead + Unpin>(
    r: &mut Plain<R>,
    input: &mut InBuf,
) -> std::io::Result<Arrival> {
    let silence = smol::Timer::after(Duration::from_millis(sniff::SILENCE_TIMEOUT_MS));
    futures_lite::pin!(silence);
    loop {
        if let Some(kind) = sniff::sniff(input.data()) {
            return Ok(Arrival::Sniffed(kind));
        }
        let read = async { Some(input.fill(r).await) };
        let timer = async {
            (&mut silence).await;
            None
        };
        match futures_lite::future::or(read, timer).await {
            None if input.data().is_empty() => return Ok(Arrival::Silent),
            None => return Ok(Arrival::Sniffed(Kind::Unknown)),
            Some(Ok(0)) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e),
        }
    }
}

/// Sniffs what arrived on a TCP connection (and inside TLS, when it is
/// TLS) and authenticates it.
async fn authenticate(
    d: &Rc<Daemon>,
    door: Door,
    stream: TcpStream,
    peer: SocketAddr,
) -> Result<Viewer, String> {
    let mut r = Plain(stream.clone());
    let mut w = Plain(stream);
    // Room for an HTTP upgrade request, the largest thing before RFB.
    let mut input = InBuf::new(d.settings.max_header_bytes);
    let arrival = sniff_arrival(&mut r, &mut input)
        .await
        .map_err(|e| format!("closed before speaking ({e})"))?;
    let websocket = match arrival {
        Arrival::Silent => false,
        Arrival::Sniffed(Kind::Http) => true,
        Arrival::Sniffed(Kind::FlashPolicy) => {
            return Err(answer_policy(d, &mut r, &mut w, &mut input).await)
        }
        Arrival::Sniffed(Kind::Tls) => {
            let Some(acceptor) = &d.settings.tls else {
                let _ = crate::transport::write_msg(&mut w, &sniff::TLS_HANDSHAKE_FAILURE).await;
                w.close().await;
                return Err(
                    "TLS is not offered on this entry point; sent handshake_failure".into(),
                );
            };
            drop(w);
            let (tr, tw) = acceptor
                .accept(input.data(), r.0)
                .await
                .map_err(|e| format!("TLS handshake: {e}"))?;
            return authenticate_tls(d, door, peer, Plain(tr), Plain(tw))
                .await
                .map(Viewer::Tls);
        }
        Arrival::Sniffed(Kind::Unknown) => {
            return Err("spoke first and is not a known protocol; closed".into());
        }
    };
    let layers = Layers {
        tls: false,
        websocket,
    };
    authenticate_over(d, door, peer, r, w, input, layers)
        .await
        .map(Viewer::Tcp)
}

/// Inside TLS: sniff again (a WebSocket upgrade, or a silence: a native
/// viewer), then authenticate.
async fn authenticate_tls<R, W>(
    d: &Rc<Daemon>,
    door: Door,
    peer: SocketAddr,
    mut r: Plain<R>,
    mut w: Plain<W>,
) -> Result<Authenticated<R, W>, String>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut input = InBuf::new(d.settings.max_header_bytes);
    let arrival = sniff_arrival(&mut r, &mut input)
        .await
        .map_err(|e| format!("TLS: closed before speaking ({e})"))?;
    let websocket = match arrival {
        Arrival::Silent => false,
        Arrival::Sniffed(Kind::Http) => true,
        Arrival::Sniffed(_) => {
            w.close().await;
            return Err("TLS: spoke first and is not a WebSocket upgrade; closed".into());
        }
    };
    let layers = Layers {
        tls: true,
        websocket,
    };
    authenticate_over(d, door, peer, r, w, input, layers).await
}

/// Why a viewer may not use a console: told as RFB's "connection failed"
/// reason, or on the single port as an HTTP status (the core's choice:
/// [`ticket::Error::http_status`]).
#[derive(Debug, Clone, Copy)]
struct Refusal {
    reason: &'static str,
    http_status: u16,
}

impl From<ticket::Error> for Refusal {
    fn from(e: ticket::Error) -> Self {
        Refusal {
            reason: e.reason(),
            http_status: e.http_status(),
        }
    }
}

/// The ticket a viewer may use, and its password; or why it may not.
fn find_ticket(
    d: &Daemon,
    door: Door,
    peer: SocketAddr,
    layers: Layers,
    token: Option<&str>,
    now: Instant,
) -> Result<(Handle, Password), Refusal> {
    let arrived = (layers.tls, layers.websocket);
    d.with_tickets(|t| {
        let h = match door {
            Door::Port { handle, port } => {
                let h = t.admit(Lookup::Port(port), peer.ip(), now, arrived)?;
                // The port's ticket changed hands since this listener opened.
                if h != handle {
                    return Err(ticket::Error::NoSuchTicket.into());
                }
                h
            }
            Door::Single { .. } => {
                let token = token.ok_or(Refusal {
                    reason: "this entry point serves WebSocket consoles named by a token",
                    http_status: 404,
                })?;
                t.admit(Lookup::Token(token.as_bytes()), peer.ip(), now, arrived)?
            }
        };
        let ticket = t.get(h).ok_or(ticket::Error::NoSuchTicket)?;
        Ok((h, ticket.viewer_password.clone()))
    })
}

/// From the sniffed stream on, over whatever carries the viewer's bytes:
/// the WebSocket upgrade if one came, then RFB authentication.
async fn authenticate_over<R, W>(
    d: &Rc<Daemon>,
    door: Door,
    peer: SocketAddr,
    mut r: Plain<R>,
    mut w: Plain<W>,
    mut input: InBuf,
    layers: Layers,
) -> Result<Authenticated<R, W>, String>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut ticket = Err(Refusal::from(ticket::Error::NoSuchTicket));
    let (reader, writer) = if layers.websocket {
        let origins: Vec<&str> = d
            .settings
            .allowed_origins
            .iter()
            .map(String::as_str)
            .collect();
        let mut hs = Handshake::new(handshake::Config {
            allowed_origins: &origins,
            max_header_bytes: d.settings.max_header_bytes,
        });
        let sub = loop {
            match drive(&mut hs, &mut r, &mut w, &mut input, &d.clock).await {
                Ok(handshake::Event::Request) => {
                    let token = hs.request().and_then(|req| req.query_param("token"));
                    ticket = find_ticket(d, door, peer, layers, token, d.clock.now());
                    match (door, &ticket) {
                        // No console behind this URL: an HTTP answer.
                        (Door::Single { .. }, Err(refusal)) => hs.reject(refusal.http_status),
                        _ => hs.accept(),
                    }
                }
                Ok(handshake::Event::Upgraded(sub)) => break sub,
                Err(e) => {
                    w.close().await;
                    let why = ticket
                        .err()
                        .map(|r| format!(" ({})", r.reason))
                        .unwrap_or_default();
                    return Err(format!("WebSocket handshake: {e}{why}"));
                }
            }
        };
        let limits = vncap_core::ws::frame::Config {
            max_message: d.settings.max_message_bytes,
        };
        let conn = vncap_core::ws::Connection::new(sub, limits);
        let (wr, ww) = ws::split(conn, r.0, w.0, input.data(), WS_INPUT_BUFFER);
        input = InBuf::new(RFB_BUFFER);
        (ViewerRead::Ws(wr), ViewerWrite::Ws(ww))
    } else {
        ticket = find_ticket(d, door, peer, layers, None, d.clock.now());
        (ViewerRead::Plain(r), ViewerWrite::Plain(w))
    };
    // --record: the viewer's RFB bytes, from here on.
    let rec = d.settings.record.as_deref().and_then(|dir| {
        let how = match (layers.tls, layers.websocket) {
            (false, false) => "native RFB",
            (false, true) => "WebSocket",
            (true, false) => "native RFB over TLS",
            (true, true) => "WebSocket over TLS",
        };
        record::start(Recording::viewer(dir, peer, &format!("{door}, {how}")))
    });
    let mut reader = Tap::new(reader, rec.as_ref(), Tag::Client);
    let mut writer = Tap::new(writer, rec.as_ref(), Tag::Server);

    // A viewer that may not use a ticket still gets an answer it can show:
    // RFB's "connection failed" with the reason.
    let mut server = match &ticket {
        Ok((_, password)) => {
            let mut challenge = [0u8; 16];
            getrandom::fill(&mut challenge).map_err(|e| format!("no randomness: {e}"))?;
            server::Server::new(password.as_bytes(), challenge)
        }
        Err(refusal) => server::Server::refusing(refusal.reason),
    };
    let outcome = drive(&mut server, &mut reader, &mut writer, &mut input, &d.clock).await;
    let result = match (outcome, ticket) {
        (Ok(server::Event::Authenticated), Ok((handle, _))) => {
            // One-time: the ticket leaves the table, its listener closes.
            match d.with_tickets(|t| t.authenticated(handle, d.clock.now())) {
                Ok(ticket) => Ok(ticket),
                Err(e) => {
                    server.reject(e.reason());
                    let _ = flush(&mut server, &mut writer).await;
                    Err(format!("authenticated, but: {}", e.reason()))
                }
            }
        }
        (Err(DriveError::Protocol(server::Error::AuthenticationFailed)), Ok((handle, _))) => {
            Err(match d.with_tickets(|t| t.failed_attempt(handle)) {
                Ok(ticket::Attempt::Retry(n)) => format!("wrong password ({n} attempts left)"),
                _ => "wrong password; ticket burnt".into(),
            })
        }
        (Err(DriveError::Protocol(server::Error::Refused)), Err(refusal)) => {
            Err(format!("refused: {}", refusal.reason))
        }
        (Err(e), _) => Err(format!("RFB handshake: {e}")),
        (Ok(_), Err(refusal)) => Err(format!("refused: {}", refusal.reason)),
        // Never: this entry path offers VNC authentication only (the viewer
        // side of VeNCrypt, `server::Offer`, is wired by the core entry).
        (Ok(server::Event::StartTls), Ok(_)) => Err("VeNCrypt was not offered".into()),
    };
    let ticket = match result {
        Ok(ticket) => ticket,
        Err(failure) => {
            writer.close().await;
            return Err(failure);
        }
    };
    Ok(Authenticated {
        ticket,
        reader,
        writer,
        server,
        early: input,
    })
}

/// Answers a Flash policy request on an entry point (the ticket is
/// untouched); returns what to log.
async fn answer_policy(
    d: &Rc<Daemon>,
    r: &mut Plain<TcpStream>,
    w: &mut Plain<TcpStream>,
    input: &mut InBuf,
) -> String {
    let config = policy::Config {
        domain: &d.settings.policy_domain,
        ports: d.settings.policy_ports,
    };
    let res = match policy::Policy::new(&config) {
        Ok(mut responder) => match drive(&mut responder, r, w, input, &d.clock).await {
            Ok(_) => "answered a Flash policy request".to_string(),
            Err(e) => format!("Flash policy: {e}"),
        },
        Err(_) => "bad Flash policy configuration".to_string(),
    };
    w.close().await;
    res
}
