//! Backends and tickets on a hostile network (issue 15), through the real
//! `vncap` binary on loopback: `--backend-allow` and vncap's own sockets
//! (at request time for an address, at connect time for a name), one
//! "backend unreachable" for every way a backend cannot be had (no scan
//! oracle), a wrong password that blocks its source and not the console,
//! and a login that runs out of descriptors: told so, ticket kept.

mod support;

use std::net::{SocketAddr, TcpStream};
use support::{port_closed, tcp, Daemon};
use vncap_tests::backend::{Backend, BackendConfig};
use vncap_tests::viewer::{Viewer, ViewerConfig, ViewerError};

/// A TCP connection to the entry `port` on 127.0.0.1 from the source
/// address `from` (loopback has all of 127.0.0.0/8: a second host).
fn tcp_from(from: &str, port: u16) -> TcpStream {
    use rustix::net::{bind, connect, socket, AddressFamily, SocketType};
    let fd = socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
    let src: SocketAddr = format!("{from}:0").parse().unwrap();
    bind(&fd, &src).unwrap();
    connect(&fd, &SocketAddr::from(([127, 0, 0, 1], port))).unwrap();
    let s = TcpStream::from(fd);
    s.set_read_timeout(Some(support::PATIENCE)).unwrap();
    s
}

/// What the viewer is told when its console cannot be had after it
/// authenticated.
fn security_failure(port: u16, password: &str) -> String {
    match Viewer::handshake(tcp(port), &ViewerConfig::password(password)) {
        Err(ViewerError::SecurityFailed {
            result: 1,
            reason: Some(r),
        }) => r,
        Err(other) => panic!("expected SecurityResult failed, got {other:?}"),
        Ok(_) => panic!("expected SecurityResult failed, got a session"),
    }
}

/// A request for `host:port` (GWM's dialect); the reply as it came.
fn request(d: &Daemon, host: &str, port: u16) -> String {
    let line = format!(
        "{{\"daddr\": \"{host}\", \"dport\": {port}, \"password\": \"pw\", \"ws\": false}}\n"
    );
    d.control_raw(line.as_bytes())
}

#[test]
fn a_ticket_cannot_point_at_vncap_itself() {
    let d = Daemon::start(&[]);
    let control = d.control.port();
    let refused = request(&d, "127.0.0.1", control);
    assert!(
        refused.contains("backend not allowed") && refused.contains("control channel"),
        "{refused:?}"
    );
    let entry = request(&d, "127.0.0.1", d.ports.0);
    assert!(entry.contains("entry ports"), "{entry:?}");
    let unspecified = request(&d, "0.0.0.0", control);
    assert!(unspecified.contains("control channel"), "{unspecified:?}");
}

#[test]
fn a_name_resolving_to_vncap_itself_is_refused_when_connecting() {
    let mut d = Daemon::start(&[]);
    // A name is checked on what it resolves to (here: 127.0.0.1, the
    // control channel).
    let reply = request(&d, "localhost", d.control.port());
    let port: u16 = reply.trim().parse().unwrap_or_else(|_| panic!("{reply:?}"));
    assert_eq!(security_failure(port, "pw"), "backend unreachable");
    d.wait_log(|l| l.contains("backend unreachable") && l.contains("control channel"));
}

#[test]
fn backend_allow_refuses_others_with_one_reason_for_every_failure() {
    let backend = Backend::spawn(BackendConfig::default()).unwrap();
    let bport = backend.addr().port();
    // Allowed: the test backend's port; a mute port and a closed one in
    // range too; everything else is out.
    let mute = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let allow = format!(
        "127.0.0.1:{bport},127.0.0.1:{},127.0.0.1:{closed}",
        mute.local_addr().unwrap().port()
    );
    let mut d = Daemon::start(&[
        "--backend-allow",
        &allow,
        "--handshake-timeout",
        "2",
        "--connect-timeout",
        "1",
        "--connect-retries",
        "0",
    ]);
    let refused = request(&d, "127.0.0.1", 22);
    assert!(
        refused.contains("backend not allowed") && refused.contains("--backend-allow"),
        "{refused:?}"
    );
    // A name that resolves out of the list: refused when connecting.
    let named = request(&d, "localhost", 22);
    let named: u16 = named.trim().parse().unwrap_or_else(|_| panic!("{named:?}"));
    assert_eq!(security_failure(named, "pw"), "backend unreachable");
    d.wait_log(|l| l.contains("backend unreachable") && l.contains("not in --backend-allow"));
    // Closed and silent: the same words (no scan oracle); the log tells.
    let p = d.gwm_request(SocketAddr::from(([127, 0, 0, 1], closed)), "pw", false);
    assert_eq!(security_failure(p, "pw"), "backend unreachable");
    d.wait_log(|l| l.contains("backend unreachable") && l.contains("refused"));
    let p = d.gwm_request(mute.local_addr().unwrap(), "pw", false);
    assert_eq!(security_failure(p, "pw"), "backend unreachable");
    d.wait_log(|l| l.contains("backend unreachable") && l.contains("no RFB login"));
    // The allowed backend logs in.
    let p = d.gwm_request(backend.addr(), "pw", false);
    let v = Viewer::handshake(tcp(p), &ViewerConfig::password("pw")).expect("allowed backend");
    assert_eq!(v.server_init().name, "vncap test backend");
}

#[test]
fn a_wrong_password_blocks_its_source_not_the_console() {
    let backend = Backend::spawn(BackendConfig::default()).unwrap();
    let mut d = Daemon::start(&[]);
    let port = d.gwm_request(backend.addr(), "right-pw", false);
    // The scanner at 127.0.0.1 guesses once, then is refused.
    match Viewer::handshake(tcp(port), &ViewerConfig::password("guess")) {
        Err(ViewerError::SecurityFailed { result: 1, .. }) => {}
        other => panic!("expected SecurityResult failed, got {other:?}"),
    }
    d.wait_log(|l| l.contains("this address may not try again"));
    match Viewer::handshake(tcp(port), &ViewerConfig::password("right-pw")) {
        Err(ViewerError::Refused { reason }) => {
            assert_eq!(reason, "too many wrong passwords from this address")
        }
        other => panic!("expected the blocked source refused, got {other:?}"),
    }
    // The real viewer, from another address, still has its console.
    let v = Viewer::handshake(
        tcp_from("127.0.0.2", port),
        &ViewerConfig::password("right-pw"),
    )
    .expect("the real viewer logs in");
    assert_eq!(v.server_init().name, "vncap test backend");
}

#[test]
fn the_console_dies_after_its_failing_sources() {
    let backend = Backend::spawn(BackendConfig::default()).unwrap();
    let mut d = Daemon::start(&["--ticket-failing-sources", "2"]);
    let port = d.gwm_request(backend.addr(), "right-pw", false);
    for from in ["127.0.0.3", "127.0.0.4"] {
        let r = Viewer::handshake(tcp_from(from, port), &ViewerConfig::password("guess"));
        assert!(
            matches!(r, Err(ViewerError::SecurityFailed { .. })),
            "{from}"
        );
    }
    d.wait_log(|l| l.contains("ticket burnt"));
    d.wait_log(|l| l.contains(&format!("entry port {port} closed")));
    assert!(port_closed(port));
    assert_eq!(backend.connections(), 0, "the backend was never contacted");
}

/// The descriptors the process `pid` has open.
fn open_fds(pid: u32) -> Vec<u32> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// Sets the soft open-file limit of `pid` (`None`: up to the hard one,
/// which stays as it is).
fn set_soft_nofile(pid: u32, soft: Option<u64>) {
    use rustix::process::{prlimit, Pid, Resource, Rlimit};
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    // `None`: unlimited.
    let hard: Option<u64> = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(4))
        .map(|h| h.parse().ok())
        .expect("the hard open-file limit");
    let pid = Pid::from_raw(pid as i32);
    let new = Rlimit {
        current: soft.or(hard),
        maximum: hard,
    };
    prlimit(pid, Resource::Nofile, new).unwrap();
}

/// Runs a login with room for `room` more descriptors than the daemon
/// holds: the viewer is told, the log names `side`, and once descriptors
/// are back the same ticket logs in.
fn out_of_descriptors(room: usize, side: &str) {
    let backend = Backend::spawn(BackendConfig::default()).unwrap();
    let mut d = Daemon::start(&[]);
    let before = open_fds(d.pid()).len();
    let port = d.gwm_request(backend.addr(), "pw", false);
    // Settled: the control connection's descriptor is gone, the entry
    // port's listener is there (bounded: the daemon closes it at once).
    let settled = (0..100_000).any(|_| {
        std::thread::yield_now();
        open_fds(d.pid()).len() == before + 1
    });
    assert!(settled, "the daemon's descriptors did not settle");
    let fds = open_fds(d.pid());
    let limit = (0u32..).filter(|n| !fds.contains(n)).nth(room).unwrap();
    set_soft_nofile(d.pid(), Some(u64::from(limit)));
    let reason = security_failure(port, "pw");
    assert_eq!(
        reason,
        "the proxy is out of file descriptors; try again in a moment"
    );
    let line = d.wait_log(|l| l.contains("ticket kept"));
    assert!(
        line.contains("out of file descriptors") && line.contains(side),
        "{line}"
    );
    assert!(!line.contains("viewer closed"), "{line}");
    // Descriptors again: the same ticket logs in.
    set_soft_nofile(d.pid(), None);
    let v = Viewer::handshake(tcp(port), &ViewerConfig::password("pw")).expect("same ticket");
    assert_eq!(v.server_init().name, "vncap test backend");
    d.wait_log(|l| l.contains(&format!("entry port {port} closed")));
}

#[test]
fn out_of_descriptors_for_the_backend_the_viewer_keeps_its_ticket() {
    // Room for the viewer's socket only.
    out_of_descriptors(1, "the backend socket");
}

#[test]
fn out_of_descriptors_for_the_relay_the_viewer_keeps_its_ticket() {
    // Room for the viewer's and the backend's sockets: the splice pipes
    // cannot be made.
    out_of_descriptors(2, "the relay's pipes");
}
