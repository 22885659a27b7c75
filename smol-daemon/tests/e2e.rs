//! End to end through the real `vncap` binary on loopback: control request →
//! entry port → viewer authentication → backend login → relay, with the
//! independent test peers of `vncap-tests` (a tungstenite WebSocket viewer, a
//! plain TCP viewer, an RFB test backend), and every refusal a user can meet.

mod support;

use std::net::TcpStream;
use std::time::Duration;
use support::{bulk_backend, check_bulk, json_field, port_closed, tcp, ws, Daemon};
use vncap_tests::backend::{Backend, BackendConfig, Security};
use vncap_tests::viewer::{Viewer, ViewerConfig, ViewerError, WsOptions, WsStream};

/// GWM's password length: 12 characters, of which VNC uses 8.
const GWM_PASSWORD: &str = "Ab3dE6gHk9Lm";

#[test]
fn gwm_websocket_console_relays_megabytes_both_ways() {
    let (down, up) = (3 << 20, (2 << 20) + 17);
    let backend = bulk_backend(GWM_PASSWORD, down, 7);
    let mut d = Daemon::start(&[]);
    let port = d.gwm_request(backend.addr(), GWM_PASSWORD, true);
    assert!((d.ports.0..=d.ports.1).contains(&port));

    let mut viewer = Viewer::handshake(ws(port), &ViewerConfig::password(GWM_PASSWORD))
        .expect("login through vncap");
    assert_eq!(viewer.server_init().name, "vncap test backend");
    let report = viewer.bulk(up, 9, down).unwrap();
    viewer.stream().close().ok();
    drop(viewer);
    check_bulk(&backend, &report, down, 7);
    d.wait_log(|l| l.contains("session ended"));
    d.wait_log(|l| l.contains(&format!("entry port {port} closed")));
    assert!(port_closed(port), "a used ticket's port is closed");
    assert!(
        !d.logged(&GWM_PASSWORD[..8]),
        "no password in the log (CVE-2015-9543)"
    );
}

#[test]
fn native_viewer_console_relays_both_ways() {
    let (down, up) = (1 << 20, 3 << 19);
    let backend = bulk_backend("secret12", down, 3);
    let d = Daemon::start(&[]);
    let port = d.gwm_request(backend.addr(), "secret12", false);
    let mut viewer =
        Viewer::handshake(tcp(port), &ViewerConfig::password("secret12")).expect("login");
    let report = viewer.bulk(up, 4, down).unwrap();
    drop(viewer);
    check_bulk(&backend, &report, down, 3);
}

#[test]
fn framebuffer_arrives_intact_through_websocket() {
    let backend = Backend::spawn(BackendConfig::with_password("pw")).unwrap();
    let d = Daemon::start(&[]);
    let port = d.gwm_request(backend.addr(), "pw", true);
    let mut viewer = Viewer::handshake(ws(port), &ViewerConfig::password("pw")).unwrap();
    let fb = viewer.fetch_framebuffer().unwrap();
    let mut direct = Viewer::handshake(
        TcpStream::connect(backend.addr()).unwrap(),
        &ViewerConfig::password("pw"),
    )
    .unwrap();
    assert_eq!(fb.sha256(), direct.fetch_framebuffer().unwrap().sha256());
}

#[test]
fn snf_request_with_generated_password() {
    let backend = Backend::spawn(BackendConfig::default()).unwrap();
    let d = Daemon::start(&["--public-address", "console.example.org"]);
    let req = format!(
        "{{\"source_port\": 0, \"destination_address\": \"127.0.0.1\", \"destination_port\": {}, \"type\": \"vnc\"}}\n",
        backend.addr().port()
    );
    let reply = d.control_raw(req.as_bytes());
    assert!(reply.starts_with("{\"status\": \"OK\""), "{reply}");
    assert!(
        reply.contains("\"proxy_address\": \"console.example.org\""),
        "{reply}"
    );
    let field = |name: &str| json_field(&reply, name);
    let port: u16 = field("source_port").parse().unwrap();
    let password = field("password");
    assert_eq!(password.len(), 8);
    assert!(password.bytes().all(|b| b.is_ascii_alphanumeric()));
    let viewer = Viewer::handshake(tcp(port), &ViewerConfig::password(&password)).unwrap();
    assert_eq!(viewer.server_init().width, 640);
    assert!(!d.logged(&password), "no generated password in the log");
}

#[test]
fn wrong_password_is_told_and_burns_the_ticket_with_one_failing_source() {
    let backend = Backend::spawn(BackendConfig::default()).unwrap();
    // twisted-vncauthproxy's rule (the default lets 3 sources fail:
    // backend_access.rs).
    let mut d = Daemon::start(&["--ticket-failing-sources", "1"]);
    let port = d.gwm_request(backend.addr(), "right-pw", false);
    match Viewer::handshake(tcp(port), &ViewerConfig::password("wrong-pw")) {
        Err(ViewerError::SecurityFailed { result: 1, reason }) => {
            assert_eq!(reason.as_deref(), Some("Authentication failure"))
        }
        other => panic!("expected SecurityResult failed, got {other:?}"),
    }
    d.wait_log(|l| l.contains(&format!("ticket on port {port} closed")));
    d.wait_log(|l| l.contains(&format!("entry port {port} closed")));
    assert!(port_closed(port), "one attempt: the ticket is gone");
    assert_eq!(backend.connections(), 0, "the backend was never contacted");
}

#[test]
fn a_ticket_serves_one_viewer_only() {
    let backend = Backend::spawn(BackendConfig::default()).unwrap();
    let mut d = Daemon::start(&[]);
    let port = d.gwm_request(backend.addr(), "pw", false);
    let _first = Viewer::handshake(tcp(port), &ViewerConfig::password("pw")).unwrap();
    d.wait_log(|l| l.contains(&format!("entry port {port} closed")));
    assert!(
        port_closed(port),
        "the entry port closes once the ticket is taken"
    );
}

#[test]
fn expired_ticket_closes_its_port() {
    let backend = Backend::spawn(BackendConfig::default()).unwrap();
    let mut d = Daemon::start(&[]);
    let req = format!(
        "{{\"daddr\": \"127.0.0.1\", \"dport\": {}, \"password\": \"pw\", \"timeout\": 1}}\n",
        backend.addr().port()
    );
    let port: u16 = d.control_raw(req.as_bytes()).trim().parse().unwrap();
    d.wait_log(|l| l.contains(&format!("ticket on port {port} expired")));
    d.wait_log(|l| l.contains(&format!("entry port {port} closed")));
    assert!(port_closed(port));
}

#[test]
fn viewer_choosing_security_none_is_refused_cve_2022_36436() {
    let backend = Backend::spawn(BackendConfig::default()).unwrap();
    let d = Daemon::start(&[]);
    let port = d.gwm_request(backend.addr(), "pw", false);
    match Viewer::handshake(tcp(port), &ViewerConfig::none()) {
        Err(ViewerError::SecurityFailed { result: 1, .. })
        | Err(ViewerError::Unsupported { .. }) => {}
        other => panic!("None must be refused, got {other:?}"),
    }
    assert_eq!(backend.connections(), 0);
}

#[test]
fn unreachable_backend_is_reported_to_the_viewer() {
    // A port nobody listens on: bind, learn it, close.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let d = Daemon::start(&["--connect-retries", "0", "--connect-timeout", "2"]);
    let port = d.gwm_request(dead, "pw", false);
    match Viewer::handshake(tcp(port), &ViewerConfig::password("pw")) {
        Err(ViewerError::SecurityFailed {
            result: 1,
            reason: Some(r),
        }) => {
            assert!(r.starts_with("backend unreachable"), "{r}")
        }
        other => panic!("expected the backend's absence to be told, got {other:?}"),
    }
}

#[test]
fn backend_refusing_login_is_reported_to_the_viewer() {
    let backend = Backend::spawn(BackendConfig {
        security: Security::RejectAuth {
            reason: "cluster password mismatch".into(),
        },
        ..BackendConfig::default()
    })
    .unwrap();
    let d = Daemon::start(&[]);
    let port = d.gwm_request(backend.addr(), "pw", false);
    match Viewer::handshake(tcp(port), &ViewerConfig::password("pw")) {
        Err(ViewerError::SecurityFailed {
            result: 1,
            reason: Some(r),
        }) => {
            assert!(r.contains("backend refused the password"), "{r}");
            assert!(r.contains("cluster password mismatch"), "{r}");
        }
        other => panic!("expected the backend's refusal to be told, got {other:?}"),
    }
}

#[test]
fn malformed_control_requests_get_a_specific_failure() {
    let d = Daemon::start(&[]);
    for (request, reason) in [
        (&b"not json\n"[..], "JSON"),
        (b"{\"daddr\": \"h\", \"dport\": 5900}\n", "password"),
        (
            b"{\"daddr\": \"h\", \"dport\": 70000, \"password\": \"p\"}\n",
            "port",
        ),
        (
            b"{\"daddr\": \"h\", \"dport\": 1, \"password\": \"\"}\n",
            "password",
        ),
        (
            b"{\"daddr\": \"h\", \"destination_port\": 1, \"password\": \"p\"}\n",
            "mixes",
        ),
        (b"\n", ""),
    ] {
        let reply = d.control_raw(request);
        assert!(reply.starts_with("FAILED"), "{request:?} → {reply:?}");
        assert!(
            reply.to_lowercase().contains(&reason.to_lowercase()),
            "{request:?} → {reply:?}"
        );
        assert!(reply.ends_with('\n'));
    }
    let long = vec![b'x'; 10_000];
    assert!(d.control_raw(&long).starts_with("FAILED"));
}

#[test]
fn pinned_client_ip_refuses_other_addresses() {
    let backend = Backend::spawn(BackendConfig::default()).unwrap();
    let mut d = Daemon::start(&[]);
    let req = format!(
        "{{\"daddr\": \"127.0.0.1\", \"dport\": {}, \"password\": \"pw\", \"client\": {{\"ip\": \"127.0.0.2\"}}}}\n",
        backend.addr().port()
    );
    let port: u16 = d.control_raw(req.as_bytes()).trim().parse().unwrap();
    let err =
        Viewer::handshake(tcp(port), &ViewerConfig::password("pw")).expect_err("wrong address");
    assert!(!matches!(
        err,
        ViewerError::SecurityFailed { result: 0, .. }
    ));
    d.wait_log(|l| l.contains("client.ip"));
    assert_eq!(backend.connections(), 0);
}

#[test]
fn sigterm_stops_the_daemon_cleanly() {
    let dir = std::env::temp_dir().join(format!("vncap-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pidfile = dir.join("vncap.pid");
    let pid_arg = pidfile.to_str().unwrap().to_string();
    let backend = Backend::spawn(BackendConfig::default()).unwrap();
    let d = Daemon::start(&["--pidfile", &pid_arg]);
    let pid: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(pid > 0);
    let port = d.gwm_request(backend.addr(), "pw", false);
    let control = d.control;
    let status = d.terminate();
    assert!(status.success(), "exit status {status:?}");
    assert!(port_closed(port), "entry listener closed at shutdown");
    assert!(TcpStream::connect_timeout(&control, Duration::from_secs(1)).is_err());
    assert!(!pidfile.exists(), "pidfile removed");
}

/// The README's quick-start command, run as written but with the control
/// channel on a free port (the README's own daemon may hold 127.0.0.1:8888
/// while this runs); its embedded defaults are checked in `--help` instead
/// of by binding them.
#[test]
fn readme_quick_start_command_starts_and_stops() {
    let readme = include_str!("../../README.md");
    let line = readme
        .lines()
        .find(|l| l.starts_with("cargo run") && l.contains(" serve"))
        .expect("a `cargo run ... serve` line in README.md");
    let command = line.split('#').next().unwrap();
    let mut args: Vec<&str> = command
        .split(" -- ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .collect();
    assert!(
        !args.contains(&"--control"),
        "the quick start uses the defaults"
    );
    args.extend(["--control", "127.0.0.1:0"]);
    let mut d = Daemon::spawn(&args, (7000, 8000));
    d.wait_log(|l| l.contains("entry ports 7000-8000"));
    assert!(d.terminate().success());
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_vncap"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(help.contains("(default 127.0.0.1:8888)"), "{help}");
    assert!(help.contains("(default 7000-8000)"), "{help}");
}

/// `vncap request`, the operator's command, against a running daemon: with a
/// generated password (dialect 2) and with a given one (dialect 1).
#[test]
fn vncap_request_prints_port_and_password() {
    let backend = Backend::spawn(BackendConfig::default()).unwrap();
    let d = Daemon::start(&[]);
    let control = d.control.to_string();
    let dport = backend.addr().port().to_string();
    let run = |extra: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_vncap"))
            .args([
                "request",
                "--control",
                &control,
                "--daddr",
                "127.0.0.1",
                "--dport",
                &dport,
            ])
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let value = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
                .unwrap_or_else(|| panic!("no {key} in {text:?}"))
        };
        (value("port ").parse::<u16>().unwrap(), value("password "))
    };
    let (port, password) = run(&["--ws"]);
    assert_eq!(password.len(), 8);
    let viewer = Viewer::handshake(ws(port), &ViewerConfig::password(&password)).unwrap();
    assert_eq!(viewer.server_init().width, 640);
    let (port, password) = run(&["--password", "given-pw"]);
    assert_eq!(password, "given-pw");
    let viewer = Viewer::handshake(tcp(port), &ViewerConfig::password("given-pw")).unwrap();
    assert_eq!(viewer.server_init().height, 480);

    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_vncap"))
        .args([
            "request",
            "--control",
            &control,
            "--daddr",
            "",
            "--dport",
            "5900",
            "--password",
            "x",
        ])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("refused"));
}

#[test]
fn a_backend_that_never_speaks_rfb_is_reported_not_waited_for() {
    // Accepts connections (the kernel's backlog does) and never says a word.
    let mute = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let d = Daemon::start(&["--handshake-timeout", "1"]);
    let port = d.gwm_request(mute.local_addr().unwrap(), "pw", false);
    match Viewer::handshake(tcp(port), &ViewerConfig::password("pw")) {
        Err(ViewerError::SecurityFailed {
            result: 1,
            reason: Some(r),
        }) => {
            // The same words as a closed port (no scan oracle).
            assert_eq!(r, "backend unreachable")
        }
        other => panic!("expected the silent backend to be reported, got {other:?}"),
    }
}

#[test]
fn a_console_that_requires_tls_is_refused_until_tls_is_configured() {
    let d = Daemon::start(&[]);
    let reply = d.control_raw(
        b"{\"daddr\": \"127.0.0.1\", \"dport\": 5900, \"password\": \"pw\", \"tls\": true}\n",
    );
    assert_eq!(
        reply,
        "FAILED TLS requested, but this proxy has no TLS configured\n"
    );
}

/// Single-port mode: one listener for every WebSocket console, the ticket
/// named by the token in the URL (noVNC's `path=websockify?token=…`).
#[test]
fn single_port_serves_websocket_consoles_by_token() {
    let backend = Backend::spawn(BackendConfig::default()).unwrap();
    let mut d = Daemon::start(&["--single-port", "0"]);
    let ready = d.wait_log(|l| l.contains("single port "));
    let single: u16 = ready.rsplit(' ').next().unwrap().parse().unwrap();
    let req = format!(
        "{{\"destination_address\": \"127.0.0.1\", \"destination_port\": {}, \"type\": \"vnc-ws\"}}\n",
        backend.addr().port()
    );
    let reply = d.control_raw(req.as_bytes());
    let field = |name: &str| json_field(&reply, name);
    assert_eq!(field("source_port"), single.to_string());
    let url_path = field("url_path");
    let token = field("token");
    assert_eq!(url_path, format!("websockify?token={token}"));
    let password = field("password");

    let url = format!("ws://127.0.0.1:{single}/{url_path}");
    let unknown = format!(
        "ws://127.0.0.1:{single}/websockify?token={}",
        "0".repeat(32)
    );
    let err = WsStream::connect(&unknown, &WsOptions::default()).expect_err("unknown token");
    assert!(err.to_string().contains("404"), "{err}");
    let native = Viewer::handshake(tcp(single), &ViewerConfig::password(&password))
        .expect_err("native viewer");
    assert!(matches!(native, ViewerError::Refused { .. }), "{native:?}");

    let viewer = Viewer::handshake(
        WsStream::connect(&url, &WsOptions::default()).unwrap(),
        &ViewerConfig::password(&password),
    )
    .expect("login by token");
    assert_eq!(viewer.server_init().width, 640);
    let again =
        WsStream::connect(&url, &WsOptions::default()).expect_err("a token is for one viewer");
    assert!(again.to_string().contains("404"), "{again}");
    assert!(!d.logged(&token), "no token in the log");

    // GWM's dialect has no token in its reply: it still gets a pool port.
    let port = d.gwm_request(backend.addr(), "pw", true);
    assert!((d.ports.0..=d.ports.1).contains(&port));
}

#[test]
fn running_sessions_hold_no_ticket() {
    // `--max-tickets` bounds consoles nobody has used yet; a session in
    // progress holds its sockets, not a place in the ticket table.
    let backend = Backend::spawn(BackendConfig::with_password("pw")).unwrap();
    let d = Daemon::start(&["--max-tickets", "1"]);
    let mut sessions = Vec::new();
    for _ in 0..3 {
        let port = d.gwm_request(backend.addr(), "pw", false);
        let viewer = Viewer::handshake(tcp(port), &ViewerConfig::password("pw")).unwrap();
        assert_eq!(viewer.server_init().width, 640);
        sessions.push(viewer);
    }
    assert_eq!(backend.connections(), 3);
}

#[test]
fn a_viewer_gone_mid_stream_is_named_as_the_one_that_ended_it() {
    // The backend streams; the viewer hangs up without reading (a reset,
    // seen by a read or a write first): the log names the viewer, on both
    // relays (spliced native RFB, WebSocket).
    let backend = bulk_backend("pw", 1 << 30, 7);
    let mut d = Daemon::start(&[]);
    let native = d.gwm_request(backend.addr(), "pw", false);
    let viewer = Viewer::handshake(tcp(native), &ViewerConfig::password("pw")).unwrap();
    drop(viewer.into_inner());
    d.wait_log(|l| l.contains(&format!("on port {native}: session ended by the viewer")));
    let port = d.gwm_request(backend.addr(), "pw", true);
    let viewer = Viewer::handshake(ws(port), &ViewerConfig::password("pw")).unwrap();
    drop(viewer.into_inner());
    d.wait_log(|l| l.contains(&format!("on port {port}: session ended by the viewer")));
}
