//! The EL2 stage-1 MMU and stage-2 (VTTBR/VTCR) programming, and the
//! identity-mapped [`TableMemory`] the page-table builder writes through.

use super::sysreg::{self, dsb_ish, isb};
use crate::mm::{PaRange, PhysAddr, TableMemory, Vmid, PAGE_SIZE};
use crate::sysreg::{SctlrEl2, TcrEl2, VtcrEl2, VttbrEl2};

/// Above this many bytes, an invalidation drops all entries of the regime
/// rather than issuing one TLBI per page.
const BROAD_TLBI_THRESHOLD: u64 = 64 * PAGE_SIZE;

/// Where new translation tables come from.
pub trait FrameSource {
    /// `count` contiguous 4 KiB frames aligned to `count * 4 KiB`, or `None`.
    fn frames(&mut self, count: usize) -> Option<PhysAddr>;
}

/// Table memory reached through the identity map (EL2 VA == PA), with the
/// barriers and TLB maintenance the builder asks for.
pub struct IdentityTables<S: FrameSource> {
    source: S,
    stage2: bool,
}

impl<S: FrameSource> IdentityTables<S> {
    /// Tables for the EL2 stage-1 regime.
    pub fn el2(source: S) -> Self {
        Self {
            source,
            stage2: false,
        }
    }

    /// Tables for a stage-2 regime. TLB maintenance then applies to the VMID
    /// in VTTBR_EL2 at the time of the change: the caller must have it loaded.
    pub fn stage2(source: S) -> Self {
        Self {
            source,
            stage2: true,
        }
    }
}

impl<S: FrameSource> TableMemory for IdentityTables<S> {
    fn allocate_zeroed(&mut self, count: usize) -> Option<PhysAddr> {
        let pa = self.source.frames(count)?;
        // SAFETY: the frames are fresh RAM, identity-mapped, owned by us.
        unsafe { core::ptr::write_bytes(pa.raw() as *mut u8, 0, count * PAGE_SIZE as usize) };
        Some(pa)
    }

    fn read_entry(&self, table: PhysAddr, index: usize) -> u64 {
        // SAFETY: `table` is a table this builder allocated; index < 512.
        unsafe { core::ptr::read_volatile((table.raw() as *const u64).add(index)) }
    }

    fn write_entry(&mut self, table: PhysAddr, index: usize, value: u64) {
        // SAFETY: as above; a single aligned 64-bit store, as the walker needs.
        unsafe { core::ptr::write_volatile((table.raw() as *mut u64).add(index), value) }
    }

    fn publish_barrier(&mut self) {
        // SAFETY: a barrier only orders memory accesses.
        unsafe { core::arch::asm!("dsb ishst", options(nostack)) };
    }

    fn invalidate(&mut self, input_start: u64, size: u64) {
        // SAFETY: TLB maintenance only drops cached translations.
        unsafe {
            core::arch::asm!("dsb ishst", options(nostack));
            if size > BROAD_TLBI_THRESHOLD {
                // Breaking a large block page by page would take up to
                // 262,144 TLBIs: drop the whole regime's entries instead.
                if self.stage2 {
                    core::arch::asm!("tlbi vmalls12e1is", options(nostack));
                } else {
                    core::arch::asm!("tlbi alle2is", options(nostack));
                }
            } else if self.stage2 {
                // Stage-2 entries by IPA, then all stage-1 entries of the VMID
                // that may have been combined with them (ARM ARM D8.13).
                let mut ipa = input_start;
                while ipa < input_start + size {
                    core::arch::asm!("tlbi ipas2e1is, {}", in(reg) ipa >> 12, options(nostack));
                    ipa += PAGE_SIZE;
                }
                core::arch::asm!("dsb ish", "tlbi vmalle1is", options(nostack));
            } else {
                let mut va = input_start;
                while va < input_start + size {
                    core::arch::asm!("tlbi vae2is, {}", in(reg) va >> 12, options(nostack));
                    va += PAGE_SIZE;
                }
            }
            core::arch::asm!("dsb ish", "isb", options(nostack));
        }
    }
}

/// The PA range this CPU supports (ID_AA64MMFR0_EL1.PARange).
pub fn pa_range() -> PaRange {
    PaRange::from_id_field(sysreg::id_aa64mmfr0_el1::read().parange() as u8)
}

/// Whether VMIDs are 16 bits wide (ID_AA64MMFR1_EL1.VMIDBits == 0b0010).
pub fn vmid_16bit() -> bool {
    sysreg::id_aa64mmfr1_el1::read().vmid_16bit()
}

/// Turns on the EL2 stage-1 MMU and caches with `root` as TTBR0_EL2.
///
/// # Safety
/// `root` must identity-map all memory the hypervisor uses from here on
/// (image, stacks, heap, devices) with the right attributes.
pub unsafe fn enable_el2(root: PhysAddr, tcr: TcrEl2, mair: u64) {
    // SAFETY: the MMU is still off, so these only describe the tables the
    // caller vouches for; nothing uses them until SCTLR_EL2.M below.
    unsafe {
        sysreg::mair_el2::write(mair);
        sysreg::tcr_el2::write(tcr);
        sysreg::ttbr0_el2::write(root.raw());
    }
    dsb_ish();
    // SAFETY: drop any stale EL2 translations before enabling (ARM ARM D8.13).
    unsafe { core::arch::asm!("tlbi alle2", "dsb ish", options(nostack)) };
    isb();
    // SAFETY: the caller guarantees `root` identity-maps everything EL2
    // uses; the tables are visible (dsb) and no stale TLB entry is left.
    unsafe { sysreg::sctlr_el2::write(SctlrEl2::el2_mmu_on()) };
    isb();
}

/// Loads a partition's stage 2: VTCR_EL2 and VTTBR_EL2 (root + VMID).
///
/// # Safety
/// `root` must be the stage-2 root of the partition whose vCPU runs next
/// on this CPU, `vmid` its own VMID and `vtcr` the shape of its tables
/// (`Stage2::vtcr_el2`).
pub unsafe fn load_stage2(vtcr: u64, root: PhysAddr, vmid: Vmid) {
    // SAFETY: the caller's contract is the registers' contract.
    unsafe {
        sysreg::vtcr_el2::write(VtcrEl2(vtcr));
        sysreg::vttbr_el2::write(VttbrEl2::new(root.raw(), vmid.get()));
    }
    isb();
}

/// Drops every TLB entry of the VMID currently in VTTBR_EL2 on this CPU
/// (a vCPU restart: stale stage-1 entries of its previous life must go).
pub fn flush_guest_tlb_local() {
    // SAFETY: TLB maintenance only drops cached translations.
    unsafe {
        core::arch::asm!(
            "dsb ishst",
            "tlbi vmalls12e1",
            "dsb nsh",
            "isb",
            options(nostack)
        )
    };
}
