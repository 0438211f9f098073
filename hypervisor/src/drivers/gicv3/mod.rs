//! The physical GICv3/v4: distributor, redistributors and the EL2 use of
//! the CPU interface. The hypervisor owns it; guests see only their vGIC.

pub mod cpu_interface;
pub mod distributor;
pub mod lpi;
pub mod redistributor;

pub use distributor::Distributor;
pub use redistributor::Redistributor;

/// The SGI the hypervisor uses to kick another CPU out of its guest.
pub const SGI_KICK: u32 = 0;

/// Bounded wait for a register condition; `false` if it never held.
pub(crate) fn wait_for(mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..10_000_000 {
        if cond() {
            return true;
        }
        core::hint::spin_loop();
    }
    false
}
