//! Embedding `vncap-core` in tokio: the whole proxy — a ticket table, the
//! entry machine for every viewer (native RFB or noVNC over WebSocket), the
//! backend login, and the relay — in one file, with none of the `vncap`
//! daemon's code. Every protocol decision is the core's; this file owns the
//! sockets and the clock and calls the machines in the order their docs give
//! (`vncap_core::entry`, `vncap_core::machine`).
//!
//! It issues one console at start (as a control request would) and serves
//! it on LISTEN until it is used or expires:
//!
//! ```sh
//! cargo run -p vncap-tests --bin testvnc -- --listen 127.0.0.1:5901 --none &
//! cargo run -p vncap-examples --example tokio_proxy -- 127.0.0.1:5999 127.0.0.1:5901 secret
//! vncviewer 127.0.0.1::5999          # or noVNC: ws://127.0.0.1:5999/websockify
//! ```
//!
//! Its test (`cargo test -p vncap-examples --example tokio_proxy`) logs in
//! through it natively and over WebSocket, with the workspace's test peers.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use vncap_core::control::{self, Console, Control, Request, Transport};
use vncap_core::entry::{self, Door, Entry, Event, Rejection};
use vncap_core::rfb::client;
use vncap_core::ticket::{self, Slot, Table};
use vncap_core::ws::frame::Decoded;
use vncap_core::ws::{self, Connection};
use vncap_core::{policy, Instant, Machine};

/// Tickets the table holds.
const TICKETS: usize = 4;
/// From the accept to the viewer's authentication, and for the backend's
/// login.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// The one clock: milliseconds since start, as the core counts time.
#[derive(Clone, Copy)]
struct Clock(tokio::time::Instant);

impl Clock {
    fn now(&self) -> Instant {
        Instant::from_millis(self.0.elapsed().as_millis() as u64)
    }

    fn at(&self, t: Instant) -> tokio::time::Instant {
        self.0 + Duration::from_millis(t.millis())
    }
}

/// What every connection shares: the clock and the ticket table (one task
/// at a time touches it: the runtime is single-threaded).
struct Proxy {
    clock: Clock,
    table: RefCell<Table<[Slot; TICKETS]>>,
    /// Signalled when a ticket leaves the table (its door closes).
    changed: tokio::sync::Notify,
}

/// Parses a control request line, as a control channel would.
fn parse_request(json: &str) -> Result<Console, String> {
    let mut c = Control::new(control::Config::default(), vncap_core::Instant::default());
    let line = format!("{json}\n");
    c.handle_input(line.as_bytes()).map_err(|e| e.to_string())?;
    match c.poll_event() {
        Some(control::Event::Request(Request::Console(c))) => Ok(c),
        _ => Err("not a console request".into()),
    }
}

/// Writes everything `m` has queued.
async fn flush<M: Machine>(m: &mut M, w: &mut TcpStream) -> std::io::Result<()> {
    let mut out = [0u8; 1024];
    loop {
        let n = m.poll_output(&mut out);
        if n == 0 {
            return Ok(());
        }
        w.write_all(&out[..n]).await?;
    }
}

/// Drives `m` until its next event: output first, then buffered input,
/// then a read raced against the machine's own deadline. On `Err` the
/// machine's answer has been written.
async fn drive<M: Machine>(
    m: &mut M,
    s: &mut TcpStream,
    input: &mut Vec<u8>,
    clock: Clock,
) -> Result<M::Event, String> {
    let mut buf = [0u8; 4096];
    loop {
        flush(m, s).await.map_err(|e| e.to_string())?;
        if let Some(ev) = m.poll_event() {
            return Ok(ev);
        }
        match m.handle_input(input) {
            Ok(n) if n > 0 => {
                input.drain(..n);
                continue;
            }
            Ok(_) => {
                flush(m, s).await.map_err(|e| e.to_string())?;
                if let Some(ev) = m.poll_event() {
                    return Ok(ev);
                }
            }
            Err(e) => {
                let _ = flush(m, s).await;
                return Err(e.to_string());
            }
        }
        let deadline = m.poll_timeout().map(|t| clock.at(t));
        let read = s.read(&mut buf);
        let n = match deadline {
            Some(at) => match tokio::time::timeout_at(at, read).await {
                Ok(r) => r,
                Err(_) => {
                    m.handle_timeout(clock.now());
                    continue;
                }
            },
            None => read.await,
        }
        .map_err(|e| e.to_string())?;
        if n == 0 {
            // The peer is done: the machine finishes or says why not.
            let used = m.handle_eof(input).map_err(|e| e.to_string())?;
            input.drain(..used);
            flush(m, s).await.map_err(|e| e.to_string())?;
            return m.poll_event().ok_or_else(|| "peer closed".to_string());
        }
        input.extend_from_slice(&buf[..n]);
    }
}

/// One viewer: the entry machine, the backend, the relay.
async fn viewer(
    p: Rc<Proxy>,
    door: Door,
    mut s: TcpStream,
    peer: SocketAddr,
) -> Result<String, String> {
    s.set_nodelay(true).ok();
    let config = entry::Config {
        door,
        peer: peer.ip(),
        tls: false,
        handshake_timeout_ms: HANDSHAKE.as_millis() as u64,
        websocket: ws::handshake::Config::default(),
        frames: ws::frame::Config {
            max_message: 1 << 20,
        },
        policy: policy::Config::default(),
        transcript: false,
    };
    let mut challenge = [0u8; 16];
    getrandom::fill(&mut challenge).map_err(|e| e.to_string())?;
    let mut m = Entry::new(config, p.clock.now(), challenge);
    let mut input = Vec::new();
    let ticket = loop {
        match drive(&mut m, &mut s, &mut input, p.clock).await {
            Ok(Event::Admit) => m.admit_from(&p.table.borrow(), p.clock.now()),
            Ok(Event::Authenticated(_)) => {
                let taken = m.take_ticket(&mut p.table.borrow_mut(), p.clock.now());
                p.changed.notify_one();
                match taken {
                    Ok(t) => break t,
                    Err(e) => {
                        let _ = flush(&mut m, &mut s).await;
                        return Err(format!("authenticated, but {e}"));
                    }
                }
            }
            Ok(Event::PolicyServed) => return Ok("served the Flash policy".into()),
            // Only with `Entry::with_web_root`, which this example does not use.
            Ok(Event::Serve) => return Err("no static files here".into()),
            Ok(Event::StartTls) => return Err("TLS is not offered here".into()),
            // Only a trusted proxy's connection reports its client; this
            // example trusts none.
            Ok(Event::Client) => {}
            Err(e) => {
                m.charge_attempt(&mut p.table.borrow_mut());
                p.changed.notify_one();
                return Err(e);
            }
        }
    };
    // The backend: connect and log in before answering the viewer.
    let target = (ticket.backend_host.as_str(), ticket.backend_port);
    let mut backend = match tokio::time::timeout(HANDSHAKE, TcpStream::connect(target)).await {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => {
            return Err(refuse(&mut m, &mut s, Rejection::Unreachable(&e.to_string())).await)
        }
        Err(_) => return Err(refuse(&mut m, &mut s, Rejection::Unreachable("timed out")).await),
    };
    backend.set_nodelay(true).ok();
    let mut login = client::Client::new(ticket.backend_password.as_ref().map(|p| p.as_bytes()));
    let mut from_backend = Vec::new();
    let logged_in = tokio::time::timeout(
        HANDSHAKE,
        drive(&mut login, &mut backend, &mut from_backend, p.clock),
    )
    .await;
    match logged_in {
        Ok(Ok(client::Event::LoggedIn)) => {}
        // This proxy offers the backend no TLS (the client was made without
        // it), so VeNCrypt's hand-off never comes.
        Ok(Ok(client::Event::StartTls)) => {
            return Err(refuse(
                &mut m,
                &mut s,
                Rejection::LoginBroken("VeNCrypt not configured"),
            )
            .await)
        }
        Ok(Err(detail)) => {
            let why = match login.server_reason() {
                Some(r) if !r.is_empty() => format!("{detail}: {r}"),
                _ => detail,
            };
            return Err(refuse(&mut m, &mut s, Rejection::LoginBroken(&why)).await);
        }
        Err(_) => return Err(refuse(&mut m, &mut s, Rejection::LoginTimedOut).await),
    }
    m.accept();
    flush(&mut m, &mut s).await.map_err(|e| e.to_string())?;
    let handover = m.into_relay();
    match handover.websocket {
        None => {
            // Native: what the viewer sent early is RFB for the backend.
            backend.write_all(&input).await.map_err(|e| e.to_string())?;
            s.write_all(&from_backend)
                .await
                .map_err(|e| e.to_string())?;
            let (up, down) = tokio::io::copy_bidirectional(&mut s, &mut backend)
                .await
                .map_err(|e| e.to_string())?;
            Ok(format!("native session ended ({up} bytes up, {down} down)"))
        }
        Some(conn) => {
            backend
                .write_all(&handover.early_rfb)
                .await
                .map_err(|e| e.to_string())?;
            let mut raw = handover.raw.to_vec();
            raw.extend_from_slice(&input);
            relay_websocket(conn, raw, &from_backend, s, backend).await
        }
    }
}

/// Tells the viewer why it cannot have its console; returns what to log.
async fn refuse(m: &mut Entry<'_>, s: &mut TcpStream, why: Rejection<'_>) -> String {
    let reason = m.reject(why);
    let _ = flush(m, s).await;
    reason.as_str().to_string()
}

/// Relays RFB inside WebSocket frames: the viewer's frames are unmasked in
/// place and their payload goes to the backend; the backend's bytes go out
/// as frames; pongs and the close answer come from the core's connection.
async fn relay_websocket(
    mut conn: Connection,
    mut raw: Vec<u8>,
    from_backend: &[u8],
    mut viewer: TcpStream,
    mut backend: TcpStream,
) -> Result<String, String> {
    let io = |e: std::io::Error| e.to_string();
    let mut frame = vec![0u8; 64 * 1024 + 16];
    let send = |conn: &Connection, data: &[u8], frame: &mut Vec<u8>| -> Vec<u8> {
        let mut out = Vec::new();
        let mut rest = data;
        while !rest.is_empty() {
            let (took, wrote) = conn.encode(rest, frame);
            out.extend_from_slice(&frame[..wrote]);
            rest = &rest[took..];
        }
        out
    };
    let greeting = send(&conn, from_backend, &mut frame);
    viewer.write_all(&greeting).await.map_err(io)?;
    let mut from_viewer = vec![0u8; 16 * 1024];
    let mut down = vec![0u8; 64 * 1024];
    let (mut up_bytes, mut down_bytes) = (0u64, 0u64);
    loop {
        // Decode what the viewer sent so far.
        loop {
            let (used, item) = conn.decode(&mut raw).map_err(|e| e.to_string())?;
            let mut control = [0u8; 256];
            let item = match item {
                Some(Decoded::Data { bytes, .. }) => {
                    up_bytes += bytes.len() as u64;
                    backend.write_all(bytes).await.map_err(io)?;
                    true
                }
                Some(Decoded::Closed { .. }) => {
                    let n = conn.poll_output(&mut control);
                    let _ = viewer.write_all(&control[..n]).await;
                    return Ok(format!(
                        "viewer closed ({up_bytes} bytes up, {down_bytes} down)"
                    ));
                }
                None => false,
            };
            raw.drain(..used);
            let n = conn.poll_output(&mut control);
            viewer.write_all(&control[..n]).await.map_err(io)?;
            if used == 0 && !item {
                break;
            }
        }
        tokio::select! {
            r = viewer.read(&mut from_viewer) => {
                let n = r.map_err(io)?;
                if n == 0 {
                    return Ok(format!("viewer left ({up_bytes} bytes up, {down_bytes} down)"));
                }
                raw.extend_from_slice(&from_viewer[..n]);
            }
            r = backend.read(&mut down) => {
                let n = r.map_err(io)?;
                if n == 0 {
                    conn.close(1000, "backend closed");
                    let mut control = [0u8; 256];
                    let k = conn.poll_output(&mut control);
                    let _ = viewer.write_all(&control[..k]).await;
                    return Ok(format!("backend left ({up_bytes} bytes up, {down_bytes} down)"));
                }
                down_bytes += n as u64;
                let framed = send(&conn, &down[..n], &mut frame);
                viewer.write_all(&framed).await.map_err(io)?;
            }
        }
    }
}

/// Issues the console for `backend` with `password` and serves its port on
/// `listener` until the ticket is used or expires. Returns when the last
/// session ends.
async fn serve(
    listener: TcpListener,
    backend: SocketAddr,
    password: &str,
    ws: Option<bool>,
) -> Result<(), String> {
    let clock = Clock(tokio::time::Instant::now());
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let config = ticket::Config {
        first_port: port,
        last_port: port,
        ..ticket::Config::default()
    };
    let storage = std::array::from_fn(|_| Slot::new());
    let mut table = Table::new(config, storage).map_err(|e| e.to_string())?;
    let ws_field = ws.map(|ws| format!(r#", "ws": {ws}"#)).unwrap_or_default();
    let req = parse_request(&format!(
        r#"{{"daddr": "{}", "dport": {}, "password": "{password}"{ws_field}}}"#,
        backend.ip(),
        backend.port()
    ))?;
    let mut random = [0u8; ticket::RANDOM_LEN];
    getrandom::fill(&mut random).map_err(|e| e.to_string())?;
    let issued = table
        .issue(clock.now(), &req, &random)
        .map_err(|e| e.to_string())?;
    let offers: Transport = table
        .get(issued.handle)
        .map_or(req.transport, |t| t.transport);
    let door = Door::Port {
        port,
        handle: issued.handle,
        offers,
    };
    let proxy = Rc::new(Proxy {
        clock,
        table: RefCell::new(table),
        changed: tokio::sync::Notify::new(),
    });
    eprintln!(
        "console on port {port} for {backend}, valid {} s",
        issued.expires_in
    );
    let sessions = tokio::task::LocalSet::new();
    sessions
        .run_until(async {
            loop {
                // The ticket's expiry closes the door, as the table says.
                let expiry = proxy
                    .table
                    .borrow()
                    .poll_timeout()
                    .map(|t| proxy.clock.at(t));
                let Some(at) = expiry else { break };
                let accepted = tokio::select! {
                    r = listener.accept() => r,
                    _ = tokio::time::sleep_until(at) => {
                        proxy.table.borrow_mut().handle_timeout(proxy.clock.now());
                        continue;
                    }
                    // A viewer took the ticket (or burnt it): look again.
                    _ = proxy.changed.notified() => continue,
                };
                let Ok((s, peer)) = accepted else { continue };
                let p = proxy.clone();
                tokio::task::spawn_local(async move {
                    match viewer(p, door, s, peer).await {
                        Ok(m) => eprintln!("{peer}: {m}"),
                        Err(m) => eprintln!("{peer}: {m}"),
                    }
                });
            }
        })
        .await;
    drop(listener);
    sessions.await;
    Ok(())
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, backend, password] = args.as_slice() else {
        return Err("usage: tokio_proxy LISTEN_ADDR BACKEND_ADDR PASSWORD".into());
    };
    let backend: SocketAddr = backend.parse().map_err(|e| format!("{backend}: {e}"))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let listener = TcpListener::bind(listen.as_str())
            .await
            .map_err(|e| e.to_string())?;
        serve(listener, backend, password, None).await
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use vncap_tests::backend::{Backend, BackendConfig};
    use vncap_tests::viewer::{Viewer, ViewerConfig, WsOptions, WsStream};

    /// Runs the proxy for one console on a kernel-chosen port in a thread;
    /// returns the port.
    fn start(backend: SocketAddr, password: &'static str, ws: Option<bool>) -> u16 {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap().port()).unwrap();
                let _ = serve(listener, backend, password, ws).await;
            });
        });
        rx.recv().unwrap()
    }

    #[test]
    fn a_native_viewer_logs_in_and_sees_the_backend() {
        let backend = Backend::spawn(BackendConfig::with_password("node-pw")).unwrap();
        // One password for both sides, as GWM's dialect without a cluster
        // password has it.
        let port = start(backend.addr(), "node-pw", Some(false));
        let s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let mut v = Viewer::handshake(s, &ViewerConfig::password("node-pw")).unwrap();
        assert_eq!(v.server_init().width, 640);
        let through = v.fetch_framebuffer().unwrap();
        let direct = std::net::TcpStream::connect(backend.addr()).unwrap();
        let mut d = Viewer::handshake(direct, &ViewerConfig::password("node-pw")).unwrap();
        assert_eq!(through.sha256(), d.fetch_framebuffer().unwrap().sha256());
    }

    #[test]
    fn a_websocket_viewer_logs_in_and_a_second_finds_the_port_closed() {
        let backend = Backend::spawn(BackendConfig::default()).unwrap();
        let port = start(backend.addr(), "ws-pw", Some(true));
        let url = format!("ws://127.0.0.1:{port}/websockify");
        let ws = WsStream::connect(&url, &WsOptions::default()).unwrap();
        let mut v = Viewer::handshake(ws, &ViewerConfig::password("ws-pw")).unwrap();
        assert_eq!(v.server_init().width, 640);
        v.fetch_framebuffer().unwrap();
        // One-time: the ticket is used, its port closes.
        let mut closed = false;
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                closed = true;
                break;
            }
            std::thread::yield_now();
        }
        assert!(closed, "the port stays open after the ticket was used");
    }
}
