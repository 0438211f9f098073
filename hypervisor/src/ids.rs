//! Typed identifiers of the interrupt architecture and the platform.
//!
//! Each interrupt-architecture ID exists in a virtual flavour (what a guest
//! names) and a physical flavour (what the hardware sees). They are different
//! types so that a physical ID cannot be handed to a guest, or a guest ID to
//! the hardware, without an explicit translation step.
//!
//! Every type keeps its value private. A value is made by a constructor that
//! states the range it accepts:
//! - `new(raw)` returns `Option<Self>` where the architecture makes part of
//!   the raw type invalid (INTIDs, CPU indexes), and is infallible where every
//!   raw value is a valid ID (DeviceIDs, EventIDs, collection IDs, vPE IDs,
//!   vCPU and partition indexes: their bound is a property of one ITS or one
//!   partition, checked with `new_within_bits` / `new_below`);
//! - `from_const(raw)` is the `const fn` for compile-time constants: used in a
//!   `const` item or a `const { }` block, a value outside the range fails the
//!   build;
//! - `get()` returns the raw value.
//!
//! Guest-supplied values go through these constructors where the trap, MMIO
//! access or ITS command is decoded, so a bad value is rejected there.
#![forbid(unsafe_code)]

use core::fmt;

/// The first LPI INTID (IHI 0069, 1.2: LPIs start at 8192).
pub const FIRST_LPI: u32 = 8192;
/// One past the last SPI INTID (IHI 0069, 2.2: 1020-1023 are special).
pub const SPI_END: u32 = 1020;

/// A raw value outside the range of an ID type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdOutOfRange {
    /// The ID type (`"VirtIntId"`, `"CpuIndex"`, ...).
    pub what: &'static str,
    /// The rejected raw value.
    pub raw: u64,
}

impl fmt::Display for IdOutOfRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:#x} out of range", self.what, self.raw)
    }
}

/// Whether `raw` fits in `bits` bits (`bits` >= 64: always).
const fn fits_bits(raw: u64, bits: u8) -> bool {
    bits >= 64 || raw >> bits == 0
}

/// The formatting and `get` every ID type shares.
macro_rules! id_common {
    ($name:ident($inner:ty)) => {
        impl $name {
            /// The raw value.
            pub const fn get(self) -> $inner {
                self.0
            }

            /// The raw value as a table index.
            pub const fn index(self) -> usize {
                self.0 as usize
            }

            /// `Ok(id)` if `raw` is in range, else an [`IdOutOfRange`] naming the type.
            pub fn try_new(raw: $inner) -> Result<Self, IdOutOfRange> {
                Self::new_checked(raw).ok_or(IdOutOfRange {
                    what: stringify!($name),
                    raw: raw as u64,
                })
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({:#x})"), self.0)
            }
        }
    };
}

/// Hexadecimal display, as the GIC documents name these IDs.
macro_rules! hex_display {
    ($name:ident) => {
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:#x}", self.0)
            }
        }
    };
}

/// An ID whose whole raw type is its architectural range; a tighter bound
/// (the ITS's ID bits, a partition's vCPU count) is checked where it is known.
macro_rules! full_range_id {
    ($(#[$doc:meta])* $name:ident($inner:ty)) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name($inner);

        impl $name {
            #[doc = concat!("The ID `raw`: every `", stringify!($inner), "` is one.")]
            pub const fn new(raw: $inner) -> Self {
                Self(raw)
            }

            /// Same as [`Self::new`], for compile-time constants.
            pub const fn from_const(raw: $inner) -> Self {
                Self(raw)
            }

            /// The ID `raw` if it fits in `bits` bits (an ITS's ID width).
            pub const fn new_within_bits(raw: $inner, bits: u8) -> Option<Self> {
                if fits_bits(raw as u64, bits) {
                    Some(Self(raw))
                } else {
                    None
                }
            }

            /// The ID `raw` if it is below `count` (a table's size).
            pub const fn new_below(raw: $inner, count: usize) -> Option<Self> {
                if (raw as u64) < count as u64 {
                    Some(Self(raw))
                } else {
                    None
                }
            }

            /// The ID at index `index`, if it fits in the raw type.
            pub const fn from_index(index: usize) -> Option<Self> {
                if index as u64 <= <$inner>::MAX as u64 {
                    Some(Self(index as $inner))
                } else {
                    None
                }
            }

            const fn new_checked(raw: $inner) -> Option<Self> {
                Some(Self(raw))
            }
        }

        id_common!($name($inner));
        hex_display!($name);
    };
}

/// What an INTID names (IHI 0069, 2.2, Table 2-1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntIdKind {
    /// Software-generated interrupt, INTIDs 0-15.
    Sgi,
    /// Private peripheral interrupt, INTIDs 16-31.
    Ppi,
    /// Shared peripheral interrupt, INTIDs 32-1019.
    Spi,
    /// Locality-specific peripheral interrupt, INTIDs 8192 and up.
    Lpi,
}

/// An INTID type: SGI 0-15, PPI 16-31, SPI 32-1019 or LPI >= 8192. The
/// special INTIDs 1020-1023 and the reserved and extended ranges 1024-8191
/// (the GIC model implements no extended PPIs or SPIs) are not INTIDs here.
macro_rules! intid {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(u32);

        impl $name {
            /// The INTID `raw` if it is an SGI, PPI, SPI (0-1019) or LPI (>= 8192).
            pub const fn new(raw: u32) -> Option<Self> {
                if raw < SPI_END || raw >= FIRST_LPI {
                    Some(Self(raw))
                } else {
                    None
                }
            }

            /// The LPI `raw` if it is >= 8192 and fits in `id_bits` bits
            /// (GICD_TYPER.IDbits + 1, or a vPE's VPT size).
            pub const fn new_lpi(raw: u32, id_bits: u8) -> Option<Self> {
                if raw >= FIRST_LPI && fits_bits(raw as u64, id_bits) {
                    Some(Self(raw))
                } else {
                    None
                }
            }

            /// The SPI `raw` (32-1019).
            pub const fn new_spi(raw: u32) -> Option<Self> {
                if raw >= 32 && raw < SPI_END {
                    Some(Self(raw))
                } else {
                    None
                }
            }

            /// The INTID `raw` for a compile-time constant: in a `const`
            /// item or `const { }` block, a value outside the INTID ranges
            /// fails the build.
            pub const fn from_const(raw: u32) -> Self {
                match Self::new(raw) {
                    Some(id) => id,
                    None => panic!(concat!("not a valid ", stringify!($name))),
                }
            }

            /// Which range the INTID is in.
            pub const fn kind(self) -> IntIdKind {
                match self.0 {
                    0..16 => IntIdKind::Sgi,
                    16..32 => IntIdKind::Ppi,
                    32..SPI_END => IntIdKind::Spi,
                    _ => IntIdKind::Lpi,
                }
            }

            /// Whether the INTID is an LPI (>= 8192).
            pub const fn is_lpi(self) -> bool {
                self.0 >= FIRST_LPI
            }

            /// Whether the INTID is private to a CPU (SGI or PPI, < 32).
            pub const fn is_private(self) -> bool {
                self.0 < 32
            }

            const fn new_checked(raw: u32) -> Option<Self> {
                Self::new(raw)
            }
        }

        id_common!($name(u32));
        hex_display!($name);
    };
}

full_range_id!(
    /// A DeviceID as a guest names it in its virtual ITS (bounded by the
    /// vITS's GITS_TYPER.Devbits: [`Self::new_within_bits`]).
    VirtDeviceId(u32)
);
full_range_id!(
    /// A DeviceID as the physical ITS sees it (the PCI requester ID on QEMU virt).
    PhysDeviceId(u32)
);
full_range_id!(
    /// An EventID (the same number on both sides: the device writes it),
    /// bounded by the device's ITT size where that is known.
    EventId(u32)
);
intid!(
    /// An interrupt ID (SGI/PPI/SPI/LPI) as a guest sees it.
    VirtIntId
);
intid!(
    /// An interrupt ID on the physical GIC.
    PhysIntId
);
full_range_id!(
    /// A collection ID in a guest's virtual ITS (16 bits: GITS_TYPER.CIDbits <= 15).
    VirtCollectionId(u16)
);
full_range_id!(
    /// A collection ID on the physical ITS.
    PhysCollectionId(u16)
);
full_range_id!(
    /// A GICv4 vPE ID on the physical ITS (16 bits, IHI 0069, 5.3).
    VpeId(u16)
);
full_range_id!(
    /// Index of a vCPU inside its partition (0-based); [`Self::new_below`]
    /// bounds it by the partition's vCPU count.
    VcpuIndex(u16)
);
full_range_id!(
    /// Index of a partition in the manifest (0-based).
    PartitionId(u16)
);

/// The affinity fields of an MPIDR-layout value (Aff3 at [39:32], Aff2..Aff0
/// at [23:0]), as GICD_IROUTER and PSCI's `target_cpu` carry them.
const AFFINITY_FIELDS: u64 = 0xff_00ff_ffff;

impl VcpuIndex {
    /// The vCPU a guest names by affinity (a PSCI `target_cpu`, a
    /// GICD_IROUTER value): vCPU `i` has Aff1.Aff0 = `i` and Aff3 = Aff2 = 0
    /// (`sysreg::guest::vmpidr`). Bits outside the affinity fields are not
    /// looked at. `None` unless the vCPU exists: the index must be below
    /// `count`, the partition's vCPU count.
    pub const fn from_affinity(affinity: u64, count: usize) -> Option<Self> {
        let index = affinity & AFFINITY_FIELDS;
        if index < count as u64 && index <= u16::MAX as u64 {
            Some(Self(index as u16))
        } else {
            None
        }
    }
}

impl PhysIntId {
    /// The INTID an interrupt acknowledge returned (ICC_IAR1_EL1.INTID,
    /// GICC_IAR.InterruptID): `None` for the special INTIDs 1020-1023
    /// (1023: nothing pending) and the reserved range, which name no
    /// interrupt to end or deactivate.
    pub const fn from_acknowledge(raw: u32) -> Option<Self> {
        Self::new(raw)
    }
}

/// Index of a physical CPU in the platform's CPU list (0-based), below
/// [`CpuIndex::COUNT`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct CpuIndex(u16);

impl CpuIndex {
    /// The first CPU of the platform's list (the one global ITS commands
    /// such as SYNC name).
    pub const FIRST: Self = Self(0);

    /// The most physical CPUs the hypervisor drives (per-CPU stacks and
    /// blocks are compiled in for this many).
    pub const COUNT: usize = 64;

    /// The CPU index `raw` if it is below [`Self::COUNT`].
    pub const fn new(raw: u16) -> Option<Self> {
        if (raw as usize) < Self::COUNT {
            Some(Self(raw))
        } else {
            None
        }
    }

    /// The CPU at position `index` of the platform's list, if below [`Self::COUNT`].
    pub const fn from_index(index: usize) -> Option<Self> {
        if index < Self::COUNT {
            Some(Self(index as u16))
        } else {
            None
        }
    }

    /// The CPU index `raw` for a compile-time constant (a bad value fails
    /// the build in a `const` context).
    pub const fn from_const(raw: u16) -> Self {
        match Self::new(raw) {
            Some(id) => id,
            None => panic!("CpuIndex out of range"),
        }
    }

    /// Every CPU index, 0 to [`Self::COUNT`] - 1.
    pub fn all() -> impl Iterator<Item = Self> {
        (0..Self::COUNT as u16).map(Self)
    }

    const fn new_checked(raw: u16) -> Option<Self> {
        Self::new(raw)
    }
}

id_common!(CpuIndex(u16));

/// Decimal display, as the boot log numbers CPUs.
impl fmt::Display for CpuIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn intid_in_range(raw: u32) -> bool {
        !(1020..8192).contains(&raw)
    }

    #[test]
    fn intid_ranges_follow_the_gic_architecture() {
        for (raw, kind) in [
            (0, IntIdKind::Sgi),
            (15, IntIdKind::Sgi),
            (16, IntIdKind::Ppi),
            (31, IntIdKind::Ppi),
            (32, IntIdKind::Spi),
            (1019, IntIdKind::Spi),
            (8192, IntIdKind::Lpi),
            (u32::MAX, IntIdKind::Lpi),
        ] {
            assert_eq!(VirtIntId::new(raw).map(VirtIntId::kind), Some(kind));
            assert_eq!(PhysIntId::new(raw).map(PhysIntId::kind), Some(kind));
        }
        for raw in [1020, 1023, 1024, 4096, 8191] {
            assert_eq!(VirtIntId::new(raw), None, "{raw}");
            assert_eq!(PhysIntId::new(raw), None, "{raw}");
        }
    }

    #[test]
    fn lpi_is_bounded_by_the_id_bits() {
        assert_eq!(VirtIntId::new_lpi(8191, 16), None);
        assert_eq!(VirtIntId::new_lpi(8192, 16).map(VirtIntId::get), Some(8192));
        assert_eq!(
            VirtIntId::new_lpi(65535, 16).map(VirtIntId::get),
            Some(65535)
        );
        assert_eq!(VirtIntId::new_lpi(65536, 16), None);
        assert_eq!(
            PhysIntId::new_lpi(u32::MAX, 32).map(PhysIntId::get),
            Some(u32::MAX)
        );
        // 13 ID bits hold no LPI at all.
        assert_eq!(PhysIntId::new_lpi(8192, 13), None);
    }

    #[test]
    fn spi_constructor_takes_32_to_1019() {
        assert_eq!(VirtIntId::new_spi(31), None);
        assert_eq!(VirtIntId::new_spi(32).map(VirtIntId::get), Some(32));
        assert_eq!(VirtIntId::new_spi(1019).map(VirtIntId::get), Some(1019));
        assert_eq!(VirtIntId::new_spi(1020), None);
        assert_eq!(VirtIntId::new_spi(8192), None);
    }

    #[test]
    fn const_constructors_build_valid_constants() {
        const TIMER: VirtIntId = VirtIntId::from_const(27);
        const CPU: CpuIndex = CpuIndex::from_const(63);
        assert_eq!(TIMER.kind(), IntIdKind::Ppi);
        assert_eq!(CPU.get(), 63);
    }

    #[test]
    #[should_panic(expected = "not a valid VirtIntId")]
    fn const_constructor_refuses_a_special_intid() {
        // At run time the same check panics; in a const item it fails the build.
        let _ = VirtIntId::from_const(core::hint::black_box(1023));
    }

    #[test]
    fn cpu_index_is_below_max_cpus() {
        assert_eq!(CpuIndex::new(0).map(CpuIndex::get), Some(0));
        assert_eq!(CpuIndex::new(63).map(CpuIndex::get), Some(63));
        assert_eq!(CpuIndex::new(64), None);
        assert_eq!(CpuIndex::from_index(64), None);
        assert_eq!(CpuIndex::all().count(), CpuIndex::COUNT);
        assert_eq!(
            CpuIndex::try_new(64),
            Err(IdOutOfRange {
                what: "CpuIndex",
                raw: 64
            })
        );
    }

    #[test]
    fn device_and_event_ids_are_bounded_by_the_its_id_bits() {
        assert_eq!(
            VirtDeviceId::new_within_bits(0xffff, 16),
            Some(VirtDeviceId::new(0xffff))
        );
        assert_eq!(VirtDeviceId::new_within_bits(0x1_0000, 16), None);
        assert_eq!(
            EventId::new_within_bits(u32::MAX, 32),
            Some(EventId::new(u32::MAX))
        );
        assert_eq!(EventId::new_within_bits(2, 1), None);
        assert_eq!(
            PhysDeviceId::new_within_bits(1, 1),
            Some(PhysDeviceId::new(1))
        );
        assert_eq!(VirtCollectionId::new_within_bits(0x100, 8), None);
    }

    #[test]
    fn vcpu_index_is_bounded_by_the_partitions_count() {
        assert_eq!(VcpuIndex::new_below(3, 4), Some(VcpuIndex::new(3)));
        assert_eq!(VcpuIndex::new_below(4, 4), None);
        assert_eq!(VcpuIndex::new_below(0, 0), None);
        assert_eq!(VcpuIndex::from_index(65535), Some(VcpuIndex::new(u16::MAX)));
        assert_eq!(VcpuIndex::from_index(65536), None);
    }

    #[test]
    fn vcpu_from_affinity_takes_aff1_aff0_below_the_count() {
        assert_eq!(VcpuIndex::from_affinity(0, 1), Some(VcpuIndex::new(0)));
        assert_eq!(VcpuIndex::from_affinity(3, 4), Some(VcpuIndex::new(3)));
        assert_eq!(VcpuIndex::from_affinity(4, 4), None);
        assert_eq!(VcpuIndex::from_affinity(0, 0), None);
        // Aff1.Aff0 = 0x0102 is vCPU 258.
        assert_eq!(
            VcpuIndex::from_affinity(0x0102, 300),
            Some(VcpuIndex::new(258))
        );
        // Aff2 or Aff3 set: no vCPU has it.
        assert_eq!(VcpuIndex::from_affinity(1 << 16, usize::MAX), None);
        assert_eq!(VcpuIndex::from_affinity(1 << 32, usize::MAX), None);
        // MPIDR's RES1 bit 31 and MT (bit 24) are not affinity.
        assert_eq!(
            VcpuIndex::from_affinity((1 << 31) | (1 << 24) | 2, 3),
            Some(VcpuIndex::new(2))
        );
    }

    #[test]
    fn acknowledged_intid_excludes_the_special_ones() {
        assert_eq!(PhysIntId::from_acknowledge(1023), None);
        assert_eq!(PhysIntId::from_acknowledge(1020), None);
        assert_eq!(
            PhysIntId::from_acknowledge(1019).map(PhysIntId::get),
            Some(1019)
        );
        assert_eq!(
            PhysIntId::from_acknowledge(8192).map(PhysIntId::get),
            Some(8192)
        );
        assert_eq!(PhysIntId::from_acknowledge(8191), None);
    }

    proptest! {
        #[test]
        fn vcpu_from_affinity_round_trips_at_the_count_edge(count in 0usize..70_000, delta in -2i64..2) {
            let raw = (count as i64 + delta).max(0) as u64;
            let expect = (raw < count as u64 && raw <= u64::from(u16::MAX)).then_some(raw as u16);
            prop_assert_eq!(VcpuIndex::from_affinity(raw, count).map(VcpuIndex::get), expect);
        }

        #[test]
        fn vcpu_from_affinity_ignores_non_affinity_bits(index in 0u64..0x1_0000, junk in any::<u64>()) {
            let noise = junk & !AFFINITY_FIELDS;
            prop_assert_eq!(
                VcpuIndex::from_affinity(index | noise, 0x1_0000),
                Some(VcpuIndex::new(index as u16))
            );
            // Aff2/Aff3 set: never a vCPU.
            let high = junk & AFFINITY_FIELDS & !0xffff;
            if high != 0 {
                prop_assert_eq!(VcpuIndex::from_affinity(index | high, usize::MAX), None);
            }
        }

        #[test]
        fn acknowledged_intid_round_trips_near_the_special_range(raw in 1010u32..8200) {
            let expect = intid_in_range(raw).then_some(raw);
            prop_assert_eq!(PhysIntId::from_acknowledge(raw).map(PhysIntId::get), expect);
        }

        #[test]
        fn intid_new_round_trips_exactly_on_its_range(raw in any::<u32>()) {
            let expect = intid_in_range(raw).then_some(raw);
            prop_assert_eq!(VirtIntId::new(raw).map(VirtIntId::get), expect);
            prop_assert_eq!(PhysIntId::new(raw).map(PhysIntId::get), expect);
            prop_assert_eq!(VirtIntId::try_new(raw).is_ok(), expect.is_some());
        }

        #[test]
        fn intid_new_round_trips_near_the_boundaries(raw in 1000u32..8300) {
            let expect = intid_in_range(raw).then_some(raw);
            prop_assert_eq!(VirtIntId::new(raw).map(VirtIntId::get), expect);
        }

        #[test]
        fn lpi_new_round_trips_exactly_on_its_range(raw in any::<u32>(), bits in 1u8..=32) {
            let expect = (raw >= 8192 && u64::from(raw) >> bits == 0).then_some(raw);
            prop_assert_eq!(VirtIntId::new_lpi(raw, bits).map(VirtIntId::get), expect);
        }

        #[test]
        fn cpu_index_new_round_trips_exactly_below_count(raw in any::<u16>()) {
            let expect = (usize::from(raw) < CpuIndex::COUNT).then_some(raw);
            prop_assert_eq!(CpuIndex::new(raw).map(CpuIndex::get), expect);
        }

        #[test]
        fn full_range_ids_round_trip_within_bits(raw in any::<u32>(), bits in 1u8..=32) {
            let expect = (u64::from(raw) >> bits == 0).then_some(raw);
            prop_assert_eq!(EventId::new_within_bits(raw, bits).map(EventId::get), expect);
            prop_assert_eq!(VirtDeviceId::new_within_bits(raw, bits).map(VirtDeviceId::get), expect);
            prop_assert_eq!(PhysDeviceId::new_within_bits(raw, bits).map(PhysDeviceId::get), expect);
            prop_assert_eq!(EventId::new(raw).get(), raw);
        }

        #[test]
        fn vcpu_index_round_trips_below_count(raw in any::<u16>(), count in 0usize..70_000) {
            let expect = (usize::from(raw) < count).then_some(raw);
            prop_assert_eq!(VcpuIndex::new_below(raw, count).map(VcpuIndex::get), expect);
            prop_assert_eq!(VcpuIndex::from_index(usize::from(raw)).map(VcpuIndex::get), Some(raw));
        }
    }
}
