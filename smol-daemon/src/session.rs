//! One authenticated viewer's session: log in to the backend
//! (`backend::login`: connect with timeout and retries, the core's
//! `rfb::client`, VeNCrypt's TLS), answer the viewer's
//! SecurityResult (`accept`, or `reject` with the reason the viewer will
//! show), relay both ways, and give the ticket back. What happens before
//! authentication is `entry.rs`.

use crate::backend;
use crate::buffer::InBuf;
use crate::daemon::Daemon;
use crate::drive::flush;
use crate::record::Tap;
use crate::relay::relay;
use crate::transport::{ByteRead, ByteWrite, Plain};
use crate::ws;
use futures_lite::io::{AsyncRead, AsyncWrite};
use smol::net::TcpStream;
use std::net::SocketAddr;
use std::ops::Range;
use std::rc::Rc;
use vncap_core::rfb::server;
use vncap_core::ticket::Ticket;

/// The viewer's reading half, whatever carries it.
pub enum ViewerRead<R, W> {
    /// Native RFB.
    Plain(Plain<R>),
    /// RFB in WebSocket frames.
    Ws(ws::WsRead<R, W>),
}

/// The viewer's writing half, whatever carries it.
pub enum ViewerWrite<W> {
    /// Native RFB.
    Plain(Plain<W>),
    /// RFB in WebSocket frames.
    Ws(ws::WsWrite<W>),
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> ByteRead for ViewerRead<R, W> {
    async fn read_bytes(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            ViewerRead::Plain(r) => r.read_bytes(buf).await,
            ViewerRead::Ws(r) => r.read_bytes(buf).await,
        }
    }
}

impl<W: AsyncWrite + Unpin> ByteWrite for ViewerWrite<W> {
    async fn write_payload(
        &mut self,
        buf: &mut [u8],
        payload: Range<usize>,
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

/// An authenticated viewer, with the ticket it took out of the table, ready
/// for the backend.
pub struct Authenticated<R, W> {
    /// The ticket it used (no longer in the table): the backend to reach.
    pub ticket: Ticket,
    /// Its halves (recorded with `--record`).
    pub reader: Tap<ViewerRead<R, W>>,
    /// Its halves (recorded with `--record`).
    pub writer: Tap<ViewerWrite<W>>,
    /// The RFB server machine, waiting for `accept` or `reject`.
    pub server: server::Server,
    /// Viewer bytes read after its authentication (an early ClientInit).
    pub early: InBuf,
}

impl Authenticated<TcpStream, TcpStream> {
    /// [`Authenticated::run`] for a viewer on TCP: a native viewer (plain
    /// RFB, no TLS, no WebSocket) is relayed with `splice(2)`, unless
    /// `--record` needs the bytes.
    pub async fn run_tcp(self, d: &Rc<Daemon>, peer: SocketAddr, door: &str) {
        let splice = match (&self.reader.inner, self.reader.recording()) {
            (ViewerRead::Plain(Plain(s)), None) => Some(s.clone()),
            _ => None,
        };
        self.run_with(d, peer, door, splice).await
    }
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Authenticated<R, W> {
    /// Backend login, SecurityResult, relay.
    pub async fn run(self, d: &Rc<Daemon>, peer: SocketAddr, door: &str) {
        self.run_with(d, peer, door, None).await
    }

    /// `splice`: the viewer's plain TCP socket, when the relay may splice.
    async fn run_with(
        mut self,
        d: &Rc<Daemon>,
        peer: SocketAddr,
        door: &str,
        splice: Option<TcpStream>,
    ) {
        match self.connect_and_relay(d, peer, splice).await {
            Ok(msg) => log::info!("{peer} on {door}: {msg}"),
            Err(msg) => log::warn!("{peer} on {door}: {msg}"),
        }
    }

    async fn connect_and_relay(
        &mut self,
        d: &Rc<Daemon>,
        peer: SocketAddr,
        splice: Option<TcpStream>,
    ) -> Result<String, String> {
        let ticket = self.ticket.clone();
        let (host, bport) = (ticket.backend_host.as_str(), ticket.backend_port);
        log::info!("{peer}: authenticated; connecting to backend {host}:{bport}");
        // Connect, log in (VeNCrypt's TLS included); with --record the
        // backend leg goes next to the viewer's.
        let how = backend::Login {
            host,
            port: bport,
            password: ticket.backend_password.as_deref(),
            connect: d.settings.connect,
            timeout: d.settings.handshake_timeout,
            tls: d.settings.backend_tls.as_ref(),
        };
        let backend::LoggedIn {
            reader: mut br,
            writer: mut bw,
            early: binput,
            tcp: backend_tcp,
        } = match backend::login(how, &d.clock, self.reader.recording()).await {
            Ok(b) => b,
            Err(why) => return Err(self.refuse(&why, host, bport).await),
        };
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
        // Handshake buffers are not kept for the session's life.
        self.early = InBuf::new(0);
        drop(binput);
        // Both sides plain TCP, nothing recorded (`run_tcp`): splice.
        let end = match (splice, backend_tcp) {
            (Some(viewer_tcp), Some(backend_tcp)) => {
                crate::splice::relay(viewer_tcp, backend_tcp).await
            }
            _ => {
                relay(
                    (&mut self.reader, &mut self.writer),
                    (&mut br, &mut bw),
                    d.settings.relay_buffer,
                )
                .await
            }
        };
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
