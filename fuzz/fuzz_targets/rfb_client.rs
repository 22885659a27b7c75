//! Fuzz target: `rfb::client::Client` fed arbitrary backend bytes, in
//! arbitrary reads, through a buffer of `MAX_INPUT` (or 64) bytes.
//!
//! Input: `[splits] [flags] [password: len, bytes] [server bytes]`; flags
//! bit 0: no password (None only), bits 1-2: max version (3.3, 3.7, 3.8),
//! bit 3: a 64-byte buffer. Asserts: no panic; the outcome does not depend
//! on the split; output bounded (version, type, response); never stalls on
//! a full buffer before `LoggedIn`; `LoggedIn` only with None or, with a
//! password, VNC authentication; the reason shown is printable and bounded.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vncap_core::rfb::client::{Client, Error, Event, MAX_INPUT};
use vncap_core::rfb::wire::REASON_MAX;
use vncap_core::rfb::Version;
use vncap_fuzz::{drive_both, Reader, Splits};

fuzz_target!(|data: &[u8]| {
    let mut r = Reader::new(data);
    let mut splits = Splits::read(&mut r);
    let flags = r.byte();
    let password = r.counted();
    let input = r.rest();
    let password = (flags & 1 == 0).then_some(password);
    let max = match (flags >> 1) & 3 {
        0 => Version::V3_3,
        1 => Version::V3_7,
        _ => Version::V3_8,
    };
    let cap = if flags & 8 != 0 { 64 } else { MAX_INPUT };
    let make = || Client::new(password).with_max_version(max);
    let (client, t) = drive_both(make, input, &mut splits, cap, 12 + 1 + 16, |_, ev| {
        assert_eq!(*ev, Event::LoggedIn);
    });
    assert!(t.events.len() <= 1);
    if let Some(v) = client.version() {
        assert!(v.minor() <= max.minor());
        assert_eq!(&t.output[..12], v.message());
    }
    if t.events.is_empty() {
        assert!(!t.stalled, "stalled with a full buffer before LoggedIn");
    } else {
        assert_eq!(t.error, None);
        match client.security_type() {
            Some(1) => assert_eq!(
                t.output.len(),
                12 + usize::from(client.version() != Some(Version::V3_3))
            ),
            Some(2) => assert!(password.is_some()),
            other => panic!("logged in with security type {other:?}"),
        }
    }
    if t.error == Some(Error::PasswordRequired) {
        assert!(password.is_none());
    }
    assert!(client.offered_types().len() <= 255);
    if let Some(reason) = client.server_reason() {
        assert!(reason.len() <= REASON_MAX);
        assert!(reason.bytes().all(|b| (0x20..0x7f).contains(&b)));
    }
});
