//! `ws::frame`: RFC 6455 section 5.7 examples as known answers, every
//! decoder rule with its close code, partial payloads bounded by the caller's
//! buffer, encoder→decoder round trips across the length boundaries
//! (proptest), random input (no panic, sticky errors), and a simple
//! measurement of the unmasking hot path (`--ignored`, in release).

#[path = "ws_common/mod.rs"]
mod ws_common;

use proptest::prelude::*;
use vncap_core::ws::frame::{self, header, unmask, Config, Decoded, Decoder, Encoder, Opcode};
use vncap_core::ws::{Connection, Error, Subprotocol};
use vncap_tests::harness::{run, run_bytewise, run_whole, splits};
use ws_common::{client_frame, server_frames, Ev, WsServer};

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

type Transcript = vncap_tests::harness::Transcript<Ev, Error>;

/// Where input stops being consumed when an error comes depends on the split
/// (a whole frame fails at once, a trickled one after its good part): after
/// an error, only the output, events and error are compared.
fn norm(mut t: Transcript) -> Transcript {
    if t.error.is_some() {
        t.leftover.clear();
    }
    t
}

fn feed(sub: Subprotocol, config: Config, input: &[u8]) -> Transcript {
    let whole = norm(run_whole(
        &mut WsServer::connected(sub, config, 16 * 1024),
        input,
        |_, _| {},
    ));
    let bytes = norm(run_bytewise(
        &mut WsServer::connected(sub, config, 256),
        input,
        |_, _| {},
    ));
    assert_eq!(whole, bytes, "whole and bytewise differ");
    whole
}

fn binary(input: &[u8]) -> Transcript {
    feed(Subprotocol::Binary, Config::default(), input)
}

#[test]
fn rfc_5_7_masked_hello() {
    // RFC 6455 5.7: a single-frame masked text message "Hello".
    let text = [
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    assert_eq!(client_frame(0x81, b"Hello", MASK), text);
    // As binary data (the RFB channel), it unmasks to "Hello".
    let mut bin = text;
    bin[0] = 0x82;
    let t = binary(&bin);
    assert_eq!(t.events, vec![Ev::Message(b"Hello".to_vec())]);
    assert_eq!(t.error, None);
    // Unmasking in place, straight from the decoder.
    let mut d = Decoder::new(Subprotocol::Binary, Config::default());
    let (used, item) = d.decode(&mut bin).unwrap();
    assert_eq!(used, 11);
    assert_eq!(
        item,
        Some(Decoded::Data {
            bytes: b"Hello",
            end: true
        })
    );
    // A text frame in a binary session is refused with 1003.
    let t = binary(&text);
    assert_eq!(t.error, Some(Error::UnsupportedData));
    assert_eq!(server_frames(&t.output)[0].2[..2], 1003u16.to_be_bytes());
}

#[test]
fn rfc_5_7_unmasked_is_refused() {
    // RFC 6455 5.7: the unmasked "Hello" a server sends; a client must mask.
    let t = binary(&[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
    assert_eq!(t.error, Some(Error::UnmaskedFrame));
    assert_eq!(Error::UnmaskedFrame.close_code(), Some(1002));
    let close = &server_frames(&t.output)[0];
    assert_eq!(close.1, 0x8);
    assert_eq!(close.2[..2], 1002u16.to_be_bytes());
    assert_eq!(&close.2[2..], Error::UnmaskedFrame.reason().as_bytes());
    // Our encoder writes exactly the RFC's server frame header.
    assert_eq!(&header(Opcode::Text, true, 5).0[..2], &[0x81, 0x05]);
}

#[test]
fn rfc_5_7_fragmented() {
    // "Hel" + "lo" (the RFC's example, masked and as binary data).
    let mut input = client_frame(0x02, b"Hel", MASK);
    input.extend(client_frame(0x80, b"lo", [9, 8, 7, 6]));
    let t = binary(&input);
    assert_eq!(t.events, vec![Ev::Message(b"Hello".to_vec())]);
}

#[test]
fn rfc_5_7_ping_and_pong() {
    // A masked ping "Hello" is answered with the RFC's unmasked pong bytes.
    let t = binary(&client_frame(0x89, b"Hello", MASK));
    assert_eq!(t.output, [0x8a, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
    assert!(t.events.is_empty());
    // The RFC's masked pong is ignored.
    let t = binary(&[
        0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ]);
    assert!(t.output.is_empty() && t.events.is_empty() && t.error.is_none());
}

#[test]
fn rfc_5_7_lengths() {
    assert_eq!(
        &header(Opcode::Binary, true, 256).0[..4],
        &[0x82, 0x7e, 0x01, 0x00]
    );
    assert_eq!(header(Opcode::Binary, true, 256).1, 4);
    assert_eq!(
        header(Opcode::Binary, true, 65536),
        ([0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0], 10)
    );
    for n in [256usize, 65536] {
        let payload: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
        let f = client_frame(0x82, &payload, MASK);
        assert_eq!(f[1], if n == 256 { 0xfe } else { 0xff });
        assert_eq!(binary(&f).events, vec![Ev::Message(payload)]);
    }
}

#[test]
fn ping_inside_fragmented_message_and_empty_frames() {
    let mut input = client_frame(0x02, b"ab", MASK);
    input.extend(client_frame(0x89, b"", MASK));
    input.extend(client_frame(0x00, b"", MASK));
    input.extend(client_frame(0x80, b"cd", MASK));
    input.extend(client_frame(0x82, b"", MASK));
    let t = binary(&input);
    assert_eq!(
        t.events,
        vec![Ev::Message(b"abcd".to_vec()), Ev::Message(vec![])]
    );
    assert_eq!(t.output, [0x8a, 0x00]);
}

fn refused(input: &[u8], want: Error) {
    refused_in(Subprotocol::Binary, Config::default(), input, want)
}

fn refused_in(sub: Subprotocol, config: Config, input: &[u8], want: Error) {
    let t = feed(sub, config, input);
    assert_eq!(t.error, Some(want), "{input:02x?}");
    let frames = server_frames(&t.output);
    let close = frames.last().unwrap();
    assert_eq!(close.1, 0x8);
    assert_eq!(
        Some(u16::from_be_bytes([close.2[0], close.2[1]])),
        want.close_code()
    );
    assert_eq!(frames.iter().filter(|f| f.1 == 0x8).count(), 1, "one close");
}

#[test]
fn protocol_errors_close_1002() {
    refused(&client_frame(0xc2, b"x", MASK), Error::ReservedBits);
    refused(&client_frame(0x92, b"x", MASK), Error::ReservedBits);
    for op in [3u8, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf] {
        refused(&client_frame(0x80 | op, b"x", MASK), Error::ReservedOpcode);
    }
    refused(&[0x82, 0x01, b'x'], Error::UnmaskedFrame);
    // 126 with a length that fits in 7 bits; 127 with one that fits in 16.
    refused(
        &[0x82, 0xfe, 0x00, 0x7d, 1, 2, 3, 4],
        Error::NonMinimalLength,
    );
    refused(
        &[0x82, 0xff, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 1, 2, 3, 4],
        Error::NonMinimalLength,
    );
    refused(
        &[0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4],
        Error::NonMinimalLength,
    );
    // Control frames: fragmented, or over 125 bytes.
    refused(&client_frame(0x09, b"x", MASK), Error::BadControlFrame);
    refused(&client_frame(0x89, &[0; 126], MASK), Error::BadControlFrame);
    refused(&client_frame(0x88, &[0; 126], MASK), Error::BadControlFrame);
    // Fragmentation.
    refused(&client_frame(0x80, b"x", MASK), Error::BadFragmentation);
    let mut two = client_frame(0x02, b"a", MASK);
    two.extend(client_frame(0x82, b"b", MASK));
    refused(&two, Error::BadFragmentation);
    // Close frames.
    refused(&client_frame(0x88, &[0x03], MASK), Error::BadCloseFrame);
    for code in [0u16, 999, 1004, 1005, 1006, 1015, 2000, 2999, 5000, 65535] {
        refused(
            &client_frame(0x88, &code.to_be_bytes(), MASK),
            Error::BadCloseFrame,
        );
    }
}

#[test]
fn data_errors() {
    // Text in binary mode, binary in base64 mode: 1003.
    refused(&client_frame(0x81, b"AAAA", MASK), Error::UnsupportedData);
    refused_in(
        Subprotocol::Base64,
        Config::default(),
        &client_frame(0x82, b"x", MASK),
        Error::UnsupportedData,
    );
    // Invalid base64 in a base64 session; a close reason not UTF-8: 1007.
    for bad in [&b"AA*A"[..], b"QQ==QUFB", b"QUF", b"\xc3\xa9AA"] {
        refused_in(
            Subprotocol::Base64,
            Config::default(),
            &client_frame(0x81, bad, MASK),
            Error::InvalidPayload,
        );
    }
    let mut close = 1000u16.to_be_bytes().to_vec();
    close.extend_from_slice(&[0xff, 0xfe]);
    refused(&client_frame(0x88, &close, MASK), Error::InvalidPayload);
    // Over the limit, in one frame or summed over fragments: 1009.
    let small = Config { max_message: 100 };
    refused_in(
        Subprotocol::Binary,
        small,
        &client_frame(0x82, &[0; 101], MASK),
        Error::MessageTooBig,
    );
    let mut frags = client_frame(0x02, &[0; 60], MASK);
    frags.extend(client_frame(0x80, &[0; 41], MASK));
    refused_in(Subprotocol::Binary, small, &frags, Error::MessageTooBig);
    // Exactly the limit is fine, and the next message starts from zero.
    let mut ok = client_frame(0x82, &[0; 100], MASK);
    ok.extend(client_frame(0x82, &[1; 100], MASK));
    assert_eq!(feed(Subprotocol::Binary, small, &ok).events.len(), 2);
    // A declared 2^62-byte frame is refused from its header alone.
    let mut huge = vec![0x82, 0xff];
    huge.extend_from_slice(&(1u64 << 62).to_be_bytes());
    huge.extend_from_slice(&MASK);
    refused(&huge, Error::MessageTooBig);
}

#[test]
fn close_is_echoed_and_reported() {
    let mut input = client_frame(0x88, &[0x03, 0xe8, b'b', b'y', b'e'], MASK);
    input.extend(client_frame(0x82, b"ignored after close", MASK));
    let t = binary(&input);
    assert_eq!(t.events, vec![Ev::Closed(Some(1000))]);
    assert_eq!(t.output, [0x88, 0x02, 0x03, 0xe8]);
    assert_eq!(t.error, None);
    // A close without a code is answered without one.
    let t = binary(&client_frame(0x88, b"", MASK));
    assert_eq!(t.events, vec![Ev::Closed(None)]);
    assert_eq!(t.output, [0x88, 0x00]);
    // After Closed, decode reports nothing and consumes nothing.
    let mut d = Decoder::new(Subprotocol::Binary, Config::default());
    let mut f = client_frame(0x88, &1001u16.to_be_bytes(), MASK);
    let (n, item) = d.decode(&mut f).unwrap();
    assert_eq!(
        (n, item),
        (6 + 2, Some(Decoded::Closed { code: Some(1001) }))
    );
    assert!(d.is_closed());
    assert_eq!(
        d.decode(&mut client_frame(0x82, b"x", MASK)).unwrap(),
        (0, None)
    );
}

#[test]
fn server_initiated_close() {
    let mut c = Connection::new(Subprotocol::Binary, Config::default());
    c.close(1000, "backend closed");
    c.close(1001, "twice");
    let mut out = [0u8; 256];
    let n = c.poll_output(&mut out);
    let frames = server_frames(&out[..n]);
    assert_eq!(frames.len(), 1);
    assert_eq!(&frames[0].2[..2], &1000u16.to_be_bytes());
    assert_eq!(&frames[0].2[2..], b"backend closed");
    // The peer's answer is not echoed again.
    let mut reply = client_frame(0x88, &1000u16.to_be_bytes(), MASK);
    assert_eq!(
        c.decode(&mut reply).unwrap().1,
        Some(Decoded::Closed { code: Some(1000) })
    );
    assert_eq!(c.poll_output(&mut out), 0);
    // Close reasons are cut to fit a control frame, on a char boundary.
    let long = "é".repeat(100);
    let mut buf = [0u8; 200];
    let n = frame::encode_close(1000, &long, &mut buf);
    assert_eq!(n, 2 + 2 + 122);
    assert!(std::str::from_utf8(&buf[4..n]).is_ok());
}

#[test]
fn errors_are_sticky_and_close_once() {
    let mut d = Decoder::new(Subprotocol::Binary, Config::default());
    let mut bad = client_frame(0xc2, b"x", MASK);
    assert_eq!(d.decode(&mut bad), Err(Error::ReservedBits));
    assert_eq!(
        d.decode(&mut client_frame(0x82, b"x", MASK)),
        Err(Error::ReservedBits)
    );
    assert_eq!(d.error(), Some(Error::ReservedBits));
    let mut out = [0u8; 512];
    let n = d.poll_output(&mut out);
    assert_eq!(server_frames(&out[..n]).len(), 1);
}

/// The driver loop of the module docs over a read buffer of `cap` bytes:
/// returns the data pieces.
fn drive(sub: Subprotocol, stream: &[u8], cap: usize) -> Vec<(Vec<u8>, bool)> {
    let mut conn = Connection::new(sub, Config::default());
    let mut buf = vec![0u8; cap];
    let (mut start, mut end, mut off) = (0, 0, 0);
    let mut pieces = Vec::new();
    loop {
        let (used, item) = conn.decode(&mut buf[start..end]).unwrap();
        start += used;
        match item {
            Some(Decoded::Data { bytes, end: last }) => pieces.push((bytes.to_vec(), last)),
            Some(Decoded::Closed { .. }) => unreachable!(),
            None if used == 0 => {
                if off == stream.len() {
                    break;
                }
                buf.copy_within(start..end, 0);
                end -= start;
                start = 0;
                let n = (cap - end).min(stream.len() - off);
                buf[end..end + n].copy_from_slice(&stream[off..off + n]);
                end += n;
                off += n;
            }
            None => {}
        }
    }
    assert_eq!(start, end, "everything consumed");
    pieces
}

#[test]
fn memory_is_bounded_by_the_callers_buffer() {
    let payload: Vec<u8> = (0..1 << 20).map(|i: usize| (i * 31 % 253) as u8).collect();
    let stream = client_frame(0x82, &payload, MASK);
    let pieces = drive(Subprotocol::Binary, &stream, 16 * 1024);
    assert!(pieces.len() >= 64);
    assert!(pieces.iter().all(|(p, _)| p.len() <= 16 * 1024));
    assert!(pieces[..pieces.len() - 1].iter().all(|(_, last)| !last));
    assert!(pieces.last().unwrap().1);
    assert_eq!(
        pieces
            .iter()
            .flat_map(|(p, _)| p.clone())
            .collect::<Vec<_>>(),
        payload
    );
    // The same in base64 text: a 1 MiB message through a 16 KiB buffer.
    use base64::Engine as _;
    let text = base64::engine::general_purpose::STANDARD.encode(&payload);
    let stream = client_frame(0x81, text.as_bytes(), MASK);
    let pieces = drive(Subprotocol::Base64, &stream, 16 * 1024);
    assert!(pieces.iter().all(|(p, _)| p.len() <= 16 * 1024));
    assert_eq!(
        pieces
            .iter()
            .flat_map(|(p, _)| p.clone())
            .collect::<Vec<_>>(),
        payload
    );
}

#[test]
fn base64_split_across_frames() {
    use base64::Engine as _;
    let text = base64::engine::general_purpose::STANDARD.encode(b"RFB 003.008\n and more");
    let t = text.as_bytes();
    for a in 1..t.len() - 1 {
        for b in a + 1..t.len() {
            let mut input = client_frame(0x01, &t[..a], MASK);
            input.extend(client_frame(0x89, b"p", MASK));
            input.extend(client_frame(0x00, &t[a..b], [1, 2, 3, 4]));
            input.extend(client_frame(0x80, &t[b..], [5, 6, 7, 8]));
            let tr = feed(Subprotocol::Base64, Config::default(), &input);
            assert_eq!(
                tr.events,
                vec![Ev::Message(b"RFB 003.008\n and more".to_vec())],
                "{a} {b}"
            );
        }
    }
}

#[test]
fn encoder_chunks_to_the_output_buffer() {
    for sub in [Subprotocol::Binary, Subprotocol::Base64] {
        let enc = Encoder::new(sub);
        let data: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let mut out = [0u8; 100];
        let mut rest = &data[..];
        let mut wire = Vec::new();
        while !rest.is_empty() {
            let (took, wrote) = enc.encode(rest, &mut out);
            assert!(took > 0 && wrote <= out.len());
            wire.extend_from_slice(&out[..wrote]);
            rest = &rest[took..];
        }
        let frames = server_frames(&wire);
        let mut got = Vec::new();
        for (fin, op, p) in frames {
            assert!(fin);
            if sub.is_base64() {
                use base64::Engine as _;
                assert_eq!(op, 1);
                got.extend(base64::engine::general_purpose::STANDARD.decode(p).unwrap());
            } else {
                assert_eq!(op, 2);
                got.extend(p);
            }
        }
        assert_eq!(got, data);
        assert_eq!(enc.encode(&data, &mut [0u8; 2]), (0, 0));
        let one = if sub.is_base64() { (3, 6) } else { (1, 3) };
        assert_eq!(enc.encode(&data, &mut [0u8; 6][..one.1]), one);
    }
    let c = Connection::new(Subprotocol::Binary, Config::default());
    assert_eq!(c.data_header(300), Some(header(Opcode::Binary, true, 300)));
    assert_eq!(
        Connection::new(Subprotocol::Base64, Config::default()).data_header(3),
        None
    );
}

/// Masks a server frame as a client would send it.
fn mask_frame(frame: &[u8], key: [u8; 4]) -> Vec<u8> {
    let h = match frame[1] & 0x7f {
        126 => 4,
        127 => 10,
        _ => 2,
    };
    let mut f = frame[..h].to_vec();
    f[1] |= 0x80;
    f.extend_from_slice(&key);
    let mut p = frame[h..].to_vec();
    unmask(&mut p, key, 0);
    f.extend(p);
    f
}

fn length() -> impl Strategy<Value = usize> {
    prop_oneof![0usize..=130, 65_530usize..=65_540, 0usize..70_000]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn encoder_decoder_round_trip(
        len in length(),
        seed in any::<u8>(),
        key in any::<[u8; 4]>(),
        base64 in any::<bool>(),
        cap in 256usize..40_000,
    ) {
        let sub = if base64 { Subprotocol::Base64 } else { Subprotocol::Binary };
        let data: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(seed).wrapping_add(seed)).collect();
        let enc = Encoder::new(sub);
        let mut out = vec![0u8; len * 4 / 3 + 20];
        let (took, wrote) = enc.encode(&data, &mut out);
        prop_assert_eq!(took, len);
        if len == 0 {
            return Ok(());
        }
        let stream = mask_frame(&out[..wrote], key);
        let pieces = drive(sub, &stream, cap);
        let got: Vec<u8> = pieces.iter().flat_map(|(p, _)| p.clone()).collect();
        prop_assert_eq!(got, data);
        prop_assert!(pieces.last().unwrap().1);
    }

    /// Decoding only what `Decoder::window` allows never hands back more
    /// data than the room asked for, and loses nothing: messages across the
    /// header lengths (6, 8 and 14 bytes), pings between them, binary and
    /// base64, the whole stream pending at once (vncap's entry machine
    /// copies each piece into a buffer of `room` bytes).
    #[test]
    fn a_window_hands_back_at_most_its_room(
        lens in prop::collection::vec(length(), 1..4),
        key in any::<[u8; 4]>(),
        base64 in any::<bool>(),
        room in 16usize..300,
    ) {
        let sub = if base64 { Subprotocol::Base64 } else { Subprotocol::Binary };
        let enc = Encoder::new(sub);
        let mut stream = Vec::new();
        let mut data = Vec::new();
        for (i, &len) in lens.iter().enumerate() {
            let d: Vec<u8> = (0..len).map(|j| (j as u8).wrapping_mul(31).wrapping_add(i as u8)).collect();
            let mut out = vec![0u8; len * 4 / 3 + 20];
            let (took, wrote) = enc.encode(&d, &mut out);
            prop_assert_eq!(took, len);
            stream.extend(client_frame(0x89, b"ping", key));
            // Nothing to send is no frame (base64 writes none for no data).
            if wrote > 0 {
                stream.extend(mask_frame(&out[..wrote], key));
            }
            data.extend(d);
        }
        let mut dec = Decoder::new(sub, Config::default());
        let (mut at, mut got) = (0, Vec::new());
        loop {
            let window = dec.window(&stream[at..], room);
            let (used, item) = dec.decode(&mut stream[at..at + window]).unwrap();
            if let Some(Decoded::Data { bytes, .. }) = item {
                prop_assert!(bytes.len() <= room, "{} bytes for a room of {}", bytes.len(), room);
                got.extend_from_slice(bytes);
            } else if used == 0 {
                break;
            }
            at += used;
        }
        prop_assert_eq!(at, stream.len(), "everything decoded");
        prop_assert_eq!(got, data);
    }

    #[test]
    fn random_bytes_never_panic(
        input in prop::collection::vec(any::<u8>(), 0..400),
        chunks in splits(50),
        base64 in any::<bool>(),
    ) {
        let sub = if base64 { Subprotocol::Base64 } else { Subprotocol::Binary };
        let t = run(&mut WsServer::connected(sub, Config { max_message: 300 }, 256), &input, &chunks, |_, _| {});
        if let Some(e) = t.error {
            prop_assert!(e.close_code().is_some());
        }
    }

    #[test]
    fn random_frames_never_panic(
        frames in prop::collection::vec(
            (any::<u8>(), prop::collection::vec(any::<u8>(), 0..200), any::<[u8; 4]>()), 0..8),
        chunks in splits(50),
        base64 in any::<bool>(),
    ) {
        let sub = if base64 { Subprotocol::Base64 } else { Subprotocol::Binary };
        let input: Vec<u8> = frames.iter().flat_map(|(b0, p, k)| client_frame(*b0, p, *k)).collect();
        let whole = norm(run_whole(&mut WsServer::connected(sub, Config::default(), 16 * 1024), &input, |_, _| {}));
        let t = norm(run(&mut WsServer::connected(sub, Config::default(), 256), &input, &chunks, |_, _| {}));
        prop_assert_eq!(t, whole);
    }
}

/// A simple measurement of the unmasking hot path against a byte-at-a-time
/// loop. Run: `cargo test --release -p vncap-tests --test ws_frame -- --ignored --nocapture`.
#[test]
#[ignore]
fn measure_unmask() {
    use std::hint::black_box;
    use std::time::Instant;
    let mut buf = vec![0x5au8; 16 * 1024];
    let rounds = 16 * 1024; // 256 MiB
    let mb = (buf.len() * rounds) as f64 / 1e6;
    let t = Instant::now();
    let mut phase = 0;
    for _ in 0..rounds {
        phase = unmask(black_box(&mut buf[1..]), MASK, phase);
    }
    let words = mb / t.elapsed().as_secs_f64();
    let t = Instant::now();
    for _ in 0..rounds {
        for (i, b) in black_box(&mut buf[1..]).iter_mut().enumerate() {
            *b ^= MASK[(phase + i) & 3];
        }
    }
    let bytes = mb / t.elapsed().as_secs_f64();
    println!("unmask: {words:.0} MB/s word-at-a-time, {bytes:.0} MB/s bytewise");
}
