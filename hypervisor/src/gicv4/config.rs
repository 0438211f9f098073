//! What the kernel decides, up front, about one partition's passthrough
//! on the physical ITS: a vPE and a doorbell per vCPU, the physical
//! devices it owns (already MAPD'd with an ITT the hypervisor allocated),
//! and the bounds on the work it may queue. Nothing outside this config is
//! ever named in a physical command: that is the isolation invariant.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

use crate::gic::its_cmd::{RdBase, NO_DOORBELL};
use crate::ids::FIRST_LPI;
use crate::ids::{EventId, PartitionId, PhysDeviceId, PhysIntId, VcpuIndex, VirtIntId, VpeId};

/// The vPE standing for one vCPU on the physical ITS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VpeConfig {
    /// The vPE ID the kernel gave this vCPU (and VMAPP'd).
    pub vpe: VpeId,
    /// Its doorbell pINTID ([`NO_DOORBELL`] for none), an LPI the kernel owns.
    pub doorbell: PhysIntId,
    /// The redistributor of the vCPU's physical CPU (the VMAPP target).
    pub rdbase: RdBase,
}

/// One physical device the partition owns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PassthroughDevice {
    /// EventID bits of the ITT the kernel MAPD'd for it (MAPD Size + 1).
    pub event_id_bits: u8,
}

impl PassthroughDevice {
    /// Whether `event` fits the device's physical ITT.
    pub fn event_in_range(&self, event: EventId) -> bool {
        u64::from(event.get()) >> self.event_id_bits == 0
    }
}

/// The isolation check both passthrough backends make before a physical
/// command names `device`: the partition owns it, and `event` fits its
/// physical ITT.
pub fn owned_event(
    devices: &BTreeMap<PhysDeviceId, PassthroughDevice>,
    device: PhysDeviceId,
    event: EventId,
) -> Result<PassthroughDevice, super::Refusal> {
    let entry = devices
        .get(&device)
        .ok_or(super::Refusal::ForeignDevice { device })?;
    if entry.event_in_range(event) {
        Ok(*entry)
    } else {
        Err(super::Refusal::EventOutOfRange { device, event })
    }
}

/// The passthrough configuration of one partition, fixed at construction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PassthroughConfig {
    /// The partition (for logs).
    pub partition: PartitionId,
    /// The vPE of each vCPU, indexed by [`VcpuIndex`].
    pub vpes: Vec<VpeConfig>,
    /// The physical devices the partition owns.
    pub devices: BTreeMap<PhysDeviceId, PassthroughDevice>,
    /// vINTID bits of the vPEs' virtual pending tables (VMAPP VPT_size + 1)
    /// and of the VM's vLPI property table.
    pub vlpi_id_bits: u8,
    /// Most physical commands queued before a batch is flushed early (so a
    /// MAPC retarget of a large collection cannot overrun the queue).
    pub max_batch: usize,
}

/// Why a [`PassthroughConfig`] was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PassthroughConfigError {
    /// The partition has no vCPU.
    NoVcpus,
    /// Two vCPUs share a vPE ID.
    DuplicateVpe { vpe: VpeId },
    /// Two vCPUs share a doorbell.
    DuplicateDoorbell { doorbell: PhysIntId },
    /// A doorbell is neither an LPI nor [`NO_DOORBELL`].
    DoorbellNotLpi { doorbell: PhysIntId },
    /// A device's ITT EventID width is outside 1..=32.
    EventIdBits {
        device: PhysDeviceId,
        event_id_bits: u8,
    },
    /// The vLPI INTID width is outside 14..=32 (IHI 0069: VPT_size).
    VlpiIdBits { bits: u8 },
    /// `max_batch` leaves no room for one command and the VSYNCs.
    BatchTooSmall { max_batch: usize },
}

impl PassthroughConfig {
    /// Checks every field; the backend relies on these facts everywhere.
    pub fn validate(&self) -> Result<(), PassthroughConfigError> {
        if self.vpes.is_empty() {
            return Err(PassthroughConfigError::NoVcpus);
        }
        if !(14..=32).contains(&self.vlpi_id_bits) {
            return Err(PassthroughConfigError::VlpiIdBits {
                bits: self.vlpi_id_bits,
            });
        }
        // One command plus one VSYNC per vPE must fit in a batch.
        if self.max_batch <= self.vpes.len() {
            return Err(PassthroughConfigError::BatchTooSmall {
                max_batch: self.max_batch,
            });
        }
        let mut vpes = BTreeSet::new();
        let mut doorbells = BTreeSet::new();
        for vpe in &self.vpes {
            if !vpes.insert(vpe.vpe) {
                return Err(PassthroughConfigError::DuplicateVpe { vpe: vpe.vpe });
            }
            if vpe.doorbell.get() == NO_DOORBELL {
                continue;
            }
            if vpe.doorbell.get() < FIRST_LPI {
                return Err(PassthroughConfigError::DoorbellNotLpi {
                    doorbell: vpe.doorbell,
                });
            }
            if !doorbells.insert(vpe.doorbell) {
                return Err(PassthroughConfigError::DuplicateDoorbell {
                    doorbell: vpe.doorbell,
                });
            }
        }
        for (&device, entry) in &self.devices {
            if !(1..=32).contains(&entry.event_id_bits) {
                return Err(PassthroughConfigError::EventIdBits {
                    device,
                    event_id_bits: entry.event_id_bits,
                });
            }
        }
        Ok(())
    }

    /// The vPE of `vcpu`, if the partition has that vCPU.
    pub fn vpe_of(&self, vcpu: VcpuIndex) -> Option<VpeConfig> {
        self.vpes.get(vcpu.index()).copied()
    }

    /// Whether `vintid` is a vLPI the vPEs' tables cover.
    pub fn is_vlpi(&self, vintid: VirtIntId) -> bool {
        vintid.get() >= FIRST_LPI && u64::from(vintid.get()) >> self.vlpi_id_bits == 0
    }

    /// Whether `vpe` is one of the partition's vPEs.
    pub fn owns_vpe(&self, vpe: VpeId) -> bool {
        self.vpes.iter().any(|v| v.vpe == vpe)
    }

    /// Whether `doorbell` is one of the partition's doorbells, or none.
    pub fn owns_doorbell(&self, doorbell: u32) -> bool {
        doorbell == NO_DOORBELL || self.vpes.iter().any(|v| v.doorbell.get() == doorbell)
    }
}
