//! Several ECAM host bridges, as on Neoverse servers (one per PCIe root
//! complex, each its own segment): every bridge is parsed with its own
//! windows and maps, and DeviceIDs that differ from requester IDs
//! (`msi-map` with a base, several entries, `msi-map-mask`) come out per
//! bridge, so equal requester IDs behind two bridges get distinct
//! DeviceIDs at the shared ITS.

use alloc::vec::Vec;

use vm_fdt::FdtWriter;

use super::*;

const ITS_PHANDLE: u32 = 2;
const SMMU_PHANDLE: u32 = 3;

/// One bridge: segment, ECAM base, 32-bit window base, and its maps.
struct Bridge {
    domain: u32,
    ecam: u64,
    mem32: u32,
    msi_map: Vec<u32>,
    msi_map_mask: Option<u32>,
    iommu_map: Vec<u32>,
}

fn tree(bridges: &[Bridge]) -> Vec<u8> {
    let mut w = FdtWriter::new().unwrap();
    let root = w.begin_node("").unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 2).unwrap();
    w.property_string("model", "Two root complexes").unwrap();
    w.property_u32("interrupt-parent", 1).unwrap();
    let memory = w.begin_node("memory@80000000").unwrap();
    w.property_string("device_type", "memory").unwrap();
    w.property_array_u64("reg", &[0x8000_0000, 0x4000_0000])
        .unwrap();
    w.end_node(memory).unwrap();
    let cpus = w.begin_node("cpus").unwrap();
    w.property_u32("#address-cells", 1).unwrap();
    w.property_u32("#size-cells", 0).unwrap();
    let cpu = w.begin_node("cpu@0").unwrap();
    w.property_string("device_type", "cpu").unwrap();
    w.property_string("compatible", "arm,neoverse-n2").unwrap();
    w.property_u32("reg", 0).unwrap();
    w.end_node(cpu).unwrap();
    w.end_node(cpus).unwrap();
    let timer = w.begin_node("timer").unwrap();
    w.property_string("compatible", "arm,armv8-timer").unwrap();
    w.property_array_u32("interrupts", &[1, 13, 4, 1, 14, 4, 1, 11, 4, 1, 10, 4])
        .unwrap();
    w.end_node(timer).unwrap();
    let gic = w.begin_node("interrupt-controller@30000000").unwrap();
    w.property_string("compatible", "arm,gic-v3").unwrap();
    w.property_null("interrupt-controller").unwrap();
    w.property_u32("#interrupt-cells", 3).unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 2).unwrap();
    w.property_null("ranges").unwrap();
    w.property_array_u64("reg", &[0x3000_0000, 0x1_0000, 0x3010_0000, 0x10_0000])
        .unwrap();
    w.property_array_u32("interrupts", &[1, 9, 4]).unwrap();
    w.property_phandle(1).unwrap();
    let its = w.begin_node("msi-controller@30040000").unwrap();
    w.property_string("compatible", "arm,gic-v3-its").unwrap();
    w.property_null("msi-controller").unwrap();
    w.property_array_u64("reg", &[0x3004_0000, 0x2_0000])
        .unwrap();
    w.property_phandle(ITS_PHANDLE).unwrap();
    w.end_node(its).unwrap();
    w.end_node(gic).unwrap();
    let smmu = w.begin_node("iommu@2b400000").unwrap();
    w.property_string("compatible", "arm,smmu-v3").unwrap();
    w.property_array_u64("reg", &[0x2b40_0000, 0x2_0000])
        .unwrap();
    w.property_u32("#iommu-cells", 1).unwrap();
    w.property_phandle(SMMU_PHANDLE).unwrap();
    w.end_node(smmu).unwrap();
    for b in bridges {
        let node = w.begin_node(&alloc::format!("pcie@{:x}", b.ecam)).unwrap();
        w.property_string("compatible", "pci-host-ecam-generic")
            .unwrap();
        w.property_string("device_type", "pci").unwrap();
        w.property_u32("#address-cells", 3).unwrap();
        w.property_u32("#size-cells", 2).unwrap();
        w.property_u32("linux,pci-domain", b.domain).unwrap();
        w.property_array_u64("reg", &[b.ecam, 0x1000_0000]).unwrap();
        w.property_array_u32("bus-range", &[0, 255]).unwrap();
        // 32-bit memory: PCI address 0 at CPU address mem32 (they differ).
        w.property_array_u32("ranges", &[0x0200_0000, 0, 0, 0, b.mem32, 0, 0x1000_0000])
            .unwrap();
        w.property_array_u32("msi-map", &b.msi_map).unwrap();
        if let Some(mask) = b.msi_map_mask {
            w.property_u32("msi-map-mask", mask).unwrap();
        }
        w.property_array_u32("iommu-map", &b.iommu_map).unwrap();
        w.end_node(node).unwrap();
    }
    w.end_node(root).unwrap();
    w.finish().unwrap()
}

/// Segment 0: RIDs map 1:1 from DeviceID 0. Segment 1: bus 0 from
/// DeviceID 0x1_0000 and bus 1 from 0x2_0000 (two entries), and
/// StreamIDs from 0x1_0000.
fn two_root_complexes() -> Platform {
    let blob = tree(&[
        Bridge {
            domain: 0,
            ecam: 0x6000_0000,
            mem32: 0x7000_0000,
            msi_map: [0, ITS_PHANDLE, 0, 0x1_0000].to_vec(),
            msi_map_mask: None,
            iommu_map: [0, SMMU_PHANDLE, 0, 0x1_0000].to_vec(),
        },
        Bridge {
            domain: 1,
            ecam: 0x4_0000_0000,
            mem32: 0x5000_0000,
            msi_map: [
                0x000,
                ITS_PHANDLE,
                0x1_0000,
                0x100,
                0x100,
                ITS_PHANDLE,
                0x2_0000,
                0x100,
            ]
            .to_vec(),
            msi_map_mask: None,
            iommu_map: [0, SMMU_PHANDLE, 0x1_0000, 0x1_0000].to_vec(),
        },
    ]);
    Platform::from_fdt(&blob).unwrap()
}

#[test]
fn every_host_bridge_is_parsed_with_its_own_windows_and_segment() {
    let platform = two_root_complexes();
    assert_eq!(platform.pci.len(), 2);
    let (a, b) = (&platform.pci[0], &platform.pci[1]);
    assert_eq!((a.domain, b.domain), (Some(0), Some(1)));
    assert_eq!(a.ecam.start, PhysAddr(0x6000_0000));
    assert_eq!(b.ecam.start, PhysAddr(0x4_0000_0000));
    let (wa, wb) = (a.mem32().unwrap(), b.mem32().unwrap());
    assert_eq!((wa.cpu_address, wa.pci_address), (PhysAddr(0x7000_0000), 0));
    assert_eq!((wb.cpu_address, wb.pci_address), (PhysAddr(0x5000_0000), 0));
    assert_eq!(platform.cpu_model.as_deref(), Some("arm,neoverse-n2"));
}

#[test]
fn equal_requester_ids_behind_two_bridges_get_distinct_device_ids() {
    let platform = two_root_complexes();
    let (a, b) = (&platform.pci[0], &platform.pci[1]);
    // 00:01.0 (RID 0x0008) behind each bridge.
    assert_eq!(a.device_id(0x0008), Some(0x0008));
    assert_eq!(b.device_id(0x0008), Some(0x1_0008));
    // Bus 1 behind segment 1: the second msi-map entry.
    assert_eq!(b.device_id(0x0110), Some(0x2_0010));
    // Bus 2 behind segment 1 is in no entry: no MSIs.
    assert_eq!(b.device_id(0x0200), None);
    assert!(a
        .msi_map
        .iter()
        .chain(&b.msi_map)
        .all(|e| e.msi_controller == ITS_PHANDLE));
    // StreamIDs at the shared SMMU differ the same way.
    assert_eq!(a.stream_id(0x0008, SMMU_PHANDLE), Some(0x0008));
    assert_eq!(b.stream_id(0x0008, SMMU_PHANDLE), Some(0x1_0008));
}

#[test]
fn msi_map_mask_folds_functions_onto_one_device_id() {
    // A bridge whose MSIs carry only the device number (mask 0xf8): all
    // eight functions of 00:02 share DeviceID 0x40 + 0x10.
    let blob = tree(&[Bridge {
        domain: 2,
        ecam: 0x6000_0000,
        mem32: 0x7000_0000,
        msi_map: [0, ITS_PHANDLE, 0x40, 0x100].to_vec(),
        msi_map_mask: Some(0xf8),
        iommu_map: [0, SMMU_PHANDLE, 0, 0x1_0000].to_vec(),
    }]);
    let bridge = Platform::from_fdt(&blob).unwrap().pci.remove(0);
    assert_eq!(bridge.msi_map_mask, Some(0xf8));
    for function in 0..8u16 {
        assert_eq!(bridge.device_id(0x0010 | function), Some(0x50));
    }
    assert_eq!(
        bridge.device_id(0x0118),
        Some(0x58),
        "bus bits are masked off"
    );
}
