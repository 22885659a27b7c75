//! Entry points and the life of one viewer connection.
//!
//! [`accept_loop`] is a ticket's listener: it runs until the ticket is taken
//! or gone (its task is then cancelled, which closes the socket). Each
//! connection goes through [`viewer`]:
//!
//! sniff (a silence means a native viewer) → (WebSocket handshake) → RFB
//! server handshake with the ticket password → the ticket is taken → backend
//! connect and RFB client login → SecurityResult to the viewer → relay →
//! the ticket ends and its port returns to the pool.
//!
//! Every step's decision is a core machine's; this file sequences them, owns
//! the sockets and logs each outcome once, with the peer address.

use crate::backend;
use crate::buffer::InBuf;
use crate::daemon::Daemon;
use crate::drive::{drive, flush, DriveError};
use crate::relay::relay;
use crate::transport::{ByteRead, ByteWrite, Plain};
use crate::ws;
use smol::net::{TcpListener, TcpStream};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;
use vncap_core::policy;
use vncap_core::rfb::{client, server};
use vncap_core::sniff::{self, Kind};
use vncap_core::ticket::{self, Handle, Lookup};

/// Bytes a connection may hold before the RFB stage (an HTTP upgrade request).
const HANDSHAKE_BUFFER: usize = vncap_core::ws::handshake::DEFAULT_MAX_HEADER_BYTES;

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
    let Some(listener) = entry.listener.as_ref() else {
        return;
    };
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                log::warn!("entry port {port}: accept: {e}");
                continue;
            }
        };
        let Some(slot) = d.connection_slot() else {
            log::warn!("{peer} on port {port}: refused, --max-sessions reached");
            continue;
        };
        let d2 = d.clone();
        d.ex.spawn(async move {
            let _slot = slot;
            viewer(d2, handle, port, stream, peer).await;
        })
        .detach();
    }
}

/// What the first bytes (or their absence) said.
enum Arrival {
    Sniffed(Kind),
    Silent,
}

/// Reads until `sniff` decides or the silence timeout passes.
async fn sniff_arrival(
    stream: &mut Plain<TcpStream>,
    input: &mut InBuf,
) -> std::io::Result<Arrival> {
    let silence = smol::Timer::after(Duration::from_millis(sniff::SILENCE_TIMEOUT_MS));
    futures_lite::pin!(silence);
    loop {
        if let Some(kind) = sniff::sniff(input.data()) {
            return Ok(Arrival::Sniffed(kind));
        }
        let read = async { Some(input.fill(stream).await) };
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

/// One viewer connection, from accept to close, bounded by the handshake
/// deadline until it authenticates.
async fn viewer(d: Rc<Daemon>, handle: Handle, port: u16, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let deadline = d.settings.handshake_timeout;
    let pre_auth = async { Some(authenticate(&d, handle, port, stream, peer).await) };
    let timeout = async {
        smol::Timer::after(deadline).await;
        None
    };
    match futures_lite::future::or(pre_auth, timeout).await {
        None => log::info!(
            "{peer} on port {port}: handshake timed out after {}s",
            deadline.as_secs()
        ),
        Some(Err(msg)) => log::info!("{peer} on port {port}: {msg}"),
        Some(Ok(session)) => session.run(&d, peer, port).await,
    }
}

/// An authenticated viewer, holding the ticket, ready for the backend.
struct Authenticated {
    handle: Handle,
    viewer: Viewer,
    server: server::Server,
    viewer_input: InBuf,
}

/// The viewer's halves, whatever carries them.
enum Viewer {
    Plain(Plain<TcpStream>, Plain<TcpStream>),
    Ws(ws::WsRead<TcpStream, TcpStream>, ws::WsWrite<TcpStream>),
}

impl Viewer {
    async fn relay<BR: ByteRead, BW: ByteWrite>(
        &mut self,
        early_down: &[u8],
        backend: (&mut BR, &mut BW),
        buf_size: usize,
    ) -> Result<crate::relay::RelayEnd, String> {
        match self {
            Viewer::Plain(vr, vw) => {
                write_early(vw, early_down).await?;
                Ok(relay((vr, vw), backend, buf_size).await)
            }
            Viewer::Ws(vr, vw) => {
                write_early(vw, early_down).await?;
                Ok(relay((vr, vw), backend, buf_size).await)
            }
        }
    }
}

async fn write_early<W: ByteWrite>(w: &mut W, early: &[u8]) -> Result<(), String> {
    if early.is_empty() {
        return Ok(());
    }
    crate::transport::write_msg(w, early)
        .await
        .map_err(|e| format!("viewer: {e}"))
}

/// Up to the viewer's correct password (the ticket is then taken).
async fn authenticate(
    d: &Rc<Daemon>,
    handle: Handle,
    port: u16,
    stream: TcpStream,
    peer: SocketAddr,
) -> Result<Authenticated, String> {
    let mut r = Plain(stream.clone());
    let mut w = Plain(stream);
    let mut input = InBuf::new(HANDSHAKE_BUFFER);
    let arrival = sniff_arrival(&mut r, &mut input)
        .await
        .map_err(|e| format!("closed before speaking ({e})"))?;
    let kind = match arrival {
        Arrival::Silent => None,
        Arrival::Sniffed(Kind::FlashPolicy) => {
            return answer_policy(d, &mut r, &mut w, &mut input).await;
        }
        Arrival::Sniffed(Kind::Tls) => {
            let _ = crate::transport::write_msg(&mut w, &sniff::TLS_HANDSHAKE_FAILURE).await;
            w.close().await;
            return Err("TLS is not offered on this entry point; sent handshake_failure".into());
        }
        Arrival::Sniffed(Kind::Unknown) => {
            return Err("spoke first and is not a known protocol; closed".into());
        }
        Arrival::Sniffed(kind) => Some(kind),
    };
    let websocket = kind == Some(Kind::Http);
    // A viewer that may not use this ticket still gets an answer it can
    // show: RFB's "connection failed" with the reason.
    let now = d.clock.now();
    let ticket = d.with_tickets(|t| {
        t.lookup(Lookup::Port(port), peer.ip(), now).and_then(|h| {
            t.get(h)
                .filter(|_| h == handle)
                .cloned()
                .ok_or(ticket::Error::NoSuchTicket)
        })
    });
    let refusal = match &ticket {
        Err(e) => Some(e.reason()),
        Ok(t) if !t.transport.allows(false, websocket) => Some(if websocket {
            "this console is not offered over WebSocket"
        } else {
            "this console is offered over WebSocket only"
        }),
        Ok(_) => None,
    };

    let mut viewer = if websocket {
        let sub = ws_handshake(d, &mut r, &mut w, &mut input).await?;
        let leftover = input.data().to_vec();
        let conn = vncap_core::ws::Connection::new(sub, Default::default());
        let (wr, ww) = ws::split(conn, r.0, w.0, &leftover, d.settings.relay_buffer);
        input = InBuf::new(HANDSHAKE_BUFFER);
        Viewer::Ws(wr, ww)
    } else {
        Viewer::Plain(r, w)
    };

    let mut server = match (&ticket, refusal) {
        (Ok(t), None) => {
            let mut challenge = [0u8; 16];
            getrandom::fill(&mut challenge).map_err(|e| format!("no randomness: {e}"))?;
            server::Server::new(t.viewer_password.as_bytes(), challenge)
        }
        (_, reason) => server::Server::refusing(reason.unwrap_or("no such console")),
    };
    let outcome = match &mut viewer {
        Viewer::Plain(r, w) => drive(&mut server, r, w, &mut input, &d.clock).await,
        Viewer::Ws(r, w) => drive(&mut server, r, w, &mut input, &d.clock).await,
    };
    match outcome {
        Ok(server::Event::Authenticated) => {}
        Err(DriveError::Protocol(server::Error::AuthenticationFailed)) => {
            let left = d.with_tickets(|t| t.failed_attempt(handle));
            viewer.close().await;
            return Err(match left {
                Ok(vncap_core::ticket::Attempt::Retry(n)) => {
                    format!("wrong password ({n} attempts left)")
                }
                _ => "wrong password; ticket burnt".into(),
            });
        }
        Err(DriveError::Protocol(server::Error::Refused)) => {
            viewer.close().await;
            return Err(format!("refused: {}", refusal.unwrap_or("no such console")));
        }
        Err(e) => {
            viewer.close().await;
            return Err(format!("RFB handshake: {e}"));
        }
    }
    if let Err(e) = d.with_tickets(|t| t.authenticated(handle, d.clock.now())) {
        server.reject(e.reason());
        let _ = viewer.flush(&mut server).await;
        viewer.close().await;
        return Err(format!("authenticated, but: {}", e.reason()));
    }
    // One-time: nobody else gets in through this port.
    d.close_listener(port);
    Ok(Authenticated {
        handle,
        viewer,
        server,
        viewer_input: input,
    })
}

/// Answers a Flash policy request on an entry point (the ticket is untouched).
async fn answer_policy(
    d: &Rc<Daemon>,
    r: &mut Plain<TcpStream>,
    w: &mut Plain<TcpStream>,
    input: &mut InBuf,
) -> Result<Authenticated, String> {
    let config = policy::Config {
        domain: &d.settings.policy_domain,
        ports: d.settings.policy_ports,
    };
    let mut responder =
        policy::Policy::new(&config).map_err(|_| "bad Flash policy configuration".to_string())?;
    let res = drive(&mut responder, r, w, input, &d.clock).await;
    w.close().await;
    match res {
        Ok(_) => Err("answered a Flash policy request".into()),
        Err(e) => Err(format!("Flash policy: {e}")),
    }
}

/// The WebSocket upgrade: any path is accepted on a ticket's own port.
async fn ws_handshake(
    d: &Rc<Daemon>,
    r: &mut Plain<TcpStream>,
    w: &mut Plain<TcpStream>,
    input: &mut InBuf,
) -> Result<vncap_core::ws::Subprotocol, String> {
    let mut hs = vncap_core::ws::Handshake::new(Default::default());
    loop {
        match drive(&mut hs, r, w, input, &d.clock).await {
            Ok(vncap_core::ws::handshake::Event::Request) => hs.accept(),
            Ok(vncap_core::ws::handshake::Event::Upgraded(sub)) => return Ok(sub),
            Err(e) => {
                w.close().await;
                return Err(format!("WebSocket handshake: {e}"));
            }
        }
    }
}

impl Viewer {
    async fn flush(&mut self, m: &mut server::Server) -> std::io::Result<()> {
        match self {
            Viewer::Plain(_, w) => flush(m, w).await,
            Viewer::Ws(_, w) => flush(m, w).await,
        }
    }

    async fn close(&mut self) {
        match self {
            Viewer::Plain(_, w) => w.close().await,
            Viewer::Ws(_, w) => w.close().await,
        }
    }
}

impl Authenticated {
    /// Backend login, SecurityResult, relay; the ticket ends whatever happens.
    async fn run(mut self, d: &Rc<Daemon>, peer: SocketAddr, port: u16) {
        let result = self.connect_and_relay(d, peer).await;
        d.end(self.handle);
        match result {
            Ok(msg) => log::info!("{peer} on port {port}: {msg}"),
            Err(msg) => log::warn!("{peer} on port {port}: {msg}"),
        }
    }

    async fn connect_and_relay(
        &mut self,
        d: &Rc<Daemon>,
        peer: SocketAddr,
    ) -> Result<String, String> {
        let ticket = d
            .with_tickets(|t| t.get(self.handle).cloned())
            .ok_or("ticket gone")?;
        let host = ticket.backend_host.as_str();
        let bport = ticket.backend_port;
        log::info!("{peer}: authenticated; connecting to backend {host}:{bport}");
        let stream = match backend::connect(host, bport, d.settings.connect).await {
            Ok(s) => s,
            Err(e) => {
                return Err(self
                    .refuse(&format!("backend unreachable: {e}"), host, bport)
                    .await)
            }
        };
        let mut br = Plain(stream.clone());
        let mut bw = Plain(stream);
        let mut binput = InBuf::new(1024);
        let mut login = client::Client::new(ticket.backend_password.as_deref());
        match drive(&mut login, &mut br, &mut bw, &mut binput, &d.clock).await {
            Ok(client::Event::LoggedIn) => {}
            Err(e) => {
                let reason = match (&e, login.server_reason()) {
                    (DriveError::Protocol(_), Some(r)) if !r.is_empty() => {
                        format!("backend: {e}: {r}")
                    }
                    _ => format!("backend: {e}"),
                };
                return Err(self.refuse(&reason, host, bport).await);
            }
        }
        self.server.accept();
        self.viewer
            .flush(&mut self.server)
            .await
            .map_err(|e| format!("viewer: {e}"))?;
        // Bytes already read on either side go first (ClientInit sent early).
        let early_up = self.viewer_input.data().to_vec();
        if !early_up.is_empty() {
            crate::transport::write_msg(&mut bw, &early_up)
                .await
                .map_err(|e| format!("backend: {e}"))?;
        }
        let end = self
            .viewer
            .relay(binput.data(), (&mut br, &mut bw), d.settings.relay_buffer)
            .await?;
        match end.error {
            None => Ok(format!("session ended by the {}", end.closed_by)),
            Some(e) => Ok(format!("session ended by the {} ({e})", end.closed_by)),
        }
    }

    /// Tells the viewer why it cannot have its console, then closes it.
    async fn refuse(&mut self, reason: &str, host: &str, port: u16) -> String {
        self.server.reject(reason);
        let _ = self.viewer.flush(&mut self.server).await;
        self.viewer.close().await;
        format!("{reason} ({host}:{port})")
    }
}
