//! What a partition's guest is given at boot: its device tree.

use super::partition::Partition;
use crate::mm::Ipa;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use vm_fdt::FdtWriter;

/// The guest device tree of `partition` (interim: memory, CPUs, PSCI,
/// console, chosen; the GIC and PCI nodes come with guest_fdt).
pub fn device_tree(
    partition: &Partition,
    boot_count: u32,
    initrd: Option<(Ipa, u64)>,
) -> Result<Vec<u8>, String> {
    build(partition, boot_count, initrd).map_err(|e| e.to_string())
}

fn build(
    partition: &Partition,
    boot_count: u32,
    initrd: Option<(Ipa, u64)>,
) -> Result<Vec<u8>, vm_fdt::Error> {
    let c = &partition.config;
    let mut w = FdtWriter::new()?;
    let root = w.begin_node("")?;
    w.property_u32("#address-cells", 2)?;
    w.property_u32("#size-cells", 2)?;
    w.property_string("compatible", "hypervisor,partition")?;
    w.property_string("model", &alloc::format!("partition {}", c.name))?;
    let mem = w.begin_node(&alloc::format!("memory@{:x}", c.ram.ipa.raw()))?;
    w.property_string("device_type", "memory")?;
    w.property_array_u64("reg", &[c.ram.ipa.raw(), c.ram.size])?;
    w.end_node(mem)?;
    let cpus = w.begin_node("cpus")?;
    w.property_u32("#address-cells", 1)?;
    w.property_u32("#size-cells", 0)?;
    for i in 0..c.cpus.len() {
        let cpu = w.begin_node(&alloc::format!("cpu@{i}"))?;
        w.property_string("device_type", "cpu")?;
        w.property_string("compatible", "arm,armv8")?;
        w.property_u32("reg", i as u32)?;
        w.property_string("enable-method", "psci")?;
        w.end_node(cpu)?;
    }
    w.end_node(cpus)?;
    let psci = w.begin_node("psci")?;
    w.property_string_list(
        "compatible",
        alloc::vec!["arm,psci-1.0".into(), "arm,psci-0.2".into()],
    )?;
    w.property_string("method", "hvc")?;
    w.end_node(psci)?;
    let uart_name = alloc::format!("pl011@{:x}", c.console_ipa.raw());
    let uart = w.begin_node(&uart_name)?;
    w.property_string_list(
        "compatible",
        alloc::vec!["arm,pl011".into(), "arm,primecell".into()],
    )?;
    w.property_array_u64("reg", &[c.console_ipa.raw(), crate::vuart::SIZE])?;
    w.end_node(uart)?;
    let chosen = w.begin_node("chosen")?;
    w.property_string("bootargs", &c.bootargs)?;
    w.property_string("stdout-path", &alloc::format!("/{uart_name}"))?;
    w.property_string("hv,partition", &c.name)?;
    w.property_u32("hv,boot-count", boot_count)?;
    if let Some((start, size)) = initrd {
        w.property_u64("linux,initrd-start", start.raw())?;
        w.property_u64("linux,initrd-end", start.raw() + size)?;
    }
    w.end_node(chosen)?;
    w.end_node(root)?;
    w.finish()
}
