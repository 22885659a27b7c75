//! End to end, TLS on entry points (`--cert`, `--key`): a
//! self-signed certificate made at test time, the real `vncap` binary, and
//! independent TLS clients (a blocking `rustls` client under the test viewer
//! for native RFB over TLS; `futures-rustls` under `async-tungstenite` for
//! wss), checked against the test backend's report. Also: the core's
//! transport rule told the truth about TLS, and clear startup errors.

#![cfg(feature = "tls")]

mod support;

use rustls::pki_types::{CertificateDer, ServerName};
use std::io::Write;
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use support::browser::Browser;
use support::{bulk_backend, check_bulk, json_field, startup_fails, Daemon, PATIENCE};
use vncap_tests::backend::{Backend, BackendConfig};
use vncap_tests::peer::{bulk_sha256, sha256};
use vncap_tests::viewer::{Viewer, ViewerConfig, ViewerError};

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
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
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
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }

    /// A blocking TLS connection to an entry port (native RFB inside).
    fn connect(&self, port: u16) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
        let tcp = TcpStream::connect(("127.0.0.1", port)).expect("connect entry port");
        tcp.set_read_timeout(Some(PATIENCE)).unwrap();
        tcp.set_write_timeout(Some(PATIENCE)).unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let conn = rustls::ClientConnection::new(self.client_config(), name).unwrap();
        rustls::StreamOwned::new(conn, tcp)
    }
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
    let plain = TcpStream::connect(("127.0.0.1", port)).unwrap();
    plain.set_read_timeout(Some(PATIENCE)).unwrap();
    match Viewer::handshake(plain, &ViewerConfig::password("only")) {
        Err(ViewerError::Refused { reason }) => {
            assert_eq!(reason, "this console is offered over TLS only")
        }
        other => panic!("expected a refusal, got {:?}", other.err()),
    }
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
    let port = d.gwm_request_tls(backend.addr(), "plain", false, false);
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
    smol::block_on(async {
        let mut b = wss(&cert, port, "websockify").await;
        assert_eq!(b.login(&password).await, "vncap test backend");
        b.ws.close(None).await.unwrap();
    });
}

#[test]
fn single_port_serves_wss_consoles_by_token() {
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
    smol::block_on(async {
        let mut b = wss(&cert, port, &url_path).await;
        assert_eq!(b.login(&password).await, "vncap test backend");
        b.ws.close(None).await.unwrap();
    });
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
