//! Fuzz target: `sniff::sniff` over every prefix of arbitrary first bytes.
//!
//! Asserts: no panic; `None` only for the empty input or a strict prefix of
//! a recognised start (so never beyond 22 bytes: a driver never waits
//! forever); a decision never changes as more bytes arrive; `Tls` only for
//! `16 03`, `FlashPolicy` only for `<policy-file-request/>`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vncap_core::sniff::{sniff, Kind, POLICY_PREFIX};

fuzz_target!(|data: &[u8]| {
    let mut decided: Option<Kind> = None;
    for n in 0..=data.len().min(64) {
        let b = &data[..n];
        let k = sniff(b);
        match (decided, k) {
            (None, None) => assert!(n < POLICY_PREFIX.len(), "undecided after {n} bytes"),
            (None, Some(k)) => decided = Some(k),
            (Some(d), k) => assert_eq!(Some(d), k, "decision changed at {n} bytes"),
        }
        match k {
            Some(Kind::Tls) => assert!(b.starts_with(&[0x16, 0x03])),
            Some(Kind::FlashPolicy) => assert!(b.starts_with(POLICY_PREFIX)),
            Some(Kind::Http) => assert!(b.contains(&b' ')),
            _ => {}
        }
    }
    if let Some(d) = decided {
        assert_eq!(sniff(data), Some(d));
    }
});
