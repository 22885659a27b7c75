//! `vncap serve --record DIR` through the real binary: the files it writes
//! hold exactly the bytes that crossed each leg, in order. Byte-transparent
//! TCP taps (threads here) sit between the test viewer and vncap and between
//! vncap and the test backend and keep what they forwarded; the recordings
//! must equal the taps' bytes, direction by direction.

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use support::{bulk_backend, check_bulk, Daemon, PATIENCE};
use vncap_tests::fixture::{Dir, Fixture};
use vncap_tests::viewer::{Viewer, ViewerConfig, WsOptions, WsStream};

/// What a tap forwarded: (bytes from the connecting side, bytes from the other).
type Seen = Arc<Mutex<(Vec<u8>, Vec<u8>)>>;

/// Accepts one connection on loopback, forwards it to `target`, and keeps
/// both directions; the handle ends when both directions have (each read
/// bounded by [`PATIENCE`]).
fn tap(target: SocketAddr) -> (SocketAddr, Seen, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let seen2 = seen.clone();
    let done = std::thread::spawn(move || {
        let (down, _) = listener.accept().unwrap();
        let up = TcpStream::connect(target).unwrap();
        let pump = |mut from: TcpStream, mut to: TcpStream, seen: Seen, upward: bool| {
            from.set_read_timeout(Some(PATIENCE)).unwrap();
            let mut buf = [0u8; 65536];
            loop {
                let n = match from.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                {
                    let mut s = seen.lock().unwrap();
                    let v = if upward { &mut s.0 } else { &mut s.1 };
                    v.extend_from_slice(&buf[..n]);
                }
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            let _ = to.shutdown(Shutdown::Write);
        };
        let (d2, u2) = (down.try_clone().unwrap(), up.try_clone().unwrap());
        let s2 = seen2.clone();
        let t = std::thread::spawn(move || pump(u2, d2, s2, false));
        pump(down, up, seen2, true);
        let _ = t.join();
    });
    (addr, seen, done)
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vncap-record-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The one file in `dir` whose name ends with `suffix`.
fn recorded(dir: &Path, suffix: &str) -> (PathBuf, Fixture) {
    let files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    assert_eq!(files.len(), 1, "one {suffix} in {files:?}");
    let text = std::fs::read_to_string(&files[0]).unwrap();
    let mode = std::fs::metadata(&files[0]).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{} mode", files[0].display());
    (files[0].clone(), Fixture::parse(&text))
}

#[test]
fn native_session_recorded_byte_for_byte_on_both_legs() {
    let (down, up) = (200_000, 70_001);
    let backend = bulk_backend("secret12", down, 5);
    let dir = scratch("native");
    let mut d = Daemon::start(&["--record", dir.to_str().unwrap()]);
    let (btap, backend_seen, btap_done) = tap(backend.addr());
    let port = d.gwm_request(btap, "secret12", false);
    let (vtap, viewer_seen, vtap_done) = tap(SocketAddr::from(([127, 0, 0, 1], port)));
    let stream = TcpStream::connect(vtap).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut viewer = Viewer::handshake(stream, &ViewerConfig::password("secret12")).unwrap();
    let report = viewer.bulk(up, 6, down).unwrap();
    drop(viewer);
    check_bulk(&backend, &report, down, 5);
    d.wait_log(|l| l.contains("session ended"));
    vtap_done.join().unwrap();
    btap_done.join().unwrap();

    let (_, v) = recorded(&dir, "-viewer.txt");
    let (_, b) = recorded(&dir, "-backend.txt");
    assert!(v.get("leg").starts_with("viewer"));
    assert_eq!(b.get("backend"), btap.to_string());
    let vs = viewer_seen.lock().unwrap();
    let bs = backend_seen.lock().unwrap();
    assert_eq!(v.stream(Dir::Client), vs.0, "viewer → vncap");
    assert_eq!(v.stream(Dir::Server), vs.1, "vncap → viewer");
    assert_eq!(b.stream(Dir::Client), bs.0, "vncap → backend");
    assert_eq!(b.stream(Dir::Server), bs.1, "backend → vncap");
    // Order: the handshake alternates; the first record is vncap's version.
    assert_eq!(v.records[0], (Dir::Server, b"RFB 003.008\n".to_vec()));
    assert_eq!(b.records[0], (Dir::Server, b"RFB 003.008\n".to_vec()));
    assert_eq!(v.records[1], (Dir::Client, b"RFB 003.008\n".to_vec()));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Recordings start only once a viewer authenticated: junk upgrades,
/// strangers speaking anything, and wrong passwords leave no file (a
/// stranger cannot fill the disk), and the console's real viewer is still
/// recorded.
#[test]
fn connections_that_do_not_authenticate_leave_no_recording() {
    let backend = bulk_backend("secret12", 1000, 3);
    let dir = scratch("junk");
    let mut d = Daemon::start(&["--record", dir.to_str().unwrap(), "--single-port", "0"]);
    let single = d.single_port();
    for i in 0..50 {
        let mut s = TcpStream::connect(("127.0.0.1", single)).unwrap();
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        let junk = format!(
            "GET /websockify?token=nope{i} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        );
        s.write_all(junk.as_bytes()).unwrap();
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        assert!(
            answer.starts_with(b"HTTP/1.1 404 "),
            "{:?}",
            String::from_utf8_lossy(&answer)
        );
    }
    let port = d.gwm_request(backend.addr(), "secret12", false);
    // A stranger that speaks something else, then a wrong password (which
    // burns this one-viewer ticket).
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"SSH-2.0-scanner\r\n").unwrap();
    let mut rest = Vec::new();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let _ = s.read_to_end(&mut rest);
    let wrong = Viewer::handshake(
        TcpStream::connect(("127.0.0.1", port)).unwrap(),
        &ViewerConfig::password("wrong-pw"),
    );
    assert!(wrong.is_err());
    d.wait_log(|l| l.contains("wrong password"));
    let files = std::fs::read_dir(&dir).unwrap().count();
    assert_eq!(files, 0, "nothing recorded before authentication");
    // The real viewer of another console is recorded.
    let port = d.gwm_request(backend.addr(), "secret12", false);
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut v = Viewer::handshake(s, &ViewerConfig::password("secret12")).unwrap();
    let _ = v.bulk(10, 1, 1000);
    drop(v);
    d.wait_log(|l| l.contains("session ended"));
    recorded(&dir, "-viewer.txt");
    recorded(&dir, "-backend.txt");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn websocket_session_records_the_rfb_payload() {
    let (down, up) = (100_000, 30_000);
    let backend = bulk_backend("secret12", down, 8);
    let dir = scratch("ws");
    let mut d = Daemon::start(&["--record", dir.to_str().unwrap()]);
    let (btap, backend_seen, btap_done) = tap(backend.addr());
    let port = d.gwm_request(btap, "secret12", true);
    let ws = WsStream::connect(
        &format!("ws://127.0.0.1:{port}/websockify"),
        &WsOptions::default(),
    )
    .unwrap();
    ws.tcp().set_read_timeout(Some(PATIENCE)).unwrap();
    let mut viewer = Viewer::handshake(ws, &ViewerConfig::password("secret12")).unwrap();
    let report = viewer.bulk(up, 9, down).unwrap();
    viewer.stream().close().ok();
    drop(viewer);
    check_bulk(&backend, &report, down, 8);
    d.wait_log(|l| l.contains("session ended"));
    btap_done.join().unwrap();

    let (_, v) = recorded(&dir, "-viewer.txt");
    let (_, b) = recorded(&dir, "-backend.txt");
    assert!(v.get("door").contains("WebSocket"));
    let bs = backend_seen.lock().unwrap();
    assert_eq!(b.stream(Dir::Client), bs.0);
    assert_eq!(b.stream(Dir::Server), bs.1);
    // No HTTP, no frames: RFB from the first byte.
    let (vc, vs) = (v.stream(Dir::Client), v.stream(Dir::Server));
    assert!(vc.starts_with(b"RFB 003.008\n"));
    assert!(vs.starts_with(b"RFB 003.008\n"));
    // After the logins both legs carry the same bytes: the viewer's
    // ClientInit and bulk upward, the backend's ServerInit and bulk down.
    let (login_c, login_s) = (12 + 1 + 16, 12 + 2 + 16 + 4);
    assert!(
        bs.0.ends_with(&vc[login_c..]),
        "viewer bytes relayed as recorded"
    );
    assert_eq!(&vs[login_s..], &bs.1[bs.1.len() - (vs.len() - login_s)..]);
    assert_eq!((vc.len() - login_c) as u64, 1 + report.sent_len);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn record_needs_a_directory() {
    support::startup_fails(&["--record", "/nonexistent/vncap-record"], "--record");
}
