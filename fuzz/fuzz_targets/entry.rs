//! Fuzz target: `entry::Entry`, one viewer connection's way in, fed
//! arbitrary viewer bytes in arbitrary reads, with a real ticket table
//! answering the admit step and the driver's accept or reject.
//!
//! Input: `[splits] [flags] [challenge: 16] [password: len, bytes] [viewer bytes]`;
//! flags bits 0-1: the door (0 a native-only console's port, 1 a sniffing
//! port, 2 a WebSocket-only port, 3 the single port with the ticket's
//! token), bit 2: TLS offered, bit 3: the sniffing silence passes before
//! the bytes, bit 4: reject on `Authenticated`, bit 5: a 512-byte read
//! buffer (else the header limit), bit 6: the socket's peer is a trusted
//! proxy (`Entry::from_trusted_proxy`: a PROXY header first, and on the
//! single port `X-Forwarded-For`/`Forwarded`, are believed), bit 7: the
//! single port serves a web root (`Entry::with_web_root`). Asserts: no
//! panic; the outcome (events, output, error, the client settled on, and,
//! unless it ended in an error, the bytes consumed) does not depend on the
//! split; only a trusted proxy's connection reports `Event::Client`, once
//! and before `Admit`, and anyone else's client is the socket's peer; output
//! bounded; an authenticated viewer's ticket is in the table; at the deadline
//! the machine has ended or handed over; the table stays consistent.

#![no_main]

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use vncap_core::control::{self, Control};
use vncap_core::entry::{self, Door, Entry, Event, Rejection};
use vncap_core::ticket::{self, Slot, Table};
use vncap_core::{policy, ws, Instant, Machine};
use vncap_fuzz::{drive, Reader, Splits};

const HANDSHAKE_MS: u64 = 10_000;

/// The ticket's request, if the control channel takes it (a password it
/// refuses makes no ticket, and no input for this target).
fn request(json: &str) -> Option<control::Console> {
    let mut c = Control::new(control::Config::default(), vncap_core::Instant::default());
    let line = format!("{json}\n");
    let _ = c.handle_input(line.as_bytes());
    match c.poll_event() {
        Some(control::Event::Request(control::Request::Console(c))) => Some(c),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let mut r = Reader::new(data);
    let mut splits = Splits::read(&mut r);
    let flags = r.byte();
    let challenge: [u8; 16] = r.array();
    let password = r.counted();
    let input = r.rest();
    let Ok(password) = core::str::from_utf8(password) else {
        return;
    };
    if password.is_empty()
        || password.contains(['"', '\\'])
        || password.chars().any(char::is_control)
    {
        return;
    }
    let kind = flags & 3;
    let tls = flags & 4 != 0;
    let silence_first = flags & 8 != 0;
    let reject = flags & 16 != 0;
    let trusted = flags & 64 != 0;
    let web_root = flags & 128 != 0;
    let cap = if flags & 32 != 0 {
        512
    } else {
        ws::handshake::DEFAULT_MAX_HEADER_BYTES
    };
    let json = match kind {
        0 => format!(r#"{{"daddr": "n", "dport": 5900, "password": "{password}", "ws": false}}"#),
        1 => format!(r#"{{"daddr": "n", "dport": 5900, "password": "{password}"}}"#),
        2 => format!(r#"{{"daddr": "n", "dport": 5900, "password": "{password}", "ws": true}}"#),
        _ => format!(
            r#"{{"source_port": 0, "destination_address": "n", "destination_port": 5900, "password": "{password}", "type": "vnc-ws"}}"#
        ),
    };
    let Some(req) = request(&json) else {
        return;
    };
    let run = |splits: &mut Splits| {
        let config = ticket::Config {
            first_port: 7000,
            last_port: 7003,
            tls,
            single_port: (kind == 3).then_some(6080),
            ..ticket::Config::default()
        };
        let storage: [Slot; 4] = std::array::from_fn(|_| Slot::new());
        let mut table = Box::new(Table::new(config, storage).unwrap());
        let issued = table
            .issue(Instant::from_millis(0), &req, &[5u8; ticket::RANDOM_LEN])
            .unwrap();
        let door = match table.get(issued.handle) {
            Some(t) if issued.own_port => Door::Port {
                port: issued.port,
                handle: issued.handle,
                offers: t.transport,
            },
            _ => Door::Single { port: 6080 },
        };
        let config = entry::Config {
            door,
            peer: "127.0.0.1".parse().unwrap(),
            tls,
            handshake_timeout_ms: HANDSHAKE_MS,
            websocket: ws::handshake::Config::default(),
            frames: ws::frame::Config { max_message: 4096 },
            policy: policy::Config::default(),
            transcript: true,
        };
        let now = Instant::from_millis(0);
        let mut m = if trusted {
            Entry::from_trusted_proxy(config, now, challenge)
        } else {
            Entry::new(config, now, challenge)
        };
        if web_root {
            m = m.with_web_root();
        }
        let table = RefCell::new(table);
        let on_event = |m: &mut Entry<'_>, ev: &Event| match ev {
            Event::StartTls => m.tls_started(now),
            Event::Admit => m.admit_from(&table.borrow(), now),
            Event::PolicyServed | Event::Client => {}
            Event::Serve => {
                assert!(m.web_request().is_some(), "Event::Serve without a request");
                let found = (!reject).then_some(vncap_core::web::Body {
                    len: 10,
                    index: false,
                });
                let _ = m.web_respond(found);
            }
            Event::Authenticated(_) => {
                let taken = m.take_ticket(&mut table.borrow_mut(), now);
                assert!(taken.is_ok(), "an authenticated viewer's ticket is there");
                if reject {
                    let _ = m.reject(Rejection::LoginTimedOut);
                } else {
                    assert!(m.accept());
                    assert!(!m.accept());
                }
            }
        };
        if silence_first {
            m.handle_timeout(now + vncap_core::sniff::SILENCE_TIMEOUT_MS);
        }
        let mut on_event = on_event;
        let t = drive(&mut m, input, splits, cap, 64 * 1024, &mut on_event);
        // At the deadline every connection has ended or been handed over.
        m.handle_timeout(Instant::from_millis(HANDSHAKE_MS));
        let end = m.handle_input(&[]);
        let handed_over = t
            .events
            .iter()
            .any(|e| matches!(e, Event::Authenticated(_)));
        assert!(end.is_err() || handed_over, "still running at the deadline");
        if let Some(entry::Error::WrongPassword) = t.error {
            assert!(m.charge_attempt(&mut table.borrow_mut()).is_some());
        }
        assert!(table.borrow().check_invariants());
        // Who the viewer is: a trusted proxy's connection hears it once,
        // before it is admitted; anyone else's is its socket's peer.
        let clients = t.events.iter().filter(|e| **e == Event::Client).count();
        let admit = t.events.iter().position(|e| *e == Event::Admit);
        let client = m.client();
        if trusted {
            assert!(clients <= 1, "Event::Client twice");
            if let Some(at) = admit {
                assert!(
                    t.events[..at].contains(&Event::Client),
                    "client before admit"
                );
            }
        } else {
            assert_eq!(clients, 0, "Event::Client for an untrusted peer");
            assert_eq!(client.ip, config.peer);
            assert_eq!(client.via, entry::Via::Peer);
        }
        (t, client)
    };
    let (mut a, client_a) = run(&mut splits);
    let (b, client_b) = run(&mut Splits::whole());
    assert_eq!(client_a, client_b, "the split changed the client");
    // Inside WebSocket, what was taken before an error depends on the reads
    // (frames are copied in); an error ends the connection, so it never
    // matters. Everything else must match.
    if a.error.is_some() && a.error == b.error {
        a.consumed = b.consumed;
    }
    if a != b {
        let at = a.output.iter().zip(&b.output).position(|(x, y)| x != y);
        let around = |o: &[u8]| {
            let i = at.unwrap_or(o.len().min(a.output.len().min(b.output.len())));
            o[i.saturating_sub(16)..(i + 16).min(o.len())].to_vec()
        };
        panic!(
            "the split changed the outcome: {:?} {:?} consumed {} output {} / {:?} {:?} consumed {} output {}; output differs at {at:?}: {:?} / {:?}",
            a.events, a.error, a.consumed, a.output.len(), b.events, b.error, b.consumed, b.output.len(),
            around(&a.output), around(&b.output)
        );
    }
});
