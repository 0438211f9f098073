//! Passthrough MSIs on the software path (any GICv3): each event a guest
//! maps on a passthrough function gets a physical LPI on the pCPU of its
//! target vCPU; that LPI, taken at EL2, is found here in O(1) and made
//! pending in the partition's vGIC. One exit per MSI; the GICv4 direct
//! path (no exit) replaces it where the ITS has virtual LPIs (`kernel/gicv4.rs`).

use super::partition::Partition;
use super::{irq, machine};
use crate::gic::its_cmd::ItsCommand;
use crate::ids::{PhysDeviceId, PhysIntId, VcpuIndex, VirtIntId, FIRST_LPI};
use crate::mm::PhysAddr;
use core::sync::atomic::{AtomicU64, Ordering};

/// LPIs the routing table covers (the hypervisor's 16 INTID bits).
const ROUTES: usize = (1 << 16) - FIRST_LPI as usize;
/// EventID bits of the ITT the hypervisor gives a passthrough function.
pub const EVENT_BITS: u32 = 8;

/// Physical LPI -> (valid, partition, vCPU, vINTID), packed, lock-free to read.
static ROUTE: [AtomicU64; ROUTES] = [const { AtomicU64::new(0) }; ROUTES];

fn pack(partition: usize, vcpu: VcpuIndex, vintid: VirtIntId) -> u64 {
    1 << 63
        | (partition as u64 & 0xff) << 48
        | u64::from(vcpu.get() & 0xff) << 32
        | u64::from(vintid.get())
}

fn slot(lpi: PhysIntId) -> Option<&'static AtomicU64> {
    ROUTE.get((lpi.get() as usize).checked_sub(FIRST_LPI as usize)?)
}

/// Where physical LPI `lpi` goes, if a guest mapped it.
pub fn lookup(lpi: u32) -> Option<(usize, VcpuIndex, VirtIntId)> {
    let v = slot(PhysIntId::new(lpi)?)?.load(Ordering::Acquire);
    let vintid = VirtIntId::new(v as u32)?;
    (v >> 63 == 1).then_some((
        (v >> 48 & 0xff) as usize,
        VcpuIndex::new((v >> 32 & 0xff) as u16),
        vintid,
    ))
}

/// How many routing-table entries name partition `partition` (a scan of
/// the whole table: for footprint logs, not the MSI path).
pub fn routes_to(partition: usize) -> usize {
    ROUTE
        .iter()
        .filter(|r| {
            let v = r.load(Ordering::Acquire);
            v >> 63 == 1 && (v >> 48 & 0xff) as usize == partition & 0xff
        })
        .count()
}

/// A passthrough event as mapped on the physical ITS.
#[derive(Clone, Copy, Debug)]
pub struct PhysEvent {
    /// Its physical LPI.
    pub lpi: PhysIntId,
    /// The vCPU it targets.
    pub vcpu: VcpuIndex,
    /// The guest's INTID.
    pub vintid: VirtIntId,
}

fn alloc(size: u64, align: u64) -> Option<PhysAddr> {
    machine::alloc_frames(size.next_multiple_of(4096), align.max(4096))
}

/// Bytes of the ITT the hypervisor gives a function on the software path.
fn itt_bytes(its: &crate::drivers::its::Its) -> u64 {
    (u64::from(its.typer().itt_entry_bytes()) << EVENT_BITS).max(256)
}

fn collection_of(
    partition: &Partition,
    vcpu: VcpuIndex,
) -> Option<(u16, crate::gic::its_cmd::RdBase)> {
    let cpu = partition.cpu_of(vcpu)?;
    Some((cpu.get(), irq::rdbase(cpu)?))
}

/// MAPD of a passthrough function on the physical ITS (once per partition life).
fn ensure_device(partition: &Partition, device: PhysDeviceId) -> Result<(), &'static str> {
    let mut devices = partition.phys_devices.lock();
    if devices.contains_key(&device) {
        return Ok(());
    }
    let its = irq::its().ok_or("no ITS")?;
    its.prepare_device(device.get(), &mut alloc)
        .map_err(|_| "device table")?;
    let itt = alloc(itt_bytes(its), 4096).ok_or("no memory for an ITT")?;
    let rdbase = irq::rdbase(crate::ids::CpuIndex::FIRST).ok_or("no redistributor")?;
    its.submit(
        &[ItsCommand::Mapd {
            device_id: device.get(),
            size: (EVENT_BITS - 1) as u8,
            itt_addr: itt.raw(),
            valid: true,
        }],
        ItsCommand::Sync { rdbase },
    )
    .map_err(|_| {
        machine::free_frames(itt, itt_bytes(its));
        "MAPD refused"
    })?;
    devices.insert(device, itt);
    Ok(())
}

/// The guest mapped `event` of passthrough function `device` to `vintid` on `vcpu`.
pub fn map(
    partition: &Partition,
    device: PhysDeviceId,
    event: u32,
    vcpu: VcpuIndex,
    vintid: VirtIntId,
) {
    if event >= 1 << EVENT_BITS {
        log::warn!(
            "partition {}: passthrough event {event} of {:#x} beyond {} bits: not delivered",
            partition.name(),
            device.get(),
            EVENT_BITS
        );
        return;
    }
    let result = (|| {
        ensure_device(partition, device)?;
        let (icid, rdbase) = collection_of(partition, vcpu).ok_or("vCPU without pCPU")?;
        let its = irq::its().ok_or("no ITS")?;
        let lpi = irq::allocate_lpi(0xa0).ok_or("no physical LPI left")?;
        let Some(route) = slot(lpi) else {
            irq::free_lpi(lpi);
            return Err("LPI beyond the table");
        };
        route.store(
            pack(partition.id.get() as usize, vcpu, vintid),
            Ordering::Release,
        );
        let mapped = its.submit(
            &[
                ItsCommand::Mapti {
                    device_id: device.get(),
                    event_id: event,
                    intid: lpi.get(),
                    icid,
                },
                ItsCommand::Inv {
                    device_id: device.get(),
                    event_id: event,
                },
            ],
            ItsCommand::Sync { rdbase },
        );
        if mapped.is_err() {
            // Nothing of the event stays: neither the route nor the LPI.
            route.store(0, Ordering::Release);
            irq::free_lpi(lpi);
            return Err("MAPTI refused");
        }
        partition
            .phys_events
            .lock()
            .insert((device, event), PhysEvent { lpi, vcpu, vintid });
        Ok::<_, &'static str>(lpi)
    })();
    match result {
        Ok(lpi) => log::info!(
            "partition {}: passthrough {:#x} event {event} -> physical LPI {} -> vCPU {} vINTID {} (software path)",
            partition.name(),
            device.get(),
            lpi.get(),
            vcpu.get(),
            vintid.get()
        ),
        Err(e) => log::error!("partition {}: mapping passthrough {:#x} event {event}: {e}", partition.name(), device.get()),
    }
}

/// The guest moved the event to `to` (MOVI, MAPC retarget): the physical
/// LPI follows to that vCPU's pCPU, its pending state with it (MOVI).
pub fn move_to(partition: &Partition, device: PhysDeviceId, event: u32, to: VcpuIndex) {
    let mut events = partition.phys_events.lock();
    let Some(e) = events.get_mut(&(device, event)) else {
        return;
    };
    let (Some((icid, rdbase)), Some(its)) = (collection_of(partition, to), irq::its()) else {
        return;
    };
    if let Some(s) = slot(e.lpi) {
        s.store(
            pack(partition.id.get() as usize, to, e.vintid),
            Ordering::Release,
        );
    }
    if its
        .submit(
            &[ItsCommand::Movi {
                device_id: device.get(),
                event_id: event,
                icid,
            }],
            ItsCommand::Sync { rdbase },
        )
        .is_err()
    {
        log::error!(
            "partition {}: physical MOVI of {:#x} event {event} refused",
            partition.name(),
            device.get()
        );
    }
    e.vcpu = to;
}

/// The guest unmapped or discarded the event: DISCARD, route and LPI freed.
pub fn unmap(partition: &Partition, device: PhysDeviceId, event: u32) {
    let Some(e) = partition.phys_events.lock().remove(&(device, event)) else {
        return;
    };
    discard(device, event, e);
}

fn discard(device: PhysDeviceId, event: u32, e: PhysEvent) {
    if let (Some(its), Some(rdbase)) = (irq::its(), irq::rdbase(crate::ids::CpuIndex::FIRST)) {
        let _ = its.submit(
            &[ItsCommand::Discard {
                device_id: device.get(),
                event_id: event,
            }],
            ItsCommand::Sync { rdbase },
        );
    }
    if let Some(s) = slot(e.lpi) {
        s.store(0, Ordering::Release);
    }
    irq::free_lpi(e.lpi);
}

/// Partition reset or stop: every physical mapping it had goes (DISCARD,
/// MAPD V=0), its LPIs return to the allocator and its functions' ITTs to
/// the frame allocator (the next life MAPDs them afresh).
pub fn teardown(partition: &Partition) {
    let events: alloc::vec::Vec<_> = core::mem::take(&mut *partition.phys_events.lock())
        .into_iter()
        .collect();
    for ((device, event), e) in events {
        discard(device, event, e);
    }
    let devices = core::mem::take(&mut *partition.phys_devices.lock());
    let (Some(its), Some(rdbase)) = (irq::its(), irq::rdbase(crate::ids::CpuIndex::FIRST)) else {
        return;
    };
    for (d, itt) in devices {
        let unmapped = its.submit(
            &[ItsCommand::Mapd {
                device_id: d.get(),
                size: 0,
                itt_addr: 0,
                valid: false,
            }],
            ItsCommand::Sync { rdbase },
        );
        // The ITS may still use an ITT whose MAPD V=0 did not complete:
        // such an ITT is kept (and logged), not reused.
        if unmapped.is_ok() {
            machine::free_frames(itt, itt_bytes(its));
        } else {
            log::error!(
                "partition {}: MAPD V=0 of {:#x} refused; its ITT at {} stays allocated",
                partition.name(),
                d.get(),
                itt
            );
        }
    }
}
