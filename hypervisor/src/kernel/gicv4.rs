//! GICv4 direct injection for a partition's passthrough functions: one vPE
//! per vCPU (VMAPP, with its virtual pending table and a doorbell LPI), the
//! VM's vLPI property table, the functions MAPD'd with ITTs the hypervisor
//! owns, and the sink through which `passthrough::Gicv4Backend` turns the
//! guest's vITS commands into VMAPTI/VMOVI/DISCARD/INV/... on the physical
//! ITS. A vPE is resident while its vCPU runs (static partitioning: always,
//! once started), so a passthrough MSI reaches the guest with no exit.

use super::partition::{Gicv4, Partition};
use super::{irq, machine};
use crate::console::log_limit::Kind;
use crate::gic::its_cmd::ItsCommand;
use crate::gic::lpi::{lpi_config_byte, LpiTableLayout};
use crate::gic::v4::{DirectInjection, GicV4Ids};
use crate::gicv4::{
    PassthroughConfig, PassthroughDevice, PassthroughState, PhysItsQueue, PhysItsSink, SinkError,
    VmovpError, VmovpForm, VmovpSequencer, VpeConfig, VpeMove,
};
use crate::ids::{PartitionId, VcpuIndex, VirtIntId, VpeId, FIRST_LPI};
use crate::mm::PhysAddr;
use crate::vgic::{LpiConfig, LpiConfigSource};
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU16, Ordering};
use spin::Mutex;

/// vINTID bits of every VM's vLPI tables (the guest's LPI INTID bits).
const VLPI_ID_BITS: u32 = 16;
/// Physical commands queued before a batch is submitted early.
const MAX_BATCH: usize = 64;
/// vPE IDs handed out so far (0 is left to the hypervisor's self-test).
static NEXT_VPE: AtomicU16 = AtomicU16::new(1);
/// VMOVP sequences run one at a time and take their SequenceNumber here:
/// with ITSList, every ITS must see the sequences in the same order
/// (IHI 0069, 5.3, VMOVP).
static VMOVP: Mutex<VmovpSequencer> = Mutex::new(VmovpSequencer::new());

fn alloc(size: u64, align: u64) -> Option<PhysAddr> {
    machine::alloc_frames(size.next_multiple_of(4096), align.max(4096))
}

fn zeroed(size: u64, align: u64) -> Result<PhysAddr, String> {
    let pa = alloc(size, align).ok_or("out of memory for GICv4 tables")?;
    // SAFETY: fresh RAM from the frame allocator, identity-mapped, ours.
    unsafe { core::ptr::write_bytes(pa.raw() as *mut u8, 0, size as usize) };
    crate::arch::cache::clean_invalidate(pa.raw(), size);
    Ok(pa)
}

/// Whether passthrough MSIs are direct-injected ([`DirectInjection`]),
/// decided once from GITS_TYPER, every CPU's GICR_TYPER and GICD_TYPER2:
/// GICv4.0 only; a GICv4.1 GIC is refused (its VMAPP and VPENDBASER
/// differ from the 4.0 forms this backend writes) and, like a GICv3 one,
/// served by the software path.
pub fn direct_injection() -> DirectInjection {
    static DECISION: spin::Once<DirectInjection> = spin::Once::new();
    *DECISION.call_once(|| {
        let Some(its) = irq::its() else {
            return DirectInjection::Unavailable;
        };
        let (mut any, mut all, mut seen) = (0u64, u64::MAX, false);
        for cpu in crate::ids::CpuIndex::all() {
            if let Some(rd) = irq::redistributor(cpu) {
                let typer = rd.typer().0;
                any |= typer;
                all &= typer;
                seen = true;
            }
        }
        GicV4Ids {
            gits_typer: its.typer(),
            gicr_typer_any: crate::gic::regs::gicr::GicrTyper(any),
            gicr_typer_all: crate::gic::regs::gicr::GicrTyper(if seen { all } else { 0 }),
            gicd_typer2: machine::gicd().map_or(Default::default(), |d| d.typer2()),
        }
        .direct_injection()
    })
}

/// Sets up GICv4 for `partition` if it has passthrough functions and the
/// GIC offers GICv4.0 direct injection ([`direct_injection`]); otherwise
/// passthrough MSIs take the software path.
pub fn setup(partition: &Partition) -> Result<Option<(Gicv4, PassthroughState)>, String> {
    let Some(its) = irq::its() else {
        return Ok(None);
    };
    if partition.pci.is_none() || direct_injection() != DirectInjection::V40 {
        return Ok(None);
    }
    let layout =
        LpiTableLayout::new(VLPI_ID_BITS, VLPI_ID_BITS).map_err(|e| alloc::format!("{e:?}"))?;
    let vprop = zeroed(layout.property_bytes.next_multiple_of(4096), 4096)?;
    let mut vpes = Vec::new();
    let mut vpts = Vec::new();
    let mut cmds = Vec::new();
    for (v, cpu) in partition.config.cpus.iter().enumerate() {
        let vpt = zeroed(layout.pending_bytes.next_multiple_of(0x1_0000), 0x1_0000)?;
        let vpe = VpeId::new(NEXT_VPE.fetch_add(1, Ordering::Relaxed));
        let doorbell = irq::allocate_lpi(0x80).ok_or("no LPI for a doorbell")?;
        let rdbase = irq::rdbase(*cpu).ok_or("no redistributor for a vCPU's CPU")?;
        cmds.push(ItsCommand::Vmapp {
            vpe_id: vpe.get(),
            rdbase,
            vpt_addr: vpt.raw(),
            vpt_size: layout.id_bits_field(),
            valid: true,
        });
        vpes.push(VpeConfig {
            vpe,
            doorbell,
            rdbase,
        });
        vpts.push(vpt);
        let _ = v;
    }
    let mut devices = BTreeMap::new();
    for &bdf in &partition.config.pci {
        let device =
            irq::phys_device_id(bdf).ok_or_else(|| alloc::format!("{bdf}: no msi-map entry"))?;
        its.prepare_device(device.get(), &mut alloc)
            .map_err(|e| alloc::format!("{e}"))?;
        let bits = super::irq::EVENT_BITS;
        let itt = zeroed(
            (u64::from(its.typer().itt_entry_bytes()) << bits).max(256),
            4096,
        )?;
        cmds.push(ItsCommand::Mapd {
            device_id: device.get(),
            size: (bits - 1) as u8,
            itt_addr: itt.raw(),
            valid: true,
        });
        devices.insert(
            device,
            PassthroughDevice {
                event_id_bits: bits as u8,
            },
        );
    }
    let first = vpes.first().ok_or("partition without vCPUs")?.vpe;
    let doorbells = vpes.iter().map(|v| v.doorbell.get()).collect();
    its.submit(
        &cmds,
        ItsCommand::Vsync {
            vpe_id: first.get(),
        },
    )
    .map_err(|e| alloc::format!("{e}"))?;
    let config = PassthroughConfig {
        partition: PartitionId::new(partition.id.get()),
        vpes,
        devices,
        vlpi_id_bits: VLPI_ID_BITS as u8,
        max_batch: MAX_BATCH,
    };
    let state = PassthroughState::new(config).map_err(|e| alloc::format!("{e:?}"))?;
    let g = Gicv4 {
        vprop,
        vprop_bytes: layout.property_bytes,
        id_bits_field: layout.id_bits_field(),
        vpts,
        doorbells,
    };
    Ok(Some((g, state)))
}

/// Makes `vcpu`'s vPE resident on this CPU (its vCPU is about to run).
pub fn make_resident(g: &Gicv4, cpu: crate::ids::CpuIndex, vcpu: VcpuIndex) {
    let (Some(rd), Some(vpt)) = (irq::redistributor(cpu), g.vpts.get(vcpu.index())) else {
        return;
    };
    if !rd.make_vpe_resident(g.vprop, g.id_bits_field, *vpt) {
        log::error!(
            "CPU {cpu}: GICR_VPENDBASER.Dirty did not clear making vCPU {}'s vPE resident",
            vcpu.get()
        );
    }
}

/// Makes this CPU's resident vPE non-resident (its vCPU waits in WFI):
/// vLPIs for it now set its virtual pending table and ring its doorbell.
/// Returns whether a vLPI was already pending (GICR_VPENDBASER.
/// PendingLast), in which case the caller should not wait.
pub fn make_non_resident(cpu: crate::ids::CpuIndex) -> bool {
    let Some(rd) = irq::redistributor(cpu) else {
        return false;
    };
    let (clean, pending) = rd.make_vpe_nonresident();
    if !clean {
        log::error!("CPU {cpu}: GICR_VPENDBASER.Dirty did not clear making a vPE non-resident");
    }
    pending
}

/// Why a vPE was not moved to another CPU's redistributor.
#[derive(Debug)]
pub enum MoveError {
    /// No ITS with virtual LPIs.
    NoIts,
    /// A CPU has no redistributor the kernel knows.
    NoRedistributor {
        /// The CPU.
        cpu: crate::ids::CpuIndex,
    },
    /// The vPE stayed resident on its old redistributor
    /// (GICR_VPENDBASER.Dirty never cleared).
    StillResident {
        /// The old CPU.
        cpu: crate::ids::CpuIndex,
    },
    /// The partition's GICv4 state is taken (a trap is using it).
    Busy,
    /// The VMOVP sequence itself.
    Vmovp(VmovpError),
}

impl core::fmt::Display for MoveError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoIts => write!(f, "no ITS with virtual LPIs"),
            Self::NoRedistributor { cpu } => write!(f, "CPU {cpu} has no redistributor"),
            Self::StillResident { cpu } => write!(
                f,
                "the vPE did not become non-resident on CPU {cpu} (GICR_VPENDBASER.Dirty)"
            ),
            Self::Busy => write!(f, "the partition's GICv4 state is in use"),
            Self::Vmovp(e) => write!(f, "VMOVP: {e:?}"),
        }
    }
}

/// Moves `vcpu`'s vPE (of `state`, with virtual pending table `vpt`) from
/// CPU `from`'s redistributor to CPU `to`'s (GICv4.0 VMOVP). First the vPE
/// is made non-resident on `from` if it is resident there (Valid cleared,
/// Dirty waited on: its pending table in memory is then complete), then
/// the VMOVP sequence and its VSYNC run on the ITS under the VMOVP lock,
/// waiting until the ITS has consumed them, and the new RDbase is
/// recorded. The caller must not run `vcpu` on `from` any more and makes
/// the vPE resident on `to` ([`make_resident`]) when the vCPU runs there;
/// the pending vLPIs are delivered then, and doorbells already ring on
/// `to` (a GICv4.0 doorbell comes from the vPE's redistributor).
pub fn move_vpe(
    state: &mut PassthroughState,
    vcpu: VcpuIndex,
    vpt: PhysAddr,
    from: crate::ids::CpuIndex,
    to: crate::ids::CpuIndex,
) -> Result<VpeMove, MoveError> {
    let its = irq::its()
        .filter(|its| its.typer().virtual_lpis())
        .ok_or(MoveError::NoIts)?;
    let old = irq::redistributor(from).ok_or(MoveError::NoRedistributor { cpu: from })?;
    let target = irq::rdbase(to).ok_or(MoveError::NoRedistributor { cpu: to })?;
    // IHI 0069, 5.3 (VMOVP): the vPE must not be resident while it moves.
    if old.resident_vpt() == Some(vpt) {
        let (clean, _pending) = old.make_vpe_nonresident();
        if !clean {
            return Err(MoveError::StillResident { cpu: from });
        }
    }
    let form = if its.typer().vmovp() {
        VmovpForm::Single
    } else {
        VmovpForm::ItsList {
            its_number: its.its_number(),
        }
    };
    let mut sequencer = VMOVP.lock();
    let sequence = sequencer.take();
    let mut itss = [(form, irq::ItsQueue)];
    let moved = state
        .move_vpe(vcpu, target, &mut itss, sequence)
        .map_err(MoveError::Vmovp)?;
    drop(sequencer);
    log::info!(
        "vPE {} moved from CPU {from} (RDbase {:#x}) to CPU {to} (RDbase {:#x}): {:?}, SequenceNumber {sequence}, {} commands",
        moved.vpe.get(),
        moved.from.0,
        moved.to.0,
        form,
        moved.commands
    );
    Ok(moved)
}

/// Moves the vPE of `vcpu` of a partition from CPU `from` to CPU `to`
/// ([`move_vpe`] on the partition's GICv4 state). For a reconfiguration
/// that changes the vCPU's physical CPU; static partitioning has none
/// yet, so only the `vmovp` self-test moves a vPE today.
pub fn move_vcpu_vpe(
    partition: &Partition,
    vcpu: VcpuIndex,
    from: crate::ids::CpuIndex,
    to: crate::ids::CpuIndex,
) -> Result<VpeMove, MoveError> {
    let g = partition
        .gicv4
        .get()
        .and_then(Option::as_ref)
        .ok_or(MoveError::Busy)?;
    let vpt = *g
        .vpts
        .get(vcpu.index())
        .ok_or(MoveError::Vmovp(VmovpError::VcpuOutOfRange { vcpu }))?;
    let mut backend = partition.backend_alone();
    let state = backend.gicv4.as_mut().ok_or(MoveError::Busy)?;
    move_vpe(state, vcpu, vpt, from, to)
}

/// The backend's way to the physical ITS and the VM's vLPI table.
pub struct KernelSink<'a> {
    /// The partition the backend acts for.
    pub partition: &'a Partition,
    /// Its GICv4 resources.
    pub gicv4: &'a Gicv4,
}

impl PhysItsQueue for KernelSink<'_> {
    fn submit(&mut self, commands: &[ItsCommand], sync: ItsCommand) -> Result<(), SinkError> {
        for c in commands {
            // What the guest's commands became on the physical ITS: the
            // guest drives these, routinely, so the first few of each kind
            // are logged and the rest counted, at debug level.
            let kind = match c {
                ItsCommand::Vmapti { .. } => Kind::Vmapti,
                ItsCommand::Vmovi { .. } => Kind::Vmovi,
                ItsCommand::Discard { .. } => Kind::Discard,
                _ => continue,
            };
            let (level, n) = self.partition.guest_log.routine(kind);
            let name = self.partition.name();
            match *c {
                ItsCommand::Vmapti { device_id, event_id, vpe_id, vintid, .. } => log::log!(
                    level,
                    "partition {name}: physical ITS: VMAPTI device {device_id:#x} event {event_id} -> vPE {vpe_id} vINTID {vintid} (VMAPTI #{n})"
                ),
                ItsCommand::Vmovi { device_id, event_id, vpe_id, .. } => log::log!(
                    level,
                    "partition {name}: physical ITS: VMOVI device {device_id:#x} event {event_id} -> vPE {vpe_id} (VMOVI #{n})"
                ),
                ItsCommand::Discard { device_id, event_id } => log::log!(
                    level,
                    "partition {name}: physical ITS: DISCARD device {device_id:#x} event {event_id} (DISCARD #{n})"
                ),
                _ => {}
            }
        }
        let its = irq::its().ok_or(SinkError::Queue(
            crate::gic::its_queue::QueueError::BadSize(0),
        ))?;
        its.submit(commands, sync).map_err(|e| match e {
            crate::drivers::its::ItsError::Queue(q) => SinkError::Queue(q),
            _ => SinkError::Queue(crate::gic::its_queue::QueueError::BadSize(0)),
        })
    }
}

impl PhysItsSink for KernelSink<'_> {
    fn set_vlpi_config(&mut self, vintid: VirtIntId, config: LpiConfig) -> Result<(), SinkError> {
        let index = u64::from(vintid.get())
            .checked_sub(u64::from(FIRST_LPI))
            .filter(|i| *i < self.gicv4.vprop_bytes);
        let Some(index) = index else {
            return Err(SinkError::PropertyTable { vintid });
        };
        let byte = (self.gicv4.vprop.raw() + index) as *mut u8;
        // SAFETY: inside the VM's vLPI property table, which the hypervisor owns.
        unsafe {
            core::ptr::write_volatile(byte, lpi_config_byte(config.priority, config.enabled))
        };
        crate::arch::cache::clean_invalidate(byte as u64, 1);
        Ok(())
    }

    fn guest_lpi_config(&mut self, vcpu: VcpuIndex, vintid: VirtIntId) -> Option<LpiConfig> {
        let mem = super::partition::PartitionMemory(self.partition);
        let vgic = self.partition.vgic.lock();
        let table = vgic.lpi_table(vcpu, &mem).ok()?;
        table.config(vintid.get())
    }
}
