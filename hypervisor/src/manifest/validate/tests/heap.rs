//! `[hypervisor] heap`: parsed, range-checked naming the field, counted
//! against RAM before the partitions, and the size the budgets must fit.

use super::*;
use crate::partition::budget::{self, PartitionBudget};
use proptest::prelude::*;

/// The board manifest with `[hypervisor] heap = <value>` (TOML text).
fn with_heap(value: &str) -> String {
    alloc::format!("{BOARD_MANIFEST}\n[hypervisor]\nheap = {value}\n")
}

fn heap_error(value: &str) -> ManifestError {
    let text = with_heap(value);
    let error = Manifest::load(&text, &context()).expect_err("must be refused");
    assert_eq!(error.partition, None, "{error}");
    assert_eq!(error.field, "hypervisor.heap", "{error}");
    let line = text.lines().position(|l| l.starts_with("heap =")).unwrap() + 1;
    assert_eq!(error.line, Some(line as u32), "{error}");
    error
}

#[test]
fn the_heap_is_the_default_unless_the_manifest_says() {
    let manifest = Manifest::load(BOARD_MANIFEST, &context()).unwrap();
    assert_eq!(manifest.hypervisor.heap, None);
    assert_eq!(manifest.hypervisor.heap_bytes(), DEFAULT_HEAP_BYTES);
    assert_eq!(DEFAULT_HEAP_BYTES, budget::HEAP_BYTES);
    for (value, bytes) in [
        ("\"16M\"", 16 << 20),
        ("33554432", 32 << 20),
        ("\"1G\"", 1 << 30),
    ] {
        let manifest = Manifest::parse(&with_heap(value)).unwrap();
        assert_eq!(manifest.hypervisor.heap_bytes(), bytes, "{value}");
    }
    // Beyond the boot arena, in whole RAM blocks.
    let config = |heap| HypervisorConfig { heap: Some(heap) };
    assert_eq!(config(1 << 20).heap_from_ram(), 0);
    assert_eq!(config(2 << 20).heap_from_ram(), 0);
    assert_eq!(config(3 << 20).heap_from_ram(), 2 << 20);
    assert_eq!(config(16 << 20).heap_from_ram(), 14 << 20);
    assert_eq!(HypervisorConfig::default().heap_from_ram(), 6 << 20);
}

#[test]
fn a_heap_out_of_range_or_not_whole_mib_is_refused_naming_the_field() {
    for value in ["0", "\"512K\"", "\"1536K\"", "\"2G\"", "1048577"] {
        let error = heap_error(value);
        assert!(matches!(error.kind, ErrorKind::HeapSize { .. }), "{error}");
        assert!(error.to_string().contains("whole number of MiB"), "{error}");
    }
    // A shape error (not a size at all) names the field too.
    let error = Manifest::parse(&with_heap("\"lots\"")).expect_err("not a size");
    assert_eq!(error.field, "hypervisor.heap", "{error}");
    let error = Manifest::parse(&alloc::format!(
        "{BOARD_MANIFEST}\n[hypervisor]\nheep = 1\n"
    ))
    .expect_err("unknown field");
    assert!(error.to_string().contains("heep"), "{error}");
}

#[test]
fn the_heaps_ram_is_taken_before_the_partitions() {
    // About 1000 MiB are free: a 1 GiB heap cannot be carved at all.
    let error = heap_error("\"1024M\"");
    assert!(
        matches!(error.kind, ErrorKind::NotEnoughRam { .. }),
        "{error}"
    );
    // 900 MiB can, but then the partitions' 128 MiB do not fit: the
    // partition is named, as when partitions alone are too big.
    let error = Manifest::load(&with_heap("\"900M\""), &context()).expect_err("too big");
    assert_eq!(error.field, "ram.size", "{error}");
    assert!(error.partition.is_some(), "{error}");
    Manifest::load(&with_heap("\"512M\""), &context()).expect("fits");
}

#[test]
fn a_larger_heap_admits_budgets_the_default_refuses() {
    let mut manifest = board();
    manifest.partitions[1].its.max_events = 65536;
    manifest.partitions[1].its.count = 2;
    let error = manifest.validate(&context()).expect_err("beyond 8 MiB");
    assert!(
        error.to_string().contains("raise hypervisor.heap"),
        "{error}"
    );
    manifest.hypervisor.heap = Some(32 << 20);
    assert_eq!(manifest.validate(&context()), Ok(()));
    // And a smaller one refuses what the default admits.
    let mut manifest = board();
    manifest.hypervisor.heap = Some(1 << 20);
    let error = manifest
        .validate(&context())
        .expect_err("only the hypervisor's own");
    assert!(
        matches!(error.kind, ErrorKind::HeapBudget { heap, .. } if heap == 1 << 20),
        "{error}"
    );
}

proptest! {
    /// Whatever heap and caps a manifest gives, it validates exactly when
    /// the heap is a valid size, fits RAM beside the partitions, and holds
    /// every partition's budget and the hypervisor's own.
    #[test]
    fn a_valid_manifest_always_has_its_budgets_within_its_heap(
        heap_mib in 0u64..1100,
        events in proptest::sample::select(alloc::vec![1usize, 4096, 16384, 65536]),
        devices in proptest::sample::select(alloc::vec![1usize, 64, 4096]),
        count in 1usize..=2,
    ) {
        let mut manifest = board();
        for p in &mut manifest.partitions {
            p.its.max_events = events;
            p.its.max_devices = devices;
            p.its.count = count;
        }
        manifest.hypervisor.heap = Some(heap_mib << 20);
        let heap = (heap_mib << 20) as usize;
        let needed: usize = budget::HYPERVISOR_OWN_BYTES
            + manifest.partitions.iter().map(|p| PartitionBudget::of(p).total()).sum::<usize>();
        let size_ok = (MIN_HEAP_BYTES..=MAX_HEAP_BYTES).contains(&heap);
        let ram_ok = manifest.hypervisor.heap_from_ram() + 128 * MIB <= 1000 * MIB;
        let result = manifest.validate(&context());
        prop_assert_eq!(result.is_ok(), size_ok && ram_ok && needed <= heap, "{:?}", result);
        if result.is_ok() {
            prop_assert!(needed <= manifest.hypervisor.heap_bytes());
        }
    }
}
