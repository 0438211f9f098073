//! Host figure of the worst trap under a vITS flood (issue 12): one guest
//! sends the command stream that costs the hypervisor the most per trap
//! (MAPC of every collection ID, MAPD and MAPTI up to the largest caps a
//! manifest accepts, every event pending, MOVALL of everything, MAPC
//! retargets of the collection holding every event, INVALL, MAPD V=0), and
//! each trap (the CWRITER write, then every CREADR read until the queue is
//! drained, as Linux polls) is timed and its events touched counted.
//!
//! The same stream runs with the default work budget (`its.max_commands_per_trap`
//! = 256 units) and unbounded (every command whole in the trap that reads
//! it, which is what a MAPC, MAPD or MOVALL did before the budget counted
//! events), for comparison.

use super::driver::{Driver, ITT_BASE};
use super::report::{Figure, Report};
use hypervisor::gic::its_cmd::{ItsCommand, RdBase};
use hypervisor::ids::PartitionId;
use hypervisor::manifest::ItsLimits;
use hypervisor::vits::{CountingModel, VitsConfig};
use std::collections::BTreeMap;
use std::time::Instant;

/// vCPUs of the flooding partition.
const VCPUS: u16 = 8;
/// Devices that carry the events, and EventIDs each.
const EVENT_DEVICES: u32 = 16;
const EVENTS_PER_DEVICE: u32 = 4096;
/// Commands announced by one CWRITER write.
const CHUNK: usize = 1024;
/// Runs of the whole flood per budget: each trap counts at its fastest, so
/// a preemption of the bench process does not make the figure.
pub const RUNS: usize = 5;

/// The flooding partition's vITS: the largest caps a manifest accepts
/// (`ItsLimits::MAX`), 16-bit IDs as the hypervisor offers, `budget` units
/// a trap.
fn config(budget: usize) -> VitsConfig {
    let caps = ItsLimits::MAX;
    VitsConfig {
        partition: PartitionId::new(1),
        index: 0,
        device_id_bits: 16,
        event_id_bits: 16,
        lpi_id_bits: 17,
        collection_id_bits: 16,
        num_vcpus: VCPUS,
        max_devices: caps.max_devices,
        max_events: caps.max_events,
        max_collections: caps.max_collections,
        max_commands_per_trap: budget,
        devices: BTreeMap::new(),
        cpu_device_id: None,
    }
}

fn rd(vcpu: u16) -> RdBase {
    RdBase::processor(vcpu)
}

/// The flood, in the order a hostile guest sends it.
pub fn flood() -> Vec<ItsCommand> {
    let caps = ItsLimits::MAX;
    let mut commands = Vec::new();
    // Every collection ID: the first `max_collections` map, the rest are
    // refused at the cap.
    for icid in 0..=u16::MAX {
        commands.push(ItsCommand::Mapc {
            icid,
            rdbase: rd(icid % VCPUS),
            valid: true,
        });
    }
    // Devices up to the cap and past it.
    let devices = caps.max_devices as u32 + 8;
    for device_id in 0..devices {
        commands.push(ItsCommand::Mapd {
            device_id,
            size: 11,
            itt_addr: ITT_BASE,
            valid: true,
        });
    }
    // Every event the cap allows (and a few past it), all on collection 0,
    // then all pending.
    let events = |f: &mut dyn FnMut(u32, u32, u32)| {
        for n in 0..EVENT_DEVICES * EVENTS_PER_DEVICE + 16 {
            f(n / EVENTS_PER_DEVICE, n % EVENTS_PER_DEVICE, n);
        }
    };
    events(&mut |device_id, event_id, n| {
        commands.push(ItsCommand::Mapti {
            device_id,
            event_id,
            intid: 8192 + n,
            icid: 0,
        })
    });
    events(&mut |device_id, event_id, _| {
        commands.push(ItsCommand::Int {
            device_id,
            event_id,
        })
    });
    // MOVALL of everything, round the vCPUs.
    for from in 0..VCPUS {
        commands.push(ItsCommand::Movall {
            rdbase1: rd(from),
            rdbase2: rd((from + 1) % VCPUS),
        });
    }
    // The collection of every event retargeted, three times.
    for to in [2, 5, 3] {
        commands.push(ItsCommand::Mapc {
            icid: 0,
            rdbase: rd(to),
            valid: true,
        });
    }
    for icid in 0..VCPUS {
        commands.push(ItsCommand::Invall { icid });
    }
    commands.push(ItsCommand::Sync { rdbase: rd(3) });
    for device_id in 0..devices {
        commands.push(ItsCommand::Mapd {
            device_id,
            size: 0,
            itt_addr: 0,
            valid: false,
        });
    }
    commands
}

/// One trap that did work.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Trap {
    /// Its wall time.
    pub ns: u64,
    /// Events (and LPIs) it touched.
    pub events: u64,
    /// Units of work it did (`Vits::last_work`).
    pub units: u64,
}

/// The worst trap of a flood.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Worst {
    /// Wall time of the slowest trap.
    pub ns: u64,
    /// Most events (and LPIs) one trap touched.
    pub events: u64,
    /// Most units of work one trap did.
    pub units: u64,
    /// Traps that did work.
    pub traps: u64,
}

impl Worst {
    /// The worst of `runs` of the same flood with the same budget, whose
    /// traps are the same work in the same order: each trap's time is its
    /// fastest over the runs (a preemption of the bench process would have
    /// to hit the same trap in every run to count), then the slowest trap.
    pub fn of(runs: &[Vec<Trap>]) -> Self {
        let traps = runs.first().map_or(0, Vec::len);
        let mut worst = Self {
            traps: traps as u64,
            ..Self::default()
        };
        for i in 0..traps {
            let ns = runs.iter().filter_map(|r| r.get(i)).map(|t| t.ns).min();
            worst.ns = worst.ns.max(ns.unwrap_or(0));
            for trap in runs.iter().filter_map(|r| r.get(i)) {
                worst.events = worst.events.max(trap.events);
                worst.units = worst.units.max(trap.units);
            }
        }
        worst
    }
}

/// Runs `commands` once with `budget` units a trap and returns every trap
/// that did work. `Err` if the queue stalls or never drains.
pub fn run(commands: &[ItsCommand], budget: usize) -> Result<Vec<Trap>, String> {
    let mut driver = Driver::new(
        config(budget),
        CountingModel::new(VCPUS, ItsLimits::MAX.max_events),
    )?;
    let mut traps = Vec::new();
    let mut note = |driver: &mut Driver<CountingModel>, ns: u64| {
        let events = driver.backend.take() as u64;
        let units = driver.vits.last_work() as u64;
        if units > 0 {
            traps.push(Trap { ns, events, units });
        }
    };
    for chunk in commands.chunks(CHUNK) {
        driver.enqueue(chunk);
        let started = Instant::now();
        driver.kick();
        note(&mut driver, started.elapsed().as_nanos() as u64);
        let mut reads = 0u64;
        loop {
            let started = Instant::now();
            let creadr = driver.read_creadr();
            note(&mut driver, started.elapsed().as_nanos() as u64);
            if driver.drained(creadr) {
                break;
            }
            if let Some(stall) = driver.vits.stall() {
                return Err(format!("vITS flood: queue stalled: {stall:?}"));
            }
            reads += 1;
            if reads > 10_000_000 {
                return Err("vITS flood: the queue does not drain".into());
            }
        }
    }
    Ok(traps)
}

/// The figures: worst trap with the default budget, and unbounded.
pub fn measure(report: &mut Report) -> Result<(), String> {
    let commands = flood();
    let budget = ItsLimits::DEFAULT.max_commands_per_trap;
    let mut table = format!(
        "vITS flood ({} commands: MAPC of every ICID, MAPD/MAPTI to the caps {:?}, all pending, MOVALL round the vCPUs, 3 MAPC retargets of 65,536 events, INVALL, MAPD V=0); worst trap, each trap at its fastest of {RUNS} runs\n{:>12}{:>16}{:>16}{:>14}{:>10}\n",
        commands.len(),
        (ItsLimits::MAX.max_devices, ItsLimits::MAX.max_events, ItsLimits::MAX.max_collections),
        "budget",
        "worst ns",
        "worst events",
        "worst units",
        "traps"
    );
    for (suffix, units, label) in [
        ("", budget, format!("{budget} units")),
        ("_unbounded", usize::MAX, "unbounded".to_string()),
    ] {
        let runs = (0..RUNS)
            .map(|_| run(&commands, units))
            .collect::<Result<Vec<_>, _>>()?;
        let worst = Worst::of(&runs);
        table += &format!(
            "{label:>12}{:>16}{:>16}{:>14}{:>10}\n",
            worst.ns, worst.events, worst.units, worst.traps
        );
        let what = if suffix.is_empty() {
            format!("with the default budget of {budget} units a trap")
        } else {
            "with every command whole in one trap (no budget in events), for comparison".into()
        };
        report.push(Figure::int(
            format!("vits_flood_worst_trap_ns{suffix}"),
            worst.ns,
            "ns",
            format!("wall time of the slowest vITS trap (CWRITER write or CREADR read) under the flood, {what}; each trap at its fastest of {RUNS} identical runs"),
        ));
        report.push(Figure::int(
            format!("vits_flood_worst_trap_events{suffix}"),
            worst.events,
            "events",
            format!("most events (backend event calls and LPIs moved) one vITS trap touched under the flood, {what}"),
        ));
        report.push(Figure::int(
            format!("vits_flood_traps{suffix}"),
            worst.traps,
            "traps",
            format!("vITS traps that did work to drain the flood, {what}"),
        ));
    }
    report.table(table);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_budget_bounds_every_trap_of_the_flood_and_unbounded_does_not() {
        let commands = flood();
        let budget = ItsLimits::DEFAULT.max_commands_per_trap;
        let bounded = Worst::of(&[run(&commands, budget).expect("drains")]);
        assert!(bounded.units <= budget as u64, "{bounded:?}");
        assert!(bounded.events <= budget as u64, "{bounded:?}");
        let unbounded = Worst::of(&[run(&commands, usize::MAX).expect("drains")]);
        assert!(
            unbounded.events >= u64::from(EVENT_DEVICES * EVENTS_PER_DEVICE),
            "{unbounded:?}"
        );
        assert!(bounded.traps > unbounded.traps);
    }
}
