//! [`Secret`]: a password or token in fixed storage, never shown and never
//! compared in variable time.
//!
//! What it is: the one type for every password and token the core holds
//! (control requests' `password`, `client.password`, `auth_password`; the
//! ticket's viewer and backend passwords, generated passwords and
//! single-port tokens; the control client's view of a reply). Its `Debug`
//! prints `<redacted>`, its `==` is constant time for the lengths given
//! (`subtle`). What it is not: zeroizing storage, or an encoding (the bytes
//! are kept as they came; VNC authentication uses the first 8, RFC 6143
//! §7.2.2).
//!
//! [`Secret::as_bytes`] is the one way to hand the bytes to what needs them
//! (the DES key, a reply being written); there is no `Deref` to a slice, so
//! a secret is never compared by accident with `==` on bytes: compare
//! `Secret`s, or use [`Secret::ct_eq`].

use core::fmt;

use heapless::Vec;
use subtle::ConstantTimeEq;

/// What a redacted value prints as.
pub const REDACTED: &str = "<redacted>";

/// A secret of at most `N` bytes.
#[derive(Clone, Default)]
pub struct Secret<const N: usize> {
    bytes: Vec<u8, N>,
}

/// The bytes given to [`Secret::from_slice`] or [`Secret::from_str`] are
/// more than its capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TooLong;

impl fmt::Display for TooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("secret longer than its capacity")
    }
}

impl<const N: usize> Secret<N> {
    /// The empty secret.
    pub const fn new() -> Self {
        Secret { bytes: Vec::new() }
    }

    /// A copy of `bytes`, or [`TooLong`] over `N` bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, TooLong> {
        Vec::from_slice(bytes)
            .map(|bytes| Secret { bytes })
            .map_err(|_| TooLong)
    }

    /// A copy of `s`'s bytes, or [`TooLong`] over `N` bytes.
    #[allow(clippy::should_implement_trait)]
    pub fn from_str(s: &str) -> Result<Self, TooLong> {
        Self::from_slice(s.as_bytes())
    }

    /// The bytes, for what must use them (a DES key, a reply).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The bytes as text, when they are UTF-8 (every secret parsed from
    /// JSON or generated is).
    pub fn as_str(&self) -> Option<&str> {
        core::str::from_utf8(&self.bytes).ok()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether it holds no byte.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Whether `candidate` is these bytes, in constant time for the given
    /// lengths.
    pub fn ct_eq(&self, candidate: &[u8]) -> bool {
        self.bytes.as_slice().ct_eq(candidate).into()
    }
}

impl<const N: usize> ConstantTimeEq for Secret<N> {
    fn ct_eq(&self, other: &Self) -> subtle::Choice {
        self.bytes.as_slice().ct_eq(other.bytes.as_slice())
    }
}

impl<const N: usize> PartialEq for Secret<N> {
    fn eq(&self, other: &Self) -> bool {
        ConstantTimeEq::ct_eq(self, other).into()
    }
}

impl<const N: usize> Eq for Secret<N> {}

impl<const N: usize> fmt::Debug for Secret<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::fmt::Write;

    #[test]
    fn debug_redacts_and_equality_compares_bytes() {
        let s = Secret::<8>::from_str("hunter2").unwrap();
        let mut out: heapless::String<64> = heapless::String::new();
        write!(out, "{s:?} {:?}", Some(&s)).unwrap();
        assert_eq!(out.as_str(), "<redacted> Some(<redacted>)");
        assert_eq!(s, Secret::from_slice(b"hunter2").unwrap());
        assert_ne!(s, Secret::from_slice(b"hunter3").unwrap());
        assert_ne!(s, Secret::from_slice(b"hunter").unwrap());
        assert!(s.ct_eq(b"hunter2") && !s.ct_eq(b"hunter2!"));
        assert_eq!(s.as_bytes(), b"hunter2");
        assert_eq!(s.as_str(), Some("hunter2"));
        assert_eq!(Secret::<4>::from_str("12345"), Err(TooLong));
        assert!(Secret::<4>::new().is_empty());
    }
}
