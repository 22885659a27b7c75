//! Replays recorded real WebSocket sessions (tests/fixtures/ws/, made by
//! capture.py) through `ws::Handshake` + `ws::Connection` with the shared
//! harness: whole, byte by byte, and in random splits (proptest), with small
//! and large read windows. Every split must give the same transcript.

#[path = "ws_common/mod.rs"]
mod ws_common;

use proptest::prelude::*;
use vncap_core::ws::frame::Config;
use vncap_core::ws::handshake;
use vncap_core::ws::Subprotocol;
use vncap_tests::fixture::{Dir, Fixture};
use vncap_tests::harness::{run, run_bytewise, run_whole, splits, Transcript};
use ws_common::{server_frames, Ev, WsServer};

/// What capture.py sends: the three payloads, then the fragmented one.
fn sent() -> Vec<Vec<u8>> {
    vec![
        b"RFB 003.008\n".to_vec(),
        (0..200u8).collect(),
        (0..70000usize).map(|i| ((i * 7) & 0xff) as u8).collect(),
        b"frag-one/frag-two/frag-three".to_vec(),
    ]
}

fn replay(
    name: &str,
    window: usize,
    chunks: Option<&[usize]>,
) -> Transcript<Ev, vncap_core::ws::Error> {
    let f = Fixture::load(&format!("ws/{name}"));
    let input = f.stream(Dir::Client);
    let mut m = WsServer::new(handshake::Config::default(), Config::default(), window);
    match chunks {
        Some(c) => run(&mut m, &input, c, |_, _| {}),
        None => run_whole(&mut m, &input, |_, _| {}),
    }
}

fn check(name: &str, sub: Subprotocol) {
    let f = Fixture::load(&format!("ws/{name}"));
    let t = replay(name, 16 * 1024, None);
    assert_eq!(t.error, None);
    assert!(t.leftover.is_empty());
    let mut want = vec![
        Ev::Request(
            "/websockify".into(),
            t_query(&f),
            Some("http://127.0.0.1:8000".into()),
            sub,
        ),
        Ev::Upgraded(sub),
    ];
    want.extend(sent().into_iter().map(Ev::Message));
    want.push(Ev::Closed(Some(1000)));
    assert_eq!(t.events, want);

    // Our answer: the 101, the pong for 'vncap', the close echo.
    let server = f.stream(Dir::Server);
    let head_end = server.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let (head, _) = t
        .output
        .split_at(t.output.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4);
    let recorded = std::str::from_utf8(&server[..head_end]).unwrap();
    let ours = std::str::from_utf8(head).unwrap();
    let accept = |s: &str| {
        s.lines()
            .find(|l| l.starts_with("Sec-WebSocket-Accept"))
            .unwrap()
            .to_string()
    };
    assert_eq!(
        accept(ours),
        accept(recorded),
        "same accept key as the real server"
    );
    if f.get("peers").contains("websockify") {
        assert_eq!(ours, recorded, "byte-identical to websockify's 101");
    }
    let frames = server_frames(&t.output[head.len()..]);
    assert_eq!(
        frames,
        vec![
            (true, 0xa, b"vncap".to_vec()),
            (true, 0x8, vec![0x03, 0xe8])
        ]
    );
    // The recorded server echoed the same data (independent parser).
    let rec = server_frames(&server[head_end..]);
    let data: Vec<u8> = rec
        .iter()
        .filter(|f| f.1 <= 2)
        .flat_map(|f| f.2.clone())
        .collect();
    let data = if sub.is_base64() {
        use base64::Engine as _;
        let text: Vec<u8> = data;
        // The echo server answered each message with one padded base64 text.
        let mut out = Vec::new();
        for f in rec.iter().filter(|f| f.1 == 1) {
            out.extend(
                base64::engine::general_purpose::STANDARD
                    .decode(&f.2)
                    .unwrap(),
            );
        }
        assert!(!text.is_empty());
        out
    } else {
        data
    };
    assert_eq!(data, sent().concat());
}

fn t_query(f: &Fixture) -> String {
    if f.get("subprotocol") == "base64" {
        "token=YmFzZTY0".into()
    } else {
        "token=Zm9vYmFy".into()
    }
}

#[test]
fn websockify_no_subprotocol() {
    check("websockify-none.txt", Subprotocol::None);
}

#[test]
fn websockify_binary() {
    check("websockify-binary.txt", Subprotocol::Binary);
}

#[test]
fn base64_text() {
    check("base64.txt", Subprotocol::Base64);
}

#[test]
fn bytewise_and_small_window_match_whole() {
    for name in ["websockify-none.txt", "websockify-binary.txt", "base64.txt"] {
        let whole = replay(name, 16 * 1024, None);
        for window in [256, 1000, 16 * 1024] {
            let f = Fixture::load(&format!("ws/{name}"));
            let input = f.stream(Dir::Client);
            let mut m = WsServer::new(handshake::Config::default(), Config::default(), window);
            let t = run_bytewise(&mut m, &input, |_, _| {});
            assert_eq!(t, whole, "{name} bytewise, window {window}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn any_split_gives_the_same_transcript(
        chunks in splits(9000),
        window in 256usize..20_000,
        which in 0usize..3,
    ) {
        let name = ["websockify-none.txt", "websockify-binary.txt", "base64.txt"][which];
        let whole = replay(name, 16 * 1024, None);
        let t = replay(name, window, Some(&chunks));
        prop_assert_eq!(t, whole);
    }
}
