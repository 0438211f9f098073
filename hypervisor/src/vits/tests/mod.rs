//! Host tests of the virtual ITS: a fake guest memory, a test-only command
//! encoder (IHI 0069, 5.3 layouts) and a harness that drives the vITS the
//! way a guest driver does.

mod budget;
mod commands;
mod pending;
mod props;
mod queue;
mod reference_state;
mod registers;
mod state_props;
mod work;

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use super::*;
use crate::guest_mem::{FakeGuestMemory, GuestMemory};
use crate::ids::{PartitionId, PhysDeviceId, VcpuIndex, VirtCollectionId, VirtDeviceId};
use crate::mm::Ipa;

/// Guest RAM used by the tests.
pub(super) const RAM_BASE: u64 = 0x4000_0000;
/// 1 MiB of it.
pub(super) const RAM_SIZE: usize = 0x10_0000;
/// Command queue: 64 KiB (16 pages) at the start of RAM.
pub(super) const QUEUE: u64 = RAM_BASE;
/// Device table: one 64 KiB page.
pub(super) const DEVICE_TABLE: u64 = RAM_BASE + 0x1_0000;
/// Collection table: one 64 KiB page.
pub(super) const COLLECTION_TABLE: u64 = RAM_BASE + 0x2_0000;
/// Where ITTs go (never read by the vITS).
pub(super) const ITT: u64 = RAM_BASE + 0x3_0000;

/// The passthrough device behind virtual DeviceID 1.
pub(super) const PASSTHROUGH: PhysDeviceId = PhysDeviceId::new(0x0100);

/// The configuration most tests use: 16-bit IDs, 4 vCPUs, small caps.
pub(super) fn config() -> VitsConfig {
    let mut devices = BTreeMap::new();
    devices.insert(
        VirtDeviceId::new(1),
        DeviceBacking::Passthrough(PASSTHROUGH),
    );
    devices.insert(VirtDeviceId::new(2), DeviceBacking::Emulated);
    VitsConfig {
        partition: PartitionId::new(3),
        index: 0,
        device_id_bits: 16,
        event_id_bits: 16,
        lpi_id_bits: 16,
        collection_id_bits: 8,
        num_vcpus: 4,
        max_devices: 8,
        max_events: 64,
        max_collections: 256,
        max_commands_per_trap: 64,
        devices,
        cpu_device_id: Some(VirtDeviceId::new(0)),
    }
}

/// Test-only command encoder, per the layouts of IHI 0069, 5.3.
pub(super) mod cmd {
    fn dev(device: u32) -> u64 {
        u64::from(device) << 32
    }
    fn rd(vcpu: u64) -> u64 {
        vcpu << 16
    }
    const V: u64 = 1 << 63;

    pub fn mapd(device: u32, event_bits: u8, itt: u64, valid: bool) -> [u64; 4] {
        let size = u64::from(event_bits.saturating_sub(1));
        [0x08 | dev(device), size, itt | if valid { V } else { 0 }, 0]
    }
    pub fn mapc(icid: u16, vcpu: u64, valid: bool) -> [u64; 4] {
        let v = if valid { V } else { 0 };
        [0x09, 0, u64::from(icid) | rd(vcpu) | v, 0]
    }
    pub fn mapti(device: u32, event: u32, intid: u32, icid: u16) -> [u64; 4] {
        [
            0x0A | dev(device),
            u64::from(event) | u64::from(intid) << 32,
            u64::from(icid),
            0,
        ]
    }
    pub fn mapi(device: u32, event: u32, icid: u16) -> [u64; 4] {
        [0x0B | dev(device), u64::from(event), u64::from(icid), 0]
    }
    fn dev_event(op: u64, device: u32, event: u32) -> [u64; 4] {
        [op | dev(device), u64::from(event), 0, 0]
    }
    pub fn int(device: u32, event: u32) -> [u64; 4] {
        dev_event(0x03, device, event)
    }
    pub fn clear(device: u32, event: u32) -> [u64; 4] {
        dev_event(0x04, device, event)
    }
    pub fn discard(device: u32, event: u32) -> [u64; 4] {
        dev_event(0x0F, device, event)
    }
    pub fn inv(device: u32, event: u32) -> [u64; 4] {
        dev_event(0x0C, device, event)
    }
    pub fn invall(icid: u16) -> [u64; 4] {
        [0x0D, 0, u64::from(icid), 0]
    }
    pub fn movi(device: u32, event: u32, icid: u16) -> [u64; 4] {
        [0x01 | dev(device), u64::from(event), u64::from(icid), 0]
    }
    pub fn movall(from: u64, to: u64) -> [u64; 4] {
        [0x0E, 0, rd(from), rd(to)]
    }
    pub fn sync(vcpu: u64) -> [u64; 4] {
        [0x05, 0, rd(vcpu), 0]
    }
}

/// A vITS with guest memory and a backend, set up like Linux's ITS driver
/// does: Device and Collection tables, a 64 KiB command queue, enabled.
pub(super) struct Harness<B> {
    pub vits: Vits,
    pub mem: FakeGuestMemory,
    pub backend: B,
}

impl Harness<RecordingBackend> {
    /// The default configuration with a recording backend, enabled.
    pub fn recording() -> Self {
        Self::with(config(), RecordingBackend::new())
    }
}

impl Harness<ModelBackend> {
    /// The default configuration with a software backend, enabled.
    pub fn software() -> Self {
        let config = config();
        let backend = ModelBackend::new(config.num_vcpus, 64);
        Self::with(config, backend)
    }
}

impl<B: VitsBackend> Harness<B> {
    /// `config` with `backend`, tables and queue set up, ITS enabled.
    pub fn with(config: VitsConfig, backend: B) -> Self {
        let mut harness = Self::disabled(config, backend);
        harness.write(offset::CTLR, AccessWidth::Word, 1);
        harness
    }

    /// Like [`Self::with`] but with the ITS left disabled.
    pub fn disabled(config: VitsConfig, backend: B) -> Self {
        let vits = Vits::new(config).expect("valid test config");
        let mem = FakeGuestMemory::new(Ipa(RAM_BASE), RAM_SIZE);
        let mut harness = Self { vits, mem, backend };
        let page_64k = 0b10 << 8;
        let valid = 1 << 63;
        harness.write(
            offset::BASER,
            AccessWidth::Double,
            valid | page_64k | DEVICE_TABLE,
        );
        harness.write(
            offset::BASER + 8,
            AccessWidth::Double,
            valid | page_64k | COLLECTION_TABLE,
        );
        harness.write(offset::CBASER, AccessWidth::Double, valid | QUEUE | 15);
        harness
    }

    /// A guest register write.
    pub fn write(&mut self, offset: u64, width: AccessWidth, value: u64) {
        self.vits
            .mmio_write(offset, width, value, &self.mem, &mut self.backend);
    }

    /// A guest register read.
    pub fn read(&mut self, offset: u64, width: AccessWidth) -> u64 {
        self.vits
            .mmio_read(offset, width, &self.mem, &mut self.backend)
    }

    /// Writes `commands` into the queue at CWRITER, wrapping, without
    /// telling the ITS.
    pub fn enqueue(&mut self, commands: &[[u64; 4]]) -> u64 {
        let size = self.vits.regs.queue_size();
        let base = self.vits.regs.queue_base();
        let mut at = self.read(offset::CWRITER, AccessWidth::Double);
        for command in commands {
            for (i, word) in command.iter().enumerate() {
                let ipa = Ipa(base.raw() + at + 8 * i as u64);
                self.mem.write_u64(ipa, *word).expect("queue in RAM");
            }
            at = (at + COMMAND_SIZE) % size;
        }
        at
    }

    /// Writes `commands` into the queue and announces them through CWRITER.
    pub fn submit(&mut self, commands: &[[u64; 4]]) {
        let end = self.enqueue(commands);
        self.write(offset::CWRITER, AccessWidth::Double, end);
    }

    /// GITS_CREADR as the guest reads it.
    pub fn creadr(&mut self) -> u64 {
        self.read(offset::CREADR, AccessWidth::Double)
    }
}

/// Maps device 1 (passthrough, 8 event bits), collections 0..4 to vCPUs
/// 0..4, and event `e` of device 1 to LPI 8192 + e on collection 0, for
/// each `e` in `events`.
pub(super) fn basic_setup(events: &[u32]) -> Vec<[u64; 4]> {
    let mut commands = alloc::vec![cmd::mapd(1, 8, ITT, true)];
    for icid in 0..4u16 {
        commands.push(cmd::mapc(icid, u64::from(icid), true));
    }
    for &e in events {
        commands.push(cmd::mapti(1, e, 8192 + e, 0));
    }
    commands
}

/// The isolation invariant: every backend action names only devices the
/// config resolves, with their configured backing, and vCPUs below
/// `num_vcpus`.
pub(super) fn assert_isolated(config: &VitsConfig, actions: &[BackendAction]) {
    for action in actions {
        for vcpu in action.vcpus().into_iter().flatten() {
            assert!(vcpu.get() < config.num_vcpus, "{action:?} names {vcpu:?}");
        }
        if let Some(event) = action.event() {
            assert_eq!(
                event.backing,
                config.backing(event.device),
                "{action:?} has a backing the config does not give"
            );
            if let DeviceBacking::Passthrough(phys) = event.backing {
                assert!(config
                    .devices
                    .values()
                    .any(|b| *b == DeviceBacking::Passthrough(phys)));
            }
        }
    }
}

/// The event reference for `event` of device `device` under `config()`.
pub(super) fn event_ref(device: u32, event: u32) -> EventRef {
    EventRef {
        device: VirtDeviceId::new(device),
        backing: config().backing(VirtDeviceId::new(device)),
        event: crate::ids::EventId::new(event),
    }
}

/// Shorthand for a vCPU index.
pub(super) fn vcpu(index: u16) -> VcpuIndex {
    VcpuIndex::new(index)
}

/// Shorthand for a collection ID.
pub(super) fn icid(id: u16) -> VirtCollectionId {
    VirtCollectionId::new(id)
}
