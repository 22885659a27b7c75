//! [`Text`]: a bounded reason string, the one type for the human-readable
//! reasons the core sends and receives (RFB's reason strings, RFC 6143
//! §7.1.2 and §7.1.3; the control channel's `FAILED` reasons).
//!
//! What it is: up to `N` bytes of UTF-8 in fixed storage, built so that it
//! is always safe to log and to show: text is cut at a character boundary
//! (never mid-character, never a panic), a peer's bytes are sanitized as
//! they arrive. What it is not: a general string type (use
//! `heapless::String`), or a secret (see [`crate::secret`]).

use core::fmt;
use core::ops::Deref;

/// At most `N` bytes of UTF-8.
#[derive(Clone, Copy)]
pub struct Text<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> Text<N> {
    /// The empty text.
    pub const fn new() -> Self {
        Text {
            buf: [0; N],
            len: 0,
        }
    }

    /// `s`, cut to at most `N` bytes at a character boundary.
    pub fn from_str_truncated(s: &str) -> Self {
        let mut t = Text::new();
        t.push_str_truncated(s);
        t
    }

    /// `s` cut like [`Text::from_str_truncated`], with every control
    /// character (a newline, an escape sequence's ESC) replaced by a space:
    /// one line, safe for a terminal or a log.
    pub fn blanked(s: &str) -> Self {
        let mut t = Text::new();
        for c in s.chars() {
            let c = if c.is_control() { ' ' } else { c };
            let mut b = [0u8; 4];
            if !t.push_bytes(c.encode_utf8(&mut b).as_bytes()) {
                break;
            }
        }
        t
    }

    /// Appends as much of `s` as fits, cut at a character boundary.
    pub fn push_str_truncated(&mut self, s: &str) {
        let mut end = s.len().min(N - self.len);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.push_bytes(s.as_bytes().get(..end).unwrap_or_default());
    }

    /// Appends one byte a peer sent, if there is room: printable ASCII is
    /// kept, anything else becomes `?` (so the text stays ASCII, whole and
    /// safe to log whatever the peer sent).
    pub fn push_sanitized(&mut self, b: u8) {
        self.push_bytes(&[if (0x20..0x7f).contains(&b) { b } else { b'?' }]);
    }

    /// Appends `bytes` (valid UTF-8 on their own) whole, or nothing.
    fn push_bytes(&mut self, bytes: &[u8]) -> bool {
        let end = self.len + bytes.len();
        match self.buf.get_mut(self.len..end) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                self.len = end;
                true
            }
            None => false,
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Always valid: built from whole characters only.
        core::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }

    /// The text's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }
}

impl<const N: usize> Default for Text<N> {
    fn default() -> Self {
        Text::new()
    }
}

impl<const N: usize> Deref for Text<N> {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl<const N: usize> fmt::Debug for Text<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl<const N: usize> fmt::Display for Text<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<const N: usize> PartialEq for Text<N> {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl<const N: usize> Eq for Text<N> {}

impl<const N: usize> PartialEq<str> for Text<N> {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl<const N: usize> PartialEq<&str> for Text<N> {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_at_a_character_boundary() {
        // 'é' is two bytes.
        let t = Text::<5>::from_str_truncated("ééé");
        assert_eq!(t.as_str(), "éé");
        let t = Text::<5>::from_str_truncated("aééé");
        assert_eq!(t.as_str(), "aéé");
        assert_eq!(Text::<5>::from_str_truncated("ab").as_str(), "ab");
        assert_eq!(Text::<0>::from_str_truncated("ab").as_str(), "");
    }

    #[test]
    fn blanked_and_sanitized() {
        assert_eq!(Text::<16>::blanked("a\nb\u{1b}[2J\u{e9}"), "a b [2J\u{e9}");
        assert_eq!(Text::<3>::blanked("ab\u{e9}"), "ab");
        let mut t = Text::<8>::new();
        for b in b"ok\x1b[31m\xff" {
            t.push_sanitized(*b);
        }
        assert_eq!(t, "ok?[31m?");
    }
}
