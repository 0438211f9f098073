//! The GICv3 distributor (GICD).

use crate::gic::regs::gicd::{GicdCtlrNs, GicdIrouter, GicdPidr2, GicdTyper, GicdTyper2};
use crate::gic::regs::{IcfgrEdge, IntidBit};
use crate::sysreg::MpidrEl1;
use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::register_structs;
use tock_registers::registers::{ReadOnly, ReadWrite};

register_structs! {
    /// GICD registers (IHI 0069, 12.9).
    pub GicdRegs {
        (0x0000 => ctlr: ReadWrite<u32>),
        (0x0004 => typer: ReadOnly<u32>),
        (0x0008 => iidr: ReadOnly<u32>),
        (0x000c => typer2: ReadOnly<u32>),
        (0x0010 => _reserved0),
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
    pub fn typer(&self) -> GicdTyper {
        GicdTyper(self.regs().typer.get())
    }

    /// GICD_TYPER2 (GICv4.1 vPE ID width; RAZ before GICv4.1).
    pub fn typer2(&self) -> GicdTyper2 {
        GicdTyper2(self.regs().typer2.get())
    }

    /// GICD_IIDR.
    pub fn iidr(&self) -> u32 {
        self.regs().iidr.get()
    }

    /// GICD_PIDR2.ArchRev (3 = GICv3, 4 = GICv4).
    pub fn arch_rev(&self) -> u32 {
        GicdPidr2(self.regs().pidr2.get()).arch_rev()
    }

    /// Number of SPI INTIDs + 32 the distributor implements (ITLinesNumber).
    pub fn lines(&self) -> u32 {
        (self.typer().it_lines_number() + 1) * 32
    }

    /// Enables SPI `intid` (32..1020), level-sensitive or edge-triggered,
    /// keeping the routing `init` gave it (the boot CPU).
    pub fn enable_spi(&self, intid: u32, edge: bool) {
        if !(32..self.lines().min(1020)).contains(&intid) {
            return;
        }
        let r = self.regs();
        let config = IcfgrEdge::of(intid);
        let icfgr = &r.icfgr[config.register];
        icfgr.set(config.apply(icfgr.get(), edge));
        let enable = IntidBit::of(intid);
        r.isenabler[enable.register].set(enable.mask);
    }

    /// Enables affinity routing and Group 1 non-secure, with every SPI
    /// disabled, in Group 1, routed to `boot_mpidr`. IHI 0069 12.9.4:
    /// ARE must be set before the group enable, and RWP waited on.
    ///
    /// GICD_CTLR is written in its Non-secure view ([`GicdCtlrNs`]): ARE_NS
    /// at bit 4 and EnableGrp1A at bit 1 are, with a single security state
    /// (DS = 1), ARE and EnableGrp1 at the same bits, so one value serves
    /// both.
    pub fn init(&self, boot_mpidr: u64) -> bool {
        let r = self.regs();
        let ctlr = || GicdCtlrNs(r.ctlr.get());
        let no_write_pending = || super::wait_for(|| !ctlr().rwp());
        r.ctlr.set(GicdCtlrNs(0).0);
        if !no_write_pending() {
            return false;
        }
        let affinity_routing = GicdCtlrNs(0).with_are_ns(true);
        r.ctlr.set(affinity_routing.0);
        let words = (self.lines() / 32) as usize;
        for i in 1..words.min(32) {
            r.icenabler[i].set(u32::MAX);
            r.igroupr[i].set(u32::MAX);
            r.igrpmodr[i].set(0);
        }
        for i in 8..(self.lines() as usize / 4).min(255) {
            r.ipriorityr[i].set(0xa0a0_a0a0);
        }
        let route = GicdIrouter::to_pe(MpidrEl1(boot_mpidr));
        for i in 0..(self.lines() as usize).saturating_sub(32).min(988) {
            r.irouter[i].set(route.0);
        }
        if !no_write_pending() {
            return false;
        }
        r.ctlr.set(affinity_routing.with_enable_grp1a(true).0);
        no_write_pending()
    }
}
