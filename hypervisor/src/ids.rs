//! Typed identifiers of the interrupt architecture.
//!
//! Each ID exists in a virtual flavour (what a guest names) and a physical
//! flavour (what the hardware sees). They are different types so that a
//! physical ID cannot be handed to a guest, or a guest ID to the hardware,
//! without an explicit translation step.

use core::fmt;

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident($inner:ty)) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(pub $inner);

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({:#x})"), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:#x}", self.0)
            }
        }
    };
}

typed_id!(
    /// A DeviceID as a guest names it in its virtual ITS.
    VirtDeviceId(u32)
);
typed_id!(
    /// A DeviceID as the physical ITS sees it (the PCI requester ID on QEMU virt).
    PhysDeviceId(u32)
);
typed_id!(
    /// An EventID (the same number on both sides: the device writes it).
    EventId(u32)
);
typed_id!(
    /// An interrupt ID (SGI/PPI/SPI/LPI) as a guest sees it.
    VirtIntId(u32)
);
typed_id!(
    /// An interrupt ID on the physical GIC.
    PhysIntId(u32)
);
typed_id!(
    /// A collection ID in a guest's virtual ITS.
    VirtCollectionId(u16)
);
typed_id!(
    /// A collection ID on the physical ITS.
    PhysCollectionId(u16)
);
typed_id!(
    /// A GICv4 vPE ID on the physical ITS.
    VpeId(u16)
);
typed_id!(
    /// Index of a vCPU inside its partition (0-based).
    VcpuIndex(u16)
);
typed_id!(
    /// Index of a physical CPU in the platform's CPU list (0-based).
    CpuIndex(u16)
);
typed_id!(
    /// Index of a partition in the manifest (0-based).
    PartitionId(u16)
);

/// The first LPI INTID (IHI 0069, 1.2: LPIs start at 8192).
pub const FIRST_LPI: u32 = 8192;
