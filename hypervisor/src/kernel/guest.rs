//! What a partition's guest is given at boot: its device tree.

use super::partition::Partition;
use crate::boot::guest_fdt::{self, GuestConsole, GuestFdtConfig, GuestGic};
use crate::layout;
use crate::mm::addr::Range;
use crate::mm::Ipa;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

/// The guest device tree of `partition` for its boot number `boot_count`.
pub fn device_tree(
    partition: &Partition,
    boot_count: u32,
    initrd: Option<(Ipa, u64)>,
) -> Result<Vec<u8>, String> {
    let c = &partition.config;
    let cfg = GuestFdtConfig {
        name: c.name.clone(),
        ram: Range {
            start: c.ram.ipa,
            size: c.ram.size,
        },
        vcpu_mpidrs: GuestFdtConfig::linear_mpidrs(c.cpus.len()),
        gic: GuestGic {
            distributor: layout::GICD,
            redistributors: layout::redistributors(c.cpus.len()),
            its: Some(layout::ITS),
            extra_its: (1..partition.config.its.count)
                .map(layout::extra_its)
                .collect(),
        },
        console: Some(GuestConsole {
            registers: Range {
                start: c.console_ipa,
                size: crate::guest::vuart::SIZE,
            },
            spi: layout::CONSOLE_SPI,
        }),
        bootargs: c.bootargs.clone(),
        initrd: initrd.map(|(start, size)| Range { start, size }),
        pci: partition.pci.as_ref().map(|_| layout::guest_pci()),
        boot_count,
    };
    if super::vgicv2::active() {
        let gic = guest_fdt::GuestGicV2 {
            distributor: super::vgicv2::GUEST_GICD,
            cpu_interface: super::vgicv2::GUEST_GICC,
        };
        return guest_fdt::generate_gicv2(&cfg, &gic).map_err(|e| e.to_string());
    }
    guest_fdt::generate(&cfg).map_err(|e| e.to_string())
}
