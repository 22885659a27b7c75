//! A bare-metal style consumer of `vncap-core`: `#![no_std]`, its own panic
//! handler, no allocator. It exposes C functions, the way firmware or a C
//! program would embed the core, and proves the core needs nothing from `std`.

#![no_std]

use core::panic::PanicInfo;
use vncap_core::Instant;

#[panic_handler]
fn panic(_: &PanicInfo) -> ! {
    loop {}
}

/// Milliseconds between two instants of the caller's clock (a trivial use of
/// the core so the linker keeps it).
#[no_mangle]
pub extern "C" fn vncap_elapsed_ms(earlier: u64, now: u64) -> u64 {
    Instant::from_millis(now).millis_since(Instant::from_millis(earlier))
}
