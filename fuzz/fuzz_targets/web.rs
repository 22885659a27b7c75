//! Fuzz target: `web::Exchange`, the single port's reading of a request
//! that may ask for a static file (`--web-root`), fed an arbitrary request
//! in arbitrary reads, with the driver's answer (a file found, or not).
//!
//! Input: `[splits] [flags] [request bytes]`; flags bit 0:
//! `max_header_bytes` 256 instead of 8 KiB, bit 1: the driver finds no
//! file, bit 2: the file is a directory's index. Asserts: no panic; the
//! outcome does not depend on the split; a path handed out is safe to open
//! below a directory (relative, no `.`/`..`/hidden/empty segment, no NUL,
//! control character or backslash); an upgrade consumes nothing and says
//! nothing; every answer is one HTTP/1.1 response head with
//! `Connection: close`, `nosniff` and the status of its error, and never a
//! redirect.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vncap_core::web::{Body, Event, Exchange, Method};
use vncap_core::ws::handshake::DEFAULT_MAX_HEADER_BYTES;
use vncap_fuzz::{drive_both, Reader, Splits};

fuzz_target!(|data: &[u8]| {
    let mut r = Reader::new(data);
    let mut splits = Splits::read(&mut r);
    let flags = r.byte();
    let input = r.rest();
    let max = if flags & 1 != 0 {
        256
    } else {
        DEFAULT_MAX_HEADER_BYTES
    };
    let missing = flags & 2 != 0;
    let index = flags & 4 != 0;
    let mut bodies = 0;
    let (_, t) = drive_both(
        || Exchange::new(max),
        input,
        &mut splits,
        max,
        1024,
        |x, ev| {
            if *ev != Event::Request {
                return;
            }
            let req = x.request().expect("Event::Request without a request");
            let path = req.path();
            assert!(!path.is_empty() && !path.starts_with('/'), "{path:?}");
            for seg in path.split('/') {
                assert!(!seg.is_empty() && !seg.starts_with('.'), "{path:?}");
            }
            assert!(
                !path.chars().any(|c| c.is_control() || c == '\\'),
                "{path:?}"
            );
            let head = req.method() == Method::Head;
            let found = (!missing).then_some(Body { len: 10, index });
            let body = x.respond(found);
            assert_eq!(body, !missing && !head);
            bodies += usize::from(body);
            assert!(!x.respond(found), "answered twice");
        },
    );
    if t.events.first() == Some(&Event::Upgrade) {
        assert_eq!(t.consumed, 0);
        assert!(t.output.is_empty());
        return;
    }
    if t.output.is_empty() {
        // Still reading: nothing consumed.
        assert!(t.error.is_none() && t.events.is_empty());
        assert!(!t.stalled, "stalled with a full buffer");
        assert_eq!(t.consumed, 0);
        return;
    }
    let text = std::str::from_utf8(&t.output).expect("answer is not UTF-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("no end of the head");
    let status = match t.error {
        Some(e) => e.http_status(),
        None => 200,
    };
    assert!(head.starts_with(&format!("HTTP/1.1 {status} ")), "{text:?}");
    let lines: Vec<&str> = head.split("\r\n").skip(1).collect();
    assert!(lines.iter().all(|l| l.contains(": ")), "{text:?}");
    assert!(lines.contains(&"Connection: close"));
    assert!(lines.contains(&"X-Content-Type-Options: nosniff"));
    assert!(!head.to_ascii_lowercase().contains("location"));
    assert!(!body.contains("HTTP/1.1"), "{text:?}");
    assert!(bodies <= 2);
});
