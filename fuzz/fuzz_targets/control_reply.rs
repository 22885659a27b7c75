//! Fuzz target: `control::client::parse_reply`, the operator CLI's reader
//! of what a (possibly hostile) proxy sent back, in both dialects.
//!
//! Input: `[flags] [reply bytes]`; flags bit 0: dialect 2 (snf) instead of
//! dialect 1 (twisted). Asserts: no panic; an OK answer has a port in
//! 1..=65535; a reason is at most `REASON_CAP` bytes with no control
//! characters (a proxy cannot move the operator's cursor); a dialect 1
//! reply reads the same with another line end; `Debug` works.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vncap_core::control::client::{parse_reply, REASON_CAP};
use vncap_core::control::Dialect;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, reply)) = data.split_first() else {
        return;
    };
    let dialect = if flags & 1 != 0 {
        Dialect::Snf
    } else {
        Dialect::Twisted
    };
    let r = parse_reply(dialect, reply);
    if let Ok(a) = &r {
        if a.ok {
            assert!(matches!(a.port, Some(p) if p >= 1));
        }
        if let Some(reason) = &a.reason {
            assert!(reason.len() <= REASON_CAP);
            assert!(!reason.chars().any(char::is_control), "{reason:?}");
        }
        if let Some(addr) = &a.proxy_address {
            assert!(!addr.is_empty());
        }
        let _ = format!("{a:?}");
    }
    if let Err(e) = &r {
        let _ = e.reason();
    }
    if dialect == Dialect::Twisted && reply.len() < 4000 {
        let mut again = reply.to_vec();
        again.extend_from_slice(b"\r\n");
        assert_eq!(parse_reply(dialect, &again).ok(), r.ok());
    }
});
