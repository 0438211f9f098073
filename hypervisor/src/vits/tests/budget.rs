//! The vITS's heap against its budget (issue 12, `crate::partition::budget`): a guest
//! command stream that maps devices, events and collections up to and
//! past every cap, with ID patterns chosen to cost the most (scattered
//! EventIDs into sparse maps, tables grown to their allowance, B-trees
//! churned to minimum fill), never panics and never takes more heap, in
//! buddy-heap bytes at its peak, than `budget::vits_bytes` of its caps.

use alloc::vec::Vec;

use proptest::prelude::*;

use super::*;
use crate::partition::budget::vits_bytes;
use crate::test_alloc::Meter;

/// The caps under test: small enough to run quickly, large enough that
/// every structure grows through several reallocations.
fn capped(max_devices: usize, max_events: usize, max_collections: usize) -> VitsConfig {
    VitsConfig {
        collection_id_bits: 16,
        max_devices,
        max_events,
        max_collections,
        max_commands_per_trap: 4096,
        ..config()
    }
}

/// Submits `commands` in queue-sized batches, draining each.
fn run<B: VitsBackend>(h: &mut Harness<B>, commands: &[[u64; 4]]) {
    for batch in commands.chunks(1024) {
        h.submit(batch);
        let end = h.read(offset::CWRITER, AccessWidth::Double);
        for _ in 0..64 {
            if h.creadr() == end {
                break;
            }
        }
    }
}

/// A cheap deterministic scatter of `n` over 16 bits (odd multiplier).
fn scatter(n: u32) -> u32 {
    n.wrapping_mul(40_503) & 0xFFFF
}

/// Fills every cap: `max_devices + 8` MAPDs (16 EventID bits), events
/// spread over the devices with `event_of` until past the event cap,
/// `max_collections + 8` MAPCs; then unmaps every other event and
/// collection (B-trees at low fill) and maps again.
fn flood(config: &VitsConfig, event_of: impl Fn(u32) -> u32) -> Vec<[u64; 4]> {
    let devices = config.max_devices as u32;
    let mut commands = Vec::new();
    for icid in 0..config.max_collections as u16 + 8 {
        commands.push(cmd::mapc(icid, u64::from(icid % 4), true));
    }
    for device in 0..devices + 8 {
        commands.push(cmd::mapd(device + 3, 16, ITT, true));
    }
    let events = config.max_events as u32 + 16;
    for n in 0..events {
        let device = n % devices + 3;
        let icid = (n % config.max_collections as u32) as u16;
        commands.push(cmd::mapti(device, event_of(n), 8192 + (n & 0x1FFF), icid));
    }
    for n in (0..events).step_by(2) {
        commands.push(cmd::discard(n % devices + 3, event_of(n)));
    }
    for icid in (0..config.max_collections as u16).step_by(2) {
        commands.push(cmd::mapc(icid, 0, false));
    }
    for n in (0..events).step_by(2) {
        let device = n % devices + 3;
        commands.push(cmd::mapti(device, event_of(n) ^ 0x8000, 8192 + n, 1));
    }
    for icid in 0..config.max_collections as u16 + 8 {
        commands.push(cmd::mapc(icid.wrapping_add(0x1000), 1, true));
    }
    commands
}

/// Peak heap of `commands` on a fresh vITS with the software backend.
fn peak(config: VitsConfig, commands: &[[u64; 4]]) -> usize {
    let backend = ModelBackend::new(config.num_vcpus, 64);
    let mut h = Harness::with(config, backend);
    let meter = Meter::start();
    run(&mut h, commands);
    let peak = meter.peak();
    drop(meter);
    let state = h.vits.state();
    assert!(state.device_count() <= h.vits.config().max_devices);
    assert!(state.event_count() <= h.vits.config().max_events);
    assert!(state.collections().count() <= h.vits.config().max_collections);
    peak
}

fn check(config: VitsConfig, event_of: impl Fn(u32) -> u32) {
    let budget = vits_bytes(
        config.max_devices,
        config.max_events,
        config.max_collections,
    );
    let commands = flood(&config, event_of);
    let caps = (
        config.max_devices,
        config.max_events,
        config.max_collections,
    );
    let used = peak(config, &commands);
    std::println!("caps {caps:?}: peak {used} bytes, budget {budget}");
    assert!(used <= budget, "peak {used} bytes > budget {budget}");
}

#[test]
fn dense_events_stay_within_budget() {
    check(capped(64, 4096, 256), |n| n / 64);
}

#[test]
fn scattered_events_stay_within_budget() {
    check(capped(64, 4096, 256), scatter);
}

#[test]
fn one_device_with_every_event_stays_within_budget() {
    check(capped(1, 4096, 64), scatter);
}

#[test]
fn many_devices_few_events_stay_within_budget() {
    check(capped(4096, 64, 64), |n| n);
}

#[test]
fn every_collection_stays_within_budget() {
    check(capped(4, 64, 4096), |n| n);
}

#[test]
fn collection_cap_skips_the_extra_mapc_and_counts_it() {
    let config = capped(4, 64, 16);
    let mut h = Harness::with(config, RecordingBackend::new());
    let commands: Vec<_> = (0..20u16).map(|icid| cmd::mapc(icid, 0, true)).collect();
    run(&mut h, &commands);
    assert_eq!(h.vits.state().collections().count(), 16);
    assert_eq!(
        h.vits.errors().commands(CommandErrorKind::CollectionLimit),
        4
    );
    // Remapping a mapped one is no new collection; unmapping frees a place.
    run(
        &mut h,
        &[
            cmd::mapc(3, 1, true),
            cmd::mapc(0, 0, false),
            cmd::mapc(19, 2, true),
        ],
    );
    assert_eq!(
        h.vits.errors().commands(CommandErrorKind::CollectionLimit),
        4
    );
    assert_eq!(h.vits.state().collection(icid(19)), Some(vcpu(2)));
    assert_eq!(h.vits.state().collection(icid(3)), Some(vcpu(1)));
    // Losing the Collection table frees every place.
    let page_64k = 0b10 << 8;
    h.write(offset::CTLR, AccessWidth::Word, 0);
    h.write(
        offset::BASER + 8,
        AccessWidth::Double,
        page_64k | COLLECTION_TABLE,
    );
    h.write(
        offset::BASER + 8,
        AccessWidth::Double,
        (1 << 63) | page_64k | COLLECTION_TABLE,
    );
    h.write(offset::CTLR, AccessWidth::Word, 1);
    assert_eq!(h.vits.state().collections().count(), 0);
    let commands: Vec<_> = (100..116u16).map(|icid| cmd::mapc(icid, 0, true)).collect();
    run(&mut h, &commands);
    assert_eq!(h.vits.state().collections().count(), 16);
    assert_eq!(
        h.vits.errors().commands(CommandErrorKind::CollectionLimit),
        4
    );
}

/// Any command: IDs from small domains (to collide) and the whole range.
pub(super) fn any_command() -> impl Strategy<Value = [u64; 4]> {
    let dev = prop_oneof![4 => 0..24u32, 1 => 0..8192u32];
    let event = prop_oneof![3 => 0..128u32, 1 => 0..65_536u32];
    let icid = prop_oneof![3 => 0..40u16, 1 => any::<u16>()];
    prop_oneof![
        2 => (dev.clone(), 1..17u8, prop::bool::weighted(0.85))
            .prop_map(|(d, b, v)| cmd::mapd(d, b, ITT, v)),
        2 => (icid.clone(), 0..4u64, prop::bool::weighted(0.8))
            .prop_map(|(c, t, v)| cmd::mapc(c, t, v)),
        8 => (dev.clone(), event.clone(), 8192..16_384u32, icid.clone())
            .prop_map(|(d, e, i, c)| cmd::mapti(d, e, i, c)),
        2 => (dev.clone(), event.clone()).prop_map(|(d, e)| cmd::discard(d, e)),
        1 => (dev.clone(), event.clone(), icid).prop_map(|(d, e, c)| cmd::movi(d, e, c)),
        1 => (dev, event).prop_map(|(d, e)| cmd::int(d, e)),
        1 => (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>())
            .prop_map(|(a, b, c, d)| [a, b, c, d]),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whatever the guest sends, the vITS's peak heap stays within the
    /// budget of its caps.
    #[test]
    fn any_command_stream_stays_within_budget(
        caps in (1..24usize, 1..256usize, 1..40usize),
        commands in prop::collection::vec(any_command(), 1..1500),
    ) {
        let (devices, events, collections) = caps;
        let config = capped(devices, events, collections);
        let budget = vits_bytes(devices, events, collections);
        let used = peak(config, &commands);
        prop_assert!(used <= budget, "peak {} bytes > budget {}", used, budget);
    }
}

/// Two partitions' vITSs on one buddy heap of the hypervisor's size, the
/// hypervisor's own share taken first: the first partition, with the
/// largest event cap that validation lets fit beside the second, floods
/// every cap; then the second maps everything its caps allow, and none of
/// its allocations fails.
#[test]
fn a_partition_at_its_budget_cannot_make_anothers_allocation_fail() {
    use crate::partition::budget::{EVENT_BYTES, HEAP_BYTES, HYPERVISOR_OWN_BYTES};
    let arena = crate::test_alloc::Arena::new(HEAP_BYTES);
    let second = capped(64, 4096, 64);
    let second_budget = vits_bytes(64, 4096, 64);
    let first_fixed = vits_bytes(64, 0, 64);
    let room = HEAP_BYTES - HYPERVISOR_OWN_BYTES - second_budget - first_fixed;
    let first = capped(64, room / EVENT_BYTES, 64);
    assert!(first.max_events > 20_000, "{}", first.max_events);
    let mut a = Harness::with(first.clone(), ModelBackend::new(4, 64));
    let mut b = Harness::with(second.clone(), ModelBackend::new(4, 64));
    let flood_a = flood(&first, scatter);
    let flood_b = flood(&second, |n| n / 64);
    arena.route(|| {
        let own = alloc::vec![0u8; HYPERVISOR_OWN_BYTES];
        run(&mut a, &flood_a);
        assert_eq!(a.vits.state().event_count(), first.max_events);
        run(&mut b, &flood_b);
        assert_eq!(b.vits.state().event_count(), second.max_events);
        assert!(arena.used() <= HEAP_BYTES);
        drop(own);
        // Teardown inside the arena: its blocks go back to it.
        a.vits.reset(&mut a.backend);
        b.vits.reset(&mut b.backend);
    });
    assert_eq!(
        arena.failures(),
        0,
        "an allocation failed in the shared heap"
    );
}
