//! Embedding `vncap-core` without the daemon: a one-shot VNC authentication
//! proxy in plain blocking `std` (no async runtime), in the style of a C
//! program or an RTOS task. It accepts one native viewer and runs it through
//! the core's entry machine (the ticket password checked with a challenge
//! from the OS's RNG), logs in to the backend with `rfb::client` (with a
//! backend password when given), answers the viewer's SecurityResult, and
//! relays with two threads. Every deadline is a machine's: the driver turns
//! `poll_timeout` into a socket read timeout. Every protocol decision is the
//! core's; this file only moves bytes, in the order `vncap_core::machine`
//! describes (all output drained before each read).
//!
//! ```sh
//! cargo run -p vncap-tests --bin testvnc -- --listen 127.0.0.1:5901 --none &
//! cargo run -p vncap-examples --example blocking_proxy -- 127.0.0.1:5999 127.0.0.1:5901 secret
//! vncviewer 127.0.0.1::5999   # password: secret
//! ```

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant as StdInstant};
use vncap_core::control::{self, Console, Control, Request};
use vncap_core::entry::{self, Door, Entry, Event, Rejection};
use vncap_core::rfb::client;
use vncap_core::ticket::{self, Slot, Table};
use vncap_core::{policy, ws, Instant, Machine};

/// From the accept to the viewer's authentication; and for the backend.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// The one clock: milliseconds since start.
struct Clock(StdInstant);

impl Clock {
    fn now(&self) -> Instant {
        Instant::from_millis(self.0.elapsed().as_millis() as u64)
    }
}

/// Writes everything `m` has queued.
fn flush<M: Machine>(m: &mut M, stream: &mut TcpStream) -> io::Result<()> {
    let mut out = [0u8; 1024];
    loop {
        let n = m.poll_output(&mut out);
        if n == 0 {
            return Ok(());
        }
        stream.write_all(&out[..n])?;
    }
}

/// Drives `m` over `stream` until its first event; `pending` keeps bytes the
/// machine did not consume (they belong to the next stage). The machine's
/// deadline becomes the read timeout; `limit` bounds a machine without one.
fn drive<M: Machine>(
    m: &mut M,
    stream: &mut TcpStream,
    pending: &mut Vec<u8>,
    clock: &Clock,
    limit: Instant,
) -> Result<M::Event, String> {
    let mut buf = [0u8; 4096];
    loop {
        flush(m, stream).map_err(|e| e.to_string())?;
        if let Some(event) = m.poll_event() {
            return Ok(event);
        }
        match m.handle_input(pending) {
            Ok(0) => {
                flush(m, stream).map_err(|e| e.to_string())?;
                if let Some(event) = m.poll_event() {
                    return Ok(event);
                }
            }
            Ok(n) => {
                pending.drain(..n);
                continue;
            }
            Err(e) => {
                // The machine queued its answer (an RFB reason): send it all.
                let _ = flush(m, stream);
                return Err(e.to_string());
            }
        }
        let deadline = m.poll_timeout().unwrap_or(limit).min(limit);
        let wait = deadline
            .millis()
            .saturating_sub(clock.now().millis())
            .max(1);
        stream
            .set_read_timeout(Some(Duration::from_millis(wait)))
            .map_err(|e| e.to_string())?;
        match stream.read(&mut buf) {
            Ok(0) => {
                let used = m.handle_eof(pending).map_err(|e| e.to_string())?;
                pending.drain(..used);
                flush(m, stream).map_err(|e| e.to_string())?;
                return m.poll_event().ok_or_else(|| "peer closed".to_string());
            }
            Ok(n) => pending.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if clock.now() >= limit && m.poll_timeout().is_none() {
                    return Err("timed out".into());
                }
                m.handle_timeout(clock.now());
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// The console as a control request would ask for it (GWM's dialect,
/// native viewers only).
fn console_request(backend: SocketAddr, password: &str) -> Result<Console, String> {
    let line = format!(
        "{{\"daddr\": \"{}\", \"dport\": {}, \"password\": \"{password}\", \"ws\": false}}\n",
        backend.ip(),
        backend.port()
    );
    let mut c = Control::new(control::Config::default(), vncap_core::Instant::default());
    c.handle_input(line.as_bytes()).map_err(|e| e.to_string())?;
    match c.poll_event() {
        Some(control::Event::Request(Request::Console(c))) => Ok(c),
        _ => Err("the console request did not parse".into()),
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream) {
    let _ = from.set_read_timeout(None);
    let _ = io::copy(&mut from, &mut to);
    let _ = to.shutdown(std::net::Shutdown::Both);
    let _ = from.shutdown(std::net::Shutdown::Both);
}

/// Tells the viewer why it cannot have its console; returns the reason.
fn refuse(m: &mut Entry<'_>, viewer: &mut TcpStream, why: Rejection<'_>) -> String {
    let reason = m.reject(why);
    let _ = flush(m, viewer);
    reason.as_str().to_string()
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (listen, backend, password, backend_password) = match args.as_slice() {
        [l, b, p] => (l, b, p, None),
        [l, b, p, bp] => (l, b, p, Some(bp.as_bytes())),
        _ => {
            return Err(
                "usage: blocking_proxy LISTEN_ADDR BACKEND_ADDR PASSWORD [BACKEND_PASSWORD]".into(),
            )
        }
    };
    let backend: SocketAddr = backend.parse().map_err(|e| format!("{backend}: {e}"))?;
    let clock = Clock(StdInstant::now());
    let listener = TcpListener::bind(listen).map_err(|e| e.to_string())?;
    eprintln!("waiting for one viewer on {listen}");
    let (mut viewer, peer) = listener.accept().map_err(|e| e.to_string())?;
    drop(listener);
    let _ = viewer.set_nodelay(true);

    // The one console, in a table of one: native only, so its door speaks
    // RFB first.
    let port = viewer.local_addr().map_err(|e| e.to_string())?.port();
    let config = ticket::Config {
        first_port: port,
        last_port: port,
        ..ticket::Config::default()
    };
    let mut table = Table::new(config, [Slot::new()]).map_err(|e| e.to_string())?;
    let request = console_request(backend, password)?;
    let mut random = [0u8; ticket::RANDOM_LEN];
    getrandom::fill(&mut random).map_err(|e| e.to_string())?;
    let issued = table
        .issue(clock.now(), &request, &random)
        .map_err(|e| e.to_string())?;
    let config = entry::Config {
        door: Door::Port {
            port,
            handle: issued.handle,
            offers: request.transport,
        },
        peer: peer.ip(),
        tls: false,
        handshake_timeout_ms: HANDSHAKE.as_millis() as u64,
        websocket: ws::handshake::Config::default(),
        frames: ws::frame::Config { max_message: 0 },
        policy: policy::Config::default(),
        transcript: false,
    };
    let mut challenge = [0u8; 16];
    getrandom::fill(&mut challenge).map_err(|e| e.to_string())?;
    let mut m = Entry::new(config, clock.now(), challenge);
    let limit = clock.now() + HANDSHAKE.as_millis() as u64;
    let mut from_viewer = Vec::new();
    loop {
        match drive(&mut m, &mut viewer, &mut from_viewer, &clock, limit) {
            Ok(Event::Admit) => m.admit_from(&table, clock.now()),
            Ok(Event::Authenticated(_)) => {
                // One-time: the ticket leaves the table.
                if let Err(e) = m.take_ticket(&mut table, clock.now()) {
                    let _ = flush(&mut m, &mut viewer);
                    return Err(format!("{peer}: {e}"));
                }
                break;
            }
            Ok(_) => return Err(format!("{peer}: not a native viewer")),
            Err(e) => return Err(format!("{peer}: {e}")),
        }
    }

    // The password was right; reach the backend before answering the viewer.
    let mut login = client::Client::new(backend_password);
    let mut from_backend = Vec::new();
    let limit = clock.now() + HANDSHAKE.as_millis() as u64;
    let mut backend = match TcpStream::connect_timeout(&backend, HANDSHAKE) {
        Ok(b) => b,
        Err(e) => {
            let reason = refuse(&mut m, &mut viewer, Rejection::Unreachable(&e.to_string()));
            return Err(reason);
        }
    };
    let logged_in = drive(&mut login, &mut backend, &mut from_backend, &clock, limit);
    // Made without TLS, the client never hands VeNCrypt's TLS over.
    if let Err(detail) = logged_in.and_then(|ev| match ev {
        client::Event::LoggedIn => Ok(()),
        client::Event::StartTls => Err("VeNCrypt not configured".into()),
    }) {
        let why = match login.server_reason() {
            Some(r) if !r.is_empty() => format!("{detail}: {r}"),
            _ => detail,
        };
        return Err(refuse(&mut m, &mut viewer, Rejection::LoginBroken(&why)));
    }
    m.accept();
    flush(&mut m, &mut viewer).map_err(|e| e.to_string())?;
    backend.write_all(&from_viewer).map_err(|e| e.to_string())?;
    viewer.write_all(&from_backend).map_err(|e| e.to_string())?;
    let to = backend.peer_addr().map_err(|e| e.to_string())?;
    eprintln!("{peer}: authenticated, relaying to {to}");

    let (v2, b2) = (
        viewer.try_clone().map_err(|e| e.to_string())?,
        backend.try_clone().map_err(|e| e.to_string())?,
    );
    let up = std::thread::spawn(move || pump(v2, b2));
    pump(backend, viewer);
    let _ = up.join();
    Ok(())
}
