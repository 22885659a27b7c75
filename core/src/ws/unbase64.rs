//! Base64 decoding in place for the legacy `base64` subprotocol (noVNC 0.4):
//! the text of each message is one base64 encoding, which may arrive split
//! across frames and reads. Only up to 3 characters are carried between
//! pieces (bounded state); the decoded bytes are written over the characters
//! they came from, in the caller's buffer.
//!
//! It is not a base64 implementation (the `base64` crate decodes); it only
//! arranges the pieces. Padding (`=`) may only end a message.

use core::ops::Range;

use base64::Engine as _;

const ENGINE: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Characters decoded per call into the crate (a multiple of 4).
const CHUNK: usize = 64;

/// Base64 state carried across pieces of one message.
#[derive(Debug, Clone, Default)]
pub(crate) struct Unbase64 {
    carry: [u8; 3],
    carried: u8,
    padded: bool,
}

impl Unbase64 {
    /// Characters carried from earlier pieces (0..=3).
    pub(crate) fn carried(&self) -> usize {
        usize::from(self.carried)
    }

    /// Decodes the characters `buf[s..e]` (after the carried ones) in place and
    /// returns where in `buf` the decoded bytes are. Characters after the last
    /// complete group of four are carried. When characters are carried in,
    /// `buf[s + 1 - carried..s]` must be free to overwrite (the caller passes the
    /// frame header there).
    pub(crate) fn decode(
        &mut self,
        buf: &mut [u8],
        s: usize,
        e: usize,
    ) -> Result<Range<usize>, ()> {
        let chars = buf.get(s..e).ok_or(())?;
        if chars.is_empty() {
            return Ok(s..s);
        }
        if self.padded {
            return Err(());
        }
        let c = self.carried();
        let mut out_start = s;
        let mut r0 = s;
        if c > 0 {
            let need = 4 - c;
            if chars.len() < need {
                for &b in chars {
                    *self.carry.get_mut(usize::from(self.carried)).ok_or(())? = b;
                    self.carried += 1;
                }
                return Ok(s..s);
            }
            let mut quad = [0u8; 4];
            quad.get_mut(..c)
                .ok_or(())?
                .copy_from_slice(self.carry.get(..c).ok_or(())?);
            quad.get_mut(c..)
                .ok_or(())?
                .copy_from_slice(chars.get(..need).ok_or(())?);
            let mut three = [0u8; 3];
            let n = ENGINE.decode_slice(quad, &mut three).map_err(|_| ())?;
            self.carried = 0;
            r0 = s + need;
            out_start = r0.checked_sub(n).ok_or(())?;
            buf.get_mut(out_start..r0)
                .ok_or(())?
                .copy_from_slice(three.get(..n).ok_or(())?);
            if quad[3] == b'=' {
                self.padded = true;
                return if r0 == e { Ok(out_start..r0) } else { Err(()) };
            }
        }
        let full = (e - r0) / 4 * 4;
        let mut rp = r0;
        let mut wp = r0;
        let mut tmp = [0u8; CHUNK / 4 * 3];
        while rp < r0 + full {
            let end = (rp + CHUNK).min(r0 + full);
            let chunk = buf.get(rp..end).ok_or(())?;
            let last = chunk.last().copied() == Some(b'=');
            if last && end != e {
                return Err(());
            }
            let n = ENGINE.decode_slice(chunk, &mut tmp).map_err(|_| ())?;
            buf.get_mut(wp..wp + n)
                .ok_or(())?
                .copy_from_slice(tmp.get(..n).ok_or(())?);
            wp += n;
            rp = end;
            self.padded = last;
        }
        for &b in buf.get(rp..e).ok_or(())? {
            *self.carry.get_mut(usize::from(self.carried)).ok_or(())? = b;
            self.carried += 1;
        }
        Ok(out_start..wp)
    }

    /// The message ended: nothing may be carried. Resets for the next message.
    pub(crate) fn end_message(&mut self) -> Result<(), ()> {
        let ok = self.carried == 0;
        *self = Unbase64::default();
        if ok {
            Ok(())
        } else {
            Err(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(pieces: &[&[u8]], room: usize) -> Result<heapless::Vec<u8, 128>, ()> {
        let mut st = Unbase64::default();
        let mut got = heapless::Vec::new();
        for p in pieces {
            let mut buf = [0u8; 128];
            buf[room..room + p.len()].copy_from_slice(p);
            let r = st.decode(&mut buf, room, room + p.len())?;
            got.extend_from_slice(&buf[r]).unwrap();
        }
        st.end_message()?;
        Ok(got)
    }

    #[test]
    fn pieces_and_padding() {
        let want: &[u8] = b"Hello, world";
        assert_eq!(run(&[b"SGVsbG8sIHdvcmxk"], 0).unwrap(), want);
        assert_eq!(run(&[b"SGVsb", b"G8sIHdv", b"cmxk"], 3).unwrap(), want);
        assert_eq!(run(&[b"SGV", b"s", b"bG8sIHdvcmxk"], 3).unwrap(), want);
        assert_eq!(run(&[b"QQ=="], 0).unwrap(), b"A"[..]);
        assert_eq!(run(&[b"Q", b"Q=="], 3).unwrap(), b"A"[..]);
        assert_eq!(run(&[b"QUI="], 0).unwrap(), b"AB"[..]);
        assert!(run(&[b"QQ==QUJD"], 0).is_err());
        assert!(run(&[b"QQ==", b"QUJD"], 0).is_err());
        assert!(run(&[b"QUJ"], 0).is_err());
        assert!(run(&[b"QU*D"], 0).is_err());
    }
}
