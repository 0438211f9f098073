//! The `register!` macro: register *value* types with the specification's
//! field names, shared by the GIC (`gic::regs`) and SMMU (`smmu::regs`)
//! definitions. Each field gets a getter named after its mnemonic and a
//! `with_` setter that masks the value to the field's width, so that a
//! wrong value can never spill into a neighbouring field.
#![forbid(unsafe_code)]

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

        impl From<$raw> for $name {
            fn from(raw: $raw) -> Self {
                Self(raw)
            }
        }

        impl From<$name> for $raw {
            fn from(value: $name) -> $raw {
                value.0
            }
        }

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                write!(f, concat!(stringify!($name), "({:#x})"), self.0)
            }
        }
    };
}
