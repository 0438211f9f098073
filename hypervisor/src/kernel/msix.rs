//! The MSI-X table pages of a partition's passthrough functions in the
//! trap path, and what the device is given for the guest's MSI/MSI-X.
//!
//! The pages holding a table are left out of stage 2 (`pci::vbridge`
//! maps around them), so every guest access to them traps here:
//! - the table itself is emulated by the bridge (read back as written);
//!   a changed entry is carried to the device as the physical
//!   GITS_TRANSLATER and the same EventID, masked while it changes, held
//!   masked if the guest's address is not its vITS doorbell
//!   (`pci::vbridge::program`);
//! - the PBA reads through; guest writes to it are dropped;
//! - any other register on those pages reads and writes through.
//!
//! Device accesses go through the guarded accessors, so a device that
//! answers with an external abort (nothing decodes there) costs the guest
//! all ones, not the hypervisor. Bad guest accesses (width, alignment)
//! read as zero and are ignored, logged once per partition life.

use super::irq;
use super::partition::Partition;
use crate::arch::exception::{guarded_read, guarded_write};
use crate::guest::trap::MmioAccess;
use crate::layout;
use crate::mm::{Ipa, PhysAddr};
use crate::pci::{
    Bdf, Change, MsiTarget, MsixPageRegion, TableWrite, VectorProgram, VirtBdf, VirtualHostBridge,
};
use crate::vits::AccessWidth;

/// GITS_TRANSLATER's offset in an ITS's frames (IHI 0069, 12.19).
const GITS_TRANSLATER: u64 = 0x1_0040;

/// Where the partition's passthrough MSIs must go: the guest programs its
/// first vITS's doorbell, the device gets the physical one.
pub fn target() -> Option<MsiTarget> {
    Some(MsiTarget {
        guest_doorbell: layout::ITS.start.raw() + GITS_TRANSLATER,
        physical_doorbell: irq::its()?.translater(),
        event_bits: super::irq::EVENT_BITS,
    })
}

/// Whether `ipa` lies on a trapped MSI-X page of the partition.
pub fn owns(partition: &Partition, ipa: u64) -> bool {
    partition
        .pci
        .as_ref()
        .is_some_and(|bridge| bridge.lock().msix_trap_at(Ipa(ipa)).is_some())
}

/// A trapped guest access to an MSI-X page; returns the value read.
pub fn access(partition: &Partition, access: MmioAccess, value: u64) -> u64 {
    let Some(bridge) = &partition.pci else {
        return 0;
    };
    let mut bridge = bridge.lock();
    // The trap may have moved since the dispatch looked (another vCPU moved
    // the BAR): then the access reaches nothing, RAZ/WI.
    let Some((trap, bar_offset)) = bridge.msix_trap_at(access.ipa) else {
        return 0;
    };
    let device = trap.device;
    let width = match access.size {
        1 => AccessWidth::Byte,
        2 => AccessWidth::Half,
        4 => AccessWidth::Word,
        _ => AccessWidth::Double,
    };
    match bridge.msix_page_region(device, bar_offset) {
        Some(MsixPageRegion::Table) if access.write => {
            match bridge.msix_table_write(device, bar_offset, width, value) {
                Ok(Some(event)) => {
                    if let Change::MsixVector { vector, .. } = event.change {
                        program_vector(partition, &mut bridge, device, vector);
                    }
                }
                Ok(None) => {}
                Err(e) => bad_access(partition, device, format_args!("{e}")),
            }
            0
        }
        Some(MsixPageRegion::Table) => bridge
            .msix_table_read(device, bar_offset, width)
            .unwrap_or_else(|e| {
                bad_access(partition, device, format_args!("{e}"));
                0
            }),
        Some(MsixPageRegion::PendingBits) if access.write => {
            // Software never writes pending bits (PCI LB 3.0, 6.8.2.10).
            bad_access(
                partition,
                device,
                format_args!("BAR offset {bar_offset:#x} is in the PBA, which is read-only"),
            );
            0
        }
        Some(MsixPageRegion::PendingBits | MsixPageRegion::Device) | None => {
            let Some(host) = trap.host.checked_add(bar_offset - trap.bar_offset) else {
                return 0;
            };
            drop(bridge);
            through(partition, device, host, access, value)
        }
    }
}

/// An access that goes to the device itself, at the guest's width.
fn through(
    partition: &Partition,
    device: VirtBdf,
    host: PhysAddr,
    access: MmioAccess,
    value: u64,
) -> u64 {
    if !host.raw().is_multiple_of(u64::from(access.size)) {
        bad_access(
            partition,
            device,
            format_args!("{host} is not aligned to the access width"),
        );
        return 0;
    }
    // SAFETY: the page is one of the function's BAR pages, mapped at EL2
    // by `map_tables` as device memory; the access is aligned; guarded, so
    // an abort from the device comes back as a failure.
    let ok = unsafe {
        if access.write {
            guarded_write(host.raw(), access.size, value)
        } else {
            return guarded_read(host.raw(), access.size).unwrap_or(u64::MAX);
        }
    };
    if !ok {
        log::debug!(
            "partition {}: PCI {}: write at {host} aborted",
            partition.name(),
            device.0
        );
    }
    0
}

/// Logs a bad access to an MSI-X page, rate-limited (`console::log_limit`).
fn bad_access(partition: &Partition, device: VirtBdf, error: core::fmt::Arguments<'_>) {
    let (level, n) = partition.guest_log.warning(
        crate::console::log_limit::Kind::MsixPageRefused,
        log::Level::Warn,
    );
    log::log!(
        level,
        "partition {}: PCI {}: MSI-X page access refused ({error}): reads 0, writes ignored ({n} so far)",
        partition.name(),
        device.0
    );
}

/// Carries the guest's entry `vector` of `device` to the device.
fn program_vector(
    partition: &Partition,
    bridge: &mut VirtualHostBridge,
    device: VirtBdf,
    vector: u16,
) {
    let Some(target) = target() else { return };
    let physical = bridge.physical(device);
    if let Some(program) = bridge.msix_program(device, vector, &target) {
        perform(partition, device, physical, &program);
    }
}

/// The guest switched `device`'s memory decode on: its physical table is
/// rewritten from the guest's (it may hold anything from before).
pub fn sync(partition: &Partition, device: VirtBdf) {
    let (Some(bridge), Some(target)) = (&partition.pci, target()) else {
        return;
    };
    let mut bridge = bridge.lock();
    let physical = bridge.physical(device);
    for program in bridge.msix_sync(device, &target) {
        perform(partition, device, physical, &program);
    }
}

/// Stop or reset: every physical vector of the partition masked while
/// the functions still decode.
pub fn mask_all(partition: &Partition) {
    let Some(bridge) = &partition.pci else { return };
    let writes = bridge.lock().msix_mask_all();
    write_table(&writes);
}

/// Performs a vector's writes, flushes them, and logs what the device got
/// (or, once per function and life, why a vector is held masked).
fn perform(
    partition: &Partition,
    device: VirtBdf,
    physical_function: Option<Bdf>,
    program: &VectorProgram,
) {
    write_table(&program.writes);
    if let Some(held) = program.held {
        if program.first_hold {
            log::warn!(
                "partition {}: PCI {} MSI-X vector {}: {held}: the vector stays masked (logged once)",
                partition.name(),
                device.0,
                program.vector
            );
        }
        return;
    }
    if program.writes.is_empty() {
        return;
    }
    let guest = program.guest;
    let physical = program.physical;
    let device_id = physical_function.and_then(irq::phys_device_id);
    // A vector going live is worth a line, the first few times (the guest
    // can unmask in a loop: then they are counted, `console::log_limit`);
    // the mask-all a driver does over every entry of a large table (NVMe:
    // 65) is not.
    let level = if physical.masked {
        log::Level::Debug
    } else {
        partition
            .guest_log
            .routine(crate::console::log_limit::Kind::MsixVector)
            .0
    };
    log::log!(
        level,
        "partition {}: PCI {} MSI-X vector {}: guest doorbell {:#x} EventID {} -> physical GITS_TRANSLATER {} DeviceID {:#x} EventID {}, {}",
        partition.name(),
        device.0,
        program.vector,
        guest.address,
        guest.data,
        physical.address,
        device_id.map_or(u32::MAX, |d| d.get()),
        physical.data,
        if physical.masked { "masked" } else { "unmasked" }
    );
}

/// 32-bit writes to physical MSI-X tables, in order, then a read of the
/// last entry written: PCIe writes are posted, the read returns only once
/// they reached the device (as Linux reads back after masking).
fn write_table(writes: &[TableWrite]) {
    for w in writes {
        // SAFETY: an entry of a function's MSI-X table, in a BAR page
        // mapped at EL2 by `map_tables`, dword aligned.
        unsafe { guarded_write(w.address.raw(), 4, u64::from(w.value)) };
    }
    if let Some(last) = writes.last() {
        // SAFETY: as above; a read of a table entry has no side effect.
        unsafe { guarded_read(last.address.raw() & !0xf, 4) };
    }
}

/// Maps at EL2 the BARs that hold the MSI-X tables of `bridge`'s
/// functions, so the hypervisor can write the physical entries and pass
/// the rest of those pages through.
pub fn map_tables(bridge: &VirtualHostBridge) -> Result<(), alloc::string::String> {
    for (region, base, size) in bridge.msix_table_bars() {
        super::early::map_device(base.raw(), size)
            .map_err(|e| alloc::format!("mapping the MSI-X table BAR of {}: {e:?}", region.0))?;
    }
    Ok(())
}
