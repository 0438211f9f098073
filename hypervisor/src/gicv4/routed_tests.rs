//! Host tests of the GICv3 software path against the recording physical
//! ITS (in its GICv3 mode) and a fake LPI routing, unit by unit and end to
//! end through a real vITS.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec::Vec;

use super::fake::guest::{self, GUEST_RAM};
use super::fake::RecordingSink;
use super::*;
use crate::gic::its_cmd::{ItsCommand, RdBase};
use crate::guest_mem::FakeGuestMemory;
use crate::ids::{EventId, PartitionId, PhysDeviceId, PhysIntId, VcpuIndex, VirtIntId};
use crate::mm::PhysAddr;
use crate::vits::{BackendAction, RecordingBackend, Vits};

/// The partition's passthrough function: 8 EventID bits.
const NIC: PhysDeviceId = PhysDeviceId::new(0x0100);
/// A device of another partition.
const FOREIGN: PhysDeviceId = PhysDeviceId::new(0x0300);
/// vCPUs of the partition (vCPU n runs on CPU n + 2, collection n + 2).
const VCPUS: u16 = 2;
/// The boot CPU's redistributor, where device-wide commands sync.
const HOME: RdBase = RdBase::processor(0);

fn config() -> RoutedConfig {
    let mut devices = BTreeMap::new();
    devices.insert(NIC, PassthroughDevice { event_id_bits: 8 });
    RoutedConfig {
        partition: PartitionId::new(1),
        name: String::from("alpha"),
        devices,
    }
}

/// The kernel's resources, recorded.
#[derive(Default)]
struct FakeRouting {
    next_lpi: u32,
    lpis: BTreeSet<u32>,
    routes: BTreeMap<u32, (VcpuIndex, VirtIntId)>,
    itts: BTreeSet<u64>,
    next_itt: u64,
    no_lpis: bool,
}

impl LpiRouting for FakeRouting {
    fn prepare_device(&mut self, _device: PhysDeviceId) -> bool {
        true
    }

    fn allocate_itt(&mut self, event_id_bits: u8) -> Option<PhysAddr> {
        assert_eq!(event_id_bits, 8);
        self.next_itt += 0x1000;
        let itt = 0x8000_0000 + self.next_itt;
        self.itts.insert(itt);
        Some(PhysAddr(itt))
    }

    fn free_itt(&mut self, itt: PhysAddr, _event_id_bits: u8) {
        assert!(self.itts.remove(&itt.raw()), "freed an ITT twice");
    }

    fn allocate_lpi(&mut self) -> Option<PhysIntId> {
        if self.no_lpis {
            return None;
        }
        self.next_lpi += 1;
        let lpi = 8192 + self.next_lpi;
        self.lpis.insert(lpi);
        Some(PhysIntId::from_const(lpi))
    }

    fn free_lpi(&mut self, lpi: PhysIntId) {
        assert!(self.lpis.remove(&lpi.get()), "freed an LPI twice");
        assert!(!self.routes.contains_key(&lpi.get()), "freed a routed LPI");
    }

    fn set_route(&mut self, lpi: PhysIntId, target: Option<(VcpuIndex, VirtIntId)>) -> bool {
        match target {
            Some(t) => self.routes.insert(lpi.get(), t),
            None => self.routes.remove(&lpi.get()),
        };
        true
    }

    fn collection(&self, vcpu: VcpuIndex) -> Option<Collection> {
        (vcpu.get() < VCPUS).then(|| Collection {
            icid: vcpu.get() + 2,
            rdbase: RdBase::processor(vcpu.get() + 2),
        })
    }

    fn home(&self) -> Option<RdBase> {
        Some(HOME)
    }
}

struct World {
    state: RoutedState,
    sink: RecordingSink,
    routing: FakeRouting,
}

fn world() -> World {
    World {
        state: RoutedState::new(config()),
        sink: RecordingSink::for_devices([NIC.get()]),
        routing: FakeRouting::default(),
    }
}

impl World {
    fn map(
        &mut self,
        device: PhysDeviceId,
        event: u32,
        vcpu: u16,
        vintid: u32,
    ) -> Result<RoutedEvent, RouteError> {
        self.state.map(
            &mut self.sink,
            &mut self.routing,
            device,
            EventId::new(event),
            VcpuIndex::new(vcpu),
            VirtIntId::from_const(vintid),
        )
    }

    /// Nothing named outside the partition, nothing hardware would reject.
    fn assert_clean(&self) {
        assert!(
            self.sink.violations.is_empty(),
            "{:?}",
            self.sink.violations
        );
        assert!(
            self.sink.command_errors.is_empty(),
            "{:?}",
            self.sink.command_errors
        );
    }

    /// The kernel holds nothing for the partition.
    fn assert_empty(&self) {
        assert!(self.routing.lpis.is_empty());
        assert!(self.routing.routes.is_empty());
        assert!(self.routing.itts.is_empty());
        assert!(self.sink.mapd.is_empty());
        assert!(self.sink.lpis.is_empty());
        assert_eq!(self.state.event_count(), 0);
        assert_eq!(self.state.device_count(), 0);
    }
}

#[test]
fn map_mapds_the_device_once_then_maptis_a_fresh_lpi_on_the_vcpus_collection() {
    let mut w = world();
    let first = w.map(NIC, 3, 1, 8200).expect("mapped");
    let second = w.map(NIC, 4, 0, 8201).expect("mapped");
    let commands = w.sink.all_commands();
    assert_eq!(
        commands
            .iter()
            .filter(|c| matches!(c, ItsCommand::Mapd { .. }))
            .count(),
        1
    );
    assert!(matches!(
        commands[0],
        ItsCommand::Mapd {
            device_id: 0x100,
            size: 7,
            valid: true,
            ..
        }
    ));
    assert_eq!(commands[1], ItsCommand::Sync { rdbase: HOME });
    assert_eq!(
        w.sink.batches[1],
        (
            alloc::vec![
                ItsCommand::Mapti {
                    device_id: 0x100,
                    event_id: 3,
                    intid: first.lpi.get(),
                    icid: 3
                },
                ItsCommand::Inv {
                    device_id: 0x100,
                    event_id: 3
                },
            ],
            ItsCommand::Sync {
                rdbase: RdBase::processor(3)
            }
        )
    );
    assert_ne!(first.lpi, second.lpi);
    assert_eq!(w.sink.lpis.get(&(0x100, 4)), Some(&(second.lpi.get(), 2)));
    assert_eq!(
        w.routing.routes.get(&first.lpi.get()),
        Some(&(VcpuIndex::new(1), VirtIntId::from_const(8200)))
    );
    assert_eq!(w.state.event(NIC, EventId::new(3)), Some(first));
    w.assert_clean();
}

#[test]
fn a_foreign_device_or_an_event_beyond_the_itt_is_refused_and_never_named() {
    let mut w = world();
    assert_eq!(
        w.map(FOREIGN, 0, 0, 8200),
        Err(RouteError::Refused(Refusal::ForeignDevice {
            device: FOREIGN
        }))
    );
    assert_eq!(
        w.map(NIC, 256, 0, 8200),
        Err(RouteError::Refused(Refusal::EventOutOfRange {
            device: NIC,
            event: EventId::new(256)
        }))
    );
    assert!(w.sink.batches.is_empty());
    assert_eq!(w.state.stats().refused, 2);
    w.assert_empty();
}

#[test]
fn a_vcpu_without_a_collection_maps_nothing() {
    let mut w = world();
    assert_eq!(w.map(NIC, 0, VCPUS, 8200), Err(RouteError::NoCollection));
    assert!(w.sink.batches.is_empty());
    w.assert_empty();
}

#[test]
fn a_refused_mapti_leaves_neither_route_nor_lpi() {
    let mut w = world();
    w.map(NIC, 0, 0, 8200).expect("mapped");
    w.sink.fail_submits = 1;
    assert!(matches!(w.map(NIC, 1, 0, 8201), Err(RouteError::Sink(_))));
    assert_eq!(w.routing.lpis.len(), 1);
    assert_eq!(w.routing.routes.len(), 1);
    assert_eq!(w.state.event_count(), 1);
    assert_eq!(w.state.stats().failures, 1);
}

#[test]
fn a_refused_mapd_gives_the_itt_back() {
    let mut w = world();
    w.sink.fail_submits = 1;
    assert!(matches!(w.map(NIC, 0, 0, 8200), Err(RouteError::Sink(_))));
    w.assert_empty();
    // The next mapping tries the MAPD again.
    w.map(NIC, 0, 0, 8200).expect("mapped");
    assert_eq!(w.state.device_count(), 1);
}

#[test]
fn no_lpi_left_is_a_failure_with_the_device_still_mapped_for_later() {
    let mut w = world();
    w.routing.no_lpis = true;
    assert_eq!(w.map(NIC, 0, 0, 8200), Err(RouteError::NoLpi));
    assert!(w.routing.routes.is_empty());
    assert_eq!(w.state.event_count(), 0);
}

#[test]
fn move_reroutes_first_then_movis_to_the_new_vcpus_collection() {
    let mut w = world();
    let mapped = w.map(NIC, 5, 0, 8200).expect("mapped");
    assert!(w.state.move_to(
        &mut w.sink,
        &mut w.routing,
        NIC,
        EventId::new(5),
        VcpuIndex::new(1)
    ));
    assert_eq!(
        w.sink.batches.last(),
        Some(&(
            alloc::vec![ItsCommand::Movi {
                device_id: 0x100,
                event_id: 5,
                icid: 3
            }],
            ItsCommand::Sync {
                rdbase: RdBase::processor(3)
            }
        ))
    );
    assert_eq!(w.sink.lpis.get(&(0x100, 5)), Some(&(mapped.lpi.get(), 3)));
    assert_eq!(
        w.routing.routes.get(&mapped.lpi.get()),
        Some(&(VcpuIndex::new(1), VirtIntId::from_const(8200)))
    );
    assert_eq!(
        w.state.event(NIC, EventId::new(5)).map(|e| e.vcpu),
        Some(VcpuIndex::new(1))
    );
    // An unmapped event moves nowhere.
    assert!(!w.state.move_to(
        &mut w.sink,
        &mut w.routing,
        NIC,
        EventId::new(6),
        VcpuIndex::new(1)
    ));
    w.assert_clean();
}

#[test]
fn unmap_discards_then_frees_route_and_lpi() {
    let mut w = world();
    w.map(NIC, 5, 0, 8200).expect("mapped");
    assert!(w
        .state
        .unmap(&mut w.sink, &mut w.routing, NIC, EventId::new(5)));
    assert_eq!(
        w.sink.batches.last(),
        Some(&(
            alloc::vec![ItsCommand::Discard {
                device_id: 0x100,
                event_id: 5
            }],
            ItsCommand::Sync { rdbase: HOME }
        ))
    );
    assert!(w.routing.lpis.is_empty() && w.routing.routes.is_empty());
    assert!(!w
        .state
        .unmap(&mut w.sink, &mut w.routing, NIC, EventId::new(5)));
    w.assert_clean();
}

#[test]
fn teardown_discards_every_event_unmaps_every_device_and_frees_everything() {
    let mut w = world();
    for event in 0..4 {
        w.map(NIC, event, u16::from(event % 2 == 1), 8200 + event)
            .expect("mapped");
    }
    let report = w.state.teardown(&mut w.sink, &mut w.routing);
    assert_eq!(
        report,
        RoutedTeardown {
            discarded: 4,
            unmapped: 1,
            kept_itts: 0
        }
    );
    assert!(matches!(
        w.sink.batches.last().map(|b| b.0[0]),
        Some(ItsCommand::Mapd {
            device_id: 0x100,
            valid: false,
            ..
        })
    ));
    w.assert_empty();
    w.assert_clean();
    // The next life starts from nothing and MAPDs again.
    w.map(NIC, 0, 0, 8200).expect("mapped");
    assert_eq!(w.state.device_count(), 1);
}

#[test]
fn an_itt_whose_unmap_failed_is_kept_not_reused() {
    let mut w = world();
    w.map(NIC, 0, 0, 8200).expect("mapped");
    // Both the DISCARD and the MAPD V=0 fail: the event's LPI and route
    // are freed all the same (the route first), the ITT is not.
    let mut failing = RecordingSink::for_devices([NIC.get()]);
    failing.fail_submits = 2;
    let report = w.state.teardown(&mut failing, &mut w.routing);
    assert_eq!(
        report,
        RoutedTeardown {
            discarded: 1,
            unmapped: 0,
            kept_itts: 1
        }
    );
    assert_eq!(w.routing.itts.len(), 1, "the ITT stays allocated");
    assert!(w.routing.lpis.is_empty() && w.routing.routes.is_empty());
}

// End to end: a guest's commands through a real vITS.

struct Guest {
    vits: Vits,
    mem: FakeGuestMemory,
    world: World,
    inner: RecordingBackend,
}

impl Guest {
    /// A vITS whose virtual device 1 is NIC and device 2 is emulated.
    fn new() -> Self {
        let (vits, mem) = guest::vits(NIC, VCPUS);
        let mut guest = Self {
            vits,
            mem,
            world: world(),
            inner: RecordingBackend::new(),
        };
        let w = &mut guest.world;
        let mut backend =
            RoutedBackend::new(&mut w.state, &mut w.sink, &mut w.routing, &mut guest.inner);
        guest::enable(&mut guest.vits, &guest.mem, &mut backend);
        guest
    }

    /// Writes `commands` into the queue and rings CWRITER: one trap.
    fn run(&mut self, commands: &[ItsCommand]) {
        let w = &mut self.world;
        let mut backend =
            RoutedBackend::new(&mut w.state, &mut w.sink, &mut w.routing, &mut self.inner);
        guest::run(&mut self.vits, &mut self.mem, &mut backend, commands);
    }
}

fn guest_setup() -> Guest {
    let mut guest = Guest::new();
    let mut commands: Vec<ItsCommand> = alloc::vec![
        ItsCommand::Mapd {
            device_id: 1,
            size: 7,
            itt_addr: GUEST_RAM + 0x3_0000,
            valid: true
        },
        ItsCommand::Mapd {
            device_id: 2,
            size: 7,
            itt_addr: GUEST_RAM + 0x3_1000,
            valid: true
        },
        ItsCommand::Mapc {
            icid: 0,
            rdbase: RdBase::processor(0),
            valid: true
        },
        ItsCommand::Mapc {
            icid: 1,
            rdbase: RdBase::processor(1),
            valid: true
        },
        ItsCommand::Mapti {
            device_id: 2,
            event_id: 0,
            intid: 8299,
            icid: 0
        },
    ];
    for event in 0..3 {
        commands.push(ItsCommand::Mapti {
            device_id: 1,
            event_id: event,
            intid: 8192 + event,
            icid: 0,
        });
    }
    guest.run(&commands);
    guest
}

#[test]
fn a_guests_maptis_become_physical_lpis_and_reach_the_software_side_too() {
    let guest = guest_setup();
    assert_eq!(guest.world.state.event_count(), 3);
    assert_eq!(guest.world.sink.mapd.len(), 1);
    for event in 0..3 {
        let routed = guest
            .world
            .state
            .event(NIC, EventId::new(event))
            .expect("routed");
        assert_eq!(
            guest.world.routing.routes.get(&routed.lpi.get()),
            Some(&(VcpuIndex::new(0), VirtIntId::from_const(8192 + event)))
        );
    }
    // The emulated event never reaches the physical ITS; every map reaches the vGIC side.
    assert!(guest.world.sink.lpis.keys().all(|&(d, _)| d == NIC.get()));
    let maps = guest
        .inner
        .actions
        .iter()
        .filter(|a| matches!(a, BackendAction::Map { .. }))
        .count();
    assert_eq!(maps, 4);
    guest.world.assert_clean();
}

#[test]
fn a_guest_movi_and_discard_follow_physically() {
    let mut guest = guest_setup();
    guest.run(&[
        ItsCommand::Movi {
            device_id: 1,
            event_id: 1,
            icid: 1,
        },
        ItsCommand::Discard {
            device_id: 1,
            event_id: 2,
        },
    ]);
    let moved = guest
        .world
        .state
        .event(NIC, EventId::new(1))
        .expect("still mapped");
    assert_eq!(moved.vcpu, VcpuIndex::new(1));
    assert_eq!(
        guest.world.sink.lpis.get(&(NIC.get(), 1)),
        Some(&(moved.lpi.get(), 3))
    );
    assert!(guest.world.state.event(NIC, EventId::new(2)).is_none());
    assert_eq!(guest.world.routing.lpis.len(), 2);
    guest.world.assert_clean();
}

#[test]
fn a_guest_unmapping_its_device_frees_every_lpi_and_a_teardown_leaves_nothing() {
    let mut guest = guest_setup();
    guest.run(&[ItsCommand::Mapd {
        device_id: 1,
        size: 0,
        itt_addr: 0,
        valid: false,
    }]);
    assert_eq!(guest.world.state.event_count(), 0);
    assert!(guest.world.routing.lpis.is_empty());
    let w = &mut guest.world;
    w.state.teardown(&mut w.sink, &mut w.routing);
    w.assert_empty();
    w.assert_clean();
}
