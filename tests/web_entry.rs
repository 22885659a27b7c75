//! The entry machine's route for a request that is not a WebSocket upgrade
//! (`Entry::with_web_root`, `vncap serve --web-root`): on the single port it
//! becomes [`Event::Serve`] with a safe path, answered by the core's
//! response head; an upgrade beside it still opens a console; a ticket's
//! port and a single port without a web root are unchanged. Fed whole and
//! byte by byte on a virtual clock (the path rules themselves are
//! `vncap_core::web`'s unit tests).

use vncap_core::entry::{Door, Entry, Error, Event};
use vncap_core::rfb::des;
use vncap_core::web::{self, Body};
use vncap_core::{Instant, Machine};
use vncap_tests::pair::{
    client_frame, entry_config, new_table, request, table_config, Tickets, CHALLENGE, HANDSHAKE_MS,
};

const SNF: &str = r#"{"source_port": 0, "destination_address": "node1", "destination_port": 5900, "password": "secret", "type": "vnc-ws"}"#;
const FILES: &[(&str, u64)] = &[
    ("vnc.html", 1234),
    ("core/rfb.js", 99),
    ("app/index.html", 7),
];

/// What one connection did.
#[derive(Debug, Default, PartialEq)]
struct Outcome {
    out: Vec<u8>,
    events: Vec<Event>,
    error: Option<Error>,
    /// The path asked for, and whether a body follows the head.
    served: Option<(String, bool)>,
}

impl Outcome {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.out).into_owned()
    }
}

/// A table with one single-port ticket, and its token.
fn single_port_ticket() -> (Box<Tickets>, String) {
    let mut table = new_table(vncap_core::ticket::Config {
        single_port: Some(6080),
        ..table_config()
    });
    let issued = table
        .issue(Instant::from_millis(0), &request(SNF), &[7; 64])
        .unwrap();
    let token = issued.token.as_ref().and_then(|t| t.as_str()).unwrap();
    let token = token.to_string();
    (table, token)
}

/// Feeds `input` in reads of `step` bytes to an entry machine at `door`
/// (with a web root when `web_root`), answering the admit step from
/// `table` and [`Event::Serve`] from [`FILES`], like the daemon.
fn run(door: Door, web_root: bool, input: &[u8], step: usize) -> Outcome {
    let (table, _) = single_port_ticket();
    let now = Instant::from_millis(0);
    let mut m = Entry::new(entry_config(door, false), now, CHALLENGE);
    if web_root {
        m = m.with_web_root();
    }
    let mut o = Outcome::default();
    let (mut fed, mut used) = (0, 0);
    loop {
        let r = m.handle_input(&input[used..fed]);
        drain(&mut m, &mut o);
        while let Some(ev) = m.poll_event() {
            o.events.push(ev);
            match ev {
                Event::Admit => m.admit_from(&table, now),
                Event::Serve => {
                    let path = m.web_request().unwrap().path().to_string();
                    let found = FILES.iter().find(|(p, _)| *p == path);
                    let body = m.web_respond(found.map(|&(_, len)| Body { len, index: false }));
                    o.served = Some((path, body));
                }
                _ => {}
            }
            drain(&mut m, &mut o);
        }
        match r {
            Ok(n) => used += n,
            Err(e) => {
                o.error = Some(e);
                return o;
            }
        }
        if o.served.is_some()
            || o.events
                .iter()
                .any(|e| matches!(e, Event::Authenticated(_)))
        {
            return o;
        }
        if fed == input.len() {
            if r == Ok(0) {
                return o;
            }
            continue;
        }
        fed = (fed + step).min(input.len());
    }
}

fn drain(m: &mut Entry<'_>, o: &mut Outcome) {
    let mut buf = [0u8; 13];
    loop {
        let n = m.poll_output(&mut buf);
        if n == 0 {
            return;
        }
        o.out.extend_from_slice(&buf[..n]);
    }
}

/// [`run`] whole and byte by byte: the outcomes must be the same.
fn both(door: Door, web_root: bool, input: &[u8]) -> Outcome {
    let whole = run(door, web_root, input, input.len().max(1));
    let bytewise = run(door, web_root, input, 1);
    assert_eq!(whole, bytewise, "the split changed the outcome");
    whole
}

const SINGLE: Door = Door::Single { port: 6080 };

fn get(target: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: vnc.example.org:6080\r\n\r\n").into_bytes()
}

fn upgrade(target: &str) -> Vec<u8> {
    format!(
        "GET {target} HTTP/1.1\r\nHost: vncap\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes()
}

#[test]
fn a_page_is_served_on_the_single_port() {
    let o = both(
        SINGLE,
        true,
        &get("/vnc.html?host=x&port=6080&path=websockify"),
    );
    assert_eq!(o.events, [Event::Serve]);
    assert_eq!(o.served, Some(("vnc.html".into(), true)));
    assert_eq!(
        o.text(),
        "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: 1234\r\n\
         X-Content-Type-Options: nosniff\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n"
    );
    let o = both(SINGLE, true, &get("/core/rfb.js"));
    assert!(o
        .text()
        .contains("Content-Type: text/javascript; charset=utf-8\r\n"));
    assert!(o.text().contains("Content-Length: 99\r\n"));
    let o = both(SINGLE, true, &get("/app/"));
    assert_eq!(o.served, Some(("app/index.html".into(), true)));
    // HEAD: the head only.
    let o = both(SINGLE, true, b"HEAD /vnc.html HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(o.served, Some(("vnc.html".into(), false)));
    assert!(o.text().contains("Content-Length: 1234\r\n"));
}

#[test]
fn missing_and_refused_files_are_404_never_a_redirect() {
    let o = both(SINGLE, true, &get("/nope.js"));
    assert_eq!(o.served, Some(("nope.js".into(), false)));
    assert!(
        o.text().starts_with("HTTP/1.1 404 Not Found\r\n"),
        "{}",
        o.text()
    );
    for target in [
        "/../etc/passwd",
        "/%2e%2e/x",
        "//evil.example",
        "/%2fevil",
        "/a%5cb",
    ] {
        let o = both(SINGLE, true, &get(target));
        assert_eq!(o.error, Some(Error::Web(web::Error::Forbidden)), "{target}");
        assert!(o.events.is_empty());
        assert!(
            o.text().starts_with("HTTP/1.1 404 Not Found\r\n"),
            "{target}"
        );
        assert!(!o.text().contains("Location"));
    }
    let o = both(SINGLE, true, b"POST /vnc.html HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(o.error, Some(Error::Web(web::Error::MethodNotAllowed)));
    assert!(o.text().contains("\r\nAllow: GET, HEAD\r\n"));
    let o = both(SINGLE, true, &get("/%zz"));
    assert!(o.text().starts_with("HTTP/1.1 400 "));
}

#[test]
fn the_console_beside_the_files_still_opens() {
    let (_, token) = single_port_ticket();
    let mut input = upgrade(&format!("/websockify?token={token}"));
    let response = des::response(b"secret", &CHALLENGE);
    let parts: [&[u8]; 3] = [b"RFB 003.008\n", &[2], &response];
    for (i, part) in parts.iter().enumerate() {
        input.extend(client_frame(part, [9, i as u8, 7, 5], false));
    }
    let o = both(SINGLE, true, &input);
    assert_eq!(o.events[0], Event::Admit);
    assert!(
        matches!(o.events.last(), Some(Event::Authenticated(_))),
        "{o:?}"
    );
    assert!(o.text().starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
    // An unknown token is the ticket table's 404, as without a web root.
    let o = both(SINGLE, true, &upgrade("/websockify?token=0123456789abcdef"));
    assert!(matches!(o.error, Some(Error::Refused(_))));
    assert!(o.text().starts_with("HTTP/1.1 404 "));
}

#[test]
fn without_a_web_root_or_on_a_tickets_port_nothing_changes() {
    let mut table = new_table(table_config());
    let gwm = r#"{"daddr": "node1", "dport": 5900, "password": "secret", "ws": true}"#;
    let issued = table
        .issue(Instant::from_millis(0), &request(gwm), &[7; 64])
        .unwrap();
    let port = Door::Port {
        port: issued.port,
        handle: issued.handle,
        offers: table.get(issued.handle).unwrap().transport,
    };
    for door in [SINGLE, port] {
        let web_root = !matches!(door, Door::Single { .. });
        let o = both(door, web_root, &get("/vnc.html"));
        assert!(o.events.is_empty(), "{o:?}");
        assert!(matches!(o.error, Some(Error::Handshake(_))), "{o:?}");
        assert!(o.text().starts_with("HTTP/1.1 400 "), "{}", o.text());
    }
}

#[test]
fn a_request_still_being_read_at_the_deadline_gets_408() {
    let now = Instant::from_millis(0);
    let mut m = Entry::new(entry_config(SINGLE, false), now, CHALLENGE).with_web_root();
    assert_eq!(m.handle_input(b"GET /vnc.html HTTP/1.1\r\nHo"), Ok(0));
    assert_eq!(m.poll_timeout(), Some(Instant::from_millis(HANDSHAKE_MS)));
    m.handle_timeout(Instant::from_millis(HANDSHAKE_MS - 1));
    assert_eq!(m.handle_input(b"GET /vnc.html HTTP/1.1\r\nHo"), Ok(0));
    m.handle_timeout(Instant::from_millis(HANDSHAKE_MS));
    let mut o = Outcome::default();
    drain(&mut m, &mut o);
    assert!(
        o.text().starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{}",
        o.text()
    );
    assert_eq!(m.handle_input(b""), Err(Error::TimedOut));
}
