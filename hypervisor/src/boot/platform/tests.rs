//! `Platform::from_fdt` against QEMU's own trees (dumped with
//! `-M virt,...,dumpdtb=`, see `testdata/README.md`) and synthetic trees
//! that exercise what QEMU does not: other cell sizes, buses with `ranges`,
//! spin tables, aliases, and broken input.

use alloc::string::ToString;
use alloc::vec::Vec;

use proptest::prelude::*;
use vm_fdt::FdtWriter;

use super::*;

const GICV4: &[u8] = include_bytes!("../../../testdata/qemu-virt-gicv4.dtb");
const GICV3: &[u8] = include_bytes!("../../../testdata/qemu-virt-gicv3.dtb");
const GICV2: &[u8] = include_bytes!("../../../testdata/qemu-virt-gicv2.dtb");
const PCI_INITRD: &[u8] = include_bytes!("../../../testdata/qemu-virt-gicv4-pci-initrd.dtb");
const NUMA: &[u8] = include_bytes!("../../../testdata/qemu-virt-numa.dtb");
const SMMUV3: &[u8] = include_bytes!("../../../testdata/qemu-virt-gicv4-smmuv3.dtb");
const EDITED: &[u8] = include_bytes!("../../../testdata/qemu-edited-guest.dtb");

fn range(start: u64, size: u64) -> Range<PhysAddr> {
    Range {
        start: PhysAddr(start),
        size,
    }
}

fn ppi(number: u32) -> GicInterrupt {
    GicInterrupt {
        kind: InterruptKind::Ppi,
        number,
        flags: 4,
    }
}

fn gicv3(platform: &Platform) -> &GicV3 {
    match &platform.gic {
        Gic::V3(gic) => gic,
        Gic::V2(_) => panic!("expected a GICv3"),
    }
}

#[test]
fn qemu_virt_gicv4_memory_cpus_and_psci() {
    let platform = Platform::from_fdt(GICV4).unwrap();
    assert_eq!(platform.model, "linux,dummy-virt");
    assert_eq!(platform.compatible, ["linux,dummy-virt"]);
    assert_eq!(platform.memory, [range(0x4000_0000, 0x4000_0000)]);
    assert_eq!(platform.memory_size(), 1 << 30);
    assert!(platform.reserved.is_empty());
    let mpidrs: Vec<u64> = platform.cpus.iter().map(|c| c.mpidr).collect();
    assert_eq!(mpidrs, [0, 1, 2, 3]);
    assert!(platform
        .cpus
        .iter()
        .all(|c| c.enable_method == EnableMethod::Psci && c.available));
    assert_eq!(platform.cpus[2].node, "/cpus/cpu@2");
    let psci = platform.psci.as_ref().unwrap();
    // With virtualization=on QEMU emulates EL3 firmware: the conduit is SMC.
    assert_eq!(psci.conduit, PsciConduit::Smc);
    assert_eq!(
        psci.compatible,
        ["arm,psci-1.0", "arm,psci-0.2", "arm,psci"]
    );
    assert!(psci.has_standard_ids());
    assert_eq!(platform.initrd, None);
}

#[test]
fn qemu_virt_gicv4_gic_its_and_timer() {
    let platform = Platform::from_fdt(GICV4).unwrap();
    let gic = gicv3(&platform);
    assert_eq!(platform.gic.version(), 3);
    assert_eq!(gic.node, "/intc@8000000");
    assert_eq!(gic.distributor, range(0x0800_0000, 0x1_0000));
    assert_eq!(gic.redistributor_regions, [range(0x080a_0000, 0xf6_0000)]);
    assert_eq!(gic.redistributor_stride, None);
    assert_eq!(gic.its.len(), 1);
    assert_eq!(gic.its[0].registers, range(0x0808_0000, 0x2_0000));
    assert_eq!(gic.its[0].node, "/intc@8000000/its@8080000");
    assert_eq!(gic.maintenance, Some(ppi(9)));
    assert_eq!(
        gic.maintenance.unwrap().intid(),
        crate::ids::PhysIntId::new(25)
    );
    let timer = &platform.timer;
    assert_eq!(timer.secure_phys, Some(ppi(13)));
    assert_eq!(
        (
            timer.phys.intid().unwrap().get(),
            timer.virt.intid().unwrap().get(),
            timer.hyp_phys.intid().unwrap().get()
        ),
        (30, 27, 26)
    );
    assert_eq!(timer.hyp_virt.map(|i| i.intid().unwrap().get()), Some(28));
    assert_eq!(timer.clock_frequency, None);
}

#[test]
fn qemu_virt_gicv4_console_and_pcie() {
    let platform = Platform::from_fdt(GICV4).unwrap();
    let console = platform.console.as_ref().unwrap();
    assert_eq!(console.node, "/pl011@9000000");
    assert_eq!(console.kind, UartKind::Pl011);
    assert_eq!(console.compatible, ["arm,pl011", "arm,primecell"]);
    assert_eq!(console.registers, range(0x0900_0000, 0x1000));
    assert_eq!(console.clock_hz, Some(24_000_000));
    assert_eq!(
        console.interrupt.map(|i| i.intid().unwrap().get()),
        Some(33)
    );
    assert_eq!(console.baud, None);

    assert_eq!(platform.pci.len(), 1);
    let pci = &platform.pci[0];
    assert_eq!(pci.ecam, range(0x40_1000_0000, 0x1000_0000));
    assert_eq!((pci.first_bus, pci.last_bus), (0, 255));
    let io = pci.io().unwrap();
    assert_eq!(
        (io.pci_address, io.cpu_address, io.size),
        (0, PhysAddr(0x3eff_0000), 0x1_0000)
    );
    let mem32 = pci.mem32().unwrap();
    assert_eq!(
        (mem32.pci_address, mem32.cpu_address, mem32.size),
        (0x1000_0000, PhysAddr(0x1000_0000), 0x2eff_0000)
    );
    let mem64 = pci.mem64().unwrap();
    assert_eq!(
        (mem64.pci_address, mem64.cpu_address, mem64.size),
        (0x80_0000_0000, PhysAddr(0x80_0000_0000), 1 << 39)
    );
    let its_phandle = gicv3(&platform).its[0].phandle.unwrap();
    assert_eq!(
        pci.msi_map,
        [MsiMapEntry {
            rid_base: 0,
            msi_controller: its_phandle,
            msi_base: 0,
            length: 0x1_0000
        }]
    );
    assert_eq!(pci.msi_parent, None);
    assert!(pci.dma_coherent);
    assert_eq!(pci.domain, Some(0));
}

#[test]
fn qemu_virt_gicv3_matches_gicv4_layout() {
    let v3 = Platform::from_fdt(GICV3).unwrap();
    let v4 = Platform::from_fdt(GICV4).unwrap();
    // QEMU describes GICv3 and GICv4 identically; the version is read from hardware.
    assert_eq!(v3.gic, v4.gic);
    assert_eq!(v3.cpus, v4.cpus);
}

#[test]
fn qemu_virt_gicv2_has_all_four_frames_and_v2m() {
    let platform = Platform::from_fdt(GICV2).unwrap();
    let Gic::V2(gic) = &platform.gic else {
        panic!("expected a GICv2")
    };
    assert_eq!(platform.gic.version(), 2);
    assert_eq!(gic.distributor, range(0x0800_0000, 0x1_0000));
    assert_eq!(gic.cpu_interface, range(0x0801_0000, 0x1_0000));
    assert_eq!(gic.hyp_interface, Some(range(0x0803_0000, 0x1_0000)));
    assert_eq!(
        gic.virtual_cpu_interface,
        Some(range(0x0804_0000, 0x1_0000))
    );
    assert_eq!(gic.msi_frames, [range(0x0802_0000, 0x1000)]);
    assert_eq!(gic.maintenance, Some(ppi(9)));
    // QEMU's v2m frame has phandle 0x8006; the host bridge maps all requester IDs to it.
    assert_eq!(platform.pci[0].msi_map[0].msi_controller, 0x8006);
}

#[test]
fn qemu_initrd_is_read_from_chosen() {
    let platform = Platform::from_fdt(PCI_INITRD).unwrap();
    assert_eq!(platform.initrd, Some(range(0x4800_0000, 0x1000)));
}

#[test]
fn qemu_numa_memory_nodes_are_merged_in_address_order() {
    let platform = Platform::from_fdt(NUMA).unwrap();
    assert_eq!(
        platform.memory,
        [
            range(0x4000_0000, 0x2000_0000),
            range(0x6000_0000, 0x2000_0000)
        ]
    );
}

/// QEMU loaded a guest_fdt-generated tree with `-dtb` and edited it with
/// libfdt (memory node replaced by FDT_NOPs and re-added, bootargs and
/// initrd rewritten): what a boot loader's edits look like.
#[test]
fn tree_edited_by_libfdt_reads_through_nops() {
    let platform = Platform::from_fdt(EDITED).unwrap();
    assert_eq!(platform.memory, [range(0x4000_0000, 0x800_0000)]);
    assert_eq!(
        platform.bootargs.as_deref(),
        Some("console=ttyAMA0 from-qemu")
    );
    assert_eq!(platform.initrd, Some(range(0x4600_0000, 0xf_117c)));
    assert_eq!(platform.psci.as_ref().unwrap().conduit, PsciConduit::Hvc);
    assert_eq!(gicv3(&platform).its.len(), 1);
    assert_eq!(
        platform.console.unwrap().registers,
        range(0x0900_0000, 0x1000)
    );
    assert_eq!(platform.pci[0].ecam, range(0x40_1000_0000, 0x1000_0000));
}

#[test]
fn banner_names_the_hardware() {
    let banner = Platform::from_fdt(GICV4).unwrap().to_string();
    for expected in [
        "machine  linux,dummy-virt",
        "RAM      0x40000000 (1 GiB)",
        "CPUs     4: 0x0 0x1 0x2 0x3",
        "PSCI     Smc",
        "GIC      v3 GICD 0x8000000 (64 KiB), GICR 0x80a0000",
        "ITS      0x8080000 (128 KiB)",
        "maintenance PPI 9 (INTID 25)",
        "console  arm,pl011 0x9000000 (4 KiB), 24000000 Hz",
        "PCIe     ECAM 0x4010000000 (256 MiB) buses 0-255",
    ] {
        assert!(
            banner.contains(expected),
            "banner lacks {expected:?}:\n{banner}"
        );
    }
}

#[test]
fn qemu_virt_without_iommu_has_no_smmu_and_no_iommu_map() {
    let platform = Platform::from_fdt(GICV4).unwrap();
    assert!(platform.smmus.is_empty());
    assert!(platform.pci[0].iommu_map.is_empty());
    assert_eq!(platform.pci[0].stream_id(0x0008, 0x8007), None);
    assert!(platform
        .to_string()
        .contains("SMMU     none: DMA of PCI functions is not confined"));
}

#[test]
fn qemu_virt_smmuv3_registers_interrupts_and_coherency() {
    let platform = Platform::from_fdt(SMMUV3).unwrap();
    assert_eq!(platform.smmus.len(), 1);
    let smmu = &platform.smmus[0];
    assert_eq!(smmu.node, "/smmuv3@9050000");
    assert_eq!(smmu.registers, range(0x0905_0000, 0x2_0000));
    assert!(smmu.dma_coherent);
    assert_eq!(smmu.phandle, Some(0x8007));
    // interrupt-names = "eventq", "priq", "cmdq-sync", "gerror" on SPIs 74-77.
    let intid = |irq: Option<GicInterrupt>| irq.map(|i| i.intid().unwrap().get());
    assert_eq!(intid(smmu.eventq), Some(32 + 74));
    assert_eq!(intid(smmu.priq), Some(32 + 75));
    assert_eq!(intid(smmu.cmdq_sync), Some(32 + 76));
    assert_eq!(intid(smmu.gerror), Some(32 + 77));
    assert_eq!(smmu.combined, None);
    assert!(smmu.eventq.unwrap().kind == InterruptKind::Spi);
}

#[test]
fn qemu_virt_smmuv3_iommu_map_gives_stream_id_equal_to_requester_id() {
    let platform = Platform::from_fdt(SMMUV3).unwrap();
    let bridge = &platform.pci[0];
    assert_eq!(
        bridge.iommu_map,
        [IommuMapEntry {
            rid_base: 0,
            iommu: 0x8007,
            sid_base: 0,
            length: 0x1_0000,
        }]
    );
    assert_eq!(bridge.stream_id(0x0008, 0x8007), Some(0x0008));
    assert_eq!(bridge.stream_id(0x0108, 0x8007), Some(0x0108));
    assert_eq!(
        bridge.stream_id(0x0008, 0x8006),
        None,
        "the ITS phandle is no IOMMU"
    );
    // The msi-map is still there and separate: DeviceIDs are the RIDs too.
    assert_eq!(bridge.device_id(0x0008), Some(0x0008));
}

#[test]
fn iommu_map_offsets_and_masks_the_requester_id() {
    let mut bridge = Platform::from_fdt(SMMUV3).unwrap().pci.remove(0);
    let entry = |rid_base, sid_base, length| IommuMapEntry {
        rid_base,
        iommu: 7,
        sid_base,
        length,
    };
    bridge.iommu_map = vec![entry(0x0000, 0x100, 0x100), entry(0x0100, 0x800, 0x100)];
    assert_eq!(bridge.stream_id(0x0008, 7), Some(0x108));
    assert_eq!(bridge.stream_id(0x0108, 7), Some(0x808));
    assert_eq!(bridge.stream_id(0x0208, 7), None, "no entry covers bus 2");
    bridge.iommu_map_mask = Some(0xff);
    assert_eq!(
        bridge.stream_id(0x0208, 7),
        Some(0x108),
        "mask drops the bus"
    );
}

#[test]
fn banner_names_the_smmu() {
    let banner = Platform::from_fdt(SMMUV3).unwrap().to_string();
    assert!(
        banner.contains(
            "SMMU     v3 0x9050000 (128 KiB), eventq SPI 74 (INTID 106), gerror SPI 77 (INTID 109), coherent"
        ),
        "{banner}"
    );
    assert!(!banner.contains("not confined"));
}

/// Which parts [`synthetic`] leaves out or changes.
#[derive(Default)]
struct Variant {
    no_gic: bool,
    no_timer: bool,
    psci_method: Option<&'static str>,
    duplicate_cpu: bool,
}

/// A small tree in the shape of a real SoC: 1-cell root, devices under a
/// `/soc` simple-bus whose `ranges` move them by 0x1000_0000, a spin-table
/// CPU, /memreserve/, /reserved-memory and a console named by alias.
fn synthetic(variant: &Variant) -> Vec<u8> {
    let reservation = vm_fdt::FdtReserveEntry::new(0x8000_0000, 0x1000).unwrap();
    let mut w = FdtWriter::new_with_mem_reserv(&[reservation]).unwrap();
    let root = w.begin_node("").unwrap();
    w.property_u32("#address-cells", 1).unwrap();
    w.property_u32("#size-cells", 1).unwrap();
    w.property_string("model", "Synthetic board").unwrap();
    w.property_u32("interrupt-parent", 1).unwrap();
    let memory = w.begin_node("memory@80000000").unwrap();
    w.property_string("device_type", "memory").unwrap();
    w.property_array_u32("reg", &[0x8000_0000, 0x1000_0000, 0xa000_0000, 0x0800_0000])
        .unwrap();
    w.end_node(memory).unwrap();
    let reserved = w.begin_node("reserved-memory").unwrap();
    w.property_u32("#address-cells", 1).unwrap();
    w.property_u32("#size-cells", 1).unwrap();
    w.property_null("ranges").unwrap();
    let secure = w.begin_node("optee@8e000000").unwrap();
    w.property_array_u32("reg", &[0x8e00_0000, 0x20_0000])
        .unwrap();
    w.property_null("no-map").unwrap();
    w.end_node(secure).unwrap();
    let dynamic = w.begin_node("cma").unwrap();
    w.property_u32("size", 0x100_0000).unwrap();
    w.end_node(dynamic).unwrap();
    w.end_node(reserved).unwrap();
    let cpus = w.begin_node("cpus").unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 0).unwrap();
    for (index, mpidr) in [0x0u64, 0x1_0000_0100].into_iter().enumerate() {
        let mpidr = if variant.duplicate_cpu { 0 } else { mpidr };
        let cpu = w.begin_node(&alloc::format!("cpu@{index}")).unwrap();
        w.property_string("device_type", "cpu").unwrap();
        w.property_array_u32("reg", &[(mpidr >> 32) as u32, mpidr as u32])
            .unwrap();
        if index == 0 {
            w.property_string("enable-method", "psci").unwrap();
        } else {
            w.property_string("enable-method", "spin-table").unwrap();
            w.property_u64("cpu-release-addr", 0x8000_00f8).unwrap();
        }
        w.end_node(cpu).unwrap();
    }
    w.end_node(cpus).unwrap();
    let psci = w.begin_node("psci").unwrap();
    w.property_string("compatible", "arm,psci-0.2").unwrap();
    w.property_string("method", variant.psci_method.unwrap_or("smc"))
        .unwrap();
    w.end_node(psci).unwrap();
    if !variant.no_timer {
        let timer = w.begin_node("timer").unwrap();
        w.property_string("compatible", "arm,armv8-timer").unwrap();
        w.property_array_u32("interrupts", &[1, 14, 8, 1, 11, 8, 1, 10, 8])
            .unwrap();
        w.property_string_list(
            "interrupt-names",
            ["phys", "virt", "hyp-phys"].map(String::from).to_vec(),
        )
        .unwrap();
        w.end_node(timer).unwrap();
    }
    let aliases = w.begin_node("aliases").unwrap();
    w.property_string("serial0", "/soc/serial@1000").unwrap();
    w.end_node(aliases).unwrap();
    let chosen = w.begin_node("chosen").unwrap();
    w.property_string("stdout-path", "serial0:115200n8")
        .unwrap();
    w.property_u32("linux,initrd-start", 0x8400_0000).unwrap();
    w.property_u32("linux,initrd-end", 0x8420_0000).unwrap();
    w.property_string("bootargs", "console=ttyS0").unwrap();
    w.end_node(chosen).unwrap();
    let soc = w.begin_node("soc").unwrap();
    w.property_string("compatible", "simple-bus").unwrap();
    w.property_u32("#address-cells", 1).unwrap();
    w.property_u32("#size-cells", 1).unwrap();
    w.property_array_u32("ranges", &[0x0, 0x1000_0000, 0x1000_0000])
        .unwrap();
    if !variant.no_gic {
        let gic = w.begin_node("interrupt-controller@2000000").unwrap();
        w.property_string("compatible", "arm,gic-v3").unwrap();
        w.property_null("interrupt-controller").unwrap();
        w.property_u32("#interrupt-cells", 3).unwrap();
        w.property_u32("#redistributor-regions", 2).unwrap();
        w.property_u64("redistributor-stride", 0x4_0000).unwrap();
        let regs = [
            0x200_0000, 0x1_0000, 0x300_0000, 0x8_0000, 0x380_0000, 0x8_0000,
        ];
        w.property_array_u32("reg", &regs).unwrap();
        w.property_array_u32("interrupts", &[1, 9, 4]).unwrap();
        w.property_phandle(1).unwrap();
        w.end_node(gic).unwrap();
    }
    let serial = w.begin_node("serial@1000").unwrap();
    w.property_string_list(
        "compatible",
        ["snps,dw-apb-uart", "ns16550a"].map(String::from).to_vec(),
    )
    .unwrap();
    w.property_array_u32("reg", &[0x1000, 0x100]).unwrap();
    w.property_u32("clock-frequency", 1_843_200).unwrap();
    w.property_u32("reg-shift", 2).unwrap();
    w.property_u32("reg-io-width", 4).unwrap();
    w.property_array_u32("interrupts", &[0, 5, 4]).unwrap();
    w.end_node(serial).unwrap();
    w.end_node(soc).unwrap();
    w.end_node(root).unwrap();
    w.finish().unwrap()
}

#[test]
fn synthetic_board_translates_through_soc_ranges() {
    let platform = Platform::from_fdt(&synthetic(&Variant::default())).unwrap();
    assert_eq!(platform.model, "Synthetic board");
    assert_eq!(
        platform.memory,
        [
            range(0x8000_0000, 0x1000_0000),
            range(0xa000_0000, 0x0800_0000)
        ]
    );
    let gic = gicv3(&platform);
    assert_eq!(gic.distributor, range(0x1200_0000, 0x1_0000));
    assert_eq!(
        gic.redistributor_regions,
        [range(0x1300_0000, 0x8_0000), range(0x1380_0000, 0x8_0000)]
    );
    assert_eq!(gic.redistributor_stride, Some(0x4_0000));
    assert!(gic.its.is_empty());
    let console = platform.console.unwrap();
    assert_eq!(console.node, "/soc/serial@1000");
    assert_eq!(console.kind, UartKind::Ns16550);
    assert_eq!(console.registers, range(0x1000_1000, 0x100));
    assert_eq!(
        (console.baud, console.clock_hz),
        (Some(115_200), Some(1_843_200))
    );
    assert_eq!((console.reg_shift, console.reg_io_width), (2, 4));
    assert_eq!(
        console.interrupt.map(|i| i.intid().unwrap().get()),
        Some(37)
    );
}

#[test]
fn synthetic_board_cpus_reservations_timer_and_chosen() {
    let platform = Platform::from_fdt(&synthetic(&Variant::default())).unwrap();
    assert_eq!(platform.cpus[1].mpidr, 0x1_0000_0100);
    assert_eq!(
        platform.cpus[1].enable_method,
        EnableMethod::SpinTable {
            release_address: PhysAddr(0x8000_00f8)
        }
    );
    let reserved: Vec<_> = platform
        .reserved
        .iter()
        .map(|r| (r.name.as_str(), r.range, r.no_map))
        .collect();
    assert_eq!(
        reserved,
        [
            ("/memreserve/", range(0x8000_0000, 0x1000), false),
            (
                "/reserved-memory/optee@8e000000",
                range(0x8e00_0000, 0x20_0000),
                true
            )
        ]
    );
    let timer = &platform.timer;
    assert_eq!(
        (
            timer.phys.intid().unwrap().get(),
            timer.virt.intid().unwrap().get(),
            timer.hyp_phys.intid().unwrap().get()
        ),
        (30, 27, 26)
    );
    assert_eq!((timer.secure_phys, timer.hyp_virt), (None, None));
    assert!(timer.phys.is_level());
    assert_eq!(platform.initrd, Some(range(0x8400_0000, 0x20_0000)));
    assert_eq!(platform.bootargs.as_deref(), Some("console=ttyS0"));
    assert!(platform.pci.is_empty());
}

#[test]
fn missing_gic_is_an_error_naming_it() {
    let error = Platform::from_fdt(&synthetic(&Variant {
        no_gic: true,
        ..Variant::default()
    }))
    .unwrap_err();
    assert!(
        matches!(error, PlatformError::MissingNode { node } if node.contains("arm,gic-v3")),
        "{error}"
    );
}

#[test]
fn missing_timer_is_an_error_naming_it() {
    let error = Platform::from_fdt(&synthetic(&Variant {
        no_timer: true,
        ..Variant::default()
    }))
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "device tree has no timer (arm,armv8-timer)"
    );
}

#[test]
fn bad_psci_method_names_node_and_property() {
    let error = Platform::from_fdt(&synthetic(&Variant {
        psci_method: Some("svc"),
        ..Variant::default()
    }))
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "device tree node /psci: property method: neither \"hvc\" nor \"smc\""
    );
}

#[test]
fn duplicate_mpidr_is_rejected() {
    let error = Platform::from_fdt(&synthetic(&Variant {
        duplicate_cpu: true,
        ..Variant::default()
    }))
    .unwrap_err();
    assert_eq!(
        error,
        PlatformError::BadProperty {
            node: "/cpus/cpu@1".into(),
            property: "reg",
            reason: "MPIDR listed twice"
        }
    );
}

#[test]
fn non_trees_and_truncated_trees_are_errors() {
    assert!(matches!(
        Platform::from_fdt(&[]),
        Err(PlatformError::Malformed(_))
    ));
    assert!(matches!(
        Platform::from_fdt(&[0xd0, 0x0d, 0xfe, 0xed]),
        Err(PlatformError::Malformed(_))
    ));
    assert!(matches!(
        Platform::from_fdt(&GICV4[..GICV4.len() / 2]),
        Err(PlatformError::Malformed(_))
    ));
    let mut wrong_magic = GICV4.to_vec();
    wrong_magic[0] = 0;
    assert!(matches!(
        Platform::from_fdt(&wrong_magic),
        Err(PlatformError::Malformed(_))
    ));
}

proptest! {
    /// Corrupting any bytes of a real tree gives a platform or an error, never a panic.
    #[test]
    fn corrupt_trees_never_panic(edits in proptest::collection::vec((0..GICV4.len(), any::<u8>()), 1..8)) {
        let mut blob = GICV4.to_vec();
        for (offset, byte) in edits {
            blob[offset] = byte;
        }
        let _ = Platform::from_fdt(&blob);
    }
}
