//! One authenticated viewer's session: log in to the backend
//! (`backend::login`: connect with timeout and retries, the core's
//! `rfb::client`, VeNCrypt's TLS), have the entry
//! machine answer the viewer's SecurityResult (`accept`, or `reject` with
//! the reason the core words), relay both ways. What happens before
//! authentication is `entry.rs`.
//!
//! Resources before promises: the viewer's ticket is only claimed when it
//! gets here ([`TicketDesk`]); the recording file, the backend socket and
//! its login, and the relay's first pipes or buffers are taken before
//! SecurityResult OK, and only then is the ticket taken. When the system
//! refuses one of them (out of descriptors or memory) the viewer is told
//! so, keeps its ticket, and the log names what ran out.
//!
//! While it relays, the session is in the registry (`sessions.rs`: `list`,
//! `kill`, the drain) and its bytes are metered (`meter.rs`); beside the
//! relay runs [`watch`], the session's end by vncap: a kill, the restart,
//! `--idle-timeout`, `--max-session-secs`, and the core's WebSocket ping
//! timer. Its end is logged once: viewer, door, backend, transport,
//! duration, bytes each way, who ended it and why.

use crate::backend;
use crate::buffer::InBuf;
use crate::clock::Clock;
use crate::drive::flush;
use crate::meter::{Direction, Meter, Metered};
use crate::record::{self, Tag, Tap};
use crate::relay::relay;
use crate::sessions::{Ending, Info, Login, Registered, Registry};
use crate::settings::{Limits, Settings};
use crate::transport::{ByteWrite, Plain};
use crate::viewer::{ViewerRead, ViewerWrite};
use crate::ws;
use futures_lite::io::{AsyncRead, AsyncWrite};
use smol::net::TcpStream;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;
use vncap_core::control::{Door, Layers};
use vncap_core::entry::{Entry, Rejection};
use vncap_core::ticket::{self, Ticket};
use vncap_core::Instant;

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
    pub async fn run_tcp(self, at: Place<'_>, peer: SocketAddr, door: &str) {
        let splice = (!self.entry.layers().websocket && at.settings.record.is_none())
            .then(|| self.reader.0.clone());
        self.run_with(at, peer, door, splice).await
    }
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Authenticated<'_, R, W> {
    /// Backend login, SecurityResult, relay.
    pub async fn run(self, at: Place<'_>, peer: SocketAddr, door: &str) {
        self.run_with(at, peer, door, None).await
    }

    /// `splice`: the viewer's plain TCP socket, when the relay may splice.
    async fn run_with(
        self,
        at: Place<'_>,
        peer: SocketAddr,
        door: &str,
        splice: Option<TcpStream>,
    ) {
        match self.connect_and_relay(at, peer, door, splice).await {
            Ok(msg) => log::info!("{peer} on {door}: {msg}"),
            Err(msg) => log::warn!("{peer} on {door}: {msg}"),
        }
    }

    async fn connect_and_relay(
        self,
        at: Place<'_>,
        peer: SocketAddr,
        door: &str,
        splice: Option<TcpStream>,
    ) -> Result<String, String> {
        let Place {
            settings,
            clock,
            sessions,
            tickets,
        } = at;
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
        let made = settings
            .record
            .as_deref()
            .map(|dir| record::Recording::viewer(dir, peer, &how));
        let rec = match made {
            // Out of descriptors for the file: out of them for the session.
            Some(Err(e)) if backend::exhausted(&e).is_some() => {
                let what = backend::exhausted(&e).unwrap_or_default();
                let e = format!("the recording: {e}");
                return Err(short(&mut entry, &mut writer, tickets, what, &e).await);
            }
            Some(made) => record::start(made),
            None => None,
        };
        let recorded = rec.as_ref().map_or(0, |rec| {
            record::write_transcript(rec, entry.transcript(), 0)
        });
        // Connect and log in (VeNCrypt's TLS included).
        let login = backend::Login {
            host,
            port: bport,
            password: ticket.backend_password.as_ref().map(|p| p.as_bytes()),
            connect: settings.connect,
            timeout: settings.handshake_timeout,
            tls: settings.backend_tls.as_ref(),
            access: &settings.backend_access,
        };
        let backend::LoggedIn {
            reader: br,
            writer: mut bw,
            early: binput,
            tcp: backend_tcp,
        } = match backend::login(login, clock, rec.as_ref()).await {
            Ok(b) => b,
            Err(backend::Failure::OutOfResources(what, e)) => {
                let e = format!("the backend socket ({target}): {e}");
                return Err(short(&mut entry, &mut writer, tickets, what, &e).await);
            }
            Err(failure) => {
                sessions.count_login(match failure {
                    backend::Failure::Unreachable(_) => Login::BackendUnreachable,
                    _ => Login::BackendRefused,
                });
                // The backend's fault, not vncap's: the ticket is used.
                let _ = tickets.take(&mut entry);
                let why = failure.rejection();
                return Err(refuse(&mut entry, &mut writer, why, &failure, &target).await);
            }
        };
        // The relay's first pipes (a spliced session), before the promise.
        if splice.is_some() && backend_tcp.is_some() {
            if let Err(e) = crate::splice::reserve() {
                let what = backend::exhausted(&e).unwrap_or("pipes");
                let e = format!("the relay's pipes: {e}");
                return Err(short(&mut entry, &mut writer, tickets, what, &e).await);
            }
        }
        if let Err(e) = tickets.take(&mut entry) {
            let _ = flush(&mut entry, &mut writer).await;
            writer.close().await;
            sessions.count_login(Login::Refused);
            return Err(format!("authenticated, but: {} ({target})", e.reason()));
        }
        entry.accept();
        flush(&mut entry, &mut writer)
            .await
            .map_err(|e| format!("viewer: {e}"))?;
        sessions.count_login(Login::Ok);
        let layers = entry.layers();
        let transport = Layers {
            tls: layers.tls,
            websocket: layers.websocket,
        };
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
        let (viewer_r, viewer_w, early, ws_handle) = match handover.websocket {
            Some(conn) => {
                let (wr, ww) = ws::split(conn, reader.0, writer.0, &leftover, WS_INPUT_BUFFER);
                let early = handover.early_rfb.to_vec();
                let handle = ww.handle();
                if let Some(k) = settings.limits.ping {
                    handle.keepalive(k, clock.now());
                }
                (ViewerRead::Ws(wr), ViewerWrite::Ws(ww), early, Some(handle))
            }
            None => (
                ViewerRead::Plain(reader),
                ViewerWrite::Plain(writer),
                leftover,
                None,
            ),
        };
        // In the registry from here on, its bytes metered.
        let meter = Meter::new(*clock);
        let info = Info {
            backend_host: host.to_string(),
            backend_port: bport,
            viewer: peer,
            door: match ticket.entry {
                ticket::Entry::Port(p) => Door::Port(p),
                ticket::Entry::Token(_) => Door::Single,
            },
            transport,
            started: unix_now(),
        };
        let reg = sessions.register(ticket.id, info, meter.clone());
        let started = clock.now();
        let mut br = Metered::new(br, meter.clone(), Direction::ToViewer);
        let viewer_r = Metered::new(viewer_r, meter.clone(), Direction::ToBackend);
        let mut viewer_r = Tap::new(viewer_r, rec.as_ref(), Tag::Client);
        let mut viewer_w = Tap::new(viewer_w, rec.as_ref(), Tag::Server);
        if let Some(rec) = &rec {
            rec.chunk(Tag::Client, &early);
        }
        // Bytes already read on either side go first (ClientInit sent early).
        write_early(&mut bw, &early)
            .await
            .map_err(|e| format!("backend: {e}"))?;
        meter.add(Direction::ToBackend, early.len());
        write_early(&mut viewer_w, binput.data())
            .await
            .map_err(|e| format!("viewer: {e}"))?;
        meter.add(Direction::ToViewer, binput.data().len());
        // Handshake buffers are not kept for the session's life.
        drop((binput, early));
        // Both sides plain TCP, nothing recorded (`run_tcp`): splice.
        let outcome = {
            let relayed = async {
                Ok(match (splice, backend_tcp) {
                    (Some(viewer_tcp), Some(backend_tcp)) => {
                        crate::splice::relay(viewer_tcp, backend_tcp, &meter).await
                    }
                    _ => {
                        relay(
                            (&mut viewer_r, &mut viewer_w),
                            (&mut br, &mut bw),
                            settings.relay_buffer,
                        )
                        .await
                    }
                })
            };
            let cut = async {
                Err(watch(settings.limits, clock, &reg, ws_handle.as_ref(), started).await)
            };
            futures_lite::future::or(relayed, cut).await
        };
        let (who, why) = match outcome {
            Ok(end) => (
                end.closed_by.to_string(),
                end.error
                    .map_or_else(|| "closed".to_string(), |e| e.to_string()),
            ),
            Err(ending) => {
                // The relay was dropped: close both legs now (a TLS
                // close_notify to a stuck peer waits no longer than
                // CLOSE_WAIT; the sockets go when this returns).
                futures_lite::future::or(
                    async {
                        viewer_w.close().await;
                        bw.close().await;
                    },
                    async {
                        smol::Timer::after(CLOSE_WAIT).await;
                    },
                )
                .await;
                (ending.who().to_string(), ending.reason().to_string())
            }
        };
        let secs = clock.now().millis_since(started) as f64 / 1000.0;
        Ok(format!(
            "session ended by the {who} ({why}); id {}, backend {target}, {}, {secs:.1}s, \
             {} bytes to the viewer, {} bytes to the backend",
            ticket.id,
            transport.name(),
            meter.to_viewer(),
            meter.to_backend()
        ))
    }
}

/// Where a session runs: the settings, the clock, the session registry
/// and the ticket table's desk.
#[derive(Clone, Copy)]
pub struct Place<'a> {
    /// The settings.
    pub settings: &'a Settings,
    /// The daemon's clock.
    pub clock: &'a Clock,
    /// The session registry (and counters).
    pub sessions: &'a Rc<Registry>,
    /// Where the claimed ticket is taken or given back.
    pub tickets: &'a dyn TicketDesk,
}

/// What a session does with the ticket its viewer claimed
/// ([`Entry::claim_ticket`]): the daemon's table answers.
pub trait TicketDesk {
    /// Everything is in hand: the ticket leaves the table
    /// ([`Entry::take_ticket`]; on `Err` the viewer has been told why).
    fn take(&self, entry: &mut Entry<'_>) -> Result<(), ticket::Error>;
    /// The session cannot be made for want of resources: the ticket is
    /// pending again, for another try ([`Entry::release_ticket`]).
    fn release(&self, entry: &Entry<'_>);
}

impl TicketDesk for crate::daemon::Daemon {
    fn take(&self, entry: &mut Entry<'_>) -> Result<(), ticket::Error> {
        self.with_tickets(|t| entry.take_ticket(t, self.clock.now()))
            .map(drop)
    }

    fn release(&self, entry: &Entry<'_>) {
        self.with_tickets(|t| entry.release_ticket(t));
        // It may be due to expire before anything else.
        self.wake_timer();
    }
}

/// Unix seconds now.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Longest a close frame may wait for the viewer's socket (a relay write
/// to a stuck viewer holds it).
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// How vncap ends a relaying session, if it does: a kill or the restart
/// (through the registry), `--idle-timeout`, `--max-session-secs`, or a
/// WebSocket viewer that stopped answering the core's pings. A WebSocket
/// viewer gets a close frame saying why before this returns.
async fn watch<W: AsyncWrite + Unpin>(
    limits: Limits,
    clock: &Clock,
    reg: &Registered,
    ws: Option<&ws::Handle<W>>,
    started: Instant,
) -> Ending {
    use futures_lite::future::{or, pending};
    let ms = |d: Duration| d.as_millis() as u64;
    let at = |i: Instant| smol::Timer::at(clock.deadline(i));
    let killed = async { reg.ended.recv().await.unwrap_or(Ending::Killed) };
    let idle = async {
        let Some(idle) = limits.idle else {
            return pending().await;
        };
        loop {
            let due = reg.meter.last_activity() + ms(idle);
            if clock.now() >= due {
                return Ending::Idle;
            }
            at(due).await;
        }
    };
    let life = async {
        let Some(life) = limits.max_life else {
            return pending().await;
        };
        at(started + ms(life)).await;
        Ending::MaxLife
    };
    let ping = async {
        let Some(h) = ws else {
            return pending().await;
        };
        let timeout = limits.ping.map_or(0, |k| k.timeout_ms);
        loop {
            let Some(due) = h.poll_timeout() else {
                return pending().await;
            };
            at(due).await;
            // A ping stuck behind a stuck viewer counts as no answer.
            let alive = or(
                async { h.handle_timeout(clock.now()).await.unwrap_or(false) },
                async {
                    smol::Timer::after(Duration::from_millis(timeout)).await;
                    false
                },
            );
            if !alive.await {
                return Ending::NoAnswer;
            }
        }
    };
    let why = or(or(killed, idle), or(life, ping)).await;
    if let Some(h) = ws {
        or(h.close(why.close_code(), why.close_reason()), async {
            smol::Timer::after(CLOSE_WAIT).await;
        })
        .await;
    }
    why
}

/// Tells the viewer why it cannot have its console (the core words it),
/// then closes it; returns what to log (with the detail the viewer is not
/// told).
async fn refuse<W: AsyncWrite + Unpin>(
    entry: &mut Entry<'_>,
    writer: &mut Plain<W>,
    why: Rejection<'_>,
    detail: &dyn std::fmt::Display,
    target: &str,
) -> String {
    let reason = entry.reject(why);
    let _ = flush(entry, writer).await;
    writer.close().await;
    let (reason, detail) = (reason.as_str(), detail.to_string());
    if reason == detail {
        format!("{reason} ({target})")
    } else {
        format!("{reason}: {detail} ({target})")
    }
}

/// vncap ran out of `what` (the error: `detail`) before the promise: the
/// ticket goes back to the table, the viewer is told, and the log says
/// which side failed.
async fn short<W: AsyncWrite + Unpin>(
    entry: &mut Entry<'_>,
    writer: &mut Plain<W>,
    tickets: &dyn TicketDesk,
    what: &'static str,
    detail: &str,
) -> String {
    tickets.release(entry);
    entry.reject(Rejection::OutOfResources(what));
    let _ = flush(entry, writer).await;
    writer.close().await;
    format!("authenticated, but vncap is out of {what} ({detail}); ticket kept")
}

/// Writes bytes a handshake stage read past its end, if any.
async fn write_early<W: ByteWrite>(w: &mut W, early: &[u8]) -> std::io::Result<()> {
    if early.is_empty() {
        return Ok(());
    }
    crate::transport::write_msg(w, early).await
}
