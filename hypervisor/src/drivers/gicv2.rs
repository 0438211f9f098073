//! The physical GICv2 with the virtualization extensions (a GIC-400, IHI
//! 0048B): the distributor (GICD), the CPU interface (GICC) and the
//! virtual interface control frame (GICH) the vGICv2 model's list
//! registers are written through. The virtual CPU interface (GICV) is not
//! driven here: it is mapped into a partition's stage 2 at its GICC address.
//!
//! Register blocks typed with tock-registers; the interrupt flow is
//! "priority drop, then deactivate" (GICC_CTLR.EOImodeNS): the hypervisor
//! drops priority at once and a hardware-linked interrupt stays active
//! until the guest deactivates its virtual twin (GICH_LR.HW).

use tock_registers::interfaces::{ReadWriteable, Readable, Writeable};
use tock_registers::registers::{ReadOnly, ReadWrite, WriteOnly};
use tock_registers::{register_bitfields, register_structs};

use crate::gic::regs::v2::{GiccIar, GicdCtlrV2, GicdSgir, GicdTyperV2};
use crate::gic::regs::{IcfgrEdge, IntidBit, IntidByte};
use crate::vgicv2::{ListRegisterV2, LrImageV2, Vtr};

register_bitfields! [u32,
    /// GICC_CTLR, the non-secure view on a GIC without Security Extensions.
    pub GiccCtlr [
        /// EnableGrp0 (Enable): signal interrupts to the PE.
        ENABLE_GRP0 OFFSET(0) NUMBITS(1) [],
        /// EnableGrp1.
        ENABLE_GRP1 OFFSET(1) NUMBITS(1) [],
        /// EOImodeNS: GICC_EOIR only drops priority; GICC_DIR deactivates.
        EOI_MODE_NS OFFSET(9) NUMBITS(1) [],
    ],
];

register_structs! {
    /// GICD (IHI 0048B, table 4-1).
    pub DistributorRegs {
        (0x000 => ctlr: ReadWrite<u32>),
        (0x004 => typer: ReadOnly<u32>),
        (0x008 => iidr: ReadOnly<u32>),
        (0x00c => _reserved0),
        (0x080 => igroupr: [ReadWrite<u32>; 32]),
        (0x100 => isenabler: [ReadWrite<u32>; 32]),
        (0x180 => icenabler: [ReadWrite<u32>; 32]),
        (0x200 => ispendr: [ReadWrite<u32>; 32]),
        (0x280 => icpendr: [ReadWrite<u32>; 32]),
        (0x300 => isactiver: [ReadWrite<u32>; 32]),
        (0x380 => icactiver: [ReadWrite<u32>; 32]),
        (0x400 => ipriorityr: [ReadWrite<u32>; 255]),
        (0x7fc => _reserved1),
        (0x800 => itargetsr: [ReadWrite<u32>; 255]),
        (0xbfc => _reserved2),
        (0xc00 => icfgr: [ReadWrite<u32>; 64]),
        (0xd00 => _reserved3),
        (0xf00 => sgir: WriteOnly<u32>),
        (0xf04 => _reserved4),
        (0xf10 => cpendsgir: [ReadWrite<u32>; 4]),
        (0xf20 => spendsgir: [ReadWrite<u32>; 4]),
        (0xf30 => _reserved5),
        (0x1000 => @END),
    }
}

register_structs! {
    /// GICC (IHI 0048B, table 4-2).
    pub CpuInterfaceRegs {
        (0x0000 => ctlr: ReadWrite<u32, GiccCtlr::Register>),
        (0x0004 => pmr: ReadWrite<u32>),
        (0x0008 => bpr: ReadWrite<u32>),
        (0x000c => iar: ReadOnly<u32>),
        (0x0010 => eoir: WriteOnly<u32>),
        (0x0014 => rpr: ReadOnly<u32>),
        (0x0018 => hppir: ReadOnly<u32>),
        (0x001c => _reserved0),
        (0x00fc => iidr: ReadOnly<u32>),
        (0x0100 => _reserved1),
        (0x1000 => dir: WriteOnly<u32>),
        (0x1004 => @END),
    }
}

register_structs! {
    /// GICH (IHI 0048B, table 5-1).
    pub HypInterfaceRegs {
        (0x000 => hcr: ReadWrite<u32>),
        (0x004 => vtr: ReadOnly<u32>),
        (0x008 => vmcr: ReadWrite<u32>),
        (0x00c => _reserved0),
        (0x010 => misr: ReadOnly<u32>),
        (0x014 => _reserved1),
        (0x020 => eisr: [ReadOnly<u32>; 2]),
        (0x028 => _reserved2),
        (0x030 => elsr: [ReadOnly<u32>; 2]),
        (0x038 => _reserved3),
        (0x0f0 => apr: ReadWrite<u32>),
        (0x0f4 => _reserved4),
        (0x100 => lr: [ReadWrite<u32>; 64]),
        (0x200 => @END),
    }
}

/// GICC_IAR's spurious INTID: nothing to acknowledge.
pub const SPURIOUS: u32 = 1023;
/// Lowest priority the PMR lets through (all 8 bits: every implemented level).
const PMR_ALL: u32 = 0xff;
/// The priority SPIs are given (a middle one, as on the GICv3 host).
const SPI_PRIORITY: u8 = 0xa0;

/// The distributor at a fixed address.
pub struct Distributor {
    regs: *const DistributorRegs,
}

// SAFETY: the registers are shared by all CPUs by design; each access is
// one aligned 32-bit MMIO access, and callers serialise read-modify-writes.
unsafe impl Send for Distributor {}
// SAFETY: as above.
unsafe impl Sync for Distributor {}

impl Distributor {
    /// A driver for the GICD at `base`.
    ///
    /// # Safety
    /// `base` must be a GICv2 distributor mapped as device memory.
    pub const unsafe fn new(base: usize) -> Self {
        Self {
            regs: base as *const DistributorRegs,
        }
    }

    fn regs(&self) -> &DistributorRegs {
        // SAFETY: `new`'s contract makes `regs` a valid register block.
        unsafe { &*self.regs }
    }

    /// SPIs implemented: 32 * (ITLinesNumber + 1) - 32.
    pub fn spis(&self) -> u32 {
        GicdTyperV2(self.regs().typer.get()).spis()
    }

    /// Turns forwarding on (GICD_CTLR.Enable).
    pub fn enable(&self) {
        self.regs().ctlr.set(GicdCtlrV2(0).with_enable(true).0);
    }

    /// Configures and enables SPI `intid`: edge or level, priority 0xa0,
    /// delivered to the CPU interfaces in `targets` (a byte mask).
    pub fn enable_spi(&self, intid: u32, edge: bool, targets: u8) {
        let regs = self.regs();
        let config = IcfgrEdge::of(intid);
        let Some(icfgr) = regs.icfgr.get(config.register) else {
            return;
        };
        icfgr.set(config.apply(icfgr.get(), edge));
        let byte = IntidByte::of(intid);
        if let Some(priority) = regs.ipriorityr.get(byte.register) {
            priority.set(byte.set(priority.get(), SPI_PRIORITY));
        }
        if let Some(target) = regs.itargetsr.get(byte.register) {
            target.set(byte.set(target.get(), targets));
        }
        let bit = IntidBit::of(intid);
        if let Some(enable) = regs.isenabler.get(bit.register) {
            enable.set(bit.mask);
        }
    }

    /// Enables SGI or PPI `intid` (< 32) on the calling CPU
    /// (GICD_ISENABLER0 is banked per CPU interface; SGIs may be
    /// always-enabled, the write is then ignored).
    pub fn enable_private(&self, intid: u32) {
        if intid < 32 {
            self.regs().isenabler[0].set(IntidBit::of(intid).mask);
        }
    }

    /// Disables PPI `intid` (< 32) on the calling CPU (GICD_ICENABLER0).
    pub fn disable_private(&self, intid: u32) {
        if intid < 32 {
            self.regs().icenabler[0].set(IntidBit::of(intid).mask);
        }
    }

    /// Deactivates SGI or PPI `intid` (< 32) on the calling CPU
    /// (GICD_ICACTIVER0, banked).
    pub fn deactivate_private(&self, intid: u32) {
        if intid < 32 {
            self.regs().icactiver[0].set(IntidBit::of(intid).mask);
        }
    }

    /// The calling CPU's CPU interface as a target-list bit: GICD_ITARGETSR0
    /// to 7 are banked and read-only, each byte reading as the accessing
    /// CPU's own mask (IHI 0048B, 4.3.12). 0 on a uniprocessor GIC.
    pub fn own_target_mask(&self) -> u8 {
        IntidByte::of(0).get(self.regs().itargetsr[0].get())
    }

    /// Sends SGI `sgi` to the CPU interfaces in `targets` (GICD_SGIR
    /// TargetListFilter 0b00): the kick that pulls a CPU out of its guest.
    pub fn send_sgi(&self, sgi: u8, targets: u8) {
        self.regs().sgir.set(GicdSgir::to_list(sgi, targets).0);
    }
}

/// This CPU's interface (banked per CPU at the same address).
pub struct CpuInterface {
    regs: *const CpuInterfaceRegs,
}

// SAFETY: GICC is banked per CPU: each CPU that uses the shared handle
// reaches its own interface at the same address, and every access is a
// single volatile 32-bit register access.
unsafe impl Send for CpuInterface {}
// SAFETY: as for Send.
unsafe impl Sync for CpuInterface {}

impl CpuInterface {
    /// A driver for the GICC at `base`.
    ///
    /// # Safety
    /// `base` must be a GICv2 CPU interface (8 KiB: GICC_DIR is at 0x1000)
    /// mapped as device memory.
    pub const unsafe fn new(base: usize) -> Self {
        Self {
            regs: base as *const CpuInterfaceRegs,
        }
    }

    fn regs(&self) -> &CpuInterfaceRegs {
        // SAFETY: `new`'s contract makes `regs` a valid register block.
        unsafe { &*self.regs }
    }

    /// Lets every priority through and signals interrupts, with split
    /// priority drop (EOIR) and deactivation (DIR).
    pub fn enable(&self) {
        self.regs().pmr.set(PMR_ALL);
        self.regs().bpr.set(0);
        self.regs()
            .ctlr
            .modify(GiccCtlr::ENABLE_GRP0::SET + GiccCtlr::EOI_MODE_NS::SET);
    }

    /// Acknowledges the highest pending interrupt: GICC_IAR (an SGI's
    /// source CPU is in CPUID and must go back to EOIR and DIR).
    pub fn acknowledge(&self) -> GiccIar {
        GiccIar(self.regs().iar.get())
    }

    /// Drops the running priority of `iar` (the value [`Self::acknowledge`] gave).
    pub fn end_of_interrupt(&self, iar: GiccIar) {
        self.regs().eoir.set(iar.0);
    }

    /// Deactivates `iar` (the value [`Self::acknowledge`] gave).
    pub fn deactivate(&self, iar: GiccIar) {
        self.regs().dir.set(iar.0);
    }
}

/// The virtual interface control of this CPU (GICH, banked per CPU).
pub struct HypInterface {
    regs: *const HypInterfaceRegs,
}

// SAFETY: GICH (at its common base) is banked per CPU like GICC: each
// CPU reaches its own virtual interface control; accesses are single
// volatile 32-bit register accesses.
unsafe impl Send for HypInterface {}
// SAFETY: as for Send.
unsafe impl Sync for HypInterface {}

impl HypInterface {
    /// A driver for the GICH at `base`.
    ///
    /// # Safety
    /// `base` must be a GICv2 virtual interface control frame mapped as
    /// device memory, used only by this CPU.
    pub const unsafe fn new(base: usize) -> Self {
        Self {
            regs: base as *const HypInterfaceRegs,
        }
    }

    fn regs(&self) -> &HypInterfaceRegs {
        // SAFETY: `new`'s contract makes `regs` a valid register block.
        unsafe { &*self.regs }
    }

    /// GICH_VTR: how many list registers and priority bits.
    pub fn vtr(&self) -> Vtr {
        Vtr(self.regs().vtr.get())
    }

    /// GICH_MISR: why the maintenance interrupt fired.
    pub fn misr(&self) -> u32 {
        self.regs().misr.get()
    }

    /// Programs the list registers and GICH_HCR before entering a vCPU;
    /// registers past the image are cleared.
    pub fn load(&self, image: &LrImageV2) {
        let count = self.vtr().list_registers().min(self.regs().lr.len());
        for (index, lr) in self.regs().lr.iter().take(count).enumerate() {
            lr.set(image.lrs.get(index).map_or(0, |v| v.0));
        }
        self.regs().hcr.set(image.hcr);
    }

    /// A vCPU's fresh virtual interface: every list register empty,
    /// GICH_VMCR and GICH_APR zero (no active priority from a previous
    /// life), GICH_HCR.En set.
    pub fn reset(&self) {
        let count = self.vtr().list_registers().min(self.regs().lr.len());
        for lr in self.regs().lr.iter().take(count) {
            lr.set(0);
        }
        self.regs().vmcr.set(0);
        self.regs().apr.set(0);
        self.regs().hcr.set(crate::vgicv2::hcr::EN);
    }

    /// Reads the list registers back on exit (and disables the virtual
    /// interface until the next [`Self::load`]).
    pub fn save(&self, out: &mut [ListRegisterV2]) {
        self.regs().hcr.set(0);
        for (slot, lr) in out.iter_mut().zip(self.regs().lr.iter()) {
            *slot = ListRegisterV2(lr.get());
        }
    }
}
