//! [`InBuf`]: a session's fixed-size input buffer. Reads fill it, machines
//! consume from its front, and what one stage leaves (bytes after an HTTP
//! header, a ViewerInit sent early) stays for the next.

use crate::transport::ByteRead;
use std::io;

/// Caller-owned input storage with a fixed capacity, filled by reads and
/// drained by machines.
pub struct InBuf {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

impl InBuf {
    /// An empty buffer of `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        InBuf {
            buf: vec![0; capacity].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    /// Its capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// The bytes read and not yet consumed.
    pub fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Marks `n` bytes as consumed.
    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// True when no byte more fits, even after compaction.
    pub fn is_full(&self) -> bool {
        self.end - self.start == self.buf.len()
    }

    /// The unconsumed bytes, mutable, with their offset in [`InBuf::storage`].
    pub fn data_mut_with_offset(&mut self) -> (usize, &mut [u8]) {
        (self.start, &mut self.buf[self.start..self.end])
    }

    /// The whole storage (for ranges handed out by a decoder working in place).
    pub fn storage(&self) -> &[u8] {
        &self.buf
    }

    /// Appends `bytes` (which must fit: the buffer was sized for them).
    pub fn push(&mut self, bytes: &[u8]) {
        self.compact();
        let n = bytes.len().min(self.buf.len() - self.end);
        self.buf[self.end..self.end + n].copy_from_slice(&bytes[..n]);
        self.end += n;
    }

    fn compact(&mut self) {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
    }

    /// Reads once from `r` into the free space; returns the count (0 = EOF).
    pub async fn fill<R: ByteRead>(&mut self, r: &mut R) -> io::Result<usize> {
        self.compact();
        let n = r.read_bytes(&mut self.buf[self.end..]).await?;
        self.end += n;
        Ok(n)
    }
}
