//! Two partitions, each with two virtual ITSs, over one physical ITS
//! (`vits/` and `gicv4/`): the first vITS of each partition has a
//! passthrough device, both at the same virtual DeviceID, and GICv4
//! backends that share the physical sink; the second vITS only emulated
//! devices. The fuzzer's bytes are guest commands, register accesses,
//! MSIs, physical MSIs from the devices and partition resets, from either
//! partition.
//!
//! Asserts the isolation invariant: every physical command a partition's
//! backend sends names only its own devices, vPEs and doorbells; nothing
//! one partition does changes what the other's devices translate to on the
//! physical ITS, which vLPIs are pending on its vPEs, or its vLPI
//! configuration; a physical MSI reaches only a vPE of the partition that
//! owns the device; a reset leaves nothing of the partition mapped. And
//! per vITS, the caps of its configuration.

use std::collections::{BTreeMap, BTreeSet};

use crate::ram::{Ram, RAM_BASE};
use hypervisor::gic::its_cmd::{ItsCommand, RdBase, NO_DOORBELL};
use hypervisor::gicv4::{
    Gicv4Backend, PassthroughConfig, PassthroughDevice, PassthroughState, PhysItsQueue,
    PhysItsSink, SinkError, VpeConfig,
};
use hypervisor::guest_mem::GuestMemory;
use hypervisor::ids::{
    EventId, PartitionId, PhysDeviceId, PhysIntId, VcpuIndex, VirtDeviceId, VirtIntId, VpeId,
};
use hypervisor::mm::Ipa;
use hypervisor::vgic::LpiConfig;
use hypervisor::vits::{
    offset, AccessWidth, DeviceBacking, ModelBackend, Vits, VitsConfig, COMMAND_SIZE,
};

use crate::input::Input;

const RAM_SIZE: usize = 0x6_0000;
const VCPUS: u16 = 2;
const MAX_PENDING: usize = 8;
/// MAPD, MAPC, MAPTI, MAPI, MOVI, DISCARD, INV, MOVALL, INVALL, SYNC, INT, CLEAR.
const OPCODES: [u8; 12] = [
    0x08, 0x09, 0x0a, 0x0b, 0x01, 0x0f, 0x0c, 0x0e, 0x0d, 0x05, 0x03, 0x04,
];
/// Queue bytes each vITS uses (16 KiB from its queue base).
const QUEUE_BYTES: u64 = 0x4000;

/// What one partition may name on the physical ITS.
struct Owned {
    devices: BTreeSet<u32>,
    vpes: BTreeSet<u16>,
    doorbells: BTreeSet<u32>,
}

/// The physical ITS both partitions' backends submit to: translations,
/// pending vLPIs per vPE and each VM's vLPI configuration.
#[derive(Default)]
struct PhysIts {
    /// Who is submitting now (the partition whose trap this is).
    caller: usize,
    owned: Vec<Owned>,
    /// (DeviceID, EventID) -> (vPE, vINTID).
    translations: BTreeMap<(u32, u32), (u16, u32)>,
    /// (vPE, vINTID) pending.
    pending: BTreeSet<(u16, u32)>,
    /// Per partition: vINTID -> configuration written to its VM's table.
    configs: Vec<BTreeMap<u32, LpiConfig>>,
}

/// One partition's part of the physical ITS, for before/after comparisons.
type View = (
    BTreeMap<(u32, u32), (u16, u32)>,
    BTreeSet<(u16, u32)>,
    BTreeMap<u32, LpiConfig>,
);

impl PhysIts {
    fn view(&self, partition: usize) -> View {
        let owned = &self.owned[partition];
        let translations = self
            .translations
            .iter()
            .filter(|((device, _), _)| owned.devices.contains(device))
            .map(|(&k, &v)| (k, v))
            .collect();
        let pending = self
            .pending
            .iter()
            .filter(|(vpe, _)| owned.vpes.contains(vpe))
            .copied()
            .collect();
        (translations, pending, self.configs[partition].clone())
    }

    fn check(&self, command: &ItsCommand) {
        let owned = &self.owned[self.caller];
        let caller = self.caller;
        let device = |id: u32| assert!(owned.devices.contains(&id), "{caller}: {command:?}");
        let vpe = |id: u16| assert!(owned.vpes.contains(&id), "{caller}: {command:?}");
        let doorbell = |id: u32| {
            assert!(
                id == NO_DOORBELL || owned.doorbells.contains(&id),
                "{caller}: {command:?}"
            )
        };
        match *command {
            ItsCommand::Vmapti {
                device_id,
                vpe_id,
                db_intid,
                ..
            }
            | ItsCommand::Vmapi {
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
            } => {
                device(device_id);
                vpe(vpe_id);
                doorbell(db_intid);
            }
            ItsCommand::Int { device_id, .. }
            | ItsCommand::Clear { device_id, .. }
            | ItsCommand::Discard { device_id, .. }
            | ItsCommand::Inv { device_id, .. } => device(device_id),
            ItsCommand::Vsync { vpe_id } | ItsCommand::Vinvall { vpe_id } => vpe(vpe_id),
            _ => panic!("{caller}: a guest's trap sent {command:?}"),
        }
    }

    fn apply(&mut self, command: &ItsCommand) {
        match *command {
            ItsCommand::Vmapti {
                device_id,
                event_id,
                vpe_id,
                vintid,
                ..
            } => {
                self.translations
                    .insert((device_id, event_id), (vpe_id, vintid));
            }
            ItsCommand::Vmovi {
                device_id,
                event_id,
                vpe_id,
                ..
            } => {
                if let Some(entry) = self.translations.get_mut(&(device_id, event_id)) {
                    // IHI 0069, 5.3 (VMOVI): pending state moves with it.
                    if self.pending.remove(&(entry.0, entry.1)) {
                        self.pending.insert((vpe_id, entry.1));
                    }
                    entry.0 = vpe_id;
                }
            }
            ItsCommand::Discard {
                device_id,
                event_id,
            } => {
                if let Some((vpe, vintid)) = self.translations.remove(&(device_id, event_id)) {
                    self.pending.remove(&(vpe, vintid));
                }
            }
            ItsCommand::Int {
                device_id,
                event_id,
            } => self.msi(device_id, event_id),
            ItsCommand::Clear {
                device_id,
                event_id,
            } => {
                if let Some(&(vpe, vintid)) = self.translations.get(&(device_id, event_id)) {
                    self.pending.remove(&(vpe, vintid));
                }
            }
            _ => {}
        }
    }

    /// A device writes `event` (or INT does it): the vLPI becomes pending.
    fn msi(&mut self, device: u32, event: u32) {
        if let Some(&(vpe, vintid)) = self.translations.get(&(device, event)) {
            self.pending.insert((vpe, vintid));
        }
    }
}

impl PhysItsQueue for PhysIts {
    fn submit(&mut self, commands: &[ItsCommand], sync: ItsCommand) -> Result<(), SinkError> {
        for command in commands.iter().chain([&sync]) {
            self.check(command);
            self.apply(command);
        }
        Ok(())
    }
}

impl PhysItsSink for PhysIts {
    fn set_vlpi_config(&mut self, vintid: VirtIntId, config: LpiConfig) -> Result<(), SinkError> {
        self.configs[self.caller].insert(vintid.get(), config);
        Ok(())
    }

    fn guest_lpi_config(&mut self, _vcpu: VcpuIndex, vintid: VirtIntId) -> Option<LpiConfig> {
        (vintid.get() & 1 == 0).then_some(LpiConfig {
            priority: 0xa0,
            enabled: true,
        })
    }
}

/// One partition: its RAM, two vITSs, the GICv4 state and the software
/// backend its emulated events use.
struct Partition {
    ram: Ram,
    its: Vec<Vits>,
    cwriter: Vec<u64>,
    state: Option<PassthroughState>,
    software: Option<ModelBackend>,
    device: PhysDeviceId,
}

fn passthrough_config(index: usize, device: PhysDeviceId) -> PassthroughConfig {
    let first_vpe = 10 + 10 * index as u16;
    let vpes = (0..VCPUS)
        .map(|n| VpeConfig {
            vpe: VpeId::new(first_vpe + n),
            doorbell: PhysIntId::from_const(9000 + 100 * index as u32 + u32::from(n)),
            rdbase: RdBase::processor(n),
        })
        .collect();
    let mut devices = BTreeMap::new();
    devices.insert(device, PassthroughDevice { event_id_bits: 5 });
    PassthroughConfig {
        partition: PartitionId::new(index as u16),
        vpes,
        devices,
        vlpi_id_bits: 14,
        max_batch: 16,
    }
}

fn vits_config(partition: usize, index: u8, device: PhysDeviceId) -> VitsConfig {
    let mut devices = BTreeMap::new();
    if index == 0 {
        devices.insert(VirtDeviceId::new(1), DeviceBacking::Passthrough(device));
    } else {
        devices.insert(VirtDeviceId::new(1), DeviceBacking::Emulated);
    }
    devices.insert(VirtDeviceId::new(2), DeviceBacking::Emulated);
    VitsConfig {
        partition: PartitionId::new(partition as u16),
        index,
        device_id_bits: 8,
        event_id_bits: 5,
        lpi_id_bits: 14,
        collection_id_bits: 4,
        num_vcpus: VCPUS,
        max_devices: 4,
        max_events: 16,
        max_collections: 8,
        max_commands_per_trap: 16,
        devices,
        cpu_device_id: None,
    }
}

impl Partition {
    fn new(index: usize, phys: &mut PhysIts) -> Self {
        let device = PhysDeviceId::new(0x100 * (index as u32 + 1));
        let config = passthrough_config(index, device);
        phys.owned.push(Owned {
            devices: config.devices.keys().map(|d| d.get()).collect(),
            vpes: config.vpes.iter().map(|v| v.vpe.get()).collect(),
            doorbells: config.vpes.iter().map(|v| v.doorbell.get()).collect(),
        });
        phys.configs.push(BTreeMap::new());
        let mut partition = Partition {
            ram: Ram(vec![0; RAM_SIZE]),
            its: (0..2)
                .map(|i| Vits::new(vits_config(index, i, device)).expect("valid"))
                .collect(),
            cwriter: vec![0; 2],
            state: Some(PassthroughState::new(config).expect("valid")),
            software: Some(ModelBackend::new(VCPUS, MAX_PENDING)),
            device,
        };
        // Tables and queues set up as a guest driver would, so commands go deep.
        let valid = 1u64 << 63;
        for its in 0..2u64 {
            let base = RAM_BASE + its * 0x3_0000;
            partition.mmio_write(
                phys,
                its as usize,
                offset::BASER,
                valid | (0b10 << 8) | (base + 0x1_0000),
            );
            partition.mmio_write(
                phys,
                its as usize,
                offset::BASER + 8,
                valid | (base + 0x2_0000),
            );
            partition.mmio_write(phys, its as usize, offset::CBASER, valid | base | 3);
            partition.mmio_write(phys, its as usize, offset::CTLR, 1);
        }
        partition
    }

    /// Runs `f` on vITS `its` with this trap's GICv4 backend.
    fn with_backend<R>(
        &mut self,
        phys: &mut PhysIts,
        its: usize,
        f: impl FnOnce(&mut Vits, &Ram, &mut Gicv4Backend<&mut PhysIts, ModelBackend>) -> R,
    ) -> R {
        let state = self.state.take().expect("state between traps");
        let software = self.software.take().expect("software between traps");
        let mut backend = Gicv4Backend::from_parts(state, phys, software);
        let result = f(&mut self.its[its], &self.ram, &mut backend);
        let (state, _, software) = backend.into_parts();
        self.state = Some(state);
        self.software = Some(software);
        result
    }

    fn mmio_write(&mut self, phys: &mut PhysIts, its: usize, at: u64, value: u64) {
        // GITS_CTLR is 32 bits wide; the other registers written here are 64.
        let width = if at == offset::CTLR {
            AccessWidth::Word
        } else {
            AccessWidth::Double
        };
        self.with_backend(phys, its, |vits, ram, backend| {
            vits.mmio_write(at, width, value, ram, backend)
        });
    }
}

/// One fuzz input: a sequence of (partition, operation) pairs.
pub fn run(data: &[u8]) {
    drive(data);
}

/// Runs `data`; returns the most physical translations seen at once.
fn drive(data: &[u8]) -> usize {
    let mut most = 0;
    let mut input = Input(data);
    let mut phys = PhysIts::default();
    let mut partitions: Vec<Partition> = (0..2).map(|i| Partition::new(i, &mut phys)).collect();
    while !input.is_empty() {
        let code = input.u8();
        let who = usize::from(code & 1);
        let its = usize::from(code >> 1 & 1);
        let other = 1 - who;
        let before = phys.view(other);
        phys.caller = who;
        let partition = &mut partitions[who];
        match (code >> 2) % 6 {
            0 | 1 => {
                // Commands at this vITS's CWRITER, then the doorbell write.
                let queue = RAM_BASE + its as u64 * 0x3_0000;
                for _ in 0..=input.u8() % 4 {
                    let at = partition.cwriter[its];
                    let words = [input.u8(), input.u8(), input.u8(), input.u8()];
                    // Mostly a real opcode (MAPD, MAPC, MAPTI first) with
                    // small IDs, sometimes any four words.
                    let opcode = input.pick(&OPCODES);
                    let dw0 = u64::from(opcode) | u64::from(words[0] % 4) << 32;
                    let dw1 = if opcode == 0x08 {
                        4 // MAPD: 5 EventID bits
                    } else {
                        u64::from(words[1] % 40) | (8192 + u64::from(words[2] % 64)) << 32
                    };
                    let dw2 = (1u64 << 63)
                        | if words[3] & 0x80 != 0 {
                            queue + 0x2_8000 // an ITT
                        } else {
                            // ICID, and for MAPC the target vCPU.
                            u64::from(words[3] % 8) | u64::from(words[3] >> 3 & 1) << 16
                        };
                    let raw = if words[3] == 0x7f {
                        [input.u64(), input.u64(), input.u64(), input.u64()]
                    } else {
                        [dw0, dw1, dw2, 0]
                    };
                    for (i, word) in raw.iter().enumerate() {
                        let _ = partition
                            .ram
                            .write_u64(Ipa(queue + at + 8 * i as u64), *word);
                    }
                    partition.cwriter[its] = (at + COMMAND_SIZE) % QUEUE_BYTES;
                }
                let cwriter = partition.cwriter[its];
                partition.mmio_write(&mut phys, its, offset::CWRITER, cwriter);
            }
            2 => {
                let at = input.pick(&[
                    offset::CTLR,
                    offset::CBASER,
                    offset::CWRITER,
                    offset::BASER,
                    0x8,
                    0xffe8,
                ]);
                let value = input.u64();
                partition.mmio_write(&mut phys, its, at, value);
                // The guest may have disabled it or moved its queue: keep going.
            }
            3 => {
                let device = VirtDeviceId::new(u32::from(input.u8() % 3));
                let event = EventId::new(u32::from(input.u8() % 40));
                let _ = partition.with_backend(&mut phys, its, |vits, _, backend| {
                    vits.send_msi(device, event, backend)
                });
            }
            4 => {
                // The passthrough device itself writes to the physical ITS.
                let event = u32::from(input.u8() % 40);
                let device = partition.device.get();
                phys.msi(device, event);
                for &(vpe, _) in &phys.pending {
                    let owner = phys.owned.iter().position(|o| o.vpes.contains(&vpe));
                    assert!(owner.is_some(), "pending on an unknown vPE {vpe}");
                }
            }
            _ => {
                // Partition reset: the backend discards everything it mapped.
                let report =
                    partition.with_backend(&mut phys, 0, |_, _, backend| backend.teardown());
                assert!(report.result.is_ok());
                let (translations, pending, _) = phys.view(who);
                assert!(
                    translations.is_empty(),
                    "left mapped after reset: {translations:?}"
                );
                assert!(pending.is_empty(), "left pending after reset: {pending:?}");
                let index = who;
                let device = partition.device;
                partition.its = (0..2)
                    .map(|i| Vits::new(vits_config(index, i, device)).expect("valid"))
                    .collect();
                partition.software = Some(ModelBackend::new(VCPUS, MAX_PENDING));
            }
        }
        assert_eq!(
            phys.view(other),
            before,
            "partition {who} changed partition {other}"
        );
        most = most.max(phys.translations.len());
        for ((device, _), (vpe, _)) in &phys.translations {
            let owner = phys.owned.iter().position(|o| o.devices.contains(device));
            let vpe_owner = phys.owned.iter().position(|o| o.vpes.contains(vpe));
            assert_eq!(
                owner, vpe_owner,
                "device {device:#x} translates to vPE {vpe}"
            );
        }
        for partition in &partitions {
            for vits in &partition.its {
                let state = vits.state();
                assert!(state.device_count() <= 4 && state.event_count() <= 16);
            }
            let software = partition.software.as_ref().expect("between traps");
            assert!(software.pending_count() <= usize::from(VCPUS) * MAX_PENDING);
        }
    }
    most
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The setup reaches the physical ITS: a guest's MAPD, MAPC and MAPTI
    /// of its passthrough device become one VMAPTI of the partition's own
    /// device to its own vPE, and the other partition sees nothing.
    #[test]
    fn a_passthrough_mapping_reaches_the_shared_physical_its() {
        let mut phys = PhysIts::default();
        let mut partitions: Vec<Partition> = (0..2).map(|i| Partition::new(i, &mut phys)).collect();
        phys.caller = 1;
        let commands = [
            ItsCommand::Mapd {
                device_id: 1,
                size: 4,
                itt_addr: RAM_BASE + 0x2_8000,
                valid: true,
            },
            ItsCommand::Mapc {
                icid: 0,
                rdbase: RdBase::processor(1),
                valid: true,
            },
            ItsCommand::Mapti {
                device_id: 1,
                event_id: 3,
                intid: 8200,
                icid: 0,
            },
        ];
        let partition = &mut partitions[1];
        for (n, command) in commands.iter().enumerate() {
            for (i, word) in command.encode().iter().enumerate() {
                let ipa = Ipa(RAM_BASE + n as u64 * COMMAND_SIZE + 8 * i as u64);
                partition.ram.write_u64(ipa, *word).expect("queue in RAM");
            }
        }
        partition.mmio_write(&mut phys, 0, offset::CWRITER, 3 * COMMAND_SIZE);
        let (translations, _, _) = phys.view(1);
        assert_eq!(
            translations.into_iter().collect::<Vec<_>>(),
            vec![((0x200, 3), (21, 8200))]
        );
        assert!(phys.view(0).0.is_empty());
        phys.msi(0x200, 3);
        assert!(phys.view(1).1.contains(&(21, 8200)));
    }

    /// The checked-in seed maps an event of one partition, resets it, then
    /// maps one of the other.
    #[test]
    fn the_mapping_seed_reaches_the_physical_its() {
        let seed = include_bytes!("../seeds/vits_pair/map-msi-reset");
        assert_eq!(drive(seed), 1);
    }
}
