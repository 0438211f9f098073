//! The GICv3 CPU interface as the hypervisor uses it at EL2 (ICC_* system
//! registers): enable, acknowledge, end of interrupt, SGIs.

use core::sync::atomic::{AtomicBool, Ordering};

/// Whether this machine's GIC has the system-register CPU interface and
/// `init` ran: on a GICv2 (GIC-400) the ICC_* registers do not exist and
/// touching them is an undefined instruction.
static READY: AtomicBool = AtomicBool::new(false);

/// Enables the system register interface for EL2 and EL1 (ICC_SRE_EL2:
/// SRE | Enable), unmasks all priorities and enables Group 1.
pub fn init() {
    READY.store(true, Ordering::Release);
    crate::write_sysreg!("S3_4_C12_C9_5", 0xf); // ICC_SRE_EL2: SRE, DFB, DIB, Enable
    crate::arch::sysreg::isb();
    crate::write_sysreg!("S3_0_C4_C6_0", 0xff); // ICC_PMR_EL1
                                                // ICC_CTLR_EL1.EOImode = 1: EOIR only drops the priority, deactivation
                                                // is separate (ICC_DIR_EL1), so a forwarded interrupt (the virtual
                                                // timer) stays active until the guest deactivates its HW-linked twin.
    crate::write_sysreg!("S3_0_C12_C12_4", 1 << 1);
    crate::write_sysreg!("S3_0_C12_C12_7", 1); // ICC_IGRPEN1_EL1
    crate::arch::sysreg::isb();
}

/// Whether the ICC_*/ICH_* system registers are in use (GICv3 or later).
pub fn is_ready() -> bool {
    READY.load(Ordering::Acquire)
}

/// Acknowledges the highest-priority pending Group 1 interrupt (ICC_IAR1_EL1).
/// Returns its INTID (1023: none).
pub fn acknowledge() -> u32 {
    if !READY.load(Ordering::Acquire) {
        return 1023;
    }
    (crate::read_sysreg!("S3_0_C12_C12_0") & 0xff_ffff) as u32
}

/// Ends interrupt `intid` (ICC_EOIR1_EL1): with EOImode 1, a priority drop only.
pub fn end_of_interrupt(intid: u32) {
    crate::write_sysreg!("S3_0_C12_C12_1", u64::from(intid));
}

/// Deactivates interrupt `intid` (ICC_DIR_EL1; EOImode 1). LPIs have no
/// active state and need none.
pub fn deactivate(intid: u32) {
    if intid < 8192 {
        crate::write_sysreg!("S3_0_C12_C11_1", u64::from(intid));
    }
}

/// Whether this CPU interface is in use (a GICv3 host): SGIs can be sent
/// and interrupts wake a CPU from WFI.
pub fn ready() -> bool {
    READY.load(Ordering::Acquire)
}

/// Sends SGI `intid` to the CPU with affinity `mpidr` (ICC_SGI1R_EL1).
pub fn send_sgi(intid: u32, mpidr: u64) {
    if !READY.load(Ordering::Acquire) {
        return;
    }
    let aff0 = mpidr & 0xf;
    let value = ((mpidr >> 32) & 0xff) << 48
        | ((mpidr >> 16) & 0xff) << 32
        | u64::from(intid & 0xf) << 24
        | ((mpidr >> 8) & 0xff) << 16
        | ((mpidr & 0xf0) >> 4) << 44 // RS: which group of 16 Aff0 values
        | (1 << aff0);
    crate::arch::sysreg::dsb_ish();
    crate::write_sysreg!("S3_0_C12_C11_5", value);
    crate::arch::sysreg::isb();
}
