//! The PROXY protocol header (HAProxy's `send-proxy` and `send-proxy-v2`,
//! versions 1 and 2 of "The PROXY protocol" by W. Tarreau): what a load
//! balancer in front of vncap writes before the client's own bytes, naming
//! the client's address. It is not a policy: whether a connection may carry
//! one (it comes from a trusted proxy) is the driver's decision, and a
//! header from anyone else must be refused, never believed.
//!
//! [`parse`] reads the header at the start of what a connection sent, as
//! smoltcp's wire types read theirs: more bytes needed is `Ok(None)`; a
//! complete header gives the addresses and its length (the bytes after it
//! are the client's, for the next stage). No allocation, no panics; every
//! length is checked before it is used.
//!
//! - Version 1: `PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n` or `PROXY
//!   UNKNOWN ...\r\n`, at most 107 bytes.
//! - Version 2: the 12-byte signature, version and command (`LOCAL`: a
//!   health check, the connection's own addresses count; `PROXY`), address
//!   family (TCP over IPv4 or IPv6; `UNSPEC`), a length, the addresses, and
//!   TLVs (skipped). Headers longer than [`MAX_V2`] are refused.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use core::str::FromStr;

/// Version 2's signature: the first 12 bytes.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The longest version 1 header, CRLF included.
pub const MAX_V1: usize = 107;
/// The longest version 2 header vncap takes (16 bytes of fixed part, the
/// addresses, and some room for TLVs).
pub const MAX_V2: usize = 16 + 36 + 460;
/// The most input [`parse`] ever needs to decide.
pub const MAX_INPUT: usize = MAX_V2;

/// Where a connection behind the proxy came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The client's address and the address it connected to.
    Tcp {
        /// The client.
        source: SocketAddr,
        /// The proxy's listening address the client reached.
        destination: SocketAddr,
    },
    /// The proxy says nothing about a client (version 1 `UNKNOWN`, version
    /// 2 `LOCAL` or `UNSPEC`: a health check): the connection's own
    /// addresses count.
    Unknown,
}

/// A parsed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// 1 or 2.
    pub version: u8,
    /// What it says of the client.
    pub source: Source,
    /// Its length: the client's bytes start here.
    pub len: usize,
}

impl Header {
    /// The client's address, or `fallback` (the connection's peer) when the
    /// header names none.
    pub fn client_or(&self, fallback: SocketAddr) -> SocketAddr {
        match self.source {
            Source::Tcp { source, .. } => source,
            Source::Unknown => fallback,
        }
    }
}

/// Why the bytes are not a header vncap takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// Neither `PROXY ` nor the version 2 signature.
    NotProxy,
    /// A version 1 line that does not parse (fields, addresses, ports, or
    /// no CRLF within 107 bytes).
    BadV1,
    /// A version 2 header with a version or command that is not 2 / LOCAL /
    /// PROXY, or a length too short for its addresses.
    BadV2,
    /// A version 2 header longer than [`MAX_V2`].
    TooLong,
    /// A version 2 address family vncap does not serve (UDP, UNIX).
    UnsupportedFamily,
}

impl Error {
    /// What went wrong, for the log.
    pub const fn reason(&self) -> &'static str {
        match self {
            Error::NotProxy => "no PROXY protocol header",
            Error::BadV1 => "malformed PROXY protocol v1 header",
            Error::BadV2 => "malformed PROXY protocol v2 header",
            Error::TooLong => "PROXY protocol v2 header too long",
            Error::UnsupportedFamily => "PROXY protocol v2 address family not TCP",
        }
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.reason())
    }
}

/// Reads a PROXY protocol header at the start of `input`: `Ok(None)` while
/// `input` is a strict prefix of one (read more), the header once it is
/// complete, or why `input` is not one. Any split of the same bytes gives
/// the same answer once they are all there.
pub fn parse(input: &[u8]) -> Result<Option<Header>, Error> {
    let n = input.len().min(V2_SIGNATURE.len());
    if input.get(..n) == V2_SIGNATURE.get(..n) {
        return if n < V2_SIGNATURE.len() {
            Ok(None)
        } else {
            parse_v2(input)
        };
    }
    let n = input.len().min(6);
    if input.get(..n) == b"PROXY ".get(..n) {
        return if n < 6 { Ok(None) } else { parse_v1(input) };
    }
    Err(Error::NotProxy)
}

/// Whether `input` starts with a PROXY protocol signature (`PROXY ` or
/// version 2's 12 bytes): `None` while it is empty or a strict prefix of
/// one (read more).
pub fn starts_header(input: &[u8]) -> Option<bool> {
    let mut partial = input.is_empty();
    for sig in [&b"PROXY "[..], &V2_SIGNATURE] {
        let n = input.len().min(sig.len());
        if input.get(..n) == sig.get(..n) {
            if n == sig.len() {
                return Some(true);
            }
            partial = true;
        }
    }
    (!partial).then_some(false)
}

fn parse_v1(input: &[u8]) -> Result<Option<Header>, Error> {
    let window = input.get(..input.len().min(MAX_V1)).unwrap_or(input);
    let Some(end) = window.windows(2).position(|w| w == b"\r\n") else {
        return if input.len() >= MAX_V1 {
            Err(Error::BadV1)
        } else {
            Ok(None)
        };
    };
    let line = window.get(6..end).ok_or(Error::BadV1)?;
    let line = core::str::from_utf8(line).map_err(|_| Error::BadV1)?;
    let mut fields = line.split(' ');
    let family = fields.next().ok_or(Error::BadV1)?;
    let len = end + 2;
    if family == "UNKNOWN" {
        // The rest of the line is to be ignored.
        return Ok(Some(Header {
            version: 1,
            source: Source::Unknown,
            len,
        }));
    }
    let mut next = || fields.next().ok_or(Error::BadV1);
    let (src, dst, sport, dport) = (next()?, next()?, next()?, next()?);
    if fields.next().is_some() {
        return Err(Error::BadV1);
    }
    let ip = |s: &str| -> Result<IpAddr, Error> {
        match family {
            "TCP4" => Ipv4Addr::from_str(s).map(IpAddr::V4),
            "TCP6" => Ipv6Addr::from_str(s).map(IpAddr::V6),
            _ => return Err(Error::BadV1),
        }
        .map_err(|_| Error::BadV1)
    };
    let port = |s: &str| -> Result<u16, Error> {
        // Decimal, no sign, no leading zero (the spec's form).
        let ok = !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit());
        if !ok || (s.len() > 1 && s.starts_with('0')) {
            return Err(Error::BadV1);
        }
        s.parse().map_err(|_| Error::BadV1)
    };
    Ok(Some(Header {
        version: 1,
        source: Source::Tcp {
            source: SocketAddr::new(ip(src)?, port(sport)?),
            destination: SocketAddr::new(ip(dst)?, port(dport)?),
        },
        len,
    }))
}

fn parse_v2(input: &[u8]) -> Result<Option<Header>, Error> {
    let Some(fixed) = input.get(..16) else {
        return Ok(None);
    };
    let (ver_cmd, family) = (fixed[12], fixed[13]);
    let body = usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    if ver_cmd >> 4 != 2 || ver_cmd & 0x0f > 1 {
        return Err(Error::BadV2);
    }
    let len = 16 + body;
    if len > MAX_V2 {
        return Err(Error::TooLong);
    }
    let Some(addresses) = input.get(16..len) else {
        return Ok(None);
    };
    let local = ver_cmd & 0x0f == 0;
    let source = match family {
        _ if local => Source::Unknown,
        0x00 => Source::Unknown,
        0x11 => {
            let a = addresses.get(..12).ok_or(Error::BadV2)?;
            let ip = |i: usize| Ipv4Addr::new(a[i], a[i + 1], a[i + 2], a[i + 3]);
            let port = |i: usize| u16::from_be_bytes([a[i], a[i + 1]]);
            Source::Tcp {
                source: SocketAddr::new(ip(0).into(), port(8)),
                destination: SocketAddr::new(ip(4).into(), port(10)),
            }
        }
        0x21 => {
            let a = addresses.get(..36).ok_or(Error::BadV2)?;
            let ip = |i: usize| {
                let mut b = [0u8; 16];
                b.copy_from_slice(&a[i..i + 16]);
                Ipv6Addr::from(b)
            };
            let port = |i: usize| u16::from_be_bytes([a[i], a[i + 1]]);
            Source::Tcp {
                source: SocketAddr::new(ip(0).into(), port(32)),
                destination: SocketAddr::new(ip(16).into(), port(34)),
            }
        }
        _ => return Err(Error::UnsupportedFamily),
    };
    Ok(Some(Header {
        version: 2,
        source,
        len,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn version_1() {
        let h = b"PROXY TCP4 192.0.2.7 203.0.113.1 56324 6080\r\nGET /";
        let got = parse(h).unwrap().unwrap();
        assert_eq!(got.len, h.len() - 5);
        assert_eq!(
            got.source,
            Source::Tcp {
                source: addr("192.0.2.7:56324"),
                destination: addr("203.0.113.1:6080")
            }
        );
        let h6 = b"PROXY TCP6 2001:db8::7 2001:db8::1 4000 443\r\n";
        assert_eq!(
            parse(h6).unwrap().unwrap().client_or(addr("127.0.0.1:1")),
            addr("[2001:db8::7]:4000")
        );
        let unknown = b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\nx";
        let got = parse(unknown).unwrap().unwrap();
        assert_eq!(got.source, Source::Unknown);
        assert_eq!(got.client_or(addr("127.0.0.1:9")), addr("127.0.0.1:9"));
        // Every strict prefix asks for more.
        for k in 0..h.len() - 5 {
            assert_eq!(parse(&h[..k]), Ok(None), "prefix {k}");
        }
    }

    #[test]
    fn version_1_refusals() {
        for bad in [
            &b"PROXY TCP4 192.0.2.7 203.0.113.1 56324\r\n"[..],
            b"PROXY TCP4 192.0.2.7 203.0.113.1 056324 80\r\n",
            b"PROXY TCP4 192.0.2.7 203.0.113.1 65536 80\r\n",
            b"PROXY TCP4 2001:db8::1 203.0.113.1 1 80\r\n",
            b"PROXY TCP5 192.0.2.7 203.0.113.1 1 80\r\n",
            b"PROXY TCP4 192.0.2.7 203.0.113.1 1 80 extra\r\n",
            b"PROXY TCP4  192.0.2.7 203.0.113.1 1 80\r\n",
        ] {
            assert_eq!(
                parse(bad),
                Err(Error::BadV1),
                "{:?}",
                core::str::from_utf8(bad)
            );
        }
        let long = [b'A'; 200];
        let mut line = [0u8; 200];
        line[..6].copy_from_slice(b"PROXY ");
        line[6..].copy_from_slice(&long[6..]);
        assert_eq!(parse(&line), Err(Error::BadV1));
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Err(Error::NotProxy));
        assert_eq!(parse(b"RFB 003.008\n"), Err(Error::NotProxy));
    }

    #[test]
    fn a_signature_is_seen_as_soon_as_it_can_be() {
        assert_eq!(starts_header(b""), None);
        assert_eq!(starts_header(b"PRO"), None);
        assert_eq!(starts_header(b"PROXY "), Some(true));
        assert_eq!(starts_header(&V2_SIGNATURE[..5]), None);
        assert_eq!(starts_header(&V2_SIGNATURE), Some(true));
        assert_eq!(starts_header(b"RFB 003.008\n"), Some(false));
        assert_eq!(starts_header(b"\r\n\r\nX"), Some(false));
        assert_eq!(starts_header(b"GET / HTTP/1.1"), Some(false));
    }

    #[test]
    fn version_2() {
        let mut h = V2_SIGNATURE.to_vec();
        h.extend_from_slice(&[0x21, 0x11, 0, 12 + 5]);
        h.extend_from_slice(&[192, 0, 2, 7, 203, 0, 113, 1]);
        h.extend_from_slice(&56324u16.to_be_bytes());
        h.extend_from_slice(&6080u16.to_be_bytes());
        h.extend_from_slice(&[0x04, 0, 2, b'x', b'y']); // a TLV, skipped
        let len = h.len();
        h.extend_from_slice(b"GET /");
        let got = parse(&h).unwrap().unwrap();
        assert_eq!((got.version, got.len), (2, len));
        assert_eq!(
            got.source,
            Source::Tcp {
                source: addr("192.0.2.7:56324"),
                destination: addr("203.0.113.1:6080")
            }
        );
        for k in 0..len {
            assert_eq!(parse(&h[..k]), Ok(None), "prefix {k}");
        }
        // LOCAL (a health check): the connection's own address counts.
        let mut local = V2_SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        assert_eq!(parse(&local).unwrap().unwrap().source, Source::Unknown);
        // IPv6.
        let mut v6 = V2_SIGNATURE.to_vec();
        v6.extend_from_slice(&[0x21, 0x21, 0, 36]);
        let a: Ipv6Addr = "2001:db8::7".parse().unwrap();
        let b: Ipv6Addr = "2001:db8::1".parse().unwrap();
        v6.extend_from_slice(&a.octets());
        v6.extend_from_slice(&b.octets());
        v6.extend_from_slice(&[0x0f, 0xa0, 0x01, 0xbb]);
        assert_eq!(
            parse(&v6).unwrap().unwrap().client_or(addr("127.0.0.1:1")),
            addr("[2001:db8::7]:4000")
        );
    }

    #[test]
    fn version_2_refusals() {
        let with = |ver_cmd: u8, fam: u8, len: u16| {
            let mut h = V2_SIGNATURE.to_vec();
            h.extend_from_slice(&[ver_cmd, fam]);
            h.extend_from_slice(&len.to_be_bytes());
            h.resize(16 + usize::from(len).min(600), 0);
            parse(&h)
        };
        assert_eq!(with(0x11, 0x11, 12), Err(Error::BadV2)); // version 1 in v2 framing
        assert_eq!(with(0x22, 0x11, 12), Err(Error::BadV2)); // command 2
        assert_eq!(with(0x21, 0x11, 4), Err(Error::BadV2)); // too short for IPv4
        assert_eq!(with(0x21, 0x12, 12), Err(Error::UnsupportedFamily)); // UDP
        assert_eq!(with(0x21, 0x31, 216), Err(Error::UnsupportedFamily)); // UNIX
        assert_eq!(with(0x21, 0x11, 1000), Err(Error::TooLong));
    }
}
