//! Fuzz target: `ws::frame::Decoder` (through `ws::Connection`) fed
//! arbitrary client frames, in place in a read buffer, as the driver loop of
//! `ws::frame` describes.
//!
//! Input: `[splits] [flags] [frames]`; flags bits 0-1: subprotocol (None,
//! Binary, Base64, Base64), bit 2: a 16 KiB window instead of `MIN_BUFFER`,
//! bit 3: `max_message` 1000 instead of the default, bit 4: the driver
//! queues its own close after the first message. Asserts: no panic; never
//! stalls on a full buffer of at least `MIN_BUFFER` bytes; data never
//! outgrows what was consumed; errors are sticky and queue a close frame
//! with their close code; nothing is decoded after `Closed`; and the
//! messages, the outcome and the bytes to send are the same with the fuzz
//! input's reads and window as with a `MIN_BUFFER` window read whole.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vncap_core::ws::frame::{Config, Decoded, DEFAULT_MAX_MESSAGE, MIN_BUFFER};
use vncap_core::ws::{Connection, Error, Subprotocol};
use vncap_fuzz::{Reader, Splits};

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    /// Whole messages, then the partial one.
    messages: Vec<Vec<u8>>,
    partial: Vec<u8>,
    closed: Option<Option<u16>>,
    error: Option<Error>,
    output: Vec<u8>,
    consumed: usize,
}

fn run(
    input: &[u8],
    sub: Subprotocol,
    config: Config,
    window: usize,
    splits: &mut Splits,
    close_after_first: bool,
) -> Outcome {
    let mut conn = Connection::new(sub, config);
    let mut buf = vec![0u8; window];
    let (mut start, mut end) = (0usize, 0usize);
    let mut fed = 0;
    let mut o = Outcome {
        messages: Vec::new(),
        partial: Vec::new(),
        closed: None,
        error: None,
        output: Vec::new(),
        consumed: 0,
    };
    let mut out = [0u8; 97];
    let mut decoded_bytes = 0usize;
    loop {
        // Decode until "read more".
        loop {
            let before = end - start;
            let r = conn.decode(&mut buf[start..end]);
            let (used, item) = match r {
                Ok(x) => x,
                Err(e) => {
                    assert_eq!(conn.decoder().error(), Some(e));
                    assert!(conn.decoder().close_sent());
                    let again = conn.decode(&mut buf[start..end]);
                    assert_eq!(again.err(), Some(e), "error not sticky");
                    assert_eq!(conn.decode(&mut [0x81, 0x80, 0, 0, 0, 0]).err(), Some(e));
                    o.error = Some(e);
                    drain(&mut conn, &mut out, &mut o.output);
                    return o;
                }
            };
            assert!(used <= before, "consumed {used} of {before}");
            o.consumed += used;
            match item {
                Some(Decoded::Data { bytes, end: last }) => {
                    decoded_bytes += bytes.len();
                    o.partial.extend_from_slice(bytes);
                    if last {
                        o.messages.push(std::mem::take(&mut o.partial));
                        if close_after_first && o.messages.len() == 1 {
                            conn.close(1000, "backend closed");
                        }
                    }
                }
                Some(Decoded::Closed { code }) => {
                    assert!(conn.is_closed());
                    o.closed = Some(code);
                    start += used;
                    assert_eq!(
                        conn.decode(&mut buf[start..end])
                            .ok()
                            .map(|(n, i)| (n, i.is_none())),
                        Some((0, true))
                    );
                    drain(&mut conn, &mut out, &mut o.output);
                    return o;
                }
                None => {}
            }
            assert!(decoded_bytes <= o.consumed, "more data than bytes consumed");
            drain(&mut conn, &mut out, &mut o.output);
            start += used;
            if used == 0 {
                break;
            }
        }
        // Read more: move the leftovers to the front, fill the room.
        buf.copy_within(start..end, 0);
        end -= start;
        start = 0;
        let n = (window - end)
            .min(splits.next_size())
            .min(input.len() - fed);
        if n == 0 {
            assert!(end < window, "stalled with a full {window}-byte buffer");
            return o;
        }
        buf[end..end + n].copy_from_slice(&input[fed..fed + n]);
        end += n;
        fed += n;
    }
}

/// The server frames of `out` (control frames, unmasked, at most 125
/// bytes) but pongs.
fn without_pongs(out: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    let mut i = 0;
    while i + 2 <= out.len() {
        let n = 2 + usize::from(out[i + 1] & 0x7f);
        let frame = &out[i..(i + n).min(out.len())];
        if out[i] & 0x0f != 0x0a {
            v.extend_from_slice(frame);
        }
        i += n;
    }
    v
}

/// All decoded data, message ends marked.
fn flat(o: &Outcome) -> Vec<u16> {
    let mut v = Vec::new();
    for m in &o.messages {
        v.extend(m.iter().map(|&b| u16::from(b)));
        v.push(256);
    }
    v.extend(o.partial.iter().map(|&b| u16::from(b)));
    v
}

fn drain(conn: &mut Connection, out: &mut [u8], to: &mut Vec<u8>) {
    loop {
        let n = conn.poll_output(out);
        if n == 0 {
            break;
        }
        to.extend_from_slice(&out[..n]);
        assert!(to.len() <= 1 << 20);
    }
}

fuzz_target!(|data: &[u8]| {
    let mut r = Reader::new(data);
    let mut splits = Splits::read(&mut r);
    let flags = r.byte();
    let input = r.rest();
    let sub = match flags & 3 {
        0 => Subprotocol::None,
        1 => Subprotocol::Binary,
        _ => Subprotocol::Base64,
    };
    let window = if flags & 4 != 0 {
        16 * 1024
    } else {
        MIN_BUFFER
    };
    let config = Config {
        max_message: if flags & 8 != 0 {
            1000
        } else {
            DEFAULT_MAX_MESSAGE
        },
    };
    let close = flags & 16 != 0;
    let mut a = run(input, sub, config, window, &mut splits, close);
    // The error's close frame is queued unless the driver's close went first.
    if let Some(e) = a.error.filter(|_| !close || a.messages.is_empty()) {
        // The close frame for the error is in the output.
        let code = e.close_code().expect("frame error without a close code");
        assert!(a
            .output
            .windows(4)
            .any(|w| w[0] == 0x88 && w[2..4] == code.to_be_bytes()));
    }
    let mut b = run(input, sub, config, MIN_BUFFER, &mut Splits::whole(), close);
    // Pongs that do not fit the output queue are dropped (RFC 6455 5.5.3
    // allows answering only the latest ping), and how many pings one decode
    // call handles depends on the window: compare the other frames.
    a.output = without_pongs(&a.output);
    b.output = without_pongs(&b.output);
    if a.error.is_some() {
        // A call that fails does not report the frames it consumed before
        // the bad one (the connection is over), so only the consumed count
        // of calls that succeeded is compared there: it may differ.
        b.consumed = a.consumed;
    }
    if a.error.is_some() && sub.is_base64() {
        // Bad base64 stops the stream where the decoder sees it: a smaller
        // window has handed on more of the frame before it. One data stream
        // is a prefix of the other; the rest agrees.
        assert_eq!((a.error, &a.output), (b.error, &b.output));
        let (da, db) = (flat(&a), flat(&b));
        let n = da.len().min(db.len());
        assert_eq!(da[..n], db[..n], "decoded data differs");
    } else {
        assert_eq!(a, b, "the window or the split changed the outcome");
    }
});
