//! A recording physical ITS for tests: it keeps every batch, a model of
//! what the physical ITS would hold after it (event -> vPE/vINTID, vLPI
//! pending bits per vPE, the VM's vLPI property table), and flags every
//! command that names a device, vPE or doorbell outside the partition or
//! that hardware would reject.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

use super::config::PassthroughConfig;
use super::sink::{PhysItsQueue, PhysItsSink, SinkError};
use crate::gic::its_cmd::{ItsCommand, RdBase};
use crate::gic::its_queue::QueueError;
use crate::ids::{VcpuIndex, VirtIntId};
use crate::vgic::LpiConfig;

/// One physical ITT entry of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhysEntry {
    /// vPE ID.
    pub vpe: u16,
    /// vINTID.
    pub vintid: u32,
    /// Doorbell pINTID.
    pub doorbell: u32,
}

/// The recording sink.
#[derive(Clone, Debug, Default)]
pub struct RecordingSink {
    devices: BTreeSet<u32>,
    vpes: BTreeSet<u16>,
    doorbells: BTreeSet<u32>,
    /// Every batch taken, with its closing sync.
    pub batches: Vec<(Vec<ItsCommand>, ItsCommand)>,
    /// (DeviceID, EventID) -> vLPI.
    pub events: BTreeMap<(u32, u32), PhysEntry>,
    /// Each vPE's redistributor, as VMAPP and then VMOVP left it.
    pub vpe_rd: BTreeMap<u16, RdBase>,
    /// Pending vLPIs, as (vPE, vINTID).
    pub pending: BTreeSet<(u16, u32)>,
    /// The VM's vLPI property table.
    pub vprop: BTreeMap<u32, LpiConfig>,
    /// The guest's LPI configuration, as the vGIC would read it.
    pub guest: BTreeMap<u32, LpiConfig>,
    /// Commands naming something outside the partition (must stay empty).
    pub violations: Vec<ItsCommand>,
    /// Commands hardware would reject as command errors.
    pub command_errors: Vec<ItsCommand>,
    /// INV and VINVALL commands seen, in order.
    pub invalidations: Vec<ItsCommand>,
    /// Fail this many of the next submits (not applied).
    pub fail_submits: usize,
    /// Fail every vLPI property write.
    pub fail_config: bool,
    /// Whether the GICv3 software path's commands (MAPD, MAPTI, MOVI,
    /// SYNC) are the backend's to issue (for [`super::RoutedBackend`]).
    pub gicv3: bool,
    /// Devices MAPD'd with V=1, with their ITT address.
    pub mapd: BTreeMap<u32, u64>,
    /// (DeviceID, EventID) -> (physical LPI, ICID), as MAPTI/MOVI left it.
    pub lpis: BTreeMap<(u32, u32), (u32, u16)>,
}

impl RecordingSink {
    /// A sink that accepts only what `config` owns.
    pub fn for_config(config: &PassthroughConfig) -> Self {
        Self {
            devices: config.devices.keys().map(|d| d.get()).collect(),
            vpes: config.vpes.iter().map(|v| v.vpe.get()).collect(),
            doorbells: config.vpes.iter().map(|v| v.doorbell.get()).collect(),
            vpe_rd: config
                .vpes
                .iter()
                .map(|v| (v.vpe.get(), v.rdbase))
                .collect(),
            ..Self::default()
        }
    }

    /// A sink for the GICv3 software path that accepts only `devices`.
    pub fn for_devices(devices: impl IntoIterator<Item = u32>) -> Self {
        Self {
            devices: devices.into_iter().collect(),
            gicv3: true,
            ..Self::default()
        }
    }

    /// Every command of every batch, syncs included, in order.
    pub fn all_commands(&self) -> Vec<ItsCommand> {
        self.batches
            .iter()
            .flat_map(|(commands, sync)| commands.iter().copied().chain([*sync]))
            .collect()
    }

    /// Whether `command` names only the partition's devices, vPEs and
    /// doorbells, and is one the backend may issue at all.
    fn isolated(&self, command: &ItsCommand) -> bool {
        let device = |id: &u32| self.devices.contains(id);
        let vpe = |id: &u16| self.vpes.contains(id);
        let doorbell = |id: &u32| self.doorbells.contains(id) || *id == 1023;
        match command {
            ItsCommand::Int { device_id, .. }
            | ItsCommand::Clear { device_id, .. }
            | ItsCommand::Discard { device_id, .. }
            | ItsCommand::Inv { device_id, .. } => device(device_id),
            ItsCommand::Vmapti {
                device_id,
                vpe_id,
                db_intid,
                ..
            }
            | ItsCommand::Vmovi {
                device_id,
                vpe_id,
                db_intid,
                ..
            } => device(device_id) && vpe(vpe_id) && doorbell(db_intid),
            ItsCommand::Vsync { vpe_id }
            | ItsCommand::Vinvall { vpe_id }
            | ItsCommand::Vmovp { vpe_id, .. } => vpe(vpe_id),
            // The software path maps its owned devices' events to physical LPIs.
            ItsCommand::Mapd { device_id, .. }
            | ItsCommand::Mapti { device_id, .. }
            | ItsCommand::Movi { device_id, .. }
                if self.gicv3 =>
            {
                device(device_id)
            }
            ItsCommand::Sync { .. } => self.gicv3,
            // MAPC, VMAPP, MOVALL, ...: the kernel's, never the backend's.
            _ => false,
        }
    }

    /// Applies one command to the model as the ITS would.
    fn apply(&mut self, command: ItsCommand) {
        let ok = match command {
            ItsCommand::Vmapti {
                device_id,
                event_id,
                vpe_id,
                vintid,
                db_intid,
            } => {
                let entry = PhysEntry {
                    vpe: vpe_id,
                    vintid,
                    doorbell: db_intid,
                };
                self.events.insert((device_id, event_id), entry).is_none()
            }
            ItsCommand::Vmovi {
                device_id,
                event_id,
                vpe_id,
                db_intid,
                ..
            } => match self.events.get_mut(&(device_id, event_id)) {
                Some(entry) => {
                    // IHI 0069, 5.3 (VMOVI): pending state moves with the event.
                    if self.pending.remove(&(entry.vpe, entry.vintid)) {
                        self.pending.insert((vpe_id, entry.vintid));
                    }
                    entry.vpe = vpe_id;
                    entry.doorbell = db_intid;
                    true
                }
                None => false,
            },
            ItsCommand::Discard {
                device_id,
                event_id,
            } => match self.events.remove(&(device_id, event_id)) {
                Some(entry) => {
                    self.pending.remove(&(entry.vpe, entry.vintid));
                    true
                }
                None => self.lpis.remove(&(device_id, event_id)).is_some(),
            },
            ItsCommand::Mapd {
                device_id,
                itt_addr,
                valid,
                ..
            } => {
                if valid {
                    self.mapd.insert(device_id, itt_addr);
                } else {
                    // IHI 0069, 5.3 (MAPD): V=0 unmaps the device and its ITT.
                    self.mapd.remove(&device_id);
                    self.lpis.retain(|&(d, _), _| d != device_id);
                }
                true
            }
            ItsCommand::Mapti {
                device_id,
                event_id,
                intid,
                icid,
            } => {
                self.mapd.contains_key(&device_id)
                    && self
                        .lpis
                        .insert((device_id, event_id), (intid, icid))
                        .is_none()
            }
            ItsCommand::Movi {
                device_id,
                event_id,
                icid,
            } => match self.lpis.get_mut(&(device_id, event_id)) {
                Some(entry) => {
                    entry.1 = icid;
                    true
                }
                None => false,
            },
            ItsCommand::Sync { .. } => true,
            ItsCommand::Int {
                device_id,
                event_id,
            } => match self.events.get(&(device_id, event_id)) {
                Some(entry) => {
                    self.pending.insert((entry.vpe, entry.vintid));
                    true
                }
                None => false,
            },
            ItsCommand::Clear {
                device_id,
                event_id,
            } => match self.events.get(&(device_id, event_id)) {
                Some(entry) => {
                    self.pending.remove(&(entry.vpe, entry.vintid));
                    true
                }
                None => false,
            },
            ItsCommand::Inv {
                device_id,
                event_id,
            } => {
                self.invalidations.push(command);
                self.events.contains_key(&(device_id, event_id))
                    || self.lpis.contains_key(&(device_id, event_id))
            }
            ItsCommand::Vinvall { .. } => {
                self.invalidations.push(command);
                true
            }
            // IHI 0069, 5.3 (VMOVP): only the vPE table entry changes; the
            // pending bits stay in the vPE's virtual pending table.
            ItsCommand::Vmovp { vpe_id, rdbase, .. } => match self.vpe_rd.get_mut(&vpe_id) {
                Some(rd) => {
                    *rd = rdbase;
                    true
                }
                None => false,
            },
            ItsCommand::Vsync { .. } => true,
            _ => false,
        };
        if !ok {
            self.command_errors.push(command);
        }
    }
}

impl PhysItsQueue for RecordingSink {
    fn submit(&mut self, commands: &[ItsCommand], sync: ItsCommand) -> Result<(), SinkError> {
        for command in commands.iter().chain([&sync]) {
            if !self.isolated(command) {
                self.violations.push(*command);
            }
        }
        if !sync.is_sync() {
            self.violations.push(sync);
        }
        if self.fail_submits > 0 {
            self.fail_submits -= 1;
            return Err(SinkError::Queue(QueueError::Stalled { creadr: 0 }));
        }
        self.batches.push((commands.to_vec(), sync));
        for &command in commands.iter().chain([&sync]) {
            self.apply(command);
        }
        Ok(())
    }
}

impl PhysItsSink for RecordingSink {
    fn set_vlpi_config(&mut self, vintid: VirtIntId, config: LpiConfig) -> Result<(), SinkError> {
        if self.fail_config {
            return Err(SinkError::PropertyTable { vintid });
        }
        self.vprop.insert(vintid.get(), config);
        Ok(())
    }

    fn guest_lpi_config(&mut self, _vcpu: VcpuIndex, vintid: VirtIntId) -> Option<LpiConfig> {
        self.guest.get(&vintid.get()).copied()
    }
}

/// A guest's vITS for the end-to-end tests of both backends: guest RAM at
/// [`GUEST_RAM`] (command queue first, then the device and collection
/// tables), virtual device 1 backed by the passthrough function `nic`,
/// device 2 emulated.
pub mod guest {
    use alloc::collections::BTreeMap;

    use crate::gic::its_cmd::ItsCommand;
    use crate::guest_mem::{FakeGuestMemory, GuestMemory};
    use crate::ids::{PartitionId, PhysDeviceId, VirtDeviceId};
    use crate::mm::Ipa;
    use crate::vits::{
        offset, AccessWidth, DeviceBacking, Vits, VitsBackend, VitsConfig, COMMAND_SIZE,
    };

    /// Where the guest's RAM (and its command queue) starts.
    pub const GUEST_RAM: u64 = 0x4000_0000;
    const QUEUE: u64 = GUEST_RAM;
    const QUEUE_BYTES: u64 = 0x1_0000;

    /// The vITS and the guest RAM it reads its queue from.
    pub fn vits(nic: PhysDeviceId, vcpus: u16) -> (Vits, FakeGuestMemory) {
        let mut devices = BTreeMap::new();
        devices.insert(VirtDeviceId::new(1), DeviceBacking::Passthrough(nic));
        devices.insert(VirtDeviceId::new(2), DeviceBacking::Emulated);
        let config = VitsConfig {
            partition: PartitionId::new(1),
            index: 0,
            device_id_bits: 16,
            event_id_bits: 16,
            lpi_id_bits: 16,
            collection_id_bits: 8,
            num_vcpus: vcpus,
            max_devices: 8,
            max_events: 64,
            max_collections: 256,
            max_commands_per_trap: 64,
            devices,
            cpu_device_id: None,
        };
        let vits = Vits::new(config).expect("valid");
        (vits, FakeGuestMemory::new(Ipa(GUEST_RAM), 0x10_0000))
    }

    /// What the guest's driver does first: device and collection tables
    /// (64 KiB pages), the command queue, then GITS_CTLR.Enabled.
    pub fn enable<B: VitsBackend>(vits: &mut Vits, mem: &FakeGuestMemory, backend: &mut B) {
        let (valid, page_64k) = (1u64 << 63, 0b10u64 << 8);
        let double = AccessWidth::Double;
        let device_table = valid | page_64k | (GUEST_RAM + 0x1_0000);
        let collection_table = valid | page_64k | (GUEST_RAM + 0x2_0000);
        vits.mmio_write(offset::BASER, double, device_table, mem, backend);
        vits.mmio_write(offset::BASER + 8, double, collection_table, mem, backend);
        vits.mmio_write(offset::CBASER, double, valid | QUEUE | 15, mem, backend);
        vits.mmio_write(offset::CTLR, AccessWidth::Word, 1, mem, backend);
    }

    /// Writes `commands` into the queue and rings CWRITER: one trap.
    pub fn run<B: VitsBackend>(
        vits: &mut Vits,
        mem: &mut FakeGuestMemory,
        backend: &mut B,
        commands: &[ItsCommand],
    ) {
        let mut at = vits.mmio_read(offset::CWRITER, AccessWidth::Double, &*mem, backend);
        for command in commands {
            for (i, word) in command.encode().iter().enumerate() {
                let ipa = Ipa(QUEUE + at + 8 * i as u64);
                mem.write_u64(ipa, *word).expect("queue in RAM");
            }
            at = (at + COMMAND_SIZE) % QUEUE_BYTES;
        }
        vits.mmio_write(offset::CWRITER, AccessWidth::Double, at, &*mem, backend);
    }
}
