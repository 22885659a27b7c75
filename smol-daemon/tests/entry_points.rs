//! End to end, the other doors of an entry point and of the daemon: the
//! base64 subprotocol (noVNC 0.4 as bundled by GWM), an `async-tungstenite`
//! browser, Flash policy requests, a TLS ClientHello, the Unix control socket,
//! the session and handshake limits, and `vncap flashpolicy`.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use support::browser::Browser;
use support::{Daemon, PATIENCE};
use vncap_tests::backend::{Backend, BackendConfig, Mode};
use vncap_tests::fixture::{Dir, Fixture};
use vncap_tests::peer::{bulk_sha256, sha256};
use vncap_tests::viewer::{Viewer, ViewerConfig, ViewerError, WsOptions, WsStream};

fn tcp(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect entry port");
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s
}

fn read_all(mut s: TcpStream) -> Vec<u8> {
    let mut v = Vec::new();
    s.read_to_end(&mut v).expect("read until the daemon closes");
    v
}

/// A GWM request that leaves `ws` out: the console may be reached either
/// way, so its port sniffs what arrives. Returns the port.
fn sniffing_request(d: &Daemon, backend: std::net::SocketAddr) -> u16 {
    let line = format!(
        "{{\"daddr\": \"{}\", \"dport\": {}, \"password\": \"pw\"}}\r\n",
        backend.ip(),
        backend.port()
    );
    let reply = d.control_raw(line.as_bytes());
    reply.trim_end().parse().expect("a port")
}

/// A native-only console (`"ws": false`) does not wait for a silence: its
/// port speaks RFB's ProtocolVersion before the viewer says anything.
#[test]
fn native_only_port_speaks_first() {
    let backend = Backend::spawn(BackendConfig::default()).unwrap();
    let d = Daemon::start(&[]);
    let port = d.gwm_request(backend.addr(), "pw", false);
    let mut s = tcp(port);
    let mut version = [0u8; 12];
    s.read_exact(&mut version).expect("the server speaks first");
    assert_eq!(&version, b"RFB 003.008\n");
}

#[test]
fn base64_subprotocol_serves_novnc_0_4() {
    let backend = Backend::spawn(BackendConfig::with_password("gwm-pw")).unwrap();
    let d = Daemon::start(&[]);
    let port = d.gwm_request(backend.addr(), "gwm-pw", true);
    let options = WsOptions {
        protocols: vec!["base64".into()],
        origin: None,
    };
    let ws = WsStream::connect(&format!("ws://127.0.0.1:{port}/websockify"), &options).unwrap();
    assert_eq!(ws.protocol(), Some("base64"));
    let mut viewer = Viewer::handshake(ws, &ViewerConfig::password("gwm-pw")).unwrap();
    let through = viewer.fetch_framebuffer().unwrap();
    let mut direct = Viewer::handshake(
        TcpStream::connect(backend.addr()).unwrap(),
        &ViewerConfig::password("gwm-pw"),
    )
    .unwrap();
    assert_eq!(
        through.sha256(),
        direct.fetch_framebuffer().unwrap().sha256()
    );
}

/// The browser side written against `async-tungstenite` directly: RFB by
/// hand over binary messages, then megabytes back from a bulk backend.
#[test]
fn async_tungstenite_browser_logs_in_and_receives_intact_bytes() {
    let len = 2 << 20;
    let backend = Backend::spawn(BackendConfig {
        mode: Mode::Bulk { len, seed: 11 },
        ..BackendConfig::with_password("browser")
    })
    .unwrap();
    let d = Daemon::start(&[]);
    let port = d.gwm_request(backend.addr(), "browser", true);
    smol::block_on(async {
        let tcp = smol::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let url = format!("ws://127.0.0.1:{port}/websockify");
        let (mut b, protocol) = Browser::upgrade(tcp, &url).await;
        assert_eq!(protocol, None, "no subprotocol offered, none echoed");
        assert_eq!(b.login("browser").await, "vncap test backend");
        let body = b.take(len as usize).await;
        assert_eq!(sha256(&body), bulk_sha256(11, len));
        b.ws.close(None).await.unwrap();
    });
}

#[test]
fn flash_policy_request_on_an_entry_point_keeps_the_ticket() {
    let backend = Backend::spawn(BackendConfig::default()).unwrap();
    let d = Daemon::start(&[]);
    // A console that may be a WebSocket or native: its port sniffs. (A
    // native-only console's port speaks RFB first and serves no policy.)
    let port = sniffing_request(&d, backend.addr());
    let mut s = tcp(port);
    s.write_all(b"<policy-file-request/>\0").unwrap();
    let answer = read_all(s);
    let text = String::from_utf8(answer).unwrap();
    assert!(text.ends_with('\0'), "{text:?}");
    let allowed = format!("to-ports=\"{}-{}\"", d.ports.0, d.ports.1);
    assert!(text.contains(&allowed), "{text}");
    let viewer =
        Viewer::handshake(tcp(port), &ViewerConfig::password("pw")).expect("ticket still usable");
    assert_eq!(viewer.server_init().width, 640);
}

#[test]
fn tls_client_hello_gets_a_handshake_failure_alert() {
    let backend = Backend::spawn(BackendConfig::default()).unwrap();
    let mut d = Daemon::start(&[]);
    let port = sniffing_request(&d, backend.addr());
    let hello = Fixture::load("sniff/tls-clienthello.txt").stream(Dir::Client);
    let mut s = tcp(port);
    s.write_all(&hello).unwrap();
    assert_eq!(read_all(s), vncap_core::sniff::TLS_HANDSHAKE_FAILURE);
    d.wait_log(|l| l.contains("handshake_failure"));
}

#[test]
fn unix_control_socket_is_private_and_answers() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::net::UnixStream;
    let dir = std::env::temp_dir().join(format!("vncap-unix-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("control.sock");
    let spec = format!("unix:{}", path.display());
    let backend = Backend::spawn(BackendConfig::default()).unwrap();
    let ports = support::port_block();
    let range = format!("{}-{}", ports.0, ports.1);
    let d = Daemon::spawn_until(
        &[
            "serve",
            "--control",
            &spec,
            "--listen",
            "127.0.0.1",
            "--ports",
            &range,
        ],
        ports,
        "ready: control on ",
    );
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let mut s = UnixStream::connect(&path).unwrap();
    let req = format!(
        "{{\"daddr\": \"127.0.0.1\", \"dport\": {}, \"password\": \"pw\"}}\n",
        backend.addr().port()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    let port: u16 = reply.trim().parse().unwrap();
    assert!((ports.0..=ports.1).contains(&port));
    assert!(d.terminate().success());
    assert!(!path.exists(), "socket file removed at shutdown");
}

/// Connections still in their handshake are bounded by --max-handshakes
/// (apart from sessions, which --max-sessions bounds).
#[test]
fn max_handshakes_refuses_connections_beyond_the_limit() {
    let backend = Backend::spawn(BackendConfig::default()).unwrap();
    let mut d = Daemon::start(&["--max-handshakes", "1", "--max-handshakes-per-ip", "1"]);
    let port = d.gwm_request(backend.addr(), "pw", false);
    // The first connection holds the one place (silent: waiting in the handshake).
    let mut first = tcp(port);
    let mut version = [0u8; 12];
    first.read_exact(&mut version).unwrap();
    let second = tcp(port);
    assert!(read_all(second).is_empty(), "closed without a word");
    d.wait_log(|l| l.contains("(--max-handshakes"));
}

#[test]
fn a_silent_viewer_is_dropped_at_the_handshake_deadline() {
    let backend = Backend::spawn(BackendConfig::default()).unwrap();
    let mut d = Daemon::start(&["--handshake-timeout", "1"]);
    let port = d.gwm_request(backend.addr(), "pw", false);
    let s = tcp(port);
    // It hears the server's version (after the sniff's silence), answers
    // nothing, and is closed.
    assert_eq!(read_all(s), b"RFB 003.008\n");
    d.wait_log(|l| l.contains("handshake timed out"));
}

#[test]
fn flashpolicy_command_serves_the_policy() {
    let d = Daemon::spawn_until(
        &[
            "flashpolicy",
            "--listen",
            "127.0.0.1:0",
            "--ports",
            "7000-7010",
            "--domain",
            "*.example.org",
        ],
        (0, 0),
        "flash policy server on ",
    );
    let line = d
        .log
        .lock()
        .unwrap()
        .iter()
        .find(|l| l.contains("flash policy server on "))
        .cloned()
        .unwrap();
    let addr: std::net::SocketAddr = line.rsplit(' ').next().unwrap().parse().unwrap();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.write_all(b"<policy-file-request/>\0").unwrap();
    let text = String::from_utf8(read_all(s)).unwrap();
    assert!(
        text.contains("domain=\"*.example.org\" to-ports=\"7000-7010\""),
        "{text}"
    );
    assert!(text.ends_with('\0'));
    assert!(d.terminate().success());
}

#[test]
fn websocket_from_a_foreign_origin_is_forbidden() {
    let backend = Backend::spawn(BackendConfig::with_password("pw")).unwrap();
    let d = Daemon::start(&["--allowed-origin", "https://gwm.example.org"]);
    let port = d.gwm_request(backend.addr(), "pw", true);
    let url = format!("ws://127.0.0.1:{port}/websockify");
    let foreign = WsOptions {
        protocols: vec![],
        origin: Some("https://evil.example.com".into()),
    };
    let err = WsStream::connect(&url, &foreign).expect_err("foreign origin");
    assert!(err.to_string().contains("403"), "{err}");
    let ours = WsOptions {
        protocols: vec![],
        origin: Some("https://GWM.example.org".into()),
    };
    let viewer = Viewer::handshake(
        WsStream::connect(&url, &ours).unwrap(),
        &ViewerConfig::password("pw"),
    )
    .expect("the ticket survives a refused upgrade");
    assert_eq!(viewer.server_init().width, 640);
}

/// Every limit from the command line, each answered the protocol's way.
#[test]
fn configured_limits_get_specific_answers() {
    let backend = Backend::spawn(BackendConfig::with_password("pw")).unwrap();
    let d = Daemon::start(&[
        "--max-request-bytes",
        "128",
        "--max-header-bytes",
        "512",
        "--max-message-bytes",
        "1024",
        "--max-tickets",
        "1",
    ]);
    let long = format!("{{\"daddr\": \"{}\"}}\n", "h".repeat(200));
    assert_eq!(
        d.control_raw(long.as_bytes()),
        "FAILED request longer than the limit\n"
    );

    let port = d.gwm_request(backend.addr(), "pw", true);
    let again = format!(
        "{{\"daddr\": \"127.0.0.1\", \"dport\": {}, \"password\": \"pw\"}}\n",
        backend.addr().port()
    );
    assert_eq!(
        d.control_raw(again.as_bytes()),
        "FAILED too many pending consoles\n"
    );

    // An upgrade request whose header block passes the limit: HTTP 431.
    let mut s = tcp(port);
    let padded = format!(
        "GET /websockify HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n",
        "a".repeat(600)
    );
    s.write_all(padded.as_bytes()).unwrap();
    let answer = String::from_utf8_lossy(&read_all(s)).to_string();
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");

    // A WebSocket message over the limit: close code 1009 (the ticket
    // survived the refused upgrade above).
    smol::block_on(async {
        let tcp = smol::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let (mut b, _) = Browser::upgrade(tcp, &format!("ws://127.0.0.1:{port}/websockify")).await;
        b.login("pw").await;
        b.send(&[0u8; 2000]).await;
        loop {
            match futures_util::StreamExt::next(&mut b.ws).await {
                Some(Ok(async_tungstenite::tungstenite::Message::Close(Some(frame)))) => {
                    assert_eq!(u16::from(frame.code), 1009);
                    break;
                }
                Some(Ok(_)) => {}
                other => panic!("expected a close frame with 1009, got {other:?}"),
            }
        }
    });
}

#[test]
fn limits_out_of_range_stop_the_daemon_at_startup() {
    for (flag, value) in [
        ("--max-tickets", "5000"),
        ("--max-request-bytes", "10"),
        ("--max-header-bytes", "100000"),
    ] {
        support::startup_fails(&[flag, value], &format!("{flag} {value}: must be"));
    }
}

/// A TCP connection to `port` on 127.0.0.1 from the source address `from`
/// (any of 127.0.0.0/8 is this host's on Linux).
fn tcp_from(from: [u8; 4], port: u16) -> TcpStream {
    use rustix::net::{bind, connect, socket, AddressFamily, SocketType};
    let fd = socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
    bind(&fd, &std::net::SocketAddr::from((from, 0))).unwrap();
    connect(&fd, &std::net::SocketAddr::from(([127, 0, 0, 1], port))).unwrap();
    let s = TcpStream::from(fd);
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s
}

/// One host's silent connections use up its own share of handshakes
/// (--max-handshakes-per-ip), not the daemon's: a viewer from another
/// address still logs in at once, and the flooding host's next connection
/// is closed unanswered. Sessions are counted apart.
#[test]
fn a_flood_from_one_address_does_not_keep_another_viewer_out() {
    let backend = Backend::spawn(BackendConfig::default()).unwrap();
    let mut d = Daemon::start(&["--max-handshakes", "8", "--max-handshakes-per-ip", "4"]);
    let port = d.gwm_request(backend.addr(), "pw", false);
    // Four silent connections from 127.0.0.3: each is sent the version at
    // once (a native-only console) and then waits for the deadline.
    let mut flood: Vec<TcpStream> = (0..4).map(|_| tcp_from([127, 0, 0, 3], port)).collect();
    for s in &mut flood {
        let mut version = [0u8; 12];
        s.read_exact(&mut version).unwrap();
    }
    // The fifth from that address is closed at once, unanswered.
    let mut fifth = tcp_from([127, 0, 0, 3], port);
    let mut got = Vec::new();
    let _ = fifth.read_to_end(&mut got);
    assert!(got.is_empty(), "{got:?}");
    d.wait_log(|l| l.contains("127.0.0.3") && l.contains("--max-handshakes-per-ip"));
    // More of them are closed too, and counted rather than logged: a flood
    // does not flood the log.
    for _ in 0..20 {
        let mut more = tcp_from([127, 0, 0, 3], port);
        let _ = more.read_to_end(&mut got);
    }
    assert!(got.is_empty(), "{got:?}");
    // Another address gets in, flood or not.
    let viewer = Viewer::handshake(
        tcp_from([127, 0, 0, 2], port),
        &ViewerConfig::password("pw"),
    )
    .expect("a viewer from another address");
    assert_eq!(viewer.server_init().width, 640);
    // (Its session's line comes after every refusal's in the log.)
    d.wait_log(|l| l.contains("127.0.0.2") && l.contains("authenticated"));
    let refusals = d.count_logged("--max-handshakes-per-ip");
    assert_eq!(refusals, 1, "21 refusals in one burst are one log line");
    drop(flood);
}

/// A proxy at --max-sessions tells an authenticated viewer it is full and
/// keeps its ticket, so the same viewer gets in once a session ends.
#[test]
fn a_full_proxy_refuses_with_the_reason_and_keeps_the_ticket() {
    let backend = Backend::spawn(BackendConfig::default()).unwrap();
    let mut d = Daemon::start(&["--max-sessions", "1"]);
    let first = d.gwm_request(backend.addr(), "pw", false);
    let second = d.gwm_request(backend.addr(), "pw2", false);
    let one = Viewer::handshake(tcp(first), &ViewerConfig::password("pw")).unwrap();
    match Viewer::handshake(tcp(second), &ViewerConfig::password("pw2")) {
        Err(ViewerError::SecurityFailed { reason, .. }) => {
            assert_eq!(
                reason.as_deref(),
                Some("the proxy is full; try again in a moment")
            )
        }
        other => panic!("expected a refusal, got {:?}", other.err()),
    }
    d.wait_log(|l| l.contains("ticket kept"));
    drop(one);
    d.wait_log(|l| l.contains("session ended"));
    let two = Viewer::handshake(tcp(second), &ViewerConfig::password("pw2"))
        .expect("the kept ticket, once a session ended");
    assert_eq!(two.server_init().width, 640);
}
