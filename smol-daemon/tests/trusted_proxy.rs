//! End to end, `--trusted-proxy` on entry ports and the single port: the
//! real `vncap` binary behind a fake balancer — a test client on 127.0.0.1
//! (trusted) that writes a PROXY v2 header (as HAProxy's `send-proxy-v2`
//! does) or, on the single port, `X-Forwarded-For` before the viewer's own
//! bytes; an untrusted source is a client socket bound to 127.0.0.2. The
//! client the header names is the one `client.ip` pins admit, the one the
//! per-source handshake budget counts, and the one the logs name; from an
//! untrusted source a PROXY header is refused and `X-Forwarded-For` ignored.
//! With TLS, the header comes before the ClientHello.

mod support;

use rustix::net::{bind, connect, socket, AddressFamily, SocketType};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use support::browser::Browser;
use support::{json_field, Daemon, PATIENCE};
use vncap_tests::backend::{Backend, BackendConfig};
use vncap_tests::viewer::{Viewer, ViewerConfig, ViewerError};

/// A TCP connection from `from` (a loopback address) to `port` on
/// 127.0.0.1, reads and writes bounded by [`PATIENCE`].
fn tcp_from(from: [u8; 4], port: u16) -> TcpStream {
    let fd = socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
    bind(&fd, &SocketAddr::from((from, 0))).unwrap();
    connect(&fd, &SocketAddr::from(([127, 0, 0, 1], port))).unwrap();
    let s = TcpStream::from(fd);
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.set_write_timeout(Some(PATIENCE)).unwrap();
    s
}

/// HAProxy's `send-proxy-v2` header for a TCP client at `client`:`port`
/// that reached the balancer's 203.0.113.1:`to`, with one TLV (skipped).
fn proxy_v2(client: [u8; 4], port: u16, to: u16) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0, 12 + 5]);
    h.extend_from_slice(&client);
    h.extend_from_slice(&[203, 0, 113, 1]);
    h.extend_from_slice(&port.to_be_bytes());
    h.extend_from_slice(&to.to_be_bytes());
    h.extend_from_slice(&[0x05, 0, 2, 0xab, 0xcd]); // PP2_TYPE_UNIQUE_ID
    h
}

/// The balancer's connection to `port` for `client`: its header written.
fn via_balancer(client: [u8; 4], client_port: u16, port: u16) -> TcpStream {
    let mut s = tcp_from([127, 0, 0, 1], port);
    s.write_all(&proxy_v2(client, client_port, port)).unwrap();
    s
}

/// A GWM console pinned to `client_ip` (a native-only one unless `tls`).
fn pinned(d: &Daemon, backend: SocketAddr, client_ip: &str, tls: bool) -> u16 {
    let line = format!(
        "{{\"daddr\": \"127.0.0.1\", \"dport\": {}, \"password\": \"pw\", \"ws\": false, \"tls\": {tls}, \"client\": {{\"ip\": \"{client_ip}\"}}}}\r\n",
        backend.port()
    );
    let reply = d.control_raw(line.as_bytes());
    reply
        .trim_end()
        .parse()
        .unwrap_or_else(|_| panic!("a port, not {reply:?}"))
}

#[test]
fn a_pinned_ticket_admits_the_named_client_only() {
    let backend = Backend::spawn(BackendConfig::with_password("pw")).unwrap();
    let mut d = Daemon::start(&["--trusted-proxy", "127.0.0.1"]);
    let port = pinned(&d, backend.addr(), "192.0.2.7", false);

    // Another client behind the balancer is refused, with the reason.
    let other = Viewer::handshake(
        via_balancer([192, 0, 2, 8], 40000, port),
        &ViewerConfig::password("pw"),
    );
    assert!(
        matches!(other, Err(ViewerError::Refused { .. })),
        "{:?}",
        other.err()
    );
    d.wait_log(|l| l.starts_with_client("192.0.2.8:40000") && l.contains("refused"));

    // An untrusted source's PROXY header is not believed: it was greeted
    // (a native-only console speaks first), then closed unanswered.
    let mut forged = tcp_from([127, 0, 0, 2], port);
    forged
        .write_all(&proxy_v2([192, 0, 2, 7], 1, port))
        .unwrap();
    let mut got = Vec::new();
    let _ = forged.read_to_end(&mut got);
    assert_eq!(got, b"RFB 003.008\n", "the greeting, nothing after it");
    d.wait_log(|l| {
        l.contains("127.0.0.2:") && l.contains("PROXY protocol header not from a trusted proxy")
    });

    // Nor is the balancer itself the client when it connects directly.
    let direct = Viewer::handshake(
        tcp_from([127, 0, 0, 1], port),
        &ViewerConfig::password("pw"),
    );
    assert!(matches!(direct, Err(ViewerError::Refused { .. })));

    // The named client gets in; the logs name it, and the balancer once.
    let viewer = Viewer::handshake(
        via_balancer([192, 0, 2, 7], 56324, port),
        &ViewerConfig::password("pw"),
    )
    .expect("the pinned client through the balancer");
    assert_eq!(viewer.server_init().width, 640);
    let via = d.wait_log(|l| {
        l.contains("192.0.2.7:56324 on port") && l.contains("via PROXY v2 from 127.0.0.1:")
    });
    assert!(via.contains(&format!("on port {port}")), "{via}");
    d.wait_log(|l| l.contains("192.0.2.7:56324: authenticated; connecting to backend"));
    let log = d.log.lock().unwrap().clone();
    assert_eq!(
        log.iter()
            .filter(|l| l.contains("192.0.2.7:56324") && l.contains("via PROXY"))
            .count(),
        1,
        "the balancer is named once"
    );
}

/// A line's client, for [`Daemon::wait_log`] predicates.
trait ClientLine {
    fn starts_with_client(&self, client: &str) -> bool;
}

impl ClientLine for str {
    fn starts_with_client(&self, client: &str) -> bool {
        self.contains(&format!("{client} on "))
    }
}

#[test]
fn the_per_source_budget_counts_the_named_clients() {
    let backend = Backend::spawn(BackendConfig::with_password("pw")).unwrap();
    let mut d = Daemon::start(&[
        "--trusted-proxy",
        "127.0.0.1",
        "--max-handshakes",
        "16",
        "--max-handshakes-per-ip",
        "2",
    ]);
    let port = d.gwm_request(backend.addr(), "pw", false);
    let greeted = |mut s: TcpStream| {
        let mut version = [0u8; 12];
        s.read_exact(&mut version).unwrap();
        assert_eq!(&version, b"RFB 003.008\n");
        s
    };
    // Four silent viewers from four clients, all through the one balancer:
    // more than its share, were the balancer the source.
    let mut held: Vec<TcpStream> = (1..=4)
        .map(|i| greeted(via_balancer([192, 0, 2, i], 1000, port)))
        .collect();
    // One client's share is still two.
    held.push(greeted(via_balancer([192, 0, 2, 9], 1001, port)));
    held.push(greeted(via_balancer([192, 0, 2, 9], 1002, port)));
    let mut third = via_balancer([192, 0, 2, 9], 1003, port);
    let mut got = Vec::new();
    let _ = third.read_to_end(&mut got);
    assert!(got.is_empty(), "closed unanswered: {got:?}");
    d.wait_log(|l| l.starts_with_client("192.0.2.9:1003") && l.contains("--max-handshakes-per-ip"));
    // Another client behind the same balancer logs in, flood or not.
    let viewer = Viewer::handshake(
        via_balancer([192, 0, 2, 10], 1004, port),
        &ViewerConfig::password("pw"),
    )
    .expect("a viewer from another client");
    assert_eq!(viewer.server_init().width, 640);
    drop(held);
}

#[test]
fn x_forwarded_for_names_the_client_on_the_single_port_from_a_trusted_proxy_only() {
    use async_tungstenite::tungstenite::client::IntoClientRequest;
    let backend = Backend::spawn(BackendConfig::default()).unwrap();
    let mut d = Daemon::start(&["--single-port", "0", "--trusted-proxy", "127.0.0.1"]);
    let single = d.single_port();
    let console = |d: &Daemon| {
        let req = format!(
            "{{\"destination_address\": \"127.0.0.1\", \"destination_port\": {}, \"type\": \"vnc-ws\"}}\n",
            backend.addr().port()
        );
        let reply = d.control_raw(req.as_bytes());
        (
            json_field(&reply, "url_path"),
            json_field(&reply, "password"),
        )
    };
    let login = |from: [u8; 4], url_path: &str, password: &str| {
        let tcp = smol::net::TcpStream::try_from(tcp_from(from, single)).unwrap();
        let url = format!("ws://127.0.0.1:{single}/{url_path}");
        let mut request = url.into_client_request().unwrap();
        request.headers_mut().insert(
            "X-Forwarded-For",
            "198.51.100.1, 192.0.2.7".parse().unwrap(),
        );
        smol::block_on(async {
            let mut b = Browser::upgrade_request(tcp, request).await;
            assert_eq!(b.login(password).await, "vncap test backend");
        });
    };

    let (url_path, password) = console(&d);
    login([127, 0, 0, 1], &url_path, &password);
    d.wait_log(|l| {
        l.contains(&format!(
            "192.0.2.7:0 on single port {single}: via X-Forwarded-For from 127.0.0.1:"
        ))
    });
    d.wait_log(|l| l.contains("192.0.2.7:0: authenticated"));

    // From an untrusted source the header is anyone's: ignored.
    let (url_path, password) = console(&d);
    login([127, 0, 0, 2], &url_path, &password);
    d.wait_log(|l| l.contains("127.0.0.2:") && l.contains(": authenticated"));
    assert!(
        !d.logged("from 127.0.0.2:"),
        "no via line for an untrusted source"
    );
}

#[cfg(feature = "tls")]
#[test]
fn the_proxy_header_comes_before_the_client_hello() {
    use rustls::pki_types::ServerName;
    use std::sync::Arc;
    let dir = std::env::temp_dir().join(format!("vncap-proxy-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    let backend = Backend::spawn(BackendConfig::with_password("pw")).unwrap();
    let mut d = Daemon::start(&[
        "--trusted-proxy",
        "127.0.0.1",
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ]);
    // A TLS-only native console, pinned: RFB inside TLS, after the header.
    let port = pinned(&d, backend.addr(), "192.0.2.7", true);
    let mut roots = rustls::RootCertStore::empty();
    roots.add(made.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let name = ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(config, name).unwrap();
    let tls = rustls::StreamOwned::new(conn, via_balancer([192, 0, 2, 7], 443, port));
    let viewer = Viewer::handshake(tls, &ViewerConfig::password("pw"))
        .expect("the pinned client, over TLS, through the balancer");
    assert_eq!(viewer.server_init().width, 640);
    d.wait_log(|l| l.contains("192.0.2.7:443 on port") && l.contains("via PROXY v2"));
    d.wait_log(|l| l.contains("192.0.2.7:443: authenticated"));
    drop(viewer);
    let _ = std::fs::remove_dir_all(&dir);
}
