//! Writes the guest's nodes with `vm-fdt`, one function per node. The
//! configuration has been validated; only the writer can still fail.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use vm_fdt::FdtWriter;

use super::UART_CLOCK_HZ;
use super::{
    GuestConsole, GuestFdtConfig, GuestFdtError, GuestGic, GuestGicV2, GuestPci, ROOT_COMPATIBLE,
};
use crate::mm::addr::{Ipa, Range};

/// phandle of the GIC: the root's `interrupt-parent`.
pub(super) const PHANDLE_GIC: u32 = 1;
/// phandle of the ITS: the host bridge's `msi-map` target.
pub(super) const PHANDLE_ITS: u32 = 2;
/// phandle of the UART's fixed reference clock.
pub(super) const PHANDLE_CLOCK: u32 = 3;

/// Interrupt specifier first cell (arm,gic-v3.yaml): SPI or PPI.
const GIC_SPI: u32 = 0;
const GIC_PPI: u32 = 1;
/// Trigger flags (include/dt-bindings/interrupt-controller/irq.h).
const IRQ_TYPE_LEVEL_HIGH: u32 = 4;
const IRQ_TYPE_LEVEL_LOW: u32 = 8;
/// arch_timer.yaml order: secure phys, non-secure phys, virt, hyp phys
/// (PPIs 13, 14, 11, 10 = INTIDs 29, 30, 27, 26, the SBSA assignment).
const TIMER_PPIS: [u32; 4] = [13, 14, 11, 10];
/// phys.hi cells of a PCI `ranges` entry: 32- and 64-bit memory space.
const PCI_MEM32: u32 = 0x0200_0000;
const PCI_MEM64: u32 = 0x0300_0000;

type Result<T> = core::result::Result<T, GuestFdtError>;

/// A (start, size) pair as four cells of a 2-address-cell, 2-size-cell `reg`.
fn reg_cells(range: &Range<Ipa>) -> [u64; 2] {
    [range.start.raw(), range.size]
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|s| s.to_string()).collect()
}

/// Which interrupt controller the guest gets.
pub(super) enum GicNode<'c> {
    /// A GICv3 (`arm,gic-v3`) with its ITSs.
    V3(&'c GuestGic),
    /// A GICv2 (`arm,gic-400`) on a GICv2 host.
    V2(&'c GuestGicV2),
}

/// Writes the whole tree.
pub(super) fn write(cfg: &GuestFdtConfig, gic_node: GicNode) -> Result<Vec<u8>> {
    let mut w = FdtWriter::new()?;
    let root = w.begin_node("")?;
    w.property_u32("#address-cells", 2)?;
    w.property_u32("#size-cells", 2)?;
    w.property_string("compatible", ROOT_COMPATIBLE)?;
    w.property_string("model", &format!("hypervisor partition {}", cfg.name))?;
    w.property_u32("interrupt-parent", PHANDLE_GIC)?;
    let memory = w.begin_node(&format!("memory@{:x}", cfg.ram.start.raw()))?;
    w.property_string("device_type", "memory")?;
    w.property_array_u64("reg", &reg_cells(&cfg.ram))?;
    w.end_node(memory)?;
    cpus(&mut w, &cfg.vcpu_mpidrs)?;
    psci(&mut w)?;
    // arm,gic.yaml: a GICv2 PPI specifier's flags carry, in bits [15:8],
    // the CPUs the PPI is wired to; a GICv3 has no such field.
    match gic_node {
        GicNode::V3(gic_v3) => {
            timer(&mut w, 0)?;
            gic(&mut w, gic_v3)?;
        }
        GicNode::V2(gic_v2) => {
            let mask = (1u32 << cfg.vcpu_mpidrs.len().min(8)) - 1;
            timer(&mut w, mask << 8)?;
            gic400(&mut w, gic_v2)?;
        }
    }
    if let Some(console) = &cfg.console {
        uart(&mut w, console)?;
    }
    if let Some(pci) = &cfg.pci {
        pcie(&mut w, pci)?;
    }
    chosen(&mut w, cfg)?;
    w.end_node(root)?;
    Ok(w.finish()?)
}

/// cpus.yaml: one node per vCPU, `reg` = MPIDR affinity, started by PSCI.
fn cpus(w: &mut FdtWriter, mpidrs: &[u64]) -> Result<()> {
    // One cell suffices unless some vCPU has a non-zero Aff3 (bits 39:32).
    let two_cells = mpidrs.iter().any(|&m| m > u64::from(u32::MAX));
    let cpus = w.begin_node("cpus")?;
    w.property_u32("#address-cells", if two_cells { 2 } else { 1 })?;
    w.property_u32("#size-cells", 0)?;
    for &mpidr in mpidrs {
        let cpu = w.begin_node(&format!("cpu@{mpidr:x}"))?;
        w.property_string("device_type", "cpu")?;
        w.property_string("compatible", "arm,armv8")?;
        if two_cells {
            w.property_u64("reg", mpidr)?;
        } else {
            w.property_u32("reg", mpidr as u32)?;
        }
        w.property_string("enable-method", "psci")?;
        w.end_node(cpu)?;
    }
    w.end_node(cpus)?;
    Ok(())
}

/// psci.yaml: PSCI 1.0 (with the 0.2 function IDs) through HVC, which the
/// hypervisor traps and emulates for the partition.
fn psci(w: &mut FdtWriter) -> Result<()> {
    let psci = w.begin_node("psci")?;
    w.property_string_list("compatible", strings(&["arm,psci-1.0", "arm,psci-0.2"]))?;
    w.property_string("method", "hvc")?;
    w.end_node(psci)?;
    Ok(())
}

/// arch_timer.yaml: the four EL1/EL2 timer PPIs, level-low as on Arm's
/// own boards; `cpu_mask` is OR-ed into the flags (GICv2's PPI CPU mask).
fn timer(w: &mut FdtWriter, cpu_mask: u32) -> Result<()> {
    let timer = w.begin_node("timer")?;
    w.property_string("compatible", "arm,armv8-timer")?;
    let cells: Vec<u32> = TIMER_PPIS
        .iter()
        .flat_map(|&ppi| [GIC_PPI, ppi, IRQ_TYPE_LEVEL_LOW | cpu_mask])
        .collect();
    w.property_array_u32("interrupts", &cells)?;
    w.end_node(timer)?;
    Ok(())
}

/// arm,gic-v3.yaml: GICD then one redistributor region; the ITS
/// (arm,gic-v3-its) as a child, reached through the empty `ranges`.
fn gic(w: &mut FdtWriter, gic: &GuestGic) -> Result<()> {
    let node = w.begin_node(&format!(
        "interrupt-controller@{:x}",
        gic.distributor.start.raw()
    ))?;
    w.property_string("compatible", "arm,gic-v3")?;
    w.property_null("interrupt-controller")?;
    w.property_u32("#interrupt-cells", 3)?;
    w.property_u32("#address-cells", 2)?;
    w.property_u32("#size-cells", 2)?;
    w.property_null("ranges")?;
    let [d_start, d_size] = reg_cells(&gic.distributor);
    let [r_start, r_size] = reg_cells(&gic.redistributors);
    w.property_array_u64("reg", &[d_start, d_size, r_start, r_size])?;
    w.property_u32("#redistributor-regions", 1)?;
    w.property_phandle(PHANDLE_GIC)?;
    // The first ITS has the fixed phandle the PCIe bridge's msi-map names;
    // further ones follow the clock's.
    let all = gic
        .its
        .iter()
        .map(|its| (its, PHANDLE_ITS))
        .chain(gic.extra_its.iter().zip(PHANDLE_CLOCK + 1..));
    for (its, phandle) in all {
        let child = w.begin_node(&format!("msi-controller@{:x}", its.start.raw()))?;
        w.property_string("compatible", "arm,gic-v3-its")?;
        w.property_null("msi-controller")?;
        // One cell: the DeviceID (arm,gic-v3-its binding).
        w.property_u32("#msi-cells", 1)?;
        w.property_array_u64("reg", &reg_cells(its))?;
        w.property_phandle(phandle)?;
        w.end_node(child)?;
    }
    w.end_node(node)?;
    Ok(())
}

/// arm,gic.yaml (`arm,gic-400`): GICD then GICC; no maintenance
/// interrupt, since the guest gets no virtualization extensions.
fn gic400(w: &mut FdtWriter, gic: &GuestGicV2) -> Result<()> {
    let node = w.begin_node(&format!(
        "interrupt-controller@{:x}",
        gic.distributor.start.raw()
    ))?;
    w.property_string("compatible", "arm,gic-400")?;
    w.property_null("interrupt-controller")?;
    w.property_u32("#interrupt-cells", 3)?;
    w.property_u32("#address-cells", 0)?;
    let [d_start, d_size] = reg_cells(&gic.distributor);
    let [c_start, c_size] = reg_cells(&gic.cpu_interface);
    w.property_array_u64("reg", &[d_start, d_size, c_start, c_size])?;
    w.property_phandle(PHANDLE_GIC)?;
    w.end_node(node)?;
    Ok(())
}

/// arm,pl011.yaml with its fixed 24 MHz reference clock. The clock node
/// comes first so that the UART's `clocks` phandle resolves at probe.
fn uart(w: &mut FdtWriter, console: &GuestConsole) -> Result<()> {
    let clock = w.begin_node("apb-pclk")?;
    w.property_string("compatible", "fixed-clock")?;
    w.property_u32("#clock-cells", 0)?;
    w.property_u32("clock-frequency", UART_CLOCK_HZ)?;
    w.property_string("clock-output-names", "clk24mhz")?;
    w.property_phandle(PHANDLE_CLOCK)?;
    w.end_node(clock)?;
    let uart = w.begin_node(&uart_name(console))?;
    w.property_string_list("compatible", strings(&["arm,pl011", "arm,primecell"]))?;
    w.property_array_u64("reg", &reg_cells(&console.registers))?;
    // GICv3 SPIs are level-high or edge-rising only (Linux gic_set_type).
    w.property_array_u32("interrupts", &[GIC_SPI, console.spi, IRQ_TYPE_LEVEL_HIGH])?;
    w.property_array_u32("clocks", &[PHANDLE_CLOCK, PHANDLE_CLOCK])?;
    w.property_string_list("clock-names", strings(&["uartclk", "apb_pclk"]))?;
    w.end_node(uart)?;
    Ok(())
}

/// The console node's name, which `/chosen/stdout-path` repeats.
pub(super) fn uart_name(console: &GuestConsole) -> String {
    format!("serial@{:x}", console.registers.start.raw())
}

/// host-generic-pci.yaml: ECAM, memory windows, MSIs through the ITS.
fn pcie(w: &mut FdtWriter, pci: &GuestPci) -> Result<()> {
    let node = w.begin_node(&format!("pcie@{:x}", pci.ecam.start.raw()))?;
    w.property_string("compatible", "pci-host-ecam-generic")?;
    w.property_string("device_type", "pci")?;
    w.property_array_u64("reg", &reg_cells(&pci.ecam))?;
    w.property_array_u32(
        "bus-range",
        &[u32::from(pci.first_bus), u32::from(pci.last_bus)],
    )?;
    w.property_u32("#address-cells", 3)?;
    w.property_u32("#size-cells", 2)?;
    w.property_u32("linux,pci-domain", 0)?;
    let mut ranges = Vec::new();
    let windows = [(PCI_MEM32, &pci.mem32), (PCI_MEM64, &pci.mem64)];
    for (space, window) in windows.iter().filter_map(|(s, w)| Some((*s, w.as_ref()?))) {
        let (pci_address, cpu, size) =
            (window.pci_address, window.cpu.start.raw(), window.cpu.size);
        // (phys.hi, phys.mid, phys.lo), CPU address (2 cells), size (2 cells).
        ranges.extend([space, (pci_address >> 32) as u32, pci_address as u32]);
        ranges.extend([
            (cpu >> 32) as u32,
            cpu as u32,
            (size >> 32) as u32,
            size as u32,
        ]);
    }
    w.property_array_u32("ranges", &ranges)?;
    // pci-msi.txt: requester IDs 0.. map to DeviceIDs msi_base.. at the ITS.
    let rids = (u32::from(pci.last_bus) + 1) << 8;
    w.property_array_u32("msi-map", &[0, PHANDLE_ITS, pci.msi_base, rids])?;
    // As on the host bridge: devices snoop caches, so Linux skips cache
    // maintenance around DMA (dma-coherent.yaml).
    if pci.dma_coherent {
        w.property_null("dma-coherent")?;
    }
    w.end_node(node)?;
    Ok(())
}

/// chosen.yaml: command line, console and initrd (64-bit cells).
fn chosen(w: &mut FdtWriter, cfg: &GuestFdtConfig) -> Result<()> {
    if let Some(console) = &cfg.console {
        let aliases = w.begin_node("aliases")?;
        w.property_string("serial0", &format!("/{}", uart_name(console)))?;
        w.end_node(aliases)?;
    }
    let chosen = w.begin_node("chosen")?;
    w.property_string("bootargs", &cfg.bootargs)?;
    // What the partition is and how often it was restarted: for guests
    // (and system tests) that want to know, ignored by everything else.
    w.property_string("hv,partition", &cfg.name)?;
    w.property_u32("hv,boot-count", cfg.boot_count)?;
    if let Some(console) = &cfg.console {
        w.property_string("stdout-path", &format!("/{}", uart_name(console)))?;
    }
    if let Some(initrd) = &cfg.initrd {
        w.property_u64("linux,initrd-start", initrd.start.raw())?;
        w.property_u64("linux,initrd-end", initrd.start.raw() + initrd.size)?;
    }
    w.end_node(chosen)?;
    Ok(())
}
