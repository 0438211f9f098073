//! A partition's passthrough PCI functions in the running hypervisor: its
//! virtual host bridge (the pure filter in `pci::vbridge`) behind a trapped
//! ECAM window, the functions' BARs mapped into the partition's stage 2
//! (no exit per register access), and the guest's MSI programming carried
//! to the physical function, pointed at the physical ITS. MSI-X table
//! pages are trapped and emulated in `msix.rs`.

use super::irq;
use super::partition::Partition;
use crate::console::log_limit::Kind;
use crate::guest::trap::MmioAccess;
use crate::layout;
use crate::mm::{Stage2Access, Stage2Attributes};
use crate::pci::{virtual_bdf, Bdf, Change, ConfigEvent, VirtBdf, VirtualHostBridge};
use crate::vits::AccessWidth;
use alloc::string::String;
use alloc::vec::Vec;

/// Builds the virtual host bridge for the manifest's `pci` list (host
/// addresses, validated at boot).
pub fn build_bridge(pci: &[Bdf]) -> Result<Option<VirtualHostBridge>, String> {
    if pci.is_empty() {
        return Ok(None);
    }
    irq::with_pci(|ecam, devices| {
        let mut list = Vec::new();
        for (index, &bdf) in pci.iter().enumerate() {
            let device = devices
                .iter()
                .find(|d| d.bdf() == bdf)
                .ok_or_else(|| alloc::format!("no PCI function {bdf}"))?;
            let virt = virtual_bdf(index).ok_or("too many PCI functions")?;
            list.push((virt, device));
        }
        let bridge = VirtualHostBridge::new(ecam, &layout::guest_pci(), &list)
            .map_err(|e| alloc::format!("{e:?}"))?;
        super::msix::map_tables(&bridge)?;
        Ok(Some(bridge))
    })
    .ok_or_else(|| String::from("the machine has no PCI host bridge"))?
}

/// Maps every BAR the bridge placed into the partition's stage 2 (device
/// memory; MSI-X table pages stay out, the bridge leaves them unmapped).
pub fn map_bars(partition: &Partition) {
    let Some(bridge) = &partition.pci else { return };
    let mappings = bridge.lock().mappings();
    let pair = partition.bar_mappings();
    let mut held = pair.lock();
    let (mapped, s2) = held.split();
    let mut s2 = s2.lock();
    for m in mappings {
        let attrs = Stage2Attributes::device(Stage2Access::ReadWrite);
        match s2.map(m.guest.start, m.host, m.guest.size, attrs) {
            Ok(()) => mapped.push(m),
            Err(e) => log::error!(
                "partition {}: mapping BAR{} of {}: {e:?}",
                partition.name(),
                m.bar,
                m.physical
            ),
        }
    }
    for io in bridge.lock().io_bars_not_given() {
        log::info!(
            "partition {}: PCI {} (host {}) BAR{} is an I/O BAR ({} bytes): not given to the guest, whose bridge has no I/O window (the guest will report it unassigned)",
            partition.name(),
            io.device.0,
            io.physical,
            io.bar,
            io.size
        );
    }
    for m in mapped.iter() {
        log::info!(
            "partition {}: PCI {} (host {}) BAR{} at IPA {} -> {} ({} KiB)",
            partition.name(),
            m.device.0,
            m.physical,
            m.bar,
            m.guest.start,
            m.host,
            m.guest.size >> 10
        );
    }
}

/// A trapped guest access to its ECAM window; returns the value read.
pub fn config_access(partition: &Partition, access: MmioAccess, value: u64) -> u64 {
    let Some(bridge) = &partition.pci else {
        return u64::MAX;
    };
    let width = match access.size {
        1 => AccessWidth::Byte,
        2 => AccessWidth::Half,
        4 => AccessWidth::Word,
        _ => AccessWidth::Double,
    };
    let offset = access.ipa.raw() - layout::PCI_ECAM.start.raw();
    if !access.write {
        let read = irq::with_pci(|ecam, _| bridge.lock().config_read(ecam, offset, width));
        return match read {
            Some(Ok(v)) => u64::from(v),
            _ => u64::MAX,
        };
    }
    let event = irq::with_pci(|ecam, _| bridge.lock().config_write(ecam, offset, width, value));
    match event {
        Some(Ok(Some(event))) => apply(partition, event),
        Some(Err(e)) => {
            let (level, n) = partition
                .guest_log
                .warning(Kind::ConfigWriteRefused, log::Level::Warn);
            log::log!(
                level,
                "partition {}: PCI config write refused: {e:?} ({n} so far)",
                partition.name()
            );
        }
        _ => {}
    }
    0
}

/// Carries a change the guest made to a function's configuration to the hardware.
fn apply(partition: &Partition, event: ConfigEvent) {
    match event.change {
        Change::Msi(state) => program_msi(partition, &event, state),
        Change::MemoryDecode { enabled: true } => {
            remap(partition, event.device);
            // The table is reachable again: the device gets the guest's.
            super::msix::sync(partition, event.device);
        }
        Change::BarMoved { .. } | Change::MemoryDecode { .. } => remap(partition, event.device),
        Change::MsixControl {
            enabled,
            function_mask,
        } => {
            // Enable and Function Mask are the guest's to set (PCI LB 3.0,
            // 6.8.2.3): the entries behind them already point only at the
            // physical doorbell, or are held masked.
            let done = irq::with_pci(|ecam, devices| {
                let cap = devices
                    .iter()
                    .find(|d| d.bdf() == event.physical)
                    .and_then(|d| d.capabilities.msix);
                cap.map(|c| c.set_control(ecam, event.physical, enabled, function_mask))
            });
            let (level, _) = partition.guest_log.routine(Kind::MsixEnable);
            match done {
                Some(Some(())) => log::log!(
                    level,
                    "partition {}: PCI {} MSI-X {}{}",
                    partition.name(),
                    event.device.0,
                    if enabled { "enabled" } else { "disabled" },
                    if function_mask {
                        ", function masked"
                    } else {
                        ""
                    }
                ),
                _ => {
                    let (level, n) = partition
                        .guest_log
                        .warning(Kind::MsiNotCarried, log::Level::Warn);
                    log::log!(
                        level,
                        "partition {}: PCI {}: MSI-X control not carried to the device ({n} so far)",
                        partition.name(),
                        event.device.0
                    );
                }
            }
        }
        // Table entries change through the trapped table page (`msix`).
        Change::MsixVector { .. } => {}
    }
}

/// The guest changed its MSI settings: the device gets the physical
/// doorbell and the guest's EventID, or MSI stays disabled on it if the
/// guest's address is not its vITS doorbell.
fn program_msi(partition: &Partition, event: &ConfigEvent, state: crate::pci::GuestMsiState) {
    let (Some(its), Some(target)) = (irq::its(), super::msix::target()) else {
        return;
    };
    // The device now writes its EventID (the guest's data) to the physical
    // ITS, which knows it by its requester ID: the guest never learns a
    // physical address, and its own TRANSLATER address stays what it reads
    // back from the capability.
    let (message, held) = state.physical(&target);
    let result = irq::with_pci(|ecam, devices| {
        let cap = devices
            .iter()
            .find(|d| d.bdf() == event.physical)
            .and_then(|d| d.capabilities.msi);
        cap.map(|c| c.program(ecam, event.physical, &message))
    });
    let (level, _) = partition.guest_log.routine(Kind::MsiEnable);
    match (result, held) {
        (Some(Some(Ok(()))), None) => log::log!(
            level,
            "partition {}: PCI {} MSI {}: guest doorbell {:#x} data {:#x} -> physical GITS_TRANSLATER {}",
            partition.name(),
            event.device.0,
            if state.enabled { "enabled" } else { "disabled" },
            state.address,
            state.data,
            its.translater()
        ),
        (Some(Some(Ok(()))), Some(held)) => {
            let (level, n) = partition.guest_log.warning(Kind::MsiHeld, log::Level::Warn);
            log::log!(
                level,
                "partition {}: PCI {} MSI: {held}: MSI stays disabled on the device ({n} so far)",
                partition.name(),
                event.device.0
            );
        }
        (other, _) => {
            let (level, n) = partition.guest_log.warning(Kind::MsiNotCarried, log::Level::Warn);
            log::log!(
                level,
                "partition {}: programming MSI of {}: {other:?} ({n} so far)",
                partition.name(),
                event.physical
            );
        }
    }
}

/// The guest moved a BAR or changed decode: the stage-2 mappings of
/// `device` follow, the old ones removed first (break-before-make through
/// the table memory's TLB maintenance, for this partition's VMID, which is
/// loaded: we are in one of its vCPU's traps).
fn remap(partition: &Partition, device: VirtBdf) {
    let Some(bridge) = &partition.pci else { return };
    let current = bridge.lock().device_mappings(device);
    let pair = partition.bar_mappings();
    let mut held = pair.lock();
    let (mapped, s2) = held.split();
    let mut s2 = s2.lock();
    mapped.retain(|m| {
        if m.device != device {
            return true;
        }
        if let Err(e) = s2.unmap(m.guest.start, m.guest.size) {
            log::error!(
                "partition {}: unmapping BAR{} of {}: {e:?}",
                partition.name(),
                m.bar,
                m.physical
            );
        }
        false
    });
    for m in current {
        match s2.map(
            m.guest.start,
            m.host,
            m.guest.size,
            Stage2Attributes::device(Stage2Access::ReadWrite),
        ) {
            Ok(()) => mapped.push(m),
            Err(e) => log::error!(
                "partition {}: mapping BAR{} of {} at {}: {e:?}",
                partition.name(),
                m.bar,
                m.physical,
                m.guest.start
            ),
        }
    }
}
