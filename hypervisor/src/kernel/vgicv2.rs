//! The hardware half of each partition's virtual GICv2 on a GICv2 host
//! (GIC-400): the model is `crate::vgicv2` (pure, host-tested). The
//! guest's GICC is the physical GICV frame mapped by stage 2 at
//! [`GUEST_GICC`]; its GICD is emulated on trap at `layout::GICD`; the
//! list registers go through GICH around every entry and exit; the EL1
//! virtual and physical timers are linked to their PPIs with the HW bit
//! (EL2 only drops their priority; the guest's deactivation of the
//! virtual interrupt deactivates the physical one).
//!
//! The models live in a table beside the partitions (indexed like
//! `super::partition::all()`), so `Partition` is unchanged; `vgic.rs`,
//! `guest.rs`, `lifecycle.rs` and `boot.rs` call in through small hooks
//! that ask [`active`] first.

use super::partition::Partition;
use super::{gicv2_host, machine, percpu};
use crate::guest::trap::MmioAccess;
use crate::ids::{PhysIntId, VcpuIndex};
use crate::layout;
use crate::mm::addr::Range;
use crate::mm::{Ipa, PhysAddr, Stage2Access, Stage2Attributes};
use crate::vgicv2::{Action, Actions, ListRegisterV2, VgicV2, VgicV2Error, GICC_SIZE, GICD_SIZE};
use alloc::vec::Vec;
use spin::{Mutex, Once};

/// Where a partition's guest finds its GICC (the physical GICV frame):
/// the first page of the GICv3 redistributor window, unused on a GICv2.
pub const GUEST_GICC: Range<Ipa> = Range {
    start: layout::GICR.start,
    size: GICC_SIZE,
};
/// The emulated GICD (4 KiB at the start of the GICv3 distributor window).
pub const GUEST_GICD: Range<Ipa> = Range {
    start: layout::GICD.start,
    size: GICD_SIZE,
};
/// SPIs each partition's distributor offers (the console's among them).
const NUM_SPIS: u32 = 64;
/// Most list registers read back per exit (GIC-400 has 4).
const MAX_LRS: usize = 64;

static MODELS: Once<Vec<Mutex<Option<VgicV2>>>> = Once::new();

/// Whether partitions get a virtual GICv2 (the host is a GICv2 with the
/// virtualization extensions).
pub fn active() -> bool {
    gicv2_host::hyp_interface().is_some()
}

fn index_of(partition: &Partition) -> Option<usize> {
    super::partition::all()
        .iter()
        .position(|p| core::ptr::eq(p, partition))
}

fn fresh(vcpus: usize) -> Result<VgicV2, VgicV2Error> {
    let n = u16::try_from(vcpus).map_err(|_| VgicV2Error::BadVcpuCount(u16::MAX))?;
    let mut model = VgicV2::new(n, NUM_SPIS)?;
    for v in 0..n {
        for ppi in super::irq::FORWARDED_PPIS {
            model.link_hw(VcpuIndex::new(v), ppi, PhysIntId::from_const(ppi))?;
        }
    }
    Ok(model)
}

/// Boot: a model per partition and the GICV frame in each stage 2.
/// A partition whose vGICv2 cannot be built stops the boot.
pub fn setup_partitions() {
    if !active() {
        return;
    }
    let Some(gicv) = gicv2_host::virtual_cpu_interface() else {
        machine::fatal(format_args!(
            "GICv2 host: the tree names no GICV frame (reg entry 3)"
        ));
    };
    let mut models = Vec::new();
    for p in super::partition::all() {
        match fresh(p.config.cpus.len()) {
            Ok(m) => models.push(Mutex::new(Some(m))),
            Err(e) => machine::fatal(format_args!("partition {}: vGICv2: {e:?}", p.name())),
        }
        let mapped = p.stage2().map(
            GUEST_GICC.start,
            PhysAddr(gicv.start.raw()),
            GICC_SIZE.min(gicv.size),
            Stage2Attributes::device(Stage2Access::ReadWrite),
        );
        if let Err(e) = mapped {
            machine::fatal(format_args!(
                "partition {}: mapping GICV at {}: {e:?}",
                p.name(),
                GUEST_GICC.start
            ));
        }
    }
    MODELS.call_once(|| models);
}

/// A partition's model, fresh again (partition reset).
pub fn reset(partition: &Partition) {
    let Some(slot) = model(partition) else { return };
    match fresh(partition.config.cpus.len()) {
        Ok(m) => *slot.lock() = Some(m),
        Err(e) => log::error!("partition {}: vGICv2 reset: {e:?}", partition.name()),
    }
}

fn model(partition: &Partition) -> Option<&'static Mutex<Option<VgicV2>>> {
    MODELS.get()?.get(index_of(partition)?)
}

/// On every exit: the list registers go back into the model. False if
/// the partition has no vGICv2 (the GICv3 path runs).
pub fn fold(partition: &Partition, vcpu: VcpuIndex) -> bool {
    let (Some(gich), Some(slot)) = (gicv2_host::hyp_interface(), model(partition)) else {
        return false;
    };
    let n = gich.vtr().list_registers().min(MAX_LRS);
    let mut lrs = [ListRegisterV2(0); MAX_LRS];
    gich.save(&mut lrs[..n]);
    let result = match slot.lock().as_mut() {
        Some(m) => m.fold(vcpu, &lrs[..n]),
        None => return true,
    };
    apply(partition, vcpu, result);
    true
}

/// Before every entry: the best pending interrupts into the list
/// registers. False if the partition has no vGICv2.
pub fn flush(partition: &Partition, vcpu: VcpuIndex) -> bool {
    let (Some(gich), Some(slot)) = (gicv2_host::hyp_interface(), model(partition)) else {
        return false;
    };
    let n = gich.vtr().list_registers().min(MAX_LRS);
    let image = match slot.lock().as_mut() {
        Some(m) => m.flush(vcpu, n),
        None => return true,
    };
    match image {
        Ok(image) => gich.load(&image),
        Err(e) => log::error!(
            "partition {}: vCPU {}: vGICv2 flush: {e:?}",
            partition.name(),
            vcpu.get()
        ),
    }
    true
}

/// vCPU start: empty list registers, no active priorities, VMCR 0.
/// False if there is no GICH.
pub fn clear_lrs() -> bool {
    let Some(gich) = gicv2_host::hyp_interface() else {
        return false;
    };
    gich.reset();
    true
}

/// A trapped access to the emulated GICD; `None` if the partition has no
/// vGICv2 (the GICv3 model handles it). Offsets the model refuses read as
/// zero and ignore writes (reserved, or a width GICv2 does not allow).
pub fn mmio(partition: &Partition, vcpu: VcpuIndex, access: MmioAccess, value: u64) -> Option<u64> {
    let slot = model(partition)?;
    let offset = access.ipa.raw().checked_sub(GUEST_GICD.start.raw())?;
    if offset >= GUEST_GICD.size || !matches!(access.size, 1 | 4) {
        return Some(0);
    }
    let (result, actions) = {
        let mut guard = slot.lock();
        let Some(m) = guard.as_mut() else {
            return Some(0);
        };
        if access.write {
            (0, m.mmio_write(vcpu, offset, access.size, value as u32))
        } else {
            (
                u64::from(m.mmio_read(vcpu, offset, access.size).unwrap_or(0)),
                Ok(Actions::new()),
            )
        }
    };
    apply(partition, vcpu, actions);
    Some(result)
}

/// Whether `vcpu` has an interrupt to take (its WFI must not wait).
pub fn has_pending(partition: &Partition, vcpu: VcpuIndex) -> bool {
    model(partition).is_some_and(|slot| slot.lock().as_ref().is_some_and(|m| m.has_pending(vcpu)))
}

/// A hardware-linked PPI (an EL1 timer) taken at EL2 while `vcpu` ran.
pub fn inject_forwarded(partition: &Partition, vcpu: VcpuIndex, intid: u32) {
    let Some(slot) = model(partition) else { return };
    let result = match slot.lock().as_mut() {
        Some(m) => m.inject(vcpu, intid),
        None => return,
    };
    apply(partition, vcpu, result);
}

/// Carries out what the model asked for: kicks, and the physical PPI
/// enables and deactivations (banked: only for the vCPU on this CPU).
fn apply(partition: &Partition, me: VcpuIndex, result: Result<Actions, VgicV2Error>) {
    let actions = match result {
        Ok(a) => a,
        Err(e) => {
            log::debug!(
                "partition {}: vCPU {}: vGICv2: {e:?}",
                partition.name(),
                me.get()
            );
            return;
        }
    };
    for vcpu in actions.kick.iter() {
        if vcpu != me {
            if let Some(cpu) = partition.cpu_of(vcpu) {
                super::cpus::kick(cpu);
            }
        }
    }
    let here = percpu::current_index();
    let Some(gicd) = gicv2_host::distributor() else {
        return;
    };
    for action in actions.hardware {
        let (vcpu, intid) = match action {
            Action::EnablePhys { vcpu, intid }
            | Action::DisablePhys { vcpu, intid }
            | Action::DeactivatePhys { vcpu, intid } => (vcpu, intid),
            _ => continue,
        };
        if partition.cpu_of(vcpu) != Some(here) {
            log::debug!(
                "partition {}: vGICv2: PPI {} of vCPU {} is banked on another CPU",
                partition.name(),
                intid.get(),
                vcpu.get()
            );
            continue;
        }
        match action {
            Action::EnablePhys { .. } => gicd.enable_private(intid.get()),
            Action::DisablePhys { .. } => gicd.disable_private(intid.get()),
            _ => gicd.deactivate_private(intid.get()),
        }
    }
}

/// Disables and deactivates the forwarded PPIs on this CPU (no vCPU runs
/// here, or one starts afresh). False on a GICv3 host.
pub fn quiesce_forwarded_ppis() -> bool {
    let Some(gicd) = gicv2_host::distributor() else {
        return false;
    };
    for ppi in super::irq::FORWARDED_PPIS {
        gicd.disable_private(ppi);
        gicd.deactivate_private(ppi);
    }
    true
}
