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
use tock_registers::interfaces::{Readable, Writeable};
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
    /// Enables physical LPIs on this redistributor with `props` and a fresh
    /// pending table from `alloc` (IHI 0069 5.1.1: PROPBASER/PENDBASER may
    /// be written only while EnableLPIs is 0). Returns false if LPIs were
    /// already enabled by someone else, or there is no memory.
    pub fn enable_lpis(
        &self,
        props: &mut PropertyTable,
        alloc: &mut dyn FnMut(u64, u64) -> Option<PhysAddr>,
    ) -> bool {
        let rd = self.rd();
        if GicrCtlr(rd.ctlr.get()).enable_lpis() {
            return false;
        }
        rd.propbaser.set(props.propbaser().0);
        if GicrPropbaser(rd.propbaser.get()).shareability() == 0 {
            // The redistributor does not snoop: non-cacheable, and we clean.
            props.coherent = false;
            let value = props
                .propbaser()
                .with_shareability(0)
                .with_inner_cache(Cacheability::NonCacheable as u64);
            rd.propbaser.set(value.0);
            clean_invalidate(props.base.raw(), props.layout.property_bytes);
        }
        let size = props.layout.pending_bytes.next_multiple_of(64 * 1024);
        let Some(pending) = alloc(size, props.layout.pending_align()) else {
            return false;
        };
        let pendbaser = GicrPendbaser(0)
            .with_physical_address(pending)
            .with_inner_cache(INNER_WB)
            .with_shareability(INNER_SHAREABLE)
            // The table is known to be zero.
            .with_ptz(true);
        // SAFETY: fresh RAM, identity-mapped, ours.
        unsafe { core::ptr::write_bytes(pending.raw() as *mut u8, 0, size as usize) };
        clean_invalidate(pending.raw(), size);
        rd.pendbaser.set(pendbaser.0);
        crate::arch::sysreg::dsb_sy();
        let enabled = GicrCtlr(rd.ctlr.get()).with_enable_lpis(true);
        rd.ctlr.set(enabled.0);
        crate::arch::sysreg::dsb_sy();
        true
    }

    /// Reads GICR_VPENDBASER.
    fn read_vpendbaser(&self) -> GicrVpendbaser {
        GicrVpendbaser(self.vlpi().vpendbaser.get())
    }

    /// Clears GICR_VPENDBASER.Valid if set and waits (bounded) for Dirty to
    /// read 0; returns whether it did.
    fn clear_vpe_valid(&self) -> bool {
        let old = self.read_vpendbaser();
        if old.valid() {
            self.vlpi().vpendbaser.set(old.with_valid(false).0);
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
        self.vlpi().vpropbaser.set(vpropbaser.0);
        self.vlpi().vpendbaser.set(vpendbaser.0);
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
