//! The MMIO entry point: which frame an IPA belongs to, which widths a
//! register accepts, and RAZ/WI plus a count for everything else (IHI 0069,
//! 12.1.3: reserved offsets are RES0; accesses of unsupported width are
//! UNPREDICTABLE, and RAZ/WI is the choice a guest cannot exploit).

use super::config::{VgicConfig, DIST_SIZE, REDIST_STRIDE, SGI_FRAME};
use super::{Actions, Vgic};
use crate::ids::VcpuIndex;
use crate::mm::Ipa;

/// The frame an IPA falls in, with the offset inside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Frame {
    /// The distributor.
    Dist(u64),
    /// The RD_base frame of a vCPU's redistributor.
    Rd(VcpuIndex, u64),
    /// The SGI_base frame of a vCPU's redistributor.
    Sgi(VcpuIndex, u64),
}

/// Finds the frame of `ipa`: the redistributor a guest address belongs to
/// is the one at `(ipa - redist_base) / 128 KiB`.
pub(super) fn decode_frame(config: &VgicConfig, ipa: Ipa) -> Option<Frame> {
    if let Some(offset) = ipa.raw().checked_sub(config.dist_base.raw()) {
        if offset < DIST_SIZE {
            return Some(Frame::Dist(offset));
        }
    }
    let offset = ipa.raw().checked_sub(config.redist_base.raw())?;
    if offset >= config.redist_size() {
        return None;
    }
    // One RD+SGI frame pair per vCPU: the frame index is the vCPU.
    let index = u16::try_from(offset / REDIST_STRIDE).ok()?;
    let vcpu = VcpuIndex::new_below(index, usize::from(config.num_vcpus))?;
    let inner = offset % REDIST_STRIDE;
    Some(if inner < SGI_FRAME {
        Frame::Rd(vcpu, inner)
    } else {
        Frame::Sgi(vcpu, inner - SGI_FRAME)
    })
}

/// One access, as a register handler sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Access {
    /// Offset inside the frame.
    pub offset: u64,
    /// Size in bytes.
    pub size: u8,
}

/// Why a register handler refused an access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Fault {
    /// The register does not support this width or alignment.
    BadWidth,
    /// Nothing is implemented at this offset.
    Reserved,
}

/// Which part of a 64-bit register an access reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Part {
    Whole,
    Low,
    High,
}

impl Access {
    /// An aligned 32-bit access (what most GIC registers accept).
    pub fn word(self) -> Result<(), Fault> {
        if self.size == 4 && self.offset.is_multiple_of(4) {
            Ok(())
        } else {
            Err(Fault::BadWidth)
        }
    }

    /// An aligned 8- or 32-bit access (IPRIORITYR, IHI 0069, 12.9.17:
    /// byte-accessible).
    pub fn byte_or_word(self) -> Result<(), Fault> {
        match self.size {
            1 => Ok(()),
            4 if self.offset.is_multiple_of(4) => Ok(()),
            _ => Err(Fault::BadWidth),
        }
    }

    /// The part of the 64-bit register at `base` this access reaches: the
    /// whole register, or either 32-bit half (IHI 0069, 12.1.3: 64-bit
    /// registers also accept 32-bit accesses to each half).
    pub fn part64(self, base: u64) -> Result<Part, Fault> {
        match (self.offset.checked_sub(base), self.size) {
            (Some(0), 8) => Ok(Part::Whole),
            (Some(0), 4) => Ok(Part::Low),
            (Some(4), 4) => Ok(Part::High),
            _ => Err(Fault::BadWidth),
        }
    }
}

impl Part {
    /// What a read of this part of `reg` returns.
    pub fn read(self, reg: u64) -> u64 {
        match self {
            Self::Whole => reg,
            Self::Low => reg & 0xffff_ffff,
            Self::High => reg >> 32,
        }
    }

    /// `reg` with this part replaced by `value`.
    pub fn merge(self, reg: u64, value: u64) -> u64 {
        match self {
            Self::Whole => value,
            Self::Low => (reg & !0xffff_ffff) | (value & 0xffff_ffff),
            Self::High => (reg & 0xffff_ffff) | (value << 32),
        }
    }
}

/// Whether `size` is an access size and `ipa` a multiple of it (frames
/// are 64 KiB aligned, so this is alignment within the register too).
fn naturally_aligned(ipa: Ipa, size: u8) -> bool {
    matches!(size, 1 | 2 | 4 | 8) && ipa.raw().is_multiple_of(u64::from(size))
}

impl Vgic {
    /// Emulates a guest read of `size` bytes at `ipa` by `vcpu`; returns
    /// the value for the guest register (zero-extended; the kernel narrows
    /// and extends it as the syndrome says). Never fails: invalid accesses
    /// read as zero and are counted.
    pub fn mmio_read(&mut self, vcpu: VcpuIndex, ipa: Ipa, size: u8) -> u64 {
        if !naturally_aligned(ipa, size) {
            self.count(Fault::BadWidth, vcpu, ipa, size, false);
            return 0;
        }
        let result = match decode_frame(&self.config, ipa) {
            Some(Frame::Dist(offset)) => self.dist_read(Access { offset, size }),
            Some(Frame::Rd(owner, offset)) => self.rd_read(owner, Access { offset, size }),
            Some(Frame::Sgi(owner, offset)) => self.sgi_read(owner, Access { offset, size }),
            None => {
                self.counters.outside = self.counters.outside.saturating_add(1);
                self.fault(vcpu, ipa, size, false);
                return 0;
            }
        };
        match result {
            Ok(value) => value,
            Err(fault) => {
                self.count(fault, vcpu, ipa, size, false);
                0
            }
        }
    }

    /// Emulates a guest write of `value` (`size` bytes) at `ipa` by `vcpu`,
    /// and says what the kernel must do. Invalid writes are ignored and counted.
    pub fn mmio_write(&mut self, vcpu: VcpuIndex, ipa: Ipa, size: u8, value: u64) -> Actions {
        let mut actions = Actions::new();
        if !naturally_aligned(ipa, size) {
            self.count(Fault::BadWidth, vcpu, ipa, size, true);
            return actions;
        }
        let result = match decode_frame(&self.config, ipa) {
            Some(Frame::Dist(offset)) => {
                self.dist_write(vcpu, Access { offset, size }, value, &mut actions)
            }
            Some(Frame::Rd(owner, offset)) => {
                self.rd_write(owner, Access { offset, size }, value, &mut actions)
            }
            Some(Frame::Sgi(owner, offset)) => {
                self.sgi_write(owner, Access { offset, size }, value, &mut actions)
            }
            None => {
                self.counters.outside = self.counters.outside.saturating_add(1);
                self.fault(vcpu, ipa, size, true);
                return actions;
            }
        };
        if let Err(fault) = result {
            self.count(fault, vcpu, ipa, size, true);
        }
        actions
    }

    fn count(&mut self, fault: Fault, vcpu: VcpuIndex, ipa: Ipa, size: u8, write: bool) {
        let counter = match fault {
            Fault::BadWidth => &mut self.counters.bad_width,
            Fault::Reserved => &mut self.counters.reserved,
        };
        *counter = counter.saturating_add(1);
        self.fault(vcpu, ipa, size, write);
    }
}
