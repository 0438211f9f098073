//! Stopping CPUs: the panic flag every CPU checks at its next trap or
//! wake-up, and the halt a CPU never leaves.

use core::sync::atomic::AtomicBool;

/// Set by the panic handler: every CPU stops at its next trap or wake-up.
pub static PANICKED: AtomicBool = AtomicBool::new(false);

/// Stops this CPU for good.
pub fn halt() -> ! {
    loop {
        crate::arch::sysreg::wfe();
    }
}
