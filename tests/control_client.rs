//! Property tests of `vncap_core::control::client` against the server side
//! (`vncap_core::control::Control`).
//!
//! - Any request `write_request` writes (random hosts and passwords with
//!   `"`, `\`, control characters, non-ASCII) is read back by the server as
//!   the same host, port, password, transport, preferred port and timeout,
//!   in both dialects, whole and in random splits.
//! - Any reply the server writes (`reply_ok`, `reply_failed`) is parsed back
//!   to the same port, password, expiry, token, URL path and reason.
//! - Arbitrary bytes, and valid replies with bytes changed, never panic
//!   `parse_reply`.

use proptest::prelude::*;
use vncap_core::control::client::{parse_reply, write_request, Ask, ClientError};
use vncap_core::control::{self, Control, Dialect, Event, Granted, Need, Transport};
use vncap_core::Machine;
use vncap_tests::harness::{run, splits};

fn config() -> control::Config {
    let mut c = control::Config::default();
    c.proxy_address.push_str("vnc.example.org").unwrap();
    c.max_timeout_ms = u64::MAX;
    c
}

/// A string of `chars` at most `max` bytes long, at least one char.
fn text(chars: impl Strategy<Value = char>, max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(chars, 1..24)
        .prop_map(move |cs| {
            let mut s = String::new();
            for c in cs {
                if s.len() + c.len_utf8() > max {
                    break;
                }
                s.push(c);
            }
            s
        })
        .prop_filter("not empty", |s| !s.is_empty())
}

/// Characters that stress JSON escaping: quotes, backslashes, control
/// characters, DEL, non-ASCII in 2, 3 and 4 bytes, and anything at all.
fn tricky() -> impl Strategy<Value = char> {
    prop_oneof![
        Just('"'),
        Just('\\'),
        Just('/'),
        (0u32..0x20).prop_map(|c| char::from_u32(c).unwrap()),
        Just('\u{7f}'),
        Just('\u{e9}'),
        Just('\u{2028}'),
        Just('\u{1F600}'),
        proptest::char::range('a', 'z'),
        any::<char>(),
    ]
}

/// A host as the server accepts it: no whitespace or control characters.
fn host() -> impl Strategy<Value = String> {
    let chars = prop_oneof![
        Just('"'),
        Just('\\'),
        Just('/'),
        Just('\u{e9}'),
        Just('\u{1F600}'),
        proptest::char::range('a', 'z'),
        any::<char>(),
    ];
    text(
        chars.prop_filter("host char", |c| !c.is_whitespace() && !c.is_control()),
        control::HOST_CAP,
    )
}

fn password() -> impl Strategy<Value = String> {
    // One that starts with NUL is the empty password to VNC (its key is
    // NUL-padded, C viewers stop at the first NUL): refused, not echoed.
    text(tricky(), control::PASSWORD_CAP).prop_filter("not empty to VNC", |p| !p.starts_with('\0'))
}

fn need() -> impl Strategy<Value = Need> {
    prop_oneof![Just(Need::No), Just(Need::Yes), Just(Need::Either)]
}

#[derive(Debug, Clone)]
struct Case {
    dialect: Dialect,
    host: String,
    port: u16,
    password: Option<String>,
    transport: Transport,
    preferred_port: Option<u16>,
    timeout_secs: Option<u32>,
}

fn case() -> impl Strategy<Value = Case> {
    let twisted = (need(), need(), password()).prop_map(|(tls, websocket, pw)| {
        (Dialect::Twisted, Transport { tls, websocket }, Some(pw))
    });
    let snf = (
        prop_oneof![
            Just(Transport::PLAIN),
            Just(Transport::WEBSOCKET),
            Just(Transport::WEBSOCKET_TLS)
        ],
        proptest::option::of(password()),
    )
        .prop_map(|(t, pw)| (Dialect::Snf, t, pw));
    (
        prop_oneof![twisted, snf],
        host(),
        1u16..,
        proptest::option::of(1u16..),
        proptest::option::of(1u32..),
    )
        .prop_map(
            |((dialect, transport, password), host, port, preferred_port, timeout_secs)| Case {
                dialect,
                host,
                port,
                password,
                transport,
                preferred_port,
                timeout_secs,
            },
        )
}

fn written(c: &Case) -> Vec<u8> {
    let ask = Ask {
        dialect: c.dialect,
        host: &c.host,
        port: c.port,
        password: c.password.as_deref(),
        transport: c.transport,
        preferred_port: c.preferred_port,
        timeout_secs: c.timeout_secs,
    };
    let mut buf = [0u8; control::MAX_INPUT];
    let n = write_request(&ask, &mut buf).unwrap();
    buf[..n].to_vec()
}

/// Blanked and cut like `parse_reply` keeps a reason.
fn kept_reason(reason: &str, trim: bool) -> Option<String> {
    let mut end = reason.len().min(200);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut s: String = reason[..end]
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if trim {
        s = s.trim().to_string();
    }
    (!s.is_empty()).then_some(s)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn requests_round_trip(c in case(), sizes in splits(64)) {
        let bytes = written(&c);
        prop_assert!(bytes.len() <= control::MAX_INPUT);
        let mut m = Control::new(config(), vncap_core::Instant::default());
        let t = run(&mut m, &bytes, &sizes, |_, _| {});
        prop_assert_eq!(t.error, None);
        prop_assert!(t.leftover.is_empty());
        prop_assert_eq!(t.events.len(), 1);
        let Event::Request(control::Request::Console(r)) = &t.events[0] else {
            panic!("not a console: {:?}", t.events[0]);
        };
        prop_assert_eq!(r.dialect, c.dialect);
        prop_assert_eq!(r.host.as_str(), c.host.as_str());
        prop_assert_eq!(r.port, c.port);
        prop_assert_eq!(r.password.as_ref().and_then(|s| s.as_str()), c.password.as_deref());
        prop_assert_eq!(r.transport, c.transport);
        prop_assert_eq!(r.preferred_port, c.preferred_port);
        prop_assert_eq!(r.timeout_ms, c.timeout_secs.map(|s| u64::from(s) * 1000));
    }

    #[test]
    fn replies_round_trip(
        c in case(),
        port in 1u16..,
        password in proptest::option::of(password()),
        expires_in in proptest::option::of(any::<u64>()),
        token in proptest::option::of(text(tricky(), 32)),
        url_path in proptest::option::of(text(tricky(), 49)),
        reason in proptest::option::of(proptest::collection::vec(tricky(), 0..120).prop_map(|v| v.into_iter().collect::<String>())),
    ) {
        let mut m = Control::new(config(), vncap_core::Instant::default());
        let request = written(&c);
        prop_assert_eq!(m.handle_input(&request), Ok(request.len()));
        prop_assert!(m.poll_event().is_some());
        match &reason {
            None => m.reply_ok(&Granted {
                port,
                password: password.as_deref(),
                expires_in,
                token: token.as_deref(),
                url_path: url_path.as_deref(),
            }),
            Some(r) => m.reply_failed(r),
        };
        let mut buf = [0u8; 4096];
        let n = m.poll_output(&mut buf);
        let a = parse_reply(c.dialect, &buf[..n]).unwrap();
        match (&reason, c.dialect) {
            (None, Dialect::Twisted) => {
                prop_assert!(a.ok);
                prop_assert_eq!(a.port, Some(port));
                prop_assert_eq!(a.password, None);
                prop_assert_eq!(a.token, None);
            }
            (None, Dialect::Snf) => {
                prop_assert!(a.ok);
                prop_assert_eq!(a.port, Some(port));
                prop_assert_eq!(a.password.as_ref().and_then(|s| s.as_str()), password.as_deref());
                prop_assert_eq!(a.expires_in, expires_in);
                prop_assert_eq!(a.token.as_ref().and_then(|s| s.as_str()), token.as_deref());
                prop_assert_eq!(a.url_path.as_ref().and_then(|s| s.as_str()), url_path.as_deref());
                prop_assert_eq!(a.proxy_address.as_deref(), Some("vnc.example.org"));
                prop_assert_eq!(a.reason, None);
            }
            (Some(r), d) => {
                prop_assert!(!a.ok);
                prop_assert_eq!(a.port, None);
                let want = kept_reason(r, d == Dialect::Twisted);
                prop_assert_eq!(a.reason.as_deref(), want.as_deref());
            }
        }
    }

    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        for d in [Dialect::Twisted, Dialect::Snf] {
            let _ = parse_reply(d, &bytes);
        }
    }

    #[test]
    fn damaged_replies_never_panic(
        which in 0usize..3,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let replies: [&[u8]; 3] = [
            b"{\"status\": \"OK\", \"source_port\": 7000, \"proxy_address\": \"vnc.example.org\", \"password\": \"aB3dE6gH\", \"expires_in\": 13, \"token\": \"00ff\", \"url_path\": \"websockify?token=00ff\", \"x\": [{\"y\": null}]}\n",
            b"{\"status\": \"FAILED\", \"source_port\": 0, \"proxy_address\": \"\", \"reason\": \"no \\\"port\\\" \\u00e9\"}",
            b"FAILED no free port\r\n",
        ];
        let mut bytes = replies[which].to_vec();
        for (i, b) in &edits {
            let i = i.index(bytes.len());
            bytes[i] = *b;
        }
        bytes.truncate(cut.index(bytes.len() + 1));
        for d in [Dialect::Twisted, Dialect::Snf] {
            match parse_reply(d, &bytes) {
                Ok(a) => prop_assert!(a.ok == a.port.is_some() || !a.ok),
                Err(e) => prop_assert!(!e.reason().is_empty()),
            }
        }
    }
}

#[test]
fn errors_say_why() {
    let mut buf = [0u8; 8];
    let ask = Ask {
        dialect: Dialect::Snf,
        host: "h",
        port: 5900,
        password: None,
        transport: Transport::PLAIN,
        preferred_port: None,
        timeout_secs: None,
    };
    let e = write_request(&ask, &mut buf).unwrap_err();
    assert_eq!(e, ClientError::BufferTooSmall);
    assert_eq!(e.to_string(), "request does not fit in the buffer");
}
