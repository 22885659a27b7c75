//! The control channel's operator actions (issue 13) through the real
//! `vncap` binary: `{"action": "list"}` and `vncap sessions` show the
//! pending tickets (never a password or token); `kill` and `stats` with
//! nothing live (sessions: `operations.rs`); an action mixed with console
//! keys is refused. The console dialects keep
//! working beside them.

mod support;

use std::net::SocketAddr;
use support::{vncap, Daemon};
use vncap_core::control::client::{List, Row};

#[test]
fn list_and_vncap_sessions_show_pending_tickets_without_secrets() {
    let d = Daemon::start(&[]);
    let backend: SocketAddr = "127.0.0.1:5999".parse().unwrap();
    let first = d.gwm_request(backend, "Sekrit-One-12", true);
    let second = d.gwm_request(backend, "Sekrit-Two-12", false);

    let reply = d.control_raw(b"{\"action\": \"list\"}\n");
    assert!(reply.starts_with("{\"status\": \"OK\", \"sessions\": [], \"tickets\": [{\"id\": "));
    assert!(reply.ends_with("]}\n"), "{reply:?}");
    assert!(!reply.contains("Sekrit"), "{reply:?}");
    let mut ports = Vec::new();
    let outcome = List::parse(reply.as_bytes(), |row| match row {
        Row::Ticket(t) => {
            assert_eq!((t.backend_host, t.backend_port), ("127.0.0.1", 5999));
            assert!((1..=30).contains(&t.expires_in), "{t:?}");
            ports.push(t.port);
        }
        Row::Session(s) => panic!("no session yet: {s:?}"),
    })
    .unwrap();
    assert_eq!(outcome, Ok(()));
    ports.sort();
    let mut want = vec![first, second];
    want.sort();
    assert_eq!(ports, want);

    let control = d.control.to_string();
    let (ok, out, err) = vncap(&["sessions", "--control", &control]);
    assert!(ok, "{err}");
    assert!(
        out.starts_with("sessions: none\n\npending tickets:\n"),
        "{out}"
    );
    let header = out
        .lines()
        .position(|l| l.starts_with("ID") && l.contains("EXPIRES IN"))
        .unwrap_or_else(|| panic!("no ticket table in {out:?}"));
    let rows: Vec<&str> = out.lines().skip(header + 1).collect();
    assert_eq!(rows.len(), 2, "{out}");
    for port in [first, second] {
        assert!(
            rows.iter()
                .any(|r| r.contains("127.0.0.1:5999") && r.contains(&port.to_string())),
            "{out}"
        );
    }
    assert!(!out.contains("Sekrit"));
}

#[test]
fn kill_and_stats_with_nothing_live() {
    let d = Daemon::start(&[]);
    let stats = d.control_raw(b"{\"action\": \"stats\"}");
    assert!(
        stats.starts_with("{\"status\": \"OK\", \"vncap_sessions_active\": 0, "),
        "{stats}"
    );
    assert_eq!(
        d.control_raw(b"{\"action\": \"kill\", \"id\": 1}\n"),
        "{\"status\": \"OK\", \"killed\": 0}\n"
    );
    let control = d.control.to_string();
    for args in [
        &["kill", "1", "--control", &control][..],
        &["kill", "--backend", "127.0.0.1:5900", "--control", &control],
    ] {
        let (ok, out, err) = vncap(args);
        assert!(ok, "{err}");
        assert_eq!(out.trim(), "killed 0");
    }
    let (ok, _, err) = vncap(&["kill", "--control", &control]);
    assert!(!ok && err.contains("give an ID or --backend"), "{err}");
}

#[test]
fn actions_mixed_with_console_keys_are_refused() {
    let d = Daemon::start(&[]);
    assert_eq!(
        d.control_raw(b"{\"action\": \"list\", \"daddr\": \"h\", \"dport\": 1}\n"),
        "{\"status\": \"FAILED\", \"reason\": \"request mixes an action with console keys\"}\n"
    );
    assert_eq!(
        d.control_raw(b"{\"action\": \"reboot\"}\n"),
        "{\"status\": \"FAILED\", \"reason\": \"unknown action (expected list, kill or stats)\"}\n"
    );
    // A raw control character inside a string (RFC 8259) and a password
    // that VNC's NUL padding makes empty, in GWM's dialect.
    assert_eq!(
        d.control_raw(b"{\"daddr\": \"h\x01\", \"dport\": 1, \"password\": \"p\"}\n"),
        "FAILED bad JSON string (escape, UTF-8 or length)\n"
    );
    assert_eq!(
        d.control_raw(b"{\"daddr\": \"h\", \"dport\": 1, \"password\": \"\\u0000\"}\n"),
        "FAILED empty password\n"
    );
}
