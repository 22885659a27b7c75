//! Replays vncap's own recordings of real peers (tests/fixtures/rfb/interop/,
//! made by `vncap serve --record` in the interop suite, `capture.sh` there:
//! noVNC 1.3 in Chromium and vncdotool as viewers, TigerVNC Xvnc with and
//! without VNC authentication and QEMU as backends) through the core:
//!
//! - the viewer leg through `rfb::server` with the recorded ticket password
//!   and challenge: it must send exactly what vncap sent up to SecurityResult
//!   and leave the viewer's ClientInit (and all it sent later) unconsumed;
//! - the backend leg through `rfb::client` with the backend's password: it
//!   must send exactly vncap's login bytes and leave ServerInit (and all the
//!   backend sent later) unconsumed;
//! - what each machine leaves over is what the other leg relayed: the two
//!   recordings agree byte for byte after the logins;
//! - whole, byte by byte, and any split (proptest) give the same transcript.

use proptest::prelude::*;
use vncap_core::rfb::{client, server, Version};
use vncap_tests::fixture::{Dir, Fixture};
use vncap_tests::harness::{self, splits, Transcript};

/// The recordings, by name (`<name>-viewer.txt`, `<name>-backend.txt`).
const NAMES: [&str; 4] = [
    "novnc-xvnc-none",
    "novnc-xvnc-vncauth",
    "novnc-qemu",
    "vncdo-xvnc-none",
];

fn legs(name: &str) -> (Fixture, Fixture) {
    (
        Fixture::load(&format!("rfb/interop/{name}-viewer.txt")),
        Fixture::load(&format!("rfb/interop/{name}-backend.txt")),
    )
}

/// vncap speaks 3.8 to viewers, and its ticket challenge follows the
/// ProtocolVersion (12 bytes) and the security-type list (1 type: 2 bytes).
fn challenge(viewer: &Fixture) -> [u8; 16] {
    let s = viewer.stream(Dir::Server);
    assert_eq!(&s[..14], b"RFB 003.008\n\x01\x02", "vncap's greeting");
    s[14..30].try_into().unwrap()
}

fn new_server(viewer: &Fixture) -> server::Server {
    server::Server::new(viewer.get("password").as_bytes(), challenge(viewer))
}

fn new_client(backend: &Fixture) -> client::Client {
    let pw = backend.get("server-password");
    client::Client::new((!pw.is_empty()).then_some(pw.as_bytes()))
}

fn accept(s: &mut server::Server, e: &server::Event) {
    assert_eq!(*e, server::Event::Authenticated);
    assert!(s.accept());
}

fn run_server(viewer: &Fixture, sizes: &[usize]) -> Transcript<server::Event, server::Error> {
    harness::run(
        &mut new_server(viewer),
        &viewer.stream(Dir::Client),
        sizes,
        accept,
    )
}

fn run_client(backend: &Fixture, sizes: &[usize]) -> Transcript<client::Event, client::Error> {
    harness::run(
        &mut new_client(backend),
        &backend.stream(Dir::Server),
        sizes,
        |_, _| {},
    )
}

/// Whether `a` and `b` agree on their common length (a recording may be
/// trimmed on one leg earlier than on the other).
fn agree(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

fn check(name: &str) {
    let (viewer, backend) = legs(name);
    let (vc, vs) = (viewer.stream(Dir::Client), viewer.stream(Dir::Server));
    let (bc, bs) = (backend.stream(Dir::Client), backend.stream(Dir::Server));
    assert!(viewer.get("peers").contains(" -> vncap "), "{name}: header");

    for t in [
        harness::run_whole(&mut new_server(&viewer), &vc, accept),
        harness::run_bytewise(&mut new_server(&viewer), &vc, accept),
    ] {
        assert_eq!(t.error, None, "{name}: server");
        assert_eq!(t.events, [server::Event::Authenticated], "{name}");
        // ProtocolVersion, one security type, challenge, SecurityResult ok.
        assert_eq!(t.output.len(), 12 + 2 + 16 + 4, "{name}: server bytes");
        assert_eq!(t.output, vs[..t.output.len()], "{name}: what vncap sent");
        assert_eq!(&t.output[30..], [0, 0, 0, 0], "{name}: SecurityResult ok");
        assert_eq!(t.leftover, vc[12 + 1 + 16..], "{name}: ClientInit on");
    }
    let mut s = new_server(&viewer);
    harness::run_whole(&mut s, &vc, accept);
    assert_eq!(s.version(), Some(Version::V3_8));
    assert_eq!(s.password_attempt(), server::PasswordAttempt::Correct);

    for t in [
        harness::run_whole(&mut new_client(&backend), &bs, |_, _| {}),
        harness::run_bytewise(&mut new_client(&backend), &bs, |_, _| {}),
    ] {
        assert_eq!(t.error, None, "{name}: client");
        assert_eq!(t.events, [client::Event::LoggedIn], "{name}");
        assert_eq!(t.output, bc[..t.output.len()], "{name}: what vncap sent");
        // The relay: each machine's leftover is what the other leg carried.
        let relayed_up = &bc[t.output.len()..];
        assert!(!relayed_up.is_empty(), "{name}: ClientInit relayed");
        assert!(
            agree(relayed_up, &vc[12 + 1 + 16..]),
            "{name}: viewer → backend"
        );
        assert!(agree(&t.leftover, &vs[34..]), "{name}: backend → viewer");
        // ServerInit: width, height, pixel format, name.
        let init = &t.leftover;
        let len = u32::from_be_bytes(init[20..24].try_into().unwrap()) as usize;
        assert!(init.len() >= 24 + len, "{name}: whole ServerInit");
    }
    let mut c = new_client(&backend);
    harness::run_whole(&mut c, &bs, |_, _| {});
    let expect = if backend.get("server-password").is_empty() {
        1
    } else {
        2
    };
    assert_eq!(c.security_type(), Some(expect), "{name}: security type");
}

macro_rules! interop_tests {
    ($($module:ident => $name:literal;)*) => {$(
        mod $module {
            use super::*;

            #[test]
            fn replay() {
                check($name);
            }

            proptest! {
                #![proptest_config(ProptestConfig::with_cases(64))]
                #[test]
                fn server_any_split(sizes in splits(64)) {
                    let (viewer, _) = legs($name);
                    let whole = run_server(&viewer, &[usize::MAX]);
                    prop_assert_eq!(run_server(&viewer, &sizes), whole);
                }

                #[test]
                fn client_any_split(sizes in splits(64)) {
                    let (_, backend) = legs($name);
                    let whole = run_client(&backend, &[usize::MAX]);
                    prop_assert_eq!(run_client(&backend, &sizes), whole);
                }
            }
        }
    )*};
}

interop_tests! {
    novnc_xvnc_none => "novnc-xvnc-none";
    novnc_xvnc_vncauth => "novnc-xvnc-vncauth";
    novnc_qemu => "novnc-qemu";
    vncdo_xvnc_none => "vncdo-xvnc-none";
}

/// Every recording is here, and each stays small.
#[test]
fn fixtures_present_and_small() {
    for name in NAMES {
        for leg in ["viewer", "backend"] {
            let path = vncap_tests::fixture::fixtures_dir()
                .join("rfb/interop")
                .join(format!("{name}-{leg}.txt"));
            let len = std::fs::metadata(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
                .len();
            assert!(len < 200_000, "{}: {len} bytes", path.display());
        }
    }
}
