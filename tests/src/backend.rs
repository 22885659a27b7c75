//! A small RFB server for tests: the "VNC server on the Ganeti node" that the
//! proxy logs in to (RFC 6143 §7.1–§7.6: handshake, security None and VNC
//! authentication, ClientInit/ServerInit, the client-to-server messages, and
//! FramebufferUpdate with the Raw encoding).
//!
//! It runs in-process with `std::net` and one thread per connection:
//! [`Backend::spawn`] binds (port 0 by default), and the returned
//! [`BackendHandle`] tells the address, counts connections and sessions, and
//! hands over a [`SessionReport`] for every finished connection — what it
//! negotiated, how authentication went, which messages it received and the
//! SHA-256 of every byte received after ClientInit. Tests wait for reports on
//! a condition variable ([`BackendHandle::wait_reports`]), never on time.
//! Dropping the handle stops it: the accept loop is woken by a self-connect,
//! open sessions are shut down, and every thread is joined.
//!
//! Three modes ([`Mode`]): a deterministic colour-bar test pattern answered to
//! FramebufferUpdateRequest; "bulk", which after ServerInit streams a
//! seeded pseudo-random byte stream ([`crate::peer::BulkStream`]) while it
//! reads until EOF — for testing a relay; and "echo", which after ServerInit
//! sends back every byte it receives — for measuring a relay's round trips.
//!
//! It is not a VNC server for people: one static picture, Raw encoding only,
//! true colour only. It shares no code with `vncap-core` on purpose.
//!
//! Beside it, [`quick_handshake`]: the server's side of a login and
//! nothing else, for the harnesses that run their own sessions.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::peer::{
    test_pattern, vnc_auth_response, BulkStream, PixelFormat, Version, SECURITY_NONE,
    SECURITY_VNC_AUTH,
};

/// Which security the backend asks of its viewers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Security {
    /// Offers only None.
    None,
    /// Offers only VNC authentication with this password (first 8 bytes count).
    VncAuth {
        /// The password.
        password: Vec<u8>,
    },
    /// Offers VNC authentication and None, in that order (3.7/3.8; a 3.3
    /// viewer is given VNC authentication).
    VncAuthOrNone {
        /// The password for VNC authentication.
        password: Vec<u8>,
    },
    /// Offers VNC authentication, then always answers SecurityResult "failed"
    /// (with `reason` on 3.8), whatever the response: "backend refuses login".
    RejectAuth {
        /// The reason string sent on 3.8.
        reason: String,
    },
    /// Offers no security type at all and sends `reason` (3.7/3.8: zero types;
    /// 3.3: security type 0), then closes: "backend refuses the connection".
    RefuseConnection {
        /// The reason string.
        reason: String,
    },
}

/// What the backend does after ServerInit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Answers FramebufferUpdateRequest with Raw rectangles of the test
    /// pattern ([`crate::peer::test_pattern`]).
    TestPattern,
    /// Streams `len` bytes of [`BulkStream`] seeded with `seed` to the viewer
    /// at once, and reads (without parsing) until EOF.
    Bulk {
        /// How many bytes to send.
        len: u64,
        /// The stream's seed.
        seed: u64,
    },
    /// Sends back every byte received after ServerInit, as soon as it is
    /// read, until EOF (not RFB any more: a round-trip peer for benchmarks).
    Echo,
}

/// How to run a [`Backend`].
#[derive(Debug, Clone)]
pub struct BackendConfig {
    /// Where to listen; `127.0.0.1:0` by default (a free port).
    pub listen: SocketAddr,
    /// The version announced (3.8 by default). A viewer may answer a lower one.
    pub version: Version,
    /// Security (None by default).
    pub security: Security,
    /// Framebuffer width (default 640).
    pub width: u16,
    /// Framebuffer height (default 480).
    pub height: u16,
    /// Desktop name in ServerInit (default "vncap test backend").
    pub name: String,
    /// Test pattern (default) or bulk.
    pub mode: Mode,
    /// Read/write timeout on each connection so a stuck test fails instead of
    /// hanging (default 60 s; `None` for none).
    pub io_timeout: Option<Duration>,
}

impl Default for BackendConfig {
    fn default() -> Self {
        BackendConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            version: Version::V3_8,
            security: Security::None,
            width: 640,
            height: 480,
            name: "vncap test backend".to_string(),
            mode: Mode::TestPattern,
            io_timeout: Some(Duration::from_secs(60)),
        }
    }
}

impl BackendConfig {
    /// The default configuration with VNC authentication and `password`.
    pub fn with_password(password: &str) -> BackendConfig {
        BackendConfig {
            security: Security::VncAuth {
                password: password.as_bytes().to_vec(),
            },
            ..BackendConfig::default()
        }
    }
}

/// A message a viewer sent after ClientInit (RFC 6143 §7.5), as parsed in
/// [`Mode::TestPattern`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMessage {
    /// SetPixelFormat (type 0).
    SetPixelFormat(PixelFormat),
    /// SetEncodings (type 2).
    SetEncodings(Vec<i32>),
    /// FramebufferUpdateRequest (type 3).
    FramebufferUpdateRequest {
        /// Incremental flag.
        incremental: bool,
        /// Left.
        x: u16,
        /// Top.
        y: u16,
        /// Width.
        width: u16,
        /// Height.
        height: u16,
    },
    /// KeyEvent (type 4).
    KeyEvent {
        /// Down flag.
        down: bool,
        /// The keysym.
        key: u32,
    },
    /// PointerEvent (type 5).
    PointerEvent {
        /// Button mask.
        buttons: u8,
        /// X.
        x: u16,
        /// Y.
        y: u16,
    },
    /// ClientCutText (type 6).
    ClientCutText(Vec<u8>),
}

/// How a backend session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEnd {
    /// The viewer closed the connection after ClientInit (the normal end).
    Eof,
    /// Authentication failed (wrong password, or [`Security::RejectAuth`]).
    AuthFailed,
    /// The backend refused the connection ([`Security::RefuseConnection`]) or
    /// the viewer chose a security type that was not offered.
    Refused,
    /// The backend was stopped while the session was open.
    Stopped,
    /// Anything else: I/O error, EOF before ClientInit, a malformed message.
    Error(String),
}

/// What one connection did, reported when it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionReport {
    /// The viewer's address.
    pub peer: SocketAddr,
    /// The negotiated version (`None` if the viewer never sent a valid one).
    pub version: Option<Version>,
    /// The security type in use (chosen by the viewer on 3.7/3.8).
    pub security_type: Option<u8>,
    /// Whether the security phase succeeded.
    pub authenticated: bool,
    /// ClientInit's shared flag (`None` if ClientInit never came).
    pub shared: Option<bool>,
    /// Bytes received after ClientInit.
    pub received_len: u64,
    /// SHA-256 of the bytes received after ClientInit.
    pub received_sha256: [u8; 32],
    /// Bulk bytes sent ([`Mode::Bulk`]).
    pub bulk_sent: u64,
    /// Client messages parsed ([`Mode::TestPattern`]; at most 10 000 kept).
    pub messages: Vec<ClientMessage>,
    /// FramebufferUpdate messages sent.
    pub updates_sent: u32,
    /// How it ended.
    pub end: SessionEnd,
}

/// The backend server; see [`Backend::spawn`].
#[derive(Debug)]
pub struct Backend;

impl Backend {
    /// Binds `config.listen` and starts accepting in a background thread.
    pub fn spawn(config: BackendConfig) -> io::Result<BackendHandle> {
        let listener = TcpListener::bind(config.listen)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            connections: AtomicUsize::new(0),
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            seed: RandomState::new().build_hasher().finish(),
        });
        let config = Arc::new(config);
        let accept_shared = Arc::clone(&shared);
        let accept = std::thread::Builder::new()
            .name(format!("testvnc-accept-{addr}"))
            .spawn(move || accept_loop(listener, config, accept_shared))?;
        Ok(BackendHandle {
            addr,
            shared,
            accept: Some(accept),
        })
    }
}

/// A running [`Backend`]; stops (and joins all its threads) on drop.
#[derive(Debug)]
pub struct BackendHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    stop: AtomicBool,
    connections: AtomicUsize,
    state: Mutex<State>,
    changed: Condvar,
    seed: u64,
}

#[derive(Debug, Default)]
struct State {
    sessions: usize,
    received: u64,
    reports: Vec<SessionReport>,
    open: Vec<(usize, TcpStream)>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until `done(state)` holds, and returns the state still locked;
    /// `None` after `timeout`.
    fn wait_until(
        &self,
        timeout: Duration,
        done: impl Fn(&State) -> bool,
    ) -> Option<MutexGuard<'_, State>> {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        while !done(&state) {
            let left = deadline.checked_duration_since(Instant::now())?;
            state = self
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        Some(state)
    }
}

impl BackendHandle {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Sessions that got through the handshake so far (ClientInit received;
    /// counted before ServerInit is sent, so once a viewer has read ServerInit
    /// the count includes it).
    pub fn sessions(&self) -> usize {
        self.shared.lock().sessions
    }

    /// Reports of the connections that have ended so far, in order of ending.
    pub fn reports(&self) -> Vec<SessionReport> {
        self.shared.lock().reports.clone()
    }

    /// Waits until at least `n` connections have ended and returns all
    /// reports, or `None` after `timeout`.
    pub fn wait_reports(&self, n: usize, timeout: Duration) -> Option<Vec<SessionReport>> {
        self.shared
            .wait_until(timeout, |s| s.reports.len() >= n)
            .map(|s| s.reports.clone())
    }

    /// Waits until at least `n` sessions have got through the handshake;
    /// `false` after `timeout`.
    pub fn wait_sessions(&self, n: usize, timeout: Duration) -> bool {
        self.shared
            .wait_until(timeout, |s| s.sessions >= n)
            .is_some()
    }

    /// Bytes received after ClientInit by all sessions so far, counted as
    /// they are read (a session's [`SessionReport`] comes only at its end).
    pub fn received(&self) -> u64 {
        self.shared.lock().received
    }

    /// Waits until [`BackendHandle::received`] is at least `n`; `false`
    /// after `timeout`.
    pub fn wait_received(&self, n: u64, timeout: Duration) -> bool {
        self.shared
            .wait_until(timeout, |s| s.received >= n)
            .is_some()
    }

    /// Stops the backend now (the same as dropping the handle).
    pub fn stop(self) {}
}

impl Drop for BackendHandle {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept(): connect to ourselves (over loopback even
        // when bound to a wildcard address).
        let mut wake = self.addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(if wake.is_ipv4() {
                [127, 0, 0, 1].into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            });
        }
        let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(2));
        for (_, stream) in self.shared.lock().open.iter() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

fn accept_loop(listener: TcpListener, config: Arc<BackendConfig>, shared: Arc<Shared>) {
    let mut workers: Vec<JoinHandle<()>> = Vec::new();
    for (id, conn) in listener.incoming().enumerate() {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = conn else { continue };
        shared.connections.fetch_add(1, Ordering::SeqCst);
        workers.retain(|w| !w.is_finished());
        let Ok(clone) = stream.try_clone() else {
            continue;
        };
        shared.lock().open.push((id, clone));
        let (config, shared) = (Arc::clone(&config), Arc::clone(&shared));
        let worker = std::thread::Builder::new()
            .name(format!("testvnc-session-{id}"))
            .spawn(move || {
                let report = run_session(id, stream, &config, &shared);
                let mut state = shared.lock();
                state.open.retain(|(i, _)| *i != id);
                state.reports.push(report);
                shared.changed.notify_all();
            });
        if let Ok(worker) = worker {
            workers.push(worker);
        }
    }
    // Sessions opened between the drop's shutdown pass and the accept loop
    // noticing `stop` are shut down here.
    for (_, stream) in shared.lock().open.iter() {
        let _ = stream.shutdown(Shutdown::Both);
    }
    for worker in workers {
        let _ = worker.join();
    }
}

/// Counts and hashes everything read through it once `on` is set, and adds
/// the count to the backend's running total ([`BackendHandle::received`]).
struct HashingReader<'a> {
    inner: TcpStream,
    on: bool,
    len: u64,
    hasher: Sha256,
    shared: &'a Shared,
}

impl Read for HashingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if self.on && n > 0 {
            self.len += n as u64;
            self.hasher.update(&buf[..n]);
            self.shared.lock().received += n as u64;
            self.shared.changed.notify_all();
        }
        Ok(n)
    }
}

/// The session's outcome while it runs: `Err` carries the end.
type Step<T> = Result<T, SessionEnd>;

fn io_end(e: io::Error, shared: &Shared) -> SessionEnd {
    if shared.stop.load(Ordering::SeqCst) {
        SessionEnd::Stopped
    } else {
        SessionEnd::Error(e.to_string())
    }
}

fn run_session(
    id: usize,
    stream: TcpStream,
    config: &BackendConfig,
    shared: &Shared,
) -> SessionReport {
    let peer = stream
        .peer_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let mut report = SessionReport {
        peer,
        version: None,
        security_type: None,
        authenticated: false,
        shared: None,
        received_len: 0,
        received_sha256: [0; 32],
        bulk_sent: 0,
        messages: Vec::new(),
        updates_sent: 0,
        end: SessionEnd::Eof,
    };
    let _ = stream.set_read_timeout(config.io_timeout);
    let _ = stream.set_write_timeout(config.io_timeout);
    let _ = stream.set_nodelay(true);
    let mut writer = match stream.try_clone() {
        Ok(w) => w,
        Err(e) => {
            report.end = SessionEnd::Error(e.to_string());
            return report;
        }
    };
    let mut reader = HashingReader {
        inner: stream,
        on: false,
        len: 0,
        hasher: Sha256::new(),
        shared,
    };
    let result = session(id, &mut reader, &mut writer, config, shared, &mut report);
    report.received_len = reader.len;
    report.received_sha256 = reader.hasher.finalize().into();
    report.end = match result {
        Ok(()) => SessionEnd::Eof,
        Err(end) => end,
    };
    report
}

fn session(
    id: usize,
    reader: &mut HashingReader,
    writer: &mut TcpStream,
    config: &BackendConfig,
    shared: &Shared,
    report: &mut SessionReport,
) -> Step<()> {
    let io = |e: io::Error| io_end(e, shared);
    // ProtocolVersion (§7.1.1).
    writer.write_all(config.version.message()).map_err(io)?;
    let mut theirs = [0u8; 12];
    reader.read_exact(&mut theirs).map_err(io)?;
    let theirs = Version::parse(&theirs).ok_or_else(|| {
        SessionEnd::Error(format!(
            "bad ProtocolVersion {:?}",
            String::from_utf8_lossy(&theirs)
        ))
    })?;
    let version = theirs.min(config.version);
    report.version = Some(version);

    // Security (§7.1.2, §7.1.3, §7.2).
    let chosen = offer_security(reader, writer, config, version, shared)?;
    report.security_type = Some(chosen);
    if chosen == SECURITY_VNC_AUTH {
        vnc_auth(id, reader, writer, config, version, shared)?;
    } else if version == Version::V3_8 {
        writer.write_all(&0u32.to_be_bytes()).map_err(io)?;
    }
    report.authenticated = true;

    // ClientInit / ServerInit (§7.3).
    let mut flag = [0u8; 1];
    reader.read_exact(&mut flag).map_err(io)?;
    report.shared = Some(flag[0] != 0);
    reader.on = true;
    // Counted before ServerInit goes out, so a viewer holding ServerInit can
    // rely on `sessions()`.
    {
        shared.lock().sessions += 1;
        shared.changed.notify_all();
    }
    let mut init = Vec::with_capacity(24 + config.name.len());
    init.extend_from_slice(&config.width.to_be_bytes());
    init.extend_from_slice(&config.height.to_be_bytes());
    init.extend_from_slice(&PixelFormat::BGRX32.to_bytes());
    init.extend_from_slice(&(config.name.len() as u32).to_be_bytes());
    init.extend_from_slice(config.name.as_bytes());
    writer.write_all(&init).map_err(io)?;

    match config.mode {
        Mode::TestPattern => serve_pattern(reader, writer, config, shared, report),
        Mode::Bulk { len, seed } => serve_bulk(reader, writer, len, seed, shared, report),
        Mode::Echo => serve_echo(reader, writer, shared),
    }
}

fn write_reason(writer: &mut TcpStream, reason: &str) -> io::Result<()> {
    let mut msg = (reason.len() as u32).to_be_bytes().to_vec();
    msg.extend_from_slice(reason.as_bytes());
    writer.write_all(&msg)
}

/// Offers the configured security types and returns the one in use.
fn offer_security(
    reader: &mut HashingReader,
    writer: &mut TcpStream,
    config: &BackendConfig,
    version: Version,
    shared: &Shared,
) -> Step<u8> {
    let io = |e: io::Error| io_end(e, shared);
    let offered: &[u8] = match &config.security {
        Security::None => &[SECURITY_NONE],
        Security::VncAuth { .. } | Security::RejectAuth { .. } => &[SECURITY_VNC_AUTH],
        Security::VncAuthOrNone { .. } => &[SECURITY_VNC_AUTH, SECURITY_NONE],
        Security::RefuseConnection { reason } => {
            if version == Version::V3_3 {
                writer.write_all(&0u32.to_be_bytes()).map_err(io)?;
            } else {
                writer.write_all(&[0]).map_err(io)?;
            }
            write_reason(writer, reason).map_err(io)?;
            return Err(SessionEnd::Refused);
        }
    };
    if version == Version::V3_3 {
        // The server decides (§7.1.2, version 3.3 paragraph).
        let chosen = offered[0];
        writer
            .write_all(&u32::from(chosen).to_be_bytes())
            .map_err(io)?;
        return Ok(chosen);
    }
    let mut msg = vec![offered.len() as u8];
    msg.extend_from_slice(offered);
    writer.write_all(&msg).map_err(io)?;
    let mut chosen = [0u8; 1];
    reader.read_exact(&mut chosen).map_err(io)?;
    if !offered.contains(&chosen[0]) {
        if version == Version::V3_8 {
            writer.write_all(&1u32.to_be_bytes()).map_err(io)?;
            write_reason(writer, "security type not offered").map_err(io)?;
        }
        return Err(SessionEnd::Refused);
    }
    Ok(chosen[0])
}

fn vnc_auth(
    id: usize,
    reader: &mut HashingReader,
    writer: &mut TcpStream,
    config: &BackendConfig,
    version: Version,
    shared: &Shared,
) -> Step<()> {
    let io = |e: io::Error| io_end(e, shared);
    let mut challenge = [0u8; 16];
    BulkStream::new(shared.seed ^ (id as u64)).fill(&mut challenge);
    writer.write_all(&challenge).map_err(io)?;
    let mut response = [0u8; 16];
    reader.read_exact(&mut response).map_err(io)?;
    let (ok, reason) = match &config.security {
        Security::VncAuth { password } | Security::VncAuthOrNone { password } => (
            vnc_auth_response(password, &challenge) == response,
            "Authentication failed",
        ),
        Security::RejectAuth { reason } => (false, reason.as_str()),
        Security::None | Security::RefuseConnection { .. } => (false, "no password"),
    };
    if ok {
        writer.write_all(&0u32.to_be_bytes()).map_err(io)?;
        return Ok(());
    }
    writer.write_all(&1u32.to_be_bytes()).map_err(io)?;
    if version == Version::V3_8 {
        write_reason(writer, reason).map_err(io)?;
    }
    Err(SessionEnd::AuthFailed)
}

/// Reads exactly `buf.len()` bytes; a clean EOF before the first byte is
/// `Ok(false)`.
fn read_message_start(reader: &mut HashingReader, buf: &mut [u8]) -> io::Result<bool> {
    match reader.read(buf)? {
        0 => Ok(false),
        n => {
            reader.read_exact(&mut buf[n..])?;
            Ok(true)
        }
    }
}

const MAX_MESSAGES: usize = 10_000;
const MAX_CUT_TEXT: u32 = 1 << 20;

fn serve_pattern(
    reader: &mut HashingReader,
    writer: &mut TcpStream,
    config: &BackendConfig,
    shared: &Shared,
    report: &mut SessionReport,
) -> Step<()> {
    let io = |e: io::Error| io_end(e, shared);
    let mut format = PixelFormat::BGRX32;
    let mut sent_any = false;
    loop {
        let mut kind = [0u8; 1];
        if !read_message_start(reader, &mut kind).map_err(io)? {
            return Ok(());
        }
        let msg = match kind[0] {
            0 => {
                let mut b = [0u8; 19];
                reader.read_exact(&mut b).map_err(io)?;
                let mut pf = [0u8; 16];
                pf.copy_from_slice(&b[3..19]);
                let pf = PixelFormat::from_bytes(&pf);
                if !pf.true_colour || ![8, 16, 32].contains(&pf.bits_per_pixel) {
                    return Err(SessionEnd::Error(format!(
                        "unsupported pixel format {pf:?}"
                    )));
                }
                format = pf;
                ClientMessage::SetPixelFormat(pf)
            }
            2 => {
                let mut b = [0u8; 3];
                reader.read_exact(&mut b).map_err(io)?;
                let n = usize::from(u16::from_be_bytes([b[1], b[2]]));
                let mut list = vec![0u8; n * 4];
                reader.read_exact(&mut list).map_err(io)?;
                ClientMessage::SetEncodings(
                    list.chunks_exact(4)
                        .map(|c| i32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                        .collect(),
                )
            }
            3 => {
                let mut b = [0u8; 9];
                reader.read_exact(&mut b).map_err(io)?;
                let u = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
                let (incremental, x, y, w, h) = (b[0] != 0, u(1), u(3), u(5), u(7));
                if !incremental || !sent_any {
                    send_pattern(writer, config, &format, (x, y, w, h)).map_err(io)?;
                    sent_any = true;
                    report.updates_sent += 1;
                }
                ClientMessage::FramebufferUpdateRequest {
                    incremental,
                    x,
                    y,
                    width: w,
                    height: h,
                }
            }
            4 => {
                let mut b = [0u8; 7];
                reader.read_exact(&mut b).map_err(io)?;
                ClientMessage::KeyEvent {
                    down: b[0] != 0,
                    key: u32::from_be_bytes([b[3], b[4], b[5], b[6]]),
                }
            }
            5 => {
                let mut b = [0u8; 5];
                reader.read_exact(&mut b).map_err(io)?;
                ClientMessage::PointerEvent {
                    buttons: b[0],
                    x: u16::from_be_bytes([b[1], b[2]]),
                    y: u16::from_be_bytes([b[3], b[4]]),
                }
            }
            6 => {
                let mut b = [0u8; 7];
                reader.read_exact(&mut b).map_err(io)?;
                let len = u32::from_be_bytes([b[3], b[4], b[5], b[6]]);
                if len > MAX_CUT_TEXT {
                    return Err(SessionEnd::Error(format!("ClientCutText of {len} bytes")));
                }
                let mut text = vec![0u8; len as usize];
                reader.read_exact(&mut text).map_err(io)?;
                ClientMessage::ClientCutText(text)
            }
            other => {
                return Err(SessionEnd::Error(format!(
                    "unknown client message type {other}"
                )))
            }
        };
        if report.messages.len() < MAX_MESSAGES {
            report.messages.push(msg);
        }
    }
}

/// Sends one FramebufferUpdate with the requested rectangle (clipped to the
/// framebuffer) of the test pattern, Raw-encoded; no rectangle if the
/// clipped area is empty.
fn send_pattern(
    writer: &mut TcpStream,
    config: &BackendConfig,
    format: &PixelFormat,
    (x, y, w, h): (u16, u16, u16, u16),
) -> io::Result<()> {
    let x = x.min(config.width);
    let y = y.min(config.height);
    let w = w.min(config.width - x);
    let h = h.min(config.height - y);
    let empty = w == 0 || h == 0;
    let mut msg = vec![0u8, 0];
    msg.extend_from_slice(&u16::from(!empty).to_be_bytes());
    if !empty {
        for v in [x, y, w, h] {
            msg.extend_from_slice(&v.to_be_bytes());
        }
        msg.extend_from_slice(&0i32.to_be_bytes());
        msg.extend_from_slice(&test_pattern(
            format,
            config.width,
            config.height,
            (x, y, w, h),
        ));
    }
    writer.write_all(&msg)
}

fn serve_echo(reader: &mut HashingReader, writer: &mut TcpStream, shared: &Shared) -> Step<()> {
    let io = |e: io::Error| io_end(e, shared);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => writer.write_all(&buf[..n]).map_err(io)?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io(e)),
        }
    }
}

fn serve_bulk(
    reader: &mut HashingReader,
    writer: &mut TcpStream,
    len: u64,
    seed: u64,
    shared: &Shared,
    report: &mut SessionReport,
) -> Step<()> {
    let mut out = writer.try_clone().map_err(|e| io_end(e, shared))?;
    let sender = std::thread::Builder::new()
        .name("testvnc-bulk-send".to_string())
        .spawn(move || -> (u64, io::Result<()>) {
            let mut stream = BulkStream::new(seed);
            let mut buf = vec![0u8; 64 * 1024];
            let mut sent = 0u64;
            while sent < len {
                let n = (len - sent).min(buf.len() as u64) as usize;
                stream.fill(&mut buf[..n]);
                if let Err(e) = out.write_all(&buf[..n]) {
                    return (sent, Err(e));
                }
                sent += n as u64;
            }
            (sent, Ok(()))
        })
        .map_err(|e| io_end(e, shared))?;
    let mut buf = vec![0u8; 64 * 1024];
    let read_result = loop {
        match reader.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
    };
    if read_result.is_err() {
        // Unblock the sender if it is stuck writing to a viewer that went away.
        let _ = writer.shutdown(Shutdown::Both);
    }
    let (sent, send_result) = sender
        .join()
        .unwrap_or((0, Err(io::Error::other("bulk sender panicked"))));
    report.bulk_sent = sent;
    read_result.map_err(|e| io_end(e, shared))?;
    // A viewer that closes before reading everything is the test's business:
    // it is reported through `bulk_sent`, not as an error.
    let _ = send_result;
    Ok(())
}

/// The server's side of a handshake for harnesses that must not be the
/// bottleneck (`vncap-bench`, `vncap-soak`): RFB 3.8, security None, a
/// 64×48 ServerInit named "bench", every read bounded by `patience`; the
/// read timeout is cleared after it. What the viewer sends is read, not
/// checked.
pub fn quick_handshake(s: &mut TcpStream, patience: Duration) -> io::Result<()> {
    s.set_read_timeout(Some(patience))?;
    s.set_nodelay(true)?;
    s.write_all(b"RFB 003.008\n")?;
    let mut version = [0u8; 12];
    s.read_exact(&mut version)?;
    s.write_all(&[1, 1])?; // one security type: None
    let mut chosen = [0u8; 1];
    s.read_exact(&mut chosen)?;
    s.write_all(&0u32.to_be_bytes())?; // SecurityResult OK
    let mut shared = [0u8; 1];
    s.read_exact(&mut shared)?;
    let name = b"bench";
    let mut init = vec![0, 64, 0, 48]; // 64×48
    init.extend_from_slice(&[32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0]);
    init.extend_from_slice(&(name.len() as u32).to_be_bytes());
    init.extend_from_slice(name);
    s.write_all(&init)?;
    s.set_read_timeout(None)
}
