//! GICv3 redistributors (GICR): discovery, wake-up, SGI/PPI configuration.

use crate::gic::regs::gicr::{GicrTyper, GicrWaker};
use crate::gic::regs::IntidBit;
use crate::sysreg::MpidrEl1;
use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::register_structs;
use tock_registers::registers::{ReadOnly, ReadWrite};

register_structs! {
    /// RD_base frame (IHI 0069, 12.10).
    pub GicrRdRegs {
        (0x0000 => pub ctlr: ReadWrite<u32>),
        (0x0004 => iidr: ReadOnly<u32>),
        (0x0008 => typer: ReadOnly<u64>),
        (0x0010 => _reserved0),
        (0x0014 => waker: ReadWrite<u32>),
        (0x0018 => _reserved1),
        (0x0070 => pub propbaser: ReadWrite<u64>),
        (0x0078 => pub pendbaser: ReadWrite<u64>),
        (0x0080 => @END),
    }
}

register_structs! {
    /// VLPI_base frame (GICv4): the resident vPE's tables.
    pub GicrVlpiRegs {
        (0x0000 => _reserved0),
        (0x0070 => pub vpropbaser: ReadWrite<u64>),
        (0x0078 => pub vpendbaser: ReadWrite<u64>),
        (0x0080 => @END),
    }
}

register_structs! {
    /// SGI_base frame: SGI and PPI configuration.
    pub GicrSgiRegs {
        (0x0000 => _reserved0),
        (0x0080 => igroupr0: ReadWrite<u32>),
        (0x0084 => _reserved1),
        (0x0100 => isenabler0: ReadWrite<u32>),
        (0x0104 => _reserved2),
        (0x0180 => icenabler0: ReadWrite<u32>),
        (0x0184 => _reserved3a),
        (0x0200 => ispendr0: ReadWrite<u32>),
        (0x0204 => _reserved3b),
        (0x0380 => icactiver0: ReadWrite<u32>),
        (0x0384 => _reserved3),
        (0x0400 => ipriorityr: [ReadWrite<u32>; 8]),
        (0x0420 => _reserved4),
        (0x0d00 => igrpmodr0: ReadWrite<u32>),
        (0x0d04 => @END),
    }
}

/// One redistributor frame: 64 KiB (IHI 0069, 12.10).
const FRAME: usize = 0x1_0000;
/// The RD_base and SGI_base frames of a GICv3 redistributor.
const FRAMES_V3: usize = 2 * FRAME;
/// GICv4 adds VLPI_base and a reserved frame.
const FRAMES_V4: usize = 4 * FRAME;
/// SGI_base follows RD_base.
const SGI_FRAME: usize = FRAME;
/// VLPI_base is the third frame (GICv4).
const VLPI_FRAME: usize = 2 * FRAME;

/// One redistributor: its frames' base address.
pub struct Redistributor {
    base: usize,
}

impl Redistributor {
    /// Finds the redistributor whose GICR_TYPER.Affinity is `mpidr`, walking
    /// a region of frames from `region_base` (`stride` 0: 128 KiB, or
    /// 256 KiB for GICv4 frames with VLPIS, per each frame's TYPER).
    ///
    /// # Safety
    /// `[region_base, region_base + region_size)` must map redistributor frames as device memory.
    pub unsafe fn find(
        region_base: usize,
        region_size: usize,
        stride: usize,
        mpidr: u64,
    ) -> Option<Self> {
        let affinity = MpidrEl1(mpidr).affinity();
        let mut base = region_base;
        while base + FRAMES_V3 <= region_base + region_size {
            let frame = Self { base };
            let typer = frame.typer();
            if typer.mpidr_affinity() == affinity {
                return Some(frame);
            }
            if typer.last() {
                return None;
            }
            base += Self::stride(stride, typer);
        }
        None
    }

    /// Counts the redistributors of a region and whether all support
    /// virtual LPIs (GICv4), by walking frames up to the one marked Last.
    ///
    /// # Safety
    /// As for [`Redistributor::find`].
    pub unsafe fn survey(region_base: usize, region_size: usize, stride: usize) -> (usize, bool) {
        let (mut count, mut vlpis, mut base) = (0, true, region_base);
        while base + FRAMES_V3 <= region_base + region_size {
            let typer = Self { base }.typer();
            count += 1;
            vlpis &= typer.vlpis();
            if typer.last() {
                break;
            }
            base += Self::stride(stride, typer);
        }
        (count, vlpis && count > 0)
    }

    /// The distance to the next redistributor: the firmware's `stride`, or
    /// (0) the frames this one has by its TYPER.VLPIS.
    fn stride(stride: usize, typer: GicrTyper) -> usize {
        if stride != 0 {
            stride
        } else if typer.vlpis() {
            FRAMES_V4
        } else {
            FRAMES_V3
        }
    }

    /// The redistributor whose frames start at `base`.
    ///
    /// # Safety
    /// `base` must be a redistributor found by [`Redistributor::find`].
    pub unsafe fn from_base(base: usize) -> Self {
        Self { base }
    }

    pub(super) fn rd(&self) -> &GicrRdRegs {
        // SAFETY: `find`'s contract: base maps a redistributor's RD frame.
        unsafe { &*(self.base as *const GicrRdRegs) }
    }

    /// The VLPI frame: only on a redistributor with GICR_TYPER.VLPIS.
    pub(super) fn vlpi(&self) -> &GicrVlpiRegs {
        // SAFETY: a GICv4 redistributor's VLPI frame follows its SGI frame
        // (the callers act only on redistributors with VLPIS).
        unsafe { &*((self.base + VLPI_FRAME) as *const GicrVlpiRegs) }
    }

    fn sgi(&self) -> &GicrSgiRegs {
        // SAFETY: the SGI frame follows the RD frame at +64 KiB.
        unsafe { &*((self.base + SGI_FRAME) as *const GicrSgiRegs) }
    }

    /// The frames' base address.
    pub fn base(&self) -> usize {
        self.base
    }

    /// GICR_TYPER.
    pub fn typer(&self) -> GicrTyper {
        GicrTyper(self.rd().typer.get())
    }

    /// Wakes the redistributor (IHI 0069 12.11.43: clear ProcessorSleep,
    /// then wait for ChildrenAsleep to clear), and puts every SGI/PPI in
    /// Group 1, disabled, at a middle priority. `false` if it never woke.
    pub fn init(&self) -> bool {
        let rd = self.rd();
        let waker = || GicrWaker(rd.waker.get());
        rd.waker.set(waker().with_processor_sleep(false).0);
        if !super::wait_for(|| !waker().children_asleep()) {
            return false;
        }
        let sgi = self.sgi();
        sgi.icenabler0.set(u32::MAX);
        sgi.igroupr0.set(u32::MAX);
        sgi.igrpmodr0.set(0);
        for p in &sgi.ipriorityr {
            p.set(0x8080_8080);
        }
        true
    }

    /// Enables SGI or PPI `intid` (0..32) on this redistributor.
    pub fn enable_private(&self, intid: u32) {
        self.sgi().isenabler0.set(IntidBit::of(intid & 31).mask);
    }

    /// Clears the active state of SGI or PPI `intid` (0..32): how another
    /// CPU's private interrupt is deactivated (GICR_ICACTIVER0).
    pub fn deactivate_private(&self, intid: u32) {
        self.sgi().icactiver0.set(IntidBit::of(intid & 31).mask);
    }

    /// Whether SGI or PPI `intid` (0..32) is pending on this redistributor
    /// (GICR_ISPENDR0): for a level-sensitive PPI such as a timer's, its
    /// line, whether the interrupt is enabled or not (IHI 0069, 4.1.2).
    pub fn is_pending_private(&self, intid: u32) -> bool {
        self.sgi().ispendr0.get() & IntidBit::of(intid & 31).mask != 0
    }

    /// Disables SGI or PPI `intid` (0..32) on this redistributor.
    pub fn disable_private(&self, intid: u32) {
        self.sgi().icenabler0.set(IntidBit::of(intid & 31).mask);
    }
}
