//! Fuzz target: signed single-port tickets (`ticket::signed`,
//! `ticket::nonces`): opening arbitrary tokens, and sealing arbitrary
//! contents, then opening them changed and admitting them through a table.
//!
//! Input: `[mode]`, then for an even mode `[now: u64 BE, UNIX seconds]
//! [token bytes]`: opened with the keys `[0x11; 32]` (current) and `[0x22;
//! 32]` (previous); asserts no panic, and that an opened token is exactly
//! what its key seals from what it carries (there is one encoding). For an
//! odd mode `[nonce: 16] [lifetime: u16 s] [flags] [port: u16] [host:
//! counted] [password: counted] [ip: 16] [flip at: u16] [flip: byte]`:
//! sealed with the current key at a fixed now; asserts it opens to the
//! same contents (the password cut to 8 bytes); with one character
//! changed it never opens; and the table admits it exactly once (expired
//! at lifetime 0, too far ahead beyond 300 s + the skew allowance).

#![no_main]

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use libfuzzer_sys::fuzz_target;
use vncap_core::control::{Host, Need, Password, Transport};
use vncap_core::ticket::nonces::{self, Nonces};
use vncap_core::ticket::signed::{
    open, seal, Contents, Error, Key, Keys, UnixTime, CLOCK_SKEW_MS, PASSWORD_LEN,
};
use vncap_core::ticket::{self, Table};
use vncap_core::Instant;
use vncap_fuzz::Reader;

const NOW: u64 = 1_800_000_000;

fn keys() -> Keys {
    Keys {
        current: Key::new(&[0x11; 32]).unwrap(),
        previous: Some(Key::new(&[0x22; 32]).unwrap()),
    }
}

fn need(b: u8) -> Need {
    match b % 3 {
        0 => Need::No,
        1 => Need::Yes,
        _ => Need::Either,
    }
}

fuzz_target!(|data: &[u8]| {
    let mut r = Reader::new(data);
    let keys = keys();
    if r.byte() % 2 == 0 {
        let now = u64::from_be_bytes(r.array::<8>());
        let token = r.rest();
        if let Ok(c) = open(&keys, token, UnixTime::from_secs(now)) {
            assert!(now < c.expires);
            let again = [&keys.current, keys.previous.as_ref().unwrap()]
                .iter()
                .any(|k| seal(k, &c).is_ok_and(|t| t.as_bytes() == token));
            assert!(again, "an opened token is what its key seals");
        }
        return;
    }
    let nonce = r.array::<16>();
    let lifetime = u64::from(r.u16());
    let flags = r.byte();
    let port = r.u16().max(1);
    let host_bytes = String::from_utf8_lossy(r.counted()).into_owned();
    let password = r.counted().to_vec();
    let ip = r.array::<16>();
    let (flip_at, flip) = (usize::from(r.u16()), r.byte());
    let mut host = Host::new();
    for ch in host_bytes.chars() {
        if host.push(ch).is_err() {
            break;
        }
    }
    if host.is_empty() {
        host.push('h').unwrap();
    }
    let client_ip = match (flags / 9) % 3 {
        0 => None,
        1 => Some(IpAddr::V4(Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]))),
        _ => Some(IpAddr::V6(Ipv6Addr::from(ip))),
    };
    let transport = Transport {
        tls: need(flags),
        websocket: need(flags / 3),
    };
    let c = Contents {
        nonce,
        expires: NOW + lifetime,
        backend_host: host,
        backend_port: port,
        transport,
        client_ip,
        password: Password::from_slice(&password[..password.len().min(64)]).unwrap(),
    };
    let token = seal(&keys.current, &c).expect("contents of a request seal");
    let wall = UnixTime::from_secs(NOW);
    let opened = open(&keys, token.as_bytes(), wall);
    if lifetime == 0 {
        assert_eq!(opened, Err(Error::Expired));
    } else {
        let o = opened.expect("a sealed ticket opens");
        assert_eq!(
            o.password.as_bytes(),
            &c.password.as_bytes()[..c.password.len().min(PASSWORD_LEN)]
        );
        assert_eq!(
            (o.nonce, o.expires, o.backend_port),
            (nonce, c.expires, port)
        );
        assert_eq!(
            (&o.backend_host, o.transport, o.client_ip),
            (&c.backend_host, transport, client_ip)
        );
    }
    let mut changed = token.as_bytes().to_vec();
    if let Some(b) = changed.get_mut(flip_at % token.len()) {
        let was = *b;
        *b ^= flip.max(1);
        if *b != was {
            assert!(
                open(&keys, &changed, wall).is_err(),
                "a changed token never opens"
            );
        }
    }

    let config = ticket::Config {
        single_port: Some(6080),
        tls: true,
        ..ticket::Config::default()
    };
    let storage: [ticket::Slot; 2] = core::array::from_fn(|_| ticket::Slot::new());
    let mut table = Table::new(config, storage).unwrap();
    let mut memory = Nonces::new([nonces::Slot::new(); 2]);
    let peer = client_ip.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let arrived = (transport.tls == Need::Yes, transport.websocket != Need::No);
    let now = Instant::from_millis(1);
    let admit = |t: &mut Table<_>, m: &mut Nonces<_>| {
        t.admit_signed(m, &keys, token.as_bytes(), peer, (now, wall), arrived)
    };
    let first = admit(&mut table, &mut memory);
    if lifetime == 0 {
        assert_eq!(first, Err(Error::Expired));
        return;
    }
    if lifetime * 1000 > 300_000 + CLOCK_SKEW_MS {
        assert_eq!(first, Err(Error::TooFarAhead));
        return;
    }
    let h = first.expect("a fresh signed ticket is admitted");
    assert_eq!(
        admit(&mut table, &mut memory),
        Ok(h),
        "pending: the same entry"
    );
    table.authenticated(h, now).unwrap();
    assert_eq!(
        admit(&mut table, &mut memory),
        Err(Error::Ticket(ticket::Error::NoSuchTicket)),
        "one-time"
    );
    assert!(table.check_invariants());
});
