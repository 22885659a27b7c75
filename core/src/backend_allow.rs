//! Which backends a ticket may point at (`--backend-allow CIDR[:LO-HI],...`):
//! a bounded [`AllowList`] of [`Rule`]s, an address range ([`crate::cidr`])
//! with an optional port range, and the [`Own`] listening sockets of vncap
//! itself, which no ticket may reach whatever the list says (a ticket
//! pointing at the control channel or an entry port would let a console loop
//! through the proxy). [`check`] is the one decision; the daemon calls it on
//! a literal address when a console is requested and again on every address
//! a name resolves to, just before it connects.
//!
//! Not here: resolving names, connecting, or what the viewer is told (one
//! generic reason for every way a backend cannot be reached:
//! [`crate::entry::Rejection::Unreachable`]).
//!
//! Syntax of one rule: `10.0.0.0/8`, `192.0.2.7:5900-5999`, `192.0.2.7:5901`,
//! `2001:db8::/32:5900-6000`, `[2001:db8::7]:5900`, `::1:5900-5999` (a bare
//! IPv6 address takes a port suffix only as a range, `::1:5900` being an
//! address; brackets always work).

use core::fmt;
use core::net::{IpAddr, SocketAddr};
use core::str::FromStr;

use heapless::Vec;

use crate::cidr::{self, Cidr};

/// Rules one [`AllowList`] holds.
pub const LIST_CAP: usize = 32;
/// Listening sockets one [`Own`] holds.
pub const OWN_CAP: usize = 16;

/// An inclusive range of ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// First port.
    pub lo: u16,
    /// Last port (inclusive).
    pub hi: u16,
}

impl Ports {
    /// Every port.
    pub const ALL: Ports = Ports {
        lo: 0,
        hi: u16::MAX,
    };

    /// One port.
    pub const fn one(port: u16) -> Ports {
        Ports { lo: port, hi: port }
    }

    /// Whether `port` is in the range.
    pub fn contains(&self, port: u16) -> bool {
        self.lo <= port && port <= self.hi
    }
}

impl FromStr for Ports {
    type Err = Error;

    /// `PORT` or `LO-HI`, digits only, `LO <= HI`.
    fn from_str(s: &str) -> Result<Ports, Error> {
        let port = |p: &str| -> Result<u16, Error> {
            if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Error::BadPorts);
            }
            p.parse().map_err(|_| Error::BadPorts)
        };
        let (lo, hi) = match s.split_once('-') {
            Some((lo, hi)) => (port(lo)?, port(hi)?),
            None => {
                let p = port(s)?;
                (p, p)
            }
        };
        if lo > hi {
            return Err(Error::BadPorts);
        }
        Ok(Ports { lo, hi })
    }
}

impl fmt::Display for Ports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}-{}", self.lo, self.hi)
        }
    }
}

/// Why a rule (or a list of them) does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The address range is wrong (the range's own error).
    Range(cidr::Error),
    /// The port suffix is not `PORT` or `LO-HI` with `LO <= HI <= 65535`.
    BadPorts,
    /// More than [`LIST_CAP`] rules.
    TooMany,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Range(e) => write!(f, "{e}"),
            Error::BadPorts => f.write_str("the ports are not PORT or LO-HI (LO <= HI <= 65535)"),
            Error::TooMany => f.write_str("more than 32 rules"),
        }
    }
}

impl From<cidr::Error> for Error {
    fn from(e: cidr::Error) -> Error {
        Error::Range(e)
    }
}

/// One rule: an address range and the ports allowed in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// The addresses.
    pub range: Cidr,
    /// The ports ([`Ports::ALL`] when the rule names none).
    pub ports: Ports,
}

impl Rule {
    /// Whether `to` is in the rule.
    pub fn contains(&self, to: SocketAddr) -> bool {
        self.range.contains(to.ip()) && self.ports.contains(to.port())
    }
}

impl FromStr for Rule {
    type Err = Error;

    fn from_str(s: &str) -> Result<Rule, Error> {
        let s = s.trim();
        let (range, ports) = split_ports(s)?;
        Ok(Rule {
            range: range.parse()?,
            ports: match ports {
                Some(p) => p.parse()?,
                None => Ports::ALL,
            },
        })
    }
}

/// The range part and the port part of a rule.
fn split_ports(s: &str) -> Result<(&str, Option<&str>), Error> {
    if let Some(rest) = s.strip_prefix('[') {
        let (range, after) = rest
            .split_once(']')
            .ok_or(Error::Range(cidr::Error::BadAddress))?;
        return match after {
            "" => Ok((range, None)),
            _ => match after.strip_prefix(':') {
                Some(p) => Ok((range, Some(p))),
                None => Err(Error::BadPorts),
            },
        };
    }
    // After a prefix length, a colon can only start the ports.
    if let Some((addr, len)) = s.split_once('/') {
        return Ok(match len.split_once(':') {
            Some((len, p)) => (&s[..addr.len() + 1 + len.len()], Some(p)),
            None => (s, None),
        });
    }
    match s.rsplit_once(':') {
        // IPv4 with a port.
        Some((addr, p)) if !addr.contains(':') => Ok((addr, Some(p))),
        // A bare IPv6 address: only a range is a suffix (`::1:5900` is an
        // address).
        Some((addr, p)) if p.contains('-') => Ok((addr, Some(p))),
        _ => Ok((s, None)),
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ports == Ports::ALL {
            write!(f, "{}", self.range)
        } else {
            write!(f, "{}:{}", self.range, self.ports)
        }
    }
}

/// `--backend-allow`: the backends tickets may point at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowList {
    rules: Vec<Rule, LIST_CAP>,
}

impl Default for AllowList {
    /// [`AllowList::any`].
    fn default() -> Self {
        AllowList::any()
    }
}

impl AllowList {
    /// Every address and port (`0.0.0.0/0,::/0`), the default.
    pub fn any() -> AllowList {
        let mut rules = Vec::new();
        for range in crate::cidr::CidrList::any().ranges() {
            let _ = rules.push(Rule {
                range: *range,
                ports: Ports::ALL,
            });
        }
        AllowList { rules }
    }

    /// Whether `to` is in any rule.
    pub fn contains(&self, to: SocketAddr) -> bool {
        self.rules.iter().any(|r| r.contains(to))
    }

    /// The rules, in the order given.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }
}

impl FromStr for AllowList {
    type Err = Error;

    /// Rules separated by commas.
    fn from_str(s: &str) -> Result<AllowList, Error> {
        let mut rules = Vec::new();
        for item in s.split(',') {
            rules.push(item.parse()?).map_err(|_| Error::TooMany)?;
        }
        Ok(AllowList { rules })
    }
}

impl fmt::Display for AllowList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.rules.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

/// One of vncap's own listening sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listening {
    /// The address it is bound to (unspecified: every address of the host).
    pub addr: IpAddr,
    /// Its port, or the entry-port pool.
    pub ports: Ports,
    /// What it is, for the log (`"the control channel"`).
    pub what: &'static str,
}

/// vncap's own listening sockets: never a backend.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Own {
    sockets: Vec<Listening, OWN_CAP>,
}

impl Own {
    /// No sockets.
    pub const fn new() -> Own {
        Own {
            sockets: Vec::new(),
        }
    }

    /// Adds a socket (beyond [`OWN_CAP`] it is dropped: the caller adds
    /// fewer than that).
    pub fn push(&mut self, s: Listening) {
        if self.sockets.push(s).is_err() {
            warn!("backend_allow: more than {} own sockets", OWN_CAP);
        }
    }

    /// The sockets.
    pub fn sockets(&self) -> &[Listening] {
        &self.sockets
    }

    /// The socket `to` would reach, if one. `is_local` says whether an
    /// address belongs to this host (asked only for a socket bound to every
    /// address, whose port `to` has, when `to` is neither loopback nor
    /// unspecified).
    pub fn reached(
        &self,
        to: SocketAddr,
        mut is_local: impl FnMut(IpAddr) -> bool,
    ) -> Option<&Listening> {
        let ip = to.ip().to_canonical();
        self.sockets.iter().find(|s| {
            if !s.ports.contains(to.port()) {
                return false;
            }
            let bound = s.addr.to_canonical();
            if bound.is_unspecified() {
                ip.is_loopback() || ip.is_unspecified() || is_local(ip)
            } else {
                bound == ip || ip.is_unspecified()
            }
        })
    }
}

/// Why a backend address is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not in `--backend-allow`.
    NotAllowed,
    /// One of vncap's own listening sockets (what it is).
    Own(&'static str),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NotAllowed => f.write_str("not in --backend-allow"),
            Refusal::Own(what) => write!(f, "that is vncap's own {what}"),
        }
    }
}

/// Whether a ticket may reach `to`: it is in `allow` and is none of `own`
/// (see [`Own::reached`] for `is_local`).
pub fn check(
    allow: &AllowList,
    own: &Own,
    to: SocketAddr,
    is_local: impl FnMut(IpAddr) -> bool,
) -> Result<(), Refusal> {
    if let Some(s) = own.reached(to, is_local) {
        return Err(Refusal::Own(s.what));
    }
    if !allow.contains(to) {
        return Err(Refusal::NotAllowed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::ToString;

    fn to(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn rules_parse_with_and_without_ports() {
        let r: Rule = "10.0.0.0/8".parse().unwrap();
        assert_eq!(r.ports, Ports::ALL);
        assert!(r.contains(to("10.1.2.3:1")));
        let r: Rule = "192.0.2.7:5900-5999".parse().unwrap();
        assert!(r.contains(to("192.0.2.7:5900")));
        assert!(r.contains(to("192.0.2.7:5999")));
        assert!(!r.contains(to("192.0.2.7:6000")));
        assert!(!r.contains(to("192.0.2.8:5900")));
        let r: Rule = "192.0.2.0/24:5901".parse().unwrap();
        assert_eq!(r.ports, Ports::one(5901));
        let r: Rule = "2001:db8::/32:5900-6000".parse().unwrap();
        assert!(r.contains(to("[2001:db8::9]:5950")));
        assert!(!r.contains(to("[2001:db8::9]:6001")));
        let r: Rule = "[2001:db8::7]:5900".parse().unwrap();
        assert!(r.contains(to("[2001:db8::7]:5900")));
        let r: Rule = "::1:5900-5999".parse().unwrap();
        assert_eq!(r.range.to_string(), "::1/128");
        assert_eq!(r.ports, Ports { lo: 5900, hi: 5999 });
        let r: Rule = "::1:5900".parse().unwrap();
        assert_eq!(
            r.range.to_string(),
            "::1:5900/128",
            "an address, not a port"
        );
        assert_eq!(r.ports, Ports::ALL);
        let r: Rule = "[::ffff:127.0.0.1]".parse().unwrap();
        assert!(r.contains(to("127.0.0.1:9")));
    }

    #[test]
    fn typos_are_refused() {
        assert_eq!("10.0.0.0/8:".parse::<Rule>(), Err(Error::BadPorts));
        assert_eq!("10.0.0.1:6000-5900".parse::<Rule>(), Err(Error::BadPorts));
        assert_eq!("10.0.0.1:65536".parse::<Rule>(), Err(Error::BadPorts));
        assert_eq!("10.0.0.1:+5".parse::<Rule>(), Err(Error::BadPorts));
        assert_eq!("[::1]5900".parse::<Rule>(), Err(Error::BadPorts));
        assert_eq!(
            "10.0.0.1/8:5900".parse::<Rule>(),
            Err(Error::Range(cidr::Error::HostBitsSet))
        );
        assert_eq!(
            "host.example:5900".parse::<Rule>(),
            Err(Error::Range(cidr::Error::BadAddress))
        );
        assert_eq!(
            "".parse::<AllowList>(),
            Err(Error::Range(cidr::Error::Empty))
        );
        let many = ["10.0.0.0/8"; LIST_CAP + 1].join(",");
        assert_eq!(many.parse::<AllowList>(), Err(Error::TooMany));
    }

    #[test]
    fn every_short_string_parses_or_not_without_panic_and_prints_back() {
        // Operator input, not network input; still every string of the
        // syntax's characters up to 5 long is tried.
        const CHARS: &[u8] = b"0:/[]-.f,19";
        let mut buf = [0u8; 5];
        for len in 0..=buf.len() {
            let count = CHARS.len().pow(len as u32);
            for mut n in 0..count {
                for b in buf.iter_mut().take(len) {
                    *b = CHARS[n % CHARS.len()];
                    n /= CHARS.len();
                }
                let text = core::str::from_utf8(&buf[..len]).unwrap();
                if let Ok(list) = text.parse::<AllowList>() {
                    let again: AllowList = list.to_string().parse().unwrap();
                    assert_eq!(again, list, "{text:?}");
                }
            }
        }
    }

    #[test]
    fn lists_print_back() {
        let l: AllowList = "10.0.0.0/8:5900-5999, 192.0.2.1,[::1]:5901"
            .parse()
            .unwrap();
        assert_eq!(
            l.to_string(),
            "10.0.0.0/8:5900-5999,192.0.2.1/32,::1/128:5901"
        );
        assert_eq!(AllowList::any().to_string(), "0.0.0.0/0,::/0");
    }

    #[test]
    fn the_default_allows_any_backend_but_vncap_itself() {
        let mut own = Own::new();
        own.push(Listening {
            addr: "127.0.0.1".parse().unwrap(),
            ports: Ports::one(8888),
            what: "control channel",
        });
        own.push(Listening {
            addr: "::".parse().unwrap(),
            ports: Ports { lo: 7000, hi: 8000 },
            what: "entry ports",
        });
        let any = AllowList::any();
        let local = |ip: IpAddr| ip == "192.0.2.10".parse::<IpAddr>().unwrap();
        assert_eq!(check(&any, &own, to("203.0.113.5:5900"), local), Ok(()));
        assert_eq!(
            check(&any, &own, to("127.0.0.1:8888"), local),
            Err(Refusal::Own("control channel"))
        );
        assert_eq!(
            check(&any, &own, to("0.0.0.0:8888"), local),
            Err(Refusal::Own("control channel")),
            "0.0.0.0 reaches this host"
        );
        assert_eq!(
            check(&any, &own, to("127.0.0.2:8888"), local),
            Ok(()),
            "another loopback address is another socket"
        );
        for t in [
            "127.0.0.5:7000",
            "[::1]:8000",
            "192.0.2.10:7500",
            "[::ffff:127.0.0.1]:7001",
        ] {
            assert_eq!(
                check(&any, &own, to(t), local),
                Err(Refusal::Own("entry ports")),
                "{t}"
            );
        }
        assert_eq!(
            check(&any, &own, to("192.0.2.11:7500"), local),
            Ok(()),
            "another host's port 7500"
        );
        let allow: AllowList = "10.0.0.0/8:5900-5999".parse().unwrap();
        assert_eq!(check(&allow, &own, to("10.0.0.1:5900"), local), Ok(()));
        assert_eq!(
            check(&allow, &own, to("10.0.0.1:22"), local),
            Err(Refusal::NotAllowed)
        );
        assert_eq!(
            check(&allow, &own, to("192.0.2.1:5900"), local),
            Err(Refusal::NotAllowed)
        );
    }
}
