//! Starting a secondary CPU that firmware parked in a spin table
//! (`enable-method = "spin-table"`, Linux `arm64/booting.rst` and
//! `cpus.yaml`): the CPU waits in WFE, reading its 64-bit
//! `cpu-release-addr` slot until it is non-zero, then branches there (at
//! the exception level it was parked in, MMU off). The Raspberry Pi's
//! armstub and QEMU's raspi4b stub park CPUs 1-3 at EL2 on the slots
//! 0xd8, 0xe0, 0xe8 and 0xf0.
//!
//! This module is the pure half: which slot, what to write, in which
//! order. The kernel supplies [`SpinTableOps`] (a 64-bit store, data cache
//! maintenance to the point of coherency, `dsb sy`, `sev`); tests supply a
//! recording fake. A released CPU gets no argument in x0 (unlike PSCI
//! CPU_ON's context ID): its entry code must find its own CPU number from
//! MPIDR_EL1.
#![forbid(unsafe_code)]

use crate::boot::platform::{Cpu, EnableMethod};
use crate::mm::addr::{PhysAddr, Range};

/// The hardware steps a spin-table release needs, in the order
/// [`release`] calls them.
pub trait SpinTableOps {
    /// A single 64-bit store of `value` to `address` (device-order, not
    /// torn: the parked CPU may read the slot at any time).
    fn write_u64(&mut self, address: PhysAddr, value: u64);
    /// Cleans the data cache line holding `address` to the point of
    /// coherency: the parked CPU reads with its MMU and caches off.
    fn clean_to_poc(&mut self, address: PhysAddr);
    /// `dsb sy`: the store and the maintenance are complete before the event.
    fn dsb_sy(&mut self);
    /// `sev`: wakes the CPUs waiting in WFE.
    fn sev(&mut self);
}

/// Why a CPU could not be released through its spin table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpinTableError {
    /// The CPU's `enable-method` is not `spin-table`.
    NotSpinTable,
    /// `cpu-release-addr` is not 8-byte aligned (the slot is one 64-bit word).
    MisalignedSlot(PhysAddr),
    /// `cpu-release-addr` is not in RAM the tree describes.
    SlotOutsideRam(PhysAddr),
    /// The entry point is 0, which the parked CPU reads as "keep waiting".
    ZeroEntry,
}

impl core::fmt::Display for SpinTableError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NotSpinTable => write!(f, "enable-method is not spin-table"),
            Self::MisalignedSlot(a) => write!(f, "cpu-release-addr {a} is not 8-byte aligned"),
            Self::SlotOutsideRam(a) => write!(f, "cpu-release-addr {a} is outside RAM"),
            Self::ZeroEntry => write!(f, "entry point 0 would not release the CPU"),
        }
    }
}

/// The slot `cpu` polls, checked against the RAM ranges `memory`.
pub fn release_slot(cpu: &Cpu, memory: &[Range<PhysAddr>]) -> Result<PhysAddr, SpinTableError> {
    let EnableMethod::SpinTable { release_address } = cpu.enable_method else {
        return Err(SpinTableError::NotSpinTable);
    };
    if !release_address.0.is_multiple_of(8) {
        return Err(SpinTableError::MisalignedSlot(release_address));
    }
    let in_ram = memory.iter().any(|r| {
        release_address >= r.start
            && release_address
                .0
                .checked_add(8)
                .is_some_and(|end| end <= r.start.0.saturating_add(r.size))
    });
    if !in_ram {
        return Err(SpinTableError::SlotOutsideRam(release_address));
    }
    Ok(release_address)
}

/// Releases `cpu` to `entry`: writes the entry point into its slot,
/// cleans the slot to the point of coherency, `dsb sy`, then `sev`
/// (booting.rst: "write the entry point, then send an event"). Nothing
/// is written if the CPU or the slot is unusable.
pub fn release(
    cpu: &Cpu,
    memory: &[Range<PhysAddr>],
    entry: PhysAddr,
    ops: &mut impl SpinTableOps,
) -> Result<(), SpinTableError> {
    let slot = release_slot(cpu, memory)?;
    if entry.0 == 0 {
        return Err(SpinTableError::ZeroEntry);
    }
    ops.write_u64(slot, entry.0);
    ops.clean_to_poc(slot);
    ops.dsb_sy();
    ops.sev();
    Ok(())
}

#[cfg(test)]
mod tests {
    use alloc::string::String;
    use alloc::vec::Vec;

    use super::*;

    #[derive(Debug, PartialEq, Eq)]
    enum Step {
        Write(u64, u64),
        Clean(u64),
        Dsb,
        Sev,
    }

    #[derive(Default)]
    struct Recorder(Vec<Step>);

    impl SpinTableOps for Recorder {
        fn write_u64(&mut self, address: PhysAddr, value: u64) {
            self.0.push(Step::Write(address.0, value));
        }
        fn clean_to_poc(&mut self, address: PhysAddr) {
            self.0.push(Step::Clean(address.0));
        }
        fn dsb_sy(&mut self) {
            self.0.push(Step::Dsb);
        }
        fn sev(&mut self) {
            self.0.push(Step::Sev);
        }
    }

    fn cpu(method: EnableMethod) -> Cpu {
        Cpu {
            node: String::from("/cpus/cpu@1"),
            mpidr: 1,
            enable_method: method,
            available: true,
        }
    }

    fn spin(slot: u64) -> Cpu {
        cpu(EnableMethod::SpinTable {
            release_address: PhysAddr(slot),
        })
    }

    const RAM: [Range<PhysAddr>; 1] = [Range {
        start: PhysAddr(0),
        size: 0x3b40_0000,
    }];

    #[test]
    fn release_writes_entry_then_cleans_then_dsb_then_sev() {
        let mut ops = Recorder::default();
        release(&spin(0xe0), &RAM, PhysAddr(0x20_0040), &mut ops).unwrap();
        assert_eq!(
            ops.0,
            [
                Step::Write(0xe0, 0x20_0040),
                Step::Clean(0xe0),
                Step::Dsb,
                Step::Sev
            ]
        );
    }

    #[test]
    fn raspi4b_tree_parks_cpus_1_to_3_on_the_armstub_slots() {
        let blob = include_bytes!("../../testdata/qemu-raspi4b-nops.dtb");
        let platform = crate::boot::platform::Platform::from_fdt(blob).unwrap();
        let slots: Vec<_> = platform
            .cpus
            .iter()
            .map(|c| release_slot(c, &platform.memory).map(|a| a.0))
            .collect();
        assert_eq!(slots, [Ok(0xd8), Ok(0xe0), Ok(0xe8), Ok(0xf0)]);
    }

    #[test]
    fn unusable_cpus_and_slots_write_nothing() {
        let cases = [
            (cpu(EnableMethod::Psci), SpinTableError::NotSpinTable),
            (spin(0xe4), SpinTableError::MisalignedSlot(PhysAddr(0xe4))),
            (
                spin(0x3b40_0000),
                SpinTableError::SlotOutsideRam(PhysAddr(0x3b40_0000)),
            ),
            (spin(!7u64), SpinTableError::SlotOutsideRam(PhysAddr(!7u64))),
        ];
        for (cpu, error) in cases {
            let mut ops = Recorder::default();
            assert_eq!(
                release(&cpu, &RAM, PhysAddr(0x20_0000), &mut ops),
                Err(error)
            );
            assert!(ops.0.is_empty());
        }
        let mut ops = Recorder::default();
        assert_eq!(
            release(&spin(0xd8), &RAM, PhysAddr(0), &mut ops),
            Err(SpinTableError::ZeroEntry)
        );
        assert!(ops.0.is_empty());
    }
}
