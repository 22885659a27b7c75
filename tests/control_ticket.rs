//! Property tests of `vncap_core::control` and `vncap_core::ticket`.
//!
//! - Any split of a control request gives the same transcript (the one
//!   replay harness, `vncap_tests::harness`), for both dialects.
//! - Arbitrary bytes never panic the control parser, and always end in a
//!   request or a queued reply.
//! - Random sequences of issue / lookup / authenticate / fail / end / expire
//!   over a small pool, on a virtual clock, never lose or double-issue a
//!   port, never let a ticket be used twice, and never after its expiry.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use proptest::prelude::*;
use vncap_core::control::{self, Control, Event, Granted};
use vncap_core::ticket::{self, Attempt, Lookup, Table};
use vncap_core::{Instant, Machine};
use vncap_tests::harness::{run, run_bytewise, run_whole, splits, Transcript};

const GWM: &[u8] = b"{\"daddr\": \"node1.example.org\", \"dport\": 12001, \"password\": \"Ab3dE6gH\", \"ws\": true, \"tls\": false}\r\n";
const SNF: &[u8] = b"{\"source_port\": 0, \"destination_address\": \"node1\", \"destination_port\": 5900, \"password\": \"pw\", \"type\": \"vnc-ws\"}";

fn config() -> control::Config {
    let mut c = control::Config::default();
    c.proxy_address.push_str("vnc.example.org").unwrap();
    c
}

/// Runs `input` split by `sizes`, answering a request like a driver would.
fn transcript(input: &[u8], sizes: &[usize]) -> Transcript<Event, control::Error> {
    let mut m = Control::new(config(), vncap_core::Instant::default());
    run(&mut m, input, sizes, |m, _| {
        m.reply_ok(&Granted {
            port: 7000,
            ..Granted::default()
        });
    })
}

#[test]
fn whole_and_bytewise_agree() {
    for input in [GWM, SNF] {
        let mut a = Control::new(config(), vncap_core::Instant::default());
        let whole = run_whole(&mut a, input, |m, _| {
            m.reply_ok(&Granted {
                port: 7000,
                ..Granted::default()
            });
        });
        let mut b = Control::new(config(), vncap_core::Instant::default());
        let bytewise = run_bytewise(&mut b, input, |m, _| {
            m.reply_ok(&Granted {
                port: 7000,
                ..Granted::default()
            });
        });
        assert_eq!(whole, bytewise);
        assert_eq!(whole.events.len(), 1);
        assert!(whole.leftover.is_empty());
        assert!(whole.error.is_none());
    }
    assert_eq!(transcript(GWM, &[GWM.len()]).output, b"7000\n");
}

proptest! {
    #[test]
    fn any_split_same_parse(sizes in splits(16), which in 0usize..4) {
        let bad: &[u8] = b"{\"daddr\": \"h\", \"dport\": 0, \"password\": \"p\"}\n";
        let long = [b'{'; 10];
        let input = [GWM, SNF, bad, &long[..]][which];
        let whole = transcript(input, &[input.len()]);
        prop_assert_eq!(transcript(input, &sizes), whole);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600), sizes in splits(64)) {
        let t = transcript(&bytes, &sizes);
        let mut m = Control::new(config(), vncap_core::Instant::default());
        // Then EOF on whatever is left.
        let _ = run(&mut m, &bytes, &sizes, |_, _| {});
        let _ = m.handle_eof(&t.leftover);
        let mut buf = [0u8; 64];
        while m.poll_output(&mut buf) > 0 {}
    }

    #[test]
    fn jsonish_bytes_never_panic(parts in prop::collection::vec(prop::sample::select(vec![
        "{", "}", "[", "]", "\"", "\\", ":", ",", " ", "\"daddr\"", "\"dport\"", "\"password\"",
        "\"client\"", "\"ip\"", "\"destination_address\"", "\"type\"", "1", "-1", "1e999", "0.5",
        "null", "true", "\"x\"", "\"\\u00e9\"", "\"\\ud800\"", "\n", "\r",
    ]), 0..60)) {
        let input: String = parts.concat();
        let t = transcript(input.as_bytes(), &[input.len()]);
        // Either a request (answered) or an error; both leave a reply.
        if t.error.is_some() || !t.events.is_empty() {
            prop_assert!(!t.output.is_empty());
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Issue {
        preferred: Option<u16>,
        timeout_s: u8,
    },
    Connect(u16),
    Authenticate(usize),
    Fail(usize),
    Withdraw(usize),
    Claim(usize),
    Release(usize),
    Advance(u16),
    Timeout,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (prop::option::of(6998u16..7006), 0u8..4).prop_map(|(preferred, timeout_s)| Op::Issue {
            preferred,
            timeout_s
        }),
        (6999u16..7005).prop_map(Op::Connect),
        (0usize..8).prop_map(Op::Authenticate),
        (0usize..8).prop_map(Op::Fail),
        (0usize..8).prop_map(Op::Withdraw),
        (0usize..8).prop_map(Op::Claim),
        (0usize..8).prop_map(Op::Release),
        (0u16..3000).prop_map(Op::Advance),
        Just(Op::Timeout),
    ]
}

fn request(preferred: Option<u16>, timeout_s: u8) -> control::Console {
    let mut line = format!(
        "{{\"daddr\": \"h\", \"dport\": 5900, \"password\": \"p\", \"sport\": {}",
        preferred.unwrap_or(0)
    );
    if timeout_s > 0 {
        line.push_str(&format!(", \"timeout\": {timeout_s}"));
    }
    line.push_str("}\n");
    let mut c = Control::new(config(), vncap_core::Instant::default());
    c.handle_input(line.as_bytes()).unwrap();
    match c.poll_event() {
        Some(Event::Request(control::Request::Console(r))) => r,
        other => panic!("no console request: {other:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn tickets_never_leak_or_double_use(ops in prop::collection::vec(op(), 1..80), attempts in 1u8..3) {
        const PEER: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let cfg = ticket::Config {
            first_port: 7000,
            last_port: 7003,
            default_timeout_ms: 2_000,
            attempts,
            // One failing source: `attempts` wrong passwords end a ticket.
            failing_sources: 1,
            ..ticket::Config::default()
        };
        let mut table = Table::new(cfg, [const { ticket::Slot::new() }; 3]).unwrap();
        let mut now = Instant::from_millis(10);
        // Model: handle -> (port, expires) of every pending ticket.
        let mut handles: Vec<ticket::Handle> = Vec::new();
        let mut live: HashMap<ticket::Handle, (u16, Instant)> = HashMap::new();
        let mut used: HashMap<ticket::Handle, u32> = HashMap::new();
        // Tickets a viewer claimed (a session being made): nobody else
        // finds them, they do not expire.
        let mut claimed: std::collections::HashSet<ticket::Handle> = Default::default();
        let mut last_freed: Option<u16> = None;
        for op in ops {
            match op {
                Op::Issue { preferred, timeout_s } => {
                    let req = request(preferred, timeout_s);
                    let free_before = table.free_ports();
                    match table.issue(now, &req, &[9; ticket::RANDOM_LEN]) {
                        Ok(i) => {
                            if free_before > 1 && preferred != Some(i.port) {
                                prop_assert_ne!(Some(i.port), last_freed, "just-freed port handed out again");
                            }
                            last_freed = None;
                            prop_assert!((7000..=7003).contains(&i.port));
                            prop_assert!(live.values().all(|(p, _)| *p != i.port), "port double-issued");
                            if let Some(p) = preferred {
                                if (7000..=7003).contains(&p) && live.values().all(|(q, _)| *q != p) {
                                    prop_assert_eq!(i.port, p, "free preferred port not honoured");
                                }
                            }
                            live.insert(i.handle, (i.port, i.expires));
                            handles.push(i.handle);
                        }
                        Err(ticket::Error::TableFull) => prop_assert_eq!(live.len(), 3),
                        Err(ticket::Error::PortsExhausted) => prop_assert_eq!(live.len(), 4),
                        Err(e) => prop_assert!(false, "unexpected {:?}", e),
                    }
                }
                Op::Connect(port) => {
                    let r = table.lookup(Lookup::Port(port), PEER, now);
                    let model = live.iter().find(|(_, (p, _))| *p == port);
                    if model.is_some_and(|(h, _)| claimed.contains(h)) {
                        prop_assert_eq!(r, Err(ticket::Error::NoSuchTicket), "a claimed ticket was found");
                        continue;
                    }
                    match (r, model) {
                        (Ok(h), Some((mh, (_, exp)))) => {
                            prop_assert_eq!(h, *mh);
                            prop_assert!(now < *exp, "usable after expiry");
                        }
                        (Err(ticket::Error::Expired), Some((_, (_, exp)))) => prop_assert!(now >= *exp),
                        (Err(ticket::Error::NoSuchTicket), None) => {}
                        (r, m) => prop_assert!(false, "lookup {:?} vs model {:?}", r, m),
                    }
                }
                Op::Authenticate(i) => {
                    let Some(&h) = handles.get(i) else { continue };
                    let r = table.authenticated(h, now);
                    match live.get(&h).copied() {
                        Some((port, exp)) if now < exp || claimed.contains(&h) => {
                            claimed.remove(&h);
                            // One-time: the ticket leaves the table with its port.
                            let ticket = r.expect("a usable ticket authenticates");
                            prop_assert_eq!(ticket.port(), Some(port));
                            live.remove(&h);
                            last_freed = Some(port);
                            *used.entry(h).or_default() += 1;
                            prop_assert_eq!(table.poll_event(), Some(ticket::Event::Closed { handle: h, port: Some(port) }));
                        }
                        Some(_) => prop_assert_eq!(r, Err(ticket::Error::Expired)),
                        None => prop_assert_eq!(r, Err(ticket::Error::NoSuchTicket)),
                    }
                    prop_assert!(used.get(&h).copied().unwrap_or(0) <= 1, "used twice");
                }
                Op::Fail(i) => {
                    let Some(&h) = handles.get(i) else { continue };
                    let r = table.failed_attempt(h, "192.0.2.1".parse().unwrap());
                    match live.get(&h).copied() {
                        Some((port, _)) => {
                            if r == Ok(Attempt::Gone) {
                                live.remove(&h);
                                claimed.remove(&h);
                                last_freed = Some(port);
                                prop_assert_eq!(table.poll_event(), Some(ticket::Event::Closed { handle: h, port: Some(port) }));
                            } else {
                                prop_assert!(matches!(r, Ok(Attempt::Retry(_))));
                            }
                        }
                        None => prop_assert_eq!(r, Err(ticket::Error::NoSuchTicket)),
                    }
                }
                Op::Withdraw(i) => {
                    let Some(&h) = handles.get(i) else { continue };
                    let r = table.withdraw(h);
                    claimed.remove(&h);
                    match live.remove(&h) {
                        Some((port, _)) => {
                            prop_assert_eq!(r, Ok(()));
                            last_freed = Some(port);
                            prop_assert_eq!(table.poll_event(), Some(ticket::Event::Closed { handle: h, port: Some(port) }));
                        }
                        None => prop_assert_eq!(r, Err(ticket::Error::NoSuchTicket)),
                    }
                }
                Op::Claim(i) => {
                    let Some(&h) = handles.get(i) else { continue };
                    let r = table.claim(h, now).map(|t| t.port());
                    match live.get(&h).copied() {
                        Some(_) if claimed.contains(&h) => prop_assert_eq!(r, Err(ticket::Error::NoSuchTicket)),
                        Some((port, exp)) if now < exp => {
                            prop_assert_eq!(r, Ok(Some(port)));
                            claimed.insert(h);
                        }
                        Some(_) => prop_assert_eq!(r, Err(ticket::Error::Expired)),
                        None => prop_assert_eq!(r, Err(ticket::Error::NoSuchTicket)),
                    }
                }
                Op::Release(i) => {
                    let Some(&h) = handles.get(i) else { continue };
                    let r = table.release(h);
                    if claimed.remove(&h) {
                        prop_assert_eq!(r, Ok(()));
                    } else {
                        prop_assert_eq!(r, Err(ticket::Error::NoSuchTicket));
                    }
                }
                Op::Advance(ms) => now = now + u64::from(ms),
                Op::Timeout => {
                    // Exercise both expiry-1 and expiry exactly.
                    if let Some(at) = table.poll_timeout() {
                        let want_next: Option<Instant> = live
                            .iter()
                            .filter(|(h, _)| !claimed.contains(h))
                            .map(|(_, (_, e))| *e)
                            .min();
                        prop_assert_eq!(Some(at), want_next);
                        // Usable at expiry - 1 ms, not at expiry.
                        for (h, (port, exp)) in &live {
                            if *exp == at && at > now && !claimed.contains(h) {
                                prop_assert_eq!(table.lookup(Lookup::Port(*port), PEER, at - 1), Ok(*h));
                                prop_assert_eq!(table.lookup(Lookup::Port(*port), PEER, at), Err(ticket::Error::Expired));
                                prop_assert_eq!(table.authenticated(*h, at).map(drop), Err(ticket::Error::Expired));
                            }
                        }
                        table.handle_timeout(at - 1);
                        prop_assert_eq!(table.poll_event(), None, "expired early");
                        if at > now { now = at; }
                        table.handle_timeout(now);
                        while let Some(ev) = table.poll_event() {
                            match ev {
                                ticket::Event::Expired { handle, port } => {
                                    let (p, exp) = live.remove(&handle).expect("expired an unknown ticket");
                                    prop_assert_eq!(port, Some(p));
                                    prop_assert!(exp <= now);
                                    last_freed = Some(p);
                                }
                                other => prop_assert!(false, "unexpected {:?}", other),
                            }
                        }
                        prop_assert!(
                            live.iter().all(|(h, (_, e))| *e > now || claimed.contains(h)),
                            "a due ticket stayed"
                        );
                    } else {
                        prop_assert!(live.keys().all(|h| claimed.contains(h)));
                    }
                }
            }
            prop_assert!(table.check_invariants());
            prop_assert_eq!(table.len(), live.len());
            prop_assert_eq!(table.free_ports() as usize + live.len(), 4, "a port was lost");
        }
        // Withdraw everything: every port comes back.
        for h in live.keys() {
            table.withdraw(*h).unwrap();
        }
        prop_assert_eq!(table.free_ports(), 4);
        prop_assert!(table.check_invariants());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    /// The guessing bound of the per-address rule, whatever order the
    /// addresses guess in: a ticket checks at most `attempts ×
    /// failing_sources` wrong passwords before it is gone; an address out
    /// of guesses is refused from then on; an address that never guessed
    /// wrong is admitted as long as the ticket lives.
    #[test]
    fn guesses_per_ticket_are_bounded(
        guesses in prop::collection::vec(0u8..12, 1..80),
        attempts in 1u8..4,
        sources in 1u8..6,
    ) {
        let cfg = ticket::Config {
            first_port: 7000,
            last_port: 7000,
            attempts,
            failing_sources: sources,
            ..ticket::Config::default()
        };
        let mut table = Table::new(cfg, [const { ticket::Slot::new() }; 1]).unwrap();
        let now = Instant::from_millis(0);
        let h = table.issue(now, &request(None, 0), &[3u8; ticket::RANDOM_LEN]).unwrap().handle;
        let viewer = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1));
        let mut checked = 0u32;
        let mut per: HashMap<u8, u8> = HashMap::new();
        let mut gone = false;
        for g in guesses {
            let peer = IpAddr::V4(Ipv4Addr::new(192, 0, 2, g));
            match table.lookup(Lookup::Port(7000), peer, now) {
                Ok(_) => {
                    prop_assert!(!gone);
                    prop_assert!(per.get(&g).copied().unwrap_or(0) < attempts, "a blocked address was admitted");
                    checked += 1;
                    *per.entry(g).or_default() += 1;
                    if table.failed_attempt(h, peer).unwrap() == Attempt::Gone {
                        gone = true;
                    }
                }
                Err(ticket::Error::TooManyGuesses) => {
                    prop_assert_eq!(per.get(&g).copied(), Some(attempts));
                }
                Err(ticket::Error::NoSuchTicket) => prop_assert!(gone),
                Err(e) => prop_assert!(false, "{e:?}"),
            }
            prop_assert!(checked <= u32::from(attempts) * u32::from(sources));
            prop_assert_eq!(table.lookup(Lookup::Port(7000), viewer, now).is_ok(), !gone);
        }
        let blocked = per.values().filter(|&&n| n >= attempts).count();
        let total: u32 = per.values().map(|&n| u32::from(n)).sum();
        let limit = u32::from(attempts) * u32::from(sources);
        prop_assert_eq!(gone, blocked >= usize::from(sources) || total >= limit || per.len() > ticket::MAX_FAILING_SOURCES);
    }
}

/// Wrong passwords the table lets an attacker with `k` sources try against
/// one ticket (each source guessing until it is refused, round-robin, so
/// the ticket's limit and not the order decides), and whether the real
/// viewer, from a source of its own, still finds the console after.
fn guesses_allowed(cfg: ticket::Config, sources: &[IpAddr]) -> (u32, bool) {
    let mut table = Table::new(cfg, [const { ticket::Slot::new() }; 1]).unwrap();
    let now = Instant::from_millis(0);
    let h = table
        .issue(now, &request(None, 0), &[5u8; ticket::RANDOM_LEN])
        .unwrap()
        .handle;
    let mut checked = 0u32;
    // Bounded: no source is admitted more than 255 times.
    for _ in 0..256 {
        let mut any = false;
        for &peer in sources {
            if table.lookup(Lookup::Port(7000), peer, now).is_ok() {
                any = true;
                checked += 1;
                table.failed_attempt(h, peer).unwrap();
            }
        }
        if !any {
            break;
        }
    }
    let viewer = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1));
    (
        checked,
        table.lookup(Lookup::Port(7000), viewer, now).is_ok(),
    )
}

/// The guessing odds of the default rule (one guess per source, the ticket
/// gone after 3 failing sources; a source is an IPv4 address or an IPv6
/// /64): an attacker controlling k sources, for any k, checks at most 3
/// passwords, so its chance to hit a generated 8-character password (62^8
/// equally likely) before the ticket dies is at most 3 / 62^8 ≈ 1.4e-14;
/// with the largest settings (`--ticket-attempts 3`,
/// `--ticket-failing-sources 8`) at most 24 / 62^8 ≈ 1.1e-13. A scanner
/// with fewer sources than that leaves the console to its real viewer.
#[test]
fn an_attacker_with_k_sources_guesses_a_generated_password_with_odds_below_2e_14() {
    let space = (ticket::ALPHABET.len() as f64).powi(ticket::GENERATED_PASSWORD_LEN as i32);
    let defaults = ticket::Config {
        first_port: 7000,
        last_port: 7000,
        ..ticket::Config::default()
    };
    assert_eq!((defaults.attempts, defaults.failing_sources), (1, 3));
    let v4 = |i: u8| IpAddr::V4(Ipv4Addr::new(192, 0, 2, i));
    // Distinct /64s, and many addresses in one /64 (one source).
    let v6 = |net: u16, host: u16| {
        IpAddr::V6(std::net::Ipv6Addr::new(
            0x2001, 0xdb8, 0, net, 0, 0, 0, host,
        ))
    };
    for k in 1..=40u8 {
        let sources: Vec<IpAddr> = (0..k).map(v4).collect();
        let (checked, viewer_in) = guesses_allowed(defaults.clone(), &sources);
        assert_eq!(checked, u32::from(k.min(3)), "k = {k}");
        assert_eq!(
            viewer_in,
            k < 3,
            "k = {k}: the real viewer keeps its console"
        );
        assert!(f64::from(checked) / space < 1.5e-14, "k = {k}");
        let one_net: Vec<IpAddr> = (0..u16::from(k)).map(|h| v6(1, h)).collect();
        assert_eq!(
            guesses_allowed(defaults.clone(), &one_net),
            (1, true),
            "one /64 is one source"
        );
        let nets: Vec<IpAddr> = (0..u16::from(k)).map(|n| v6(n, 1)).collect();
        assert_eq!(
            guesses_allowed(defaults.clone(), &nets).0,
            u32::from(k.min(3))
        );
    }
    let widest = ticket::Config {
        attempts: 3,
        failing_sources: ticket::MAX_FAILING_SOURCES as u8,
        ..defaults
    };
    for k in 1..=40u8 {
        let sources: Vec<IpAddr> = (0..k).map(v4).collect();
        let (checked, _) = guesses_allowed(widest.clone(), &sources);
        assert!(checked <= 24, "k = {k}: {checked}");
        assert!(f64::from(checked) / space < 1.2e-13);
    }
    assert!(3.0 / space < 1.5e-14 && 3.0 / space > 1.3e-14);
}
