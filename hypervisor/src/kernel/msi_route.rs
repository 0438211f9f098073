//! Glue of the GICv3 software path of passthrough MSIs
//! ([`crate::gicv4::RoutedBackend`] decides what goes to the physical ITS):
//! the kernel's resources it uses (physical LPIs, ITT frames, the device
//! table, each vCPU's collection) and the lock-free routing table that the
//! EL2 IRQ path reads: physical LPI -> (partition, vCPU, vINTID), found in
//! O(1) and made pending in the partition's vGIC. One exit per MSI; the
//! GICv4 direct path (no exit) replaces it where the ITS has virtual LPIs
//! (`kernel/gicv4.rs`).

use super::irq::{self, EVENT_BITS};
use super::machine;
use super::partition::Partition;
use crate::gic::its_cmd::RdBase;
use crate::gicv4::{Collection, LpiRouting, PassthroughDevice, RoutedConfig};
use crate::ids::{PhysDeviceId, PhysIntId, VcpuIndex, VirtIntId, FIRST_LPI};
use crate::mm::PhysAddr;
use core::sync::atomic::{AtomicU64, Ordering};

/// LPIs the routing table covers (the hypervisor's 16 INTID bits).
const ROUTES: usize = (1 << 16) - FIRST_LPI as usize;

/// Physical LPI -> (valid, partition, vCPU, vINTID), packed, lock-free to read.
static ROUTE: [AtomicU64; ROUTES] = [const { AtomicU64::new(0) }; ROUTES];

fn pack(partition: usize, vcpu: VcpuIndex, vintid: VirtIntId) -> u64 {
    1 << 63
        | (partition as u64 & 0xff) << 48
        | u64::from(vcpu.get() & 0xff) << 32
        | u64::from(vintid.get())
}

fn slot(lpi: PhysIntId) -> Option<&'static AtomicU64> {
    ROUTE.get(lpi.index().checked_sub(FIRST_LPI as usize)?)
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

/// The software path's configuration of a partition: the physical
/// functions behind its first vITS, each with an `EVENT_BITS` ITT.
pub fn config(
    partition: crate::ids::PartitionId,
    name: &str,
    devices: impl IntoIterator<Item = PhysDeviceId>,
) -> RoutedConfig {
    RoutedConfig {
        partition,
        name: alloc::string::String::from(name),
        devices: devices
            .into_iter()
            .map(|d| {
                (
                    d,
                    PassthroughDevice {
                        event_id_bits: EVENT_BITS as u8,
                    },
                )
            })
            .collect(),
    }
}

/// The kernel's resources for one partition's software path.
pub struct KernelRouting<'a>(pub &'a Partition);

/// Bytes of the ITT of a device with `bits` EventID bits.
fn itt_bytes(its: &crate::drivers::its::Its, bits: u8) -> u64 {
    (u64::from(its.typer().itt_entry_bytes()) << bits).max(256)
}

fn alloc(size: u64, align: u64) -> Option<PhysAddr> {
    machine::alloc_frames(size.next_multiple_of(4096), align.max(4096))
}

impl LpiRouting for KernelRouting<'_> {
    fn prepare_device(&mut self, device: PhysDeviceId) -> bool {
        irq::its().is_some_and(|its| its.prepare_device(device.get(), &mut alloc).is_ok())
    }

    fn allocate_itt(&mut self, event_id_bits: u8) -> Option<PhysAddr> {
        alloc(itt_bytes(irq::its()?, event_id_bits), 4096)
    }

    fn free_itt(&mut self, itt: PhysAddr, event_id_bits: u8) {
        if let Some(its) = irq::its() {
            machine::free_frames(itt, itt_bytes(its, event_id_bits).next_multiple_of(4096));
        }
    }

    fn allocate_lpi(&mut self) -> Option<PhysIntId> {
        irq::allocate_lpi(0xa0)
    }

    fn free_lpi(&mut self, lpi: PhysIntId) {
        irq::free_lpi(lpi);
    }

    fn set_route(&mut self, lpi: PhysIntId, target: Option<(VcpuIndex, VirtIntId)>) -> bool {
        let Some(route) = slot(lpi) else {
            return false;
        };
        let value = target.map_or(0, |(vcpu, vintid)| pack(self.0.id.index(), vcpu, vintid));
        route.store(value, Ordering::Release);
        true
    }

    fn collection(&self, vcpu: VcpuIndex) -> Option<Collection> {
        let cpu = self.0.cpu_of(vcpu)?;
        Some(Collection {
            icid: cpu.get(),
            rdbase: irq::rdbase(cpu)?,
        })
    }

    fn home(&self) -> Option<RdBase> {
        irq::rdbase(crate::ids::CpuIndex::FIRST)
    }
}

/// Partition reset or stop: every physical mapping it had goes (DISCARD,
/// MAPD V=0), its LPIs return to the allocator and its functions' ITTs to
/// the frame allocator (the next life MAPDs them afresh).
pub fn teardown(partition: &Partition) {
    let mut backend = partition.backend_alone();
    let state = &mut backend.routed;
    let report = state.teardown(&mut super::irq::ItsQueue, &mut KernelRouting(partition));
    if report.discarded > 0 || report.unmapped > 0 {
        log::info!(
            "partition {}: software path teardown: {} event(s) discarded, {} device(s) unmapped",
            partition.name(),
            report.discarded,
            report.unmapped
        );
    }
}
