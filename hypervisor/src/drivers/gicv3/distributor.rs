//! The GICv3 distributor (GICD).

use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::register_structs;
use tock_registers::registers::{ReadOnly, ReadWrite};

register_structs! {
    /// GICD registers (IHI 0069, 12.9).
    pub GicdRegs {
        (0x0000 => ctlr: ReadWrite<u32>),
        (0x0004 => typer: ReadOnly<u32>),
        (0x0008 => iidr: ReadOnly<u32>),
        (0x000c => _reserved0),
        (0x0080 => igroupr: [ReadWrite<u32>; 32]),
        (0x0100 => isenabler: [ReadWrite<u32>; 32]),
        (0x0180 => icenabler: [ReadWrite<u32>; 32]),
        (0x0200 => _reserved1),
        (0x0400 => ipriorityr: [ReadWrite<u32>; 255]),
        (0x07fc => _reserved2),
        (0x0c00 => icfgr: [ReadWrite<u32>; 64]),
        (0x0d00 => igrpmodr: [ReadWrite<u32>; 32]),
        (0x0d80 => _reserved3),
        (0x6100 => irouter: [ReadWrite<u64>; 988]),
        (0x7fe0 => _reserved4),
        (0xffe8 => pidr2: ReadOnly<u32>),
        (0xffec => @END),
    }
}

/// GICD_CTLR.RWP: a register write is still in progress.
const CTLR_RWP: u32 = 1 << 31;
/// GICD_CTLR.ARE_NS (ARE when the GIC has a single security state).
const CTLR_ARE_NS: u32 = 1 << 4;
/// GICD_CTLR.EnableGrp1NS (EnableGrp1 with a single security state).
const CTLR_ENABLE_GRP1NS: u32 = 1 << 1;

/// The distributor of the physical GIC.
pub struct Distributor {
    regs: *const GicdRegs,
}

// SAFETY: the distributor is initialised once and then only read or
// written through registers designed for concurrent access.
unsafe impl Send for Distributor {}
// SAFETY: as above.
unsafe impl Sync for Distributor {}

impl Distributor {
    /// A driver for the GICD at `base`.
    ///
    /// # Safety
    /// `base` must map a GICv3 distributor as device memory, driven by nothing else.
    pub const unsafe fn new(base: usize) -> Self {
        Self {
            regs: base as *const GicdRegs,
        }
    }

    fn regs(&self) -> &GicdRegs {
        // SAFETY: `new`'s contract.
        unsafe { &*self.regs }
    }

    /// GICD_TYPER.
    pub fn typer(&self) -> u32 {
        self.regs().typer.get()
    }

    /// GICD_IIDR.
    pub fn iidr(&self) -> u32 {
        self.regs().iidr.get()
    }

    /// GICD_PIDR2.ArchRev (3 = GICv3, 4 = GICv4).
    pub fn arch_rev(&self) -> u32 {
        (self.regs().pidr2.get() >> 4) & 0xf
    }

    /// Number of SPI INTIDs + 32 the distributor implements (ITLinesNumber).
    pub fn lines(&self) -> u32 {
        ((self.typer() & 0x1f) + 1) * 32
    }

    /// Enables SPI `intid` (32..1020), level-sensitive or edge-triggered,
    /// keeping the routing `init` gave it (the boot CPU).
    pub fn enable_spi(&self, intid: u32, edge: bool) {
        if !(32..self.lines().min(1020)).contains(&intid) {
            return;
        }
        let r = self.regs();
        let (word, bit) = ((intid / 16) as usize, (intid % 16) * 2 + 1);
        let cfg = r.icfgr[word].get() & !(1 << bit);
        r.icfgr[word].set(cfg | (u32::from(edge) << bit));
        r.isenabler[(intid / 32) as usize].set(1 << (intid % 32));
    }

    /// Enables affinity routing and Group 1 non-secure, with every SPI
    /// disabled, in Group 1, routed to `boot_mpidr`. IHI 0069 12.9.4:
    /// ARE must be set before the group enable, and RWP waited on.
    pub fn init(&self, boot_mpidr: u64) -> bool {
        let r = self.regs();
        r.ctlr.set(0);
        if !super::wait_for(|| r.ctlr.get() & CTLR_RWP == 0) {
            return false;
        }
        r.ctlr.set(CTLR_ARE_NS);
        let words = (self.lines() / 32) as usize;
        for i in 1..words.min(32) {
            r.icenabler[i].set(u32::MAX);
            r.igroupr[i].set(u32::MAX);
            r.igrpmodr[i].set(0);
        }
        for i in 8..(self.lines() as usize / 4).min(255) {
            r.ipriorityr[i].set(0xa0a0_a0a0);
        }
        let route = (boot_mpidr & 0xff_ffff) | ((boot_mpidr >> 32) & 0xff) << 32;
        for i in 0..(self.lines() as usize).saturating_sub(32).min(988) {
            r.irouter[i].set(route);
        }
        if !super::wait_for(|| r.ctlr.get() & CTLR_RWP == 0) {
            return false;
        }
        r.ctlr.set(CTLR_ARE_NS | CTLR_ENABLE_GRP1NS);
        super::wait_for(|| r.ctlr.get() & CTLR_RWP == 0)
    }
}
