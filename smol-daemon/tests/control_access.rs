//! The control channel on a hostile network (issue 15) through the real
//! `vncap` binary: connection limits in all and per source (a flood from
//! 127.0.0.2 does not delay Ganeti Web Manager's request from 127.0.0.1,
//! even out of descriptors; connections over the cap are closed unread and
//! logged once per burst), `--control-allow`, PROXY headers from a
//! `--trusted-proxy` (the client they name is the one allowed, counted and
//! logged; from anyone else a header is a malformed request), and
//! `--control-users` (right, wrong and missing credentials in both
//! dialects and on actions, SIGHUP reloads, a bad file kept out), with
//! `vncap passwd` writing the file.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use support::{gwm_line, json_field, vncap, Daemon, PATIENCE};

/// A TCP connection to `to` from the source address `from` (any of
/// 127.0.0.0/8 is this host's on Linux), reads bounded by [`PATIENCE`].
fn tcp_from(from: [u8; 4], to: SocketAddr) -> TcpStream {
    use rustix::net::{bind, connect, socket, AddressFamily, SocketType};
    let fd = socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
    bind(&fd, &SocketAddr::from((from, 0))).unwrap();
    connect(&fd, &to).unwrap();
    let s = TcpStream::from(fd);
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s
}

/// Sends `request` on `s` and reads the reply to the end (empty when the
/// daemon closed the connection unanswered, or reset it).
fn exchange(mut s: TcpStream, request: &[u8]) -> String {
    let _ = s.write_all(request);
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    reply
}

/// A scratch directory of this test process.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vncap-ctl-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const BACKEND: &str = "127.0.0.1:5999";

/// 300 idle connections from 127.0.0.2 against a daemon with 256
/// descriptors: its 8 (--max-control-connections-per-ip) are held, every
/// other one is closed at once, and GWM's request from 127.0.0.1 is
/// answered within a second. Before the limits, the flood took every
/// descriptor and GWM waited for the flood's 10 s deadline. The refusals
/// make one log line and one count at the end of the burst.
#[test]
fn a_flood_from_one_source_does_not_delay_another_sources_request() {
    let mut d = Daemon::start(&[]);
    let pid = rustix::process::Pid::from_raw(d.pid() as i32).unwrap();
    let limit = rustix::process::Rlimit {
        current: Some(256),
        maximum: Some(256),
    };
    rustix::process::prlimit(Some(pid), rustix::process::Resource::Nofile, limit).unwrap();
    let flood: Vec<TcpStream> = (0..300)
        .map(|_| tcp_from([127, 0, 0, 2], d.control))
        .collect();
    let started = Instant::now();
    let reply = exchange(
        tcp_from([127, 0, 0, 1], d.control),
        gwm_line(BACKEND.parse().unwrap(), "Ab3dE6gH9jK2", true, false).as_bytes(),
    );
    let took = started.elapsed();
    assert!(reply.trim_end().parse::<u16>().is_ok(), "{reply:?}");
    assert!(took < Duration::from_secs(1), "GWM waited {took:?}");
    // The ninth and later connections were closed unread: each reads its end.
    let mut closed = 0;
    for mut s in flood {
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        if matches!(s.read(&mut [0u8; 1]), Ok(0) | Err(_)) {
            closed += 1;
        }
    }
    assert!(closed >= 292, "{closed} of 300 closed");
    let summary = d.wait_log(|l| l.contains("more connections refused in 10s"));
    assert!(summary.contains("127.0.0.2"), "{summary}");
    let lines = d.log.lock().unwrap().clone();
    let logged = lines
        .iter()
        .filter(|l| l.contains("closed unread") && !l.contains("more connections refused"))
        .count();
    assert_eq!(logged, 1, "one line per burst, not per connection");
}

/// Over the per-source cap a connection is closed unread, whoever else is
/// connected; over the whole cap, whatever its source.
#[test]
fn connections_over_the_caps_are_closed_unread() {
    let mut d = Daemon::start(&[
        "--max-control-connections",
        "6",
        "--max-control-connections-per-ip",
        "4",
    ]);
    let _held: Vec<TcpStream> = (0..4)
        .map(|_| tcp_from([127, 0, 0, 2], d.control))
        .collect();
    let over = tcp_from([127, 0, 0, 2], d.control);
    let port = over.local_addr().unwrap().port();
    let started = Instant::now();
    assert_eq!(exchange(over, b""), "");
    assert!(started.elapsed() < Duration::from_secs(2));
    let line = d.wait_log(|l| l.contains(&format!("control 127.0.0.2:{port}: closed unread")));
    assert!(line.contains("4 control connections from this address already open (--max-control-connections-per-ip)"), "{line}");
    // Two more from another source fill the whole budget.
    let _more: Vec<TcpStream> = (0..2)
        .map(|_| tcp_from([127, 0, 0, 3], d.control))
        .collect();
    let third = tcp_from([127, 0, 0, 4], d.control);
    assert_eq!(exchange(third, b"{\"action\": \"stats\"}\n"), "");
    // A place comes back when its connection ends.
    drop(_held);
    d.wait_log(|l| l.contains("control 127.0.0.2:") && l.contains("closed before a request"));
    let reply = exchange(
        tcp_from([127, 0, 0, 4], d.control),
        b"{\"action\": \"stats\"}\n",
    );
    assert!(reply.starts_with("{\"status\": \"OK\""), "{reply}");
}

/// A client that sends nothing is closed unanswered at the core's silence
/// deadline (`control::SILENCE_MS`, well before the 10 s a request may
/// take), and its place comes back: an idle flood does not hold the
/// per-source places for long.
#[test]
fn a_silent_client_is_closed_and_gives_its_place_back() {
    let mut d = Daemon::start(&["--max-control-connections-per-ip", "1"]);
    let mut silent = tcp_from([127, 0, 0, 2], d.control);
    // The daemon closes the silent one: it reads its end (not a timeout).
    let started = Instant::now();
    assert_eq!(silent.read(&mut [0u8; 1]).unwrap(), 0);
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "closed at the silence, not at the request deadline"
    );
    d.wait_log(|l| {
        l.contains("control 127.0.0.2:")
            && l.contains("closed: nothing sent within the silence allowed")
    });
    let reply = exchange(
        tcp_from([127, 0, 0, 2], d.control),
        b"{\"action\": \"stats\"}\n",
    );
    assert!(reply.starts_with("{\"status\": \"OK\""), "{reply}");
    // Counted as a connection refused (vncap_connections_refused_total).
    assert!(
        reply.contains("\"vncap_connections_refused_total\": {\"control\": 1, \"entry\": 0}"),
        "{reply}"
    );
}

/// `--control-allow 127.0.0.1/32`: 127.0.0.2 is closed before a byte is
/// read (and logged), 127.0.0.1 is answered.
#[test]
fn control_allow_refuses_other_sources_unread() {
    let mut d = Daemon::start(&["--control-allow", "127.0.0.1/32"]);
    let s = tcp_from([127, 0, 0, 2], d.control);
    let port = s.local_addr().unwrap().port();
    assert_eq!(exchange(s, b"{\"action\": \"stats\"}\n"), "");
    let line = d.wait_log(|l| l.contains(&format!("control 127.0.0.2:{port}: closed unread")));
    assert!(line.contains("address not in --control-allow"), "{line}");
    let reply = exchange(
        tcp_from([127, 0, 0, 1], d.control),
        b"{\"action\": \"stats\"}\n",
    );
    assert!(reply.starts_with("{\"status\": \"OK\""), "{reply}");
}

/// A `--trusted-proxy` (127.0.0.3) names its client in a PROXY header: the
/// allow-list, the per-source cap and the log use that client. Without a
/// header its connection is its own host's (as on the entry points); from
/// an untrusted source a header is
/// just a malformed request, refused and never believed.
#[test]
fn proxy_headers_name_the_client_only_from_a_trusted_proxy() {
    let mut d = Daemon::start(&[
        "--trusted-proxy",
        "127.0.0.3",
        "--control-allow",
        "127.0.0.1,192.0.2.0/24",
        "--max-control-connections-per-ip",
        "2",
    ]);
    let control = d.control;
    let via = move |client: &str, rest: &[u8]| {
        let mut req = format!("PROXY TCP4 {client} 127.0.0.1 40000 8888\r\n").into_bytes();
        req.extend_from_slice(rest);
        exchange(tcp_from([127, 0, 0, 3], control), &req)
    };
    let stats = b"{\"action\": \"stats\"}\n";
    let reply = via("192.0.2.7", stats);
    assert!(reply.starts_with("{\"status\": \"OK\""), "{reply}");
    d.wait_log(|l| {
        l.contains("control 192.0.2.7:40000 (via proxy 127.0.0.3:") && l.contains("stats")
    });
    // Version 2, the header and the request in one write.
    let mut v2 = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    v2.extend_from_slice(&[192, 0, 2, 9, 127, 0, 0, 1, 0x9c, 0x41, 0x22, 0xb8]);
    v2.extend_from_slice(stats);
    let reply = exchange(tcp_from([127, 0, 0, 3], d.control), &v2);
    assert!(reply.starts_with("{\"status\": \"OK\""), "{reply}");
    d.wait_log(|l| l.contains("control 192.0.2.9:40001 (via proxy"));
    // A client outside --control-allow, named by the header: closed.
    assert_eq!(via("198.51.100.1", stats), "");
    let line = d.wait_log(|l| l.contains("control 198.51.100.1:40000 (via proxy"));
    assert!(line.contains("address not in --control-allow"), "{line}");
    // The per-source cap counts the named client, not the proxy.
    let held: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = tcp_from([127, 0, 0, 3], d.control);
            s.write_all(b"PROXY TCP4 192.0.2.8 127.0.0.1 40000 8888\r\n")
                .unwrap();
            s
        })
        .collect();
    assert_eq!(via("192.0.2.8", stats), "");
    let reply = via("192.0.2.7", stats);
    assert!(reply.starts_with("{\"status\": \"OK\""), "{reply}");
    drop(held);
    // No header from the trusted proxy: its host speaks for itself, and
    // 127.0.0.3 is not in --control-allow: closed.
    assert_eq!(exchange(tcp_from([127, 0, 0, 3], d.control), stats), "");
    // From an untrusted source the header is a malformed request.
    let s = tcp_from([127, 0, 0, 1], d.control);
    let port = s.local_addr().unwrap().port();
    let reply = exchange(
        s,
        b"PROXY TCP4 192.0.2.7 127.0.0.1 40000 8888\r\n{\"action\": \"stats\"}\n",
    );
    assert_eq!(reply, "FAILED request is not a JSON object\n");
    let line = d.wait_log(|l| l.contains(&format!("control 127.0.0.1:{port}: refused")));
    assert!(!line.contains("192.0.2.7"), "{line}");
}

/// `vncap passwd` writes a users line that `--control-users` accepts (and
/// that OpenSSL's crypt agrees with); requests need the credentials: right
/// ones are served, wrong and missing ones refused in the request's
/// dialect (a GWM request, which cannot carry them, too); SIGHUP reloads
/// the file, a bad file at SIGHUP keeps the old users, and at start is an
/// error. The password is never logged.
#[test]
fn control_users_guard_every_request_and_reload_on_sighup() {
    let dir = scratch("users");
    let pw_file = dir.join("pw");
    std::fs::write(&pw_file, "Correct-Horse-7\n").unwrap();
    let (ok, line, err) = vncap(&[
        "passwd",
        "ganeti",
        "--password-file",
        pw_file.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let line = line.trim_end().to_string();
    let hash = line
        .strip_prefix("ganeti:$6$")
        .expect("a SHA-512 crypt line");
    let salt = hash.split('$').next().unwrap();
    assert_eq!(salt.len(), 16);
    let openssl = std::process::Command::new("openssl")
        .args(["passwd", "-6", "-salt", salt, "Correct-Horse-7"])
        .output()
        .expect("openssl (tests/setup.sh installs it)");
    assert_eq!(
        String::from_utf8_lossy(&openssl.stdout).trim_end(),
        &line["ganeti:".len()..]
    );
    let users = dir.join("users");
    std::fs::write(&users, format!("# vncap control users\n{line}\n")).unwrap();

    let mut d = Daemon::start(&["--control-users", users.to_str().unwrap()]);
    d.wait_log(|l| l.contains("control requests need credentials: 1 users from"));
    let snf = |auth: &str| {
        format!(
            "{{\"source_port\": 0, \"destination_address\": \"127.0.0.1\", \"destination_port\": 5999, \"type\": \"vnc\"{auth}}}\n"
        )
    };
    let right = ", \"auth_user\": \"ganeti\", \"auth_password\": \"Correct-Horse-7\"";
    let reply = d.control_raw(snf(right).as_bytes());
    assert_eq!(json_field(&reply, "status"), "OK", "{reply}");
    let wrong = ", \"auth_user\": \"ganeti\", \"auth_password\": \"Correct-Horse-8\"";
    let reply = d.control_raw(snf(wrong).as_bytes());
    assert_eq!(
        json_field(&reply, "reason"),
        "control authentication failed",
        "{reply}"
    );
    let nobody = ", \"auth_user\": \"nobody\", \"auth_password\": \"Correct-Horse-7\"";
    let reply = d.control_raw(snf(nobody).as_bytes());
    assert_eq!(
        json_field(&reply, "reason"),
        "control authentication failed",
        "{reply}"
    );
    let reply = d.control_raw(snf("").as_bytes());
    assert_eq!(
        json_field(&reply, "reason"),
        "control authentication required (auth_user and auth_password)"
    );
    let gwm = gwm_line(BACKEND.parse().unwrap(), "Ab3dE6gH9jK2", true, false);
    assert_eq!(
        d.control_raw(gwm.as_bytes()),
        "FAILED control authentication required (auth_user and auth_password)\n"
    );
    let reply = d.control_raw(b"{\"action\": \"stats\"}\n");
    assert!(reply.starts_with("{\"status\": \"FAILED\""), "{reply}");
    let reply = d.control_raw(
        b"{\"action\": \"stats\", \"auth_user\": \"ganeti\", \"auth_password\": \"Correct-Horse-7\"}\n",
    );
    assert!(reply.starts_with("{\"status\": \"OK\""), "{reply}");
    d.wait_log(|l| l.contains("wrong auth_password for \"ganeti\""));
    d.wait_log(|l| l.contains("unknown auth_user \"nobody\""));
    // The operator's commands carry them.
    let control = d.control.to_string();
    let creds = [
        "--user",
        "ganeti",
        "--password-file",
        pw_file.to_str().unwrap(),
    ];
    let (ok, out, err) = vncap(&[&["sessions", "--control", &control][..], &creds[..]].concat());
    assert!(ok && out.contains("pending tickets:"), "{out}{err}");
    let (ok, out, err) = vncap(
        &[
            &[
                "request",
                "--control",
                &control,
                "--daddr",
                "127.0.0.1",
                "--dport",
                "5999",
                "--ws",
            ][..],
            &creds[..],
        ]
        .concat(),
    );
    assert!(ok && out.starts_with("port "), "{out}{err}");
    let (ok, _, err) = vncap(&["sessions", "--control", &control]);
    assert!(
        !ok && err.contains("control authentication required"),
        "{err}"
    );

    // SIGHUP: a new file with another user replaces the old one.
    let other_pw = dir.join("other-pw");
    std::fs::write(&other_pw, "Battery-Staple-9\n").unwrap();
    let (_, other, _) = vncap(&[
        "passwd",
        "other",
        "--password-file",
        other_pw.to_str().unwrap(),
    ]);
    std::fs::write(&users, &other).unwrap();
    d.signal("HUP");
    d.wait_log(|l| l.contains("reloaded 1 control users from"));
    let as_other = ", \"auth_user\": \"other\", \"auth_password\": \"Battery-Staple-9\"";
    let reply = d.control_raw(snf(as_other).as_bytes());
    assert_eq!(json_field(&reply, "status"), "OK", "{reply}");
    let reply = d.control_raw(snf(right).as_bytes());
    assert_eq!(json_field(&reply, "status"), "FAILED", "{reply}");
    // A bad file at SIGHUP: the old users stay, the log says why.
    std::fs::write(&users, "other:not-a-hash\n").unwrap();
    d.signal("HUP");
    let kept = d.wait_log(|l| l.contains("SIGHUP: kept the old control users"));
    assert!(kept.contains("line 1 (user other)"), "{kept}");
    let reply = d.control_raw(snf(as_other).as_bytes());
    assert_eq!(json_field(&reply, "status"), "OK", "{reply}");
    // No password reached the log.
    let lines = d.log.lock().unwrap().clone();
    assert!(!lines
        .iter()
        .any(|l| l.contains("Correct-Horse") || l.contains("Battery-Staple")));
    d.terminate();

    // At start a bad file is an error naming it.
    support::startup_fails(
        &["--control-users", users.to_str().unwrap()],
        "--control-users",
    );
    let missing = dir.join("missing");
    support::startup_fails(
        &["--control-users", missing.to_str().unwrap()],
        "--control-users",
    );
    let _ = std::fs::remove_dir_all(&dir);
}
