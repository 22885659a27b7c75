//! Fuzz target: `metrics::answer`, the metrics endpoint's reading of a
//! scraper's request head, on arbitrary bytes. Asserts: no panic, and a
//! head answered with the metrics keeps that answer whatever follows it.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vncap_core::metrics::{answer, Answer};

fuzz_target!(|data: &[u8]| {
    let a = answer(data);
    if a == Some(Answer::Metrics) {
        let mut more = data.to_vec();
        more.extend_from_slice(b"POST / HTTP/1.1\r\n\r\n");
        assert_eq!(answer(&more), a, "bytes after the head changed it");
    }
});
