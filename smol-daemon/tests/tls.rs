//! End to end, TLS on entry points (`--cert`, `--key`): a
//! self-signed certificate made at test time, the real `vncap` binary, and
//! independent TLS clients (a blocking `rustls` client under the test viewer
//! for native RFB over TLS; `futures-rustls` under `async-tungstenite` for
//! wss), checked against the test backend's report. Also: the core's
//! transport rule told the truth about TLS (plain viewers on TLS-only
//! consoles, `--require-tls`), the certificate reloaded on SIGHUP, TLS on
//! the control channel (`--control-tls`, `vncap request --control-tls`),
//! TLS 1.2/1.3 only, the handshake deadline, and clear startup errors (also
//! for `--backend-tls-dir`; VeNCrypt to real QEMU nodes is in the interop
//! suite).
//! Compiled only with the cargo feature `tls` (the default).

#![cfg(feature = "tls")]

mod support;

use rustls::pki_types::{CertificateDer, ServerName};
use std::io::Write;
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use support::browser::Browser;
use support::{bulk_backend, check_bulk, gwm_line, json_field, startup_fails, Daemon, PATIENCE};
use vncap_tests::backend::{Backend, BackendConfig};
use vncap_tests::peer::{bulk_sha256, sha256};
use vncap_tests::viewer::{Viewer, ViewerConfig, ViewerError, WsOptions, WsStream};

/// A self-signed certificate for `localhost`, written as PEM files into a
/// fresh temporary directory (removed on drop).
struct Cert {
    dir: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    der: CertificateDer<'static>,
}

impl Cert {
    fn new() -> Cert {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("vncap-tls-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let made = rcgen::generate_simple_self_signed(names).unwrap();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, made.cert.pem()).unwrap();
        std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
        Cert {
            dir,
            cert,
            key,
            der: made.cert.der().clone(),
        }
    }

    /// A daemon serving TLS with this certificate, plus `extra` arguments.
    fn daemon(&self, extra: &[&str]) -> Daemon {
        let (cert, key) = (self.cert.to_str().unwrap(), self.key.to_str().unwrap());
        let mut args = vec!["--cert", cert, "--key", key];
        args.extend_from_slice(extra);
        let d = Daemon::start(&args);
        assert!(d.logged("TLS on"), "the ready line says TLS is on");
        d
    }

    /// A client configuration trusting exactly this certificate.
    fn client_config(&self) -> Arc<rustls::ClientConfig> {
        client_config(&[self], rustls::DEFAULT_VERSIONS)
    }

    /// Puts `other`'s certificate and key into this one's files.
    fn overwrite_with(&self, other: &Cert) {
        std::fs::copy(&other.cert, &self.cert).unwrap();
        std::fs::copy(&other.key, &self.key).unwrap();
    }

    /// A blocking TLS connection to an entry port (native RFB inside).
    fn connect(&self, port: u16) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
        self.connect_with(port, self.client_config())
    }

    /// [`Cert::connect`] with the client configuration `config`.
    fn connect_with(
        &self,
        port: u16,
        config: Arc<rustls::ClientConfig>,
    ) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
        let tcp = TcpStream::connect(("127.0.0.1", port)).expect("connect entry port");
        tcp.set_read_timeout(Some(PATIENCE)).unwrap();
        tcp.set_write_timeout(Some(PATIENCE)).unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let conn = rustls::ClientConnection::new(config, name).unwrap();
        rustls::StreamOwned::new(conn, tcp)
    }
}

/// A client configuration trusting the certificates `trust`, offering
/// `versions`.
fn client_config(
    trust: &[&Cert],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in trust {
        roots.add(c.der.clone()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

impl Drop for Cert {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Sends close_notify, so the daemon sees a clean end of the TLS stream.
fn close_tls(s: &mut rustls::StreamOwned<rustls::ClientConnection, TcpStream>) {
    s.conn.send_close_notify();
    let _ = s.flush();
}

/// A browser over wss, trusting exactly `cert`.
async fn wss(
    cert: &Cert,
    port: u16,
    path: &str,
) -> Browser<futures_rustls::client::TlsStream<smol::net::TcpStream>> {
    let tcp = smol::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let tls = futures_rustls::TlsConnector::from(cert.client_config())
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    Browser::upgrade(tls, &format!("wss://localhost:{port}/{path}"))
        .await
        .0
}

/// A browser over wss logs in to the test backend, then closes cleanly.
fn wss_login(cert: &Cert, port: u16, path: &str, password: &str) {
    smol::block_on(async {
        let mut b = wss(cert, port, path).await;
        assert_eq!(b.login(password).await, "vncap test backend");
        b.ws.close(None).await.unwrap();
    });
}

#[test]
fn native_viewer_over_tls_relays_both_ways() {
    let (down, up) = (2 << 20, (1 << 20) + 5);
    let backend = bulk_backend("tls-pw", down, 21);
    let cert = Cert::new();
    let mut d = cert.daemon(&[]);
    let port = d.gwm_request_tls(backend.addr(), "tls-pw", false, true);
    let mut viewer = Viewer::handshake(cert.connect(port), &ViewerConfig::password("tls-pw"))
        .expect("login over TLS");
    assert_eq!(viewer.server_init().name, "vncap test backend");
    let report = viewer.bulk(up, 22, down).unwrap();
    close_tls(viewer.stream());
    drop(viewer);
    check_bulk(&backend, &report, down, 21);
    d.wait_log(|l| l.contains("(TLS): session ended"));
}

#[test]
fn websocket_over_tls_relays_intact_bytes() {
    let len = 2 << 20;
    let backend = bulk_backend("wss-pw", len, 31);
    let cert = Cert::new();
    let mut d = cert.daemon(&[]);
    let port = d.gwm_request_tls(backend.addr(), "wss-pw", true, true);
    smol::block_on(async {
        let mut b = wss(&cert, port, "websockify").await;
        assert_eq!(b.login("wss-pw").await, "vncap test backend");
        let body = b.take(len as usize).await;
        assert_eq!(sha256(&body), bulk_sha256(31, len));
        b.ws.close(None).await.unwrap();
    });
    d.wait_log(|l| l.contains("(TLS): session ended"));
}

#[test]
fn tls_only_console_refuses_a_plain_viewer_with_the_reason() {
    let backend = Backend::spawn(BackendConfig::with_password("only")).unwrap();
    let cert = Cert::new();
    let mut d = cert.daemon(&[]);
    let port = d.gwm_request_tls(backend.addr(), "only", false, true);
    // A native viewer on plain TCP is offered VeNCrypt (X509Vnc) alone:
    // TLS inside RFB, from vncap's certificate. This test viewer speaks
    // VNC authentication only, so it finds nothing it can use.
    let plain = TcpStream::connect(("127.0.0.1", port)).unwrap();
    plain.set_read_timeout(Some(PATIENCE)).unwrap();
    match Viewer::handshake(plain, &ViewerConfig::password("only")) {
        Err(ViewerError::Unsupported { offered }) => assert_eq!(offered, [19]),
        other => panic!("expected VeNCrypt alone, got {:?}", other.err()),
    }
    // A plain WebSocket is refused with the reason.
    assert_eq!(
        refused_over_plain_websocket(port),
        "this console is offered over TLS only"
    );
    d.wait_log(|l| l.contains("refused: this console is offered over TLS only"));
    // The refusal burnt nothing: the TLS viewer still gets in.
    let mut viewer = Viewer::handshake(cert.connect(port), &ViewerConfig::password("only"))
        .expect("login over TLS");
    let fb = viewer.fetch_framebuffer().unwrap();
    let mut direct = Viewer::handshake(
        TcpStream::connect(backend.addr()).unwrap(),
        &ViewerConfig::password("only"),
    )
    .unwrap();
    assert_eq!(fb.sha256(), direct.fetch_framebuffer().unwrap().sha256());
}

#[test]
fn gwm_request_without_tls_refuses_a_tls_viewer_with_the_reason() {
    let backend = Backend::spawn(BackendConfig::with_password("plain")).unwrap();
    let cert = Cert::new();
    let mut d = cert.daemon(&[]);
    // `ws` left out: the port sniffs, so a TLS viewer is heard (a
    // native-only console's port speaks RFB first, which no TLS client
    // can read).
    let line = format!(
        "{{\"daddr\": \"{}\", \"dport\": {}, \"password\": \"plain\", \"tls\": false}}\r\n",
        backend.addr().ip(),
        backend.addr().port()
    );
    let port: u16 = d.control_raw(line.as_bytes()).trim_end().parse().unwrap();
    match Viewer::handshake(cert.connect(port), &ViewerConfig::password("plain")) {
        Err(ViewerError::Refused { reason }) => {
            assert_eq!(reason, "this console is not offered over TLS")
        }
        other => panic!("expected a refusal, got {:?}", other.err()),
    }
    d.wait_log(|l| l.contains("refused: this console is not offered over TLS"));
}

#[test]
fn snf_vnc_wss_gets_a_port_that_works_over_wss() {
    let backend = Backend::spawn(BackendConfig::default()).unwrap();
    let cert = Cert::new();
    let d = cert.daemon(&[]);
    let req = format!(
        "{{\"source_port\": 0, \"destination_address\": \"127.0.0.1\", \"destination_port\": {}, \"type\": \"vnc-wss\"}}\n",
        backend.addr().port()
    );
    let reply = d.control_raw(req.as_bytes());
    assert!(reply.starts_with("{\"status\": \"OK\""), "{reply}");
    let port: u16 = json_field(&reply, "source_port").parse().unwrap();
    assert!((d.ports.0..=d.ports.1).contains(&port), "{reply}");
    let password = json_field(&reply, "password");
    wss_login(&cert, port, "websockify", &password);
}

#[test]
fn single_port_serves_wss_consoles_by_token_and_refuses_plain_websocket() {
    let backend = Backend::spawn(BackendConfig::default()).unwrap();
    let cert = Cert::new();
    let d = cert.daemon(&["--single-port", "0"]);
    let req = format!(
        "{{\"source_port\": 0, \"destination_address\": \"127.0.0.1\", \"destination_port\": {}, \"type\": \"vnc-wss\"}}\n",
        backend.addr().port()
    );
    let reply = d.control_raw(req.as_bytes());
    assert!(reply.starts_with("{\"status\": \"OK\""), "{reply}");
    let port: u16 = json_field(&reply, "source_port").parse().unwrap();
    let url_path = json_field(&reply, "url_path");
    assert!(url_path.starts_with("websockify?token="), "{reply}");
    let password = json_field(&reply, "password");
    // Plain WebSocket on a wss console: 403 (404 is for no console), and not
    // a use: the console still serves wss.
    let plain = format!("ws://127.0.0.1:{port}/{url_path}");
    let err = WsStream::connect(&plain, &WsOptions::default()).expect_err("TLS-only console");
    assert!(err.to_string().contains("403"), "{err}");
    wss_login(&cert, port, &url_path, &password);
}

/// `--web-root` over TLS: the page and the wss console on the single port,
/// with one certificate.
#[test]
fn single_port_serves_the_web_root_and_wss_with_one_certificate() {
    let backend = Backend::spawn(BackendConfig::default()).unwrap();
    let cert = Cert::new();
    let root = cert.dir.join("www");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("vnc.html"), "<!DOCTYPE html>").unwrap();
    let d = cert.daemon(&["--single-port", "0", "--web-root", root.to_str().unwrap()]);
    let req = format!(
        "{{\"source_port\": 0, \"destination_address\": \"127.0.0.1\", \"destination_port\": {}, \"type\": \"vnc-wss\"}}\n",
        backend.addr().port()
    );
    let reply = d.control_raw(req.as_bytes());
    let port: u16 = json_field(&reply, "source_port").parse().unwrap();
    let mut s = cert.connect(port);
    s.write_all(b"GET /vnc.html HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    // The daemon closes after the answer (with or without close_notify).
    let _ = std::io::Read::read_to_end(&mut s, &mut answer);
    let answer = String::from_utf8(answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.contains("\r\nContent-Length: 15\r\n"), "{answer}");
    assert!(answer.ends_with("\r\n\r\n<!DOCTYPE html>"), "{answer}");
    let url_path = json_field(&reply, "url_path");
    wss_login(&cert, port, &url_path, &json_field(&reply, "password"));
}

#[test]
fn inside_tls_only_websocket_or_silence_is_served() {
    let backend = Backend::spawn(BackendConfig::default()).unwrap();
    let cert = Cert::new();
    let mut d = cert.daemon(&[]);
    let port = d.gwm_request_tls(backend.addr(), "pw", false, true);
    let mut s = cert.connect(port);
    s.write_all(b"<policy-file-request/>\0").unwrap();
    let mut rest = Vec::new();
    let _ = std::io::Read::read_to_end(&mut s, &mut rest);
    assert!(rest.is_empty(), "closed without an answer: {rest:?}");
    d.wait_log(|l| l.contains("TLS: spoke first and is not a WebSocket upgrade"));
}

#[test]
fn tls_request_is_refused_without_tls_configured() {
    let backend = Backend::spawn(BackendConfig::default()).unwrap();
    let d = Daemon::start(&[]);
    let line = format!(
        "{{\"daddr\": \"127.0.0.1\", \"dport\": {}, \"password\": \"pw\", \"tls\": true}}\n",
        backend.addr().port()
    );
    let reply = d.control_raw(line.as_bytes());
    assert!(reply.starts_with("FAILED"), "{reply}");
    assert!(reply.contains("TLS"), "{reply}");
}

#[test]
fn bad_tls_files_are_a_clear_startup_error() {
    let (a, b) = (Cert::new(), Cert::new());
    let (a_cert, a_key) = (a.cert.to_str().unwrap(), a.key.to_str().unwrap());
    let b_key = b.key.to_str().unwrap();
    startup_fails(&["--cert", a_cert], "--cert and --key go together");
    startup_fails(
        &["--cert", a_cert, "--key", b_key],
        "the key does not belong to the certificate",
    );
    startup_fails(&["--cert", a_key, "--key", a_key], "--cert ");
    startup_fails(
        &["--cert", "/nonexistent/cert.pem", "--key", a_key],
        "/nonexistent/cert.pem",
    );
}

#[test]
fn bad_backend_tls_dirs_are_a_clear_startup_error() {
    let (a, b) = (Cert::new(), Cert::new());
    let dir = a.dir.join("backend-tls");
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.to_str().unwrap();
    startup_fails(
        &["--backend-tls-required"],
        "--backend-tls-required needs --backend-tls-dir",
    );
    startup_fails(
        &["--backend-tls-name", "vnc.example"],
        "--backend-tls-name needs",
    );
    startup_fails(&["--backend-tls-dir", d], "ca-cert.pem");
    std::fs::copy(&a.cert, dir.join("ca-cert.pem")).unwrap();
    startup_fails(
        &["--backend-tls-dir", d, "--backend-tls-name", "not a name!"],
        "not a TLS server name",
    );
    std::fs::copy(&a.cert, dir.join("client-cert.pem")).unwrap();
    startup_fails(
        &["--backend-tls-dir", d],
        "client-cert.pem and client-key.pem go together",
    );
    std::fs::copy(&b.key, dir.join("client-key.pem")).unwrap();
    startup_fails(
        &["--backend-tls-dir", d],
        "the key does not belong to the certificate",
    );
    // The matching key: it starts, and says so.
    std::fs::copy(&a.key, dir.join("client-key.pem")).unwrap();
    let mut daemon = Daemon::start(&["--backend-tls-dir", d, "--backend-tls-required"]);
    daemon.wait_log(|l| l.contains("with a client certificate (required)"));
}

/// Completes a TLS handshake with `port` offering `versions` and trusting
/// `trust`; returns the connection (its peer's certificates, the version).
fn handshake(
    port: u16,
    trust: &[&Cert],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> rustls::ClientConnection {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    tcp.set_read_timeout(Some(PATIENCE)).unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let mut conn = rustls::ClientConnection::new(client_config(trust, versions), name).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).expect("TLS handshake");
    }
    conn
}

/// The end-entity certificate `port` serves (any of `trust`).
fn served_cert(port: u16, trust: &[&Cert]) -> CertificateDer<'static> {
    let conn = handshake(port, trust, rustls::DEFAULT_VERSIONS);
    conn.peer_certificates().expect("a certificate")[0].clone()
}

#[test]
fn sighup_reloads_the_certificate_and_a_bad_file_keeps_the_old_one() {
    let (a, b) = (Cert::new(), Cert::new());
    let mut d = a.daemon(&["--single-port", "0"]);
    let port = d.single_port();
    assert_eq!(served_cert(port, &[&a, &b]), a.der);

    a.overwrite_with(&b);
    d.signal("HUP");
    d.wait_log(|l| {
        l.contains(&format!(
            "reloaded the TLS certificate from {}",
            a.cert.display()
        ))
    });
    assert_eq!(served_cert(port, &[&a, &b]), b.der, "new handshakes use B");

    std::fs::write(&a.cert, "not a certificate\n").unwrap();
    d.signal("HUP");
    let warning = d.wait_log(|l| l.contains("kept the old TLS certificate"));
    assert!(warning.contains(a.cert.to_str().unwrap()), "{warning}");
    assert_eq!(served_cert(port, &[&a, &b]), b.der, "B is kept");
    d.terminate();
}

#[test]
fn sighup_during_a_session_leaves_it_alone() {
    let (a, b) = (Cert::new(), Cert::new());
    let backend = Backend::spawn(BackendConfig::with_password("hup")).unwrap();
    let mut d = a.daemon(&[]);
    let port = d.gwm_request_tls(backend.addr(), "hup", false, true);
    let mut viewer =
        Viewer::handshake(a.connect(port), &ViewerConfig::password("hup")).expect("login");
    a.overwrite_with(&b);
    d.signal("HUP");
    d.wait_log(|l| l.contains("reloaded the TLS certificate"));
    let fb = viewer.fetch_framebuffer().expect("the session goes on");
    let mut direct = Viewer::handshake(
        TcpStream::connect(backend.addr()).unwrap(),
        &ViewerConfig::password("hup"),
    )
    .unwrap();
    assert_eq!(fb.sha256(), direct.fetch_framebuffer().unwrap().sha256());
}

/// Upgrades a plain TCP connection to a WebSocket at `port` and reads RFB up
/// to the server's refusal; returns its reason.
fn refused_over_plain_websocket(port: u16) -> String {
    smol::block_on(async {
        let tcp = smol::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let url = format!("ws://127.0.0.1:{port}/websockify");
        let (mut b, _) = Browser::upgrade(tcp, &url).await;
        assert_eq!(b.take(12).await, b"RFB 003.008\n");
        b.send(b"RFB 003.008\n").await;
        assert_eq!(b.take(1).await, [0], "no security types: a refusal");
        let len = u32::from_be_bytes(b.take(4).await.try_into().unwrap());
        String::from_utf8(b.take(len as usize).await).unwrap()
    })
}

#[test]
fn tls_only_console_refuses_a_plain_websocket_with_the_reason() {
    let backend = Backend::spawn(BackendConfig::with_password("wss")).unwrap();
    let cert = Cert::new();
    let mut d = cert.daemon(&[]);
    let port = d.gwm_request_tls(backend.addr(), "wss", true, true);
    assert_eq!(
        refused_over_plain_websocket(port),
        "this console is offered over TLS only"
    );
    d.wait_log(|l| l.contains("refused: this console is offered over TLS only"));
    wss_login(&cert, port, "websockify", "wss");
}

#[test]
fn require_tls_refuses_every_plain_viewer() {
    let backend = Backend::spawn(BackendConfig::with_password("req")).unwrap();
    let cert = Cert::new();
    let mut d = cert.daemon(&["--require-tls"]);
    assert!(d.logged("TLS on (required)"));
    // GWM without "tls" or "ws": a console any viewer could use, but for
    // --require-tls.
    let line = format!(
        "{{\"daddr\": \"127.0.0.1\", \"dport\": {}, \"password\": \"req\"}}\n",
        backend.addr().port()
    );
    let port: u16 = d.control_raw(line.as_bytes()).trim().parse().unwrap();

    // A native viewer on plain TCP is offered VeNCrypt alone.
    let plain = TcpStream::connect(("127.0.0.1", port)).unwrap();
    plain.set_read_timeout(Some(PATIENCE)).unwrap();
    match Viewer::handshake(plain, &ViewerConfig::password("req")) {
        Err(ViewerError::Unsupported { offered }) => assert_eq!(offered, [19]),
        other => panic!("expected VeNCrypt alone, got {:?}", other.err()),
    }
    assert_eq!(
        refused_over_plain_websocket(port),
        "this console is offered over TLS only"
    );
    d.wait_log(|l| l.contains("refused: this console is offered over TLS only"));

    let viewer = Viewer::handshake(cert.connect(port), &ViewerConfig::password("req"))
        .expect("login over TLS");
    assert_eq!(viewer.server_init().name, "vncap test backend");
}

#[test]
fn require_tls_and_control_tls_need_a_certificate() {
    startup_fails(&["--require-tls"], "--require-tls needs --cert and --key");
    startup_fails(&["--control-tls"], "--control-tls needs --cert and --key");
    let cert = Cert::new();
    let dir = cert.dir.join("control.sock");
    let control = format!("unix:{}", dir.display());
    let (c, k) = (cert.cert.to_str().unwrap(), cert.key.to_str().unwrap());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vncap"))
        .args(["serve", "--listen", "127.0.0.1", "--control", &control])
        .args(["--cert", c, "--key", k, "--control-tls"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--control-tls is for a HOST:PORT control channel"),
        "{err}"
    );
}

/// One control request over TLS; the whole reply.
fn control_tls(d: &Daemon, cert: &Cert, request: &[u8]) -> String {
    let tcp = TcpStream::connect(d.control).expect("connect control");
    tcp.set_read_timeout(Some(PATIENCE)).unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(cert.client_config(), name).unwrap();
    let mut s = rustls::StreamOwned::new(conn, tcp);
    s.write_all(request).unwrap();
    let mut reply = String::new();
    std::io::Read::read_to_string(&mut s, &mut reply).expect("a clean TLS close");
    reply
}

#[test]
fn control_channel_over_tls() {
    let backend = Backend::spawn(BackendConfig::with_password("ctl")).unwrap();
    let cert = Cert::new();
    let mut d = cert.daemon(&["--control-tls"]);
    assert!(d.logged("control over TLS"));
    let line = gwm_line(backend.addr(), "ctl", false, false);
    let port: u16 = control_tls(&d, &cert, line.as_bytes())
        .trim_end()
        .parse()
        .expect("a port");
    let plain = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let viewer = Viewer::handshake(plain, &ViewerConfig::password("ctl")).expect("login");
    assert_eq!(viewer.server_init().name, "vncap test backend");

    // A plaintext client is closed without an answer.
    let mut plain = TcpStream::connect(d.control).unwrap();
    plain.set_read_timeout(Some(PATIENCE)).unwrap();
    plain.write_all(line.as_bytes()).unwrap();
    let mut reply = Vec::new();
    let _ = std::io::Read::read_to_end(&mut plain, &mut reply);
    let text = String::from_utf8_lossy(&reply);
    assert!(
        !text.contains("FAILED") && text.trim().parse::<u16>().is_err() && !text.contains('{'),
        "no control reply: {reply:?}"
    );
    d.wait_log(|l| l.contains("control ") && l.contains("TLS handshake"));

    // The daemon goes on; `vncap request --control-tls` speaks it too.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vncap"))
        .args([
            "request",
            "--control",
            &d.control.to_string(),
            "--control-tls",
        ])
        .args(["--ca", cert.cert.to_str().unwrap()])
        .args(["--daddr", "127.0.0.1", "--dport"])
        .arg(backend.addr().port().to_string())
        .args(["--password", "ctl"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let port: u16 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("port "))
        .expect("a port line")
        .parse()
        .unwrap();
    let plain = TcpStream::connect(("127.0.0.1", port)).unwrap();
    Viewer::handshake(plain, &ViewerConfig::password("ctl")).expect("login");

    // Without --ca it says what is missing.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vncap"))
        .args([
            "request",
            "--control",
            &d.control.to_string(),
            "--control-tls",
        ])
        .args(["--daddr", "127.0.0.1", "--dport", "1", "--password", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--control-tls needs --ca"));
}

#[test]
fn a_stalled_tls_handshake_is_cut_at_the_handshake_deadline() {
    let cert = Cert::new();
    let mut d = cert.daemon(&["--single-port", "0", "--handshake-timeout", "1"]);
    let port = d.single_port();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    // The first bytes of a ClientHello record (length 0x200), then nothing.
    s.write_all(&[
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ])
    .unwrap();
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    let end = std::io::Read::read_to_end(&mut s, &mut rest);
    assert!(
        !matches!(&end, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)),
        "closed by the daemon, not by our read timeout: {end:?}"
    );
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(500),
        "not before the deadline"
    );
    d.wait_log(|l| l.contains("handshake timed out after 1s"));
}

#[test]
fn tls_1_2_and_1_3_are_served_and_1_1_is_refused() {
    let cert = Cert::new();
    let mut d = cert.daemon(&["--single-port", "0"]);
    let port = d.single_port();
    for v in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let conn = handshake(port, &[&cert], &[v]);
        assert_eq!(conn.protocol_version(), Some(v.version));
    }
    // A ClientHello whose highest version is TLS 1.1 (no supported_versions
    // extension; signature_algorithms so that choosing the certificate is
    // not what fails) gets a fatal protocol_version alert.
    let mut hello = vec![0x01, 0x00, 0x00, 0x00, 0x03, 0x02];
    hello.extend_from_slice(&[7; 32]); // random
    hello.extend_from_slice(&[0x00]); // no session id
    hello.extend_from_slice(&[0x00, 0x04, 0xc0, 0x13, 0x00, 0x2f]); // ECDHE-RSA/RSA AES128-SHA
    hello.extend_from_slice(&[0x01, 0x00]); // null compression
    hello.extend_from_slice(&[0x00, 0x0c, 0x00, 0x0d, 0x00, 0x08, 0x00, 0x06]); // signature_algorithms:
    hello.extend_from_slice(&[0x04, 0x03, 0x08, 0x04, 0x04, 0x01]); // ECDSA-P256, PSS, PKCS#1 (SHA-256)
    let body = (hello.len() - 4) as u16;
    hello[2..4].copy_from_slice(&body.to_be_bytes());
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&(hello.len() as u16).to_be_bytes());
    record.extend_from_slice(&hello);
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.write_all(&record).unwrap();
    let mut answer = Vec::new();
    let _ = std::io::Read::read_to_end(&mut s, &mut answer);
    assert_eq!(answer.first(), Some(&0x15), "an alert record: {answer:?}");
    assert_eq!(
        answer.get(5..7),
        Some(&[2, 70][..]),
        "fatal protocol_version: {answer:?}"
    );
    d.wait_log(|l| l.contains("TLS handshake") && l.contains("single port"));
}

/// Counts the TLS 1.3 session tickets a client is given (and keeps none).
#[derive(Debug, Default)]
struct TicketCount(AtomicU32);

impl rustls::client::ClientSessionStore for TicketCount {
    fn set_kx_hint(&self, _: ServerName<'static>, _: rustls::NamedGroup) {}
    fn kx_hint(&self, _: &ServerName<'_>) -> Option<rustls::NamedGroup> {
        None
    }
    fn set_tls12_session(
        &self,
        _: ServerName<'static>,
        _: rustls::client::Tls12ClientSessionValue,
    ) {
    }
    fn tls12_session(&self, _: &ServerName<'_>) -> Option<rustls::client::Tls12ClientSessionValue> {
        None
    }
    fn remove_tls12_session(&self, _: &ServerName<'static>) {}
    fn insert_tls13_ticket(
        &self,
        _: ServerName<'static>,
        _: rustls::client::Tls13ClientSessionValue,
    ) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    fn take_tls13_ticket(
        &self,
        _: &ServerName<'static>,
    ) -> Option<rustls::client::Tls13ClientSessionValue> {
        None
    }
}

// TigerVNC's viewer 1.12 stalls after the VeNCrypt handshake when
// NewSessionTicket records come with the VNC challenge; a one-time port has
// nothing to resume anyway.
#[test]
fn tls_1_3_sends_no_session_tickets() {
    let backend = Backend::spawn(BackendConfig::with_password("nst-pw")).unwrap();
    let cert = Cert::new();
    let mut d = cert.daemon(&[]);
    let port = d.gwm_request_tls(backend.addr(), "nst-pw", false, true);
    let tickets = Arc::new(TicketCount::default());
    let mut config = (*client_config(&[&cert], &[&rustls::version::TLS13])).clone();
    config.resumption = rustls::client::Resumption::store(tickets.clone());
    let mut s = cert.connect_with(port, Arc::new(config));
    // The server's ProtocolVersion comes after any ticket it would send.
    let mut version = [0u8; 12];
    std::io::Read::read_exact(&mut s, &mut version).expect("ProtocolVersion over TLS");
    assert_eq!(&version, b"RFB 003.008\n");
    assert_eq!(
        s.conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    assert_eq!(
        tickets.0.load(Ordering::Relaxed),
        0,
        "session tickets were sent"
    );
    close_tls(&mut s);
    drop(s);
    d.wait_log(|l| l.contains("(TLS): closed before authenticating"));
}
