//! Physical interrupts taken at EL2, dispatched to what they are for: the
//! EL1 timers to the running vCPU (GICv3 or GICv2 host), passthrough MSIs
//! of the software path to their partition's vGIC, GICv4 doorbells, the
//! SMMU's and the console's interrupts; kicks and maintenance only end
//! the guest's run.

use super::irq::FORWARDED_PPIS;
use super::partition::Partition;
use super::percpu;
use crate::drivers::gicv3::cpu_interface;
use crate::ids::VcpuIndex;
use core::sync::atomic::Ordering;

/// Physical interrupts pending at EL2 on this CPU: the EL1 timers go to
/// the running vCPU; everything else (kicks, maintenance, doorbells) is
/// ended here, its work being the state checks every trap makes.
pub fn take_physical_interrupts(running: Option<(&Partition, VcpuIndex)>) {
    if take_gicv2(running) {
        return;
    }
    for _ in 0..64 {
        let Some(acknowledged) = cpu_interface::acknowledge() else {
            break;
        };
        // EL2 runs with EOImode 1: EOIR only drops the priority.
        cpu_interface::end_of_interrupt(acknowledged);
        let intid = acknowledged.get();
        match running {
            Some((partition, vcpu)) if FORWARDED_PPIS.contains(&intid) => {
                // Stays active until the guest deactivates its HW-linked twin.
                super::vgic::inject_forwarded(partition, vcpu, intid);
            }
            _ if intid >= 8192 => {
                if !passthrough_msi(intid, running)
                    && !super::hooks::on_doorbell(intid)
                    && is_doorbell(intid, running)
                {
                    percpu::get(percpu::current_index())
                        .exits
                        .doorbells
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
            _ if super::smmu::is_interrupt(intid) => {
                super::smmu::on_interrupt();
                cpu_interface::deactivate(acknowledged);
            }
            _ if super::console::is_input_interrupt(intid) => {
                super::console::take_input(
                    super::partition::all(),
                    |p| super::vgic::set_console_line_from(p, running, true),
                    super::lifecycle::log_status,
                );
                cpu_interface::deactivate(acknowledged);
            }
            _ => cpu_interface::deactivate(acknowledged),
        }
    }
}

/// Takes the interrupts pending at the calling CPU's interface (bounded):
/// the EL1 timers' PPIs go to the running vCPU (priority dropped, left
/// active until the guest deactivates the HW-linked virtual interrupt);
/// kicks and the maintenance PPI only make the CPU leave its guest (the
/// next flush reschedules); anything else is deactivated. Returns false if
/// this host is not a GICv2.
fn take_gicv2(running: Option<(&Partition, VcpuIndex)>) -> bool {
    let Some(gicc) = super::gicv2_host::cpu_interface() else {
        return false;
    };
    for _ in 0..64 {
        let iar = gicc.acknowledge();
        // 1020-1023 are special (1023: nothing pending).
        let Some(intid) = crate::ids::PhysIntId::from_acknowledge(iar.interrupt_id()) else {
            break;
        };
        gicc.end_of_interrupt(iar);
        let intid = intid.get();
        match running {
            Some((partition, vcpu)) if FORWARDED_PPIS.contains(&intid) => {
                super::vgicv2::inject_forwarded(partition, vcpu, intid);
            }
            _ => gicc.deactivate(iar),
        }
    }
    true
}

/// A physical LPI taken at EL2: if a guest mapped it (a passthrough MSI
/// on the software path), it becomes pending in that partition's vGIC.
/// Returns whether it was one.
fn passthrough_msi(lpi: u32, running: Option<(&Partition, VcpuIndex)>) -> bool {
    let Some((p, vcpu, vintid)) = super::msi_route::lookup(lpi) else {
        return false;
    };
    let Some(partition) = super::partition::all().get(p) else {
        return false;
    };
    percpu::get(percpu::current_index())
        .exits
        .software_msis
        .fetch_add(1, Ordering::Relaxed);
    super::vgic::set_lpi_pending_from(partition, running, vcpu, vintid);
    true
}

/// Whether `lpi` is the GICv4 doorbell of the vCPU running here.
fn is_doorbell(lpi: u32, running: Option<(&Partition, VcpuIndex)>) -> bool {
    running.is_some_and(|(p, v)| {
        p.gicv4
            .get()
            .and_then(Option::as_ref)
            .is_some_and(|g| g.doorbells.get(v.index()) == Some(&lpi))
    })
}
