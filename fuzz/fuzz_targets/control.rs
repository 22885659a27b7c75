//! Fuzz target: `control::Control` fed an arbitrary control connection, in
//! arbitrary reads through a `MAX_INPUT` buffer, then EOF, with the driver's
//! reply; the reply is read back with the client side (`parse_reply` for a
//! console, `List::parse`, `parse_killed`, `Stats::parse` for the actions).
//!
//! Input: `[splits] [flags] [port: u16] [request bytes]`; flags bit 0: the
//! peer then closes (`handle_eof` with the leftover), bit 1: answer
//! `reply_failed` instead of the success reply, bit 2: grant the dialect 2
//! extensions (password, expires_in, token, url_path) or, for an action,
//! answer with rows and counters, bit 3: the peer is a trusted proxy
//! (`Control::from_trusted_proxy`: a PROXY header may come first), bit 4:
//! `Config::tls` (the driver answers `StartTls` with `tls_started` and
//! feeds the rest as plaintext). Asserts: no panic;
//! the outcome does not depend on the split; a parsed request is within its
//! documented bounds; the reply (or the error's FAILED) is bounded and
//! parses with the client side in the request's dialect (actions: JSON),
//! with the port, extensions, rows and counters given; a connection closed
//! unanswered is one the module documents so (a PROXY header, before TLS).

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use vncap_core::control::client::{parse_killed, parse_reply, Row};
use vncap_core::control::{
    Config, Console, Control, Dialect, Door, Error, Event, Granted, Kill, Layers, List, Request,
    SessionRow, Stats, TicketRow, MAX_INPUT, REPLY_CAP,
};
use vncap_core::{Instant, Machine};
use vncap_fuzz::{drive_both, Reader, Splits};

const TOKEN: &str = "0123456789abcdef0123456789abcdef";
const URL: &str = "websockify?token=0123456789abcdef0123456789abcdef";

fn check_console(req: &Console, config: &Config) {
    assert!(!req.host.is_empty());
    assert!(req.port >= 1);
    if let Some(t) = req.timeout_ms {
        assert!(t >= 1 && t <= config.max_timeout_ms);
    }
    if req.dialect == Dialect::Twisted {
        assert!(req.password.is_some());
    }
    for p in [&req.password, &req.client_password].into_iter().flatten() {
        assert!(
            p.as_bytes().first().is_some_and(|&b| b != 0),
            "empty to VNC"
        );
    }
    assert!(!req.host.chars().any(char::is_control));
    let _ = req.viewer_password();
    let _ = req.backend_password(Some(b"cluster"));
    let _ = format!("{req:?}");
}

/// What was asked, for reading the reply back.
#[derive(Clone, Copy, PartialEq)]
enum Asked {
    Console(Dialect),
    List,
    Kill,
    Stats,
}

fn check_request(req: &Request, config: &Config) -> Asked {
    let _ = format!("{req:?}");
    match req {
        Request::Console(c) => {
            check_console(c, config);
            Asked::Console(c.dialect)
        }
        Request::List => Asked::List,
        Request::Kill(k) => {
            if let Kill::Backend { host, port } = k {
                assert!(!host.is_empty() && *port >= 1);
            }
            Asked::Kill
        }
        Request::Stats => Asked::Stats,
    }
}

const STATS: Stats = Stats {
    sessions_active: 1,
    tickets_pending: 2,
    tickets_issued_total: u64::MAX,
    tickets_expired_total: 0,
    logins_total: vncap_core::control::Logins {
        ok: 3,
        wrong_password: 4,
        backend_unreachable: 5,
        backend_refused: 6,
        refused: 7,
    },
    bytes_to_viewer: 8,
    bytes_to_backend: 9,
    control_ok: 10,
    control_failed: 11,
    refused_control: 12,
    refused_entry: u64::MAX,
};

fn session(port: u16) -> SessionRow<'static> {
    SessionRow {
        id: u64::from(port),
        backend_host: "node\"1\\",
        backend_port: port,
        viewer: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
        door: if port % 2 == 0 {
            Door::Single
        } else {
            Door::Port(port)
        },
        transport: Layers {
            tls: port & 1 != 0,
            websocket: port & 2 != 0,
        },
        started: 1_700_000_000,
        bytes_to_viewer: u64::MAX,
        bytes_to_backend: 0,
    }
}

fn ticket(port: u16) -> TicketRow<'static> {
    TicketRow {
        id: 1,
        backend_host: "::1",
        backend_port: 5900,
        port,
        expires_in: 30,
    }
}

/// Answers `req` as the flags say; a list reply goes to `list_out`.
fn answer(
    c: &mut Control,
    req: &Request,
    failed: bool,
    ext: bool,
    granted: &Granted<'_>,
    list_out: &mut Vec<u8>,
) {
    if failed {
        assert!(c.reply_failed("no \u{1b}[2Jfree port\n"));
        assert!(!c.reply_failed("twice"));
        return;
    }
    match req {
        Request::Console(_) => assert!(c.reply_ok(granted)),
        Request::Kill(_) => assert!(c.reply_killed(u64::from(ext))),
        Request::Stats => assert!(c.reply_stats(&STATS)),
        Request::List => {
            let port = granted.port;
            let rows = if ext { 2 } else { 0 };
            let list = List {
                sessions: (0..rows).map(|i| session(port.wrapping_add(i))),
                tickets: (0..rows).map(|i| ticket(port.wrapping_add(i))),
            };
            let mut buf = vec![0; list.buffer_len()];
            let n = c
                .reply_list(&list, &mut buf)
                .expect("list fits its own length");
            buf.truncate(n);
            *list_out = buf;
        }
    }
    assert!(!c.reply_failed("twice"));
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
    let trusted = flags & 8 != 0;
    let tls = flags & 16 != 0;
    let granted = Granted {
        port,
        password: ext.then_some("Ab3dE6gH"),
        expires_in: ext.then_some(30),
        token: ext.then_some(TOKEN),
        url_path: ext.then_some(URL),
    };
    let config = Config {
        tls,
        ..Config::default()
    };
    let proxy = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9)), 51000);
    let mut list_out = Vec::new();
    let mut asked = None;
    let mut on_event = |c: &mut Control, ev: &Event| match ev {
        Event::Request(req) => {
            asked = Some(check_request(req, &config));
            answer(c, req, failed, ext, &granted, &mut list_out);
        }
        Event::Client => {
            assert!(trusted, "Client from an untrusted peer");
            assert!(c.client().is_some());
        }
        Event::StartTls => {
            assert!(tls, "StartTls without Config::tls");
            c.tls_started();
        }
    };
    let make = || {
        let now = Instant::default();
        if trusted {
            Control::from_trusted_proxy(config.clone(), now, proxy)
        } else {
            Control::new(config.clone(), now)
        }
    };
    let (mut c, mut t) = drive_both(
        make,
        input,
        &mut splits,
        MAX_INPUT,
        REPLY_CAP,
        &mut on_event,
    );
    let requested = |t: &vncap_fuzz::Transcript<Event, Error>| {
        t.events.iter().any(|e| matches!(e, Event::Request(_)))
    };
    if !requested(&t) && t.error.is_none() {
        assert!(!t.stalled, "stalled with a full buffer");
        if eof {
            let mut rest = &input[t.consumed..];
            // At the end, the layers before the request finish too.
            loop {
                match c.handle_eof(rest) {
                    Ok(n) => {
                        assert!(n <= rest.len());
                        rest = &rest[n..];
                        let Some(ev) = c.poll_event() else { break };
                        on_event(&mut c, &ev);
                        let done = matches!(ev, Event::Request(_));
                        t.events.push(ev);
                        if done {
                            break;
                        }
                    }
                    Err(e) => {
                        assert_eq!(c.handle_eof(rest), Err(e), "error not sticky");
                        assert_eq!(c.handle_input(rest), Err(e), "error not sticky");
                        t.error = Some(e);
                        break;
                    }
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
    if !list_out.is_empty() {
        assert!(
            t.output.is_empty(),
            "a list goes to the caller's buffer only"
        );
        t.output = std::mem::take(&mut list_out);
    }
    if t.output.is_empty() {
        match t.error {
            None => assert!(!c.is_done()),
            Some(Error::Proxy(_)) => assert!(trusted),
            Some(Error::NoRequest) => assert!(trusted || tls, "no request, no answer"),
            Some(e) => panic!("{e:?} unanswered"),
        }
        return;
    }
    assert!(c.is_done());
    assert!(t.output.ends_with(b"\n"));
    let ok = !failed && t.error.is_none();
    match asked {
        Some(Asked::Console(d)) => {
            let a = parse_reply(d, &t.output).expect("our reply does not parse");
            assert_eq!(a.ok, ok);
            if a.ok {
                assert_eq!(a.port, Some(port));
                if d == Dialect::Snf && ext {
                    assert_eq!(
                        a.password.as_ref().and_then(|p| p.as_str()),
                        Some("Ab3dE6gH")
                    );
                    assert_eq!(a.expires_in, Some(30));
                    assert_eq!(a.token.as_ref().and_then(|p| p.as_str()), Some(TOKEN));
                    assert_eq!(a.url_path.as_ref().and_then(|p| p.as_str()), Some(URL));
                }
            } else {
                assert!(a.reason.is_some());
            }
        }
        Some(Asked::List) => {
            let mut rows = 0u16;
            let outcome = List::parse(&t.output, |row| {
                match row {
                    Row::Session(s) => assert_eq!(s, session(port.wrapping_add(rows))),
                    Row::Ticket(tk) => assert_eq!(tk, ticket(port.wrapping_add(rows - 2))),
                }
                rows += 1;
            })
            .expect("our list does not parse");
            assert_eq!(outcome.is_ok(), ok);
            if ok {
                assert_eq!(rows, if ext { 4 } else { 0 });
            }
        }
        Some(Asked::Kill) => {
            let k = parse_killed(&t.output).expect("our kill reply does not parse");
            assert_eq!(k.ok(), ok.then_some(u64::from(ext)));
        }
        Some(Asked::Stats) => {
            let s = Stats::parse(&t.output).expect("our stats reply does not parse");
            if ok {
                assert_eq!(s, Ok(STATS));
            } else {
                assert!(matches!(s, Err(Some(_))), "a FAILED reply says why");
            }
        }
        None => {
            // A refusal before the request was known, in the form the
            // parser settled on: one of the readers takes it as FAILED.
            let console = [Dialect::Twisted, Dialect::Snf].iter().any(
                |&d| matches!(parse_reply(d, &t.output), Ok(a) if !a.ok && a.reason.is_some()),
            );
            let action = matches!(parse_killed(&t.output), Ok(Err(Some(_))));
            assert!(
                console || action,
                "the error reply does not parse: {:?}",
                String::from_utf8_lossy(&t.output)
            );
        }
    }
});
