//! GIC register *values* as newtypes with named fields (IHI 0069, the
//! register descriptions of the GIC programmers' model). Pure bit manipulation: reading and writing the
//! registers is the drivers' business; these types only give the bits names.
//!
//! Each field has a getter named after the specification's mnemonic and a
//! `with_` setter that masks the value to the field's width, so that a
//! wrong value can never spill into a neighbouring field.

use core::fmt;

/// Declares a register value type with one-bit `flag`s and multi-bit `field`s.
macro_rules! register {
    (
        $(#[$meta:meta])*
        $name:ident($raw:ty) {
            $(flag $(#[$flag_meta:meta])* $flag:ident, $with_flag:ident @ $bit:literal;)*
            $(field $(#[$field_meta:meta])* $field:ident, $with_field:ident @ [$hi:literal : $lo:literal];)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Default)]
        pub struct $name(pub $raw);

        #[allow(dead_code)]
        impl $name {
            /// A mask of the low `width` bits of the raw type.
            const fn low_mask(width: u32) -> $raw {
                <$raw>::MAX >> (<$raw>::BITS - width)
            }
            $(
                $(#[$flag_meta])*
                pub const fn $flag(self) -> bool {
                    self.0 & (1 << $bit) != 0
                }
                #[doc = concat!("A copy with `", stringify!($flag), "` set to `value`.")]
                pub const fn $with_flag(self, value: bool) -> Self {
                    Self((self.0 & !(1 << $bit)) | ((value as $raw) << $bit))
                }
            )*
            $(
                $(#[$field_meta])*
                pub const fn $field(self) -> $raw {
                    (self.0 >> $lo) & Self::low_mask($hi - $lo + 1)
                }
                #[doc = concat!("A copy with `", stringify!($field), "` set to `value` (masked to its width).")]
                pub const fn $with_field(self, value: $raw) -> Self {
                    let mask = Self::low_mask($hi - $lo + 1);
                    Self((self.0 & !(mask << $lo)) | ((value & mask) << $lo))
                }
            )*
        }

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                write!(f, concat!(stringify!($name), "({:#x})"), self.0)
            }
        }
    };
}

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
