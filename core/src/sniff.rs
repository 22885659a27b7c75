//! Protocol sniffing on an entry point: from the first bytes a client sent,
//! tells a TLS ClientHello, an HTTP request (WebSocket upgrade), a Flash
//! policy request, or something else; or that more bytes are needed.
//!
//! It is not a parser: it reads at most a few bytes of prefix and consumes
//! nothing (the bytes go on to the next stage). A native VNC viewer sends
//! nothing before the server speaks (RFC 6143 section 7.1.1), so "nothing yet"
//! for [`SILENCE_TIMEOUT_MS`] means a native viewer is waiting; that timer is
//! the driver's. A client that talks first with anything else is not RFB.
//! Design section "Entry points".

/// How long a driver waits for a first byte before deciding a native viewer
/// is waiting for the server's `ProtocolVersion`, in milliseconds. Browsers
/// (WebSocket, TLS) and Flash send their first bytes right behind the last
/// packet of the TCP handshake, so on any path they arrive within a few
/// milliseconds of the accept; the wait only delays native viewers, and
/// 300 ms is not noticed by a person while leaving room for a loaded host.
pub const SILENCE_TIMEOUT_MS: u64 = 300;

/// A TLS alert record, fatal `handshake_failure` (RFC 8446 section 6; record
/// version 3.1 as every TLS version's first flight uses): what an entry point
/// that does not speak TLS answers a ClientHello with, so the client reports
/// a TLS failure instead of a reset.
pub const TLS_HANDSHAKE_FAILURE: [u8; 7] = [0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x28];

/// The Flash policy request, without its terminating NUL.
pub const POLICY_PREFIX: &[u8] = b"<policy-file-request/>";

/// HTTP methods recognised as "an HTTP request" (only GET can upgrade; the
/// others reach the handshake and get a 405).
const METHODS: [&[u8]; 9] = [
    b"GET ",
    b"HEAD ",
    b"POST ",
    b"PUT ",
    b"DELETE ",
    b"OPTIONS ",
    b"PATCH ",
    b"CONNECT ",
    b"TRACE ",
];

/// What the first bytes on an entry point are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A TLS record of type handshake (`16 03`): a ClientHello. Terminate TLS,
    /// then sniff again inside.
    Tls,
    /// An HTTP request line (`GET ` and other methods): the WebSocket handshake.
    Http,
    /// `<policy-file-request/>`: answer with the Flash policy.
    FlashPolicy,
    /// Anything else: a client that talks first and is none of the above.
    /// Refuse (close).
    Unknown,
}

/// Classifies the first bytes `b` a client sent; `None` while `b` is empty or
/// a strict prefix of something recognised (read more, within the silence
/// timeout or the handshake deadline).
pub fn sniff(b: &[u8]) -> Option<Kind> {
    if b.is_empty() {
        return None;
    }
    let mut need_more = false;
    let mut check = |pattern: &[u8]| -> bool {
        let n = b.len().min(pattern.len());
        if b.get(..n) == pattern.get(..n) {
            if n == pattern.len() {
                return true;
            }
            need_more = true;
        }
        false
    };
    if check(&[0x16, 0x03]) {
        return Some(Kind::Tls);
    }
    if METHODS.iter().any(|m| check(m)) {
        return Some(Kind::Http);
    }
    if check(POLICY_PREFIX) {
        return Some(Kind::FlashPolicy);
    }
    if need_more {
        None
    } else {
        Some(Kind::Unknown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert_eq!(sniff(b""), None);
        assert_eq!(sniff(b"G"), None);
        assert_eq!(sniff(b"GET"), None);
        assert_eq!(sniff(b"GET /websockify HTTP/1.1\r\n"), Some(Kind::Http));
        assert_eq!(sniff(b"POST / HTTP/1.1"), Some(Kind::Http));
        assert_eq!(sniff(&[0x16]), None);
        assert_eq!(sniff(&[0x16, 0x03, 0x01, 0x02, 0x00]), Some(Kind::Tls));
        assert_eq!(sniff(&[0x16, 0x02]), Some(Kind::Unknown));
        assert_eq!(sniff(b"<policy-file"), None);
        assert_eq!(sniff(b"<policy-file-request/>\0"), Some(Kind::FlashPolicy));
        assert_eq!(sniff(b"RFB 003.008\n"), Some(Kind::Unknown));
        assert_eq!(sniff(b"GEX"), Some(Kind::Unknown));
        assert_eq!(sniff(b"<x"), Some(Kind::Unknown));
    }
}
