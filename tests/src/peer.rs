//! What the two independent RFB test peers ([`crate::backend`] and
//! [`crate::viewer`]) share: protocol versions, the VNC authentication
//! DES response (RFC 6143 §7.2.2), the server's pixel format (§7.4), the
//! deterministic test pattern, and the deterministic "bulk" byte stream used
//! to test relaying.
//!
//! This is deliberately written without anything from `vncap-core`: these
//! peers stand on the other side of the proxy, so a misreading of the RFC in
//! the core must not be mirrored here. DES comes straight from the RustCrypto
//! `des` crate; checksums are SHA-256 (`sha2` crate).
//!
//! It is not a general RFB library: only what the tests need (Raw encoding,
//! true colour, security types None and VNC authentication).

use des::cipher::{BlockEncrypt, KeyInit};
use sha2::{Digest, Sha256};

/// An RFB protocol version (RFC 6143 §7.1.1), as announced or negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Version {
    /// `RFB 003.003`: the server picks the security type; no reason strings.
    V3_3,
    /// `RFB 003.007`: security type list; no SecurityResult after None.
    V3_7,
    /// `RFB 003.008`: SecurityResult always, with a reason on failure.
    V3_8,
}

impl Version {
    /// The 12-byte ProtocolVersion message, e.g. `b"RFB 003.008\n"`.
    pub fn message(self) -> &'static [u8; 12] {
        match self {
            Version::V3_3 => b"RFB 003.003\n",
            Version::V3_7 => b"RFB 003.007\n",
            Version::V3_8 => b"RFB 003.008\n",
        }
    }

    /// Parses a ProtocolVersion message as RFC 6143 §7.1.1 says a peer should:
    /// minor versions 3.4–3.6 (and Apple's 3.889) are treated as their nearest
    /// lower standard version; anything above 3.8 as 3.8. `None` when it is not
    /// of the form `RFB xxx.yyy\n` or the major version is not 3.
    pub fn parse(msg: &[u8; 12]) -> Option<Version> {
        if &msg[..4] != b"RFB " || msg[7] != b'.' || msg[11] != b'\n' {
            return None;
        }
        let major = std::str::from_utf8(&msg[4..7]).ok()?.parse::<u32>().ok()?;
        let minor = std::str::from_utf8(&msg[8..11]).ok()?.parse::<u32>().ok()?;
        if major != 3 {
            return None;
        }
        Some(match minor {
            0..=6 => Version::V3_3,
            7 => Version::V3_7,
            _ => Version::V3_8,
        })
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Version::V3_3 => "3.3",
            Version::V3_7 => "3.7",
            Version::V3_8 => "3.8",
        })
    }
}

/// Security type None (RFC 6143 §7.2.1).
pub const SECURITY_NONE: u8 = 1;
/// Security type VNC Authentication (RFC 6143 §7.2.2).
pub const SECURITY_VNC_AUTH: u8 = 2;

/// The VNC authentication response to `challenge` with `password`: the
/// password is truncated or zero-padded to 8 bytes, each byte's bits are
/// reversed (the historical quirk every viewer has), and the 16-byte challenge
/// is DES-encrypted as two ECB blocks with that key.
pub fn vnc_auth_response(password: &[u8], challenge: &[u8; 16]) -> [u8; 16] {
    let mut key = [0u8; 8];
    for (k, p) in key.iter_mut().zip(password.iter()) {
        *k = p.reverse_bits();
    }
    let cipher = des::Des::new(&key.into());
    let mut out = *challenge;
    for block in out.chunks_exact_mut(8) {
        cipher.encrypt_block(block.into());
    }
    out
}

/// An RFB PIXEL_FORMAT (RFC 6143 §7.4), 16 bytes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PixelFormat {
    /// Bits per pixel: 8, 16 or 32.
    pub bits_per_pixel: u8,
    /// Useful bits in a pixel.
    pub depth: u8,
    /// Multi-byte pixels are big-endian.
    pub big_endian: bool,
    /// True colour (else colour map).
    pub true_colour: bool,
    /// Maximum red value.
    pub red_max: u16,
    /// Maximum green value.
    pub green_max: u16,
    /// Maximum blue value.
    pub blue_max: u16,
    /// Shift of red in a pixel.
    pub red_shift: u8,
    /// Shift of green in a pixel.
    pub green_shift: u8,
    /// Shift of blue in a pixel.
    pub blue_shift: u8,
}

impl PixelFormat {
    /// The test backend's own format: 32 bpp, depth 24, little-endian, true
    /// colour, 8 bits per channel, red at 16, green at 8, blue at 0.
    pub const BGRX32: PixelFormat = PixelFormat {
        bits_per_pixel: 32,
        depth: 24,
        big_endian: false,
        true_colour: true,
        red_max: 255,
        green_max: 255,
        blue_max: 255,
        red_shift: 16,
        green_shift: 8,
        blue_shift: 0,
    };

    /// Bytes per pixel (`bits_per_pixel / 8`, at least 1).
    pub fn bytes_per_pixel(&self) -> usize {
        usize::from(self.bits_per_pixel / 8).max(1)
    }

    /// The 16 wire bytes (three bytes of padding at the end).
    pub fn to_bytes(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[0] = self.bits_per_pixel;
        b[1] = self.depth;
        b[2] = u8::from(self.big_endian);
        b[3] = u8::from(self.true_colour);
        b[4..6].copy_from_slice(&self.red_max.to_be_bytes());
        b[6..8].copy_from_slice(&self.green_max.to_be_bytes());
        b[8..10].copy_from_slice(&self.blue_max.to_be_bytes());
        b[10] = self.red_shift;
        b[11] = self.green_shift;
        b[12] = self.blue_shift;
        b
    }

    /// Reads the 16 wire bytes.
    pub fn from_bytes(b: &[u8; 16]) -> PixelFormat {
        PixelFormat {
            bits_per_pixel: b[0],
            depth: b[1],
            big_endian: b[2] != 0,
            true_colour: b[3] != 0,
            red_max: u16::from_be_bytes([b[4], b[5]]),
            green_max: u16::from_be_bytes([b[6], b[7]]),
            blue_max: u16::from_be_bytes([b[8], b[9]]),
            red_shift: b[10],
            green_shift: b[11],
            blue_shift: b[12],
        }
    }

    /// Appends one pixel of colour `rgb` (8 bits per channel) in this format
    /// (true colour; channels scaled to their maxima). Bits no channel uses
    /// (the padding byte of a depth-24 32-bit pixel) are set to ones: RFB
    /// says a viewer ignores them, but noVNC 1.3 (Debian 12's `novnc`) keeps
    /// them as the canvas alpha for most of a Raw rectangle (its Raw decoder
    /// forces alpha at the wrong offset), so zero padding shows up as a
    /// transparent screen there.
    pub fn push_pixel(&self, rgb: [u8; 3], out: &mut Vec<u8>) {
        let scale = |c: u8, max: u16| u32::from(c) * u32::from(max) / 255;
        let field = |max: u16, shift: u8| u32::from(max).checked_shl(shift.into()).unwrap_or(0);
        let unused = !(field(self.red_max, self.red_shift)
            | field(self.green_max, self.green_shift)
            | field(self.blue_max, self.blue_shift));
        let v = (scale(rgb[0], self.red_max).checked_shl(self.red_shift.into())).unwrap_or(0)
            | (scale(rgb[1], self.green_max).checked_shl(self.green_shift.into())).unwrap_or(0)
            | (scale(rgb[2], self.blue_max).checked_shl(self.blue_shift.into())).unwrap_or(0)
            | unused;
        match self.bytes_per_pixel() {
            1 => out.push(v as u8),
            2 if self.big_endian => out.extend_from_slice(&(v as u16).to_be_bytes()),
            2 => out.extend_from_slice(&(v as u16).to_le_bytes()),
            _ if self.big_endian => out.extend_from_slice(&v.to_be_bytes()),
            _ => out.extend_from_slice(&v.to_le_bytes()),
        }
    }
}

/// The colour of the test pattern at (`x`, `y`) on a `width` × `height`
/// framebuffer: the upper three quarters are eight vertical colour bars
/// (white, yellow, cyan, green, magenta, red, blue, black); the lower quarter
/// is a grey ramp from black at the left to white at the right.
pub fn test_pattern_rgb(x: u16, y: u16, width: u16, height: u16) -> [u8; 3] {
    const BARS: [[u8; 3]; 8] = [
        [255, 255, 255],
        [255, 255, 0],
        [0, 255, 255],
        [0, 255, 0],
        [255, 0, 255],
        [255, 0, 0],
        [0, 0, 255],
        [0, 0, 0],
    ];
    let (x, y, w, h) = (
        u32::from(x),
        u32::from(y),
        u32::from(width.max(1)),
        u32::from(height),
    );
    if y * 4 < h * 3 {
        BARS[(x * 8 / w).min(7) as usize]
    } else {
        let g = (x * 255 / (w - 1).max(1)).min(255) as u8;
        [g, g, g]
    }
}

/// The pixels of the rectangle (`x`, `y`, `w`, `h`) of the test pattern on a
/// `width` × `height` framebuffer, row by row, in `format` — exactly what
/// the backend sends as a Raw rectangle.
pub fn test_pattern(
    format: &PixelFormat,
    width: u16,
    height: u16,
    rect: (u16, u16, u16, u16),
) -> Vec<u8> {
    let (rx, ry, rw, rh) = rect;
    let mut out = Vec::with_capacity(usize::from(rw) * usize::from(rh) * format.bytes_per_pixel());
    for y in ry..ry.saturating_add(rh) {
        for x in rx..rx.saturating_add(rw) {
            format.push_pixel(test_pattern_rgb(x, y, width, height), &mut out);
        }
    }
    out
}

/// A deterministic pseudo-random byte stream (SplitMix64, seeded): what the
/// bulk peers send. Any two generators with the same seed give the same
/// bytes, however the reads are split.
#[derive(Debug, Clone)]
pub struct BulkStream {
    state: u64,
    word: [u8; 8],
    used: usize,
}

impl BulkStream {
    /// A stream starting from `seed`.
    pub fn new(seed: u64) -> BulkStream {
        BulkStream {
            state: seed,
            word: [0; 8],
            used: 8,
        }
    }

    /// Fills `buf` with the next bytes of the stream.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            if self.used == 8 {
                self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = self.state;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                self.word = (z ^ (z >> 31)).to_le_bytes();
                self.used = 0;
            }
            *b = self.word[self.used];
            self.used += 1;
        }
    }
}

/// SHA-256 of the first `len` bytes of the bulk stream seeded with `seed`:
/// what a peer that relayed the stream faithfully must have seen.
pub fn bulk_sha256(seed: u64, len: u64) -> [u8; 32] {
    let mut stream = BulkStream::new(seed);
    let mut hasher = Sha256::new();
    let mut buf = [0u8; 16384];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        stream.fill(&mut buf[..n]);
        hasher.update(&buf[..n]);
        left -= n as u64;
    }
    hasher.finalize().into()
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// SHA-256 of nothing: the checksum of a session that received no bytes.
pub fn sha256_empty() -> [u8; 32] {
    sha256(&[])
}

/// Lower-case hex of `bytes` (for messages and the `testvnc` binary).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_parse() {
        assert_eq!(Version::parse(b"RFB 003.008\n"), Some(Version::V3_8));
        assert_eq!(Version::parse(b"RFB 003.889\n"), Some(Version::V3_8));
        assert_eq!(Version::parse(b"RFB 003.005\n"), Some(Version::V3_3));
        assert_eq!(Version::parse(b"RFB 004.001\n"), None);
        assert_eq!(Version::parse(b"HTTP/1.1 200"), None);
    }

    /// The known answer from RFC 6143 interop folklore, checked against
    /// TigerVNC in `tests/peers.rs` too: key "password", zero challenge.
    #[test]
    fn vnc_auth_is_des_with_reversed_key_bits() {
        let challenge = [0u8; 16];
        let a = vnc_auth_response(b"password", &challenge);
        let b = vnc_auth_response(b"password-and-more", &challenge);
        assert_eq!(a, b, "only the first 8 bytes count");
        assert_eq!(a[..8], a[8..], "ECB: equal blocks give equal output");
        assert_ne!(a, vnc_auth_response(b"passwore", &challenge));
    }

    #[test]
    fn bulk_stream_is_split_independent() {
        let mut whole = vec![0u8; 1000];
        BulkStream::new(7).fill(&mut whole);
        let mut parts = vec![0u8; 1000];
        let mut s = BulkStream::new(7);
        for chunk in parts.chunks_mut(3) {
            s.fill(chunk);
        }
        assert_eq!(whole, parts);
        assert_eq!(sha256(&whole), bulk_sha256(7, 1000));
        assert_ne!(bulk_sha256(7, 1000), bulk_sha256(8, 1000));
    }
}
