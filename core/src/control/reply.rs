//! The control reply, byte for byte, in the request's dialect.
//!
//! What it is: the writer of DESIGN.md "The control channel" replies. Dialect
//! 1 (twisted-vncauthproxy / GWM): the port in decimal then `\n`, or
//! `FAILED <reason>\n` (GWM tests `startswith("FAIL")`; twisted-vncauthproxy
//! itself sent a bare `FAILED`, and `\r\n` line ends, which GWM's `int()` and
//! `startswith` do not mind). Dialect 2 (snf-vncauthproxy): one JSON object
//! with Python `json.dumps` spacing, then `\n`:
//! `{"status": "OK", "source_port": 7000, "proxy_address": "vnc.example.org"}`
//! plus the extensions `password`, `expires_in`, `token`, `url_path` when
//! present; on failure `{"status": "FAILED", "source_port": 0,
//! "proxy_address": "...", "reason": "..."}`. What it is not: the decision of
//! what to answer (the driver's, from the ticket table).

use heapless::Vec;

use super::Dialect;

/// Room for the longest reply: every string field JSON-escaped at worst 6
/// bytes per byte would not fit, so a reply that does not fit is replaced by
/// a short failure (never truncated, never a panic).
pub const REPLY_CAP: usize = 2048;

/// A queued reply.
pub(crate) type Buf = Vec<u8, REPLY_CAP>;

/// Where the writers below put bytes: the reply buffer here, the request
/// buffer in [`super::client`]. `Err` when the bytes do not fit.
pub(super) trait Sink {
    /// Appends `b`, all of it or nothing.
    fn put(&mut self, b: &[u8]) -> Result<(), ()>;
}

impl Sink for Buf {
    fn put(&mut self, b: &[u8]) -> Result<(), ()> {
        self.extend_from_slice(b).map_err(|_| ())
    }
}

/// What the driver grants, for [`super::Control::reply_ok`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Granted<'a> {
    /// The entry port (the single-port listener's port in single-port mode).
    pub port: u16,
    /// A password the proxy generated (dialect 2 extension); never an echo
    /// of the caller's.
    pub password: Option<&'a str>,
    /// Seconds until the ticket expires (dialect 2 extension).
    pub expires_in: Option<u64>,
    /// Single-port mode token (dialect 2 extension).
    pub token: Option<&'a str>,
    /// Single-port mode path for the viewer, e.g. `websockify?token=...`
    /// (dialect 2 extension).
    pub url_path: Option<&'a str>,
}

/// Writes the success reply; `Err` if it does not fit in [`REPLY_CAP`].
pub(crate) fn ok(
    out: &mut Buf,
    dialect: Dialect,
    proxy_address: &str,
    g: &Granted<'_>,
) -> Result<(), ()> {
    out.clear();
    match dialect {
        Dialect::Twisted => {
            number(out, u64::from(g.port))?;
            raw(out, b"\n")
        }
        Dialect::Snf => {
            raw(out, b"{\"status\": \"OK\", \"source_port\": ")?;
            number(out, u64::from(g.port))?;
            raw(out, b", \"proxy_address\": ")?;
            string(out, proxy_address)?;
            if let Some(p) = g.password {
                raw(out, b", \"password\": ")?;
                string(out, p)?;
            }
            if let Some(s) = g.expires_in {
                raw(out, b", \"expires_in\": ")?;
                number(out, s)?;
            }
            if let Some(t) = g.token {
                raw(out, b", \"token\": ")?;
                string(out, t)?;
            }
            if let Some(u) = g.url_path {
                raw(out, b", \"url_path\": ")?;
                string(out, u)?;
            }
            raw(out, b"}\n")
        }
    }
}

/// Writes the failure reply. Never fails: an over-long reason or address is
/// cut (at a character boundary) to fit.
pub(crate) fn failed(out: &mut Buf, dialect: Dialect, proxy_address: &str, reason: &str) {
    // Reasons are short; keep them so, whatever a driver passes.
    let reason = cut(reason, 200);
    out.clear();
    let r = match dialect {
        Dialect::Twisted => (|| {
            raw(out, b"FAILED ")?;
            for c in reason.chars() {
                // One line: no control characters (a newline would end it).
                let c = if c.is_control() { ' ' } else { c };
                let mut b = [0u8; 4];
                raw(out, c.encode_utf8(&mut b).as_bytes())?;
            }
            raw(out, b"\n")
        })(),
        Dialect::Snf => (|| {
            raw(
                out,
                b"{\"status\": \"FAILED\", \"source_port\": 0, \"proxy_address\": ",
            )?;
            string(out, cut(proxy_address, 255))?;
            raw(out, b", \"reason\": ")?;
            string(out, reason)?;
            raw(out, b"}\n")
        })(),
    };
    // 200 + 255 bytes escaped at most 6x each plus the frame fits REPLY_CAP
    // (2048 < 6 * 455 + 80 is not guaranteed), so fall back to a bare reply.
    if r.is_err() {
        out.clear();
        let bare: &[u8] = match dialect {
            Dialect::Twisted => b"FAILED\n",
            Dialect::Snf => b"{\"status\": \"FAILED\", \"source_port\": 0}\n",
        };
        let _ = out.extend_from_slice(bare);
    }
}

pub(super) fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or("")
}

pub(super) fn raw(out: &mut impl Sink, b: &[u8]) -> Result<(), ()> {
    out.put(b)
}

/// A decimal number.
pub(super) fn number(out: &mut impl Sink, mut n: u64) -> Result<(), ()> {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    raw(out, &digits[i..])
}

/// A JSON string: `"`, `\` and control characters escaped, other UTF-8 as is.
pub(super) fn string(out: &mut impl Sink, s: &str) -> Result<(), ()> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    raw(out, b"\"")?;
    for &b in s.as_bytes() {
        match b {
            b'"' => raw(out, b"\\\"")?,
            b'\\' => raw(out, b"\\\\")?,
            b'\n' => raw(out, b"\\n")?,
            b'\r' => raw(out, b"\\r")?,
            b'\t' => raw(out, b"\\t")?,
            0..=0x1f | 0x7f => raw(
                out,
                &[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(b >> 4)],
                    HEX[usize::from(b & 0xf)],
                ],
            )?,
            _ => raw(out, &[b])?,
        }
    }
    raw(out, b"\"")
}
