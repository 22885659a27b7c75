//! Fuzz target: `rfb::client::Client` fed arbitrary backend bytes, in
//! arbitrary reads, through a buffer of `MAX_INPUT` (or 64) bytes.
//!
//! Input: `[splits] [flags] [password: len, bytes] [server bytes]`; flags
//! bit 0: no password (None only), bits 1-2: max version (3.3, 3.7, 3.8),
//! bit 3: a 64-byte buffer, bits 4-5: backend TLS (off, prefer, require).
//! On `StartTls` the driver "runs TLS" at once (`tls_established`), so the
//! VeNCrypt states and what follows inside TLS are reached. Asserts: no
//! panic; the outcome does not depend on the split; output bounded
//! (version, type, VeNCrypt version and subtype, response); never stalls on
//! a full buffer before `LoggedIn`; `StartTls` at most once, only with
//! backend TLS, after an X.509 subtype; `LoggedIn` only with None or, with a
//! password, VNC authentication, or VeNCrypt X509None/X509Vnc, and with
//! TLS required only through VeNCrypt; the reason shown is printable and
//! bounded.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vncap_core::rfb::client::{Client, Error, Event, Tls, MAX_INPUT};
use vncap_core::rfb::vencrypt;
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
    let tls = match (flags >> 4) & 3 {
        0 => Tls::Off,
        1 => Tls::Prefer,
        _ => Tls::Require,
    };
    let make = || Client::new(password).with_max_version(max).with_tls(tls);
    let out_max = 12 + 1 + 2 + 4 + 16;
    let (client, t) = drive_both(make, input, &mut splits, cap, out_max, |c, ev| {
        if *ev == Event::StartTls {
            assert!(!c.is_tls());
            assert!(c.tls_established());
            assert!(!c.tls_established(), "only once");
        }
    });
    assert!(t.events.len() <= 2);
    let started_tls = t.events.first() == Some(&Event::StartTls);
    if started_tls {
        assert!(tls != Tls::Off);
        assert_eq!(client.security_type(), Some(vencrypt_type()));
        assert!(matches!(
            client.subtype(),
            Some(vencrypt::X509_NONE | vencrypt::X509_VNC)
        ));
        assert!(client.is_tls());
    } else {
        assert!(!client.is_tls());
    }
    if t.events.contains(&Event::LoggedIn) {
        assert_eq!(t.events.last(), Some(&Event::LoggedIn));
        if tls == Tls::Require {
            assert!(started_tls, "logged in without TLS though it is required");
        }
    }
    if t.error == Some(Error::TlsRequired) {
        assert_eq!(tls, Tls::Require);
    }
    if t.error == Some(Error::TlsNotConfigured) {
        assert_eq!(tls, Tls::Off);
    }
    if let Some(v) = client.version() {
        assert!(v.minor() <= max.minor());
        assert_eq!(&t.output[..12], v.message());
    }
    if !t.events.contains(&Event::LoggedIn) {
        assert!(!t.stalled, "stalled with a full buffer before LoggedIn");
    } else {
        assert_eq!(t.error, None);
        match client.security_type() {
            Some(1) => assert_eq!(
                t.output.len(),
                12 + usize::from(client.version() != Some(Version::V3_3))
            ),
            Some(2) => assert!(password.is_some()),
            Some(19) => {
                assert!(started_tls);
                if client.subtype() == Some(vencrypt::X509_VNC) {
                    assert!(password.is_some());
                }
            }
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

/// VeNCrypt's security type number.
fn vencrypt_type() -> u8 {
    vncap_core::rfb::wire::SECURITY_VENCRYPT
}
