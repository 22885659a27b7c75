//! `policy` (the Flash socket-policy responder) through the shared harness,
//! and `sniff` on real first bytes (recorded fixtures) and on every prefix.

use proptest::prelude::*;
use vncap_core::policy::{self, Config, Event, Policy, REQUEST};
use vncap_core::sniff::{sniff, Kind, POLICY_PREFIX, SILENCE_TIMEOUT_MS};
use vncap_core::Machine;
use vncap_tests::fixture::{Dir, Fixture};
use vncap_tests::harness::{run, run_bytewise, run_whole, splits};

fn answer(config: &Config) -> Vec<u8> {
    let mut v = policy::policy_xml(config).unwrap().as_bytes().to_vec();
    v.push(0);
    v
}

#[test]
fn answers_the_request_with_the_policy_and_a_nul() {
    let p = || Policy::new(&Config::default()).unwrap();
    let t = run_whole(&mut p(), REQUEST, |_, _| {});
    assert_eq!(t.error, None);
    assert_eq!(t.events, vec![Event::Answered]);
    assert_eq!(t.output, answer(&Config::default()));
    assert_eq!(*t.output.last().unwrap(), 0);
    let text = std::str::from_utf8(&t.output[..t.output.len() - 1]).unwrap();
    assert!(text.starts_with("<?xml version=\"1.0\"?>"));
    assert!(text.contains("<cross-domain-policy>"));
    assert!(text.contains("<allow-access-from domain=\"*\" to-ports=\"7000-8000\" />"));
    assert!(!text.contains("to-ports=\"*\""));
    assert_eq!(run_bytewise(&mut p(), REQUEST, |_, _| {}), t);
}

#[test]
fn configured_domain_and_ports() {
    let c = Config {
        domain: "*.example.org",
        ports: (5900, 5900),
    };
    let t = run_whole(&mut Policy::new(&c).unwrap(), REQUEST, |_, _| {});
    let text = String::from_utf8(t.output).unwrap();
    assert!(text.contains("domain=\"*.example.org\" to-ports=\"5900\""));
    for bad in ["", "a\"b", "<x>", "a&b", "a b"] {
        assert_eq!(
            Policy::new(&Config {
                domain: bad,
                ..Config::default()
            })
            .err(),
            Some(policy::ConfigError::BadDomain)
        );
    }
    let long = "a".repeat(256);
    assert!(Policy::new(&Config {
        domain: &long,
        ..Config::default()
    })
    .is_err());
    assert_eq!(
        Policy::new(&Config {
            ports: (8000, 7000),
            ..Config::default()
        })
        .err(),
        Some(policy::ConfigError::BadPorts)
    );
}

#[test]
fn anything_else_is_an_error_and_trailing_bytes_stay() {
    for input in [
        &b"<policy-file-request/>x"[..],
        b"GET / HTTP/1.1\r\n",
        b"<policy-file-request/ >\0",
        b"\0",
    ] {
        let t = run_whole(
            &mut Policy::new(&Config::default()).unwrap(),
            input,
            |_, _| {},
        );
        assert_eq!(t.error, Some(policy::Error::NotPolicyRequest), "{input:?}");
        assert!(t.output.is_empty() && t.events.is_empty());
    }
    let mut input = REQUEST.to_vec();
    input.extend_from_slice(b"after");
    let t = run_whole(
        &mut Policy::new(&Config::default()).unwrap(),
        &input,
        |_, _| {},
    );
    assert_eq!(t.leftover, b"after");
    assert_eq!(t.error, None);
    // A prefix is consumed as it arrives; the answer waits for the NUL.
    let mut p = Policy::new(&Config::default()).unwrap();
    assert_eq!(p.handle_input(b"<policy"), Ok(7));
    assert_eq!(p.poll_output(&mut [0; 64]), 0);
    assert_eq!(p.handle_input(b"-file-request/>\0"), Ok(16));
    assert_eq!(p.poll_event(), Some(Event::Answered));
    assert_eq!(p.poll_timeout(), None);
}

proptest! {
    #[test]
    fn any_split_same_answer(chunks in splits(8)) {
        let whole = run_whole(&mut Policy::new(&Config::default()).unwrap(), REQUEST, |_, _| {});
        let t = run(&mut Policy::new(&Config::default()).unwrap(), REQUEST, &chunks, |_, _| {});
        prop_assert_eq!(t, whole);
    }

    #[test]
    fn random_bytes_never_panic(input in prop::collection::vec(any::<u8>(), 0..64), chunks in splits(8)) {
        // The harness asserts errors are sticky.
        let _ = run(&mut Policy::new(&Config::default()).unwrap(), &input, &chunks, |_, _| {});
    }

    #[test]
    fn sniff_never_panics(input in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = sniff(&input);
    }
}

#[test]
fn sniff_real_first_bytes() {
    let hello = Fixture::load("sniff/tls-clienthello.txt").stream(Dir::Client);
    assert_eq!(sniff(&hello), Some(Kind::Tls));
    for name in [
        "ws/websockify-none.txt",
        "ws/websockify-binary.txt",
        "ws/base64.txt",
    ] {
        let get = Fixture::load(name).stream(Dir::Client);
        assert_eq!(sniff(&get), Some(Kind::Http), "{name}");
    }
    assert_eq!(sniff(REQUEST), Some(Kind::FlashPolicy));
    assert_eq!(sniff(POLICY_PREFIX), Some(Kind::FlashPolicy));
    // A viewer that talks first (an RFB ProtocolVersion) is not what we expect.
    assert_eq!(sniff(b"RFB 003.008\n"), Some(Kind::Unknown));
}

#[test]
fn sniff_prefixes_need_more() {
    let hello = Fixture::load("sniff/tls-clienthello.txt").stream(Dir::Client);
    let get = Fixture::load("ws/websockify-none.txt").stream(Dir::Client);
    assert_eq!(sniff(&[]), None);
    assert_eq!(sniff(&hello[..1]), None);
    assert_eq!(sniff(&hello[..2]), Some(Kind::Tls));
    for n in 1..4 {
        assert_eq!(sniff(&get[..n]), None, "{n}");
    }
    assert_eq!(sniff(&get[..4]), Some(Kind::Http));
    for n in 1..POLICY_PREFIX.len() {
        assert_eq!(sniff(&POLICY_PREFIX[..n]), None, "{n}");
    }
    assert_eq!(sniff(b"GET\t"), Some(Kind::Unknown));
    assert_eq!(sniff(&[0x16, 0x01]), Some(Kind::Unknown));
    const { assert!(SILENCE_TIMEOUT_MS >= 100 && SILENCE_TIMEOUT_MS <= 2000) };
}
