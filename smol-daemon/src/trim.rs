//! Gives the heap's free memory back to the system once a load has passed.
//! glibc's malloc keeps freed chunks for reuse: after a thousand sessions
//! end, an idle daemon that started at 4 MiB would keep some 70 MiB it no
//! longer uses (bench/RESULTS.md, "Fault soak"). Every [`EVERY`], when
//! the live sessions have fallen to a quarter of the most seen since the
//! last trim (at least [`MIN_PEAK`]), `malloc_trim(0)` returns the free
//! pages. With another C library (musl on OpenWrt) this does nothing.

use std::rc::Rc;
use std::time::Duration;

use crate::daemon::Daemon;

/// How often the sessions are counted.
pub const EVERY: Duration = Duration::from_secs(5);
/// The fewest sessions at the peak worth a trim.
pub const MIN_PEAK: usize = 32;

/// Forever: counts the sessions every [`EVERY`] and trims after a fall.
pub async fn give_back(d: Rc<Daemon>) {
    let mut peak = 0;
    loop {
        smol::Timer::after(EVERY).await;
        let now = d.sessions.len();
        peak = peak.max(now);
        if peak >= MIN_PEAK && now <= peak / 4 {
            release();
            log::debug!("sessions fell from {peak} to {now}: free heap memory given back");
            peak = now;
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release() {
    // SAFETY: malloc_trim takes no pointers and only walks glibc's own
    // arenas under their locks; any thread may call it at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release() {}
