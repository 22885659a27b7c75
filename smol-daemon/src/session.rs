//! One authenticated viewer's session: log in to the backend
//! (`backend::login`: connect with timeout and retries, the core's
//! `rfb::client`, VeNCrypt's TLS), have the entry
//! machine answer the viewer's SecurityResult (`accept`, or `reject` with
//! the reason the core words), relay both ways. What happens before
//! authentication is `entry.rs`.

use crate::backend;
use crate::buffer::InBuf;
use crate::clock::Clock;
use crate::drive::flush;
use crate::record::{self, Tag, Tap};
use crate::relay::relay;
use crate::settings::Settings;
use crate::transport::{ByteWrite, Plain};
use crate::viewer::{ViewerRead, ViewerWrite};
use crate::ws;
use futures_lite::io::{AsyncRead, AsyncWrite};
use smol::net::TcpStream;
use std::net::SocketAddr;
use vncap_core::entry::{Entry, Rejection};
use vncap_core::ticket::Ticket;

/// A WebSocket viewer's socket buffer while its frames stream (an idle
/// viewer's reader waits with a small one: `ws.rs`).
const WS_INPUT_BUFFER: usize = 64 * 1024;

/// An authenticated viewer, with the ticket it took out of the table, ready
/// for the backend.
pub struct Authenticated<'a, R, W> {
    /// The ticket it used (no longer in the table): the backend to reach.
    pub ticket: Ticket,
    /// The entry machine, waiting for `accept` or `reject`.
    pub entry: Entry<'a>,
    /// The viewer's transport (TCP, or TLS), below any WebSocket.
    pub reader: Plain<R>,
    /// The viewer's transport, writing.
    pub writer: Plain<W>,
    /// Viewer bytes read and not consumed by the entry machine.
    pub input: InBuf,
}

impl Authenticated<'_, TcpStream, TcpStream> {
    /// [`Authenticated::run`] for a viewer on TCP: a native viewer (plain
    /// RFB, no TLS, no WebSocket) is relayed with `splice(2)`, unless
    /// `--record` needs the bytes.
    pub async fn run_tcp(self, settings: &Settings, clock: &Clock, peer: SocketAddr, door: &str) {
        let splice = (!self.entry.layers().websocket && settings.record.is_none())
            .then(|| self.reader.0.clone());
        self.run_with(settings, clock, peer, door, splice).await
    }
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Authenticated<'_, R, W> {
    /// Backend login, SecurityResult, relay.
    pub async fn run(self, settings: &Settings, clock: &Clock, peer: SocketAddr, door: &str) {
        self.run_with(settings, clock, peer, door, None).await
    }

    /// `splice`: the viewer's plain TCP socket, when the relay may splice.
    async fn run_with(
        self,
        settings: &Settings,
        clock: &Clock,
        peer: SocketAddr,
        door: &str,
        splice: Option<TcpStream>,
    ) {
        match self
            .connect_and_relay(settings, clock, peer, door, splice)
            .await
        {
            Ok(msg) => log::info!("{peer} on {door}: {msg}"),
            Err(msg) => log::warn!("{peer} on {door}: {msg}"),
        }
    }

    async fn connect_and_relay(
        self,
        settings: &Settings,
        clock: &Clock,
        peer: SocketAddr,
        door: &str,
        splice: Option<TcpStream>,
    ) -> Result<String, String> {
        let Authenticated {
            ticket,
            mut entry,
            reader,
            mut writer,
            input,
        } = self;
        let (host, bport) = (ticket.backend_host.as_str(), ticket.backend_port);
        let target = format!("{host}:{bport}");
        log::info!("{peer}: authenticated; connecting to backend {target}");
        // --record: both legs, from the viewer's handshake on (the backend
        // leg once the backend is reached).
        let how = format!("{door}, {}", entry.layers());
        let rec = record::start_viewer(settings.record.as_deref(), peer, &how);
        let recorded = rec.as_ref().map_or(0, |rec| {
            record::write_transcript(rec, entry.transcript(), 0)
        });
        // Connect and log in (VeNCrypt's TLS included).
        let login = backend::Login {
            host,
            port: bport,
            password: ticket.backend_password.as_deref(),
            connect: settings.connect,
            timeout: settings.handshake_timeout,
            tls: settings.backend_tls.as_ref(),
        };
        let backend::LoggedIn {
            reader: mut br,
            writer: mut bw,
            early: binput,
            tcp: backend_tcp,
        } = match backend::login(login, clock, rec.as_ref()).await {
            Ok(b) => b,
            Err(failure) => {
                let why = failure.rejection();
                return Err(refuse(&mut entry, &mut writer, why, &target).await);
            }
        };
        entry.accept();
        flush(&mut entry, &mut writer)
            .await
            .map_err(|e| format!("viewer: {e}"))?;
        if let Some(rec) = &rec {
            // SecurityResult OK.
            record::write_transcript(rec, entry.transcript(), recorded);
        }
        let handover = entry.into_relay();
        // The viewer's bytes read past the handshake, in order: WebSocket
        // frames the entry machine held, then its unconsumed input; without
        // WebSocket, that input is RFB for the backend.
        let mut leftover = handover.raw.to_vec();
        leftover.extend_from_slice(input.data());
        drop(input);
        let (viewer_r, viewer_w, early) = match handover.websocket {
            Some(conn) => {
                let (wr, ww) = ws::split(conn, reader.0, writer.0, &leftover, WS_INPUT_BUFFER);
                let early = handover.early_rfb.to_vec();
                (ViewerRead::Ws(wr), ViewerWrite::Ws(ww), early)
            }
            None => (
                ViewerRead::Plain(reader),
                ViewerWrite::Plain(writer),
                leftover,
            ),
        };
        let mut viewer_r = Tap::new(viewer_r, rec.as_ref(), Tag::Client);
        let mut viewer_w = Tap::new(viewer_w, rec.as_ref(), Tag::Server);
        if let Some(rec) = &rec {
            rec.chunk(Tag::Client, &early);
        }
        // Bytes already read on either side go first (ClientInit sent early).
        write_early(&mut bw, &early)
            .await
            .map_err(|e| format!("backend: {e}"))?;
        write_early(&mut viewer_w, binput.data())
            .await
            .map_err(|e| format!("viewer: {e}"))?;
        // Handshake buffers are not kept for the session's life.
        drop((binput, early));
        // Both sides plain TCP, nothing recorded (`run_tcp`): splice.
        let end = match (splice, backend_tcp) {
            (Some(viewer_tcp), Some(backend_tcp)) => {
                crate::splice::relay(viewer_tcp, backend_tcp).await
            }
            _ => {
                relay(
                    (&mut viewer_r, &mut viewer_w),
                    (&mut br, &mut bw),
                    settings.relay_buffer,
                )
                .await
            }
        };
        match end.error {
            None => Ok(format!("session ended by the {}", end.closed_by)),
            Some(e) => Ok(format!("session ended by the {} ({e})", end.closed_by)),
        }
    }
}

/// Tells the viewer why it cannot have its console (the core words it),
/// then closes it; returns what to log.
async fn refuse<W: AsyncWrite + Unpin>(
    entry: &mut Entry<'_>,
    writer: &mut Plain<W>,
    why: Rejection<'_>,
    target: &str,
) -> String {
    let reason = entry.reject(why);
    let _ = flush(entry, writer).await;
    writer.close().await;
    format!("{} ({target})", reason.as_str())
}

/// Writes bytes a handshake stage read past its end, if any.
async fn write_early<W: ByteWrite>(w: &mut W, early: &[u8]) -> std::io::Result<()> {
    if early.is_empty() {
        return Ok(());
    }
    crate::transport::write_msg(w, early).await
}
