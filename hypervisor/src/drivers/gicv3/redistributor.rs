//! GICv3 redistributors (GICR): discovery, wake-up, SGI/PPI configuration.

use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::register_structs;
use tock_registers::registers::{ReadOnly, ReadWrite};

register_structs! {
    /// RD_base frame (IHI 0069, 12.10).
    pub GicrRdRegs {
        (0x0000 => ctlr: ReadWrite<u32>),
        (0x0004 => iidr: ReadOnly<u32>),
        (0x0008 => typer: ReadOnly<u64>),
        (0x0010 => _reserved0),
        (0x0014 => waker: ReadWrite<u32>),
        (0x0018 => _reserved1),
        (0x0070 => propbaser: ReadWrite<u64>),
        (0x0078 => pendbaser: ReadWrite<u64>),
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

/// GICR_TYPER.VLPIS: the redistributor supports virtual LPIs (GICv4).
pub const TYPER_VLPIS: u64 = 1 << 1;
/// GICR_TYPER.Last: the last redistributor of its region.
pub const TYPER_LAST: u64 = 1 << 4;
/// GICR_WAKER.ProcessorSleep.
const WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
/// GICR_WAKER.ChildrenAsleep.
const WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;

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
        let affinity = ((mpidr >> 32) & 0xff) << 24 | (mpidr & 0xff_ffff);
        let mut base = region_base;
        while base + 0x20000 <= region_base + region_size {
            let frame = Self { base };
            let typer = frame.rd().typer.get();
            if typer >> 32 == affinity {
                return Some(frame);
            }
            if typer & TYPER_LAST != 0 {
                return None;
            }
            base += if stride != 0 {
                stride
            } else if typer & TYPER_VLPIS != 0 {
                0x40000
            } else {
                0x20000
            };
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
        while base + 0x20000 <= region_base + region_size {
            let typer = Self { base }.rd().typer.get();
            count += 1;
            vlpis &= typer & TYPER_VLPIS != 0;
            if typer & TYPER_LAST != 0 {
                break;
            }
            base += if stride != 0 {
                stride
            } else if typer & TYPER_VLPIS != 0 {
                0x40000
            } else {
                0x20000
            };
        }
        (count, vlpis && count > 0)
    }

    /// The redistributor whose frames start at `base`.
    ///
    /// # Safety
    /// `base` must be a redistributor found by [`Redistributor::find`].
    pub unsafe fn from_base(base: usize) -> Self {
        Self { base }
    }

    fn rd(&self) -> &GicrRdRegs {
        // SAFETY: `find`'s contract: base maps a redistributor's RD frame.
        unsafe { &*(self.base as *const GicrRdRegs) }
    }

    fn sgi(&self) -> &GicrSgiRegs {
        // SAFETY: the SGI frame follows the RD frame at +64 KiB.
        unsafe { &*((self.base + 0x10000) as *const GicrSgiRegs) }
    }

    /// The frames' base address.
    pub fn base(&self) -> usize {
        self.base
    }

    /// GICR_TYPER.
    pub fn typer(&self) -> u64 {
        self.rd().typer.get()
    }

    /// Wakes the redistributor (IHI 0069 12.11.43: clear ProcessorSleep,
    /// then wait for ChildrenAsleep to clear), and puts every SGI/PPI in
    /// Group 1, disabled, at a middle priority. `false` if it never woke.
    pub fn init(&self) -> bool {
        let rd = self.rd();
        rd.waker.set(rd.waker.get() & !WAKER_PROCESSOR_SLEEP);
        if !super::wait_for(|| rd.waker.get() & WAKER_CHILDREN_ASLEEP == 0) {
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
        self.sgi().isenabler0.set(1 << (intid & 31));
    }

    /// Clears the active state of SGI or PPI `intid` (0..32): how another
    /// CPU's private interrupt is deactivated (GICR_ICACTIVER0).
    pub fn deactivate_private(&self, intid: u32) {
        self.sgi().icactiver0.set(1 << (intid & 31));
    }

    /// Whether SGI or PPI `intid` (0..32) is pending on this redistributor
    /// (GICR_ISPENDR0): for a level-sensitive PPI such as a timer's, its
    /// line, whether the interrupt is enabled or not (IHI 0069, 4.1.2).
    pub fn is_pending_private(&self, intid: u32) -> bool {
        self.sgi().ispendr0.get() & (1 << (intid & 31)) != 0
    }

    /// Disables SGI or PPI `intid` (0..32) on this redistributor.
    pub fn disable_private(&self, intid: u32) {
        self.sgi().icenabler0.set(1 << (intid & 31));
    }
}
