//! Data cache maintenance by virtual address: what makes memory the
//! hypervisor wrote visible to a non-coherent observer (an ITS or SMMU
//! reading its tables, a guest running with its caches off) and the other
//! way round.

/// Cleans and invalidates the data cache over a range (DC CIVAC by line).
pub fn clean_invalidate(start: u64, size: u64) {
    let line = crate::arch::sysreg::ctr_el0::read().dcache_line_bytes();
    let mut addr = start & !(line - 1);
    while addr < start + size {
        // SAFETY: cache maintenance by VA does not change memory contents.
        unsafe { core::arch::asm!("dc civac, {}", in(reg) addr, options(nostack)) };
        addr += line;
    }
    crate::arch::sysreg::dsb_sy();
}
