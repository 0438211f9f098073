//! GIC register *values* as newtypes with named fields (IHI 0069, the
//! register descriptions of the GIC programmers' model). Pure bit manipulation: reading and writing the
//! registers is the drivers' business; these types only give the bits names.
//! The types are declared with the crate's `register!` macro
//! (`crate::register`), which the SMMU's definitions share.

use core::fmt;

pub mod gicd;
pub mod gicr;
pub mod its;

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
