//! Time as a value: [`Instant`] is milliseconds of a monotonic clock that the
//! caller owns and passes in. The core never reads a clock, so a recorded
//! session replays exactly and expiry is tested to the millisecond.

use core::ops::{Add, Sub};

/// A point on the caller's monotonic clock, in milliseconds.
///
/// Only differences matter; the epoch is whatever the caller chose (the daemon
/// uses the time since it started).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(u64);

impl Instant {
    /// The instant `ms` milliseconds after the caller's epoch.
    pub const fn from_millis(ms: u64) -> Self {
        Instant(ms)
    }

    /// Milliseconds since the caller's epoch.
    pub const fn millis(self) -> u64 {
        self.0
    }

    /// Milliseconds from `earlier` to `self`, zero if `earlier` is later.
    pub const fn millis_since(self, earlier: Instant) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

/// `instant + ms` (saturating).
impl Add<u64> for Instant {
    type Output = Instant;
    fn add(self, ms: u64) -> Instant {
        Instant(self.0.saturating_add(ms))
    }
}

/// `instant - ms` (saturating at the epoch).
impl Sub<u64> for Instant {
    type Output = Instant;
    fn sub(self, ms: u64) -> Instant {
        Instant(self.0.saturating_sub(ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Instant::from_millis(5);
        assert_eq!((t + 10).millis(), 15);
        assert_eq!((t - 10).millis(), 0);
        assert_eq!((Instant::from_millis(u64::MAX) + 1).millis(), u64::MAX);
        assert_eq!(
            Instant::from_millis(3).millis_since(Instant::from_millis(9)),
            0
        );
        assert_eq!(
            Instant::from_millis(9).millis_since(Instant::from_millis(3)),
            6
        );
    }
}
