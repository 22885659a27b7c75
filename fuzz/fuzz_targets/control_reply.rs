//! Fuzz target: the operator CLI's readers of what a (possibly hostile)
//! proxy sent back: `control::client::parse_reply` in both dialects, and
//! the action replies (`List::parse`, `parse_killed`, `Stats::parse`).
//!
//! Input: `[flags] [reply bytes]`; flags bit 0: dialect 2 (snf) instead of
//! dialect 1 (twisted); bits 1-2: 0 a console reply, 1 a `list`, 2 a
//! `kill`, 3 a `stats` reply. Asserts: no panic; an OK answer has a port in
//! 1..=65535; a reason is at most `REASON_CAP` bytes with no control
//! characters (a proxy cannot move the operator's cursor); a dialect 1
//! reply reads the same with another line end; `Debug` works.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vncap_core::control::client::{parse_killed, parse_reply, Reason, Row, REASON_CAP};
use vncap_core::control::Dialect;
use vncap_core::control::{List, Stats};

fn check_reason(reason: &Reason) {
    assert!(reason.len() <= REASON_CAP);
    assert!(!reason.chars().any(char::is_control), "{reason:?}");
}

fn check_outcome<T>(o: &Result<T, Option<Reason>>) {
    if let Err(Some(r)) = o {
        check_reason(r);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, reply)) = data.split_first() else {
        return;
    };
    match (flags >> 1) & 3 {
        1 => {
            let r = List::parse(reply, |row| {
                let host = match row {
                    Row::Session(s) => {
                        let _ = s.transport.name();
                        s.backend_host
                    }
                    Row::Ticket(t) => t.backend_host,
                };
                assert!(host.len() <= vncap_core::control::HOST_CAP);
                let _ = format!("{row:?}");
            });
            if let Ok(o) = &r {
                check_outcome(o);
            }
            return;
        }
        2 => {
            if let Ok(o) = parse_killed(reply) {
                check_outcome(&o);
            }
            return;
        }
        3 => {
            if let Ok(o) = Stats::parse(reply) {
                check_outcome(&o);
            }
            return;
        }
        _ => {}
    }
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
            check_reason(reason);
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
