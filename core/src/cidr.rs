//! Address ranges in CIDR notation (RFC 4632, RFC 4291 section 2.3): one
//! [`Cidr`] and a bounded [`CidrList`] of them, parsed from the text operators
//! write (`10.0.0.0/8`, `::1`, `192.0.2.0/24,2001:db8::/32`). The daemon's
//! access options (`--control-allow`, `--backend-allow`, `--trusted-proxy`)
//! are lists of these; whether an address is in one is decided here, once.
//!
//! An IPv4-mapped IPv6 address (`::ffff:192.0.2.1`, what a dual-stack socket
//! reports for an IPv4 peer) is the IPv4 address it maps: it is in
//! `192.0.2.0/24`, and never in an IPv6 range.

use core::fmt;
use core::net::IpAddr;
use core::str::FromStr;

use heapless::Vec;

/// Ranges one [`CidrList`] holds.
pub const LIST_CAP: usize = 32;

/// One address range: a network address and how many leading bits of it
/// count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix_len: u8,
}

/// Why a range (or a list of them) does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// Not an IPv4 or IPv6 address.
    BadAddress,
    /// The prefix length is not a number up to 32 (IPv4) or 128 (IPv6).
    BadPrefixLength,
    /// The address has bits set past the prefix (`10.0.0.1/8`): a typo
    /// more often than not, so it is refused rather than masked.
    HostBitsSet,
    /// An empty item (`a,,b`, or nothing at all).
    Empty,
    /// More than [`LIST_CAP`] ranges.
    TooMany,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::BadAddress => "not an IP address",
            Error::BadPrefixLength => "the prefix length is not 0-32 (IPv4) or 0-128 (IPv6)",
            Error::HostBitsSet => "the address has bits set past its prefix length",
            Error::Empty => "an empty range",
            Error::TooMany => "more than 32 ranges",
        })
    }
}

/// `ip` with an IPv4-mapped IPv6 address turned into the IPv4 one.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// The address's bits, left-aligned in a `u128`, and how many there are.
fn bits(ip: IpAddr) -> (u128, u8) {
    match ip {
        IpAddr::V4(v4) => ((u128::from(u32::from(v4))) << 96, 32),
        IpAddr::V6(v6) => (u128::from(v6), 128),
    }
}

/// The mask of the `len` leading bits of a `u128`.
fn mask(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len))
    }
}

impl Cidr {
    /// The range of `network`'s `prefix_len` leading bits.
    pub fn new(network: IpAddr, prefix_len: u8) -> Result<Cidr, Error> {
        let network = canonical(network);
        let (value, width) = bits(network);
        if prefix_len > width {
            return Err(Error::BadPrefixLength);
        }
        if value & !mask(prefix_len) != 0 {
            return Err(Error::HostBitsSet);
        }
        Ok(Cidr {
            network,
            prefix_len,
        })
    }

    /// The range holding `ip` alone.
    pub fn host(ip: IpAddr) -> Cidr {
        let ip = canonical(ip);
        Cidr {
            network: ip,
            prefix_len: bits(ip).1,
        }
    }

    /// The network address.
    pub fn network(&self) -> IpAddr {
        self.network
    }

    /// How many leading bits count.
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// Whether `ip` is in this range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        if ip.is_ipv4() != self.network.is_ipv4() {
            return false;
        }
        let m = mask(self.prefix_len);
        bits(ip).0 & m == bits(self.network).0 & m
    }
}

impl FromStr for Cidr {
    type Err = Error;

    /// `ADDRESS/LEN`, or a bare `ADDRESS` (the one host).
    fn from_str(s: &str) -> Result<Cidr, Error> {
        let s = s.trim();
        if s.is_empty() {
            return Err(Error::Empty);
        }
        let (addr, len) = match s.split_once('/') {
            Some((addr, len)) => (addr, Some(len)),
            None => (s, None),
        };
        let ip: IpAddr = addr.parse().map_err(|_| Error::BadAddress)?;
        match len {
            None => Ok(Cidr::host(ip)),
            Some(len) => {
                // Digits only: `u8::from_str` would also take `+8`.
                if len.is_empty() || len.len() > 3 || !len.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(Error::BadPrefixLength);
                }
                let len: u8 = len.parse().map_err(|_| Error::BadPrefixLength)?;
                Cidr::new(ip, len)
            }
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

/// A bounded list of ranges; an address is in the list when it is in any of
/// them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CidrList {
    ranges: Vec<Cidr, LIST_CAP>,
}

impl CidrList {
    /// The list of no ranges: nothing is in it.
    pub const fn none() -> CidrList {
        CidrList { ranges: Vec::new() }
    }

    /// Loopback: `127.0.0.0/8` and `::1`.
    pub fn loopback() -> CidrList {
        let mut list = CidrList::none();
        list.ranges.extend([
            Cidr::new(IpAddr::V4(core::net::Ipv4Addr::new(127, 0, 0, 0)), 8)
                .expect("a network address"),
            Cidr::host(IpAddr::V6(core::net::Ipv6Addr::LOCALHOST)),
        ]);
        list
    }

    /// Every address: `0.0.0.0/0` and `::/0`.
    pub fn any() -> CidrList {
        let mut list = CidrList::none();
        list.ranges.extend([
            Cidr::new(IpAddr::V4(core::net::Ipv4Addr::UNSPECIFIED), 0).expect("no host bits"),
            Cidr::new(IpAddr::V6(core::net::Ipv6Addr::UNSPECIFIED), 0).expect("no host bits"),
        ]);
        list
    }

    /// Adds a range; [`Error::TooMany`] past [`LIST_CAP`].
    pub fn push(&mut self, range: Cidr) -> Result<(), Error> {
        self.ranges.push(range).map_err(|_| Error::TooMany)
    }

    /// Whether `ip` is in any of the ranges.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.ranges.iter().any(|r| r.contains(ip))
    }

    /// The ranges, in the order given.
    pub fn ranges(&self) -> &[Cidr] {
        &self.ranges
    }

    /// Whether the list has no ranges.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }
}

impl FromStr for CidrList {
    type Err = Error;

    /// Ranges separated by commas (spaces around them are ignored).
    fn from_str(s: &str) -> Result<CidrList, Error> {
        let mut list = CidrList::none();
        for item in s.split(',') {
            list.push(item.parse()?)?;
        }
        Ok(list)
    }
}

impl fmt::Display for CidrList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::ToString;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_hold_their_addresses_and_no_others() {
        let r: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(r.contains(ip("10.1.255.7")));
        assert!(!r.contains(ip("10.2.0.1")));
        assert!(
            !r.contains(ip("::a01:7")),
            "an IPv6 address is not in an IPv4 range"
        );
        let r: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(r.contains(ip("2001:db8:ffff::1")));
        assert!(!r.contains(ip("2001:db9::1")));
        let everything: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(everything.contains(ip("203.0.113.9")));
        assert!(!everything.contains(ip("::1")));
    }

    #[test]
    fn a_mapped_address_is_its_ipv4_address() {
        let r: Cidr = "127.0.0.0/8".parse().unwrap();
        assert!(r.contains(ip("::ffff:127.0.0.2")));
        let r: Cidr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(r.to_string(), "192.0.2.1/32");
        assert!(!CidrList::loopback().contains(ip("::ffff:10.0.0.1")));
        assert!(CidrList::loopback().contains(ip("::1")));
    }

    #[test]
    fn bare_addresses_are_hosts() {
        let r: Cidr = "192.0.2.7".parse().unwrap();
        assert_eq!(r.prefix_len(), 32);
        assert!(r.contains(ip("192.0.2.7")));
        assert!(!r.contains(ip("192.0.2.8")));
    }

    #[test]
    fn typos_are_refused() {
        assert_eq!("10.0.0.1/8".parse::<Cidr>(), Err(Error::HostBitsSet));
        assert_eq!("10.0.0.0/33".parse::<Cidr>(), Err(Error::BadPrefixLength));
        assert_eq!("10.0.0.0/+8".parse::<Cidr>(), Err(Error::BadPrefixLength));
        assert_eq!("10.0.0.0/".parse::<Cidr>(), Err(Error::BadPrefixLength));
        assert_eq!("::/129".parse::<Cidr>(), Err(Error::BadPrefixLength));
        assert_eq!("example.org/8".parse::<Cidr>(), Err(Error::BadAddress));
        assert_eq!("10.0.0.0/8,,::1".parse::<CidrList>(), Err(Error::Empty));
        assert_eq!("".parse::<CidrList>(), Err(Error::Empty));
    }

    #[test]
    fn lists_parse_and_print_back() {
        let list: CidrList = " 10.0.0.0/8, ::1 ,192.0.2.0/24".parse().unwrap();
        assert_eq!(list.to_string(), "10.0.0.0/8,::1/128,192.0.2.0/24");
        assert!(list.contains(ip("192.0.2.200")));
        assert!(!list.contains(ip("192.0.3.1")));
        assert!(CidrList::any().contains(ip("::ffff:8.8.8.8")));
        assert!(!CidrList::none().contains(ip("127.0.0.1")));
        let many = ["10.0.0.0/8"; LIST_CAP + 1].join(",");
        assert_eq!(many.parse::<CidrList>(), Err(Error::TooMany));
    }
}
