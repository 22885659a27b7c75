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

/// The viewer's reading half, whatever carries it.
enum ViewerRead {
    Plain(Plain<TcpStream>),
    Ws(ws::WsRead<TcpStream, TcpStream>),
}

/// The viewer's writing half, whatever carries it.
enum ViewerWrite {
    Plain(Plain<TcpStream>),
    Ws(ws::WsWrite<TcpStream>),
}

impl ByteRead for ViewerRead {
    async fn read_bytes(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            ViewerRead::Plain(r) => r.read_bytes(buf).await,
            ViewerRead::Ws(r) => r.read_bytes(buf).await,
        }
    }
}

impl ByteWrite for ViewerWrite {
    async fn write_payload(
        &mut self,
        buf: &mut [u8],
        payload: std::ops::Range<usize>,
    ) -> std::io::Result<()> {
        match self {
            ViewerWrite::Plain(w) => w.write_payload(buf, payload).await,
            ViewerWrite::Ws(w) => w.write_payload(buf, payload).await,
        }
    }

    async fn close(&mut self) {
        match self {
            ViewerWrite::Plain(w) => w.close().await,
            ViewerWrite::Ws(w) => w.close().await,
        }
    }
}

/// An authenticated viewer, holding the ticket, ready for the backend.
struct Authenticated {
    handle: Handle,
    reader: ViewerRead,
    writer: ViewerWrite,
    server: server::Server,
    /// Viewer bytes read after its authentication (an early ClientInit).
    early: InBuf,
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
    let websocket = match arrival {
        Arrival::Silent => false,
        Arrival::Sniffed(Kind::Http) => true,
        Arrival::Sniffed(Kind::FlashPolicy) => {
            return Err(answer_policy(d, &mut r, &mut w, &mut input).await)
        }
        Arrival::Sniffed(Kind::Tls) => {
            let _ = crate::transport::write_msg(&mut w, &sniff::TLS_HANDSHAKE_FAILURE).await;
            w.close().await;
            return Err("TLS is not offered on this entry point; sent handshake_failure".into());
        }
        Arrival::Sniffed(Kind::Unknown) => {
            return Err("spoke first and is not a known protocol; closed".into());
        }
    };
    // A viewer that may not use this ticket still gets an answer it can
    // show: RFB's "connection failed" with the reason.
    let now = d.clock.now();
    let password = d.with_tickets(|t| {
        let h = t
            .lookup(Lookup::Port(port), peer.ip(), now)
            .map_err(|e| e.reason())?;
        let ticket = t
            .get(h)
            .filter(|_| h == handle)
            .ok_or(ticket::Error::NoSuchTicket.reason())?;
        ticket.transport.check(false, websocket)?;
        Ok::<_, &'static str>(ticket.viewer_password.clone())
    });

    let (mut reader, mut writer) = if websocket {
        let sub = ws_handshake(d, &mut r, &mut w, &mut input).await?;
        let conn = vncap_core::ws::Connection::new(sub, Default::default());
        let (wr, ww) = ws::split(conn, r.0, w.0, input.data(), d.settings.relay_buffer);
        input = InBuf::new(HANDSHAKE_BUFFER);
        (ViewerRead::Ws(wr), ViewerWrite::Ws(ww))
    } else {
        (ViewerRead::Plain(r), ViewerWrite::Plain(w))
    };

    let mut server = match &password {
        Ok(password) => {
            let mut challenge = [0u8; 16];
            getrandom::fill(&mut challenge).map_err(|e| format!("no randomness: {e}"))?;
            server::Server::new(password.as_bytes(), challenge)
        }
        Err(reason) => server::Server::refusing(reason),
    };
    let outcome = drive(&mut server, &mut reader, &mut writer, &mut input, &d.clock).await;
    let failure = match outcome {
        Ok(server::Event::Authenticated) => {
            match d.with_tickets(|t| t.authenticated(handle, d.clock.now())) {
                Ok(()) => None,
                Err(e) => {
                    server.reject(e.reason());
                    let _ = flush(&mut server, &mut writer).await;
                    Some(format!("authenticated, but: {}", e.reason()))
                }
            }
        }
        Err(DriveError::Protocol(server::Error::AuthenticationFailed)) => {
            Some(match d.with_tickets(|t| t.failed_attempt(handle)) {
                Ok(ticket::Attempt::Retry(n)) => format!("wrong password ({n} attempts left)"),
                _ => "wrong password; ticket burnt".into(),
            })
        }
        Err(DriveError::Protocol(server::Error::Refused)) => Some(format!(
            "refused: {}",
            password.err().unwrap_or("no such console")
        )),
        Err(e) => Some(format!("RFB handshake: {e}")),
    };
    if let Some(failure) = failure {
        writer.close().await;
        return Err(failure);
    }
    // One-time: nobody else gets in through this port.
    d.close_listener(port);
    Ok(Authenticated {
        handle,
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
        let (host, bport) = (ticket.backend_host.as_str(), ticket.backend_port);
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
        // A backend that accepts but never speaks RFB must not hold the viewer.
        let logged_in = backend::with_timeout(d.settings.handshake_timeout, async {
            Ok(drive(&mut login, &mut br, &mut bw, &mut binput, &d.clock).await)
        })
        .await;
        match logged_in {
            Ok(Ok(client::Event::LoggedIn)) => {}
            Ok(Err(e)) => {
                let reason = match (&e, login.server_reason()) {
                    (DriveError::Protocol(_), Some(r)) if !r.is_empty() => {
                        format!("backend: {e}: {r}")
                    }
                    _ => format!("backend: {e}"),
                };
                return Err(self.refuse(&reason, host, bport).await);
            }
            Err(_) => {
                return Err(self
                    .refuse("backend did not complete the RFB handshake", host, bport)
                    .await)
            }
        }
        self.server.accept();
        flush(&mut self.server, &mut self.writer)
            .await
            .map_err(|e| format!("viewer: {e}"))?;
        // Bytes already read on either side go first (ClientInit sent early).
        write_early(&mut bw, self.early.data())
            .await
            .map_err(|e| format!("backend: {e}"))?;
        write_early(&mut self.writer, binput.data())
            .await
            .map_err(|e| format!("viewer: {e}"))?;
        let end = relay(
            (&mut self.reader, &mut self.writer),
            (&mut br, &mut bw),
            d.settings.relay_buffer,
        )
        .await;
        match end.error {
            None => Ok(format!("session ended by the {}", end.closed_by)),
            Some(e) => Ok(format!("session ended by the {} ({e})", end.closed_by)),
        }
    }

    /// Tells the viewer why it cannot have its console, then closes it.
    async fn refuse(&mut self, reason: &str, host: &str, port: u16) -> String {
        self.server.reject(reason);
        let _ = flush(&mut self.server, &mut self.writer).await;
        self.writer.close().await;
        format!("{reason} ({host}:{port})")
    }
}

/// Writes bytes a handshake stage read past its end, if any.
async fn write_early<W: ByteWrite>(w: &mut W, early: &[u8]) -> std::io::Result<()> {
    if early.is_empty() {
        return Ok(());
    }
    crate::transport::write_msg(w, early).await
}
