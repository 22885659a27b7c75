//! The core's entry machine (`vncap_core::entry`) on a virtual clock, with
//! the in-memory [`Pair`]: no sockets, no real time. Every deadline is hit
//! at its exact millisecond (and not one before); every refusal, burn rule
//! and hand-over is checked on the bytes the viewer gets; recorded sessions
//! of real viewers (vncap's own `--record` fixtures of noVNC in Chromium and
//! vncdotool) are replayed natively and inside WebSocket frames, whole, byte
//! by byte and in any split, and must give the same events and bytes.

use proptest::prelude::*;
use vncap_core::entry::{Error, Event};
use vncap_core::rfb::des;
use vncap_core::sniff;
use vncap_core::ticket::{self, Attempt};
use vncap_core::Instant;
use vncap_tests::fixture::{Dir, Fixture};
use vncap_tests::pair::{
    client_frame, client_payloads, server_payloads, table_config, tls_config, Backend, Pair,
    CHALLENGE, HANDSHAKE_MS,
};

const NATIVE: &str = r#"{"daddr": "node1", "dport": 5900, "password": "secret", "ws": false}"#;
const SNIFFING: &str = r#"{"daddr": "node1", "dport": 5900, "password": "secret"}"#;
const WS_ONLY: &str = r#"{"daddr": "node1", "dport": 5900, "password": "secret", "ws": true}"#;
const VERSION: &[u8] = b"RFB 003.008\n";

/// A WebSocket upgrade request for `target`.
fn upgrade(target: &str) -> Vec<u8> {
    format!(
        "GET {target} HTTP/1.1\r\nHost: vncap\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: binary\r\n\r\n"
    )
    .into_bytes()
}

/// The viewer's whole RFB login for `password` against the pair's
/// challenge: version, VNC authentication, the DES response.
fn login(password: &str) -> Vec<u8> {
    let mut v = VERSION.to_vec();
    v.push(2);
    v.extend_from_slice(&des::response(password.as_bytes(), &CHALLENGE));
    v
}

/// What vncap says before SecurityResult, on 3.8: version, one type (2),
/// the challenge.
fn greeting() -> Vec<u8> {
    let mut v = VERSION.to_vec();
    v.extend_from_slice(&[1, 2]);
    v.extend_from_slice(&CHALLENGE);
    v
}

/// RFB 3.8's "connection failed" (zero types) with `reason`.
fn connection_failed(reason: &str) -> Vec<u8> {
    let mut v = vec![0];
    v.extend_from_slice(&(reason.len() as u32).to_be_bytes());
    v.extend_from_slice(reason.as_bytes());
    v
}

/// SecurityResult failed with `reason` (3.8).
fn security_failed(reason: &str) -> Vec<u8> {
    let mut v = 1u32.to_be_bytes().to_vec();
    v.extend_from_slice(&(reason.len() as u32).to_be_bytes());
    v.extend_from_slice(reason.as_bytes());
    v
}

#[test]
fn a_native_only_console_speaks_at_once() {
    let (p, _) = Pair::new(NATIVE, 0);
    assert_eq!(p.events, [Event::Admit]);
    assert_eq!(
        p.to_viewer, VERSION,
        "ProtocolVersion at the accept, no silence"
    );
}

#[test]
fn a_sniffing_console_waits_exactly_the_silence() {
    let (mut p, _) = Pair::new(SNIFFING, 0);
    p.advance(sniff::SILENCE_TIMEOUT_MS - 1);
    assert!(p.to_viewer.is_empty(), "not a millisecond early");
    assert!(p.events.is_empty());
    p.advance(1);
    assert_eq!(p.events, [Event::Admit]);
    assert_eq!(p.to_viewer, VERSION);
    p.deliver(&login("secret"));
    assert!(p.relay.is_some(), "logged in: {:?}", p.error);
    assert_eq!(p.ticket.as_ref().unwrap().backend_host.as_str(), "node1");
}

#[test]
fn bytes_that_are_nothing_yet_at_the_silence_are_closed_unanswered() {
    let (mut p, issued) = Pair::new(SNIFFING, 0);
    p.deliver(b"GE");
    p.advance(sniff::SILENCE_TIMEOUT_MS);
    assert_eq!(p.error, Some(Error::UnknownProtocol));
    assert!(p.to_viewer.is_empty());
    assert!(
        p.table.get(issued.handle).is_some(),
        "the ticket is untouched"
    );
}

#[test]
fn a_stalled_upgrade_gets_408_at_the_deadline() {
    let (mut p, _) = Pair::new(SNIFFING, 0);
    p.deliver(b"GET /websockify HTTP/1.1\r\nHost: vncap\r\n");
    p.advance(HANDSHAKE_MS - 1);
    assert!(p.to_viewer.is_empty(), "not a millisecond early");
    p.advance(1);
    assert_eq!(p.error, Some(Error::TimedOut));
    assert!(
        p.to_viewer.starts_with(b"HTTP/1.1 408 "),
        "{:?}",
        String::from_utf8_lossy(&p.to_viewer)
    );
}

#[test]
fn a_viewer_that_does_not_answer_the_challenge_is_told_at_the_deadline() {
    let (mut p, issued) = Pair::new(NATIVE, 0);
    p.deliver(VERSION);
    p.deliver(&[2]);
    p.advance(HANDSHAKE_MS - 1);
    assert_eq!(p.to_viewer, greeting());
    p.advance(1);
    assert_eq!(p.error, Some(Error::TimedOut));
    let mut want = greeting();
    want.extend_from_slice(&security_failed("handshake timed out"));
    assert_eq!(p.to_viewer, want);
    assert!(
        p.table.get(issued.handle).is_some(),
        "a timeout burns nothing"
    );
}

#[test]
fn a_ticket_expires_at_its_exact_millisecond() {
    let short =
        r#"{"daddr": "node1", "dport": 5900, "password": "secret", "ws": false, "timeout": 5}"#;
    let (mut p, _) = Pair::new(short, 4_999);
    p.deliver(&login("secret"));
    assert!(
        p.relay.is_some(),
        "admitted a millisecond before expiry: {:?}",
        p.error
    );

    let (mut p, _) = Pair::new(short, 5_000);
    p.deliver(VERSION);
    let reason = ticket::Error::Expired.reason();
    assert_eq!(p.error, Some(Error::Refused(ticket::Error::Expired.into())));
    let mut want = VERSION.to_vec();
    want.extend_from_slice(&connection_failed(reason));
    assert_eq!(p.to_viewer, want);
}

#[test]
fn a_wrong_password_blocks_its_source_and_says_so() {
    let (mut p, issued) = Pair::new(NATIVE, 0);
    p.deliver(&login("not-it"));
    assert_eq!(p.error, Some(Error::WrongPassword));
    assert_eq!(p.attempt, Some(Attempt::Blocked));
    assert!(
        p.table.get(issued.handle).is_some(),
        "one try for this source; the console stays for its viewer"
    );
    let mut want = greeting();
    want.extend_from_slice(&security_failed("Authentication failure"));
    assert_eq!(p.to_viewer, want);
}

#[test]
fn with_more_attempts_a_wrong_password_leaves_the_ticket() {
    let config = ticket::Config {
        attempts: 2,
        ..table_config()
    };
    let (mut p, issued) = Pair::with_config(NATIVE, 0, config, CHALLENGE);
    p.deliver(&login("not-it"));
    assert_eq!(p.attempt, Some(Attempt::Retry(1)));
    assert!(p.table.get(issued.handle).is_some());
}

#[test]
fn a_native_viewer_on_a_websocket_only_console_is_told_why() {
    let (mut p, issued) = Pair::new(WS_ONLY, 0);
    p.advance(sniff::SILENCE_TIMEOUT_MS);
    p.deliver(VERSION);
    let reason = "this console is offered over WebSocket only";
    let mut want = VERSION.to_vec();
    want.extend_from_slice(&connection_failed(reason));
    assert_eq!(p.to_viewer, want);
    assert!(matches!(p.error, Some(Error::Refused(r)) if r.reason == reason));
    assert!(
        p.table.get(issued.handle).is_some(),
        "a refusal burns nothing"
    );
}

#[test]
fn a_plain_websocket_on_a_tls_only_console_is_told_why_inside_the_websocket() {
    let tls_only =
        r#"{"daddr": "node1", "dport": 5900, "password": "secret", "ws": true, "tls": true}"#;
    let (mut p, _) = Pair::with_config(tls_only, 0, tls_config(), CHALLENGE);
    p.deliver(&upgrade("/websockify"));
    assert!(p.to_viewer.starts_with(b"HTTP/1.1 101 "));
    p.deliver(&client_frame(VERSION, [1, 2, 3, 4], false));
    let frames = server_payloads(&p.to_viewer);
    let reason = "this console is offered over TLS only";
    let mut want = VERSION.to_vec();
    want.extend_from_slice(&connection_failed(reason));
    let rfb: Vec<u8> = frames
        .iter()
        .filter(|f| f.0 == 2)
        .flat_map(|f| f.1.clone())
        .collect();
    assert_eq!(rfb, want);
    assert_eq!(frames.last().map(|f| f.0), Some(8), "then a close frame");
}

#[test]
fn the_single_port_answers_an_unknown_token_with_404() {
    let config = ticket::Config {
        single_port: Some(6080),
        ..table_config()
    };
    let snf = r#"{"source_port": 0, "destination_address": "node1", "destination_port": 5900, "password": "secret", "type": "vnc-ws"}"#;
    let (mut p, issued) = Pair::with_config(snf, 0, config.clone(), CHALLENGE);
    assert!(!issued.own_port && issued.token.is_some());
    p.deliver(&upgrade(
        "/websockify?token=0123456789abcdef0123456789abcdef",
    ));
    assert!(
        p.to_viewer.starts_with(b"HTTP/1.1 404 "),
        "{:?}",
        String::from_utf8_lossy(&p.to_viewer)
    );
    assert!(matches!(p.error, Some(Error::Refused(_))));

    // The right token logs in.
    let (mut p, issued) = Pair::with_config(snf, 0, config, CHALLENGE);
    let token = issued
        .token
        .as_ref()
        .and_then(|t| t.as_str())
        .unwrap()
        .to_string();
    p.deliver(&upgrade(&format!("/websockify?token={token}")));
    let mut frames = Vec::new();
    let response = des::response(b"secret", &CHALLENGE);
    let parts: [&[u8]; 3] = [VERSION, &[2], &response];
    for (i, part) in parts.iter().enumerate() {
        frames.extend(client_frame(part, [9, i as u8, 7, 5], false));
    }
    p.deliver(&frames);
    assert!(p.relay.is_some(), "{:?}", p.error);
}

#[test]
fn tls_is_asked_for_and_inside_only_websocket_or_silence() {
    let hello = Fixture::load("sniff/tls-clienthello.txt").stream(Dir::Client);
    let (mut p, _) = Pair::with_config(SNIFFING, 0, tls_config(), CHALLENGE);
    p.tls_answered = false;
    p.deliver(&hello);
    assert_eq!(p.events, [Event::StartTls]);
    assert_eq!(p.pending, hello, "the ClientHello is left for TLS");

    // Inside TLS: a silence is a native viewer.
    let (mut p, _) = Pair::with_config(SNIFFING, 0, tls_config(), CHALLENGE);
    p.deliver(&hello);
    p.pending.clear(); // TLS took it
    p.advance(sniff::SILENCE_TIMEOUT_MS);
    assert_eq!(p.events, [Event::StartTls, Event::Admit]);
    assert!(p.entry.layers().tls);

    // Inside TLS: a second ClientHello is nothing vncap serves.
    let (mut p, _) = Pair::with_config(SNIFFING, 0, tls_config(), CHALLENGE);
    p.deliver(&hello);
    p.deliver(&[]);
    assert_eq!(p.error, Some(Error::NotWebSocketInsideTls));
}

#[test]
fn without_a_certificate_a_client_hello_gets_an_alert() {
    let (mut p, _) = Pair::new(SNIFFING, 0);
    p.deliver(&Fixture::load("sniff/tls-clienthello.txt").stream(Dir::Client));
    assert_eq!(p.error, Some(Error::TlsNotOffered));
    assert_eq!(p.to_viewer, sniff::TLS_HANDSHAKE_FAILURE);
}

/// The VeNCrypt exchange of a native viewer choosing X509Vnc: type 19,
/// version 0.2, subtype 261.
fn vencrypt_choice() -> Vec<u8> {
    let mut v = VERSION.to_vec();
    v.push(19);
    v.extend_from_slice(&[0, 2]);
    v.extend_from_slice(&261u32.to_be_bytes());
    v
}

#[test]
fn with_a_certificate_native_viewers_are_offered_vencrypt_x509vnc() {
    let (mut p, _) = Pair::with_config(NATIVE, 0, tls_config(), CHALLENGE);
    p.tls_answered = false;
    p.deliver(&vencrypt_choice());
    let mut want = VERSION.to_vec();
    want.extend_from_slice(&[2, 19, 2]); // VeNCrypt first, VNC authentication beside it
    want.extend_from_slice(&[0, 2]); // VeNCrypt 0.2
    want.extend_from_slice(&[0, 1]); // version accepted, one subtype
    want.extend_from_slice(&261u32.to_be_bytes()); // X509Vnc, never None/Plain/anonymous
    want.push(1); // subtype accepted: TLS now
    assert_eq!(p.to_viewer, want);
    assert_eq!(p.events, [Event::Admit, Event::StartTls]);
    assert!(p.pending.is_empty());

    // After TLS (run by the driver), VNC authentication inside it.
    p.entry.tls_started(p.now);
    p.deliver(&[]);
    let mut response = des::response(b"secret", &CHALLENGE).to_vec();
    assert!(
        p.to_viewer.ends_with(&CHALLENGE),
        "the challenge, inside TLS"
    );
    p.deliver(&response);
    assert!(p.relay.is_some(), "{:?}", p.error);
    assert!(p.entry.layers().tls || p.ticket.is_some());

    // A plain VNC authentication is still offered beside it.
    let (mut p, _) = Pair::with_config(NATIVE, 0, tls_config(), CHALLENGE);
    response = login("secret");
    p.deliver(&response);
    assert!(p.relay.is_some(), "{:?}", p.error);
}

#[test]
fn a_tls_only_native_console_offers_vencrypt_alone() {
    let tls_only =
        r#"{"daddr": "node1", "dport": 5900, "password": "secret", "ws": false, "tls": true}"#;
    let (mut p, issued) = Pair::with_config(tls_only, 0, tls_config(), CHALLENGE);
    // It may be reached by a TLS tunnel, so its port sniffs; a silence is a
    // native viewer, who is admitted because VeNCrypt will carry it.
    p.advance(sniff::SILENCE_TIMEOUT_MS);
    p.deliver(VERSION);
    let mut want = VERSION.to_vec();
    want.extend_from_slice(&[1, 19]);
    assert_eq!(p.to_viewer, want);
    // Plain VNC authentication is refused.
    p.deliver(&[2]);
    assert_eq!(
        p.error,
        Some(Error::Rfb(
            vncap_core::rfb::server::Error::SecurityTypeRefused
        ))
    );
    assert!(p.table.get(issued.handle).is_some(), "nothing burnt");
}

#[test]
fn a_flash_policy_request_is_answered_and_the_ticket_kept() {
    let (mut p, issued) = Pair::new(SNIFFING, 0);
    p.deliver(b"<policy-file-request/>\0");
    assert_eq!(p.events, [Event::PolicyServed]);
    assert!(p.to_viewer.ends_with(b"</cross-domain-policy>\n\0"));
    assert!(p.table.get(issued.handle).is_some());
}

#[test]
fn an_unreachable_backend_is_told_to_the_viewer_without_the_detail() {
    let (mut p, issued) = Pair::new(NATIVE, 0);
    p.backend = Backend::Unreachable;
    p.deliver(&login("secret"));
    // Refused, filtered or timed out: one answer (no scan oracle).
    assert_eq!(p.rejected.as_deref(), Some("backend unreachable"));
    let mut want = greeting();
    want.extend_from_slice(&security_failed("backend unreachable"));
    assert_eq!(p.to_viewer, want);
    assert!(p.table.get(issued.handle).is_none(), "the ticket was used");
}

#[test]
fn early_bytes_are_handed_on_in_order() {
    // Native: the ClientInit sent with the response stays with the driver.
    let (mut p, _) = Pair::new(NATIVE, 0);
    let mut bytes = login("secret");
    bytes.push(1);
    p.deliver(&bytes);
    assert!(p.relay.is_some());
    assert_eq!(p.pending, [1]);

    // WebSocket: the response and a ClientInit in one frame, and another
    // frame behind it: the first comes back decoded, the second undecoded.
    let (mut p, _) = Pair::new(SNIFFING, 0);
    let mut bytes = upgrade("/websockify");
    bytes.extend(client_frame(VERSION, [1, 1, 1, 1], false));
    bytes.extend(client_frame(&[2], [2, 2, 2, 2], false));
    let mut response = des::response(b"secret", &CHALLENGE).to_vec();
    response.push(1);
    bytes.extend(client_frame(&response, [3, 3, 3, 3], false));
    bytes.extend(client_frame(b"later", [4, 4, 4, 4], false));
    p.deliver(&bytes);
    let relay = p.relay.take().expect("accepted");
    assert_eq!(relay.early_rfb.as_slice(), [1]);
    let mut rest = relay.raw.to_vec();
    rest.extend_from_slice(&p.pending);
    assert_eq!(client_payloads(&rest), b"later");
}

/// vncap's greeting in a recording: its challenge.
fn recorded_challenge(viewer: &Fixture) -> [u8; 16] {
    viewer.stream(Dir::Server)[14..30].try_into().unwrap()
}

/// A GWM request for a recording's ticket password.
fn recorded_request(viewer: &Fixture, ws: bool) -> String {
    format!(
        r#"{{"daddr": "node1", "dport": 5900, "password": "{}", "ws": {ws}}}"#,
        viewer.get("password")
    )
}

/// The recorded viewer's bytes, as it sent them: natively, or each message
/// in a masked frame after an upgrade.
fn recorded_input(viewer: &Fixture, ws: bool) -> Vec<u8> {
    if !ws {
        return viewer.stream(Dir::Client);
    }
    let mut v = upgrade("/websockify");
    for (i, (dir, bytes)) in viewer.records.iter().enumerate() {
        if *dir == Dir::Client {
            v.extend(client_frame(bytes, [i as u8, 0x5a, 0xa5, 7], false));
        }
    }
    v
}

/// What a replay did: the events, what the viewer got (RFB, unframed),
/// every byte left for the relay (RFB), and how many input bytes the
/// machine consumed.
type Replayed = (Vec<Event>, Vec<u8>, Vec<u8>, usize);

/// Replays a recording through the pair in the given splits.
fn replay(name: &str, ws: bool, sizes: &[usize]) -> Replayed {
    let viewer = Fixture::load(&format!("rfb/interop/{name}-viewer.txt"));
    let backend = Fixture::load(&format!("rfb/interop/{name}-backend.txt"));
    let (mut p, _) = Pair::with_config(
        &recorded_request(&viewer, ws),
        0,
        table_config(),
        recorded_challenge(&viewer),
    );
    p.backend = Backend::from_fixture(&backend);
    let input = recorded_input(&viewer, ws);
    p.deliver_split(&input, sizes);
    let consumed = input.len() - p.pending.len();
    let relay = p
        .relay
        .take()
        .unwrap_or_else(|| panic!("{name}: {:?}", p.error));
    let (got, left) = if ws {
        let rfb: Vec<u8> = server_payloads(&p.to_viewer)
            .into_iter()
            .flat_map(|f| f.1)
            .collect();
        let mut undecoded = relay.raw.to_vec();
        undecoded.extend_from_slice(&p.pending);
        let mut left = relay.early_rfb.to_vec();
        left.extend(client_payloads(&undecoded));
        (rfb, left)
    } else {
        (p.to_viewer.clone(), p.pending.clone())
    };
    assert_eq!(
        p.to_backend,
        backend.stream(Dir::Client)[..p.to_backend.len()]
    );
    (p.events, got, left, consumed)
}

/// The recordings of real viewers through vncap with VNC authentication
/// toward the viewer (every vncap viewer leg is).
const RECORDINGS: [&str; 4] = [
    "novnc-xvnc-none",
    "novnc-xvnc-vncauth",
    "novnc-qemu",
    "vncdo-xvnc-none",
];

#[test]
fn recordings_replay_to_what_vncap_sent() {
    for name in RECORDINGS {
        let viewer = Fixture::load(&format!("rfb/interop/{name}-viewer.txt"));
        let sent = viewer.stream(Dir::Server);
        let from_viewer = viewer.stream(Dir::Client);
        for ws in [false, true] {
            let (events, got, left, _) = replay(name, ws, &[usize::MAX]);
            assert!(
                matches!(events[..], [Event::Admit, Event::Authenticated(_)]),
                "{name}: {events:?}"
            );
            // vncap's greeting, challenge and SecurityResult OK, as recorded.
            assert_eq!(got, sent[..got.len()], "{name} ws={ws}");
            assert_eq!(got.len(), greeting().len() + 4, "{name}");
            // Everything after the viewer's response is the relay's.
            assert_eq!(
                left,
                from_viewer[VERSION.len() + 1 + 16..],
                "{name} ws={ws}"
            );
        }
    }
}

#[test]
fn recordings_bytewise_equal_whole() {
    for name in RECORDINGS {
        for ws in [false, true] {
            assert_eq!(
                replay(name, ws, &[1]),
                replay(name, ws, &[usize::MAX]),
                "{name} ws={ws}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn recordings_any_split_same_result(sizes in vncap_tests::harness::splits(40), which in 0usize..4, ws: bool) {
        let name = RECORDINGS[which];
        prop_assert_eq!(replay(name, ws, &sizes), replay(name, ws, &[usize::MAX]));
    }

    /// Whatever a viewer sends, in whatever chunks, and whenever the clock
    /// says: the machine never panics, ends by the deadline, and leaves the
    /// table consistent.
    #[test]
    fn arbitrary_viewers_end_by_the_deadline(
        bytes in prop::collection::vec(any::<u8>(), 0..400),
        sizes in vncap_tests::harness::splits(64),
        which in 0usize..3,
        prefix in 0usize..3,
    ) {
        let json = [NATIVE, SNIFFING, WS_ONLY][which];
        let (mut p, _) = Pair::new(json, 0);
        let mut input = [&b""[..], b"GET / HTTP/1.1\r\n", VERSION][prefix].to_vec();
        input.extend_from_slice(&bytes);
        p.deliver_split(&input, &sizes);
        p.advance_to(Instant::from_millis(HANDSHAKE_MS));
        prop_assert!(p.finished(), "still running at the deadline: {:?}", p.entry);
        prop_assert!(p.table.check_invariants());
    }
}
