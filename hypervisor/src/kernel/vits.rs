//! Each partition's virtual ITS in the running hypervisor: its frames in
//! the trap path, guest memory through the partition's RAM, and the
//! software-injection backend: what the vITS means ("make vINTID I
//! pending on vCPU V", "move it", "reload its configuration") becomes
//! operations on the partition's vGIC, whose list registers deliver it.
//!
//! Lock order: the partition's `vits` lock, then its `vgic` lock (the vGIC
//! never calls back into the vITS), by type: software injection gets the
//! vGIC only through the held vITS guard (`Partition::vits_locks`).

use super::partition::{BackendState, Partition, PartitionMemory};
use crate::console::log_limit::Kind;
use crate::guest::trap::MmioAccess;
use crate::ids::{PartitionId, PhysDeviceId, VcpuIndex, VirtDeviceId, VirtIntId};
use crate::layout;
use crate::partition::locks::Then;
use crate::vgic::{Actions, VgicError};
use crate::vits::{AccessWidth, DeviceBacking, EventRef, Progress, Vits, VitsBackend, VitsConfig};
use alloc::collections::BTreeMap;

/// DeviceID and EventID bits each vITS offers.
const ID_BITS: u8 = 16;

/// The passthrough functions of partition `id` as its first vITS sees
/// them: the guest's DeviceID is the function's virtual requester ID (the
/// guest bridge's msi-map has base 0); behind it, the physical one.
pub fn passthrough_devices(
    id: PartitionId,
    pci: &[crate::pci::Bdf],
) -> alloc::vec::Vec<(VirtDeviceId, PhysDeviceId)> {
    let mut devices = alloc::vec::Vec::new();
    for (index, &phys) in pci.iter().enumerate() {
        let Some(virt) = crate::pci::virtual_bdf(index) else {
            continue;
        };
        // A function the host's msi-map leaves out cannot send MSIs at all.
        let Some(phys) = super::irq::phys_device_id(phys) else {
            log::warn!(
                "partition {}: PCI {phys}: no msi-map entry, its MSIs cannot be delivered",
                id.get()
            );
            continue;
        };
        devices.push((VirtDeviceId::new(u32::from(virt.0.requester_id())), phys));
    }
    devices
}

/// The `limits.count` vITSs of partition `id` with `vcpus` vCPUs (the
/// passthrough functions belong to the first).
pub fn new_all(
    id: PartitionId,
    vcpus: usize,
    passthrough: &[(VirtDeviceId, PhysDeviceId)],
    limits: crate::manifest::ItsLimits,
) -> Result<alloc::vec::Vec<Vits>, alloc::string::String> {
    (0..limits.count)
        .map(|i| {
            let devices = if i == 0 { passthrough } else { &[] };
            new_vits(id, i as u8, vcpus, devices, limits)
        })
        .collect()
}

/// vITS `index` of partition `id` with `vcpus` vCPUs.
fn new_vits(
    id: PartitionId,
    index: u8,
    vcpus: usize,
    passthrough: &[(VirtDeviceId, PhysDeviceId)],
    limits: crate::manifest::ItsLimits,
) -> Result<Vits, alloc::string::String> {
    let devices: BTreeMap<_, _> = passthrough
        .iter()
        .map(|&(virt, phys)| (virt, DeviceBacking::Passthrough(phys)))
        .collect();
    let config = VitsConfig {
        partition: id,
        index,
        device_id_bits: ID_BITS,
        event_id_bits: ID_BITS,
        lpi_id_bits: 16,
        collection_id_bits: 16,
        num_vcpus: vcpus as u16,
        // The manifest's `[partition.its]` bounds memory and work per trap.
        max_devices: limits.max_devices,
        max_events: limits.max_events,
        max_collections: limits.max_collections,
        max_commands_per_trap: limits.max_commands_per_trap,
        devices,
        // A CPU's write to GITS_TRANSLATER carries requester ID 0, as on QEMU virt.
        cpu_device_id: Some(VirtDeviceId::new(0)),
    };
    Vits::new(config).map_err(|e| alloc::format!("{e:?}"))
}

/// Software injection: LPIs live in the vGIC's per-vCPU pending sets. It
/// never touches the physical ITS: the passthrough events' physical side
/// is the backend in front of it (GICv4 or the GICv3 software path).
/// It reaches the vGIC only through `vgic`, the right to lock it that
/// the held vITS lock gives (`Partition::vits_locks`).
struct SoftwareInjection<'a> {
    partition: &'a Partition,
    vgic: Then<'a, crate::vgic::Vgic>,
    kicks: Actions,
    /// The vITS this is the backend of: names its INVALL walks in the vGIC.
    its: u8,
}

impl<'a> SoftwareInjection<'a> {
    fn new(partition: &'a Partition, vgic: Then<'a, crate::vgic::Vgic>, its: u8) -> Self {
        Self {
            partition,
            vgic,
            kicks: Actions::new(),
            its,
        }
    }

    fn with_vgic(
        &mut self,
        vcpu: VcpuIndex,
        f: impl FnOnce(
            &mut crate::vgic::Vgic,
            &dyn crate::vgic::LpiConfigSource,
        ) -> Result<Actions, VgicError>,
    ) {
        self.with_vgic_then(vcpu, |v, t| f(v, t).map(|actions| (actions, ())));
    }

    /// A sliced vGIC operation as the vITS's `Progress`; one that fails
    /// (logged) has nothing left to do.
    fn slice(
        &mut self,
        vcpu: VcpuIndex,
        f: impl FnOnce(
            &mut crate::vgic::Vgic,
            &dyn crate::vgic::LpiConfigSource,
        ) -> Result<(Actions, crate::vgic::Slice), VgicError>,
    ) -> Progress {
        match self.with_vgic_then(vcpu, f) {
            Some(slice) => Progress {
                touched: slice.touched,
                done: slice.done,
            },
            None => Progress::DONE,
        }
    }

    /// Runs `f` on the vGIC with `vcpu`'s LPI property table, keeps the
    /// kicks it asks for and returns the rest of its result (`None`, with
    /// a log line, if it failed).
    fn with_vgic_then<T>(
        &mut self,
        vcpu: VcpuIndex,
        f: impl FnOnce(
            &mut crate::vgic::Vgic,
            &dyn crate::vgic::LpiConfigSource,
        ) -> Result<(Actions, T), VgicError>,
    ) -> Option<T> {
        let mem = PartitionMemory(self.partition);
        let mut vgic = self.vgic.lock();
        let result = match vgic.lpi_table(vcpu, &mem) {
            Ok(table) => f(&mut vgic, &table),
            Err(e) => Err(e),
        };
        drop(vgic);
        match result {
            Ok((actions, value)) => {
                self.kicks.merge(actions);
                Some(value)
            }
            Err(e) => {
                // An INT beyond the vCPU's pending-LPI budget lands here:
                // the guest can repeat it at will.
                let log = &self.partition.guest_log;
                let (level, n) = log.warning(Kind::VitsToVgic, log::Level::Warn);
                log::log!(
                    level,
                    "partition {}: vITS -> vGIC: {e:?} ({n} so far)",
                    self.partition.name()
                );
                None
            }
        }
    }
}

impl VitsBackend for SoftwareInjection<'_> {
    fn map_event(&mut self, _: EventRef, _: VcpuIndex, _: VirtIntId) {}

    fn unmap_event(&mut self, _: EventRef, _: VcpuIndex, _: VirtIntId) {}

    fn discard_event(&mut self, _: EventRef, vcpu: VcpuIndex, intid: VirtIntId) {
        self.with_vgic(vcpu, |v, _| v.clear_lpi_pending(vcpu, intid));
    }

    fn move_event(&mut self, _: EventRef, from: VcpuIndex, to: VcpuIndex, intid: VirtIntId) {
        self.with_vgic(from, |v, _| v.move_lpi_pending(from, to, intid));
    }

    fn set_pending(&mut self, _: EventRef, vcpu: VcpuIndex, intid: VirtIntId) {
        self.with_vgic(vcpu, |v, t| v.set_lpi_pending(vcpu, intid, t));
    }

    fn clear_pending(&mut self, _: EventRef, vcpu: VcpuIndex, intid: VirtIntId) {
        self.with_vgic(vcpu, |v, _| v.clear_lpi_pending(vcpu, intid));
    }

    fn reload_config(&mut self, _: EventRef, vcpu: VcpuIndex, intid: VirtIntId) {
        self.with_vgic(vcpu, |v, t| v.invalidate_lpi(vcpu, intid, t));
    }

    fn reload_config_all(&mut self, vcpu: VcpuIndex) {
        self.with_vgic(vcpu, |v, t| v.invalidate_all_lpis(vcpu, t));
    }

    fn move_all_pending(&mut self, from: VcpuIndex, to: VcpuIndex) {
        self.with_vgic(from, |v, _| v.move_all_lpis(from, to));
    }

    /// MOVALL in slices (issue 12): up to `budget` of the LPIs `from`
    /// holds (at most `PENDING_LPIS_PER_VCPU` times the vCPUs) per trap.
    fn move_all_pending_within(
        &mut self,
        from: VcpuIndex,
        to: VcpuIndex,
        budget: usize,
    ) -> Progress {
        self.slice(from, |v, _| v.move_lpis_within(from, to, budget))
    }

    /// INVALL in slices: up to `budget` LPIs of `vcpu` reread or forgotten
    /// per trap, from where this vITS's last slice stopped.
    fn reload_config_all_within(&mut self, vcpu: VcpuIndex, budget: usize) -> Progress {
        let its = self.its;
        self.slice(vcpu, |v, t| v.invalidate_lpis_within(vcpu, its, budget, t))
    }

    fn sync(&mut self) {}
}

/// A trapped access to vITS `index`'s frames; returns the value read.
pub fn mmio(
    partition: &Partition,
    vcpu: VcpuIndex,
    index: usize,
    access: MmioAccess,
    value: u64,
) -> u64 {
    let width = match access.size {
        1 => AccessWidth::Byte,
        2 => AccessWidth::Half,
        4 => AccessWidth::Word,
        _ => AccessWidth::Double,
    };
    let offset = access.ipa.raw() - layout::extra_its(index).start.raw();
    let mem = PartitionMemory(partition);
    let Some(locks) = partition.vits_locks(index) else {
        return 0;
    };
    let mut held = locks.lock();
    let (vits, vgic, backend) = held.split();
    let software = SoftwareInjection::new(partition, vgic, index as u8);
    let mut run = |backend: &mut dyn VitsBackend| {
        if access.write {
            vits.mmio_write(offset, width, value, &mem, backend);
            0
        } else {
            vits.mmio_read(offset, width, &mem, backend)
        }
    };
    // With GICv4, passthrough events (all on the first vITS) go to the
    // physical ITS as vLPIs and everything else to software injection;
    // otherwise all of it is software.
    let (result, kicks) = if index == 0 {
        with_backend(partition, backend, software, run)
    } else {
        let mut software = software;
        (run(&mut software), software.kicks)
    };
    drop(held);
    super::vgic::apply_actions(partition, vcpu, kicks);
    result
}

/// Runs `f` with the backend of the partition's first vITS, whose lock the
/// caller holds: software injection, behind the GICv4 backend when the
/// partition has one (its state taken out of its slot meanwhile). Returns
/// `f`'s result and the vCPU kicks software injection collected.
fn with_backend<R>(
    partition: &Partition,
    backend: Then<'_, BackendState>,
    mut software: SoftwareInjection<'_>,
    f: impl FnOnce(&mut dyn VitsBackend) -> R,
) -> (R, Actions) {
    let Some(Some(g)) = partition.gicv4.get() else {
        // The GICv3 software path in front of software injection.
        let mut held = backend.lock();
        let (mut queue, mut routing) = (
            super::irq::ItsQueue,
            super::msi_route::KernelRouting(partition),
        );
        let mut backend = crate::gicv4::RoutedBackend::new(
            &mut held.routed,
            &mut queue,
            &mut routing,
            &mut software,
        );
        let result = f(&mut backend);
        drop(held);
        return (result, software.kicks);
    };
    let mut slot = backend.lock();
    let Some(state) = slot.gicv4.take() else {
        drop(slot);
        return (f(&mut software), software.kicks);
    };
    let sink = super::gicv4::KernelSink {
        partition,
        gicv4: g,
    };
    let mut backend = crate::gicv4::Gicv4Backend::from_parts(state, sink, software);
    let result = f(&mut backend);
    let (state, _, software) = backend.into_parts();
    slot.gicv4 = Some(state);
    (result, software.kicks)
}

/// Partition reset with GICv4: every vLPI mapping the guest made goes
/// (DISCARD); the vPEs, doorbells and MAPD'd functions stay for the next
/// life of the same partition, so nothing leaks and nothing is remade.
pub fn gicv4_teardown(partition: &Partition) {
    let Some(Some(g)) = partition.gicv4.get() else {
        return;
    };
    // A vITS trap (another vCPU, during a stop) holds the state out of its
    // slot under this lock: wait for it instead of skipping the teardown.
    let Some(locks) = partition.vits_locks(0) else {
        return;
    };
    let mut held = locks.lock();
    let (_, vgic, backend) = held.split();
    let mut slot = backend.lock();
    let Some(state) = slot.gicv4.take() else {
        return;
    };
    let sink = super::gicv4::KernelSink {
        partition,
        gicv4: g,
    };
    let mut backend = crate::gicv4::Gicv4Backend::from_parts(
        state,
        sink,
        SoftwareInjection::new(partition, vgic, 0),
    );
    let report = backend.teardown();
    let (state, _, _) = backend.into_parts();
    slot.gicv4 = Some(state);
    if report.discarded > 0 {
        log::info!(
            "partition {}: GICv4 teardown: {} vLPI mapping(s) discarded",
            partition.name(),
            report.discarded
        );
    }
}
