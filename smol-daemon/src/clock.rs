//! The daemon's one clock: milliseconds of a monotonic clock since start, as
//! the core's `Instant`, and the wall clock signed tickets expire by.
//! Nothing else in the daemon reads time for the core.

use std::time::{Duration, Instant as StdInstant};
use vncap_core::Instant;

/// A monotonic clock whose epoch is its creation.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: StdInstant,
}

impl Clock {
    /// A clock starting now.
    pub fn new() -> Self {
        Clock {
            start: StdInstant::now(),
        }
    }

    /// Now, in the core's terms.
    pub fn now(&self) -> Instant {
        Instant::from_millis(self.start.elapsed().as_millis() as u64)
    }

    /// The wall clock now (signed tickets' expiry, which must mean the
    /// same on every instance); 0 if the clock is before 1970.
    pub fn wall(&self) -> vncap_core::ticket::signed::UnixTime {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        vncap_core::ticket::signed::UnixTime::from_millis(ms)
    }

    /// The std instant at which the core's `at` falls (for timers).
    pub fn deadline(&self, at: Instant) -> StdInstant {
        self.start + Duration::from_millis(at.millis())
    }
}
