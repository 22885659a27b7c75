//! Entry points: opening a ticket's port ([`issue`]), the listeners, and the
//! driver of the core's entry machine (`vncap_core::entry`) for one viewer
//! connection up to its authentication.
//!
//! Two doors lead to a console. A ticket's own port ([`accept_loop`], one
//! listener per ticket, cancelled once the ticket is taken or gone, which
//! closes the socket) and the single-port listener ([`single_port_loop`],
//! `--single-port`). Every decision about what arrives — sniffing, the
//! silence, who may come in, how a refusal is answered, what a wrong
//! password costs, every deadline — is the entry machine's; this file owns
//! the sockets, runs TLS when the machine asks for it, lets the ticket table
//! answer the admit step, and logs each outcome once, with the peer
//! address. What follows authentication is `session.rs`; a request for a
//! static file on the single port (`--web-root`) is `web.rs`'s.
//!
//! A connection from `--trusted-proxy` gets the machine that may read a
//! PROXY header (and, on the single port, `X-Forwarded-For`/`Forwarded`):
//! it is charged to the whole handshake budget at the accept and to the
//! client's source once the machine says who the client is
//! ([`Event::Client`]); from then on the client is the address every log
//! line names (the balancer once: `via PROXY v2 from ...`), the session's,
//! and the one `client.ip` pins are checked against.

use crate::budget::Pass;
use crate::buffer::InBuf;
use crate::daemon::{Daemon, Slot};
use crate::drive::{drive, DriveError};
use crate::session::Authenticated;
use crate::sessions::Login;
use crate::transport::{ByteWrite, Plain};
use futures_lite::io::{AsyncRead, AsyncWrite};
use smol::net::{TcpListener, TcpStream};
use std::net::SocketAddr;
use std::rc::Rc;
use vncap_core::control::Console;
use vncap_core::entry::{self, Door, Entry, Event, Rejection, Via};
use vncap_core::ticket::{self, Attempt};
use vncap_core::ws::handshake;
use vncap_core::{policy, ws, Machine};

/// A console granted: where its viewer goes, and the reply.
pub struct Issued {
    /// The port to tell the viewer (the pool port, or the single port).
    pub port: u16,
    /// The ticket's lifetime in whole seconds.
    pub expires_in: u64,
    reply: Reply,
}

enum Reply {
    Table(ticket::Issued),
    Signed(Box<ticket::signed::Issued>),
}

impl Issued {
    /// The control reply for it.
    pub fn granted(&self) -> vncap_core::control::Granted<'_> {
        match &self.reply {
            Reply::Table(i) => i.granted(),
            Reply::Signed(i) => i.granted(),
        }
    }
}

impl From<ticket::Issued> for Issued {
    fn from(i: ticket::Issued) -> Self {
        Issued {
            port: i.port,
            expires_in: i.expires_in,
            reply: Reply::Table(i),
        }
    }
}

/// Issues a ticket for `req` and opens its entry port (a listener whose
/// viewers this file serves); the reply may go out once this returns `Ok`.
/// With `--ticket-key`, a console for the single port is a signed ticket
/// (nothing is kept here: any instance with the key admits it).
pub async fn issue(d: &Rc<Daemon>, req: &Console) -> Result<Issued, String> {
    // A backend written as an address is checked now; a name, when it is
    // resolved.
    if let Err(why) = d.settings.backend_access.check_literal(&req.host, req.port) {
        log::warn!(
            "console for {}:{} refused: {why}",
            req.host.as_str(),
            req.port
        );
        return Err(format!("backend not allowed: {why}"));
    }
    let mut random = [0u8; ticket::RANDOM_LEN];
    getrandom::fill(&mut random).map_err(|e| format!("no randomness: {e}"))?;
    let signed = d.with_signed(|t, _, keys| {
        t.signs(req)
            .then(|| t.issue_signed(d.clock.wall(), req, &random, &keys.current))
    });
    if let Some(Some(signed)) = signed {
        let i = signed.map_err(|e| e.reason().to_string())?;
        return Ok(Issued {
            port: i.port,
            expires_in: i.expires_in,
            reply: Reply::Signed(Box::new(i)),
        });
    }
    // A pool port may be taken by another program: try a few.
    for _ in 0..8 {
        let issued = d
            .with_tickets(|t| t.issue(d.clock.now(), req, &random))
            .map_err(|e| e.reason().to_string())?;
        if !issued.own_port {
            d.wake_timer();
            return Ok(issued.into());
        }
        match TcpListener::bind(SocketAddr::new(d.settings.listen, issued.port)).await {
            Ok(listener) => {
                // What the stored ticket allows (policy may narrow the request's).
                let offers = d
                    .with_tickets(|t| t.get(issued.handle).map(|t| t.transport))
                    .unwrap_or(req.transport);
                let door = Door::Port {
                    port: issued.port,
                    handle: issued.handle,
                    offers,
                };
                let task = d.ex.spawn(accept_loop(d.clone(), door, listener));
                d.add_listener(issued.port, task);
                d.wake_timer();
                return Ok(issued.into());
            }
            Err(e) => {
                log::warn!("entry port {}: {e}; trying another", issued.port);
                d.with_tickets(|t| t.withdraw(issued.handle)).ok();
            }
        }
    }
    Err("no entry port could be opened".into())
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
async fn accept_loop(d: Rc<Daemon>, door: Door, listener: TcpListener) {
    let port = match door {
        Door::Port { port, .. } | Door::Single { port } => port,
    };
    let entry = EntryListener {
        listener: Some(listener),
        port,
    };
    if let Some(listener) = entry.listener.as_ref() {
        serve_door(&d, listener, door).await;
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
        // Before authentication a connection holds a handshake pass: the
        // budget of all of them, and of its source's share (a trusted
        // proxy's connection: once the client is known).
        let trusted = d.settings.trusted_proxy.contains(peer.ip());
        let pass = if trusted {
            d.handshakes.take_unsourced()
        } else {
            d.handshakes.take(peer.ip())
        };
        let pass = match pass {
            Ok(pass) => pass,
            Err(full) => {
                let what = format!("{} on {door}: refused: {full}", peer_text(peer));
                d.handshake_refusals.note(&d.ex, what);
                continue;
            }
        };
        let d2 = d.clone();
        let who = Who {
            peer: peer_text(peer),
            client: peer_text(peer),
            pass: Some(pass),
            trusted,
        };
        d.ex.spawn(viewer(d2, door, stream, who)).detach();
    }
}

/// An address as people write it (`127.0.0.1:5000`, not the IPv4-mapped
/// IPv6 form a dual-stack listener reports).
fn peer_text(peer: SocketAddr) -> SocketAddr {
    SocketAddr::new(peer.ip().to_canonical(), peer.port())
}

/// The other end of one viewer connection.
struct Who {
    /// The socket's peer.
    peer: SocketAddr,
    /// The viewer: the peer, or the client a trusted proxy named (its port
    /// 0 when the proxy named none).
    client: SocketAddr,
    /// Its place in the handshake budget, given back once it authenticated
    /// (or ended).
    pass: Option<Pass>,
    /// The peer is in `--trusted-proxy`.
    trusted: bool,
}

impl Who {
    /// After [`Event::Client`]: the machine's client is the viewer; it is
    /// named once with the balancer, and charged to its source's share.
    fn settle(&mut self, m: &Entry<'_>, door: &str) -> Result<(), String> {
        let c = m.client();
        if c.via != Via::Peer {
            self.client = SocketAddr::new(c.ip, c.port.unwrap_or(0));
            log::info!(
                "{} on {door}: via {} from {}",
                self.client,
                c.via,
                self.peer
            );
        }
        match self.pass.as_mut().map(|p| p.charge(c.ip)) {
            Some(Err(full)) => Err(format!("refused: {full}")),
            _ => Ok(()),
        }
    }
}

/// One viewer connection, from accept to close.
async fn viewer(d: Rc<Daemon>, door: Door, stream: TcpStream, mut who: Who) {
    let peer = who.peer;
    let _ = stream.set_nodelay(true);
    crate::keepalive::set(&stream, d.settings.limits.tcp_keepalive);
    let origins: Vec<&str> = d
        .settings
        .allowed_origins
        .iter()
        .map(String::as_str)
        .collect();
    let config = entry::Config {
        door,
        peer: peer.ip(),
        tls: d.settings.tls.is_some(),
        handshake_timeout_ms: d.settings.handshake_timeout.as_millis() as u64,
        websocket: handshake::Config {
            allowed_origins: &origins,
            max_header_bytes: d.settings.max_header_bytes,
        },
        frames: ws::frame::Config {
            max_message: d.settings.max_message_bytes,
        },
        policy: policy::Config {
            domain: &d.settings.policy_domain,
            ports: d.settings.policy_ports,
        },
        transcript: d.settings.record.is_some(),
    };
    let mut challenge = [0u8; 16];
    if let Err(e) = getrandom::fill(&mut challenge) {
        log::error!("{peer} on {door}: no randomness: {e}");
        return;
    }
    let (m, room) = if who.trusted {
        let m = Entry::from_trusted_proxy(config, d.clock.now(), challenge);
        (m, vncap_core::proxy::MAX_INPUT)
    } else {
        (Entry::new(config, d.clock.now(), challenge), 0)
    };
    let m = match d.settings.web_root {
        Some(_) => m.with_web_root(),
        None => m,
    };
    // Room for an HTTP upgrade request, the largest thing before RFB (or
    // a PROXY header).
    let mut input = InBuf::new(d.settings.max_header_bytes.max(room));
    let r = Plain(stream.clone());
    let w = Plain(stream);
    let plain_door = door.to_string();
    match way_in(&d, m, r, w, &mut input, &mut who, &plain_door).await {
        Err(msg) => log::info!("{} on {door}: {msg}", who.client),
        Ok(WayIn::Authenticated(a, slot)) => {
            drop(who.pass.take());
            let _slot = slot;
            a.run_tcp(d.place(), who.client, &plain_door).await
        }
        Ok(WayIn::Served(msg)) => log::debug!("{peer} on {door}: {msg}"),
        Ok(WayIn::StartTls(mut m, r, w)) => {
            drop(w);
            let Some(acceptor) = &d.settings.tls else {
                return;
            };
            let handshake = acceptor.accept(input.data(), r.0);
            let deadline = m.poll_timeout();
            let tls = async { Some(handshake.await) };
            let timer = async {
                match deadline {
                    Some(at) => smol::Timer::at(d.clock.deadline(at)).await,
                    None => futures_lite::future::pending().await,
                };
                None
            };
            let (tr, tw) = match futures_lite::future::or(tls, timer).await {
                Some(Ok(halves)) => halves,
                Some(Err(e)) => return log::info!("{} on {door}: TLS handshake: {e}", who.client),
                None => {
                    m.handle_timeout(d.clock.now());
                    let secs = d.settings.handshake_timeout.as_secs();
                    return log::info!(
                        "{} on {door}: handshake timed out after {secs}s",
                        who.client
                    );
                }
            };
            m.tls_started(d.clock.now());
            let mut input = InBuf::new(d.settings.max_header_bytes);
            let door = format!("{door} (TLS)");
            match way_in(&d, m, Plain(tr), Plain(tw), &mut input, &mut who, &door).await {
                Err(msg) => log::info!("{} on {door}: {msg}", who.client),
                Ok(WayIn::Authenticated(a, slot)) => {
                    drop(who.pass.take());
                    let _slot = slot;
                    a.run(d.place(), who.client, &door).await
                }
                Ok(WayIn::Served(msg)) => log::debug!("{peer} on {door}: {msg}"),
                // The machine never asks twice (a ClientHello inside is refused).
                Ok(WayIn::StartTls(..)) => {}
            }
        }
    }
}

/// Where driving the entry machine over one transport led (a value that
/// is matched at once, so its variants' sizes do not matter).
#[allow(clippy::large_enum_variant)]
enum WayIn<'a, R, W> {
    /// The machine asks for TLS: it and the halves, for the handshake.
    StartTls(Entry<'a>, Plain<R>, Plain<W>),
    /// The viewer authenticated, and holds a session slot.
    Authenticated(Authenticated<'a, R, W>, Slot),
    /// A static file was asked for and sent (`--web-root`); what to log.
    Served(String),
}

/// Drives `m` over `r`/`w` until it wants TLS, the viewer authenticated, or
/// the connection ends (then what to log); `door` names the way in.
async fn way_in<'a, R, W>(
    d: &Rc<Daemon>,
    mut m: Entry<'a>,
    mut r: Plain<R>,
    mut w: Plain<W>,
    input: &mut InBuf,
    who: &mut Who,
    door: &str,
) -> Result<WayIn<'a, R, W>, String>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    // A signed ticket's fingerprint, for the log (never the token).
    let mut signed: Option<u32> = None;
    loop {
        match drive(&mut m, &mut r, &mut w, input, &d.clock).await {
            Ok(Event::StartTls) => return Ok(WayIn::StartTls(m, r, w)),
            Ok(Event::Client) => {
                if let Err(msg) = who.settle(&m, door) {
                    w.close().await;
                    return Err(msg);
                }
            }
            Ok(Event::Admit) => {
                let (now, wall) = (d.clock.now(), d.clock.wall());
                let admitted = d.with_signed(|t, nonces, keys| {
                    if let Some(ticket::Lookup::Token(token)) = m.incoming().lookup {
                        signed = Some(ticket::signed::fingerprint(token));
                    }
                    m.admit_signed_from(t, nonces, keys, (now, wall))
                });
                match admitted {
                    None => d.with_tickets(|t| m.admit_from(t, now)),
                    Some(Ok(())) => {
                        if let Some(fp) = signed {
                            log::debug!("signed ticket {fp:08x} admitted");
                        }
                    }
                    Some(Err(_)) => {}
                }
            }
            Ok(Event::Serve) => {
                // A file sent is logged at debug level, a refusal as any.
                return crate::web::serve(d, &mut m, &mut w)
                    .await
                    .map(WayIn::Served);
            }
            Ok(Event::PolicyServed) => {
                let _ = crate::drive::flush(&mut m, &mut w).await;
                w.close().await;
                return Err("answered a Flash policy request".into());
            }
            Ok(Event::Authenticated(_)) => {
                // Resources before promises: a session slot first, so a
                // full proxy refuses with the ticket kept.
                let Some(slot) = d.connection_slot() else {
                    m.reject(Rejection::Full);
                    let _ = crate::drive::flush(&mut m, &mut w).await;
                    w.close().await;
                    return Err("authenticated, but --max-sessions are in use; ticket kept".into());
                };
                // Claimed, not taken: the session takes it once it holds
                // everything it needs, or gives it back (`session.rs`).
                let claimed = d.with_tickets(|t| m.claim_ticket(t, d.clock.now()));
                let ticket = match claimed {
                    Ok(ticket) => ticket,
                    Err(e) => {
                        d.sessions.count_login(Login::Refused);
                        let _ = crate::drive::flush(&mut m, &mut w).await;
                        w.close().await;
                        return Err(format!("authenticated, but: {}", e.reason()));
                    }
                };
                let a = Authenticated {
                    ticket,
                    entry: m,
                    reader: r,
                    writer: w,
                    input: std::mem::replace(input, InBuf::new(0)),
                };
                return Ok(WayIn::Authenticated(a, slot));
            }
            Err(e) => {
                w.close().await;
                let msg = failure(d, &m, e);
                return Err(match signed {
                    Some(fp) => format!("{msg} (signed ticket {fp:08x})"),
                    None => msg,
                });
            }
        }
    }
}

/// What to log for a connection that ended before a session; a wrong
/// password uses one of its ticket's attempts first (the core's rule).
fn failure(d: &Daemon, m: &Entry<'_>, e: DriveError<entry::Error>) -> String {
    match &e {
        DriveError::Protocol(entry::Error::WrongPassword) => {
            d.sessions.count_login(Login::WrongPassword)
        }
        DriveError::Protocol(entry::Error::Refused(_)) => d.sessions.count_login(Login::Refused),
        _ => {}
    }
    match e {
        DriveError::Protocol(entry::Error::WrongPassword) => {
            match d.with_tickets(|t| m.charge_attempt(t)) {
                Some(Attempt::Retry(n)) => format!("wrong password ({n} attempts left)"),
                Some(Attempt::Blocked) => {
                    "wrong password; this address may not try again (the console stays)".into()
                }
                _ => "wrong password; ticket burnt".into(),
            }
        }
        DriveError::Protocol(entry::Error::TimedOut) => {
            let secs = d.settings.handshake_timeout.as_secs();
            format!("handshake timed out after {secs}s")
        }
        DriveError::Protocol(e) => e.to_string(),
        DriveError::Closed => "closed before authenticating".into(),
        other => format!("before authenticating: {other}"),
    }
}
