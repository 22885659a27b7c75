//! Operating vncap (issue 13) through the real `vncap` binary: dead peers
//! (`--ping-interval`/`--ping-timeout` close a silent WebSocket viewer,
//! `--tcp-keepalive` is on both legs' sockets), caps (`--idle-timeout`,
//! `--max-session-secs`), live sessions over the control channel (`list`,
//! `kill` by id and by backend, `stats`, `vncap sessions`), `/metrics` read
//! by Prometheus's own parser, the SIGTERM drain and the SIGINT cut,
//! SIGHUP re-reading `--backend-password-file`, and the end-of-session log
//! line. Real time only where the daemon's clock is what is tested, with
//! 1-second settings.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use support::{json_field, port_closed, tcp, vncap, ws, Daemon, PATIENCE};
use vncap_tests::backend::{Backend, BackendConfig, BackendHandle, Mode};
use vncap_tests::tungstenite::Message;
use vncap_tests::viewer::{Viewer, ViewerConfig, WsStream};

/// A quiet backend (it answers only update requests), no VNC password.
fn quiet_backend() -> BackendHandle {
    Backend::spawn(BackendConfig::default()).unwrap()
}

/// A backend that echoes every byte after ServerInit.
fn echo_backend() -> BackendHandle {
    Backend::spawn(BackendConfig {
        mode: Mode::Echo,
        ..BackendConfig::default()
    })
    .unwrap()
}

fn native(d: &Daemon, backend: SocketAddr) -> Viewer<TcpStream> {
    let port = d.gwm_request(backend, "pw-native", false);
    Viewer::handshake(tcp(port), &ViewerConfig::password("pw-native")).expect("native login")
}

fn websocket(d: &Daemon, backend: SocketAddr) -> Viewer<WsStream> {
    let port = d.gwm_request(backend, "pw-websocket", true);
    Viewer::handshake(ws(port), &ViewerConfig::password("pw-websocket")).expect("ws login")
}

/// Reads frames until the server's close; its code and reason. Whether a
/// ping came first.
fn close_frame(v: Viewer<WsStream>) -> (u16, String, bool) {
    let mut s = v.into_inner();
    let mut pinged = false;
    loop {
        match s.websocket().read() {
            Ok(Message::Close(Some(f))) => return (f.code.into(), f.reason.to_string(), pinged),
            Ok(Message::Close(None)) => return (0, String::new(), pinged),
            Ok(Message::Ping(_)) => pinged = true,
            Ok(_) => {}
            Err(e) => panic!("no close frame: {e}"),
        }
    }
}

/// Whether the viewer's stream ends (EOF or reset) rather than times out.
fn ends(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) => return e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }
}

/// One round trip through an echo backend.
fn echoes(v: &mut Viewer<TcpStream>, msg: &[u8]) -> bool {
    if v.send_raw(msg).is_err() {
        return false;
    }
    let mut got = vec![0u8; msg.len()];
    v.stream().read_exact(&mut got).is_ok() && got == msg
}

#[test]
fn ping_timeout_closes_a_silent_websocket_viewer() {
    let backend = quiet_backend();
    let mut d = Daemon::start(&["--ping-interval", "1", "--ping-timeout", "1"]);
    // This viewer never reads, so its WebSocket never answers the ping.
    let v = websocket(&d, backend.addr());
    let line = d.wait_log(|l| l.contains("session ended by the proxy"));
    assert!(line.contains("(viewer stopped answering)"), "{line}");
    let (code, reason, pinged) = close_frame(v);
    assert!(pinged, "a ping came before the close");
    assert_eq!((code, reason.as_str()), (1011, "viewer stopped answering"));
}

#[test]
fn a_viewer_answering_pings_keeps_its_session() {
    let backend = echo_backend();
    let mut d = Daemon::start(&["--ping-interval", "1", "--ping-timeout", "1"]);
    let mut v = websocket(&d, backend.addr());
    // Reading answers pings (tungstenite pongs as it reads): three
    // intervals, each ping answered, the session alive after each.
    for round in 0..3u8 {
        let s = v.stream();
        loop {
            match s.websocket().read() {
                Ok(Message::Ping(_)) => break,
                Ok(_) => {}
                Err(e) => panic!("round {round}: {e}"),
            }
        }
        s.websocket().flush().unwrap();
        s.write_all(&[round; 3]).unwrap();
        let mut got = [0u8; 3];
        s.read_exact(&mut got).unwrap();
        assert_eq!(got, [round; 3]);
    }
    assert!(!d.logged("session ended"));
    drop(v);
    d.wait_log(|l| l.contains("session ended by the viewer"));
}

#[test]
fn idle_timeout_ends_a_quiet_session_and_logs_it_in_one_line() {
    let backend = quiet_backend();
    let mut d = Daemon::start(&["--idle-timeout", "1"]);
    let mut v = native(&d, backend.addr());
    let local = v.stream().local_addr().unwrap();
    let line = d.wait_log(|l| l.contains("session ended"));
    assert!(ends(v.stream()), "the viewer's leg is closed");
    // One line: viewer, door, backend, transport, duration, bytes, who, why.
    assert!(line.contains(&format!("{local} on port ")), "{line}");
    assert!(
        line.contains(": session ended by the proxy (idle timeout); id "),
        "{line}"
    );
    assert!(
        line.contains(&format!("backend {}, vnc, ", backend.addr())),
        "{line}"
    );
    assert!(line.contains(" bytes to the viewer, "), "{line}");
    assert!(line.ends_with(" bytes to the backend"), "{line}");
    let secs: f64 = line
        .split(", ")
        .find_map(|p| p.strip_suffix('s').and_then(|n| n.parse().ok()))
        .expect("a duration");
    assert!((1.0..5.0).contains(&secs), "{line}");
    // Outside the journal: a UTC timestamp, then vncap[PID], then the level.
    let stamp = line.split(' ').next().unwrap();
    assert!(
        stamp.len() == 24 && stamp.ends_with('Z') && &stamp[10..11] == "T",
        "{line}"
    );
    assert!(
        line.contains(&format!(" vncap[{}] INFO ", d.pid())),
        "{line}"
    );
    assert!(!line.contains("::ffff:"), "{line}");
}

#[test]
fn max_session_secs_caps_a_busy_session() {
    let backend = echo_backend();
    let mut d = Daemon::start(&["--max-session-secs", "1"]);
    let mut v = native(&d, backend.addr());
    // Busy: bytes keep flowing until the cap ends it.
    let mut n = 0u32;
    while echoes(&mut v, &n.to_be_bytes()) {
        n += 1;
        assert!(n < 1_000_000, "the cap never came");
    }
    let line = d.wait_log(|l| l.contains("session ended"));
    assert!(
        line.contains("session ended by the proxy (session time limit reached)"),
        "{line}"
    );
}

/// The daemon's socket whose peer is `peer`, duplicated into this process
/// (pidfd_getfd: the daemon is this process's child).
fn daemon_socket(pid: u32, peer: SocketAddr) -> std::os::fd::OwnedFd {
    use rustix::process::{pidfd_getfd, pidfd_open, Pid, PidfdFlags, PidfdGetfdFlags};
    let pidfd = pidfd_open(Pid::from_raw(pid as i32).unwrap(), PidfdFlags::empty()).unwrap();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap() {
        let Ok(n) = entry.unwrap().file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(fd) = pidfd_getfd(&pidfd, n, PidfdGetfdFlags::empty()) else {
            continue;
        };
        let theirs = rustix::net::getpeername(&fd).ok().flatten().and_then(|a| {
            let a: SocketAddr = a.try_into().ok()?;
            Some(SocketAddr::new(a.ip().to_canonical(), a.port()))
        });
        if theirs == Some(peer) {
            return fd;
        }
    }
    panic!("no daemon socket with peer {peer}");
}

#[test]
fn tcp_keepalive_is_set_on_both_legs() {
    use rustix::net::sockopt;
    let backend = quiet_backend();
    let mut d = Daemon::start(&["--tcp-keepalive", "9"]);
    let mut v = native(&d, backend.addr());
    let viewer_leg = daemon_socket(d.pid(), v.stream().local_addr().unwrap());
    let backend_leg = daemon_socket(d.pid(), backend.addr());
    for fd in [&viewer_leg, &backend_leg] {
        assert!(sockopt::socket_keepalive(fd).unwrap());
        assert_eq!(sockopt::tcp_keepidle(fd).unwrap().as_secs(), 9);
        assert_eq!(sockopt::tcp_keepintvl(fd).unwrap().as_secs(), 3);
        assert_eq!(sockopt::tcp_keepcnt(fd).unwrap(), 3);
    }
    drop((viewer_leg, backend_leg, v));
    d.wait_log(|l| l.contains("session ended by the viewer"));

    // 0: off.
    let mut d = Daemon::start(&["--tcp-keepalive", "0"]);
    let mut v = native(&d, backend.addr());
    let viewer_leg = daemon_socket(d.pid(), v.stream().local_addr().unwrap());
    assert!(!sockopt::socket_keepalive(&viewer_leg).unwrap());
    drop((viewer_leg, v));
    d.wait_log(|l| l.contains("session ended by the viewer"));
}

#[test]
fn list_kill_and_stats_with_two_consoles_of_one_vm_and_one_of_another() {
    let (vm_a, vm_b) = (quiet_backend(), quiet_backend());
    // A wrong password ends its ticket (one failing source), so the list
    // holds the one pending ticket.
    let mut d = Daemon::start(&["--ticket-failing-sources", "1"]);
    let mut a1 = native(&d, vm_a.addr());
    let a2 = websocket(&d, vm_a.addr());
    let mut b1 = native(&d, vm_b.addr());
    // A pending ticket of A goes with its sessions.
    let pending = d.gwm_request(vm_a.addr(), "pw-pending", false);
    // And a wrong password, for the counters.
    let wrong = d.gwm_request(vm_b.addr(), "pw-right", false);
    assert!(Viewer::handshake(tcp(wrong), &ViewerConfig::password("pw-wrong")).is_err());

    let reply = d.control_raw(b"{\"action\": \"list\"}\n");
    assert!(!reply.contains("pw-"), "no password in {reply}");
    let mut sessions = Vec::new();
    let mut tickets = Vec::new();
    vncap_core::control::client::List::parse(reply.as_bytes(), |row| match row {
        vncap_core::control::client::Row::Session(s) => sessions.push((
            s.id,
            format!("{}:{}", s.backend_host, s.backend_port),
            s.viewer,
            s.transport.name(),
            s.started,
        )),
        vncap_core::control::client::Row::Ticket(t) => tickets.push(t.port),
    })
    .unwrap()
    .unwrap();
    assert_eq!(tickets, [pending]);
    assert_eq!(sessions.len(), 3, "{reply}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for (_, _, _, _, started) in &sessions {
        assert!(now.abs_diff(*started) < 60, "{reply}");
    }
    let a = vm_a.addr().to_string();
    let on_a: Vec<_> = sessions.iter().filter(|s| s.1 == a).collect();
    assert_eq!(on_a.len(), 2);
    assert!(on_a.iter().any(|s| s.3 == "vnc-ws"), "{reply}");
    let b1_row = sessions
        .iter()
        .find(|s| s.1 == vm_b.addr().to_string())
        .unwrap();
    assert_eq!(b1_row.2, b1.stream().local_addr().unwrap());
    assert_eq!(b1_row.3, "vnc");
    assert!(reply.contains("\"door\": "), "{reply}");

    let control = d.control.to_string();
    let (ok, out, err) = vncap(&["sessions", "--control", &control]);
    assert!(ok, "{err}");
    assert!(
        out.contains(&a) && out.contains(&vm_b.addr().to_string()),
        "{out}"
    );

    // Kill by backend: A's two consoles and its pending ticket; B goes on.
    let (ok, out, err) = vncap(&["kill", "--backend", &a, "--control", &control]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "killed 3");
    assert!(ends(a1.stream()));
    let (code, reason, _) = close_frame(a2);
    assert_eq!(
        (code, reason.as_str()),
        (1000, "session ended by the operator")
    );
    d.wait_log(|l| l.contains(&format!("entry port {pending} closed")));
    assert!(port_closed(pending));
    // B's session still relays (the quiet backend answers an update request).
    b1.request_update(false, 0, 0, 8, 8).unwrap();
    assert!(!b1.read_update().unwrap().is_empty());

    // Kill by id.
    let reply =
        d.control_raw(format!("{{\"action\": \"kill\", \"id\": {}}}\n", b1_row.0).as_bytes());
    assert_eq!(reply, "{\"status\": \"OK\", \"killed\": 1}\n");
    assert!(ends(b1.stream()));
    d.wait_log(|l| l.contains("session ended by the operator (killed over the control channel)"));
    let list = d.control_raw(b"{\"action\": \"list\"}\n");
    assert_eq!(
        list,
        "{\"status\": \"OK\", \"sessions\": [], \"tickets\": []}\n"
    );

    let stats = d.control_raw(b"{\"action\": \"stats\"}\n");
    assert_eq!(json_field(&stats, "vncap_sessions_active"), "0", "{stats}");
    assert_eq!(
        json_field(&stats, "vncap_tickets_issued_total"),
        "5",
        "{stats}"
    );
    assert!(
        stats.contains("\"vncap_logins_total\": {\"ok\": 3, \"wrong_password\": 1, "),
        "{stats}"
    );
    assert!(!stats.contains("\"to_viewer\": 0"), "{stats}");
}

/// `GET path` on the metrics listener: status code and body.
fn http(addr: SocketAddr, request: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let code = out[9..12].parse().unwrap();
    let body = out.split_once("\r\n\r\n").unwrap().1.to_string();
    (code, body)
}

#[test]
fn metrics_are_prometheus_text_read_by_its_parser() {
    let backend = echo_backend();
    let mut d = Daemon::start(&["--metrics", "127.0.0.1:0"]);
    let ready = d.wait_log(|l| l.contains("ready: control on "));
    let addr: SocketAddr = ready.split("metrics on ").nth(1).unwrap().parse().unwrap();
    let mut v = native(&d, backend.addr());
    assert!(echoes(&mut v, b"12345"));
    let _pending = d.gwm_request(backend.addr(), "pw-other", false);

    let (code, body) = http(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(code, 200);
    // Prometheus's Python client parses it; print "name{labels} value".
    let script = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
for f in text_string_to_metric_families(sys.stdin.read()):
    for s in f.samples:
        labels = ",".join(f'{k}={v}' for k, v in sorted(s.labels.items()))
        print(f"{f.type} {s.name}{{{labels}}} {int(s.value)}")
"#;
    let mut py = Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 (tests/setup.sh installs prometheus_client)");
    py.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let out = py.wait_with_output().unwrap();
    assert!(out.status.success(), "the parser refused:\n{body}");
    let parsed = String::from_utf8(out.stdout).unwrap();
    for want in [
        "gauge vncap_sessions_active{} 1",
        "gauge vncap_tickets_pending{} 1",
        "counter vncap_tickets_issued_total{} 2",
        "counter vncap_tickets_expired_total{} 0",
        "counter vncap_logins_total{result=ok} 1",
        "counter vncap_logins_total{result=wrong_password} 0",
        "counter vncap_logins_total{result=backend_unreachable} 0",
        "counter vncap_logins_total{result=backend_refused} 0",
        "counter vncap_logins_total{result=refused} 0",
        "counter vncap_bytes_total{direction=to_backend} ",
        "counter vncap_bytes_total{direction=to_viewer} ",
        "counter vncap_control_requests_total{result=ok} 2",
        "counter vncap_control_requests_total{result=failed} 0",
        "counter vncap_connections_refused_total{channel=control} 0",
        "counter vncap_connections_refused_total{channel=entry} 0",
    ] {
        assert!(
            parsed.lines().any(|l| l.starts_with(want)),
            "{want} in\n{parsed}"
        );
    }
    // At least the echoed bytes, each way.
    for dir in ["to_backend", "to_viewer"] {
        let n: u64 = parsed
            .lines()
            .find_map(|l| l.strip_prefix(&format!("counter vncap_bytes_total{{direction={dir}}} ")))
            .unwrap()
            .parse()
            .unwrap();
        assert!(n >= 5, "{dir}: {n}");
    }
    // Nothing else is served there.
    assert_eq!(http(addr, "GET / HTTP/1.1\r\n\r\n").0, 404);
    assert_eq!(http(addr, "GET /metrics/x HTTP/1.0\r\n\r\n").0, 404);
    assert_eq!(http(addr, "POST /metrics HTTP/1.1\r\n\r\n").0, 405);
}

#[test]
fn sigterm_drains_live_sessions_then_cuts_them_at_the_drain_timeout() {
    let backend = echo_backend();
    let mut d = Daemon::start(&["--drain-timeout", "1"]);
    let mut v = native(&d, backend.addr());
    let w = websocket(&d, backend.addr());
    let pending = d.gwm_request(backend.addr(), "pw-pending", false);
    d.signal("TERM");
    d.wait_log(|l| l.contains("SIGTERM: shutting down; 1 pending tickets closed, 2 sessions live"));
    d.wait_log(|l| l.contains(&format!("entry port {pending} closed")));
    assert!(port_closed(pending), "a pending ticket's port is closed");
    let refused = d.control_raw(support::gwm_line(backend.addr(), "pw", false, false).as_bytes());
    assert_eq!(refused, "FAILED shutting down\n");
    // The session keeps relaying during the drain.
    assert!(echoes(&mut v, b"still here"));
    d.wait_log(|l| l.contains("drain over: drain timeout"));
    d.wait_log(|l| l.contains("2 sessions cut"));
    assert!(ends(v.stream()));
    let (code, reason, _) = close_frame(w);
    assert_eq!((code, reason.as_str()), (1001, "the proxy is restarting"));
    d.wait_log(|l| l.contains("session ended by the restart (the proxy is restarting)"));
    let status = d.wait_exit();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn sigint_during_the_drain_cuts_at_once() {
    let backend = echo_backend();
    let mut d = Daemon::start(&["--drain-timeout", "600"]);
    let mut v = native(&d, backend.addr());
    d.signal("TERM");
    d.wait_log(|l| l.contains("draining 1 sessions for up to 600s"));
    assert!(echoes(&mut v, b"draining"));
    d.signal("INT");
    d.wait_log(|l| l.contains("drain over: SIGINT"));
    assert!(ends(v.stream()));
    assert_eq!(d.wait_exit().code(), Some(0));
}

#[test]
fn sighup_rereads_the_backend_password_file() {
    let backend = Backend::spawn(BackendConfig::with_password("cluster1")).unwrap();
    let dir = std::env::temp_dir().join(format!("vncap-ops-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("vnc-cluster-password");
    std::fs::write(&file, "old-pass\n").unwrap();
    let mut d = Daemon::start(&["--backend-password-file", file.to_str().unwrap()]);
    let login = |d: &Daemon| {
        let port = d.gwm_request(backend.addr(), "pw-viewer", false);
        Viewer::handshake(tcp(port), &ViewerConfig::password("pw-viewer"))
    };
    assert!(
        login(&d).is_err(),
        "the old password is refused by the backend"
    );
    // A file that does not load keeps the old value.
    std::fs::write(&file, "").unwrap();
    d.signal("HUP");
    d.wait_log(|l| l.contains("SIGHUP: kept the old backend password") && l.contains("empty"));
    std::fs::write(&file, "cluster1\n").unwrap();
    d.signal("HUP");
    d.wait_log(|l| l.contains("reloaded the backend password from"));
    let v = login(&d).expect("the new password works");
    drop(v);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn in_the_journal_lines_carry_no_timestamp_or_pid() {
    let ports = support::port_block();
    let range = format!("{}-{}", ports.0, ports.1);
    let mut child = Command::new(env!("CARGO_BIN_EXE_vncap"))
        .args(["serve", "--control", "127.0.0.1:0", "--listen", "127.0.0.1"])
        .args(["--ports", &range])
        .env("JOURNAL_STREAM", "8:12345")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stderr.take().unwrap()),
        &mut first,
    )
    .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(first.starts_with("INFO serve: vncap "), "{first:?}");
}

#[test]
fn a_ping_timeout_of_zero_is_refused_at_startup() {
    support::startup_fails(&["--ping-timeout", "0"], "--ping-timeout 0");
    support::startup_fails(&["--metrics", "127.0.0.1:notaport"], "--metrics");
}
