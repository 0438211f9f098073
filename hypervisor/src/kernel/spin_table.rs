//! Starting secondaries parked in a spin table (`enable-method =
//! "spin-table"`, e.g. the Raspberry Pi's armstub and QEMU raspi4b's stub):
//! the hardware half of `boot::spin_table`, and the table of MPIDRs the
//! released CPU's entry code (`spin_table_entry` in arch/boot.rs) uses to
//! find its own CPU index, since a spin table passes nothing in x0.

use crate::arch::boot::SPIN_ENTRY_MPIDRS;
use crate::boot::platform::{EnableMethod, Platform};
use crate::boot::spin_table::{self, SpinTableError, SpinTableOps};
use crate::mm::addr::{PhysAddr, Range};
use core::sync::atomic::Ordering;

extern "C" {
    /// The spin-table entry point in arch/boot.rs.
    fn spin_table_entry();
}

/// Marks a used entry of [`SPIN_ENTRY_MPIDRS`] (MPIDR_EL1 bit 63 is RES0).
const VALID: u64 = 1 << 63;

/// The kernel's [`SpinTableOps`]: the slot is RAM in the EL2 identity map.
struct Ops;

impl SpinTableOps for Ops {
    fn write_u64(&mut self, address: PhysAddr, value: u64) {
        // SAFETY: `release` checked the slot is an aligned word of RAM the tree
        // describes (identity-mapped at EL2), read only by the parked CPU; no
        // Rust object lives there (the page is `reserved`, not a free frame).
        unsafe { core::ptr::write_volatile(address.0 as *mut u64, value) };
    }

    fn clean_to_poc(&mut self, address: PhysAddr) {
        crate::arch::cache::clean_invalidate(address.0, 8);
    }

    fn dsb_sy(&mut self) {
        crate::arch::sysreg::dsb_sy();
    }

    fn sev(&mut self) {
        crate::arch::sysreg::sev();
    }
}

/// Whether CPU `index` of the tree is started through a spin table.
pub fn uses_spin_table(platform: &Platform, index: usize) -> bool {
    platform
        .cpus
        .get(index)
        .is_some_and(|c| matches!(c.enable_method, EnableMethod::SpinTable { .. }))
}

/// Releases CPU `index` to `spin_table_entry`. Its MPIDR goes into the
/// table the entry code searches first, cleaned to the point of coherency
/// (the released CPU reads it with its MMU and caches off).
pub fn release(platform: &Platform, index: usize) -> Result<(), SpinTableError> {
    let Some(cpu) = platform.cpus.get(index) else {
        return Err(SpinTableError::NotSpinTable);
    };
    let Some(slot) = SPIN_ENTRY_MPIDRS.get(index) else {
        return Err(SpinTableError::NotSpinTable);
    };
    spin_table::release_slot(cpu, &platform.memory)?;
    slot.store(cpu.mpidr | VALID, Ordering::Release);
    crate::arch::cache::clean_invalidate(slot.as_ptr() as u64, 8);
    let entry = PhysAddr(spin_table_entry as *const () as u64);
    spin_table::release(cpu, &platform.memory, entry, &mut Ops)
}

/// The pages holding the spin-table slots: kept out of the frame
/// allocator (the firmware's stub polls them, and usually lives in the same
/// page), whether or not the tree reserves them.
pub fn reserved(platform: &Platform) -> impl Iterator<Item = Range<PhysAddr>> + '_ {
    platform.cpus.iter().filter_map(|c| match c.enable_method {
        EnableMethod::SpinTable { release_address } => Some(Range {
            start: PhysAddr(release_address.0 & !0xfff),
            size: 0x1000,
        }),
        _ => None,
    })
}
