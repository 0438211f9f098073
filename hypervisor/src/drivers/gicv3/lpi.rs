//! Physical LPIs: the property table (shared by all redistributors), the
//! per-redistributor pending tables, and for GICv4 the per-vPE residency
//! registers (GICR_VPROPBASER / GICR_VPENDBASER in the VLPI frame).

use super::redistributor::Redistributor;
use crate::gic::lpi::{lpi_config_byte, LpiTableLayout};
use crate::gic::regs::{Cacheability, Shareability};
use crate::ids::PhysIntId;
use crate::kernel::early::clean_invalidate;
use crate::mm::PhysAddr;

/// GICR_CTLR.EnableLPIs.
const CTLR_ENABLE_LPIS: u32 = 1 << 0;
/// Offset of the VLPI frame from the RD frame (GICv4: third 64 KiB frame).
const VLPI_FRAME: usize = 0x2_0000;
/// GICR_VPENDBASER.Valid.
const VPEND_VALID: u64 = 1 << 63;
/// GICR_VPENDBASER.PendingLast.
const VPEND_PENDING_LAST: u64 = 1 << 61;
/// GICR_VPENDBASER.Dirty.
const VPEND_DIRTY: u64 = 1 << 60;
/// GICR_VPENDBASER.Physical_Address, bits [51:16].
const VPEND_ADDRESS: u64 = ((1 << 52) - 1) & !0xffff;
/// Normal, inner-shareable, read/write-allocate write-back: the cache
/// fields of every *BASER we program (InnerCache [9:7], Shareability [11:10]).
const WB_INNER_SHAREABLE: u64 = (Cacheability::ReadWriteAllocWriteBack as u64) << 7
    | (Shareability::InnerShareable as u64) << 10;
/// Shareability field of a redistributor *BASER.
const SHAREABILITY_MASK: u64 = 0b11 << 10;

/// The LPI configuration (property) table all redistributors share.
pub struct PropertyTable {
    base: PhysAddr,
    layout: LpiTableLayout,
    coherent: bool,
}

impl PropertyTable {
    /// Allocates a table for `id_bits` of INTID, every LPI disabled.
    pub fn new(
        layout: LpiTableLayout,
        alloc: &mut dyn FnMut(u64, u64) -> Option<PhysAddr>,
    ) -> Option<Self> {
        let base = alloc(
            layout.property_bytes.next_multiple_of(4096),
            layout.property_align(),
        )?;
        // SAFETY: fresh RAM, identity-mapped, ours.
        unsafe {
            core::ptr::write_bytes(
                base.raw() as *mut u8,
                lpi_config_byte(0xa0, false),
                layout.property_bytes as usize,
            )
        };
        clean_invalidate(base.raw(), layout.property_bytes);
        Some(Self {
            base,
            layout,
            coherent: true,
        })
    }

    /// The table's layout.
    pub fn layout(&self) -> &LpiTableLayout {
        &self.layout
    }

    /// Sets LPI `intid`'s priority and enable. The redistributor may have
    /// cached the old value: follow with an ITS INV (or INVALL).
    pub fn configure(&self, intid: PhysIntId, priority: u8, enabled: bool) {
        let index = u64::from(intid.0.saturating_sub(crate::ids::FIRST_LPI));
        if index >= self.layout.property_bytes {
            return;
        }
        let byte = (self.base.raw() + index) as *mut u8;
        // SAFETY: index lies inside the table we allocated.
        unsafe { core::ptr::write_volatile(byte, lpi_config_byte(priority, enabled)) };
        if !self.coherent {
            clean_invalidate(byte as u64, 1);
        }
        crate::arch::sysreg::dsb_ish();
    }

    fn propbaser(&self) -> u64 {
        self.base.raw() | WB_INNER_SHAREABLE | u64::from(self.layout.id_bits_field())
    }
}

impl Redistributor {
    fn reg64(&self, offset: usize) -> *mut u64 {
        (self.base() + offset) as *mut u64
    }

    /// Enables physical LPIs on this redistributor with `props` and a fresh
    /// pending table from `alloc` (IHI 0069 5.1.1: PROPBASER/PENDBASER may
    /// be written only while EnableLPIs is 0). Returns false if LPIs were
    /// already enabled by someone else, or there is no memory.
    pub fn enable_lpis(
        &self,
        props: &mut PropertyTable,
        alloc: &mut dyn FnMut(u64, u64) -> Option<PhysAddr>,
    ) -> bool {
        let ctlr = self.base() as *mut u32;
        // SAFETY: GICR_CTLR/PROPBASER/PENDBASER of a redistributor we own.
        unsafe {
            if core::ptr::read_volatile(ctlr) & CTLR_ENABLE_LPIS != 0 {
                return false;
            }
            core::ptr::write_volatile(self.reg64(0x70), props.propbaser());
            if core::ptr::read_volatile(self.reg64(0x70)) & SHAREABILITY_MASK == 0 {
                // The redistributor does not snoop: non-cacheable, and we clean.
                props.coherent = false;
                core::ptr::write_volatile(
                    self.reg64(0x70),
                    (props.propbaser() & !(0b111 << 7 | SHAREABILITY_MASK)) | 1 << 7,
                );
                clean_invalidate(props.base.raw(), props.layout.property_bytes);
            }
        }
        let size = props.layout.pending_bytes.next_multiple_of(0x1_0000);
        let Some(pending) = alloc(size, props.layout.pending_align()) else {
            return false;
        };
        // SAFETY: fresh RAM, identity-mapped, ours; then the registers as above.
        unsafe {
            core::ptr::write_bytes(pending.raw() as *mut u8, 0, size as usize);
            clean_invalidate(pending.raw(), size);
            // PTZ (bit 62): the table is known to be zero.
            core::ptr::write_volatile(
                self.reg64(0x78),
                pending.raw() | WB_INNER_SHAREABLE | 1 << 62,
            );
            crate::arch::sysreg::dsb_sy();
            core::ptr::write_volatile(ctlr, core::ptr::read_volatile(ctlr) | CTLR_ENABLE_LPIS);
        }
        crate::arch::sysreg::dsb_sy();
        true
    }

    /// Makes a vPE resident here (GICv4.0): its VM's property table and its
    /// virtual pending table. IHI 0069 9.3: GICR_VPENDBASER is written with
    /// Valid = 1 as one 64-bit write, and the vPE is in use only once Dirty
    /// reads 0. Returns false if Dirty never cleared.
    pub fn make_vpe_resident(&self, vprop: PhysAddr, id_bits_field: u8, vpt: PhysAddr) -> bool {
        let vpropbaser = self.reg64(VLPI_FRAME + 0x70);
        let vpendbaser = self.reg64(VLPI_FRAME + 0x78);
        // SAFETY: VLPI-frame registers of a redistributor we own.
        unsafe {
            // Never switch vPEs without going through non-resident.
            let old = core::ptr::read_volatile(vpendbaser);
            if old & VPEND_VALID != 0 {
                core::ptr::write_volatile(vpendbaser, old & !VPEND_VALID);
                super::wait_for(|| core::ptr::read_volatile(vpendbaser) & VPEND_DIRTY == 0);
            }
            core::ptr::write_volatile(
                vpropbaser,
                vprop.raw() | WB_INNER_SHAREABLE | u64::from(id_bits_field),
            );
            core::ptr::write_volatile(vpendbaser, vpt.raw() | WB_INNER_SHAREABLE | VPEND_VALID);
            super::wait_for(|| core::ptr::read_volatile(vpendbaser) & VPEND_DIRTY == 0)
        }
    }

    /// Makes the resident vPE non-resident; returns (Dirty cleared,
    /// PendingLast: whether it had pending vLPIs).
    pub fn make_vpe_nonresident(&self) -> (bool, bool) {
        let vpendbaser = self.reg64(VLPI_FRAME + 0x78);
        // SAFETY: VLPI-frame register of a redistributor we own.
        unsafe {
            let old = core::ptr::read_volatile(vpendbaser);
            core::ptr::write_volatile(vpendbaser, old & !VPEND_VALID);
            let clean = super::wait_for(|| core::ptr::read_volatile(vpendbaser) & VPEND_DIRTY == 0);
            (
                clean,
                core::ptr::read_volatile(vpendbaser) & VPEND_PENDING_LAST != 0,
            )
        }
    }

    /// The virtual pending table of the vPE resident here
    /// (GICR_VPENDBASER.Valid and its address), or `None`.
    pub fn resident_vpt(&self) -> Option<PhysAddr> {
        // SAFETY: VLPI-frame register of a redistributor we own; a read.
        let value = unsafe { core::ptr::read_volatile(self.reg64(VLPI_FRAME + 0x78)) };
        (value & VPEND_VALID != 0).then_some(PhysAddr(value & VPEND_ADDRESS))
    }

    /// GICR_TYPER.Processor_Number: how an ITS with PTA = 0 names this redistributor.
    pub fn processor_number(&self) -> u16 {
        ((self.typer() >> 8) & 0xffff) as u16
    }
}
