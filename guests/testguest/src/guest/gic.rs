//! The guest's GICv3 CPU interface (system registers; with a hypervisor
//! these reach the virtual interface, ICV_*).

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// INTID of the last interrupt taken.
pub static LAST_INTID: AtomicU32 = AtomicU32::new(1023);
/// Interrupts taken so far.
pub static TAKEN: AtomicU64 = AtomicU64::new(0);

/// Enables the system-register interface, unmasks all priorities, enables
/// Group 1 (ICC_SRE_EL1, ICC_PMR_EL1, ICC_IGRPEN1_EL1).
pub fn enable() {
    // SAFETY: GIC CPU interface configuration of this vCPU only.
    unsafe {
        core::arch::asm!(
            "msr S3_0_C12_C12_5, {sre}",  // ICC_SRE_EL1: SRE, DFB, DIB
            "isb",
            "msr S3_0_C4_C6_0, {pmr}",    // ICC_PMR_EL1
            "msr S3_0_C12_C12_7, {one}",  // ICC_IGRPEN1_EL1
            "isb",
            sre = in(reg) 0x7u64,
            pmr = in(reg) 0xffu64,
            one = in(reg) 1u64,
        )
    };
}

/// Unmasks IRQs at EL1 (PSTATE.I).
pub fn unmask_irqs() {
    // SAFETY: only changes this vCPU's interrupt mask.
    unsafe { core::arch::asm!("msr daifclr, #2", "isb") };
}

/// Masks IRQs at EL1.
pub fn mask_irqs() {
    // SAFETY: only changes this vCPU's interrupt mask.
    unsafe { core::arch::asm!("msr daifset, #2", "isb") };
}

/// The IRQ handler: acknowledge (ICC_IAR1_EL1), record, end (ICC_EOIR1_EL1).
pub fn handle_irq() {
    let intid: u64;
    // SAFETY: acknowledging the pending interrupt of this vCPU.
    unsafe { core::arch::asm!("mrs {}, S3_0_C12_C12_0", out(reg) intid) };
    let intid = (intid & 0xff_ffff) as u32;
    if intid >= 1020 && intid < 8192 {
        return; // spurious
    }
    LAST_INTID.store(intid, Ordering::Release);
    TAKEN.fetch_add(1, Ordering::AcqRel);
    // SAFETY: ends the interrupt just acknowledged.
    unsafe { core::arch::asm!("msr S3_0_C12_C12_1, {}", "isb", in(reg) u64::from(intid)) };
}
