//! VMIDs: the tag stage-2 TLB entries carry, one per partition. VMID 0 is
//! kept for the hypervisor (no guest ever runs with it), so a VTTBR_EL2
//! left at reset value can never alias a partition's translations.
#![forbid(unsafe_code)]

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use super::PhysAddr;

/// How many bits of VMID the CPU implements (ID_AA64MMFR1_EL1.VMIDBits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmidWidth {
    /// 8-bit VMIDs: 1..=255 for partitions.
    Bits8,
    /// 16-bit VMIDs (FEAT_VMID16), enabled with VTCR_EL2.VS = 1.
    Bits16,
}

impl VmidWidth {
    /// From the ID_AA64MMFR1_EL1.VMIDBits field (bits [7:4]): 0b0010 means 16
    /// bits, anything else 8 (0b0000 is the only other defined value).
    pub const fn from_id_field(vmid_bits: u8) -> Self {
        if vmid_bits & 0xf == 0b0010 {
            Self::Bits16
        } else {
            Self::Bits8
        }
    }

    /// Whether VTCR_EL2.VS must be set.
    pub const fn is_16bit(self) -> bool {
        matches!(self, Self::Bits16)
    }

    /// Number of VMID values, including the reserved VMID 0.
    pub const fn count(self) -> u32 {
        match self {
            Self::Bits8 => 1 << 8,
            Self::Bits16 => 1 << 16,
        }
    }
}

/// A virtual machine identifier: 8 or 16 bits, as the CPU (or the SMMU)
/// implements them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Vmid(u16);

impl Vmid {
    /// The hypervisor's own VMID, never handed to a partition.
    pub const HYPERVISOR: Self = Self(0);

    /// The VMID `raw` if it fits `width` (below 256 for 8-bit VMIDs).
    pub const fn new(raw: u16, width: VmidWidth) -> Option<Self> {
        if (raw as u32) < width.count() {
            Some(Self(raw))
        } else {
            None
        }
    }

    /// The VMID `raw` of a 16-bit-VMID machine (every `u16` is one), for
    /// constants and for values read back from hardware tables.
    pub const fn from_const(raw: u16) -> Self {
        Self(raw)
    }

    /// The raw value.
    pub const fn get(self) -> u16 {
        self.0
    }

    /// The raw value (same as [`Self::get`]).
    pub const fn raw(self) -> u16 {
        self.0
    }

    /// Whether the VMID fits `bits` bits (an SMMU's IDR0.VMID16 width).
    pub const fn fits_bits(self, bits: u8) -> bool {
        bits >= 16 || (self.0 as u32) >> bits == 0
    }
}

impl fmt::Display for Vmid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// VTTBR_EL2 for a stage-2 root and VMID: BADDR in bits [47:1] (the root is
/// page aligned, or aligned to the concatenated root size), VMID in [63:48]
/// (bits [63:56] are zero for an 8-bit VMID, as required).
pub const fn vttbr_el2(root: PhysAddr, vmid: Vmid) -> u64 {
    root.0 | ((vmid.0 as u64) << 48)
}

/// Why a VMID operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmidError {
    /// Every VMID of this width is in use.
    Exhausted {
        /// The CPU's VMID width.
        width: VmidWidth,
    },
    /// The VMID being freed was not allocated (or is the hypervisor's).
    NotAllocated(Vmid),
}

/// Hands out VMIDs 1.. lowest first.
///
/// A freed VMID may still tag TLB entries: before it runs a new partition
/// the caller must invalidate them (`tlbi vmalls12e1is` with the VMID in
/// VTTBR_EL2, then `dsb ish`), ARM ARM D8.13.
#[derive(Clone, Debug)]
pub struct VmidAllocator {
    width: VmidWidth,
    /// One bit per VMID, set when in use; VMID 0 always set.
    used: Vec<u64>,
}

impl VmidAllocator {
    /// An allocator for `width`-bit VMIDs with only VMID 0 (the hypervisor's) taken.
    pub fn new(width: VmidWidth) -> Self {
        let mut used = vec![0u64; (width.count() / 64) as usize];
        used[0] = 1;
        Self { width, used }
    }

    /// The VMID width this allocator serves.
    pub fn width(&self) -> VmidWidth {
        self.width
    }

    /// The lowest free VMID.
    pub fn alloc(&mut self) -> Result<Vmid, VmidError> {
        let (word, bits) = self
            .used
            .iter_mut()
            .enumerate()
            .find(|(_, bits)| **bits != u64::MAX)
            .ok_or(VmidError::Exhausted { width: self.width })?;
        let bit = bits.trailing_ones();
        *bits |= 1 << bit;
        // word < count / 64 <= 1024 and bit < 64, so the value fits in u16.
        Ok(Vmid((word as u32 * 64 + bit) as u16))
    }

    /// Returns `vmid` for reuse (see the TLB note on [`VmidAllocator`]).
    pub fn free(&mut self, vmid: Vmid) -> Result<(), VmidError> {
        if vmid == Vmid::HYPERVISOR || !self.is_allocated(vmid) {
            return Err(VmidError::NotAllocated(vmid));
        }
        let (word, bit) = Self::position(vmid);
        self.used[word] &= !(1 << bit);
        Ok(())
    }

    /// Whether `vmid` is in use (VMID 0 always is).
    pub fn is_allocated(&self, vmid: Vmid) -> bool {
        let (word, bit) = Self::position(vmid);
        self.used
            .get(word)
            .is_some_and(|bits| bits & (1 << bit) != 0)
    }

    fn position(vmid: Vmid) -> (usize, u32) {
        (usize::from(vmid.0 / 64), u32::from(vmid.0 % 64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vmid_width_follows_id_aa64mmfr1_vmidbits() {
        assert_eq!(VmidWidth::from_id_field(0b0000), VmidWidth::Bits8);
        assert_eq!(VmidWidth::from_id_field(0b0010), VmidWidth::Bits16);
        assert!(VmidWidth::Bits16.is_16bit());
    }

    #[test]
    fn vmid_new_states_the_width() {
        assert_eq!(Vmid::new(255, VmidWidth::Bits8).map(Vmid::get), Some(255));
        assert_eq!(Vmid::new(256, VmidWidth::Bits8), None);
        assert_eq!(
            Vmid::new(u16::MAX, VmidWidth::Bits16).map(Vmid::get),
            Some(u16::MAX)
        );
        assert!(Vmid::from_const(255).fits_bits(8));
        assert!(!Vmid::from_const(256).fits_bits(8));
        assert!(Vmid::from_const(u16::MAX).fits_bits(16));
    }

    proptest::proptest! {
        #[test]
        fn vmid_new_round_trips_exactly_on_its_width(raw in proptest::prelude::any::<u16>()) {
            proptest::prop_assert_eq!(Vmid::new(raw, VmidWidth::Bits16).map(Vmid::get), Some(raw));
            proptest::prop_assert_eq!(
                Vmid::new(raw, VmidWidth::Bits8).map(Vmid::get),
                (raw < 256).then_some(raw)
            );
        }
    }

    #[test]
    fn vmid_0_is_never_handed_out() {
        let mut vmids = VmidAllocator::new(VmidWidth::Bits8);
        assert!(vmids.is_allocated(Vmid::HYPERVISOR));
        assert_eq!(vmids.alloc().map(Vmid::raw), Ok(1));
        assert_eq!(vmids.alloc().map(Vmid::raw), Ok(2));
        assert_eq!(
            vmids.free(Vmid::HYPERVISOR),
            Err(VmidError::NotAllocated(Vmid::HYPERVISOR))
        );
    }

    #[test]
    fn eight_bit_vmids_run_out_after_255() {
        let mut vmids = VmidAllocator::new(VmidWidth::Bits8);
        for expected in 1..=255u16 {
            assert_eq!(vmids.alloc().map(Vmid::raw), Ok(expected));
        }
        assert_eq!(
            vmids.alloc(),
            Err(VmidError::Exhausted {
                width: VmidWidth::Bits8
            })
        );
    }

    #[test]
    fn sixteen_bit_vmids_reach_65535() {
        let mut vmids = VmidAllocator::new(VmidWidth::Bits16);
        let mut last = Vmid::HYPERVISOR;
        for _ in 1..=65535u32 {
            last = vmids.alloc().unwrap();
        }
        assert_eq!(last.raw(), 65535);
        assert!(vmids.alloc().is_err());
    }

    #[test]
    fn freed_vmid_is_reused_lowest_first_and_double_free_is_refused() {
        let mut vmids = VmidAllocator::new(VmidWidth::Bits8);
        let a = vmids.alloc().unwrap();
        let b = vmids.alloc().unwrap();
        vmids.free(a).unwrap();
        assert_eq!(vmids.free(a), Err(VmidError::NotAllocated(a)));
        assert!(vmids.is_allocated(b));
        assert_eq!(vmids.alloc(), Ok(a));
        assert_eq!(vmids.alloc().map(Vmid::raw), Ok(3));
    }

    #[test]
    fn vttbr_el2_puts_the_vmid_in_bits_63_48() {
        let mut vmids = VmidAllocator::new(VmidWidth::Bits16);
        let vmid = vmids.alloc().unwrap();
        assert_eq!(
            vttbr_el2(PhysAddr(0x4123_e000), vmid),
            0x0001_0000_4123_e000
        );
    }
}
