//! The core's entry machine (`vncap_core::entry`) on a virtual clock, with
//! the in-memory [`Pair`]: no sockets, no real time. Every deadline is hit
//! at its exact millisecond (and not one before); every refusal, burn rule
//! and hand-over is checked on the bytes the viewer gets; recorded sessions
//! of real viewers (vncap's own `--record` fixtures of noVNC in Chromium and
//! vncdotool) are replayed natively and inside WebSocket frames, whole, byte
//! by byte and in any split, and must give the same events and bytes.

use proptest::prelude::*;
use vncap_core::entry::{Error, Event, Via};
use vncap_core::rfb::{des, server};
use vncap_core::sniff;
use vncap_core::ticket::{self, Attempt};
use vncap_core::{ws, Instant};
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

/// A ping flood in the handshake: the first pings' worth of pongs go out,
/// the rest are dropped, and what the viewer hears (pongs, the RFB
/// answers, SecurityResult) is the same whether the flood came in one read
/// or in many. The entry campaign found it: a whole read got fewer pongs
/// than the same bytes read in pieces (the allowance was the queue's room,
/// which the driver's sending frees).
#[test]
fn a_ping_flood_in_the_handshake_gets_the_same_pongs_in_any_reads() {
    let mut bytes = upgrade("/websockify");
    let pings = 200;
    for i in 0..pings {
        let mut ping = client_frame(&[i as u8; 9], [9, 8, 7, 6], false);
        ping[0] = 0x89;
        bytes.extend_from_slice(&ping);
    }
    bytes.extend_from_slice(&client_frame(&login("secret"), [1, 2, 3, 4], false));
    let hear = |sizes: &[usize]| {
        let (mut p, _) = Pair::new(WS_ONLY, 0);
        p.deliver_split(&bytes, sizes);
        (p.to_viewer.clone(), p.events.clone(), p.error)
    };
    let whole = hear(&[bytes.len()]);
    for sizes in [&[1][..], &[7], &[64, 3], &[500], &[15]] {
        assert_eq!(hear(sizes), whole, "reads of {sizes:?}");
    }
    let frames = server_payloads(&whole.0);
    let pongs = frames.iter().filter(|f| f.0 == 0xA).count();
    assert!(
        pongs > 0 && pongs < pings,
        "{pongs} pongs for {pings} pings"
    );
    assert!(
        frames.iter().filter(|f| f.0 == 0xA).all(|f| f.1.len() == 9),
        "a pong echoes its ping"
    );
    assert_eq!(whole.2, None, "the flood does not stop the login");
    assert!(whole
        .1
        .iter()
        .any(|e| matches!(e, vncap_core::entry::Event::Authenticated(_))));
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

// Behind a load balancer: the socket's peer (127.0.0.1) is a trusted proxy
// (`Entry::from_trusted_proxy`), or, with `Pair::new`, anyone.

const PINNED: &str = r#"{"daddr": "node1", "dport": 5900, "password": "secret", "ws": false, "client": {"ip": "192.0.2.7"}}"#;

/// HAProxy's `send-proxy` line for a client at `ip`:`port`.
fn proxy_v1(ip: &str, port: u16) -> Vec<u8> {
    format!("PROXY TCP4 {ip} 203.0.113.1 {port} 7000\r\n").into_bytes()
}

/// HAProxy's `send-proxy-v2` header for an IPv4 client at `ip`:`port`, with
/// a TLV (skipped); or a `LOCAL` one (a health check) without `ip`.
fn proxy_v2(client: Option<([u8; 4], u16)>) -> Vec<u8> {
    let mut h = vncap_core::proxy::V2_SIGNATURE.to_vec();
    match client {
        Some((ip, port)) => {
            h.extend_from_slice(&[0x21, 0x11, 0, 12 + 4]);
            h.extend_from_slice(&ip);
            h.extend_from_slice(&[203, 0, 113, 1]);
            h.extend_from_slice(&port.to_be_bytes());
            h.extend_from_slice(&7000u16.to_be_bytes());
            h.extend_from_slice(&[0x04, 0, 1, b'x']);
        }
        None => h.extend_from_slice(&[0x20, 0x00, 0, 0]),
    }
    h
}

/// The client the machine settled on (as admitted, once handed over).
fn client(p: &Pair) -> (String, Option<u16>, Via) {
    let c = match (&p.relay, p.client) {
        (Some(_), Some(c)) => c,
        _ => p.entry.client(),
    };
    (c.ip.to_string(), c.port, c.via)
}

#[test]
fn a_proxy_header_split_anywhere_names_the_same_client() {
    for (header, version) in [
        (proxy_v1("192.0.2.7", 56324), 1),
        (proxy_v2(Some(([192, 0, 2, 7], 56324))), 2),
    ] {
        let mut input = header.clone();
        input.extend_from_slice(&login("secret"));
        for k in 0..=header.len() {
            // Split in two at every byte of the header, and byte by byte.
            let (mut p, _) = Pair::behind_proxy(NATIVE, 0, table_config());
            assert!(p.events.is_empty(), "the greeting waits for the header");
            p.deliver(&input[..k]);
            if k < header.len() {
                assert!(p.to_viewer.is_empty(), "v{version} at {k}: no greeting yet");
                assert_eq!(client(&p).2, Via::Peer);
            }
            p.deliver(&input[k..]);
            assert!(p.relay.is_some(), "v{version} at {k}: {:?}", p.error);
            assert!(matches!(
                p.events[..],
                [Event::Client, Event::Admit, Event::Authenticated(_)]
            ));
            let want = ("192.0.2.7".to_string(), Some(56324), Via::Proxy(version));
            assert_eq!(client(&p), want, "v{version} at {k}");
            let mut greeted = greeting();
            greeted.extend_from_slice(&[0, 0, 0, 0]);
            assert_eq!(p.to_viewer, greeted, "the viewer sees plain RFB");
        }
        let (mut p, _) = Pair::behind_proxy(NATIVE, 0, table_config());
        p.deliver_split(&input, &[1]);
        assert_eq!(client(&p).0, "192.0.2.7");
        assert!(p.relay.is_some());
    }
}

#[test]
fn a_proxy_header_then_websocket_or_tls() {
    // On a sniffing port: the header, then a WebSocket viewer.
    let (mut p, _) = Pair::behind_proxy(SNIFFING, 0, table_config());
    let mut input = proxy_v2(Some(([192, 0, 2, 7], 4000)));
    input.extend(upgrade("/websockify"));
    let response = des::response(b"secret", &CHALLENGE);
    let parts: [&[u8]; 3] = [VERSION, &[2], &response];
    for (i, part) in parts.iter().enumerate() {
        input.extend(client_frame(part, [9, i as u8, 7, 5], false));
    }
    p.deliver_split(&input, &[7, 3]);
    assert!(p.relay.is_some(), "{:?}", p.error);
    assert_eq!(p.events[0], Event::Client, "settled at the header");
    assert_eq!(client(&p).0, "192.0.2.7");
    assert!(p.to_viewer.starts_with(b"HTTP/1.1 101 "));

    // The header comes before the ClientHello: TLS gets the hello only.
    let hello = Fixture::load("sniff/tls-clienthello.txt").stream(Dir::Client);
    let (mut p, _) = Pair::behind_proxy(SNIFFING, 0, tls_config());
    p.tls_answered = false;
    let mut input = proxy_v1("192.0.2.7", 4000);
    input.extend_from_slice(&hello);
    p.deliver(&input);
    assert_eq!(p.events, [Event::Client, Event::StartTls]);
    assert_eq!(p.pending, hello);
    assert_eq!(client(&p).0, "192.0.2.7");
}

#[test]
fn a_trusted_host_may_connect_directly() {
    // A native-only port greets a trusted peer that sent nothing at the
    // sniffing silence, not a millisecond before.
    let (mut p, _) = Pair::behind_proxy(NATIVE, 0, table_config());
    p.advance(sniff::SILENCE_TIMEOUT_MS - 1);
    assert!(p.to_viewer.is_empty());
    p.advance(1);
    assert_eq!(p.events, [Event::Client, Event::Admit]);
    assert_eq!(p.to_viewer, VERSION);
    assert_eq!(client(&p), ("127.0.0.1".to_string(), None, Via::Peer));
    p.deliver(&login("secret"));
    assert!(p.relay.is_some(), "{:?}", p.error);

    // Bytes that are no PROXY header go on as they are.
    let (mut p, _) = Pair::behind_proxy(SNIFFING, 0, table_config());
    p.deliver(&upgrade("/websockify"));
    assert!(p.to_viewer.starts_with(b"HTTP/1.1 101 "));
    assert_eq!(p.events, [Event::Client, Event::Admit]);
    assert_eq!(client(&p).2, Via::Peer);

    // A health check's LOCAL header keeps the socket's address.
    let (mut p, _) = Pair::behind_proxy(NATIVE, 0, table_config());
    p.deliver(&proxy_v2(None));
    assert_eq!(p.events, [Event::Client, Event::Admit]);
    assert_eq!(p.to_viewer, VERSION, "greeted at once after the header");
    assert_eq!(client(&p), ("127.0.0.1".to_string(), None, Via::Peer));
}

#[test]
fn junk_from_a_trusted_proxy_is_closed_unanswered() {
    use vncap_core::proxy;
    for (junk, want) in [
        (
            &b"PROXY TCP4 192.0.2.7 nowhere 1 2\r\n"[..],
            proxy::Error::BadV1,
        ),
        (b"\r\n\r\n\0\r\nQUIT\n\x31\x11\0\x0c", proxy::Error::BadV2),
    ] {
        let (mut p, issued) = Pair::behind_proxy(NATIVE, 0, table_config());
        p.deliver(junk);
        assert_eq!(p.error, Some(Error::Proxy(want)));
        assert!(p.to_viewer.is_empty(), "nothing said");
        assert!(p.table.get(issued.handle).is_some(), "nothing burnt");
    }
    // A header cut short waits for the rest until the deadline.
    let (mut p, _) = Pair::behind_proxy(NATIVE, 0, table_config());
    p.deliver(b"PROXY TCP4 192.0.2.7");
    p.advance(sniff::SILENCE_TIMEOUT_MS);
    assert!(p.events.is_empty() && p.error.is_none());
    p.advance(HANDSHAKE_MS - sniff::SILENCE_TIMEOUT_MS);
    assert_eq!(p.error, Some(Error::TimedOut));
    assert!(p.to_viewer.is_empty());
}

#[test]
fn a_proxy_header_from_anyone_else_is_refused() {
    // A native-only port has greeted already: the header is not taken for
    // the viewer's ProtocolVersion.
    for header in [
        proxy_v1("192.0.2.7", 1),
        proxy_v2(Some(([192, 0, 2, 7], 1))),
    ] {
        let (mut p, issued) = Pair::new(PINNED, 0);
        p.deliver_split(&header, &[1]);
        assert_eq!(p.error, Some(Error::ProxyHeaderRefused));
        assert_eq!(p.to_viewer, VERSION, "nothing after the greeting");
        assert_eq!(client(&p).0, "127.0.0.1");
        assert!(p.table.get(issued.handle).is_some(), "nothing burnt");
        assert!(!p.events.contains(&Event::Client));

        // A sniffing port closes it unanswered.
        let (mut p, _) = Pair::new(SNIFFING, 0);
        p.deliver(&header);
        assert_eq!(p.error, Some(Error::ProxyHeaderRefused));
        assert!(p.to_viewer.is_empty());

        // So does a trusted proxy's connection, for a second header.
        let (mut p, _) = Pair::behind_proxy(SNIFFING, 0, table_config());
        let mut twice = proxy_v1("192.0.2.8", 2);
        twice.extend_from_slice(&header);
        p.deliver(&twice);
        assert_eq!(p.error, Some(Error::ProxyHeaderRefused));
    }
}

#[test]
fn a_pinned_ticket_admits_the_named_client_only() {
    let mut input = proxy_v1("192.0.2.7", 56324);
    input.extend_from_slice(&login("secret"));
    let (mut p, _) = Pair::behind_proxy(PINNED, 0, table_config());
    p.deliver(&input);
    assert!(p.relay.is_some(), "the pinned client: {:?}", p.error);

    // Another client behind the same balancer.
    let (mut p, issued) = Pair::behind_proxy(PINNED, 0, table_config());
    p.deliver(&proxy_v1("192.0.2.8", 56324));
    p.deliver(VERSION);
    assert_eq!(
        p.error,
        Some(Error::Refused(ticket::Error::WrongClient.into()))
    );
    assert!(p.table.get(issued.handle).is_some());

    // The balancer itself, connecting directly.
    let (mut p, _) = Pair::behind_proxy(PINNED, 0, table_config());
    p.advance(sniff::SILENCE_TIMEOUT_MS);
    p.deliver(VERSION);
    assert_eq!(
        p.error,
        Some(Error::Refused(ticket::Error::WrongClient.into()))
    );
}

#[test]
fn a_wrong_password_is_charged_to_the_named_client() {
    // One guess per address, two addresses may fail before it is gone.
    let config = ticket::Config {
        attempts: 1,
        failing_sources: 2,
        ..table_config()
    };
    let (mut p, _) = Pair::behind_proxy(NATIVE, 0, config);
    let mut input = proxy_v1("192.0.2.7", 1);
    input.extend_from_slice(&login("not-it"));
    p.deliver(&input);
    assert_eq!(p.error, Some(Error::WrongPassword));
    assert_eq!(
        p.attempt,
        Some(Attempt::Blocked),
        "192.0.2.7 is out of guesses"
    );
    let door = p.entry.door();
    let mut table = std::mem::replace(&mut p.table, vncap_tests::pair::new_table(table_config()));

    // The same client through the balancer again is refused...
    let mut again = Pair::behind_proxy_at(door, table, 0);
    again.deliver(&proxy_v1("192.0.2.7", 2));
    again.deliver(VERSION);
    assert_eq!(
        again.error,
        Some(Error::Refused(ticket::Error::TooManyGuesses.into()))
    );
    table = std::mem::replace(
        &mut again.table,
        vncap_tests::pair::new_table(table_config()),
    );

    // ...while the balancer's own address has used no guess.
    let mut direct = Pair::at(door, table, 0, CHALLENGE);
    direct.deliver(&login("secret"));
    assert!(direct.relay.is_some(), "{:?}", direct.error);
}

/// An snf `vnc-ws` ticket on the single port, and its upgrade request
/// with `extra` header lines.
fn single_port_upgrade(extra: &str) -> (ticket::Config, &'static str, impl Fn(&str) -> Vec<u8>) {
    let config = ticket::Config {
        single_port: Some(6080),
        ..table_config()
    };
    let snf = r#"{"source_port": 0, "destination_address": "node1", "destination_port": 5900, "password": "secret", "type": "vnc-ws"}"#;
    let extra = extra.to_string();
    let build = move |token: &str| {
        let mut up = upgrade(&format!("/websockify?token={token}"));
        up.truncate(up.len() - 2);
        up.extend_from_slice(extra.as_bytes());
        up.extend_from_slice(b"\r\n");
        up
    };
    (config, snf, build)
}

fn token_of(issued: &ticket::Issued) -> String {
    issued
        .token
        .as_ref()
        .and_then(|t| t.as_str())
        .unwrap()
        .to_string()
}

#[test]
fn x_forwarded_for_is_honoured_only_from_a_trusted_proxy() {
    let xff = "X-Forwarded-For: 198.51.100.1, 192.0.2.7\r\n";
    let (config, snf, build) = single_port_upgrade(xff);
    let (mut p, issued) = Pair::behind_proxy(snf, 0, config.clone());
    p.deliver_split(&build(&token_of(&issued)), &[5]);
    assert!(p.to_viewer.starts_with(b"HTTP/1.1 101 "));
    assert_eq!(p.events, [Event::Client, Event::Admit]);
    assert_eq!(
        client(&p),
        (
            "192.0.2.7".to_string(),
            None,
            Via::Header(vncap_core::forwarded::Header::XForwardedFor)
        )
    );

    // From anyone else it is ignored (a browser behind a corporate proxy
    // sends it legitimately).
    let (mut p, issued) = Pair::with_config(snf, 0, config.clone(), CHALLENGE);
    p.deliver(&build(&token_of(&issued)));
    assert!(p.to_viewer.starts_with(b"HTTP/1.1 101 "));
    assert_eq!(p.events, [Event::Admit]);
    assert_eq!(client(&p), ("127.0.0.1".to_string(), None, Via::Peer));

    // A PROXY header's client wins over the HTTP header.
    let (mut p, issued) = Pair::behind_proxy(snf, 0, config.clone());
    let mut input = proxy_v1("192.0.2.9", 80);
    input.extend(build(&token_of(&issued)));
    p.deliver(&input);
    assert_eq!(client(&p).0, "192.0.2.9");

    // RFC 7239's Forwarded too; disagreeing headers name nobody.
    let (config, snf, build) = single_port_upgrade("Forwarded: for=\"[2001:db8::7]:4711\"\r\n");
    let (mut p, issued) = Pair::behind_proxy(snf, 0, config);
    p.deliver(&build(&token_of(&issued)));
    assert_eq!(client(&p).0, "2001:db8::7");
    let both = "Forwarded: for=192.0.2.66\r\nX-Forwarded-For: 192.0.2.7\r\n";
    let (config, snf, build) = single_port_upgrade(both);
    let (mut p, issued) = Pair::behind_proxy(snf, 0, config);
    p.deliver(&build(&token_of(&issued)));
    assert_eq!(client(&p), ("127.0.0.1".to_string(), None, Via::Peer));
    assert_eq!(p.events, [Event::Client, Event::Admit]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// A trusted proxy's header and a login, in any split: the same client,
    /// events and bytes as whole.
    #[test]
    fn a_proxy_header_any_split_same_result(sizes in vncap_tests::harness::splits(40), v2: bool, which in 0usize..2) {
        let json = [NATIVE, SNIFFING][which];
        let mut input = if v2 { proxy_v2(Some(([192, 0, 2, 7], 9))) } else { proxy_v1("192.0.2.7", 9) };
        input.extend_from_slice(&login("secret"));
        let run = |sizes: &[usize]| {
            let (mut p, _) = Pair::behind_proxy(json, 0, table_config());
            p.advance(sniff::SILENCE_TIMEOUT_MS);
            p.deliver_split(&input, sizes);
            (p.events.clone(), p.to_viewer.clone(), client(&p), p.error, p.relay.is_some())
        };
        prop_assert_eq!(run(&sizes), run(&[usize::MAX]));
    }

    /// Whatever a trusted proxy's connection sends after (or instead of) a
    /// header, in whatever chunks: no panic, the end by the deadline, the
    /// table consistent, and `Event::Client` once at most, before `Admit`.
    #[test]
    fn arbitrary_bytes_behind_a_proxy_end_by_the_deadline(
        bytes in prop::collection::vec(any::<u8>(), 0..400),
        sizes in vncap_tests::harness::splits(64),
        which in 0usize..3,
        prefix in 0usize..4,
    ) {
        let json = [NATIVE, SNIFFING, WS_ONLY][which];
        let (mut p, _) = Pair::behind_proxy(json, 0, table_config());
        let mut input = match prefix {
            0 => Vec::new(),
            1 => proxy_v1("192.0.2.7", 9),
            2 => proxy_v2(Some(([192, 0, 2, 7], 9))),
            _ => b"PROXY ".to_vec(),
        };
        input.extend_from_slice(&bytes);
        p.deliver_split(&input, &sizes);
        p.advance_to(Instant::from_millis(HANDSHAKE_MS));
        prop_assert!(p.finished(), "still running at the deadline: {:?}", p.entry);
        prop_assert!(p.table.check_invariants());
        let clients = p.events.iter().filter(|e| **e == Event::Client).count();
        prop_assert!(clients <= 1);
        if let Some(at) = p.events.iter().position(|e| *e == Event::Admit) {
            prop_assert!(p.events[..at].contains(&Event::Client));
        }
    }
}

// A viewer that does not wait for vncap's ProtocolVersion: its upgrade and
// its first frame in one write. A first frame longer than the machine's RFB
// buffer (`entry::RFB_CAP`) is decoded in pieces, and every piece must reach
// the RFB server, whatever the reads were (the entry fuzz target found a
// whole read that lost the first piece and stalled).

/// The upgrade and then `frame` in one write, delivered in `sizes`: the
/// events, vncap's frames (opcode, payload), the error, and the RFB the
/// relay gets after the viewer's response (decoded, in order).
type Pipelined = (Vec<Event>, Vec<(u8, Vec<u8>)>, Option<Error>, Vec<u8>);

fn pipelined(frame: &[u8], sizes: &[usize]) -> Pipelined {
    let (mut p, _) = Pair::new(SNIFFING, 0);
    let mut bytes = upgrade("/websockify");
    bytes.extend_from_slice(frame);
    p.deliver_split(&bytes, sizes);
    assert!(p.to_viewer.starts_with(b"HTTP/1.1 101 "));
    let mut handed_on = Vec::new();
    if let Some(relay) = p.relay.take() {
        // What the machine decoded, then the rest of the frame through the
        // relay's own decoder.
        handed_on.extend_from_slice(&relay.early_rfb);
        let mut conn = relay.websocket.expect("a WebSocket viewer");
        let mut rest = relay.raw.to_vec();
        rest.extend_from_slice(&p.pending);
        let mut at = 0;
        loop {
            match conn.decode(&mut rest[at..]) {
                Ok((used, Some(ws::frame::Decoded::Data { bytes, .. }))) => {
                    handed_on.extend_from_slice(bytes);
                    at += used;
                }
                Ok((0, _)) => break,
                Ok((used, _)) => at += used,
                Err(e) => panic!("the relay's frames: {e:?}"),
            }
        }
    }
    (p.events, server_payloads(&p.to_viewer), p.error, handed_on)
}

/// RFB's SetEncodings with `n` encodings (raw, then pseudo-encodings).
fn set_encodings(n: u16) -> Vec<u8> {
    let mut v = vec![2, 0];
    v.extend_from_slice(&n.to_be_bytes());
    for i in 0..i32::from(n) {
        v.extend_from_slice(&(-i).to_be_bytes());
    }
    v
}

/// The same outcome as whole for reads of every size that matters (one
/// byte, the fuzz case's mixed reads, about a frame header, about the RFB
/// buffer, more than it).
fn pipelined_every_way(frame: &[u8]) -> Pipelined {
    let whole = pipelined(frame, &[usize::MAX]);
    for sizes in [
        &[1][..],
        &[1, 5, 12],
        &[7],
        &[14],
        &[64],
        &[255],
        &[256],
        &[270],
        &[271],
        &[300],
        &[512],
    ] {
        assert_eq!(pipelined(frame, sizes), whole, "reads of {sizes:?}");
    }
    whole
}

#[test]
fn a_protocol_version_sent_with_the_upgrade_gets_the_security_types() {
    // ProtocolVersion alone in its frame, as noVNC sends it.
    let (events, frames, error, _) =
        pipelined_every_way(&client_frame(VERSION, [1, 2, 3, 4], false));
    assert_eq!(events, [Event::Admit]);
    assert_eq!(error, None);
    assert_eq!(frames, [(2, VERSION.to_vec()), (2, vec![1, 2])]);

    // The whole login in one frame, and the viewer's first messages with it,
    // longer than the RFB buffer: every answer in a frame of its own, and
    // everything after the response handed on in order. Lengths around
    // where the first decoded piece outgrows the buffer.
    for n in [0, 40, 56, 57, 58, 59, 60, 64, 100, 200] {
        let mut payload = login("secret");
        let answered = payload.len();
        payload.push(1); // ClientInit
        payload.extend(set_encodings(n));
        let frame = client_frame(&payload, [0x0d; 4], false);
        let (events, frames, error, handed_on) = pipelined_every_way(&frame);
        assert_eq!(error, None, "{} payload bytes", payload.len());
        assert!(
            matches!(events[..], [Event::Admit, Event::Authenticated(_)]),
            "{} payload bytes: {events:?}",
            payload.len()
        );
        assert_eq!(
            frames,
            [
                (2, VERSION.to_vec()),
                (2, vec![1, 2]),
                (2, CHALLENGE.to_vec()),
                (2, vec![0, 0, 0, 0]),
            ],
            "{} payload bytes",
            payload.len()
        );
        assert_eq!(
            handed_on,
            payload[answered..],
            "{} payload bytes",
            payload.len()
        );
    }
}

#[test]
fn garbage_sent_with_the_upgrade_is_not_rfb_whole_and_in_any_split() {
    let refused = |frames: &[(u8, Vec<u8>)]| {
        let mut close = 1008u16.to_be_bytes().to_vec();
        close.extend_from_slice(b"refused");
        frames == [(2, VERSION.to_vec()), (8, close)]
    };
    for len in [12, 100, 256, 261, 262, 263, 270, 300, 3341] {
        for byte in [0u8, 0xff, b'C'] {
            let frame = client_frame(&vec![byte; len], [0x0d; 4], false);
            let (events, frames, error, _) = pipelined_every_way(&frame);
            assert_eq!(events, [Event::Admit], "{len} x {byte:#x}");
            assert_eq!(
                error,
                Some(Error::Rfb(server::Error::NotRfb)),
                "{len} x {byte:#x}"
            );
            assert!(refused(&frames), "{len} x {byte:#x}: {frames:?}");
        }
    }
    // The fuzz case's shape: a frame that says 3,341 bytes, of which 262
    // (a piece longer than the RFB buffer) arrived with the upgrade.
    let mut frame = client_frame(&[0u8; 3341], [0x0d; 4], false);
    frame.truncate(8 + 262);
    let (_, frames, error, _) = pipelined_every_way(&frame);
    assert_eq!(error, Some(Error::Rfb(server::Error::NotRfb)));
    assert!(refused(&frames), "{frames:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// A first frame of any length, a login or garbage, with the upgrade in
    /// one write: in any split, the same outcome as whole.
    #[test]
    fn a_pipelined_first_frame_any_split_same_result(
        sizes in vncap_tests::harness::splits(400),
        tail in prop::collection::vec(any::<u8>(), 0..700),
        garbage: bool,
        mask: [u8; 4],
    ) {
        let mut payload = if garbage { b"not RFB at all".to_vec() } else { login("secret") };
        payload.extend_from_slice(&tail);
        let frame = client_frame(&payload, mask, false);
        let whole = pipelined(&frame, &[usize::MAX]);
        if garbage {
            prop_assert_eq!(whole.2, Some(Error::Rfb(server::Error::NotRfb)));
        } else {
            prop_assert!(whole.1.starts_with(&[(2, VERSION.to_vec()), (2, vec![1, 2])]), "{:?}", whole);
        }
        prop_assert_eq!(pipelined(&frame, &sizes), whole);
    }
}
