//! Property tests: the vITS against a simple reference model of the
//! translation and pending state, and the vITS fed arbitrary command words
//! and register accesses (no panic, bounded state, isolation).

use alloc::collections::BTreeSet;

use proptest::prelude::*;

use super::*;
use crate::ids::{EventId, VirtIntId};

/// A command of the small ID domains the model test draws from: small
/// enough that IDs collide often, wide enough to hit every error.
#[derive(Clone, Copy, Debug)]
enum Op {
    Mapd(u32, u8, bool),
    Mapc(u16, u64, bool),
    Mapti(u32, u32, u32, u16),
    Mapi(u32, u32, u16),
    Int(u32, u32),
    Clear(u32, u32),
    Discard(u32, u32),
    Inv(u32, u32),
    Invall(u16),
    Movi(u32, u32, u16),
    Movall(u64, u64),
    Sync(u64),
}

impl Op {
    fn encode(self) -> [u64; 4] {
        match self {
            Op::Mapd(d, bits, v) => cmd::mapd(d, bits, ITT, v),
            Op::Mapc(c, t, v) => cmd::mapc(c, t, v),
            Op::Mapti(d, e, i, c) => cmd::mapti(d, e, i, c),
            Op::Mapi(d, e, c) => cmd::mapi(d, e, c),
            Op::Int(d, e) => cmd::int(d, e),
            Op::Clear(d, e) => cmd::clear(d, e),
            Op::Discard(d, e) => cmd::discard(d, e),
            Op::Inv(d, e) => cmd::inv(d, e),
            Op::Invall(c) => cmd::invall(c),
            Op::Movi(d, e, c) => cmd::movi(d, e, c),
            Op::Movall(a, b) => cmd::movall(a, b),
            Op::Sync(a) => cmd::sync(a),
        }
    }
}

fn op() -> impl Strategy<Value = Op> {
    let dev = 0..4u32;
    let event = 0..8u32;
    let icid = prop_oneof![4 => 0..5u16, 1 => Just(300u16)];
    let target = 0..5u64;
    let intid = prop_oneof![
        6 => 8192..8200u32,
        1 => Just(8191u32),
        1 => Just(70_000u32),
    ];
    prop_oneof![
        2 => (dev.clone(), prop_oneof![1..4u8, Just(17u8)], prop::bool::weighted(0.8))
            .prop_map(|(d, b, v)| Op::Mapd(d, b, v)),
        2 => (icid.clone(), target.clone(), prop::bool::weighted(0.8))
            .prop_map(|(c, t, v)| Op::Mapc(c, t, v)),
        5 => (dev.clone(), event.clone(), intid, icid.clone())
            .prop_map(|(d, e, i, c)| Op::Mapti(d, e, i, c)),
        1 => (dev.clone(), prop_oneof![event.clone(), Just(8195u32)], icid.clone())
            .prop_map(|(d, e, c)| Op::Mapi(d, e, c)),
        3 => (dev.clone(), event.clone()).prop_map(|(d, e)| Op::Int(d, e)),
        1 => (dev.clone(), event.clone()).prop_map(|(d, e)| Op::Clear(d, e)),
        1 => (dev.clone(), event.clone()).prop_map(|(d, e)| Op::Discard(d, e)),
        1 => (dev.clone(), event.clone()).prop_map(|(d, e)| Op::Inv(d, e)),
        1 => icid.clone().prop_map(Op::Invall),
        2 => (dev, event, icid).prop_map(|(d, e, c)| Op::Movi(d, e, c)),
        1 => (target.clone(), target.clone()).prop_map(|(a, b)| Op::Movall(a, b)),
        1 => target.prop_map(Op::Sync),
    ]
}

/// A model device: its EventID bits and EventID -> (INTID, ICID).
type ModelDevice = (u8, BTreeMap<u32, (u32, u16)>);

/// The reference model: the architecture's rules written as plainly as
/// possible, with no concern for cost.
#[derive(Default)]
struct Model {
    /// DeviceID -> (EventID bits, EventID -> (INTID, ICID)).
    devices: BTreeMap<u32, ModelDevice>,
    /// ICID -> vCPU.
    collections: BTreeMap<u16, u16>,
    /// (vCPU, INTID) pending.
    pending: BTreeSet<(u16, u32)>,
    errors: u64,
}

const MODEL_VCPUS: u64 = 4;
const MODEL_DEVICES: usize = 3;
const MODEL_EVENTS: usize = 6;

impl Model {
    fn apply(&mut self, op: Op) {
        if self.step(op).is_none() {
            self.errors += 1;
        }
    }

    /// The live (vCPU, INTID) of an event, or None for any error.
    fn live(&self, d: u32, e: u32) -> Option<(u16, u32, u16)> {
        let (bits, events) = self.devices.get(&d)?;
        if e >> bits != 0 {
            return None;
        }
        let &(intid, icid) = events.get(&e)?;
        Some((*self.collections.get(&icid)?, intid, icid))
    }

    fn step(&mut self, op: Op) -> Option<()> {
        let icid_ok = |c: u16| c < 256;
        match op {
            Op::Mapd(d, bits, valid) => {
                if valid && bits > 16 {
                    return None;
                }
                let exists = self.devices.contains_key(&d);
                if valid && !exists && self.devices.len() >= MODEL_DEVICES {
                    return None;
                }
                if let Some((_, events)) = self.devices.remove(&d) {
                    for (intid, icid) in events.values() {
                        if let Some(&vcpu) = self.collections.get(icid) {
                            self.pending.remove(&(vcpu, *intid));
                        }
                    }
                }
                if valid {
                    self.devices.insert(d, (bits, BTreeMap::new()));
                }
            }
            Op::Mapc(c, target, valid) => {
                if !icid_ok(c) {
                    return None;
                }
                if !valid {
                    self.collections.remove(&c);
                    return Some(());
                }
                if target >= MODEL_VCPUS {
                    return None;
                }
                let to = target as u16;
                if let Some(from) = self.collections.insert(c, to) {
                    let intids: Vec<u32> = self
                        .devices
                        .values()
                        .flat_map(|(_, ev)| ev.values())
                        .filter(|(_, icid)| *icid == c)
                        .map(|(intid, _)| *intid)
                        .collect();
                    for intid in intids {
                        if from != to && self.pending.remove(&(from, intid)) {
                            self.pending.insert((to, intid));
                        }
                    }
                }
            }
            Op::Mapti(d, e, intid, c) => self.map(d, e, intid, c)?,
            Op::Mapi(d, e, c) => self.map(d, e, e, c)?,
            Op::Int(d, e) => {
                let (vcpu, intid, _) = self.live(d, e)?;
                self.pending.insert((vcpu, intid));
            }
            Op::Clear(d, e) => {
                let (vcpu, intid, _) = self.live(d, e)?;
                self.pending.remove(&(vcpu, intid));
            }
            Op::Discard(d, e) => {
                let (vcpu, intid, _) = self.live(d, e)?;
                self.pending.remove(&(vcpu, intid));
                self.devices.get_mut(&d)?.1.remove(&e);
            }
            Op::Inv(d, e) => {
                self.live(d, e)?;
            }
            Op::Invall(c) => {
                if !icid_ok(c) {
                    return None;
                }
                self.collections.get(&c)?;
            }
            Op::Movi(d, e, c) => {
                let (from, intid, _) = self.live(d, e)?;
                if !icid_ok(c) {
                    return None;
                }
                let to = *self.collections.get(&c)?;
                self.devices.get_mut(&d)?.1.insert(e, (intid, c));
                if from != to && self.pending.remove(&(from, intid)) {
                    self.pending.insert((to, intid));
                }
            }
            Op::Movall(a, b) => {
                if a >= MODEL_VCPUS || b >= MODEL_VCPUS {
                    return None;
                }
                let (a, b) = (a as u16, b as u16);
                if a != b {
                    let moved: Vec<_> = self.pending.iter().filter(|p| p.0 == a).copied().collect();
                    for (_, intid) in moved {
                        self.pending.remove(&(a, intid));
                        self.pending.insert((b, intid));
                    }
                }
            }
            Op::Sync(a) => {
                if a >= MODEL_VCPUS {
                    return None;
                }
            }
        }
        Some(())
    }

    /// MAPTI and MAPI.
    fn map(&mut self, d: u32, e: u32, intid: u32, c: u16) -> Option<()> {
        let total: usize = self.devices.values().map(|(_, ev)| ev.len()).sum();
        let (bits, events) = self.devices.get_mut(&d)?;
        if e >> *bits != 0 || !(8192..65536).contains(&intid) || c >= 256 {
            return None;
        }
        if events.contains_key(&e) || total >= MODEL_EVENTS {
            return None;
        }
        events.insert(e, (intid, c));
        Some(())
    }

    /// Checks the vITS and its software backend against the model.
    fn check(&self, h: &Harness<ModelBackend>) {
        let state = h.vits.state();
        let devices: BTreeMap<u32, ModelDevice> = state
            .devices()
            .map(|(id, dev)| {
                let events = dev
                    .events()
                    .map(|(e, m)| (e.get(), (m.intid.get(), m.icid.get())))
                    .collect();
                (id.get(), (dev.event_bits, events))
            })
            .collect();
        assert_eq!(devices, self.devices, "devices and events");
        let collections: BTreeMap<u16, u16> = state
            .collections()
            .map(|(c, v)| (c.get(), v.get()))
            .collect();
        assert_eq!(collections, self.collections, "collections");
        let pending: BTreeSet<(u16, u32)> = (0..4)
            .flat_map(|v| h.backend.pending(vcpu(v)).map(move |i| (v, i.get())))
            .collect();
        assert_eq!(pending, self.pending, "pending LPIs");
        assert_eq!(h.vits.errors().total_commands(), self.errors, "errors");
        // Routes are exactly the live events.
        for (&d, (_, events)) in &self.devices {
            for (&e, &(intid, icid)) in events {
                let route = h.backend.route(VirtDeviceId::new(d), EventId::new(e));
                let want = self.collections.get(&icid).map(|&v| (v, intid));
                assert_eq!(
                    route.map(|r| (r.vcpu.get(), r.intid.get())),
                    want,
                    "route {d}/{e}"
                );
            }
        }
    }
}

fn model_harness() -> Harness<ModelBackend> {
    let mut config = config();
    config.max_devices = MODEL_DEVICES;
    config.max_events = MODEL_EVENTS;
    config.max_commands_per_trap = 7;
    let backend = ModelBackend::new(config.num_vcpus, 1000);
    let mut h = Harness::disabled(config, backend);
    // A one-page queue (128 commands), so long runs wrap around.
    h.write(offset::CBASER, AccessWidth::Double, (1 << 63) | QUEUE);
    h.write(offset::CTLR, AccessWidth::Word, 1);
    h
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn vits_matches_the_reference_model(
        batches in prop::collection::vec(prop::collection::vec(op(), 1..24), 1..12)
    ) {
        let mut h = model_harness();
        let mut model = Model::default();
        for batch in batches {
            let words: Vec<_> = batch.iter().map(|op| op.encode()).collect();
            h.submit(&words);
            // The guest polls CREADR until its commands are consumed.
            let end = h.read(offset::CWRITER, AccessWidth::Double);
            while h.creadr() != end {}
            for op in batch {
                model.apply(op);
            }
            model.check(&h);
        }
    }
}

/// Forwards every call to two backends.
struct Tee<'a> {
    recording: &'a mut RecordingBackend,
    software: &'a mut ModelBackend,
}

impl VitsBackend for Tee<'_> {
    fn map_event(&mut self, e: EventRef, v: VcpuIndex, i: VirtIntId) {
        self.recording.map_event(e, v, i);
        self.software.map_event(e, v, i);
    }
    fn unmap_event(&mut self, e: EventRef, v: VcpuIndex, i: VirtIntId) {
        self.recording.unmap_event(e, v, i);
        self.software.unmap_event(e, v, i);
    }
    fn discard_event(&mut self, e: EventRef, v: VcpuIndex, i: VirtIntId) {
        self.recording.discard_event(e, v, i);
        self.software.discard_event(e, v, i);
    }
    fn move_event(&mut self, e: EventRef, from: VcpuIndex, to: VcpuIndex, i: VirtIntId) {
        self.recording.move_event(e, from, to, i);
        self.software.move_event(e, from, to, i);
    }
    fn set_pending(&mut self, e: EventRef, v: VcpuIndex, i: VirtIntId) {
        self.recording.set_pending(e, v, i);
        self.software.set_pending(e, v, i);
    }
    fn clear_pending(&mut self, e: EventRef, v: VcpuIndex, i: VirtIntId) {
        self.recording.clear_pending(e, v, i);
        self.software.clear_pending(e, v, i);
    }
    fn reload_config(&mut self, e: EventRef, v: VcpuIndex, i: VirtIntId) {
        self.recording.reload_config(e, v, i);
        self.software.reload_config(e, v, i);
    }
    fn reload_config_all(&mut self, v: VcpuIndex) {
        self.recording.reload_config_all(v);
        self.software.reload_config_all(v);
    }
    fn move_all_pending(&mut self, from: VcpuIndex, to: VcpuIndex) {
        self.recording.move_all_pending(from, to);
        self.software.move_all_pending(from, to);
    }
    fn sync(&mut self) {
        self.recording.sync();
        self.software.sync();
    }
}

/// One thing an arbitrary guest does.
#[derive(Clone, Debug)]
enum GuestOp {
    /// Write raw command words at CWRITER and announce them.
    Commands(Vec<[u64; 4]>),
    /// A register write.
    Write(u64, AccessWidth, u64),
    /// A register read.
    Read(u64, AccessWidth),
    /// An MSI from an emulated device.
    Msi(u32, u32),
}

fn small_or_any() -> impl Strategy<Value = u64> {
    prop_oneof![3 => 0..8u64, 1 => 8190..8200u64, 1 => any::<u64>()]
}

fn raw_command() -> impl Strategy<Value = [u64; 4]> {
    let opcode = prop_oneof![
        4 => prop::sample::select(vec![
            0x01u64, 0x03, 0x04, 0x05, 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F,
            0x21, 0x22, 0x23, 0x25, 0x29, 0x2A, 0x2B, 0x2D, 0x2E,
        ]),
        1 => 0..256u64,
    ];
    (
        opcode,
        small_or_any(),
        small_or_any(),
        small_or_any(),
        small_or_any(),
        any::<bool>(),
    )
        .prop_map(|(op, device, dw1, dw2, dw3, valid)| {
            let dw1 = (dw1 & 0xFFFF_FFFF) | (8190 + dw1 % 16) << 32;
            let dw2 = (dw2 & 0xFFFF) | (dw2 % 6) << 16 | u64::from(valid) << 63 | ITT;
            [op | (device & 0xFFFF_FFFF) << 32, dw1, dw2, (dw3 % 6) << 16]
        })
}

fn width() -> impl Strategy<Value = AccessWidth> {
    prop::sample::select(vec![
        AccessWidth::Byte,
        AccessWidth::Half,
        AccessWidth::Word,
        AccessWidth::Double,
    ])
}

fn register_offset() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => prop::sample::select(vec![
            0x0u64, 0x4, 0x8, 0xC, 0x80, 0x84, 0x88, 0x8C, 0x90, 0x94,
            0x100, 0x104, 0x108, 0x10C, 0x110, 0x138, 0xFFE8, 0x1_0040,
        ]),
        1 => 0..0x2_0010u64,
    ]
}

fn register_value() -> impl Strategy<Value = u64> {
    prop_oneof![
        // Mostly plausible values: Enabled, valid tables and queues in RAM.
        2 => Just(1u64),
        2 => (0..16u64).prop_map(|size| (1 << 63) | QUEUE | size),
        2 => (0..4u64, any::<bool>()).prop_map(|(page, ind)| {
            (1 << 63) | u64::from(ind) << 62 | page << 8 | DEVICE_TABLE
        }),
        2 => (0..0x800u64).prop_map(|n| n * 32),
        1 => any::<u64>(),
    ]
}

fn guest_op() -> impl Strategy<Value = GuestOp> {
    prop_oneof![
        4 => prop::collection::vec(raw_command(), 1..40).prop_map(GuestOp::Commands),
        3 => (register_offset(), width(), register_value())
            .prop_map(|(o, w, v)| GuestOp::Write(o, w, v)),
        1 => (register_offset(), width()).prop_map(|(o, w)| GuestOp::Read(o, w)),
        1 => (0..8u32, 0..8u32).prop_map(|(d, e)| GuestOp::Msi(d, e)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_guest_input_never_breaks_bounds_or_isolation(
        ops in prop::collection::vec(guest_op(), 1..40)
    ) {
        let mut config = config();
        config.max_devices = 4;
        config.max_events = 16;
        config.max_commands_per_trap = 16;
        let num_vcpus = config.num_vcpus;
        let mut recording = RecordingBackend::new();
        let mut software = ModelBackend::new(num_vcpus, 8);
        let mut h = Harness::with(config, RecordingBackend::new());
        for op in ops {
            let mut tee = Tee { recording: &mut recording, software: &mut software };
            match op {
                GuestOp::Commands(commands) => {
                    // Write where the queue says, if it is in RAM at all.
                    let base = h.vits.regs.queue_base().raw();
                    let size = h.vits.regs.queue_size();
                    let mut at = h.vits.regs.cwriter;
                    for command in &commands {
                        for (i, word) in command.iter().enumerate() {
                            let _ = h.mem.write_u64(Ipa(base + at + 8 * i as u64), *word);
                        }
                        at = (at + COMMAND_SIZE) % size;
                    }
                    h.vits.mmio_write(offset::CWRITER, AccessWidth::Double, at, &h.mem, &mut tee);
                }
                GuestOp::Write(o, w, v) => h.vits.mmio_write(o, w, v, &h.mem, &mut tee),
                GuestOp::Read(o, w) => {
                    h.vits.mmio_read(o, w, &h.mem, &mut tee);
                }
                GuestOp::Msi(d, e) => {
                    let _ = h.vits.send_msi(VirtDeviceId::new(d), EventId::new(e), &mut tee);
                }
            }
            let config = h.vits.config().clone();
            let state = h.vits.state();
            prop_assert!(state.device_count() <= config.max_devices);
            prop_assert!(state.event_count() <= config.max_events);
            let counted: usize = state.devices().map(|(_, d)| d.events().count()).sum();
            prop_assert_eq!(counted, state.event_count());
            // Event tables stay within twice max_events, whatever ITT sizes
            // and EventIDs the guest chose.
            let slots: usize = state.devices().map(|(_, d)| d.table_slots()).sum();
            prop_assert_eq!(slots, state.event_table_slots());
            prop_assert!(slots <= 2 * config.max_events);
            for (id, device) in state.devices() {
                prop_assert!(id.get() < 1 << config.device_id_bits);
                prop_assert!(device.event_bits <= config.event_id_bits);
                for (_, mapping) in device.events() {
                    prop_assert!(config.is_guest_lpi(mapping.intid.get()));
                }
            }
            for (_, target) in state.collections() {
                prop_assert!(target.get() < config.num_vcpus);
            }
            let queue = h.vits.regs.queue_size();
            prop_assert!(h.vits.regs.creadr < queue);
            assert_isolated(&config, &recording.take());
            prop_assert!(software.route_count() <= config.max_events);
            prop_assert!(software.pending_count() <= usize::from(num_vcpus) * 8);
        }
    }
}
