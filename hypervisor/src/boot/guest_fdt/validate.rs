//! Checks a [`GuestFdtConfig`] before anything is written: a tree that
//! contradicts itself would fail inside the guest, far from the cause.

use alloc::vec::Vec;

use super::{GuestFdtConfig, GuestFdtError, GuestGicV2, GICR_FRAME_SIZE};
use crate::mm::addr::{Ipa, Range};

/// The MPIDR affinity fields a cpu node's `reg` may carry (Aff3, Aff2..Aff0).
const MPIDR_AFFINITY_MASK: u64 = 0xff_00ff_ffff;
/// GICv3 register frames are 64 KiB (IHI 0069, 12.1).
const GIC_FRAME: u64 = 0x1_0000;
/// The ITS control frame plus the GITS_TRANSLATER frame (IHI 0069, 12.19).
const ITS_SIZE: u64 = 0x2_0000;
/// Stage-2 maps whole 4 KiB pages.
const PAGE: u64 = 0x1000;
/// ECAM gives each bus 1 MiB of configuration space (PCIe base spec 7.2.2).
const ECAM_BUS_SIZE: u64 = 1 << 20;
/// The last SPI number a GIC specifier can carry (INTID 1019 - 32).
const LAST_SPI: u32 = 987;

fn invalid(field: &'static str, reason: &'static str) -> GuestFdtError {
    GuestFdtError::Invalid { field, reason }
}

/// Checks every field; the first problem found is the error.
pub(super) fn check(cfg: &GuestFdtConfig) -> Result<(), GuestFdtError> {
    check_vcpus(&cfg.vcpu_mpidrs)?;
    check_windows(cfg)?;
    let gic = &cfg.gic;
    if gic.distributor.size < GIC_FRAME {
        return Err(invalid(
            "gic.distributor",
            "smaller than the 64 KiB GICD frame",
        ));
    }
    let needed = (cfg.vcpu_mpidrs.len() as u64).saturating_mul(GICR_FRAME_SIZE);
    if gic.redistributors.size < needed {
        return Err(invalid(
            "gic.redistributors",
            "smaller than 128 KiB per vCPU",
        ));
    }
    if gic.its.is_some_and(|its| its.size < ITS_SIZE) {
        return Err(invalid("gic.its", "smaller than the 128 KiB ITS frames"));
    }
    if gic.extra_its.iter().any(|its| its.size < ITS_SIZE) {
        return Err(invalid(
            "gic.extra_its",
            "smaller than the 128 KiB ITS frames",
        ));
    }
    if !gic.extra_its.is_empty() && gic.its.is_none() {
        return Err(invalid("gic.extra_its", "further ITSs without a first one"));
    }
    if let Some(console) = &cfg.console {
        if console.spi > LAST_SPI {
            return Err(invalid("console.spi", "beyond the last SPI (987)"));
        }
    }
    if let Some(initrd) = cfg.initrd {
        let end = initrd.start.checked_add(initrd.size);
        let ram_end = cfg.ram.start.checked_add(cfg.ram.size);
        if initrd.size == 0 || initrd.start < cfg.ram.start || end.is_none() || end > ram_end {
            return Err(invalid("initrd", "empty or not inside ram"));
        }
    }
    if cfg.bootargs.contains('\0') {
        return Err(invalid("bootargs", "contains a NUL"));
    }
    if cfg.name.contains('\0') {
        return Err(invalid("name", "contains a NUL"));
    }
    check_pci(cfg)
}

/// The GICv2 frames and what a GICv2 guest cannot have.
pub(super) fn check_gicv2(cfg: &GuestFdtConfig, gic: &GuestGicV2) -> Result<(), GuestFdtError> {
    // IHI 0048B, 4.3.12: GICD_ITARGETSR addresses 8 CPU interfaces.
    if cfg.vcpu_mpidrs.len() > 8 {
        return Err(invalid("vcpu_mpidrs", "a GICv2 addresses at most 8 vCPUs"));
    }
    if cfg.pci.is_some() {
        return Err(invalid("pci", "a GICv2 guest has no ITS for MSIs"));
    }
    if gic.distributor.size < PAGE {
        return Err(invalid(
            "gic_v2.distributor",
            "smaller than the 4 KiB GICD frame",
        ));
    }
    if gic.cpu_interface.size < 2 * PAGE {
        return Err(invalid(
            "gic_v2.cpu_interface",
            "smaller than the 8 KiB GICC frame",
        ));
    }
    let mut windows: Vec<(&'static str, Range<Ipa>)> = Vec::from([
        ("ram", cfg.ram),
        ("gic_v2.distributor", gic.distributor),
        ("gic_v2.cpu_interface", gic.cpu_interface),
    ]);
    windows.extend(
        cfg.console
            .as_ref()
            .map(|c| ("console.registers", c.registers)),
    );
    check_disjoint(&windows)
}

fn check_vcpus(mpidrs: &[u64]) -> Result<(), GuestFdtError> {
    if mpidrs.is_empty() {
        return Err(invalid("vcpu_mpidrs", "no vCPUs"));
    }
    for (index, &mpidr) in mpidrs.iter().enumerate() {
        if mpidr & !MPIDR_AFFINITY_MASK != 0 {
            return Err(invalid(
                "vcpu_mpidrs",
                "an MPIDR has bits outside Aff3..Aff0",
            ));
        }
        if mpidrs[..index].contains(&mpidr) {
            return Err(invalid("vcpu_mpidrs", "an MPIDR is listed twice"));
        }
    }
    Ok(())
}

/// Every window: non-empty, page aligned, not wrapping, not overlapping another.
fn check_windows(cfg: &GuestFdtConfig) -> Result<(), GuestFdtError> {
    let mut windows: Vec<(&'static str, Range<Ipa>)> = Vec::from([
        ("ram", cfg.ram),
        ("gic.distributor", cfg.gic.distributor),
        ("gic.redistributors", cfg.gic.redistributors),
    ]);
    windows.extend(cfg.gic.its.map(|its| ("gic.its", its)));
    windows.extend(cfg.gic.extra_its.iter().map(|its| ("gic.extra_its", *its)));
    windows.extend(
        cfg.console
            .as_ref()
            .map(|c| ("console.registers", c.registers)),
    );
    if let Some(pci) = &cfg.pci {
        windows.push(("pci.ecam", pci.ecam));
        windows.extend(pci.mem32.as_ref().map(|w| ("pci.mem32", w.cpu)));
        windows.extend(pci.mem64.as_ref().map(|w| ("pci.mem64", w.cpu)));
    }
    check_disjoint(&windows)
}

/// Each window non-empty, page aligned, not wrapping; no two overlapping.
fn check_disjoint(windows: &[(&'static str, Range<Ipa>)]) -> Result<(), GuestFdtError> {
    for &(field, window) in windows {
        if window.size == 0 {
            return Err(invalid(field, "empty"));
        }
        if !window.start.is_aligned(PAGE) || window.size % PAGE != 0 {
            return Err(invalid(field, "not 4 KiB aligned"));
        }
        if window.start.checked_add(window.size).is_none() {
            return Err(invalid(field, "wraps past the end of the address space"));
        }
    }
    for (index, &(first, a)) in windows.iter().enumerate() {
        for &(second, b) in &windows[index + 1..] {
            // Both ends are known not to wrap (checked above).
            if a.start.raw() < b.start.raw() + b.size && b.start.raw() < a.start.raw() + a.size {
                return Err(GuestFdtError::Overlap { first, second });
            }
        }
    }
    Ok(())
}

fn check_pci(cfg: &GuestFdtConfig) -> Result<(), GuestFdtError> {
    let Some(pci) = &cfg.pci else {
        return Ok(());
    };
    if pci.first_bus > pci.last_bus {
        return Err(invalid("pci.last_bus", "below pci.first_bus"));
    }
    let buses = u64::from(pci.last_bus - pci.first_bus) + 1;
    if pci.ecam.size < buses * ECAM_BUS_SIZE {
        return Err(invalid(
            "pci.ecam",
            "smaller than 1 MiB per bus of the bus range",
        ));
    }
    if pci.mem32.is_none() && pci.mem64.is_none() {
        return Err(invalid("pci", "no memory window"));
    }
    if let Some(mem32) = &pci.mem32 {
        if mem32
            .pci_address
            .checked_add(mem32.cpu.size)
            .is_none_or(|end| end > 1 << 32)
        {
            return Err(invalid("pci.mem32", "PCI addresses not below 4 GiB"));
        }
    }
    if let Some(mem64) = &pci.mem64 {
        if mem64.pci_address.checked_add(mem64.cpu.size).is_none() {
            return Err(invalid("pci.mem64", "PCI addresses wrap past 2^64"));
        }
    }
    if cfg.gic.its.is_none() {
        return Err(invalid(
            "gic.its",
            "a PCI host bridge needs an ITS for its MSIs",
        ));
    }
    // msi-map covers requester IDs 0..(last_bus + 1) * 256.
    let rids = (u64::from(pci.last_bus) + 1) << 8;
    if u64::from(pci.msi_base) + rids > 1 << 32 {
        return Err(invalid("pci.msi_base", "DeviceIDs overflow 32 bits"));
    }
    Ok(())
}
