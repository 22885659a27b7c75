//! The daemon's one clock: milliseconds of a monotonic clock since start, as
//! the core's `Instant`. Nothing else in the daemon reads time for the core.

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

    /// The std instant at which the core's `at` falls (for timers).
    pub fn deadline(&self, at: Instant) -> StdInstant {
        self.start + Duration::from_millis(at.millis())
    }
}
