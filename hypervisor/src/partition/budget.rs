//! Per-partition hypervisor memory budgets (issue 12): what the heap may
//! hold on a partition's behalf, derived from its manifest, and the check
//! that every partition's budget and the hypervisor's own fit the heap
//! together.
//!
//! A guest drives allocation only through counts the manifest caps: vITS
//! devices (`its.max_devices`), events (`its.max_events`), collections
//! (`its.max_collections`), times `its.count`, plus state per vCPU and per
//! passthrough function that is allocated when the partition is built.
//! Each count is charged at the worst case its structures can reach in
//! the buddy heap (blocks rounded up to a power of two, B-tree nodes at
//! minimum fill, tables at their allowance, a reallocation holding old and
//! new block at once): the host tests in `vits/tests/budget.rs` drive a
//! vITS to and past every cap with adversarial ID patterns and hold its
//! peak heap use against [`vits_bytes`]. A guest at a cap gets the
//! command's architected error (skipped and counted), so it can never
//! take more than its budget, and since the budgets and the hypervisor's
//! own fit the heap (checked before any partition is built), a partition
//! at its budget cannot make another partition's allocation fail.
#![forbid(unsafe_code)]

use crate::manifest::{ItsLimits, PartitionConfig};

/// Bytes of the hypervisor heap when the manifest does not say
/// (`[hypervisor] heap`, `manifest::DEFAULT_HEAP_BYTES`).
pub const HEAP_BYTES: usize = 8 << 20;

/// Heap bytes the hypervisor keeps for itself: the platform description,
/// the manifest while it is parsed, the partition table, console and log
/// state, PCI enumeration (measured live heap after boot: about 30 KiB;
/// the manifest parse peaks far higher for a long manifest).
pub const HYPERVISOR_OWN_BYTES: usize = 1 << 20;

/// Fixed heap of one vITS: its registers, counters, the empty translation
/// state and the first blocks of its indexes.
pub const VITS_FIXED_BYTES: usize = 4 << 10;
/// Heap per device a vITS may map: the open-addressing index, whose
/// 32-byte slots hold each device's event-table header (at most half
/// full: 128 bytes a device after growth, 192 while the old and new
/// index coexist), the rest of the device entry at its stable place
/// (56 bytes, doubled on growth, in power-of-two blocks: 128), its place
/// in the free list and its DeviceID in the sorted list (~40 with growth).
/// The index and the entries grow at the same device count, one after
/// the other (the old block of one is freed before the other grows).
pub const DEVICE_BYTES: usize = 384;
/// Heap per event a vITS may map: its slot in an event table (8 bytes;
/// tables hold at most twice the events, and double while growing), or
/// an entry of a device's sorted sparse list (12 bytes, doubled on growth,
/// old and new block at once, power-of-two blocks: at most 48); and its
/// software route.
pub const EVENT_BYTES: usize = 192;
/// Heap per collection a vITS may map: an entry of the sorted collection
/// list (24 bytes, doubled on growth, old and new block at once: at most
/// 96 in power-of-two blocks, ~64 in practice), and its place in the list
/// the loss of the Collection table takes.
pub const COLLECTION_BYTES: usize = 96;
/// LPIs the vGIC holds pending on one vCPU at most (software injection);
/// one more is dropped and counted (`kernel::vgic` sizes the vGIC with it).
pub const PENDING_LPIS_PER_VCPU: usize = 1024;
/// Heap per pending LPI on a vCPU: its pending-set entry, its
/// configuration-cache entry and its list-register record, at minimum
/// B-tree fill.
pub const LPI_BYTES: usize = 96;
/// Heap per vCPU: its vGIC redistributor with a full pending set, and the
/// vCPU's trap and scheduling bookkeeping.
pub const VCPU_BYTES: usize = (16 << 10) + PENDING_LPIS_PER_VCPU * LPI_BYTES;
/// Heap per passthrough PCI function: its virtual bridge slot, config
/// shadow, MSI/MSI-X table shadow and routes.
pub const FUNCTION_BYTES: usize = 16 << 10;
/// Fixed heap per partition: the partition itself, its vGIC distributor,
/// virtual UART and console buffers, virtual host bridge.
pub const PARTITION_FIXED_BYTES: usize = 64 << 10;

/// The worst-case heap of one vITS with these caps (its translation state
/// and software routes).
pub fn vits_bytes(max_devices: usize, max_events: usize, max_collections: usize) -> usize {
    VITS_FIXED_BYTES
        .saturating_add(max_devices.saturating_mul(DEVICE_BYTES))
        .saturating_add(max_events.saturating_mul(EVENT_BYTES))
        .saturating_add(max_collections.saturating_mul(COLLECTION_BYTES))
}

/// One partition's budget, itemised by what drives it, so an error can
/// name the field that weighs most.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionBudget {
    /// vITS devices over all vITSs (`its.max_devices` x `its.count`).
    pub devices: usize,
    /// vITS events and their routes (`its.max_events` x `its.count`).
    pub events: usize,
    /// vITS collections (`its.max_collections` x `its.count`).
    pub collections: usize,
    /// Everything else: fixed, per vCPU, per PCI function.
    pub fixed: usize,
}

impl PartitionBudget {
    /// The budget of a partition with `vcpus` vCPUs, `functions`
    /// passthrough functions and the vITS caps `its`.
    pub fn new(its: &ItsLimits, vcpus: usize, functions: usize) -> Self {
        let count = its.count;
        let per_vits_fixed = VITS_FIXED_BYTES.saturating_mul(count);
        Self {
            devices: its
                .max_devices
                .saturating_mul(DEVICE_BYTES)
                .saturating_mul(count),
            events: its
                .max_events
                .saturating_mul(EVENT_BYTES)
                .saturating_mul(count),
            collections: its
                .max_collections
                .saturating_mul(COLLECTION_BYTES)
                .saturating_mul(count),
            fixed: PARTITION_FIXED_BYTES
                .saturating_add(per_vits_fixed)
                .saturating_add(vcpus.saturating_mul(VCPU_BYTES))
                .saturating_add(functions.saturating_mul(FUNCTION_BYTES)),
        }
    }

    /// The budget of a manifest partition.
    pub fn of(partition: &PartitionConfig) -> Self {
        Self::new(&partition.its, partition.cpus.len(), partition.pci.len())
    }

    /// Bytes in all.
    pub fn total(&self) -> usize {
        self.devices
            .saturating_add(self.events)
            .saturating_add(self.collections)
            .saturating_add(self.fixed)
    }

    /// The manifest field that weighs most in this budget (what to lower).
    pub fn heaviest_field(&self) -> &'static str {
        let mut heaviest = ("its.max_events", self.events);
        for candidate in [
            ("its.max_devices", self.devices),
            ("its.max_collections", self.collections),
        ] {
            if candidate.1 > heaviest.1 {
                heaviest = candidate;
            }
        }
        heaviest.0
    }
}

/// The budgets do not fit the heap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Overdraft {
    /// The first partition (index) whose budget, added to those before it
    /// and the hypervisor's own, exceeds the heap.
    pub partition: usize,
    /// Its budget.
    pub budget: PartitionBudget,
    /// The sum up to and including it, with the hypervisor's own.
    pub needed: usize,
    /// The heap.
    pub heap: usize,
}

/// Checks that the budgets of `partitions`, with [`HYPERVISOR_OWN_BYTES`],
/// fit a heap of `heap` bytes.
pub fn check(partitions: &[PartitionConfig], heap: usize) -> Result<usize, Overdraft> {
    let mut needed = HYPERVISOR_OWN_BYTES;
    for (index, partition) in partitions.iter().enumerate() {
        let budget = PartitionBudget::of(partition);
        needed = needed.saturating_add(budget.total());
        if needed > heap {
            return Err(Overdraft {
                partition: index,
                budget,
                needed,
                heap,
            });
        }
    }
    Ok(needed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAP: usize = HEAP_BYTES;

    #[test]
    fn default_partitions_fit_the_heap_several_times_over() {
        let one = PartitionBudget::new(&ItsLimits::DEFAULT, 2, 1).total();
        // Two default partitions (the boards' usual split) take well under
        // half the heap, leaving room for larger caps.
        assert!(HYPERVISOR_OWN_BYTES + 2 * one < HEAP / 2, "{one}");
    }

    #[test]
    fn every_shipped_manifest_fits_the_heap() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../boards");
        let mut checked = 0;
        let mut folders = std::vec![std::path::PathBuf::from(root)];
        while let Some(folder) = folders.pop() {
            for entry in std::fs::read_dir(&folder).expect("boards/ readable") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    folders.push(path);
                    continue;
                }
                if path.extension().is_none_or(|e| e != "toml")
                    || path.file_name().is_some_and(|n| n == "board.toml")
                {
                    continue;
                }
                let text = std::fs::read_to_string(&path).expect("manifest readable");
                let Ok(manifest) = crate::manifest::Manifest::parse(&text) else {
                    continue;
                };
                if let Err(e) = check(&manifest.partitions, HEAP) {
                    panic!("{}: {e:?}", path.display());
                }
                checked += 1;
            }
        }
        assert!(checked > 10, "{checked} manifests checked");
    }

    #[test]
    fn the_largest_caps_do_not_fit() {
        let budget = PartitionBudget::new(&ItsLimits::MAX, 8, 8);
        assert!(budget.total() > HEAP);
        assert_eq!(budget.heaviest_field(), "its.max_events");
    }

    #[test]
    fn heaviest_field_names_what_dominates() {
        let its = ItsLimits {
            max_events: 1,
            max_devices: 4096,
            ..ItsLimits::DEFAULT
        };
        assert_eq!(
            PartitionBudget::new(&its, 1, 0).heaviest_field(),
            "its.max_devices"
        );
        let its = ItsLimits {
            max_events: 1,
            max_devices: 1,
            max_collections: 4096,
            ..ItsLimits::DEFAULT
        };
        assert_eq!(
            PartitionBudget::new(&its, 1, 0).heaviest_field(),
            "its.max_collections"
        );
    }

    #[test]
    fn budgets_grow_with_every_cap() {
        let base = PartitionBudget::new(&ItsLimits::DEFAULT, 2, 0).total();
        for its in [
            ItsLimits {
                max_devices: 65,
                ..ItsLimits::DEFAULT
            },
            ItsLimits {
                max_events: 4097,
                ..ItsLimits::DEFAULT
            },
            ItsLimits {
                max_collections: 65,
                ..ItsLimits::DEFAULT
            },
            ItsLimits {
                count: 2,
                ..ItsLimits::DEFAULT
            },
        ] {
            assert!(PartitionBudget::new(&its, 2, 0).total() > base, "{its:?}");
        }
        assert!(PartitionBudget::new(&ItsLimits::DEFAULT, 3, 0).total() > base);
        assert!(PartitionBudget::new(&ItsLimits::DEFAULT, 2, 1).total() > base);
    }

    #[test]
    fn saturating_caps_never_overflow() {
        let its = ItsLimits {
            max_devices: usize::MAX,
            max_events: usize::MAX,
            max_collections: usize::MAX,
            max_commands_per_trap: 1,
            count: usize::MAX,
        };
        assert_eq!(
            PartitionBudget::new(&its, usize::MAX, usize::MAX).total(),
            usize::MAX
        );
    }
}
