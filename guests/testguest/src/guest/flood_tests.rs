//! The flood scenario (issue 12): one partition (`flood`) does everything
//! a guest can do to make the hypervisor work, allocate and log, for a
//! bounded time, then loops on an abort forever; its neighbour
//! (`flood-neighbour`) meanwhile counts its passthrough device's MSIs and
//! its timer ticks and reports them every round. The system test reads
//! both and the hypervisor's own lines.
//!
//! The flooder, on its vITS (the ITS driver of `vits_tests`):
//! - MAPC of every collection ID GITS_TYPER allows (its Collection table
//!   grown to hold them all), past the partition's collection cap; an INT
//!   through a collection past the cap is dropped, one within delivers;
//! - MAPD of `devices=` devices and MAPTI of `events=` events on each,
//!   past the device and event caps (checked the same way);
//! - then, for `vits_ms=` of counter time, rounds of: INT of every event
//!   (past the pending-LPI budget), MOVALL both ways between its vCPUs,
//!   MAPC retargets of the first `retarget=` collection IDs (every mapped
//!   one), MAPD V=0 of every device and back; finally DISCARD of everything and one INT that must still
//!   arrive;
//! - then, for `log_ms=`, accesses that make the hypervisor log: loads and
//!   stores outside its RAM (aborts, handled), an IMPLEMENTATION DEFINED
//!   register (undefined, handled), an unknown hypercall, 64-bit stores to
//!   its ECAM;
//! - then `stuck`: an abort it re-takes forever.
//!
//! Every line the system test reads starts with `flood:` or
//! `flood-neighbour:`.

use super::pci_tests;
use super::timer_tests::{Timer, VTIMER};
use super::vits_tests::{self, its, now_ms, Cmd, Env, FIRST_LPI};
use super::{bootarg, gic, psci};
use core::sync::atomic::{AtomicU32, Ordering};

/// First DeviceID of the flood's devices (the edu is 0x8, the check device 0x10).
const FLOOD_DEVICE: u32 = 0x100;
/// The device whose events the cap checks use (never part of the sweeps).
const CHECK_DEVICE: u32 = 0x10;
/// First LPI of the flood's events (8192..8223 are the tracked ones the
/// checks use); the flood's LPIs stay disabled, so none is ever taken.
const FLOOD_LPI: u32 = FIRST_LPI + 64;
/// LPIs the flood's events cycle through (the configuration table covers
/// 8192..16383).
const FLOOD_LPIS: u32 = 8000;
/// Collections the flood's events are spread over (within any cap): the
/// even IDs below 16, all on vCPU 0 after the first MAPC sweep, so that an
/// INT of every event goes past vCPU 0's pending-LPI budget.
const EVENT_COLLECTIONS: u32 = 8;
/// Most flood devices, and the EventID bits of each one's ITT.
const MAX_DEVICES: usize = 128;
const EVENT_BITS: u32 = 7;
/// Commands per CWRITER write (the ring holds 2048).
const BATCH: usize = 512;
/// Pages of the Collection table (64 KiB each): 65536 entries of 8 bytes.
const COLLECTION_PAGES: usize = 8;

/// The flooder's Collection table.
#[repr(C, align(65536))]
struct CollectionTable([[u8; 0x1_0000]; COLLECTION_PAGES]);
static mut COLLECTIONS: CollectionTable = CollectionTable([[0; 0x1_0000]; COLLECTION_PAGES]);

/// The flood devices' ITTs (each 2^EVENT_BITS entries of 8 bytes, 256-byte aligned).
#[repr(C, align(256))]
struct Itts([[u8; 8 << EVENT_BITS]; MAX_DEVICES]);
static mut ITTS: Itts = Itts([[0; 8 << EVENT_BITS]; MAX_DEVICES]);

/// A decimal bootarg, or `default`.
fn arg(key: &str, default: u64) -> u64 {
    bootarg(key).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Sends `n` commands made by `cmd` in batches, each closed by a SYNC on
/// both vCPUs; a stalled or wedged queue fails the scenario (the vITS
/// skips a command it refuses and goes on).
fn send_each(env: &mut Env, what: &str, n: u32, mut cmd: impl FnMut(u32) -> Cmd) {
    let syncs = [env.sync(0), env.sync(1)];
    let mut batch = [syncs[0]; BATCH];
    let mut len = 0;
    for i in 0..n {
        batch[len] = cmd(i);
        len += 1;
        if len == BATCH - 2 || i + 1 == n {
            batch[len] = syncs[0];
            batch[len + 1] = syncs[1];
            env.send(&batch[..len + 2], what);
            len = 0;
        }
    }
}

/// The flood's DeviceID `d`'s ITT.
fn itt(d: usize) -> u64 {
    // Only the address is taken (no reference).
    (&raw mut ITTS) as u64 + (d * (8 << EVENT_BITS)) as u64
}

/// The LPI of the flood's `k`-th event.
fn flood_lpi(k: u32) -> u32 {
    FLOOD_LPI + k % FLOOD_LPIS
}

/// The `flood` scenario (never returns: it ends in an abort loop).
pub fn flood() -> ! {
    vits_tests::set_name("flood");
    let devices = (arg("devices", 64) as usize).min(MAX_DEVICES) as u32;
    let events = (arg("events", 1 << EVENT_BITS) as u32).min(1 << EVENT_BITS);
    let vits_ms = arg("vits_ms", 4000);
    let retarget = arg("retarget", 256) as u32;
    let log_ms = arg("log_ms", 3000);
    let (_, edu) = pci_tests::edu_with_msi();
    let mut env = vits_tests::setup();
    // Every collection ID the ITS allows, in a table that holds them all.
    let table = (&raw mut COLLECTIONS) as u64;
    let ids = env.its().collection_ids();
    let pages = (u64::from(ids) * 8)
        .div_ceil(0x1_0000)
        .min(COLLECTION_PAGES as u64);
    if let Err(e) = env.its().replace_collection_table(table, pages) {
        vits_tests::fail(format_args!("growing the Collection table: {e}"));
    }
    let entries = env.its().collection_table_entries();
    let ids = u64::from(ids).min(entries) as u32;
    let (rdb, start) = (env.rdb, now_ms());
    println!(
        "flood: start at {start} ms: {ids} collection IDs (GITS_TYPER CIDbits, a Collection table of {entries} entries), {devices} devices of {events} events, vITS rounds for {vits_ms} ms, then log-triggering accesses for {log_ms} ms"
    );
    for i in 1..6 {
        env.lpis().set(FIRST_LPI + i, 0xa0, true);
    }

    // Every collection ID, alternating vCPUs; past the cap each MAPC is
    // skipped. An event on the last ID is dropped, one on ID 0 delivered.
    send_each(&mut env, "MAPC of every collection ID", ids, |i| {
        Cmd::mapc(i as u16, rdb[(i % 2) as usize], true)
    });
    let check_itt = vits_tests::mapd(&mut env, CHECK_DEVICE);
    let before = vits_tests::snap();
    env.send(
        &[
            check_itt,
            Cmd::mapti(CHECK_DEVICE, 0, FIRST_LPI + 1, 0),
            Cmd::mapti(CHECK_DEVICE, 1, FIRST_LPI + 2, (ids - 1) as u16),
            Cmd::int(CHECK_DEVICE, 1),
            Cmd::int(CHECK_DEVICE, 0),
            env.sync(0),
            env.sync(1),
        ],
        "INT through collection 0 and the last ID",
    );
    vits_tests::expect(
        &before,
        &[(0, FIRST_LPI + 1, 1)],
        "INT through collection 0 and the last collection ID after MAPC of every ID",
    );
    println!("PASS flood: MAPC of all {ids} collection IDs done, queue not stalled; an INT through ID {} (past the cap) dropped, one through ID 0 taken once", ids - 1);

    // Devices past the device cap: MAPD of each, then an event on the last.
    let edu_itt = vits_tests::mapd(&mut env, edu);
    env.send(&[edu_itt], "MAPD of the edu");
    send_each(&mut env, "MAPTI of the edu's events", 32, |e| {
        Cmd::mapti(edu, e, flood_lpi(devices * events + e), 0)
    });
    send_each(&mut env, "MAPD of every device", devices, |d| {
        Cmd::mapd(FLOOD_DEVICE + d, itt(d as usize), EVENT_BITS, true)
    });
    let before = vits_tests::snap();
    let last = FLOOD_DEVICE + devices - 1;
    env.send(
        &[
            Cmd::mapti(last, 0, FIRST_LPI + 3, 0),
            Cmd::int(last, 0),
            env.sync(0),
        ],
        "INT on the last device",
    );
    vits_tests::expect(
        &before,
        &[],
        "INT on the last device after MAPD of every device",
    );
    println!("PASS flood: MAPD of {devices} devices done; an event of device {last:#x} (past the device cap) delivers nothing");
    let map_events = |env: &mut Env| {
        send_each(env, "MAPTI of every event", devices * events, |k| {
            Cmd::mapti(
                FLOOD_DEVICE + k / events,
                k % events,
                flood_lpi(k),
                (2 * (k % EVENT_COLLECTIONS)) as u16,
            )
        })
    };
    map_events(&mut env);
    let before = vits_tests::snap();
    env.send(
        &[
            Cmd::mapti(CHECK_DEVICE, 2, FIRST_LPI + 4, 0),
            Cmd::int(CHECK_DEVICE, 2),
            Cmd::int(CHECK_DEVICE, 0),
            env.sync(0),
        ],
        "INT of a new event past the cap",
    );
    vits_tests::expect(
        &before,
        &[(0, FIRST_LPI + 1, 1)],
        "an event mapped past the event cap, and one mapped before",
    );
    println!("PASS flood: MAPTI of {} events done; an event mapped past the event cap delivers nothing, one mapped before delivers once", devices * events);

    // Rounds of work that touches every event, for a bounded time.
    let mut rounds = 0u32;
    while rounds == 0 || now_ms() < start + vits_ms {
        let movall = |i: u32| {
            let i = (i % 2) as usize;
            Cmd::movall(rdb[i], rdb[1 - i])
        };
        send_each(&mut env, "MOVALL both ways", 2, movall);
        send_each(&mut env, "INT of every event", devices * events, |k| {
            Cmd::int(FLOOD_DEVICE + k / events, k % events)
        });
        // Everything pending, both ways, each MOVALL alone in one CWRITER
        // write: how long that write's trap took (the work a MOVALL puts
        // in one trap, unless the hypervisor resumes it on later ones).
        for i in 0..2 {
            let us = match env.its().send_timing_cwriter(&[movall(i)]) {
                Ok(ticks) => ticks * 1_000_000 / super::vgic_tests::freq(),
                Err(e) => vits_tests::fail(format_args!("MOVALL of everything pending: {e}")),
            };
            println!("flood: round {}: MOVALL of everything pending, vCPU {i} -> vCPU {}: its CWRITER write took {us} us", rounds + 1, 1 - i);
        }
        env.send(&[env.sync(0), env.sync(1)], "SYNC after MOVALL");
        send_each(&mut env, "MAPC retarget", retarget.min(ids), |i| {
            Cmd::mapc(i as u16, rdb[((i + rounds + 1) % 2) as usize], true)
        });
        send_each(&mut env, "MAPD V=0 of every device", devices + 1, |d| {
            if d == devices {
                Cmd::mapd(edu, 0, 5, false)
            } else {
                Cmd::mapd(FLOOD_DEVICE + d, 0, EVENT_BITS, false)
            }
        });
        env.send(&[edu_itt], "MAPD of the edu again");
        send_each(&mut env, "MAPTI of the edu's events again", 32, |e| {
            Cmd::mapti(edu, e, flood_lpi(devices * events + e), 0)
        });
        send_each(&mut env, "MAPD of every device again", devices, |d| {
            Cmd::mapd(FLOOD_DEVICE + d, itt(d as usize), EVENT_BITS, true)
        });
        map_events(&mut env);
        rounds += 1;
        println!("flood: vITS round {rounds} done at {} ms", now_ms());
    }
    // DISCARD clears what is pending (MAPD V=0 does not); then the vITS
    // must still deliver.
    send_each(&mut env, "DISCARD of every event", devices * events, |k| {
        Cmd::discard(FLOOD_DEVICE + k / events, k % events)
    });
    let before = vits_tests::snap();
    env.send(
        &[
            Cmd::mapc(0, rdb[0], true),
            Cmd::int(CHECK_DEVICE, 0),
            env.sync(0),
        ],
        "INT after the flood",
    );
    vits_tests::expect(
        &before,
        &[(0, FIRST_LPI + 1, 1)],
        "INT after the vITS flood",
    );
    println!("PASS flood: {rounds} vITS rounds (MOVALL x2, INT of every event, MOVALL x2, MAPC retarget of IDs 0..{}, MAPD V=0 of every device and back) by {} ms; then an INT taken once", retarget.min(ids), now_ms());

    log_loop(log_ms);
    println!(
        "flood: end at {} ms ({} ms after the start): entering an abort loop it never leaves",
        now_ms(),
        now_ms() - start
    );
    super::scenarios::stuck()
}

/// Accesses that make the hypervisor log, in turns so that no two faults
/// in a row are the same (the guest handles each and moves on), for `ms`.
fn log_loop(ms: u64) {
    let ram_end = super::ram_end();
    // A read-only word of the first function's header (CardBus CIS
    // pointer, 0x28) for the 64-bit stores.
    let ecam = pci_tests::ecam().map(|e| e + (1 << 15) + 0x28);
    let (mut turns, mut aborts, mut undefined) = (0u64, 0u64, 0u64);
    let end = now_ms() + ms;
    while now_ms() < end {
        let read = super::scenarios::expecting_fault(0x25, || {
            // SAFETY: outside our RAM: the hypervisor must inject an abort.
            let _ = unsafe { core::ptr::read_volatile(ram_end as *const u64) };
        });
        let write = super::scenarios::expecting_fault(0x25, || {
            // SAFETY: as above, a store.
            unsafe { core::ptr::write_volatile((ram_end + 8) as *mut u64, turns) };
        });
        if read == 0 || write == 0 {
            vits_tests::fail(format_args!(
                "an access outside the RAM at {ram_end:#x} did not abort (turn {turns})"
            ));
        }
        let undef = super::scenarios::expecting_fault(0, || {
            // SAFETY: an IMPLEMENTATION DEFINED register read only writes
            // x0, or is undefined.
            unsafe { core::arch::asm!("mrs x0, S3_0_C15_C0_0", out("x0") _) };
        });
        // An unknown function of the standard hypervisor service range.
        let _ = psci::call(0x8600_ff00, 0, 0, 0);
        if let Some(at) = ecam {
            let _ = super::scenarios::expecting_fault(0x25, || {
                // SAFETY: a 64-bit store to read-only config space; the
                // hypervisor ignores it or injects an abort.
                unsafe { core::arch::asm!("str {v}, [{a}]", v = in(reg) 0u64, a = in(reg) at) };
            });
        }
        aborts += 2;
        undefined += u64::from(undef != 0);
        turns += 1;
    }
    println!("PASS flood: {turns} turns of log-triggering accesses in {ms} ms: {aborts} aborts and {undefined} undefined instructions injected and handled, {turns} unknown hypercalls{}", if ecam.is_some() { ", 64-bit ECAM stores" } else { "" });
}

/// Interrupts of the virtual timer taken by the neighbour.
static TICKS: AtomicU32 = AtomicU32::new(0);
/// The neighbour's timer period.
const TICK_MS: u64 = 10;
/// The neighbour's round: one MSI, then a report line.
const ROUND_MS: u64 = 250;
/// How long one MSI may take before the round reports it as missing.
const MSI_WAIT_MS: u64 = 2000;

/// The neighbour's IRQ hook: its timer ticks (rearmed from the last
/// deadline, as a periodic tick), everything else counted by `vits_tests`.
fn neighbour_irq(intid: u32) {
    if intid != VTIMER {
        vits_tests::count_irq(intid);
        return;
    }
    TICKS.fetch_add(1, Ordering::AcqRel);
    let t = Timer::Virtual;
    let step = super::vgic_tests::freq() / 1000 * TICK_MS;
    t.set_cval((t.deadline() + step).max(t.now() + 1));
    gic::eoir1(intid);
}

/// The `flood-neighbour` scenario: its edu's MSIs through its vITS (one
/// per round, each waited for) and its virtual timer every 10 ms; a line
/// per round with the exact counts, `rounds=` rounds, then SYSTEM_OFF.
pub fn neighbour() -> ! {
    vits_tests::set_name("flood-neighbour");
    let max_rounds = arg("rounds", 400);
    let (bar0, device) = pci_tests::edu_with_msi();
    let _env = vits_tests::passthrough_setup(device);
    let rd = match its::discover_its(0).map(|g| g.redist_of(super::mpidr())) {
        Ok(Some(rd)) => rd.base,
        _ => vits_tests::fail(format_args!("no redistributor for vCPU 0")),
    };
    gic::set_hook(Some(neighbour_irq));
    let groups = super::mmio::read32(rd + gic::gicr::IGROUPR0);
    super::mmio::write32(rd + gic::gicr::IGROUPR0, groups | (1 << VTIMER));
    gic::set_priority(rd, VTIMER, 0x80);
    gic::enable_private(rd, VTIMER);
    let start = now_ms();
    Timer::Virtual.arm_in(TICK_MS);
    let trigger = || pci_tests::mmio_write32((bar0 + 0x60) as *mut u32, 1);
    let ack = || pci_tests::mmio_write32((bar0 + 0x64) as *mut u32, 1);
    println!("flood-neighbour: start at {start} ms: one MSI and a report every {ROUND_MS} ms, a timer tick every {TICK_MS} ms");
    let mut sent = 0u32;
    for round in 1..=max_rounds {
        let t0 = now_ms();
        let before = vits_tests::taken(0, FIRST_LPI);
        trigger();
        sent += 1;
        while vits_tests::taken(0, FIRST_LPI) == before && now_ms() < t0 + MSI_WAIT_MS {
            core::hint::spin_loop();
        }
        ack();
        while now_ms() < t0 + ROUND_MS {
            core::hint::spin_loop();
        }
        let taken = vits_tests::taken(0, FIRST_LPI);
        let other = vits_tests::taken(1, FIRST_LPI) + vits_tests::untracked();
        println!(
            "flood-neighbour: round {round}: MSIs sent {sent} taken {taken} other {other}; timer ticks {} in {} ms (one every {TICK_MS} ms)",
            TICKS.load(Ordering::Acquire),
            now_ms() - start
        );
    }
    println!("flood-neighbour: done after {max_rounds} rounds");
    psci::system_off()
}
