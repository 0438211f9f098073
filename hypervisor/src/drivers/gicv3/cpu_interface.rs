//! The GICv3 CPU interface as the hypervisor uses it at EL2 (ICC_* system
//! registers): enable, acknowledge, end of interrupt, SGIs.

use crate::arch::sysreg;
use crate::ids::PhysIntId;
use crate::sysreg::{IccCtlrEl1, IccIgrpen1El1, IccPmrEl1, IccSgi1rEl1, IccSreEl2, MpidrEl1};
use core::sync::atomic::{AtomicBool, Ordering};

/// Whether this machine's GIC has the system-register CPU interface and
/// `init` ran: on a GICv2 (GIC-400) the ICC_* registers do not exist and
/// touching them is an undefined instruction.
static READY: AtomicBool = AtomicBool::new(false);

/// Enables the system register interface for EL2 and EL1 (ICC_SRE_EL2:
/// SRE | Enable), unmasks all priorities and enables Group 1.
pub fn init() {
    READY.store(true, Ordering::Release);
    let sre = IccSreEl2(0)
        .with_sre(true)
        .with_dfb(true)
        .with_dib(true)
        .with_enable(true);
    // SAFETY: SRE set, as every later ICC_* access needs.
    unsafe { sysreg::icc_sre_el2::write(sre) };
    sysreg::isb();
    sysreg::icc_pmr_el1::write(IccPmrEl1(0).with_priority(0xff));
    // EOImode = 1: EOIR only drops the priority, deactivation is separate
    // (ICC_DIR_EL1), so a forwarded interrupt (the virtual timer) stays
    // active until the guest deactivates its HW-linked twin.
    sysreg::icc_ctlr_el1::write(IccCtlrEl1(0).with_eoimode(true));
    sysreg::icc_igrpen1_el1::write(IccIgrpen1El1(0).with_enable(true));
    sysreg::isb();
}

/// Whether the ICC_*/ICH_* system registers are in use (GICv3 or later).
pub fn is_ready() -> bool {
    READY.load(Ordering::Acquire)
}

/// Acknowledges the highest-priority pending Group 1 interrupt
/// (ICC_IAR1_EL1): its INTID, or `None` for a special INTID (1023:
/// nothing pending).
pub fn acknowledge() -> Option<PhysIntId> {
    if !READY.load(Ordering::Acquire) {
        return None;
    }
    // INTID is at most 24 bits wide: the conversion cannot fail.
    let raw = u32::try_from(sysreg::icc_iar1_el1::read().intid()).ok()?;
    PhysIntId::from_acknowledge(raw)
}

/// Ends interrupt `intid` (ICC_EOIR1_EL1): with EOImode 1, a priority drop only.
pub fn end_of_interrupt(intid: PhysIntId) {
    sysreg::icc_eoir1_el1::write(intid.get());
}

/// Deactivates interrupt `intid` (ICC_DIR_EL1; EOImode 1). LPIs have no
/// active state and need none.
pub fn deactivate(intid: PhysIntId) {
    if !intid.is_lpi() {
        sysreg::icc_dir_el1::write(intid.get());
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
    let value = IccSgi1rEl1::to_one(intid, MpidrEl1(mpidr));
    sysreg::dsb_ish();
    sysreg::icc_sgi1r_el1::write(value);
    sysreg::isb();
}
