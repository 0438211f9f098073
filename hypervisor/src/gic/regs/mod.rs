//! GIC register *values* as newtypes with named fields (IHI 0069, the
//! register descriptions of the GIC programmers' model). Pure bit manipulation: reading and writing the
//! registers is the drivers' business; these types only give the bits names.
//! The types are declared with the crate's `register!` macro
//! (`crate::register`), which the SMMU's definitions share.

use core::fmt;

pub mod gicd;
pub mod gicr;
pub mod its;
pub mod v2;

/// Where an interrupt's bit sits in a register array with one bit per
/// INTID (GICD_IGROUPR<n>, ISENABLER, ICENABLER, ISPENDR, ICACTIVER, and
/// the redistributor's SGI-frame copies; IHI 0069 12.9, IHI 0048B 4.3):
/// register `INTID / 32`, bit `INTID % 32`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IntidBit {
    /// Which register of the array.
    pub register: usize,
    /// The INTID's bit in it.
    pub mask: u32,
}

impl IntidBit {
    /// The bit of `intid`.
    pub const fn of(intid: u32) -> Self {
        Self {
            register: (intid / 32) as usize,
            mask: 1 << (intid % 32),
        }
    }
}

/// An interrupt's Int_config[1] bit in GICD_ICFGR<n> (two bits per INTID;
/// the upper one set means edge-triggered): register `INTID / 16`, bit
/// `2 * (INTID % 16) + 1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IcfgrEdge {
    /// Which GICD_ICFGR<n>.
    pub register: usize,
    /// The Int_config[1] bit in it.
    pub mask: u32,
}

impl IcfgrEdge {
    /// The edge bit of `intid`.
    pub const fn of(intid: u32) -> Self {
        Self {
            register: (intid / 16) as usize,
            mask: 1 << ((intid % 16) * 2 + 1),
        }
    }

    /// `word` with the INTID configured edge-triggered (`true`) or level.
    pub const fn apply(self, word: u32, edge: bool) -> u32 {
        if edge {
            word | self.mask
        } else {
            word & !self.mask
        }
    }
}

/// An interrupt's byte in a register array with one byte per INTID
/// (GICD_IPRIORITYR<n>, GICD_ITARGETSR<n>): register `INTID / 4`, byte
/// `INTID % 4`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IntidByte {
    /// Which register of the array.
    pub register: usize,
    /// Bit position of the byte.
    shift: u32,
}

impl IntidByte {
    /// The byte of `intid`.
    pub const fn of(intid: u32) -> Self {
        Self {
            register: (intid / 4) as usize,
            shift: (intid % 4) * 8,
        }
    }

    /// The INTID's byte of `word`.
    pub const fn get(self, word: u32) -> u8 {
        (word >> self.shift) as u8
    }

    /// `word` with the INTID's byte replaced by `value`.
    pub const fn set(self, word: u32, value: u8) -> u32 {
        (word & !(0xff << self.shift)) | ((value as u32) << self.shift)
    }
}

/// Memory attributes of a GIC table access, the InnerCache/OuterCache
/// encoding shared by GITS_BASER, GITS_CBASER and GICR_*BASER (IHI 0069,
/// GITS_BASER<n>.InnerCache). For OuterCache, 0 means "same as inner".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Cacheability {
    /// Device-nGnRnE (inner), or the inner attributes (outer).
    DeviceOrSameAsInner = 0,
    /// Normal, non-cacheable.
    NonCacheable = 1,
    /// Normal, read-allocate, write-through.
    ReadAllocWriteThrough = 2,
    /// Normal, read-allocate, write-back.
    ReadAllocWriteBack = 3,
    /// Normal, write-allocate, write-through.
    WriteAllocWriteThrough = 4,
    /// Normal, write-allocate, write-back.
    WriteAllocWriteBack = 5,
    /// Normal, read- and write-allocate, write-through.
    ReadWriteAllocWriteThrough = 6,
    /// Normal, read- and write-allocate, write-back (what Linux uses).
    ReadWriteAllocWriteBack = 7,
}

impl Cacheability {
    /// The field encoding.
    pub const fn bits(self) -> u64 {
        self as u64
    }
}

/// Shareability of a GIC table access (IHI 0069, GITS_BASER<n>.Shareability).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Shareability {
    /// Non-shareable.
    NonShareable = 0,
    /// Inner shareable.
    InnerShareable = 1,
    /// Outer shareable.
    OuterShareable = 2,
}

impl Shareability {
    /// The field encoding.
    pub const fn bits(self) -> u64 {
        self as u64
    }
}

/// A mask of bits `[hi:lo]` of a 64-bit register.
pub(crate) const fn bits64(hi: u32, lo: u32) -> u64 {
    (u64::MAX >> (63 - (hi - lo))) << lo
}

/// Writes " NAME" when `set`, for the banners.
fn flag(f: &mut fmt::Formatter<'_>, set: bool, name: &str) -> fmt::Result {
    if set {
        write!(f, " {name}")
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod layout_tests {
    use super::*;

    #[test]
    fn bit_per_intid_registers() {
        assert_eq!(
            IntidBit::of(0),
            IntidBit {
                register: 0,
                mask: 1
            }
        );
        assert_eq!(
            IntidBit::of(31),
            IntidBit {
                register: 0,
                mask: 1 << 31
            }
        );
        assert_eq!(
            IntidBit::of(32),
            IntidBit {
                register: 1,
                mask: 1
            }
        );
        assert_eq!(
            IntidBit::of(1019),
            IntidBit {
                register: 31,
                mask: 1 << 27
            }
        );
    }

    #[test]
    fn icfgr_edge_is_the_upper_bit_of_each_pair() {
        assert_eq!(
            IcfgrEdge::of(0),
            IcfgrEdge {
                register: 0,
                mask: 0b10
            }
        );
        assert_eq!(
            IcfgrEdge::of(15),
            IcfgrEdge {
                register: 0,
                mask: 1 << 31
            }
        );
        assert_eq!(
            IcfgrEdge::of(33),
            IcfgrEdge {
                register: 2,
                mask: 0b1000
            }
        );
        let edge = IcfgrEdge::of(33);
        assert_eq!(edge.apply(0x5555_5555, true), 0x5555_555d);
        assert_eq!(edge.apply(u32::MAX, false), !0b1000);
    }

    #[test]
    fn byte_per_intid_registers() {
        let b = IntidByte::of(42);
        assert_eq!(b.register, 10);
        assert_eq!(b.set(0x1122_3344, 0xa0), 0x11a0_3344);
        assert_eq!(b.get(0x11a0_3344), 0xa0);
        assert_eq!(IntidByte::of(3).set(0, 0xff), 0xff00_0000);
        assert_eq!(IntidByte::of(4).get(0xff00_00ab), 0xab);
    }
}
