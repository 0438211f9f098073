//! Generated trees parsed back with the `fdt` crate (an independent reader)
//! and with our own `Platform::from_fdt`, property by property.

use alloc::string::String;
use alloc::vec::Vec;

use fdt::node::FdtNode;
use fdt::Fdt;
use proptest::prelude::*;

use super::nodes::{PHANDLE_CLOCK, PHANDLE_GIC, PHANDLE_ITS};
use super::*;
use crate::boot::platform::{self, Platform};

fn ipa(start: u64, size: u64) -> Range<Ipa> {
    Range {
        start: Ipa(start),
        size,
    }
}

/// A Linux partition laid out like QEMU virt, with every optional piece.
fn full_config() -> GuestFdtConfig {
    GuestFdtConfig {
        name: String::from("linux0"),
        ram: ipa(0x4000_0000, 0x800_0000),
        vcpu_mpidrs: GuestFdtConfig::linear_mpidrs(2),
        gic: GuestGic {
            distributor: ipa(0x0800_0000, 0x1_0000),
            redistributors: ipa(0x080a_0000, 2 * GICR_FRAME_SIZE),
            its: Some(ipa(0x0808_0000, 0x2_0000)),
            extra_its: vec![ipa(0x0a00_0000, 0x2_0000)],
        },
        console: Some(GuestConsole {
            registers: ipa(0x0900_0000, 0x1000),
            spi: 1,
        }),
        bootargs: String::from("console=ttyAMA0 rdinit=/init"),
        initrd: Some(ipa(0x4400_0000, 0x10_0000)),
        pci: Some(GuestPci {
            ecam: ipa(0x40_1000_0000, 0x1000_0000),
            first_bus: 0,
            last_bus: 255,
            mem32: Some(GuestPciWindow {
                cpu: ipa(0x1000_0000, 0x2eff_0000),
                pci_address: 0x1000_0000,
            }),
            mem64: Some(GuestPciWindow {
                cpu: ipa(0x80_0000_0000, 0x80_0000_0000),
                pci_address: 0x80_0000_0000,
            }),
            msi_base: 0,
            dma_coherent: true,
        }),
        boot_count: 3,
    }
}

/// The smallest useful partition: RAM, one vCPU, a GIC without ITS.
fn minimal_config() -> GuestFdtConfig {
    GuestFdtConfig {
        name: String::from("tiny"),
        ram: ipa(0x4000_0000, 0x20_0000),
        vcpu_mpidrs: GuestFdtConfig::linear_mpidrs(1),
        gic: GuestGic {
            distributor: ipa(0x0800_0000, 0x1_0000),
            redistributors: ipa(0x080a_0000, GICR_FRAME_SIZE),
            its: None,
            extra_its: Vec::new(),
        },
        console: None,
        bootargs: String::new(),
        initrd: None,
        pci: None,
        boot_count: 0,
    }
}

/// A property's value as big-endian cells.
fn cells(node: FdtNode, name: &str) -> Vec<u32> {
    let value = node
        .property(name)
        .unwrap_or_else(|| panic!("{} lacks {name}", node.name))
        .value;
    value
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// A property's value as strings.
fn strings<'a>(node: FdtNode<'_, 'a>, name: &str) -> Vec<&'a str> {
    let value = node
        .property(name)
        .unwrap_or_else(|| panic!("{} lacks {name}", node.name))
        .value;
    value
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| core::str::from_utf8(s).unwrap())
        .collect()
}

fn split64(values: &[u64]) -> Vec<u32> {
    values
        .iter()
        .flat_map(|&v| [(v >> 32) as u32, v as u32])
        .collect()
}

#[test]
fn root_memory_and_chosen() {
    let blob = generate(&full_config()).unwrap();
    let fdt = Fdt::new(&blob).unwrap();
    let root = fdt.find_node("/").unwrap();
    assert_eq!(cells(root, "#address-cells"), [2]);
    assert_eq!(cells(root, "#size-cells"), [2]);
    assert_eq!(strings(root, "compatible"), [ROOT_COMPATIBLE]);
    assert_eq!(fdt.root().model(), "hypervisor partition linux0");
    assert_eq!(cells(root, "interrupt-parent"), [PHANDLE_GIC]);

    let memory = fdt.find_node("/memory@40000000").unwrap();
    assert_eq!(strings(memory, "device_type"), ["memory"]);
    assert_eq!(cells(memory, "reg"), split64(&[0x4000_0000, 0x800_0000]));

    let chosen = fdt.chosen();
    assert_eq!(chosen.bootargs(), Some("console=ttyAMA0 rdinit=/init"));
    let chosen_node = fdt.find_node("/chosen").expect("/chosen");
    assert_eq!(
        chosen_node
            .property("hv,boot-count")
            .and_then(|p| p.as_usize()),
        Some(3)
    );
    assert_eq!(
        chosen_node
            .property("hv,partition")
            .and_then(|p| p.as_str()),
        Some("linux0")
    );
    assert_eq!(chosen.stdout().unwrap().name, "serial@9000000");
    let chosen = fdt.find_node("/chosen").unwrap();
    assert_eq!(cells(chosen, "linux,initrd-start"), split64(&[0x4400_0000]));
    assert_eq!(cells(chosen, "linux,initrd-end"), split64(&[0x4410_0000]));
    assert_eq!(
        strings(fdt.find_node("/aliases").unwrap(), "serial0"),
        ["/serial@9000000"]
    );
}

#[test]
fn cpus_psci_and_timer() {
    let blob = generate(&full_config()).unwrap();
    let fdt = Fdt::new(&blob).unwrap();
    let cpus = fdt.find_node("/cpus").unwrap();
    assert_eq!(cells(cpus, "#address-cells"), [1]);
    assert_eq!(cells(cpus, "#size-cells"), [0]);
    let names: Vec<&str> = cpus.children().map(|c| c.name).collect();
    assert_eq!(names, ["cpu@0", "cpu@1"]);
    for (index, cpu) in cpus.children().enumerate() {
        assert_eq!(cells(cpu, "reg"), [index as u32]);
        assert_eq!(strings(cpu, "device_type"), ["cpu"]);
        assert_eq!(strings(cpu, "enable-method"), ["psci"]);
    }
    let psci = fdt.find_node("/psci").unwrap();
    assert_eq!(
        strings(psci, "compatible"),
        ["arm,psci-1.0", "arm,psci-0.2"]
    );
    assert_eq!(strings(psci, "method"), ["hvc"]);
    let timer = fdt.find_node("/timer").unwrap();
    assert_eq!(strings(timer, "compatible"), ["arm,armv8-timer"]);
    assert_eq!(
        cells(timer, "interrupts"),
        [1, 13, 8, 1, 14, 8, 1, 11, 8, 1, 10, 8]
    );
    assert!(timer.property("always-on").is_none());
}

#[test]
fn gic_and_its() {
    let blob = generate(&full_config()).unwrap();
    let fdt = Fdt::new(&blob).unwrap();
    let gic = fdt.find_phandle(PHANDLE_GIC).unwrap();
    assert_eq!(gic.name, "interrupt-controller@8000000");
    assert_eq!(strings(gic, "compatible"), ["arm,gic-v3"]);
    assert!(gic.property("interrupt-controller").is_some());
    assert_eq!(cells(gic, "#interrupt-cells"), [3]);
    assert_eq!(cells(gic, "#address-cells"), [2]);
    assert_eq!(cells(gic, "#size-cells"), [2]);
    assert_eq!(gic.property("ranges").unwrap().value, []);
    assert_eq!(
        cells(gic, "reg"),
        split64(&[0x0800_0000, 0x1_0000, 0x080a_0000, 0x4_0000])
    );
    assert_eq!(cells(gic, "#redistributor-regions"), [1]);
    let all: Vec<FdtNode> = gic.children().collect();
    assert_eq!(all.len(), 2, "the first ITS and one more");
    let second = all[1];
    assert_eq!(second.name, "msi-controller@a000000");
    assert_eq!(cells(second, "reg"), split64(&[0x0a00_0000, 0x2_0000]));
    assert_eq!(cells(second, "phandle"), [PHANDLE_CLOCK + 1]);
    let its = all[0];
    assert_eq!(its.name, "msi-controller@8080000");
    assert_eq!(strings(its, "compatible"), ["arm,gic-v3-its"]);
    assert!(its.property("msi-controller").is_some());
    assert_eq!(cells(its, "#msi-cells"), [1]);
    assert_eq!(cells(its, "reg"), split64(&[0x0808_0000, 0x2_0000]));
    assert_eq!(cells(its, "phandle"), [PHANDLE_ITS]);
}

#[test]
fn pl011_with_fixed_clock() {
    let blob = generate(&full_config()).unwrap();
    let fdt = Fdt::new(&blob).unwrap();
    let uart = fdt.find_node("/serial@9000000").unwrap();
    assert_eq!(strings(uart, "compatible"), ["arm,pl011", "arm,primecell"]);
    assert_eq!(cells(uart, "reg"), split64(&[0x0900_0000, 0x1000]));
    assert_eq!(cells(uart, "interrupts"), [0, 1, 4]);
    assert_eq!(strings(uart, "clock-names"), ["uartclk", "apb_pclk"]);
    assert_eq!(cells(uart, "clocks"), [PHANDLE_CLOCK, PHANDLE_CLOCK]);
    let clock = fdt.find_phandle(PHANDLE_CLOCK).unwrap();
    assert_eq!(strings(clock, "compatible"), ["fixed-clock"]);
    assert_eq!(cells(clock, "#clock-cells"), [0]);
    assert_eq!(cells(clock, "clock-frequency"), [24_000_000]);
}

#[test]
fn pcie_host_bridge() {
    let blob = generate(&full_config()).unwrap();
    let fdt = Fdt::new(&blob).unwrap();
    let pcie = fdt.find_node("/pcie@4010000000").unwrap();
    assert_eq!(strings(pcie, "compatible"), ["pci-host-ecam-generic"]);
    assert_eq!(strings(pcie, "device_type"), ["pci"]);
    assert_eq!(cells(pcie, "reg"), split64(&[0x40_1000_0000, 0x1000_0000]));
    assert_eq!(cells(pcie, "bus-range"), [0, 255]);
    assert_eq!(cells(pcie, "#address-cells"), [3]);
    assert_eq!(cells(pcie, "#size-cells"), [2]);
    #[rustfmt::skip]
    let ranges = [
        0x0200_0000, 0, 0x1000_0000, 0, 0x1000_0000, 0, 0x2eff_0000,
        0x0300_0000, 0x80, 0, 0x80, 0, 0x80, 0,
    ];
    assert_eq!(cells(pcie, "ranges"), ranges);
    assert_eq!(cells(pcie, "msi-map"), [0, PHANDLE_ITS, 0, 0x1_0000]);
    assert!(pcie.property("dma-coherent").is_some());
}

#[test]
fn msi_map_carries_the_deviceid_base_and_bus_range() {
    let mut cfg = full_config();
    let pci = cfg.pci.as_mut().unwrap();
    (pci.msi_base, pci.last_bus, pci.ecam.size) = (0x100, 15, 16 << 20);
    let blob = generate(&cfg).unwrap();
    let fdt = Fdt::new(&blob).unwrap();
    let pcie = fdt.find_node("/pcie@4010000000").unwrap();
    assert_eq!(cells(pcie, "msi-map"), [0, PHANDLE_ITS, 0x100, 0x1000]);
    assert_eq!(cells(pcie, "bus-range"), [0, 15]);
}

#[test]
fn linux_required_properties_exist() {
    let blob = generate(&full_config()).unwrap();
    let fdt = Fdt::new(&blob).unwrap();
    #[rustfmt::skip]
    let required: &[(&str, &[&str])] = &[
        ("/", &["#address-cells", "#size-cells", "compatible", "model", "interrupt-parent"]),
        ("/memory@40000000", &["device_type", "reg"]),
        ("/cpus", &["#address-cells", "#size-cells"]),
        ("/cpus/cpu@0", &["device_type", "reg", "enable-method"]),
        ("/psci", &["compatible", "method"]),
        ("/timer", &["compatible", "interrupts"]),
        ("/interrupt-controller@8000000", &["compatible", "interrupt-controller", "#interrupt-cells", "reg", "ranges"]),
        ("/interrupt-controller@8000000/msi-controller@8080000", &["compatible", "msi-controller", "#msi-cells", "reg", "phandle"]),
        ("/serial@9000000", &["compatible", "reg", "interrupts", "clocks", "clock-names"]),
        ("/apb-pclk", &["compatible", "#clock-cells", "clock-frequency"]),
        ("/pcie@4010000000", &["compatible", "device_type", "reg", "bus-range", "ranges", "msi-map", "#address-cells", "#size-cells"]),
        ("/chosen", &["bootargs", "stdout-path", "linux,initrd-start", "linux,initrd-end"]),
    ];
    for (path, properties) in required {
        let node = fdt.find_node(path).unwrap_or_else(|| panic!("no {path}"));
        for property in *properties {
            assert!(node.property(property).is_some(), "{path} lacks {property}");
        }
    }
}

#[test]
fn our_platform_parser_reads_back_the_same_machine() {
    let blob = generate(&full_config()).unwrap();
    let guest = Platform::from_fdt(&blob).unwrap();
    assert_eq!(guest.memory.len(), 1);
    assert_eq!(
        (guest.memory[0].start.raw(), guest.memory[0].size),
        (0x4000_0000, 0x800_0000)
    );
    assert_eq!(
        guest.cpus.iter().map(|c| c.mpidr).collect::<Vec<_>>(),
        [0, 1]
    );
    assert_eq!(guest.psci.unwrap().conduit, platform::PsciConduit::Hvc);
    let platform::Gic::V3(gic) = &guest.gic else {
        panic!("expected GICv3")
    };
    assert_eq!(gic.its[0].registers.start.raw(), 0x0808_0000);
    assert_eq!(gic.redistributor_regions[0].size, 0x4_0000);
    assert_eq!(
        (
            guest.timer.phys.intid().unwrap().get(),
            guest.timer.virt.intid().unwrap().get()
        ),
        (30, 27)
    );
    let console = guest.console.unwrap();
    assert_eq!(
        (console.registers.start.raw(), console.clock_hz),
        (0x0900_0000, Some(24_000_000))
    );
    assert_eq!(console.interrupt.unwrap().intid().unwrap().get(), 33);
    let pci = &guest.pci[0];
    assert_eq!(pci.mem64().unwrap().cpu_address.raw(), 0x80_0000_0000);
    assert_eq!(pci.msi_map[0].msi_controller, gic.its[0].phandle.unwrap());
    assert_eq!(
        guest.initrd.map(|r| (r.start.raw(), r.size)),
        Some((0x4400_0000, 0x10_0000))
    );
}

#[test]
fn minimal_partition_leaves_optional_nodes_out() {
    let blob = generate(&minimal_config()).unwrap();
    let fdt = Fdt::new(&blob).unwrap();
    let gic = fdt.find_node("/interrupt-controller@8000000").unwrap();
    assert_eq!(gic.children().count(), 0);
    for absent in ["/serial", "/apb-pclk", "/pcie", "/aliases"] {
        assert!(fdt.find_node(absent).is_none(), "{absent} present");
    }
    let chosen = fdt.find_node("/chosen").unwrap();
    assert!(chosen.property("stdout-path").is_none());
    assert!(chosen.property("linux,initrd-start").is_none());
    assert_eq!(strings(chosen, "bootargs"), Vec::<&str>::new());
}

#[test]
fn mpidrs_with_aff3_get_two_address_cells() {
    let mut cfg = minimal_config();
    cfg.vcpu_mpidrs = Vec::from([0x0, 0x1_0000_0100]);
    cfg.gic.redistributors.size = 2 * GICR_FRAME_SIZE;
    let blob = generate(&cfg).unwrap();
    let fdt = Fdt::new(&blob).unwrap();
    assert_eq!(
        cells(fdt.find_node("/cpus").unwrap(), "#address-cells"),
        [2]
    );
    assert_eq!(
        cells(fdt.find_node("/cpus/cpu@100000100").unwrap(), "reg"),
        [1, 0x100]
    );
}

fn error_of(edit: impl FnOnce(&mut GuestFdtConfig)) -> GuestFdtError {
    let mut cfg = full_config();
    edit(&mut cfg);
    generate(&cfg).unwrap_err()
}

fn invalid(field: &'static str, reason: &'static str) -> GuestFdtError {
    GuestFdtError::Invalid { field, reason }
}

#[test]
fn rejects_bad_vcpu_lists() {
    assert_eq!(
        error_of(|c| c.vcpu_mpidrs.clear()),
        invalid("vcpu_mpidrs", "no vCPUs")
    );
    assert_eq!(
        error_of(|c| c.vcpu_mpidrs = Vec::from([1, 1])),
        invalid("vcpu_mpidrs", "an MPIDR is listed twice")
    );
    let error = error_of(|c| c.vcpu_mpidrs = Vec::from([1 << 31]));
    assert_eq!(
        error,
        invalid("vcpu_mpidrs", "an MPIDR has bits outside Aff3..Aff0")
    );
    let error = error_of(|c| c.vcpu_mpidrs = GuestFdtConfig::linear_mpidrs(3));
    assert_eq!(
        error,
        invalid("gic.redistributors", "smaller than 128 KiB per vCPU")
    );
}

#[test]
fn rejects_overlapping_windows() {
    let error = error_of(|c| c.console.as_mut().unwrap().registers.start = Ipa(0x4000_1000));
    assert_eq!(
        error,
        GuestFdtError::Overlap {
            first: "ram",
            second: "console.registers"
        }
    );
    assert_eq!(
        error.to_string(),
        "guest device tree: ram overlaps console.registers"
    );
    let error = error_of(|c| c.gic.its = Some(ipa(0x080b_0000, 0x2_0000)));
    assert_eq!(
        error,
        GuestFdtError::Overlap {
            first: "gic.redistributors",
            second: "gic.its"
        }
    );
    let error = error_of(|c| {
        c.pci.as_mut().unwrap().mem64.as_mut().unwrap().cpu = ipa(0x40_0000_0000, 0x2000_0000)
    });
    assert_eq!(
        error,
        GuestFdtError::Overlap {
            first: "pci.ecam",
            second: "pci.mem64"
        }
    );
}

#[test]
fn rejects_malformed_windows() {
    assert_eq!(error_of(|c| c.ram.size = 0), invalid("ram", "empty"));
    assert_eq!(
        error_of(|c| c.ram.start = Ipa(0x4000_0800)),
        invalid("ram", "not 4 KiB aligned")
    );
    let error = error_of(|c| c.ram = ipa(0xffff_ffff_ffff_f000, 0x2000));
    assert_eq!(
        error,
        invalid("ram", "wraps past the end of the address space")
    );
    assert_eq!(
        error_of(|c| c.initrd = Some(ipa(0x5000_0000, 0x1000))),
        invalid("initrd", "empty or not inside ram")
    );
    assert_eq!(
        error_of(|c| c.bootargs.push('\0')),
        invalid("bootargs", "contains a NUL")
    );
    assert_eq!(
        error_of(|c| c.console.as_mut().unwrap().spi = 988),
        invalid("console.spi", "beyond the last SPI (987)")
    );
}

#[test]
fn rejects_inconsistent_pci() {
    let error = error_of(|c| {
        c.gic.its = None;
        c.gic.extra_its.clear();
    });
    assert_eq!(
        error,
        invalid("gic.its", "a PCI host bridge needs an ITS for its MSIs")
    );
    assert_eq!(
        error_of(|c| c.gic.its = None),
        invalid("gic.extra_its", "further ITSs without a first one")
    );
    let error = error_of(|c| {
        (
            c.pci.as_mut().unwrap().first_bus,
            c.pci.as_mut().unwrap().last_bus,
        ) = (10, 5)
    });
    assert_eq!(error, invalid("pci.last_bus", "below pci.first_bus"));
    let error = error_of(|c| c.pci.as_mut().unwrap().ecam.size = 0x100_0000);
    assert_eq!(
        error,
        invalid("pci.ecam", "smaller than 1 MiB per bus of the bus range")
    );
    let error =
        error_of(|c| c.pci.as_mut().unwrap().mem32.as_mut().unwrap().pci_address = 0xf000_0000);
    assert_eq!(error, invalid("pci.mem32", "PCI addresses not below 4 GiB"));
    let error =
        error_of(|c| (c.pci.as_mut().unwrap().mem32, c.pci.as_mut().unwrap().mem64) = (None, None));
    assert_eq!(error, invalid("pci", "no memory window"));
    let error = error_of(|c| c.pci.as_mut().unwrap().msi_base = u32::MAX);
    assert_eq!(error, invalid("pci.msi_base", "DeviceIDs overflow 32 bits"));
}

proptest! {
    /// Any vCPU count the redistributor region holds yields one cpu node per vCPU.
    #[test]
    fn every_vcpu_gets_a_cpu_node(count in 1usize..=16) {
        let mut cfg = minimal_config();
        cfg.vcpu_mpidrs = GuestFdtConfig::linear_mpidrs(count);
        cfg.gic.redistributors.size = count as u64 * GICR_FRAME_SIZE;
        let blob = generate(&cfg).unwrap();
        let fdt = Fdt::new(&blob).unwrap();
        prop_assert_eq!(fdt.cpus().count(), count);
        let reported = Platform::from_fdt(&blob).unwrap();
        prop_assert_eq!(reported.cpus.len(), count);
    }
}

/// A partition on a GICv2 host (the Raspberry Pi 4's GIC-400): QEMU
/// virt's GICv2 frame addresses, no PCIe.
fn gicv2_config() -> (GuestFdtConfig, GuestGicV2) {
    let mut cfg = full_config();
    cfg.pci = None;
    let gic = GuestGicV2 {
        distributor: ipa(0x0800_0000, 0x1000),
        cpu_interface: ipa(0x0801_0000, 0x2000),
    };
    (cfg, gic)
}

#[test]
fn gicv2_partition_gets_a_gic400_node_and_ppi_cpu_masks() {
    let (cfg, gic) = gicv2_config();
    let blob = generate_gicv2(&cfg, &gic).unwrap();
    let fdt = Fdt::new(&blob).unwrap();
    let node = fdt.find_node("/interrupt-controller@8000000").unwrap();
    assert_eq!(strings(node, "compatible"), ["arm,gic-400"]);
    assert_eq!(
        cells(node, "reg"),
        split64(&[0x0800_0000, 0x1000, 0x0801_0000, 0x2000])
    );
    assert_eq!(cells(node, "#interrupt-cells"), [3]);
    assert_eq!(cells(node, "phandle"), [PHANDLE_GIC]);
    assert!(fdt.find_compatible(&["arm,gic-v3"]).is_none());
    assert!(fdt.find_compatible(&["arm,gic-v3-its"]).is_none());
    // Two vCPUs: CPU mask 0b11 in bits [15:8] of each timer PPI's flags.
    let timer = fdt.find_node("/timer").unwrap();
    assert_eq!(
        cells(timer, "interrupts"),
        [1, 13, 0x308, 1, 14, 0x308, 1, 11, 0x308, 1, 10, 0x308]
    );
    // Our own parser reads it back as a GICv2 with the same frames.
    let guest = Platform::from_fdt(&blob).unwrap();
    let platform::Gic::V2(v2) = &guest.gic else {
        panic!("expected a GICv2")
    };
    assert_eq!(
        (v2.distributor.start.raw(), v2.cpu_interface.start.raw()),
        (0x0800_0000, 0x0801_0000)
    );
    assert_eq!(v2.cpu_interface.size, 0x2000);
    assert_eq!(guest.timer.virt.intid().unwrap().get(), 27);
    assert_eq!(
        guest
            .console
            .unwrap()
            .interrupt
            .unwrap()
            .intid()
            .unwrap()
            .get(),
        33
    );
}

#[test]
fn gicv2_partition_refuses_pci_too_many_vcpus_and_bad_frames() {
    let (cfg, gic) = gicv2_config();
    let error = |cfg: &GuestFdtConfig, gic: &GuestGicV2| generate_gicv2(cfg, gic).unwrap_err();
    let with_pci = GuestFdtConfig {
        pci: full_config().pci,
        ..cfg.clone()
    };
    assert_eq!(
        error(&with_pci, &gic),
        invalid("pci", "a GICv2 guest has no ITS for MSIs")
    );
    let nine = GuestFdtConfig {
        vcpu_mpidrs: GuestFdtConfig::linear_mpidrs(9),
        gic: GuestGic {
            redistributors: ipa(0x080a_0000, 9 * GICR_FRAME_SIZE),
            ..cfg.gic.clone()
        },
        ..cfg.clone()
    };
    assert_eq!(
        error(&nine, &gic),
        invalid("vcpu_mpidrs", "a GICv2 addresses at most 8 vCPUs")
    );
    let small = GuestGicV2 {
        cpu_interface: ipa(0x0801_0000, 0x1000),
        ..gic.clone()
    };
    assert_eq!(
        error(&cfg, &small),
        invalid("gic_v2.cpu_interface", "smaller than the 8 KiB GICC frame")
    );
    let on_console = GuestGicV2 {
        cpu_interface: ipa(0x0900_0000, 0x2000),
        ..gic
    };
    assert_eq!(
        error(&cfg, &on_console),
        GuestFdtError::Overlap {
            first: "gic_v2.cpu_interface",
            second: "console.registers"
        }
    );
}
