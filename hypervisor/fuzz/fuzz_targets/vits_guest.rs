//! Fuzzes one virtual ITS with whatever a guest can do: raw command words
//! in its queue, register accesses of every width and offset, and MSIs.
//!
//! Asserts: no panic, the state stays within the configured caps, and every
//! backend call names only this partition's devices (with the backing the
//! partition config gives them) and vCPUs.
//!
//! Run with `cargo xtask fuzz vits_guest` (stable Rust; see docs/testing.md).
#![no_main]

use std::collections::BTreeMap;

use hypervisor::guest_mem::GuestMemory;
use hypervisor::ids::{EventId, PartitionId, PhysDeviceId, VcpuIndex, VirtDeviceId, VirtIntId};
use hypervisor::mm::Ipa;
use hypervisor::vits::{
    offset, AccessWidth, BackendAction, DeviceBacking, EventRef, ModelBackend, RecordingBackend,
    Vits, VitsBackend, VitsConfig, COMMAND_SIZE,
};
use hypervisor_fuzz::ram::{Ram, RAM_BASE};
use libfuzzer_sys::fuzz_target;

const RAM_SIZE: usize = 0x4_0000;
const MAX_PENDING: usize = 8;

/// Both backends at once: the recording one for the isolation check, the
/// software one for its bounds.
struct Both {
    recording: RecordingBackend,
    software: ModelBackend,
}

macro_rules! both {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {{
        $self.recording.$method($($arg),*);
        $self.software.$method($($arg),*);
    }};
}

impl VitsBackend for Both {
    fn map_event(&mut self, e: EventRef, v: VcpuIndex, i: VirtIntId) {
        both!(self.map_event(e, v, i))
    }
    fn unmap_event(&mut self, e: EventRef, v: VcpuIndex, i: VirtIntId) {
        both!(self.unmap_event(e, v, i))
    }
    fn discard_event(&mut self, e: EventRef, v: VcpuIndex, i: VirtIntId) {
        both!(self.discard_event(e, v, i))
    }
    fn move_event(&mut self, e: EventRef, from: VcpuIndex, to: VcpuIndex, i: VirtIntId) {
        both!(self.move_event(e, from, to, i))
    }
    fn set_pending(&mut self, e: EventRef, v: VcpuIndex, i: VirtIntId) {
        both!(self.set_pending(e, v, i))
    }
    fn clear_pending(&mut self, e: EventRef, v: VcpuIndex, i: VirtIntId) {
        both!(self.clear_pending(e, v, i))
    }
    fn reload_config(&mut self, e: EventRef, v: VcpuIndex, i: VirtIntId) {
        both!(self.reload_config(e, v, i))
    }
    fn reload_config_all(&mut self, v: VcpuIndex) {
        both!(self.reload_config_all(v))
    }
    fn move_all_pending(&mut self, from: VcpuIndex, to: VcpuIndex) {
        both!(self.move_all_pending(from, to))
    }
    fn sync(&mut self) {
        both!(self.sync())
    }
}

fn config() -> VitsConfig {
    let mut devices = BTreeMap::new();
    devices.insert(
        VirtDeviceId::new(1),
        DeviceBacking::Passthrough(PhysDeviceId::new(0x100)),
    );
    devices.insert(VirtDeviceId::new(2), DeviceBacking::Emulated);
    VitsConfig {
        partition: PartitionId::new(0),
        index: 0,
        device_id_bits: 8,
        event_id_bits: 8,
        lpi_id_bits: 14,
        collection_id_bits: 4,
        num_vcpus: 3,
        max_devices: 6,
        max_events: 24,
        max_collections: 8,
        max_commands_per_trap: 32,
        devices,
        cpu_device_id: Some(VirtDeviceId::new(2)),
    }
}

/// Little-endian reader over the fuzzer's bytes; zeros once exhausted.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u8(&mut self) -> u8 {
        let (first, rest) = self.0.split_first().map_or((0, &[][..]), |(f, r)| (*f, r));
        self.0 = rest;
        first
    }
    fn u64(&mut self) -> u64 {
        (0..8).fold(0, |acc, i| acc | u64::from(self.u8()) << (8 * i))
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

const OFFSETS: [u64; 16] = [
    0x0, 0x4, 0x8, 0xC, 0x80, 0x84, 0x88, 0x8C, 0x90, 0x94, 0x100, 0x104, 0x108, 0x10C, 0xFFE8,
    0x1_0040,
];

fn width(code: u8) -> AccessWidth {
    match code & 3 {
        0 => AccessWidth::Byte,
        1 => AccessWidth::Half,
        2 => AccessWidth::Word,
        _ => AccessWidth::Double,
    }
}

fn check_isolation(config: &VitsConfig, actions: &[BackendAction]) {
    for action in actions {
        for vcpu in action.vcpus().into_iter().flatten() {
            assert!(vcpu.get() < config.num_vcpus, "{action:?}");
        }
        if let Some(event) = action.event() {
            assert_eq!(event.backing, config.backing(event.device), "{action:?}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let config = config();
    let Ok(mut vits) = Vits::new(config.clone()) else {
        return;
    };
    let mut ram = Ram(vec![0; RAM_SIZE]);
    let mut backend = Both {
        recording: RecordingBackend::new(),
        software: ModelBackend::new(config.num_vcpus, MAX_PENDING),
    };
    // Start from a plausible setup so that commands reach deep states.
    let valid = 1 << 63;
    vits.mmio_write(
        offset::BASER,
        AccessWidth::Double,
        valid | (0b10 << 8) | (RAM_BASE + 0x1_0000),
        &ram,
        &mut backend,
    );
    vits.mmio_write(
        offset::BASER + 8,
        AccessWidth::Double,
        valid | (RAM_BASE + 0x2_0000),
        &ram,
        &mut backend,
    );
    vits.mmio_write(
        offset::CBASER,
        AccessWidth::Double,
        valid | RAM_BASE | 3,
        &ram,
        &mut backend,
    );
    vits.mmio_write(offset::CTLR, AccessWidth::Word, 1, &ram, &mut backend);

    let mut input = Input(data);
    let mut cwriter = 0u64;
    while !input.is_empty() {
        match input.u8() % 5 {
            0 | 1 => {
                // Commands: written at our CWRITER into the first 16 KiB.
                let count = 1 + input.u8() % 8;
                for _ in 0..count {
                    for i in 0..4 {
                        let word = input.u64();
                        let _ = ram.write_u64(Ipa(RAM_BASE + cwriter + 8 * i), word);
                    }
                    cwriter = (cwriter + COMMAND_SIZE) % 0x4000;
                }
                vits.mmio_write(
                    offset::CWRITER,
                    AccessWidth::Double,
                    cwriter,
                    &ram,
                    &mut backend,
                );
            }
            2 => {
                let code = input.u8();
                let offset = if code & 0x80 != 0 {
                    input.u64() % 0x2_0100
                } else {
                    OFFSETS[usize::from(code & 0xF)]
                };
                let value = input.u64();
                vits.mmio_write(offset, width(code >> 4), value, &ram, &mut backend);
            }
            3 => {
                let code = input.u8();
                let offset = OFFSETS[usize::from(code & 0xF)];
                let _ = vits.mmio_read(offset, width(code >> 4), &ram, &mut backend);
            }
            _ => {
                let device = VirtDeviceId::new(u32::from(input.u8() % 8));
                let event = EventId::new(u32::from(input.u8()));
                let _ = vits.send_msi(device, event, &mut backend);
            }
        }
        let state = vits.state();
        assert!(state.device_count() <= config.max_devices);
        assert!(state.event_count() <= config.max_events);
        for (_, device) in state.devices() {
            for (_, mapping) in device.events() {
                assert!(config.is_guest_lpi(mapping.intid.get()));
            }
        }
        for (_, vcpu) in state.collections() {
            assert!(vcpu.get() < config.num_vcpus);
        }
        check_isolation(&config, &backend.recording.take());
        assert!(backend.software.route_count() <= config.max_events);
        assert!(backend.software.pending_count() <= usize::from(config.num_vcpus) * MAX_PENDING);
    }
});
