//! The guest's GICv3: the CPU interface (system registers; with a hypervisor
//! these reach the virtual interface, ICV_*), and the distributor and
//! redistributors, found from the device tree's GIC node like Linux finds
//! them (`reg`: GICD, then `#redistributor-regions` GICR regions).

use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// INTID of the last interrupt taken.
pub static LAST_INTID: AtomicU32 = AtomicU32::new(1023);
/// Interrupts taken so far.
pub static TAKEN: AtomicU64 = AtomicU64::new(0);

/// A scenario's IRQ handler (a `fn(u32)` as usize, 0: none): it gets the
/// acknowledged INTID and ends the interrupt itself (EOIR, and DIR with
/// EOImode = 1).
static HOOK: AtomicUsize = AtomicUsize::new(0);

/// GICD base (0: not discovered).
static GICD: AtomicUsize = AtomicUsize::new(0);
/// Most redistributor regions we look at.
const MAX_REGIONS: usize = 4;
/// Redistributor regions: base and size pairs.
static GICR_REGIONS: [AtomicUsize; 2 * MAX_REGIONS] =
    [const { AtomicUsize::new(0) }; 2 * MAX_REGIONS];

/// Distributor register offsets (IHI 0069, 12.9).
pub mod gicd {
    /// GICD_CTLR.
    pub const CTLR: usize = 0x0000;
    /// GICD_TYPER.
    pub const TYPER: usize = 0x0004;
    /// GICD_IIDR.
    pub const IIDR: usize = 0x0008;
    /// GICD_PIDR2.
    pub const PIDR2: usize = 0xffe8;
    /// GICD_CTLR.RWP: a write is still taking effect.
    pub const CTLR_RWP: u32 = 1 << 31;
    /// GICD_CTLR.ARE (ARE_NS in the Non-secure view).
    pub const CTLR_ARE: u32 = 1 << 4;
    /// GICD_CTLR.EnableGrp1 (EnableGrp1A in the Non-secure view).
    pub const CTLR_GRP1: u32 = 1 << 1;
    /// GICD_CTLR.EnableGrp0 (EnableGrp1 in the Non-secure view of a GIC
    /// with two security states): Linux sets both.
    pub const CTLR_GRP0: u32 = 1 << 0;
}

/// Redistributor register offsets (IHI 0069, 12.10 and 12.11).
pub mod gicr {
    /// GICR_CTLR.
    pub const CTLR: usize = 0x0000;
    /// GICR_IIDR.
    pub const IIDR: usize = 0x0004;
    /// GICR_TYPER (64-bit).
    pub const TYPER: usize = 0x0008;
    /// GICR_WAKER.
    pub const WAKER: usize = 0x0014;
    /// GICR_PIDR2.
    pub const PIDR2: usize = 0xffe8;
    /// GICR_CTLR.RWP.
    pub const CTLR_RWP: u32 = 1 << 3;
    /// GICR_WAKER.ProcessorSleep.
    pub const WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
    /// GICR_WAKER.ChildrenAsleep.
    pub const WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;
    /// GICR_TYPER.VLPIS: VLPI frames follow, the stride is 256 KiB.
    pub const TYPER_VLPIS: u64 = 1 << 1;
    /// GICR_TYPER.Last.
    pub const TYPER_LAST: u64 = 1 << 4;
    /// The SGI_base frame, 64 KiB after RD_base.
    pub const SGI_BASE: usize = 0x1_0000;
    /// GICR_IGROUPR0 (SGI_base).
    pub const IGROUPR0: usize = SGI_BASE + 0x0080;
    /// GICR_ISENABLER0 (SGI_base).
    pub const ISENABLER0: usize = SGI_BASE + 0x0100;
    /// GICR_ICENABLER0 (SGI_base).
    pub const ICENABLER0: usize = SGI_BASE + 0x0180;
    /// GICR_ISPENDR0 (SGI_base).
    pub const ISPENDR0: usize = SGI_BASE + 0x0200;
    /// GICR_ICPENDR0 (SGI_base).
    pub const ICPENDR0: usize = SGI_BASE + 0x0280;
    /// GICR_ISACTIVER0 (SGI_base).
    pub const ISACTIVER0: usize = SGI_BASE + 0x0300;
    /// GICR_ICACTIVER0 (SGI_base).
    pub const ICACTIVER0: usize = SGI_BASE + 0x0380;
    /// GICR_IPRIORITYR0 (SGI_base), one byte per INTID.
    pub const IPRIORITYR: usize = SGI_BASE + 0x0400;
}

/// Bounded polls of RWP and WAKER (each poll is one MMIO read; under a
/// hypervisor one trap), far more than any GIC needs.
const POLLS: u32 = 1_000_000;

pub use super::mmio::{read32, read64, read8, write32, write8};

/// Finds the distributor and redistributor regions in the device tree's
/// `arm,gic-v3` node.
pub fn discover() -> Result<(), &'static str> {
    let fdt = super::fdt();
    let node = fdt
        .find_compatible(&["arm,gic-v3"])
        .ok_or("no arm,gic-v3 node in the device tree")?;
    let regions = node
        .property("#redistributor-regions")
        .and_then(|p| p.as_usize())
        .unwrap_or(1)
        .min(MAX_REGIONS);
    let mut reg = node.reg().ok_or("the GIC node has no reg")?;
    let d = reg.next().ok_or("the GIC node's reg is empty")?;
    GICD.store(d.starting_address as usize, Ordering::Release);
    let mut found = 0;
    for (i, r) in reg.take(regions).enumerate() {
        GICR_REGIONS[2 * i].store(r.starting_address as usize, Ordering::Release);
        GICR_REGIONS[2 * i + 1].store(r.size.unwrap_or(0), Ordering::Release);
        found += 1;
    }
    if found == 0 {
        return Err("the GIC node's reg names no redistributor region");
    }
    Ok(())
}

/// The distributor's base.
pub fn gicd_base() -> usize {
    GICD.load(Ordering::Acquire)
}

/// The first redistributor region (base, size).
pub fn first_region() -> (usize, usize) {
    (
        GICR_REGIONS[0].load(Ordering::Acquire),
        GICR_REGIONS[1].load(Ordering::Acquire),
    )
}

/// One redistributor found by walking the regions.
#[derive(Clone, Copy)]
pub struct Redist {
    /// RD_base.
    pub base: usize,
    /// GICR_TYPER.
    pub typer: u64,
}

impl Redist {
    /// GICR_TYPER.Affinity_Value (Aff3.Aff2.Aff1.Aff0).
    pub fn affinity(&self) -> u32 {
        (self.typer >> 32) as u32
    }
    /// GICR_TYPER.Processor_Number.
    pub fn processor_number(&self) -> u32 {
        ((self.typer >> 8) & 0xffff) as u32
    }
    /// GICR_TYPER.Last.
    pub fn last(&self) -> bool {
        self.typer & gicr::TYPER_LAST != 0
    }
}

/// GICR_TYPER.Affinity_Value form of an MPIDR (Aff3 moves down to 31:24).
pub fn mpidr_to_affinity(mpidr: u64) -> u32 {
    ((mpidr & 0xff_ffff) | ((mpidr >> 8) & 0xff00_0000)) as u32
}

/// Walks the redistributors as Linux does (gic_iterate_rdists): ArchRev in
/// GICR_PIDR2 must say GICv3/v4, the stride follows GICR_TYPER.VLPIS, a
/// region ends at its size or at Last. Calls `f` for each; stops when it
/// returns false. Bounded by the regions' sizes and 256 frames.
pub fn for_each_redist(mut f: impl FnMut(Redist) -> bool) {
    for i in 0..MAX_REGIONS {
        let base = GICR_REGIONS[2 * i].load(Ordering::Acquire);
        let size = GICR_REGIONS[2 * i + 1].load(Ordering::Acquire);
        if base == 0 {
            return;
        }
        let mut at = base;
        for _ in 0..256 {
            if at + 0x2_0000 > base + size {
                break;
            }
            let arch = (read32(at + gicr::PIDR2) >> 4) & 0xf;
            if arch != 3 && arch != 4 {
                break;
            }
            let r = Redist {
                base: at,
                typer: read64(at + gicr::TYPER),
            };
            if !f(r) {
                return;
            }
            if r.last() {
                break;
            }
            at += if r.typer & gicr::TYPER_VLPIS != 0 {
                0x4_0000
            } else {
                0x2_0000
            };
        }
    }
}

/// The redistributor whose GICR_TYPER affinity is `mpidr`'s.
pub fn redist_of(mpidr: u64) -> Option<Redist> {
    let want = mpidr_to_affinity(mpidr);
    let mut found = None;
    for_each_redist(|r| {
        if r.affinity() == want {
            found = Some(r);
            false
        } else {
            true
        }
    });
    found
}

/// Waits (bounded) for GICD_CTLR.RWP to clear.
pub fn dist_wait_rwp() -> Result<(), &'static str> {
    for _ in 0..POLLS {
        if read32(gicd_base() + gicd::CTLR) & gicd::CTLR_RWP == 0 {
            return Ok(());
        }
    }
    Err("GICD_CTLR.RWP stuck at 1")
}

/// Waits (bounded) for GICR_CTLR.RWP of redistributor `rd` to clear.
pub fn redist_wait_rwp(rd: usize) -> Result<(), &'static str> {
    for _ in 0..POLLS {
        if read32(rd + gicr::CTLR) & gicr::CTLR_RWP == 0 {
            return Ok(());
        }
    }
    Err("GICR_CTLR.RWP stuck at 1")
}

/// Enables the distributor as Linux's gic_dist_init does: disable, wait
/// for RWP, then affinity routing and both group enables, wait again.
pub fn dist_enable() -> Result<(), &'static str> {
    let d = gicd_base();
    write32(d + gicd::CTLR, 0);
    dist_wait_rwp()?;
    write32(
        d + gicd::CTLR,
        gicd::CTLR_ARE | gicd::CTLR_GRP1 | gicd::CTLR_GRP0,
    );
    dist_wait_rwp()
}

/// Linux's gic_enable_redist(true): clear ProcessorSleep, wait until
/// ChildrenAsleep reads 0. Returns (WAKER before, WAKER after, polls).
pub fn redist_wake(rd: usize) -> Result<(u32, u32, u32), &'static str> {
    let before = read32(rd + gicr::WAKER);
    write32(rd + gicr::WAKER, before & !gicr::WAKER_PROCESSOR_SLEEP);
    for polls in 1..=POLLS {
        let now = read32(rd + gicr::WAKER);
        if now & gicr::WAKER_CHILDREN_ASLEEP == 0 {
            return Ok((before, now, polls));
        }
    }
    Err("GICR_WAKER.ChildrenAsleep still 1 after clearing ProcessorSleep")
}

/// Linux's gic_cpu_config for this redistributor's SGI frame: all 32
/// private interrupts in Group 1, none active, PPIs disabled, SGIs enabled,
/// every priority `prio`.
pub fn redist_config(rd: usize, prio: u8) -> Result<(), &'static str> {
    write32(rd + gicr::IGROUPR0, !0);
    write32(rd + gicr::ICACTIVER0, !0);
    write32(rd + gicr::ICPENDR0, !0);
    write32(rd + gicr::ICENABLER0, 0xffff_0000);
    write32(rd + gicr::ISENABLER0, 0x0000_ffff);
    let word = u32::from_ne_bytes([prio; 4]);
    for i in 0..8 {
        write32(rd + gicr::IPRIORITYR + 4 * i, word);
    }
    redist_wait_rwp(rd)
}

/// Sets the priority of private interrupt `intid` (byte write, as Linux's
/// gic_irq_set_prio).
pub fn set_priority(rd: usize, intid: u32, prio: u8) {
    write8(rd + gicr::IPRIORITYR + intid as usize, prio);
}

/// Enables private interrupt `intid` in redistributor `rd`.
pub fn enable_private(rd: usize, intid: u32) {
    write32(rd + gicr::ISENABLER0, 1 << intid);
}

/// Disables private interrupt `intid` and waits for it to take effect.
pub fn disable_private(rd: usize, intid: u32) -> Result<(), &'static str> {
    write32(rd + gicr::ICENABLER0, 1 << intid);
    redist_wait_rwp(rd)
}

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

/// Linux's gic_cpu_sys_reg_init: `enable`, plus ICC_BPR1_EL1 = 0 (all
/// implemented priority bits preempt) and EOImode 0.
pub fn cpu_init() {
    enable();
    set_bpr1(0);
    set_ctlr(ctlr() & !CTLR_EOIMODE);
}

/// ICC_CTLR_EL1.EOImode: EOIR drops priority only, DIR deactivates.
pub const CTLR_EOIMODE: u64 = 1 << 1;

/// Reads ICC_IAR1_EL1: acknowledges the highest-priority pending Group 1
/// interrupt (1023: none).
pub fn iar1() -> u32 {
    let v: u64;
    // SAFETY: acknowledging an interrupt of this vCPU.
    unsafe { core::arch::asm!("mrs {}, S3_0_C12_C12_0", out(reg) v) };
    (v & 0xff_ffff) as u32
}

/// Writes ICC_EOIR1_EL1: priority drop (and deactivation with EOImode 0).
pub fn eoir1(intid: u32) {
    // SAFETY: ends an interrupt this vCPU acknowledged.
    unsafe { core::arch::asm!("msr S3_0_C12_C12_1, {}", "isb", in(reg) u64::from(intid)) };
}

/// Writes ICC_DIR_EL1: deactivates `intid` (EOImode 1).
pub fn dir(intid: u32) {
    // SAFETY: deactivates an interrupt this vCPU acknowledged.
    unsafe { core::arch::asm!("msr S3_0_C12_C11_1, {}", "isb", in(reg) u64::from(intid)) };
}

/// Reads ICC_RPR_EL1: the running priority (0xff: idle).
pub fn rpr() -> u8 {
    let v: u64;
    // SAFETY: reading the running priority has no side effects.
    unsafe { core::arch::asm!("mrs {}, S3_0_C12_C11_3", out(reg) v) };
    v as u8
}

/// Reads ICC_PMR_EL1.
pub fn pmr() -> u8 {
    let v: u64;
    // SAFETY: reading the priority mask has no side effects.
    unsafe { core::arch::asm!("mrs {}, S3_0_C4_C6_0", out(reg) v) };
    v as u8
}

/// Writes ICC_PMR_EL1 (interrupts with priority >= `p` are masked).
pub fn set_pmr(p: u8) {
    // SAFETY: masks priorities of this vCPU only.
    unsafe { core::arch::asm!("msr S3_0_C4_C6_0, {}", "isb", in(reg) u64::from(p)) };
}

/// Writes ICC_BPR1_EL1.
pub fn set_bpr1(v: u64) {
    // SAFETY: this vCPU's binary point only.
    unsafe { core::arch::asm!("msr S3_0_C12_C12_3, {}", "isb", in(reg) v) };
}

/// Reads ICC_CTLR_EL1.
pub fn ctlr() -> u64 {
    let v: u64;
    // SAFETY: reading the CPU interface control has no side effects.
    unsafe { core::arch::asm!("mrs {}, S3_0_C12_C12_4", out(reg) v) };
    v
}

/// Writes ICC_CTLR_EL1.
pub fn set_ctlr(v: u64) {
    // SAFETY: this vCPU's CPU interface control only.
    unsafe { core::arch::asm!("msr S3_0_C12_C12_4, {}", "isb", in(reg) v) };
}

/// ICC_SGI1R_EL1 value sending SGI `intid` to the vCPU with MPIDR `mpidr`
/// (its Aff3.Aff2.Aff1 and a target list bit for Aff0 with RS = Aff0 / 16).
pub fn sgi1r_to(mpidr: u64, intid: u32) -> u64 {
    let aff0 = mpidr & 0xff;
    let aff1 = (mpidr >> 8) & 0xff;
    let aff2 = (mpidr >> 16) & 0xff;
    let aff3 = (mpidr >> 32) & 0xff;
    (aff3 << 48)
        | ((aff0 >> 4) << 44)
        | (aff2 << 32)
        | (u64::from(intid & 0xf) << 24)
        | (aff1 << 16)
        | (1 << (aff0 & 0xf))
}

/// ICC_SGI1R_EL1 value sending SGI `intid` to every vCPU but this one (IRM = 1).
pub fn sgi1r_broadcast(intid: u32) -> u64 {
    (1 << 40) | (u64::from(intid & 0xf) << 24)
}

/// Writes ICC_SGI1R_EL1 after making earlier memory writes visible (as
/// Linux's gic_ipi_send_mask does with its barrier).
pub fn send_sgi1r(value: u64) {
    // SAFETY: generates an SGI; with a hypervisor this write traps.
    unsafe { core::arch::asm!("dsb ishst", "msr S3_0_C12_C11_5, {}", "isb", in(reg) value) };
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

/// Installs (Some) or removes (None) a scenario's IRQ handler.
pub fn set_hook(f: Option<fn(u32)>) {
    HOOK.store(f.map_or(0, |f| f as usize), Ordering::Release);
}

/// The IRQ handler: acknowledge (ICC_IAR1_EL1), then the scenario's hook,
/// or record and end (ICC_EOIR1_EL1).
pub fn handle_irq() {
    let intid = iar1();
    if (1020..8192).contains(&intid) {
        return; // spurious
    }
    let hook = HOOK.load(Ordering::Acquire);
    if hook != 0 {
        // SAFETY: only `set_hook` stores HOOK, and only from a `fn(u32)`.
        let f: fn(u32) = unsafe { core::mem::transmute::<usize, fn(u32)>(hook) };
        f(intid);
        return;
    }
    LAST_INTID.store(intid, Ordering::Release);
    TAKEN.fetch_add(1, Ordering::AcqRel);
    eoir1(intid);
}
