//! Fuzz target: `control::Control` fed an arbitrary control connection, in
//! arbitrary reads through a `MAX_INPUT` buffer, then EOF, with the driver's
//! reply; the reply is read back with `control::client::parse_reply`.
//!
//! Input: `[splits] [flags] [port: u16] [request bytes]`; flags bit 0: the
//! peer then closes (`handle_eof` with the leftover), bit 1: answer
//! `reply_failed` instead of `reply_ok`, bit 2: grant the dialect 2
//! extensions (password, expires_in, token, url_path). Asserts: no panic;
//! the outcome does not depend on the split; a parsed request is within its
//! documented bounds; the reply (or the error's FAILED) is bounded and
//! parses with the client side in the request's dialect, with the port and
//! extensions granted.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vncap_core::control::client::parse_reply;
use vncap_core::control::{
    Config, Control, Dialect, Event, Granted, Request, MAX_INPUT, REPLY_CAP,
};
use vncap_core::Machine;
use vncap_fuzz::{drive_both, Reader, Splits};

const TOKEN: &str = "0123456789abcdef0123456789abcdef";
const URL: &str = "websockify?token=0123456789abcdef0123456789abcdef";

fn check_request(req: &Request, config: &Config) {
    assert!(!req.host.is_empty());
    assert!(req.port >= 1);
    if let Some(t) = req.timeout_ms {
        assert!(t >= 1 && t <= config.max_timeout_ms);
    }
    if req.dialect == Dialect::Twisted {
        assert!(req.password.is_some());
    }
    let _ = req.viewer_password();
    let _ = req.backend_password(Some(b"cluster"));
    let _ = format!("{req:?}");
}

fuzz_target!(|data: &[u8]| {
    let mut r = Reader::new(data);
    let mut splits = Splits::read(&mut r);
    let flags = r.byte();
    let port = r.u16().max(1);
    let input = r.rest();
    let eof = flags & 1 != 0;
    let failed = flags & 2 != 0;
    let ext = flags & 4 != 0;
    let granted = Granted {
        port,
        password: ext.then_some("Ab3dE6gH"),
        expires_in: ext.then_some(30),
        token: ext.then_some(TOKEN),
        url_path: ext.then_some(URL),
    };
    let config = Config::default();
    let on_event = |c: &mut Control, ev: &Event| {
        let Event::Request(req) = ev;
        check_request(req, &config);
        if failed {
            assert!(c.reply_failed("no \u{1b}[2Jfree port\n"));
        } else {
            assert!(c.reply_ok(&granted));
        }
        assert!(!c.reply_failed("twice"));
    };
    let make = || Control::new(config.clone());
    let (mut c, mut t) = drive_both(make, input, &mut splits, MAX_INPUT, REPLY_CAP, on_event);
    if t.events.is_empty() && t.error.is_none() {
        assert!(!t.stalled, "stalled with a full buffer");
        if eof {
            let rest = &input[t.consumed..];
            match c.handle_eof(rest) {
                Ok(n) => {
                    assert!(n <= rest.len());
                    if let Some(Event::Request(req)) = c.poll_event() {
                        check_request(&req, &config);
                        if failed {
                            assert!(c.reply_failed("no \u{1b}[2Jfree port\n"));
                        } else {
                            assert!(c.reply_ok(&granted));
                        }
                        t.events.push(Event::Request(req));
                    }
                }
                Err(e) => {
                    assert_eq!(c.handle_eof(rest), Err(e), "error not sticky");
                    assert_eq!(c.handle_input(rest), Err(e), "error not sticky");
                    t.error = Some(e);
                }
            }
            let mut out = [0u8; 300];
            loop {
                let n = c.poll_output(&mut out);
                if n == 0 {
                    break;
                }
                t.output.extend_from_slice(&out[..n]);
                assert!(t.output.len() <= REPLY_CAP);
            }
        }
    }
    let dialect = t.events.first().map(|Event::Request(r)| r.dialect);
    if t.output.is_empty() {
        assert!(t.error.is_none());
        assert!(!c.is_done());
        return;
    }
    assert!(c.is_done());
    assert!(t.output.ends_with(b"\n"));
    match dialect {
        Some(d) => {
            let a = parse_reply(d, &t.output).expect("our reply does not parse");
            assert_eq!(a.ok, !failed && t.error.is_none());
            if a.ok {
                assert_eq!(a.port, Some(port));
                if d == Dialect::Snf && ext {
                    assert_eq!(a.password.as_deref(), Some("Ab3dE6gH"));
                    assert_eq!(a.expires_in, Some(30));
                    assert_eq!(a.token.as_deref(), Some(TOKEN));
                    assert_eq!(a.url_path.as_deref(), Some(URL));
                }
            } else {
                assert!(a.reason.is_some());
            }
        }
        None => {
            // A refusal before the dialect was known, or in the one the
            // parser settled on: one of the two reads it as FAILED.
            let ok = [Dialect::Twisted, Dialect::Snf].iter().any(
                |&d| matches!(parse_reply(d, &t.output), Ok(a) if !a.ok && a.reason.is_some()),
            );
            assert!(
                ok,
                "the error reply does not parse: {:?}",
                String::from_utf8_lossy(&t.output)
            );
        }
    }
});
