//! Replays vncap's recordings of real VeNCrypt logins to QEMU
//! (tests/fixtures/rfb/vencrypt/, made by `capture.sh` there: QEMU 7.2 with
//! `tls-creds-x509` or `tls-creds-anon`, vncap `serve --record
//! --backend-tls-dir`) through `rfb::client`. A recording holds the RFB
//! bytes before the TLS hand-off and the plaintext inside TLS, back to back;
//! the test driver calls `tls_established()` on `StartTls`, as the daemon
//! does once rustls is done, so:
//!
//! - the machine sends exactly vncap's recorded bytes (ClientInit, relayed
//!   from the viewer, is the one byte after them) and leaves QEMU's
//!   ServerInit unconsumed;
//! - nothing after the subtype acknowledgement is consumed before the
//!   hand-off (there the TLS records would be);
//! - the refusals (anonymous TLS, a wrong password with QEMU's reason) come
//!   out as the same error;
//! - whole, byte by byte, and any split (proptest) give the same transcript.

use proptest::prelude::*;
use vncap_core::rfb::{client, vencrypt};
use vncap_tests::fixture::{Dir, Fixture};
use vncap_tests::harness::{self, splits, Transcript};

/// What each recording must replay to.
struct Case {
    name: &'static str,
    subtype: Option<u32>,
    error: Option<client::Error>,
}

const CASES: [Case; 4] = [
    Case {
        name: "qemu-x509none",
        subtype: Some(vencrypt::X509_NONE),
        error: None,
    },
    Case {
        name: "qemu-x509vnc",
        subtype: Some(vencrypt::X509_VNC),
        error: None,
    },
    Case {
        name: "qemu-x509vnc-wrong-password",
        subtype: Some(vencrypt::X509_VNC),
        error: Some(client::Error::AuthenticationFailed),
    },
    Case {
        name: "qemu-tlsanon-refused",
        subtype: None,
        error: Some(client::Error::AnonymousTls),
    },
];

fn load(name: &str) -> Fixture {
    Fixture::load(&format!("rfb/vencrypt/{name}.txt"))
}

fn new_client(f: &Fixture) -> client::Client {
    let pw = f.get("password");
    client::Client::new((!pw.is_empty()).then_some(pw.as_bytes())).with_tls(client::Tls::Require)
}

/// The driver's part at the hand-off: TLS is "done" at once.
fn hand_off(c: &mut client::Client, e: &client::Event) {
    if *e == client::Event::StartTls {
        assert!(!c.is_tls());
        assert!(c.tls_established());
    }
}

fn run(f: &Fixture, sizes: &[usize]) -> (Transcript<client::Event, client::Error>, client::Client) {
    let mut c = new_client(f);
    let t = harness::run(&mut c, &f.stream(Dir::Server), sizes, hand_off);
    (t, c)
}

fn check(case: &Case) {
    let f = load(case.name);
    assert!(f.get("peers").contains("QEMU"), "{}: header", case.name);
    let (sent, got) = (f.stream(Dir::Client), f.stream(Dir::Server));
    let whole = run(&f, &[got.len()]).0;
    for (t, c) in [run(&f, &[got.len()]), run(&f, &vec![1; got.len()])] {
        assert_eq!(t, whole, "{}: whole and bytewise agree", case.name);
        assert_eq!(t.error, case.error, "{}", case.name);
        assert_eq!(c.subtype(), case.subtype, "{}", case.name);
        // What vncap sent: all of it but the relayed ClientInit.
        assert!(
            sent.starts_with(&t.output),
            "{}: what vncap sent",
            case.name
        );
        match case.error {
            None => {
                assert_eq!(t.events, [client::Event::StartTls, client::Event::LoggedIn]);
                assert_eq!(t.output.len(), sent.len() - 1, "{}: ClientInit", case.name);
                assert!(c.is_tls());
                // Left over: QEMU's ServerInit (640x480, "QEMU").
                assert_eq!(&t.leftover[..4], [2, 0x80, 1, 0xe0]);
                assert!(t.leftover.ends_with(b"QEMU"));
            }
            Some(client::Error::AuthenticationFailed) => {
                assert_eq!(t.events, [client::Event::StartTls]);
                assert_eq!(t.output, sent);
                assert_eq!(c.server_reason(), Some("Authentication failed?"));
                assert!(t.leftover.is_empty());
            }
            Some(e) => {
                assert!(t.events.is_empty());
                assert_eq!(t.output, sent);
                assert!(e.reason().contains("vnc_x509_path"));
                assert_eq!(c.offered_subtypes(), [vencrypt::TLS_NONE]);
            }
        }
    }
    // Before the hand-off nothing past the acknowledgement is consumed: feed
    // the plain part and a TLS record header without calling
    // tls_established.
    if case.subtype.is_some() {
        let mut c = new_client(&f);
        let mut plain = got.clone();
        plain.truncate(PLAIN_LEN);
        plain.extend_from_slice(&[0x16, 3, 3, 0, 0x7a]);
        let t = harness::run_whole(&mut c, &plain, |_, _| {});
        assert_eq!(t.events, [client::Event::StartTls]);
        assert_eq!(t.leftover, [0x16, 3, 3, 0, 0x7a], "{}", case.name);
    }
}

/// Length of QEMU's bytes up to its subtype acknowledgement: version (12),
/// one security type (2), VeNCrypt version (2), ok and one subtype (6), the
/// acknowledgement (1).
const PLAIN_LEN: usize = 12 + 2 + 2 + 6 + 1;

#[test]
fn qemu_vencrypt_recordings_replay() {
    for case in &CASES {
        check(case);
    }
}

proptest! {
    #[test]
    fn any_split_gives_the_same_transcript(case in 0..CASES.len(), sizes in splits(20)) {
        let f = load(CASES[case].name);
        let got = f.stream(Dir::Server);
        let whole = run(&f, &[got.len()]).0;
        prop_assert_eq!(run(&f, &sizes).0, whole);
    }
}
