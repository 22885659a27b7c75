//! RFB handshake vocabulary shared by [`crate::rfb::server`] and
//! [`crate::rfb::client`]: the ProtocolVersion message (RFC 6143 §7.1.1),
//! security type numbers (§7.1.2, §8.1.2), SecurityResult (§7.1.3), bounded
//! reason strings, and the small output queue both machines write into.
//!
//! It is not a state machine and knows nothing of the messages after the
//! handshake (ClientInit, ServerInit and on are relayed untouched).

/// Length of a ProtocolVersion message, `RFB xxx.yyy\n`.
pub const VERSION_LEN: usize = 12;

/// Security type 0, "Invalid": the server refuses the connection, a reason
/// string follows (RFC 6143 §7.1.2).
pub const SECURITY_INVALID: u8 = 0;
/// Security type 1, "None".
pub const SECURITY_NONE: u8 = 1;
/// Security type 2, "VNC Authentication" (DES challenge/response).
pub const SECURITY_VNC_AUTH: u8 = 2;
/// Security type 19, "VeNCrypt": TLS, then a subtype's authentication
/// ([`crate::rfb::vencrypt`]).
pub const SECURITY_VENCRYPT: u8 = 19;

/// SecurityResult "OK".
pub const SECURITY_RESULT_OK: u32 = 0;
/// SecurityResult "failed".
pub const SECURITY_RESULT_FAILED: u32 = 1;

/// Longest reason string kept or sent, in bytes; longer ones are truncated
/// (at a character boundary when the machine writes one).
pub const REASON_MAX: usize = 128;

/// An RFB protocol version this crate speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Version {
    /// RFB 3.3: the server picks the security type; no reason strings.
    V3_3,
    /// RFB 3.7: the viewer picks from a list; no SecurityResult for None.
    V3_7,
    /// RFB 3.8: like 3.7, plus SecurityResult for None and reason strings.
    V3_8,
}

impl Version {
    /// The ProtocolVersion message announcing this version.
    pub const fn message(self) -> &'static [u8; VERSION_LEN] {
        match self {
            Version::V3_3 => b"RFB 003.003\n",
            Version::V3_7 => b"RFB 003.007\n",
            Version::V3_8 => b"RFB 003.008\n",
        }
    }

    /// The minor version number (3, 7 or 8); the major is always 3.
    pub const fn minor(self) -> u16 {
        match self {
            Version::V3_3 => 3,
            Version::V3_7 => 7,
            Version::V3_8 => 8,
        }
    }
}

/// Parses a ProtocolVersion message, `RFB xxx.yyy\n` with three decimal
/// digits each, into `(major, minor)`; `None` if it is not one.
pub fn parse_version(msg: &[u8; VERSION_LEN]) -> Option<(u16, u16)> {
    let [b'R', b'F', b'B', b' ', a0, a1, a2, b'.', b0, b1, b2, b'\n'] = *msg else {
        return None;
    };
    Some((digits3(a0, a1, a2)?, digits3(b0, b1, b2)?))
}

fn digits3(a: u8, b: u8, c: u8) -> Option<u16> {
    let d = |x: u8| x.is_ascii_digit().then(|| u16::from(x - b'0'));
    Some(d(a)? * 100 + d(b)? * 10 + d(c)?)
}

/// A short human name for a security type number, for logs and error
/// messages (RFC 6143 §8.1.2 and the IANA registry).
pub fn security_type_name(t: u8) -> &'static str {
    match t {
        0 => "Invalid",
        1 => "None",
        2 => "VNC Authentication",
        5 => "RA2",
        6 => "RA2ne",
        16 => "Tight",
        17 => "Ultra",
        18 => "TLS",
        19 => "VeNCrypt",
        20 => "GTK-VNC SASL",
        21 => "MD5 hash",
        22 => "Colin Dean xvp",
        30 => "Apple Remote Desktop",
        113 => "MSLogonII",
        129 => "Unix Login",
        _ => "unknown",
    }
}

/// A reason string in fixed storage (at most [`REASON_MAX`] bytes): the
/// core's one bounded-text type ([`crate::text::Text`]).
pub type Reason = crate::text::Text<REASON_MAX>;

/// Bytes queued for the peer, in fixed storage of `N` bytes.
pub(crate) struct Outbox<const N: usize> {
    buf: [u8; N],
    head: usize,
    tail: usize,
}

impl<const N: usize> Outbox<N> {
    pub(crate) const fn new() -> Self {
        Outbox {
            buf: [0; N],
            head: 0,
            tail: 0,
        }
    }

    /// Queues `bytes`. Each machine sizes `N` for everything it can ever
    /// queue, so nothing is dropped; if that were wrong, the excess is dropped
    /// rather than panicking.
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        if self.head > 0 {
            self.buf.copy_within(self.head..self.tail, 0);
            self.tail -= self.head;
            self.head = 0;
        }
        let room = N - self.tail;
        let n = bytes.len().min(room);
        if let (Some(dst), Some(src)) = (self.buf.get_mut(self.tail..self.tail + n), bytes.get(..n))
        {
            dst.copy_from_slice(src);
            self.tail += n;
        }
    }

    pub(crate) fn push_u32(&mut self, v: u32) {
        self.push(&v.to_be_bytes());
    }

    /// Queues a reason string with its u32 length prefix.
    pub(crate) fn push_reason(&mut self, r: &Reason) {
        // REASON_MAX fits a u32.
        self.push_u32(r.as_bytes().len() as u32);
        self.push(r.as_bytes());
    }

    /// Moves queued bytes into `out`; returns how many.
    pub(crate) fn poll(&mut self, out: &mut [u8]) -> usize {
        let queued = self.buf.get(self.head..self.tail).unwrap_or_default();
        let n = queued.len().min(out.len());
        if let (Some(dst), Some(src)) = (out.get_mut(..n), queued.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.head += n;
        if self.head == self.tail {
            self.head = 0;
            self.tail = 0;
        }
        n
    }
}

/// Reads a big-endian u32 from the first 4 bytes of `input`, if there are 4.
pub(crate) fn u32_at(input: &[u8]) -> Option<u32> {
    let b: [u8; 4] = input.get(..4)?.try_into().ok()?;
    Some(u32::from_be_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions() {
        assert_eq!(parse_version(b"RFB 003.008\n"), Some((3, 8)));
        assert_eq!(parse_version(b"RFB 003.889\n"), Some((3, 889)));
        assert_eq!(parse_version(b"RFB 004.001\n"), Some((4, 1)));
        assert_eq!(parse_version(b"RFB 003.008\r"), None);
        assert_eq!(parse_version(b"RFB 003.0a8\n"), None);
        assert_eq!(parse_version(b"GET / HTTP/1"), None);
        for v in [Version::V3_3, Version::V3_7, Version::V3_8] {
            assert_eq!(parse_version(v.message()), Some((3, v.minor())));
        }
    }

    #[test]
    fn reasons_are_bounded() {
        // 'é' is two bytes: 0xc3 0xa9.
        let mut buf = [0u8; 201];
        buf[0] = b'x';
        for pair in buf[1..].chunks_exact_mut(2) {
            pair.copy_from_slice("é".as_bytes());
        }
        let long = core::str::from_utf8(&buf[1..]).unwrap();
        let r = Reason::from_str_truncated(long);
        assert_eq!(r.as_str().len(), REASON_MAX);
        let odd = core::str::from_utf8(&buf).unwrap();
        let r = Reason::from_str_truncated(odd);
        assert_eq!(r.as_str().len(), REASON_MAX - 1);
        assert!(r.as_str().starts_with("xé"));
        assert_eq!(Reason::from_str_truncated("short").as_str(), "short");
        let mut r = Reason::new();
        for b in b"ok\x1b[31m\xff" {
            r.push_sanitized(*b);
        }
        assert_eq!(r.as_str(), "ok?[31m?");
    }

    #[test]
    fn outbox_queues_in_order_and_drops_excess() {
        let mut o = Outbox::<8>::new();
        o.push(b"abc");
        let mut b = [0u8; 2];
        assert_eq!(o.poll(&mut b), 2);
        assert_eq!(&b, b"ab");
        o.push(b"defghijk");
        let mut all = [0u8; 16];
        let n = o.poll(&mut all);
        assert_eq!(&all[..n], b"cdefghij");
        assert_eq!(o.poll(&mut all), 0);
    }
}
