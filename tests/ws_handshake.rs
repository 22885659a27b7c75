//! `ws::handshake` rules (RFC 6455 section 4.2 and the design's subprotocol
//! and answer rules), every one through the shared harness whole and byte by
//! byte; plus random input: no panic, sticky errors.

use proptest::prelude::*;
use vncap_core::ws::handshake::{accept_key, Config, Event, Handshake};
use vncap_core::ws::{Error, Subprotocol};
use vncap_core::Machine;
use vncap_tests::harness::{run, run_bytewise, run_whole, splits, Transcript};

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fn request(extra: &str) -> String {
    format!(
        "GET /websockify?token=abc&x=1 HTTP/1.1\r\nHost: vncap:7001\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

/// Runs a request whole and byte by byte (asserting both agree); `decide`
/// plays the driver on `Event::Request`.
fn go(
    config: Config<'static>,
    req: &[u8],
    decide: fn(&mut Handshake<'static>),
) -> Transcript<Event, Error> {
    let hook = move |m: &mut Handshake<'static>, e: &Event| {
        if *e == Event::Request {
            decide(m)
        }
    };
    let whole = run_whole(&mut Handshake::new(config), req, hook);
    let bytes = run_bytewise(&mut Handshake::new(config), req, hook);
    assert_eq!(whole, bytes, "whole and bytewise differ");
    whole
}

fn accept(m: &mut Handshake) {
    m.accept()
}

fn text(t: &Transcript<Event, Error>) -> String {
    String::from_utf8(t.output.clone()).unwrap()
}

#[test]
fn rfc_example_no_subprotocol() {
    let t = go(
        Config::default(),
        request("Origin: http://example.com\r\n").as_bytes(),
        accept,
    );
    assert_eq!(t.error, None);
    assert_eq!(
        t.events,
        vec![Event::Request, Event::Upgraded(Subprotocol::None)]
    );
    assert_eq!(
        text(&t),
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
    );
    assert!(!text(&t).contains("Sec-WebSocket-Protocol"));
    assert_eq!(&accept_key(KEY.as_bytes()), b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

#[test]
fn request_is_exposed() {
    let mut h = Handshake::new(Config::default());
    let req = request("Origin: https://gwm.example.org\r\n");
    assert_eq!(h.handle_input(req.as_bytes()), Ok(req.len()));
    assert_eq!(h.poll_event(), Some(Event::Request));
    let r = h.request().unwrap();
    assert_eq!(r.path(), "/websockify");
    assert_eq!(r.query(), "token=abc&x=1");
    assert_eq!(r.query_param("token"), Some("abc"));
    assert_eq!(r.query_param("x"), Some("1"));
    assert_eq!(r.query_param("y"), None);
    assert_eq!(r.origin.as_deref(), Some("https://gwm.example.org"));
    assert_eq!(r.subprotocol, Subprotocol::None);
    // Nothing goes out before the driver decides.
    assert_eq!(h.poll_output(&mut [0; 64]), 0);
    assert!(!h.is_upgraded());
}

#[test]
fn binary_is_echoed_and_preferred() {
    for offer in ["binary", "base64, binary", "binary, base64", "foo,binary"] {
        let t = go(
            Config::default(),
            request(&format!("Sec-WebSocket-Protocol: {offer}\r\n")).as_bytes(),
            accept,
        );
        assert_eq!(t.events[1], Event::Upgraded(Subprotocol::Binary), "{offer}");
        assert!(
            text(&t).contains("\r\nSec-WebSocket-Protocol: binary\r\n"),
            "{offer}"
        );
    }
    // Offered in two header lines.
    let t = go(
        Config::default(),
        request("Sec-WebSocket-Protocol: base64\r\nSec-WebSocket-Protocol: binary\r\n").as_bytes(),
        accept,
    );
    assert_eq!(t.events[1], Event::Upgraded(Subprotocol::Binary));
}

#[test]
fn base64_only_gets_base64() {
    let t = go(
        Config::default(),
        request("Sec-WebSocket-Protocol: base64\r\n").as_bytes(),
        accept,
    );
    assert_eq!(t.events[1], Event::Upgraded(Subprotocol::Base64));
    assert!(text(&t).contains("\r\nSec-WebSocket-Protocol: base64\r\n"));
}

#[test]
fn unknown_subprotocol_gets_none() {
    let t = go(
        Config::default(),
        request("Sec-WebSocket-Protocol: chat\r\n").as_bytes(),
        accept,
    );
    assert_eq!(t.events[1], Event::Upgraded(Subprotocol::None));
    assert!(!text(&t).contains("Sec-WebSocket-Protocol"));
}

#[test]
fn trailing_bytes_are_left_to_the_caller() {
    let mut req = request("").into_bytes();
    let n = req.len();
    req.extend_from_slice(&[0x82, 0x80, 1, 2, 3, 4]);
    let t = go(Config::default(), &req, accept);
    assert_eq!(t.leftover, &req[n..]);
    let mut h = Handshake::new(Config::default());
    assert_eq!(h.handle_input(&req), Ok(n));
}

fn status(t: &Transcript<Event, Error>) -> u16 {
    text(t)[9..12].parse().unwrap()
}

fn bad(req: &str, want: Error) -> Transcript<Event, Error> {
    let t = go(Config::default(), req.as_bytes(), accept);
    assert_eq!(t.error, Some(want), "{req:?}");
    assert_eq!(Some(status(&t)), want.http_status(), "{req:?}");
    assert!(text(&t).ends_with(&format!("\r\n\r\n{}\n", want.reason())));
    assert!(text(&t).contains("Connection: close\r\n"));
    assert!(t.events.is_empty());
    t
}

#[test]
fn bad_requests_get_real_http_answers() {
    let r = request("");
    bad(&r.replace("GET ", "POST "), Error::MethodNotAllowed);
    assert!(
        text(&bad(&r.replace("GET ", "PUT "), Error::MethodNotAllowed)).contains("Allow: GET\r\n")
    );
    bad(&r.replace("HTTP/1.1", "HTTP/1.0"), Error::MalformedRequest);
    bad(
        &r.replace("Upgrade: websocket\r\n", ""),
        Error::NotWebSocket,
    );
    bad(
        &r.replace("Upgrade: websocket", "Upgrade: h2c"),
        Error::NotWebSocket,
    );
    bad(
        &r.replace("Connection: keep-alive, Upgrade", "Connection: keep-alive"),
        Error::MissingConnectionUpgrade,
    );
    bad(&r.replace("Host: vncap:7001\r\n", ""), Error::MissingHost);
    bad(&r.replace(KEY, "dGhlIHNhbXBsZQ=="), Error::BadKey);
    bad(&r.replace(KEY, "not base64 at all!!!!!!!"), Error::BadKey);
    bad(
        &r.replace(&format!("Sec-WebSocket-Key: {KEY}\r\n"), ""),
        Error::BadKey,
    );
    bad(
        &request(&format!("Sec-WebSocket-Key: {KEY}\r\n")),
        Error::BadKey,
    );
    bad("GET http://x/ HTTP/1.1\r\n\r\n", Error::MalformedRequest);
    bad("\x00\x01garbage\r\n\r\n", Error::MalformedRequest);
    let long = format!("/{}", "a".repeat(600));
    bad(&r.replace("/websockify", &long), Error::UriTooLong);
    bad(
        &request(&format!("Origin: http://{}\r\n", "o".repeat(300))),
        Error::OriginTooLong,
    );
}

/// A header that names one thing, sent twice, is refused: a proxy in
/// front and vncap could each believe a different one (the Origin check,
/// the Host a balancer routed on).
#[test]
fn headers_that_must_come_once_are_refused_when_repeated() {
    for twice in [
        "Host: other:7001\r\n",
        "Origin: http://evil.example\r\nOrigin: http://gwm.example\r\n",
        "Upgrade: websocket\r\n",
        "Sec-WebSocket-Version: 13\r\n",
    ] {
        bad(&request(twice), Error::DuplicateHeader);
    }
    // Lists are not repeats: one Origin, two subprotocol headers are fine.
    let t = go(
        Config::default(),
        request("Origin: http://gwm.example\r\nSec-WebSocket-Protocol: binary\r\nSec-WebSocket-Protocol: base64\r\n").as_bytes(),
        accept,
    );
    assert_eq!(t.error, None);
}

#[test]
fn wrong_version_is_426_with_version_13() {
    let r = request("");
    for v in ["8", "12", "14", ""] {
        let t = bad(
            &r.replace("Version: 13", &format!("Version: {v}")),
            Error::UnsupportedVersion,
        );
        assert!(text(&t).starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
        assert!(text(&t).contains("\r\nSec-WebSocket-Version: 13\r\n"));
    }
    bad(
        &r.replace("Sec-WebSocket-Version: 13\r\n", ""),
        Error::UnsupportedVersion,
    );
}

#[test]
fn header_limit_gives_431() {
    let config = Config {
        max_header_bytes: 300,
        ..Config::default()
    };
    // Fits: fine.
    let t = go(config, request("").as_bytes(), accept);
    assert_eq!(t.error, None);
    // The buffer holds 300 bytes and no end of the header block.
    let big = request(&format!("X-Pad: {}\r\n", "p".repeat(200)));
    let t = go(config, big.as_bytes(), accept);
    assert_eq!(t.error, Some(Error::HeaderTooLarge));
    assert_eq!(status(&t), 431);
    // Short of the limit: just need more.
    let mut h = Handshake::new(config);
    assert_eq!(h.handle_input(&big.as_bytes()[..299]), Ok(0));
    // Default limit is 8 KiB.
    let huge = request(&format!("X-Pad: {}\r\n", "p".repeat(9000)));
    let mut h = Handshake::new(Config::default());
    assert_eq!(h.handle_input(&huge.as_bytes()[..8191]), Ok(0));
    assert_eq!(
        h.handle_input(&huge.as_bytes()[..8192]),
        Err(Error::HeaderTooLarge)
    );
    // Too many header lines is 431 too.
    let many: String = (0..60).map(|i| format!("X-{i}: y\r\n")).collect();
    bad(&request(&many), Error::TooManyHeaders);
}

#[test]
fn origin_allow_list() {
    static LIST: [&str; 2] = ["https://gwm.example.org", "http://localhost:8000"];
    let config = Config {
        allowed_origins: &LIST,
        ..Config::default()
    };
    let ok = go(
        config,
        request("Origin: HTTPS://GWM.example.org\r\n").as_bytes(),
        accept,
    );
    assert_eq!(ok.error, None);
    for origin in ["Origin: https://evil.example.org\r\n", ""] {
        let t = go(config, request(origin).as_bytes(), accept);
        assert_eq!(t.error, Some(Error::OriginNotAllowed));
        assert!(text(&t).starts_with("HTTP/1.1 403 Forbidden\r\n"));
    }
    static ANY: [&str; 1] = ["*"];
    let t = go(
        Config {
            allowed_origins: &ANY,
            ..Config::default()
        },
        request("Origin: https://x\r\n").as_bytes(),
        accept,
    );
    assert_eq!(t.error, None);
}

#[test]
fn driver_rejects() {
    let t = go(Config::default(), request("").as_bytes(), |m| m.reject(404));
    assert_eq!(t.events, vec![Event::Request]);
    assert_eq!(
        t.error,
        Some(Error::Rejected(404)),
        "sticky from the next input on"
    );
    assert!(text(&t).starts_with("HTTP/1.1 404 Not Found\r\n"));
    let mut h = Handshake::new(Config::default());
    let req = request("");
    h.handle_input(req.as_bytes()).unwrap();
    h.reject(404);
    assert_eq!(h.handle_input(b"x"), Err(Error::Rejected(404)));
    assert_eq!(Error::Rejected(404).http_status(), Some(404));
    // accept after reject does nothing; non-error statuses become 400.
    h.accept();
    assert!(!h.is_upgraded());
    let mut h = Handshake::new(Config::default());
    h.handle_input(req.as_bytes()).unwrap();
    h.reject(200);
    assert_eq!(h.handle_input(b""), Err(Error::Rejected(400)));
}

#[test]
fn accept_before_request_does_nothing() {
    let mut h = Handshake::new(Config::default());
    h.accept();
    assert_eq!(h.poll_output(&mut [0; 64]), 0);
    assert_eq!(h.poll_event(), None);
}

proptest! {
    #[test]
    fn any_split_same_transcript(chunks in splits(40)) {
        let req = request("Sec-WebSocket-Protocol: binary\r\nOrigin: http://a\r\n");
        let whole = run_whole(&mut Handshake::new(Config::default()), req.as_bytes(), |m, _| m.accept());
        let t = run(&mut Handshake::new(Config::default()), req.as_bytes(), &chunks, |m, _| m.accept());
        prop_assert_eq!(t, whole);
    }

    #[test]
    fn random_bytes_never_panic(input in prop::collection::vec(any::<u8>(), 0..600), chunks in splits(64)) {
        // The harness asserts errors are sticky.
        let config = Config { max_header_bytes: 256, ..Config::default() };
        let _ = run(&mut Handshake::new(config), &input, &chunks, |m, _| m.accept());
    }

    #[test]
    fn mutated_requests_never_panic(pos in 0usize..200, byte in any::<u8>(), chunks in splits(64)) {
        let mut req = request("Sec-WebSocket-Protocol: base64\r\n").into_bytes();
        let p = pos % req.len();
        req[p] = byte;
        let t = run(&mut Handshake::new(Config::default()), &req, &chunks, |m, _| m.accept());
        if let Some(e) = t.error {
            prop_assert!(e.http_status().is_some());
        }
    }
}
