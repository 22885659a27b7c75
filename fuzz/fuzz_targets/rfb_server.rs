//! Fuzz target: `rfb::server::Server` fed arbitrary viewer bytes, in
//! arbitrary reads, through a buffer of `MAX_INPUT` (or 64) bytes, with the
//! driver's accept/reject decision.
//!
//! Input: `[splits] [flags] [challenge: 16] [password: len, bytes] [viewer bytes]`;
//! flags bit 0: a refusing server (`Server::refusing` with the password
//! bytes as the reason), bit 1: reject on `Authenticated`, bit 2: a 64-byte
//! buffer, bits 3-4: the offer (VNC auth, VeNCrypt and VNC auth, VeNCrypt
//! only). On `StartTls` the driver "runs TLS" at once (`tls_established`).
//! Asserts: no panic; the outcome does not depend on the split; output
//! bounded and starting with `RFB 003.008\n`; never stalls on a full buffer
//! before the decision; `StartTls` only when VeNCrypt is offered, after
//! X509Vnc was chosen; `Authenticated` only after the right DES response,
//! never for a refusing server, and for a VeNCrypt-only offer only inside
//! TLS; accept/reject only once.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vncap_core::rfb::des;
use vncap_core::rfb::server::{Error, Event, Offer, PasswordAttempt, Server, MAX_INPUT};
use vncap_fuzz::{drive_both, Reader, Splits};

fuzz_target!(|data: &[u8]| {
    let mut r = Reader::new(data);
    let mut splits = Splits::read(&mut r);
    let flags = r.byte();
    let challenge: [u8; 16] = r.array();
    let password = r.counted();
    let input = r.rest();
    let refusing = flags & 1 != 0;
    let reject = flags & 2 != 0;
    let cap = if flags & 4 != 0 { 64 } else { MAX_INPUT };
    let offer = match (flags >> 3) & 3 {
        0 => Offer::VncAuth,
        1 => Offer::VencryptAndVncAuth,
        _ => Offer::VencryptOnly,
    };
    let reason = String::from_utf8_lossy(password).into_owned();
    let make = || {
        if refusing {
            Server::refusing(&reason)
        } else {
            Server::new(password, challenge).with_offer(offer)
        }
    };
    let (server, t) = drive_both(make, input, &mut splits, cap, 1024, |s, ev| {
        if *ev == Event::StartTls {
            assert!(offer != Offer::VncAuth && !refusing);
            assert!(!s.is_tls());
            assert!(s.tls_established());
            assert!(!s.tls_established());
            return;
        }
        assert_eq!(*ev, Event::Authenticated);
        if offer == Offer::VencryptOnly {
            assert!(s.is_tls(), "authenticated outside TLS on a TLS-only offer");
        }
        assert!(!refusing, "a refusing server authenticated");
        assert_eq!(s.password_attempt(), PasswordAttempt::Correct);
        if reject {
            assert!(s.reject("backend unreachable"));
            assert!(!s.reject("twice"));
        } else {
            assert!(s.accept());
            assert!(!s.accept());
        }
        assert!(!s.accept() && !s.reject("after"));
    });
    assert!(t.output.starts_with(b"RFB 003.008\n"));
    // Version, type, VeNCrypt version and subtype, response.
    assert!(t.consumed <= 12 + 1 + 2 + 4 + 16);
    assert!(t.events.len() <= 2);
    if t.events.first() == Some(&Event::StartTls) {
        assert!(server.is_tls());
    }
    if t.events.contains(&Event::Authenticated) {
        // The last 16 bytes consumed are the viewer's response.
        let response = &input[t.consumed - 16..t.consumed];
        assert_eq!(response, des::response(password, &challenge));
        assert_eq!(server.is_accepted(), !reject);
        assert_eq!(t.error, reject.then_some(Error::Rejected));
    } else {
        assert!(!t.stalled, "stalled with a full buffer before any decision");
        assert!(!server.is_accepted());
    }
    if t.error == Some(Error::AuthenticationFailed) {
        assert_eq!(server.password_attempt(), PasswordAttempt::Wrong);
    }
    if refusing {
        assert!(matches!(
            t.error,
            None | Some(Error::NotRfb | Error::UnsupportedVersion | Error::Refused)
        ));
    }
});
