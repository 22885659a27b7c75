//! Fuzz target: `backend_allow`, the `--backend-allow` rules
//! (`CIDR[:LO-HI],...`) and the one check of a backend address against them
//! and vncap's own sockets. Operator input, not network input, but a parser
//! all the same.
//!
//! Input: `[address: 16 bytes] [port: u16] [own port: u16] [flags] [rules
//! text]`. Asserts: no panic; a list that parses prints back to the same
//! list; `check` refuses exactly what the list leaves out or an own socket
//! reaches, and an address in no rule is never allowed.

#![no_main]

use core::net::{IpAddr, Ipv6Addr, SocketAddr};
use libfuzzer_sys::fuzz_target;
use vncap_core::backend_allow::{check, AllowList, Listening, Own, Ports, Refusal};
use vncap_fuzz::Reader;

fuzz_target!(|data: &[u8]| {
    let mut r = Reader::new(data);
    let raw: [u8; 16] = r.array();
    let port = r.u16();
    let own_port = r.u16();
    let flags = r.byte();
    let text = String::from_utf8_lossy(r.rest());
    let Ok(list) = text.parse::<AllowList>() else {
        return;
    };
    let again: AllowList = list
        .to_string()
        .parse()
        .expect("a parsed list prints as a list");
    assert_eq!(again, list);
    let ip = if flags & 1 == 0 {
        IpAddr::V6(Ipv6Addr::from(raw))
    } else {
        IpAddr::from([raw[0], raw[1], raw[2], raw[3]])
    };
    let to = SocketAddr::new(ip, port);
    let mut own = Own::new();
    own.push(Listening {
        addr: if flags & 2 == 0 {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        } else {
            IpAddr::from([127, 0, 0, 1])
        },
        ports: Ports::one(own_port),
        what: "control channel",
    });
    let local = flags & 4 != 0;
    match check(&list, &own, to, |_| local) {
        Ok(()) => assert!(list.contains(to)),
        Err(Refusal::NotAllowed) => assert!(!list.contains(to)),
        Err(Refusal::Own(_)) => assert_eq!(port, own_port),
    }
});
