//! VNC's DES challenge/response (RFC 6143 §7.2.2, VNC Authentication), over
//! the RustCrypto `des` crate.
//!
//! The key is the first 8 bytes of the password, zero padded, with the bits of
//! each byte reversed (the quirk every VNC implementation inherited from the
//! original d3des code); the 16-byte challenge is encrypted as two DES blocks
//! in ECB mode. This is not a general DES API, not a password hash, and not a
//! comparison: [`crate::rfb::server`] compares responses in constant time.

use des::cipher::{BlockEncrypt, KeyInit};
use des::Des;

/// Length of the VNC Authentication challenge and of its response.
pub const CHALLENGE_LEN: usize = 16;

/// Length of a DES key; longer passwords are truncated to it, as viewers do.
pub const KEY_LEN: usize = 8;

/// The DES key VNC derives from `password`: its first 8 bytes, zero padded,
/// each byte bit-reversed.
pub fn key(password: &[u8]) -> [u8; KEY_LEN] {
    let mut key = [0u8; KEY_LEN];
    for (k, p) in key.iter_mut().zip(password.iter()) {
        *k = p.reverse_bits();
    }
    key
}

/// The response to `challenge` under a key made by [`key`].
pub fn response_with_key(key: &[u8; KEY_LEN], challenge: &[u8; CHALLENGE_LEN]) -> [u8; 16] {
    let cipher = Des::new(&(*key).into());
    let mut out = *challenge;
    for block in out.chunks_exact_mut(8) {
        cipher.encrypt_block(block.into());
    }
    out
}

/// The response a viewer holding `password` gives to `challenge`.
pub fn response(password: &[u8], challenge: &[u8; CHALLENGE_LEN]) -> [u8; CHALLENGE_LEN] {
    response_with_key(&key(password), challenge)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex16(s: &str) -> [u8; 16] {
        let mut out = [0u8; 16];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }

    #[test]
    fn key_is_truncated_padded_and_bit_reversed() {
        assert_eq!(key(b""), [0; 8]);
        assert_eq!(key(&[0x01, 0x80, 0xf0]), [0x80, 0x01, 0x0f, 0, 0, 0, 0, 0]);
        assert_eq!(key(b"secretXYZ"), key(b"secretXY"));
        assert_ne!(key(b"secretXY"), key(b"secretXZ"));
    }

    /// The classic published DES example (key 133457799BBCDFF1, plaintext
    /// 0123456789ABCDEF, ciphertext 85E813540F0AB405), with the key given as
    /// the VNC password whose bit-reversed bytes are that key.
    #[test]
    fn published_des_vector_through_the_vnc_key_quirk() {
        let des_key = [0x13, 0x34, 0x57, 0x79, 0x9b, 0xbc, 0xdf, 0xf1];
        let password = des_key.map(u8::reverse_bits);
        assert_eq!(key(&password), des_key);
        let challenge = hex16("0123456789abcdef0123456789abcdef");
        assert_eq!(
            response(&password, &challenge),
            hex16("85e813540f0ab40585e813540f0ab405")
        );
    }

    /// Recorded from Xvnc (TigerVNC 1.12) and vncdotool 1.4.2 with password
    /// `secret`: tests/fixtures/rfb/vncauth-3.8.txt.
    #[test]
    fn recorded_xvnc_answer() {
        let challenge = hex16("4ee2a286c6fa17f2d427c5e9baf4bc7e");
        assert_eq!(
            response(b"secret", &challenge),
            hex16("40d7a731b7a4d5859dbd5d24f6315039")
        );
    }
}
