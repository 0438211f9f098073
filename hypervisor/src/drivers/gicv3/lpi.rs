//! Physical LPIs: the property table (shared by all redistributors), the
//! per-redistributor pending tables, and for GICv4 the per-vPE residency
//! registers (GICR_VPROPBASER / GICR_VPENDBASER in the VLPI frame).

use super::redistributor::Redistributor;
use crate::arch::cache::clean_invalidate;
use crate::gic::lpi::{lpi_config_byte, LpiTableLayout};
use crate::gic::regs::gicr::{
    GicrCtlr, GicrPendbaser, GicrPropbaser, GicrVpendbaser, GicrVpropbaser,
};
use crate::gic::regs::{Cacheability, Shareability};
use crate::ids::PhysIntId;
use crate::mm::PhysAddr;

/// Offset of the VLPI frame from the RD frame (GICv4: third 64 KiB frame).
const VLPI_FRAME: usize = 0x2_0000;
/// GICR_PROPBASER and GICR_VPROPBASER (RD and VLPI frame).
const PROPBASER: usize = 0x70;
/// GICR_PENDBASER and GICR_VPENDBASER (RD and VLPI frame).
const PENDBASER: usize = 0x78;
/// The cache attributes of every *BASER we program: normal, inner
/// shareable, read/write-allocate write-back.
const INNER_WB: u64 = Cacheability::ReadWriteAllocWriteBack as u64;
const INNER_SHAREABLE: u64 = Shareability::InnerShareable as u64;

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
        let index = u64::from(intid.get().saturating_sub(crate::ids::FIRST_LPI));
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

    fn propbaser(&self) -> GicrPropbaser {
        GicrPropbaser(0)
            .with_physical_address(self.base)
            .with_id_bits(u64::from(self.layout.id_bits_field()))
            .with_inner_cache(INNER_WB)
            .with_shareability(INNER_SHAREABLE)
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
        let propbaser = self.reg64(PROPBASER);
        // SAFETY: GICR_CTLR/PROPBASER/PENDBASER of a redistributor we own.
        unsafe {
            if GicrCtlr(core::ptr::read_volatile(ctlr)).enable_lpis() {
                return false;
            }
            core::ptr::write_volatile(propbaser, props.propbaser().0);
            if GicrPropbaser(core::ptr::read_volatile(propbaser)).shareability() == 0 {
                // The redistributor does not snoop: non-cacheable, and we clean.
                props.coherent = false;
                let value = props
                    .propbaser()
                    .with_shareability(0)
                    .with_inner_cache(Cacheability::NonCacheable as u64);
                core::ptr::write_volatile(propbaser, value.0);
                clean_invalidate(props.base.raw(), props.layout.property_bytes);
            }
        }
        let size = props.layout.pending_bytes.next_multiple_of(0x1_0000);
        let Some(pending) = alloc(size, props.layout.pending_align()) else {
            return false;
        };
        let pendbaser = GicrPendbaser(0)
            .with_physical_address(pending)
            .with_inner_cache(INNER_WB)
            .with_shareability(INNER_SHAREABLE)
            // The table is known to be zero.
            .with_ptz(true);
        // SAFETY: fresh RAM, identity-mapped, ours; then the registers as above.
        unsafe {
            core::ptr::write_bytes(pending.raw() as *mut u8, 0, size as usize);
            clean_invalidate(pending.raw(), size);
            core::ptr::write_volatile(self.reg64(PENDBASER), pendbaser.0);
            crate::arch::sysreg::dsb_sy();
            let enabled = GicrCtlr(core::ptr::read_volatile(ctlr)).with_enable_lpis(true);
            core::ptr::write_volatile(ctlr, enabled.0);
        }
        crate::arch::sysreg::dsb_sy();
        true
    }

    /// GICR_VPENDBASER of this redistributor (VLPI frame).
    fn vpendbaser(&self) -> *mut u64 {
        self.reg64(VLPI_FRAME + PENDBASER)
    }

    /// Reads GICR_VPENDBASER.
    fn read_vpendbaser(&self) -> GicrVpendbaser {
        // SAFETY: VLPI-frame register of a redistributor we own; a read.
        GicrVpendbaser(unsafe { core::ptr::read_volatile(self.vpendbaser()) })
    }

    /// Clears GICR_VPENDBASER.Valid if set and waits (bounded) for Dirty to
    /// read 0; returns whether it did.
    fn clear_vpe_valid(&self) -> bool {
        let old = self.read_vpendbaser();
        if old.valid() {
            // SAFETY: VLPI-frame register of a redistributor we own.
            unsafe { core::ptr::write_volatile(self.vpendbaser(), old.with_valid(false).0) };
        }
        super::wait_for(|| !self.read_vpendbaser().dirty())
    }

    /// Makes a vPE resident here (GICv4.0): its VM's property table and its
    /// virtual pending table. IHI 0069 9.3: GICR_VPENDBASER is written with
    /// Valid = 1 as one 64-bit write, and the vPE is in use only once Dirty
    /// reads 0. Returns false if Dirty never cleared.
    pub fn make_vpe_resident(&self, vprop: PhysAddr, id_bits_field: u8, vpt: PhysAddr) -> bool {
        // Never switch vPEs without going through non-resident.
        self.clear_vpe_valid();
        let vpropbaser = GicrVpropbaser(0)
            .with_physical_address(vprop)
            .with_id_bits(u64::from(id_bits_field))
            .with_inner_cache(INNER_WB)
            .with_shareability(INNER_SHAREABLE);
        let vpendbaser = GicrVpendbaser(0)
            .with_physical_address(vpt)
            .with_inner_cache(INNER_WB)
            .with_shareability(INNER_SHAREABLE)
            .with_valid(true);
        // SAFETY: VLPI-frame registers of a redistributor we own.
        unsafe {
            core::ptr::write_volatile(self.reg64(VLPI_FRAME + PROPBASER), vpropbaser.0);
            core::ptr::write_volatile(self.vpendbaser(), vpendbaser.0);
        }
        super::wait_for(|| !self.read_vpendbaser().dirty())
    }

    /// Makes the resident vPE non-resident; returns (Dirty cleared,
    /// PendingLast: whether it had pending vLPIs).
    pub fn make_vpe_nonresident(&self) -> (bool, bool) {
        let clean = self.clear_vpe_valid();
        (clean, self.read_vpendbaser().pending_last())
    }

    /// The virtual pending table of the vPE resident here
    /// (GICR_VPENDBASER.Valid and its address), or `None`.
    pub fn resident_vpt(&self) -> Option<PhysAddr> {
        let value = self.read_vpendbaser();
        value.valid().then_some(value.physical_address())
    }

    /// GICR_TYPER.Processor_Number: how an ITS with PTA = 0 names this redistributor.
    pub fn processor_number(&self) -> u16 {
        self.typer().processor_number() as u16
    }
}
