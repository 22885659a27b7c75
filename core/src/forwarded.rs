//! The client address a reverse proxy writes into an HTTP request it
//! forwards: `X-Forwarded-For` (the de facto header: a comma-separated list
//! of addresses, each proxy appending the one it saw) and `Forwarded`
//! (RFC 7239: comma-separated elements of `;`-separated `name=value` pairs,
//! the client in `for=`). The WebSocket handshake collects them
//! ([`Collector`], fed every header line) so the entry machine can take the
//! client from a trusted proxy.
//!
//! It is not a policy: these headers are anyone's to write (a browser behind
//! a corporate proxy sends them legitimately), so they say something only
//! when the connection comes from a proxy the operator trusts, and then only
//! their **last** entry — the one that proxy appended — is believed: the
//! entries before it are what the client claimed. The driver decides whom to
//! trust; this module only reads.
//!
//! When a request carries both headers and their last entries differ, the
//! trusted proxy wrote one and the client the other; which is which cannot
//! be told, so neither is believed ([`Collector::client`] is `None`). An
//! entry that is not an address (RFC 7239's `unknown`, an obfuscated
//! `_name`, a malformed value) names nobody.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use core::str::FromStr;

/// Which header named the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Header {
    /// `X-Forwarded-For`.
    XForwardedFor,
    /// `Forwarded` (RFC 7239).
    Forwarded,
}

impl Header {
    /// The header's name, as written.
    pub const fn name(&self) -> &'static str {
        match self {
            Header::XForwardedFor => "X-Forwarded-For",
            Header::Forwarded => "Forwarded",
        }
    }
}

impl core::fmt::Display for Header {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// The client a proxy named in a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Named {
    /// The client's address (an IPv4-mapped IPv6 address is its IPv4
    /// address).
    pub ip: IpAddr,
    /// The header that named it.
    pub header: Header,
}

/// The last entries of a request's forwarding headers, collected header line
/// by header line (a header repeated over lines is one list, RFC 9110
/// section 5.3: the last line's last entry is the list's last).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Collector {
    /// `X-Forwarded-For`'s last entry, if the header came: an address, or
    /// `None` for an entry that is not one.
    x_forwarded_for: Option<Option<IpAddr>>,
    /// `Forwarded`'s last element's `for=`, likewise.
    forwarded: Option<Option<IpAddr>>,
}

impl Collector {
    /// Looks at one header line; returns whether it was a forwarding header.
    pub fn header(&mut self, name: &str, value: &[u8]) -> bool {
        if name.eq_ignore_ascii_case("x-forwarded-for") {
            self.x_forwarded_for = Some(x_forwarded_for_last(value));
            true
        } else if name.eq_ignore_ascii_case("forwarded") {
            self.forwarded = Some(forwarded_last(value));
            true
        } else {
            false
        }
    }

    /// The client the request's proxy named: the last entry of the one
    /// forwarding header it carries, or of both when they agree.
    pub fn client(&self) -> Option<Named> {
        let named = |ip: Option<IpAddr>, header| ip.map(|ip| Named { ip, header });
        match (self.x_forwarded_for, self.forwarded) {
            (Some(x), Some(f)) if x == f => named(x, Header::XForwardedFor),
            (Some(_), Some(_)) | (None, None) => None,
            (Some(x), None) => named(x, Header::XForwardedFor),
            (None, Some(f)) => named(f, Header::Forwarded),
        }
    }
}

/// The last entry of an `X-Forwarded-For` value, if it is an address
/// (`192.0.2.7`, `2001:db8::7`, and the forms with a port some proxies
/// write: `192.0.2.7:4000`, `[2001:db8::7]:4000`).
pub fn x_forwarded_for_last(value: &[u8]) -> Option<IpAddr> {
    let value = core::str::from_utf8(value).ok()?;
    node(value.rsplit(',').next()?.trim())
}

/// The `for=` of the last element of a `Forwarded` value (RFC 7239 section
/// 4), if it is an address: `for=192.0.2.7`, `for="[2001:db8::7]:4711"`.
pub fn forwarded_last(value: &[u8]) -> Option<IpAddr> {
    let value = core::str::from_utf8(value).ok()?;
    // Quoted strings hold no commas or semicolons in the forms that name an
    // address, so splitting on them is enough to find the last element's
    // pairs; anything stranger is not an address and names nobody.
    let element = value.rsplit(',').next()?;
    let mut found = None;
    for pair in element.split(';') {
        let (name, v) = pair.trim().split_once('=')?;
        if name.trim().eq_ignore_ascii_case("for") {
            if found.is_some() {
                // A parameter given twice (RFC 7239 section 4): malformed.
                return None;
            }
            let v = v.trim();
            let v = match v.strip_prefix('"') {
                Some(q) => q.strip_suffix('"')?,
                None => v,
            };
            found = Some(node(v)?);
        }
    }
    found
}

/// An address, with an optional port (`a.b.c.d`, `a.b.c.d:port`, a bare
/// IPv6 address, `[v6]`, `[v6]:port`), as its canonical IP.
fn node(s: &str) -> Option<IpAddr> {
    let ip = if let Some(rest) = s.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        if !(after.is_empty() || port(after.strip_prefix(':')?)) {
            return None;
        }
        IpAddr::V6(Ipv6Addr::from_str(v6).ok()?)
    } else if let Ok(v6) = Ipv6Addr::from_str(s) {
        IpAddr::V6(v6)
    } else {
        let (v4, p) = s.split_once(':').unwrap_or((s, ""));
        if !(p.is_empty() && !s.contains(':') || port(p)) {
            return None;
        }
        IpAddr::V4(Ipv4Addr::from_str(v4).ok()?)
    };
    Some(ip.to_canonical())
}

/// Whether `s` is a port number (1 to 5 decimal digits, at most 65535).
fn port(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 5
        && s.bytes().all(|b| b.is_ascii_digit())
        && s.parse::<u16>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn x_forwarded_for_is_read_from_the_right() {
        assert_eq!(x_forwarded_for_last(b"192.0.2.7"), ip("192.0.2.7"));
        assert_eq!(
            x_forwarded_for_last(b"203.0.113.9, 10.0.0.1,192.0.2.7 "),
            ip("192.0.2.7")
        );
        assert_eq!(x_forwarded_for_last(b"2001:db8::7"), ip("2001:db8::7"));
        assert_eq!(
            x_forwarded_for_last(b"[2001:db8::7]:443"),
            ip("2001:db8::7")
        );
        assert_eq!(x_forwarded_for_last(b"192.0.2.7:4000"), ip("192.0.2.7"));
        assert_eq!(x_forwarded_for_last(b"::ffff:192.0.2.7"), ip("192.0.2.7"));
        for bad in [
            &b""[..],
            b"192.0.2.7, ",
            b"192.0.2.7, unknown",
            b"192.0.2.7:99999",
            b"192.0.2.7:",
            b"[2001:db8::7",
            b"[192.0.2.7]",
            b"example.org",
            b"\xff",
        ] {
            assert_eq!(x_forwarded_for_last(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn forwarded_is_read_from_the_last_element() {
        // RFC 7239 section 4's examples.
        assert_eq!(forwarded_last(br#"for="_gazonk""#), None);
        assert_eq!(
            forwarded_last(br#"For="[2001:db8:cafe::17]:4711""#),
            ip("2001:db8:cafe::17")
        );
        assert_eq!(
            forwarded_last(b"for=192.0.2.60;proto=http;by=203.0.113.43"),
            ip("192.0.2.60")
        );
        assert_eq!(
            forwarded_last(b"for=192.0.2.43, for=198.51.100.17"),
            ip("198.51.100.17")
        );
        assert_eq!(forwarded_last(b"for=unknown"), None);
        assert_eq!(forwarded_last(b"for=192.0.2.43, proto=https"), None);
        assert_eq!(forwarded_last(b"for=192.0.2.43;for=192.0.2.44"), None);
        assert_eq!(forwarded_last(br#"for="192.0.2.43"#), None);
        assert_eq!(forwarded_last(b"for"), None);
    }

    #[test]
    fn both_headers_must_agree() {
        let mut c = Collector::default();
        assert!(!c.header("Host", b"vncap"));
        assert_eq!(c.client(), None);
        assert!(c.header("X-Forwarded-For", b"198.51.100.1, 192.0.2.7"));
        let xff = Named {
            ip: "192.0.2.7".parse().unwrap(),
            header: Header::XForwardedFor,
        };
        assert_eq!(c.client(), Some(xff));
        // A second line: its last entry is the list's last.
        c.header("x-forwarded-for", b"192.0.2.8");
        assert_eq!(c.client().map(|n| n.ip), ip("192.0.2.8"));
        c.header("Forwarded", b"for=192.0.2.8");
        assert_eq!(c.client().map(|n| n.ip), ip("192.0.2.8"));
        c.header("Forwarded", b"for=192.0.2.9");
        assert_eq!(c.client(), None, "the two disagree: neither is believed");

        let mut c = Collector::default();
        c.header("FORWARDED", b"for=192.0.2.9;proto=https");
        assert_eq!(
            c.client(),
            Some(Named {
                ip: "192.0.2.9".parse().unwrap(),
                header: Header::Forwarded
            })
        );
    }
}
