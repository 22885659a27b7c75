//! Replays real RFB handshakes (tests/fixtures/rfb/, recorded from TigerVNC's
//! Xvnc and vncdotool by `capture.py` there) through `vncap_core::rfb`:
//!
//! - `rfb::server`, fed the viewer's recorded bytes with the recorded
//!   challenge and the server's password, must send exactly what Xvnc sent up
//!   to SecurityResult (the test driver calls `accept()` on `Authenticated`),
//!   and leave the viewer's ClientInit unconsumed;
//! - `rfb::client`, fed Xvnc's recorded bytes with the viewer's password, must
//!   send exactly what vncdotool sent up to the end of authentication, and
//!   leave ServerInit unconsumed;
//! - both give the same transcript for any split of the input (proptest);
//! - VNC DES reproduces every recorded response.
//!
//! Not here: the machines' unit tests (in their modules) and the daemon.

use proptest::prelude::*;
use vncap_core::rfb::{client, des, server, Version};
use vncap_tests::fixture::{Dir, Fixture};
use vncap_tests::harness::{self, splits, Transcript};

fn load(name: &str) -> Fixture {
    Fixture::load(&format!("rfb/{name}"))
}

fn challenge(f: &Fixture) -> [u8; 16] {
    f.get_hex("challenge")
        .try_into()
        .expect("16-byte challenge")
}

/// Whether the recording ends with the viewer's ClientInit and ServerInit
/// (a successful login) rather than a failure.
fn logged_in(f: &Fixture) -> bool {
    f.header.get("result").is_none_or(|r| r == "ok")
}

/// The bytes each side sent before the relay would take over, and what the
/// relay would get: on a successful login the viewer's ClientInit (its last
/// byte) and Xvnc's ServerInit (its last record) are cut off.
struct Cut {
    server_sent: Vec<u8>,
    server_init: Vec<u8>,
    viewer_sent: Vec<u8>,
    client_init: Vec<u8>,
}

fn cut(f: &Fixture) -> Cut {
    let mut viewer_sent = f.stream(Dir::Client);
    let mut server_sent = f.stream(Dir::Server);
    let (mut client_init, mut server_init) = (Vec::new(), Vec::new());
    if logged_in(f) {
        client_init = viewer_sent.split_off(viewer_sent.len() - 1);
        let (dir, last) = f.records.last().unwrap();
        assert_eq!(*dir, Dir::Server, "ServerInit comes last");
        server_init = server_sent.split_off(server_sent.len() - last.len());
    }
    Cut {
        server_sent,
        server_init,
        viewer_sent,
        client_init,
    }
}

fn version(f: &Fixture) -> Version {
    match f.get("version") {
        "3.3" => Version::V3_3,
        "3.7" => Version::V3_7,
        "3.8" => Version::V3_8,
        v => panic!("fixture version {v}"),
    }
}

/// The server machine as Xvnc was set up (the `None` recordings have no
/// password or challenge: the machine refuses those viewers anyway).
fn new_server(f: &Fixture) -> server::Server {
    let pw = f
        .header
        .get("server-password")
        .map_or("secret", String::as_str);
    let challenge = f.header.get("challenge").map_or([7; 16], |_| challenge(f));
    server::Server::new(pw.as_bytes(), challenge)
}

/// The client machine as vncdotool was set up: its password, and its maximum
/// version (vncdotool was capped at 3.7 or 3.3 by the capture script, so the
/// version it answered Xvnc's 3.8 with is its cap).
fn new_client(f: &Fixture) -> client::Client {
    let pw = f.get("password");
    client::Client::new((!pw.is_empty()).then_some(pw.as_bytes())).with_max_version(version(f))
}

fn accept(s: &mut server::Server, e: &server::Event) {
    assert_eq!(*e, server::Event::Authenticated);
    assert!(s.accept());
}

fn run_server(f: &Fixture, sizes: &[usize]) -> Transcript<server::Event, server::Error> {
    harness::run(&mut new_server(f), &f.stream(Dir::Client), sizes, accept)
}

fn run_client(f: &Fixture, sizes: &[usize]) -> Transcript<client::Event, client::Error> {
    harness::run(&mut new_client(f), &f.stream(Dir::Server), sizes, |_, _| {})
}

/// rfb::server reproduces Xvnc's bytes for a VNC-Authentication recording.
fn check_server(name: &str) {
    let f = load(name);
    let cut = cut(&f);
    let input = f.stream(Dir::Client);
    // Left over: ClientInit after a success; after a failure the refused
    // response (a message the machine refuses is not consumed).
    let leftover = if logged_in(&f) {
        cut.client_init.clone()
    } else {
        input[input.len() - 16..].to_vec()
    };
    for t in [
        harness::run_whole(&mut new_server(&f), &input, accept),
        harness::run_bytewise(&mut new_server(&f), &input, accept),
    ] {
        assert_eq!(t.output, cut.server_sent, "{name}: server bytes");
        assert_eq!(t.leftover, leftover, "{name}: leftover");
        if logged_in(&f) {
            assert_eq!(t.error, None);
            assert_eq!(t.events, [server::Event::Authenticated]);
        } else {
            assert_eq!(t.error, Some(server::Error::AuthenticationFailed));
            assert!(t.events.is_empty());
        }
    }
    let mut s = new_server(&f);
    harness::run_whole(&mut s, &input, accept);
    assert_eq!(s.version(), Some(version(&f)));
    let attempt = if logged_in(&f) {
        server::PasswordAttempt::Correct
    } else {
        server::PasswordAttempt::Wrong
    };
    assert_eq!(s.password_attempt(), attempt);
}

/// rfb::client reproduces vncdotool's bytes against Xvnc's recording.
fn check_client(name: &str) {
    let f = load(name);
    let cut = cut(&f);
    let input = f.stream(Dir::Server);
    for t in [
        harness::run_whole(&mut new_client(&f), &input, |_, _| {}),
        harness::run_bytewise(&mut new_client(&f), &input, |_, _| {}),
    ] {
        assert_eq!(t.output, cut.viewer_sent, "{name}: viewer bytes");
        // ServerInit after a success; nothing after a failure (the server's
        // failure message, reason included, is consumed).
        assert_eq!(t.leftover, cut.server_init, "{name}: leftover");
        if logged_in(&f) {
            assert_eq!(t.error, None);
            assert_eq!(t.events, [client::Event::LoggedIn]);
        } else {
            assert_eq!(t.error, Some(client::Error::AuthenticationFailed));
            assert!(t.events.is_empty());
        }
    }
    let mut c = new_client(&f);
    harness::run_whole(&mut c, &input, |_, _| {});
    assert_eq!(c.version(), Some(version(&f)));
    let chosen: u8 = f.get("security-type").parse().unwrap();
    assert_eq!(c.security_type(), Some(chosen));
    if let Some(offered) = f.header.get("offered") {
        let offered: Vec<u8> = offered.split(' ').map(|t| t.parse().unwrap()).collect();
        assert_eq!(c.offered_types(), offered);
    }
    assert_eq!(
        c.server_reason(),
        f.header.get("reason").map(String::as_str)
    );
}

macro_rules! fixture_tests {
    ($($module:ident => $file:literal, server: $server:expr;)*) => {$(
        mod $module {
            use super::*;

            #[test]
            fn client_replay() {
                check_client($file);
            }

            #[test]
            fn server_replay() {
                if $server {
                    check_server($file);
                }
            }

            proptest! {
                #[test]
                fn client_any_split(sizes in splits(40)) {
                    let f = load($file);
                    let whole = run_client(&f, &[usize::MAX]);
                    prop_assert_eq!(run_client(&f, &sizes), whole);
                }

                #[test]
                fn server_any_split(sizes in splits(40)) {
                    let f = load($file);
                    let whole = run_server(&f, &[usize::MAX]);
                    prop_assert_eq!(run_server(&f, &sizes), whole);
                }
            }
        }
    )*};
}

fixture_tests! {
    vncauth_3_8 => "vncauth-3.8.txt", server: true;
    vncauth_3_7 => "vncauth-3.7.txt", server: true;
    vncauth_3_3 => "vncauth-3.3.txt", server: true;
    vncauth_3_8_wrong_password => "vncauth-3.8-wrong-password.txt", server: true;
    vncauth_3_3_wrong_password => "vncauth-3.3-wrong-password.txt", server: true;
    none_3_8 => "none-3.8.txt", server: false;
    none_3_7 => "none-3.7.txt", server: false;
    none_3_3 => "none-3.3.txt", server: false;
}

const ALL: [&str; 8] = [
    "vncauth-3.8.txt",
    "vncauth-3.7.txt",
    "vncauth-3.3.txt",
    "vncauth-3.8-wrong-password.txt",
    "vncauth-3.3-wrong-password.txt",
    "none-3.8.txt",
    "none-3.7.txt",
    "none-3.3.txt",
];

/// VNC DES against every recorded challenge/response pair (Xvnc accepted the
/// `secret` ones; the `wrong` ones are what vncdotool computed).
#[test]
fn des_reproduces_every_recorded_response() {
    let mut checked = 0;
    for name in ALL {
        let f = load(name);
        if f.get("security-type") != "2" {
            continue;
        }
        let response = des::response(f.get("password").as_bytes(), &challenge(&f));
        assert_eq!(response.to_vec(), f.get_hex("response"), "{name}");
        // The header agrees with the recorded bytes.
        let c = f.stream(Dir::Client);
        assert!(c.windows(16).any(|w| w == response), "{name}");
        assert!(f
            .stream(Dir::Server)
            .windows(16)
            .any(|w| w == challenge(&f)));
        checked += 1;
    }
    assert_eq!(checked, 5);
}

/// CVE-2022-36436 with real bytes: vncdotool, having picked None from Xvnc's
/// list, is refused by rfb::server, never authenticated.
#[test]
fn cve_2022_36436_recorded_none_viewers_are_refused() {
    for (name, answer) in [
        (
            "none-3.8.txt",
            &b"\0\0\0\x01\0\0\0\x19security type not offered"[..],
        ),
        ("none-3.7.txt", &b"\0\0\0\x01"[..]),
    ] {
        let f = load(name);
        let mut s = server::Server::new(b"secret", [7; 16]);
        let t = harness::run_whole(&mut s, &f.stream(Dir::Client), accept);
        assert_eq!(t.error, Some(server::Error::SecurityTypeRefused), "{name}");
        assert!(t.events.is_empty());
        assert!(!s.is_accepted());
        assert!(t.output.ends_with(answer), "{name}: {:?}", t.output);
    }
    // A 3.3 viewer that expected None sends ClientInit at once: taken as the
    // start of a response, it never authenticates.
    let f = load("none-3.3.txt");
    let mut s = server::Server::new(b"secret", [7; 16]);
    let t = harness::run_whole(&mut s, &f.stream(Dir::Client), accept);
    assert_eq!(t.error, None);
    assert!(t.events.is_empty());
    assert_eq!(t.leftover, [1]);
}
