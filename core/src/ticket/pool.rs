//! The entry-port pool: which ports of the configured range are free.
//!
//! What it is: a bitset over all 65536 `u16` ports (8 KiB, no allocation),
//! a count, and a rotating cursor. What it is not: the tickets that hold the
//! ports (`mod.rs`). DESIGN.md "Entry points" (seed range 7000-8000).
//!
//! Picking rotates: the search starts after the last port handed out, and
//! the port given back last is picked only when no other port is free (a
//! viewer still knocking on an old port does not land on a new console). A
//! requested port is honoured when it is in the range and free.

/// Ports `first..=last`, each free or held.
#[derive(Clone)]
pub struct Pool {
    first: u16,
    last: u16,
    free: [u64; 1024],
    free_count: u32,
    /// The next port the search starts from.
    cursor: u16,
    /// The port given back last: picked only when no other port is free.
    recent: Option<u16>,
}

impl core::fmt::Debug for Pool {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Pool")
            .field("first", &self.first)
            .field("last", &self.last)
            .field("free_count", &self.free_count)
            .field("cursor", &self.cursor)
            .finish()
    }
}

impl Pool {
    /// All of `first..=last` free. `first > last` makes an empty pool.
    pub fn new(first: u16, last: u16) -> Self {
        let mut pool = Pool {
            first,
            last,
            free: [0; 1024],
            free_count: 0,
            cursor: first,
            recent: None,
        };
        if first <= last {
            for p in first..=last {
                pool.set(p, true);
            }
            pool.free_count = u32::from(last - first) + 1;
        }
        pool
    }

    /// How many ports the range holds.
    pub fn size(&self) -> u32 {
        if self.first <= self.last {
            u32::from(self.last - self.first) + 1
        } else {
            0
        }
    }

    /// How many are free.
    pub fn free_count(&self) -> u32 {
        self.free_count
    }

    /// Whether `port` is in the range.
    pub fn contains(&self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }

    /// Whether `port` is in the range and free.
    pub fn is_free(&self, port: u16) -> bool {
        self.free
            .get(usize::from(port) / 64)
            .is_some_and(|w| w & (1 << (port % 64)) != 0)
    }

    fn set(&mut self, port: u16, free: bool) {
        if let Some(w) = self.free.get_mut(usize::from(port) / 64) {
            if free {
                *w |= 1 << (port % 64);
            } else {
                *w &= !(1 << (port % 64));
            }
        }
    }

    /// Takes `preferred` if it is in the range and free, else the next free
    /// port after the cursor; `None` when none is free.
    pub fn take(&mut self, preferred: Option<u16>) -> Option<u16> {
        let port = match preferred {
            Some(p) if self.is_free(p) => p,
            _ => self.next_free()?,
        };
        self.set(port, false);
        self.free_count -= 1;
        if preferred != Some(port) {
            self.cursor = if port >= self.last {
                self.first
            } else {
                port + 1
            };
        }
        Some(port)
    }

    fn next_free(&self) -> Option<u16> {
        if self.free_count == 0 {
            return None;
        }
        let start = self.cursor.clamp(self.first, self.last);
        (start..=self.last)
            .chain(self.first..start)
            .find(|&p| self.is_free(p) && Some(p) != self.recent)
            .or(self.recent.filter(|&p| self.is_free(p)))
    }

    /// Returns `port` to the pool; `false` if it is out of range or already
    /// free (a bug in the caller, reported rather than hidden).
    pub fn give_back(&mut self, port: u16) -> bool {
        if !self.contains(port) || self.is_free(port) {
            return false;
        }
        self.set(port, true);
        self.free_count += 1;
        self.recent = Some(port);
        true
    }

    /// Recounts the bitset: every free bit is in range and their number is
    /// `free_count`.
    pub fn check(&self) -> bool {
        let mut n = 0u32;
        for (i, w) in self.free.iter().enumerate() {
            let mut w = *w;
            while w != 0 {
                let bit = w.trailing_zeros() as usize;
                w &= w - 1;
                let port = i * 64 + bit;
                if port < usize::from(self.first) || port > usize::from(self.last) {
                    return false;
                }
                n += 1;
            }
        }
        n == self.free_count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_and_honours_requests() {
        let mut p = Pool::new(7000, 7002);
        assert_eq!(p.size(), 3);
        assert_eq!(p.take(None), Some(7000));
        assert!(p.give_back(7000));
        // Just freed: not handed out again while others are free.
        assert_eq!(p.take(None), Some(7001));
        assert_eq!(p.take(Some(7000)), Some(7000));
        assert_eq!(p.take(Some(7000)), Some(7002));
        assert_eq!(p.take(None), None);
        assert!(!p.give_back(6999));
        assert!(p.give_back(7001));
        assert!(!p.give_back(7001));
        assert!(p.check());
        assert_eq!(p.free_count(), 1);
    }

    #[test]
    fn full_u16_range_and_seed_range() {
        let mut p = Pool::new(0, u16::MAX);
        assert_eq!(p.size(), 65536);
        assert_eq!(p.take(Some(u16::MAX)), Some(u16::MAX));
        assert!(p.check());
        let p = Pool::new(7000, 8000);
        assert_eq!(p.free_count(), 1001);
        assert!(p.check());
    }

    #[test]
    fn just_freed_port_comes_last() {
        let mut p = Pool::new(1, 4);
        for want in 1..=4 {
            assert_eq!(p.take(None), Some(want));
        }
        // The cursor wrapped to 1; give 2 then 1 back: 1 must not come first.
        assert!(p.give_back(2));
        assert!(p.give_back(1));
        assert_eq!(p.take(None), Some(2));
        assert_eq!(p.take(None), Some(1));
    }

    #[test]
    fn wraps_at_end_of_range() {
        let mut p = Pool::new(10, 11);
        assert_eq!(p.take(None), Some(10));
        assert_eq!(p.take(None), Some(11));
        assert!(p.give_back(10));
        assert_eq!(p.take(None), Some(10));
    }
}
