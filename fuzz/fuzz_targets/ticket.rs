//! Fuzz target: `ticket::Table` driven by an arbitrary sequence of
//! operations (issue, admit by port and token, authenticated,
//! failed_attempt, withdraw, clock steps, handle_timeout) over a tiny
//! table and port pool, on a virtual clock, checked against a model.
//!
//! Input: `[config] [ops...]`, each op a byte (`% 8`) and its arguments.
//! Asserts after every step: no panic; `check_invariants()`; the table
//! holds exactly the model's tickets; stale handles reach nothing; every
//! event names a ticket the model says just went (and `Expired` only one at
//! or past its expiry); lookups and `authenticated` succeed exactly for
//! unexpired tickets, `admit` also exactly for the transports the ticket's
//! request allows, and `authenticated` hands the ticket out of the table;
//! `poll_timeout` is the earliest expiry.

#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use vncap_core::control::{Console, Dialect, Host, Need, Password, Transport};
use vncap_core::ticket::{
    Attempt, Config, Entry, Error, Event, Handle, Lookup, Slot, Table, Token,
};
use vncap_core::Instant;
use vncap_fuzz::Reader;

const N: usize = 4;
const FIRST: u16 = 7000;
const SINGLE: u16 = 8443;

struct Live {
    handle: Handle,
    port: Option<u16>,
    token: Option<Token>,
    expires: Instant,
    transport: Transport,
    pin: Option<IpAddr>,
}

fn ip(b: u8) -> IpAddr {
    match b % 3 {
        0 => IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)),
        1 => IpAddr::V6(Ipv4Addr::new(127, 0, 0, 1).to_ipv6_mapped()),
        _ => IpAddr::V6(Ipv6Addr::LOCALHOST),
    }
}

fn request(r: &mut Reader<'_>) -> Console {
    let f = r.byte();
    let mut host = Host::new();
    host.push_str("node1.example.org").unwrap();
    let password = Password::from_str("Ab3dE6gH").unwrap();
    let transport = match (f >> 2) & 3 {
        0 => Transport::AUTO,
        1 => Transport::PLAIN,
        2 => Transport::WEBSOCKET,
        _ => Transport::WEBSOCKET_TLS,
    };
    let preferred = r.byte();
    let timeout = r.byte();
    Console {
        dialect: if f & 1 != 0 {
            Dialect::Snf
        } else {
            Dialect::Twisted
        },
        host,
        port: 5900,
        password: (f & 2 == 0).then_some(password),
        client_password: None,
        client_ip: (f & 16 != 0).then(|| ip(f >> 5)),
        preferred_port: (preferred != 0).then(|| FIRST + u16::from(preferred % 6) - 1),
        transport,
        timeout_ms: (timeout != 0).then(|| u64::from(timeout) * 2000),
        auth_user: None,
        auth_password: None,
    }
}

fuzz_target!(|data: &[u8]| {
    let mut r = Reader::new(data);
    let c = r.byte();
    let config = Config {
        first_port: FIRST,
        last_port: FIRST + u16::from(c % 4),
        default_timeout_ms: 30_000,
        max_timeout_ms: 300_000,
        attempts: (c >> 2) % 4,
        failing_sources: 1 + (c >> 6),
        single_port: (c & 16 != 0).then_some(SINGLE),
        backend_password: None,
        tls: c & 32 != 0,
        require_tls: false,
        max_tickets: usize::MAX,
    };
    let mut table = Table::new(config.clone(), [const { Slot::new() }; N]).expect("config");
    let mut now = Instant::from_millis(u64::from(r.byte()) << 40);
    let mut model: Vec<Live> = Vec::new();
    let mut seen: Vec<Handle> = Vec::new();
    for _ in 0..256 {
        let op = r.byte();
        if op == 0 && r.rest_is_empty() {
            break;
        }
        let pick = |r: &mut Reader<'_>, seen: &[Handle]| -> Option<Handle> {
            let i = usize::from(r.byte());
            (!seen.is_empty()).then(|| seen[i % seen.len()])
        };
        let live = |model: &[Live], h: Handle| model.iter().position(|l| l.handle == h);
        let usable = |l: &Live, now: Instant| now < l.expires;
        match op % 8 {
            0 => {
                let req = request(&mut r);
                let random = r.bytes(64);
                let free = table.free_ports();
                match table.issue(now, &req, random) {
                    Ok(iss) => {
                        assert!(model.len() < N);
                        assert!(config.tls || req.transport.tls != Need::Yes);
                        let lifetime = req.timeout_ms.unwrap_or(30_000).min(300_000);
                        assert_eq!(iss.expires, now + lifetime);
                        assert_eq!(iss.password.is_some(), req.password.is_none());
                        let token_wanted = config.single_port.is_some()
                            && req.dialect == Dialect::Snf
                            && req.transport.websocket != Need::No;
                        assert_eq!(iss.token.is_some(), token_wanted);
                        assert_eq!(iss.own_port, !token_wanted);
                        if iss.own_port {
                            assert!((FIRST..=config.last_port).contains(&iss.port));
                            assert!(model.iter().all(|l| l.port != Some(iss.port)));
                        } else {
                            assert_eq!(iss.port, SINGLE);
                        }
                        let _ = iss.granted();
                        let t = table.get(iss.handle).expect("issued ticket missing");
                        if let Some(p) = &iss.password {
                            assert!(t.viewer_password_matches(p.as_bytes()));
                        }
                        model.push(Live {
                            handle: iss.handle,
                            port: iss.own_port.then_some(iss.port),
                            token: iss.token.clone(),
                            expires: iss.expires,
                            transport: req.transport,
                            pin: req.client_ip,
                        });
                        if seen.len() < 64 {
                            seen.push(iss.handle);
                        }
                    }
                    Err(Error::TlsUnavailable) => {
                        assert!(!config.tls && req.transport.tls == Need::Yes)
                    }
                    Err(Error::TableFull) => assert_eq!(model.len(), N),
                    Err(Error::PortsExhausted) => assert_eq!(free, 0),
                    Err(Error::TokenCollision) => {
                        assert!(model.iter().any(|l| l.token.is_some()))
                    }
                    // Too short, or too many bytes the password sampler skips.
                    Err(Error::NotEnoughRandom) => {
                        assert!(random.len() < 16 || req.password.is_none())
                    }
                    Err(e) => panic!("issue: {e:?}"),
                }
            }
            1 | 2 => {
                let b = r.byte();
                let peer = ip(r.byte());
                let arrived = r.byte();
                let arrived = (arrived & 1 != 0, arrived & 2 != 0);
                let garbage;
                let key = if op % 8 == 1 {
                    Lookup::Port(FIRST + u16::from(b % 6))
                } else {
                    let tokens: Vec<&Token> =
                        model.iter().filter_map(|l| l.token.as_ref()).collect();
                    if b & 1 == 0 && !tokens.is_empty() {
                        Lookup::Token(tokens[usize::from(b >> 1) % tokens.len()].as_bytes())
                    } else {
                        garbage = r.counted().to_vec();
                        Lookup::Token(&garbage)
                    }
                };
                let found = model.iter().find(|l| match key {
                    Lookup::Port(p) => l.port == Some(p),
                    Lookup::Token(t) => l.token.as_ref().is_some_and(|x| x.as_bytes() == t),
                });
                let admitted = table.admit(key, peer, now, arrived);
                let looked = table.lookup(key, peer, now);
                if let Err(e) = looked {
                    assert_eq!(admitted, Err(e), "admit refuses what lookup refuses");
                }
                match (looked, found) {
                    (Ok(h), Some(l)) => {
                        assert_eq!(h, l.handle);
                        assert!(usable(l, now));
                        assert!(l
                            .pin
                            .is_none_or(|p| p.to_canonical() == peer.to_canonical()));
                        match admitted {
                            Ok(a) => assert_eq!(a, h),
                            Err(e) => assert!(matches!(e, Error::WrongTransport(_))),
                        }
                        assert_eq!(admitted.is_ok(), l.transport.allows(arrived.0, arrived.1));
                    }
                    (Ok(h), None) => panic!("lookup found {h:?}, the model nothing"),
                    (Err(Error::NoSuchTicket), f) => assert!(f.is_none()),
                    (Err(Error::Expired), Some(l)) => assert!(now >= l.expires),
                    (Err(Error::WrongClient), Some(l)) => assert!(l.pin.is_some()),
                    (Err(e), f) => panic!("lookup: {e:?} with {:?}", f.map(|l| l.handle)),
                }
            }
            3 => {
                let Some(h) = pick(&mut r, &seen) else {
                    continue;
                };
                let i = live(&model, h);
                match table.authenticated(h, now) {
                    Ok(t) => {
                        let i = i.expect("authenticated a gone ticket");
                        assert!(usable(&model[i], now));
                        assert_eq!(t.port(), model[i].port);
                        // Its Event::Closed follows: checked below.
                    }
                    Err(Error::NoSuchTicket) => assert!(i.is_none()),
                    Err(Error::Expired) => assert!(now >= model[i.unwrap()].expires),
                    Err(e) => panic!("authenticated: {e:?}"),
                }
            }
            4 => {
                let Some(h) = pick(&mut r, &seen) else {
                    continue;
                };
                let i = live(&model, h);
                let source = std::net::IpAddr::from([192, 0, 2, r.byte() % 4]);
                match table.failed_attempt(h, source) {
                    Ok(Attempt::Retry(n)) => assert!(n > 0 && i.is_some()),
                    Ok(Attempt::Blocked | Attempt::Gone) => assert!(i.is_some()),
                    Err(Error::NoSuchTicket) => assert!(i.is_none()),
                    Err(e) => panic!("failed_attempt: {e:?}"),
                }
            }
            5 => {
                let Some(h) = pick(&mut r, &seen) else {
                    continue;
                };
                let i = live(&model, h);
                match table.withdraw(h) {
                    Ok(()) => assert!(i.is_some()),
                    Err(Error::NoSuchTicket) => assert!(i.is_none()),
                    Err(e) => panic!("withdraw: {e:?}"),
                }
            }
            6 => now = now + u64::from(r.u16()) * 10,
            _ => {
                table.handle_timeout(now);
                assert!(table.poll_timeout().is_none_or(|t| t > now));
            }
        }
        // Events: each names a ticket that just went.
        while let Some(ev) = table.poll_event() {
            let (h, port, expired) = match ev {
                Event::Expired { handle, port } => (handle, port, true),
                Event::Closed { handle, port } => (handle, port, false),
            };
            let i = live(&model, h).expect("event for a ticket not in the model");
            let l = model.remove(i);
            assert_eq!(l.port, port);
            if expired {
                assert!(l.expires <= now);
            }
        }
        assert!(table.check_invariants(), "ticket table invariants broken");
        assert_eq!(table.len(), model.len());
        for l in &model {
            let t = table.get(l.handle).expect("live ticket missing");
            assert_eq!(t.port(), l.port);
            match (&t.entry, &l.token) {
                (Entry::Token(a), Some(b)) => assert_eq!(a, b),
                (Entry::Port(_), None) => {}
                _ => panic!("entry changed"),
            }
        }
        for h in &seen {
            assert_eq!(table.get(*h).is_some(), live(&model, *h).is_some());
        }
        let held = model.iter().filter(|l| l.port.is_some()).count() as u32;
        assert_eq!(table.free_ports() + held, table.pool_size());
        let earliest = model.iter().map(|l| l.expires).min();
        assert_eq!(table.poll_timeout(), earliest);
    }
});
