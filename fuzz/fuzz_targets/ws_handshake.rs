//! Fuzz target: `ws::Handshake` fed an arbitrary request, in arbitrary
//! reads, through a buffer of `max_header_bytes`, with the driver's
//! accept/reject decision.
//!
//! Input: `[splits] [flags] [status: u16] [request bytes]`; flags bit 0: an
//! Origin allow-list, bit 1: `max_header_bytes` 256 instead of 8 KiB, bit 2:
//! reject with `status` on `Event::Request`. Asserts: no panic; the outcome
//! does not depend on the split; the machine consumes exactly the header
//! block (the bytes after it come back untouched); the answer is a 101 with
//! the right `Sec-WebSocket-Accept` after `accept()`, else an HTTP status
//! line with the error's status; never stalls on a full buffer.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vncap_core::ws::handshake::{accept_key, Config, Event, Handshake, DEFAULT_MAX_HEADER_BYTES};
use vncap_core::ws::Error;
use vncap_fuzz::{drive_both, Reader, Splits};

const ORIGINS: &[&str] = &["http://127.0.0.1:8000", "https://gwm.example.org"];

fuzz_target!(|data: &[u8]| {
    let mut r = Reader::new(data);
    let mut splits = Splits::read(&mut r);
    let flags = r.byte();
    let status = r.u16();
    let input = r.rest();
    let config = Config {
        max_header_bytes: if flags & 2 != 0 {
            256
        } else {
            DEFAULT_MAX_HEADER_BYTES
        },
        allowed_origins: if flags & 1 != 0 { ORIGINS } else { &[] },
    };
    let reject = flags & 4 != 0;
    let make = || Handshake::new(config);
    let (hs, t) = drive_both(
        make,
        input,
        &mut splits,
        config.max_header_bytes,
        1024,
        |h, ev| {
            if *ev == Event::Request {
                let req = h.request().expect("Event::Request without a request");
                assert!(req.path().starts_with('/'));
                let _ = req.query_param("token");
                if !config.allowed_origins.is_empty() {
                    assert!(req.origin.is_some());
                }
                if reject {
                    h.reject(status);
                } else {
                    h.accept();
                }
            }
        },
    );
    let text = std::str::from_utf8(&t.output).expect("answer is not UTF-8");
    if hs.is_upgraded() {
        assert!(!reject);
        assert_eq!(t.error, None);
        assert!(matches!(
            t.events.as_slice(),
            [Event::Request, Event::Upgraded(_)]
        ));
        assert!(text.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
        assert!(text.ends_with("\r\n\r\n"));
        // The header block is what was consumed; find its key again.
        let head = String::from_utf8_lossy(&input[..t.consumed]);
        assert!(head.ends_with("\n"));
        let key = head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-key"))
            .map(|(_, v)| v.trim_matches([' ', '\t', '\r']));
        if let Some(key) = key {
            let want = accept_key(key.as_bytes());
            let want = std::str::from_utf8(&want).unwrap();
            assert!(text.contains(&format!("Sec-WebSocket-Accept: {want}\r\n")));
        }
    } else if let Some(e) = t.error {
        let status = e.http_status().expect("handshake error without a status");
        assert!((400..600).contains(&status));
        assert!(text.starts_with(&format!("HTTP/1.1 {status} ")), "{text:?}");
        if let Error::Rejected(_) = e {
            assert!(reject);
        }
    } else {
        // Still reading: nothing consumed, nothing said.
        assert!(!t.stalled, "stalled with a full buffer");
        assert_eq!(t.consumed, 0);
        assert!(t.output.is_empty());
        assert!(input.len() < config.max_header_bytes);
    }
});
