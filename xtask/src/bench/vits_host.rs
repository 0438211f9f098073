//! Host figures of the virtual ITS: time per command and its growth with
//! the number of mapped events, traps per batch, heap bytes per event.
//!
//! The vITS runs in this process, from the hypervisor crate as a library,
//! driven through its MMIO interface exactly as guest input drives it:
//! commands are written into the guest's queue, then one GITS_CWRITER
//! write (one trap) processes them.

use super::alloc_count;
use super::driver::{Driver, NullBackend, ITT_BASE};
use super::report::{median, Figure, Report};
use hypervisor::gic::its_cmd::{ItsCommand, RdBase};
use hypervisor::ids::{EventId, PartitionId, VirtDeviceId};
use hypervisor::vits::{ModelBackend, VitsBackend, VitsConfig};
use std::collections::BTreeMap;
use std::time::Instant;

/// Mapped-event counts the time per command is measured at.
pub const EVENT_COUNTS: [usize; 4] = [16, 256, 4096, 65_536];
/// Commands per timed trap.
pub const BATCH: usize = 64;
/// Rounds over all commands; interleaving them spreads a load spike of a
/// shared machine over every command instead of one.
pub const ROUNDS: usize = 5;
/// Timed traps per command and round.
pub const RUNS_PER_ROUND: usize = 101;
/// Timed traps per figure: the median of these is reported.
pub const RUNS: usize = ROUNDS * RUNS_PER_ROUND;
/// Untimed traps per command before the first round.
pub const WARMUP: usize = 10;
/// Events per mapped device (an MSI-X device with 64 vectors).
const EVENTS_PER_DEVICE: usize = 64;
/// Collections the events are spread over, mapped to vCPUs 0..3.
const COLLECTIONS: u16 = 4;
/// vCPUs of the bench partition.
const VCPUS: u16 = 8;
/// A mapped device with no events, for MAPTI, MAPI and DISCARD batches.
const SPARE_DEVICE: u32 = 0xF000;
/// First DeviceID MAPD batches map (and unmap again).
const FRESH_DEVICE: u32 = 0x8000;
/// First collection MAPC batches map (and unmap again).
const FRESH_COLLECTION: u16 = 0x100;
/// First INTID of the mapped events; the spare device's start above them.
const FIRST_INTID: u32 = 8192;
const SPARE_INTID: u32 = 0x2_0000;
/// Commands per trap in the running hypervisor (MAX_COMMANDS_PER_TRAP in
/// hypervisor/src/kernel/vits.rs, which is not built for the host).
pub const KERNEL_COMMANDS_PER_TRAP: usize = 256;
/// Batch sizes of the trap count, each announced by one CWRITER write.
pub const TRAP_BATCHES: [usize; 5] = [1, 8, 64, 256, 1024];

/// The twelve commands, in the order the tables list them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Mapd,
    Mapc,
    Mapti,
    Mapi,
    Int,
    Clear,
    Discard,
    Inv,
    Invall,
    Movi,
    Movall,
    Sync,
    /// INT of one event 64 times: the lookups with hot caches, to tell
    /// algorithmic growth from cache misses.
    IntHot,
    /// INT as `Int`, its series started after the caches were flushed
    /// instead of after the state was touched: the cost of evicted state.
    IntEvicted,
}

impl Kind {
    /// All twelve.
    pub const ALL: [Kind; 12] = [
        Kind::Mapd,
        Kind::Mapc,
        Kind::Mapti,
        Kind::Mapi,
        Kind::Int,
        Kind::Clear,
        Kind::Discard,
        Kind::Inv,
        Kind::Invall,
        Kind::Movi,
        Kind::Movall,
        Kind::Sync,
    ];

    /// The name used in figure names (lower case).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Mapd => "mapd",
            Kind::Mapc => "mapc",
            Kind::Mapti => "mapti",
            Kind::Mapi => "mapi",
            Kind::Int => "int",
            Kind::Clear => "clear",
            Kind::Discard => "discard",
            Kind::Inv => "inv",
            Kind::Invall => "invall",
            Kind::Movi => "movi",
            Kind::Movall => "movall",
            Kind::Sync => "sync",
            Kind::IntHot => "int_hot",
            Kind::IntEvicted => "int_evicted",
        }
    }
}

/// The configuration of the bench vITS: IDs wide enough and caps high
/// enough for 65,536 events plus a batch.
fn config(commands_per_trap: usize) -> VitsConfig {
    VitsConfig {
        partition: PartitionId::new(0),
        index: 0,
        device_id_bits: 16,
        event_id_bits: 16,
        lpi_id_bits: 20,
        collection_id_bits: 16,
        num_vcpus: VCPUS,
        max_devices: 8192,
        max_events: 65_536 + 4096,
        max_collections: 1 << 16,
        max_commands_per_trap: commands_per_trap,
        devices: BTreeMap::new(),
        cpu_device_id: None,
    }
}

/// Where mapped event `index` lives: (DeviceID, EventID).
fn base_event(index: usize) -> (u32, u32) {
    (
        1 + (index / EVENTS_PER_DEVICE) as u32,
        (index % EVENTS_PER_DEVICE) as u32,
    )
}

fn rd(vcpu: u64) -> RdBase {
    RdBase(vcpu)
}

fn mapd(device_id: u32, valid: bool) -> ItsCommand {
    ItsCommand::Mapd {
        device_id,
        // Size: EventID bits minus one (16-bit EventIDs).
        size: 15,
        itt_addr: ITT_BASE + u64::from(device_id) * 0x100,
        valid,
    }
}

/// A vITS with `events` events mapped (64 per device, spread over four
/// collections on vCPUs 0..3) and the spare device mapped with none.
struct Fixture<B> {
    driver: Driver<B>,
    events: usize,
    /// The collection each mapped event is routed by now (MOVI changes it).
    collection_of: Vec<u16>,
}

impl<B: VitsBackend> Fixture<B> {
    fn new(events: usize, backend: B, commands_per_trap: usize) -> Result<Self, String> {
        let mut driver = Driver::new(config(commands_per_trap), backend)?;
        let mut setup = Vec::new();
        for icid in 0..COLLECTIONS {
            setup.push(ItsCommand::Mapc {
                icid,
                rdbase: rd(u64::from(icid)),
                valid: true,
            });
        }
        setup.push(mapd(SPARE_DEVICE, true));
        for device in 0..events.div_ceil(EVENTS_PER_DEVICE) {
            setup.push(mapd(1 + device as u32, true));
        }
        let mut collection_of = Vec::with_capacity(events);
        for index in 0..events {
            let (device_id, event_id) = base_event(index);
            let icid = (index % usize::from(COLLECTIONS)) as u16;
            collection_of.push(icid);
            setup.push(ItsCommand::Mapti {
                device_id,
                event_id,
                intid: FIRST_INTID + index as u32,
                icid,
            });
        }
        driver.submit(&setup)?;
        if driver.vits.state().event_count() != events {
            return Err(format!(
                "fixture: {} events mapped, {events} wanted",
                driver.vits.state().event_count()
            ));
        }
        Ok(Self {
            driver,
            events,
            collection_of,
        })
    }

    /// Looks every mapped event up once through the translation state
    /// (untimed, no queue traffic): the state is then in the caches as
    /// after a guest's recent use of all its events.
    fn touch_all(&self) {
        let state = self.driver.vits.state();
        let mut found = 0u64;
        for index in 0..self.events {
            let (device_id, event_id) = base_event(index);
            if let Some(entry) = state.event(VirtDeviceId::new(device_id), EventId::new(event_id)) {
                found += u64::from(entry.intid.get());
            }
        }
        std::hint::black_box(found);
    }

    /// The `i`-th mapped event a batch of `kind`'s run `run` targets:
    /// spread over all of them, not walking them in order. Each command
    /// that names events starts a quarter of the events further, so within
    /// a round (101 batches of 64, under a quarter of 65,536) no command
    /// runs on events the command timed before it just brought into the
    /// caches: until issue 15's second pass CLEAR, INV and MOVI ran on
    /// exactly the events INT (and its restoring CLEAR) had just touched,
    /// and looked cheaper than INT at 65,536 events for that reason alone.
    fn pick(&self, kind: Kind, run: usize, i: usize) -> usize {
        let lane = match kind {
            Kind::Clear => 1,
            Kind::Inv => 2,
            Kind::Movi => 3,
            _ => 0,
        };
        let at = run * BATCH + i + lane * self.events / 4;
        (at as u64 * 40_503 % self.events as u64) as usize
    }

    /// (untimed preparation, timed batch, untimed restoration) for run `run`.
    fn batch(&mut self, kind: Kind, run: usize) -> [Vec<ItsCommand>; 3] {
        let (mut prepare, mut timed, mut restore) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..BATCH {
            let (device_id, event_id) = base_event(self.pick(kind, run, i));
            let spare = i as u32;
            let vcpu = (i % usize::from(VCPUS)) as u64;
            match kind {
                Kind::Mapd => {
                    timed.push(mapd(FRESH_DEVICE + spare, true));
                    restore.push(mapd(FRESH_DEVICE + spare, false));
                }
                Kind::Mapc => {
                    let icid = FRESH_COLLECTION + i as u16;
                    timed.push(ItsCommand::Mapc {
                        icid,
                        rdbase: rd(vcpu),
                        valid: true,
                    });
                    restore.push(ItsCommand::Mapc {
                        icid,
                        rdbase: rd(0),
                        valid: false,
                    });
                }
                Kind::Mapti => {
                    timed.push(ItsCommand::Mapti {
                        device_id: SPARE_DEVICE,
                        event_id: spare,
                        intid: SPARE_INTID + spare,
                        icid: (i % usize::from(COLLECTIONS)) as u16,
                    });
                    restore.push(ItsCommand::Discard {
                        device_id: SPARE_DEVICE,
                        event_id: spare,
                    });
                }
                Kind::Mapi => {
                    // MAPI: the INTID is the EventID, so the EventIDs are LPI numbers.
                    let event_id = FIRST_INTID + spare;
                    timed.push(ItsCommand::Mapi {
                        device_id: SPARE_DEVICE,
                        event_id,
                        icid: (i % usize::from(COLLECTIONS)) as u16,
                    });
                    restore.push(ItsCommand::Discard {
                        device_id: SPARE_DEVICE,
                        event_id,
                    });
                }
                Kind::Discard => {
                    prepare.push(ItsCommand::Mapti {
                        device_id: SPARE_DEVICE,
                        event_id: spare,
                        intid: SPARE_INTID + spare,
                        icid: (i % usize::from(COLLECTIONS)) as u16,
                    });
                    timed.push(ItsCommand::Discard {
                        device_id: SPARE_DEVICE,
                        event_id: spare,
                    });
                }
                Kind::Int | Kind::IntEvicted => {
                    timed.push(ItsCommand::Int {
                        device_id,
                        event_id,
                    });
                    restore.push(ItsCommand::Clear {
                        device_id,
                        event_id,
                    });
                }
                // CLEAR of events that are not pending: the vITS does the same
                // work either way, and an INT to make them pending would warm
                // the caches for exactly these events.
                Kind::Clear => timed.push(ItsCommand::Clear {
                    device_id,
                    event_id,
                }),
                Kind::Inv => timed.push(ItsCommand::Inv {
                    device_id,
                    event_id,
                }),
                Kind::Invall => timed.push(ItsCommand::Invall {
                    icid: (i % usize::from(COLLECTIONS)) as u16,
                }),
                Kind::Movi => {
                    // Always to another collection, so every MOVI moves.
                    let index = self.pick(kind, run, i);
                    let icid = (self.collection_of[index] + 1) % COLLECTIONS;
                    self.collection_of[index] = icid;
                    timed.push(ItsCommand::Movi {
                        device_id,
                        event_id,
                        icid,
                    });
                }
                Kind::Movall => timed.push(ItsCommand::Movall {
                    rdbase1: rd(vcpu),
                    rdbase2: rd((vcpu + 1) % u64::from(VCPUS)),
                }),
                Kind::Sync => timed.push(ItsCommand::Sync { rdbase: rd(vcpu) }),
                Kind::IntHot => {
                    let (device_id, event_id) = base_event(self.pick(kind, run, 0));
                    timed.push(ItsCommand::Int {
                        device_id,
                        event_id,
                    });
                    if i == 0 {
                        restore.push(ItsCommand::Clear {
                            device_id,
                            event_id,
                        });
                    }
                }
            }
        }
        [prepare, timed, restore]
    }

    /// Nanoseconds per command of `kind`, one sample per run: each run
    /// enqueues a batch, times the one CWRITER write that processes all of
    /// it, and undoes its effect untimed so every run starts from the same
    /// state. Run numbers choose which events a batch targets.
    fn ns_per_command(
        &mut self,
        kind: Kind,
        runs: std::ops::Range<usize>,
    ) -> Result<Vec<f64>, String> {
        let mut samples = Vec::with_capacity(runs.len());
        for run in runs {
            let [prepare, timed, restore] = self.batch(kind, run);
            if !prepare.is_empty() {
                self.driver.submit(&prepare)?;
            }
            let errors = self.driver.vits.errors().total_commands();
            self.driver.enqueue(&timed);
            let start = Instant::now();
            self.driver.kick();
            let elapsed = start.elapsed();
            self.driver.check_no_errors(errors)?;
            let creadr = self.driver.read_creadr();
            if !self.driver.drained(creadr) {
                return Err(format!("{} batch not drained by one trap", kind.name()));
            }
            if !restore.is_empty() {
                self.driver.submit(&restore)?;
            }
            samples.push(elapsed.as_nanos() as f64 / timed.len() as f64);
        }
        if self.driver.vits.state().event_count() != self.events {
            return Err(format!(
                "{} runs left {} events mapped instead of {}",
                kind.name(),
                self.driver.vits.state().event_count(),
                self.events
            ));
        }
        Ok(samples)
    }
}

/// Measures every host figure and adds it to `report`.
pub fn measure(report: &mut Report) -> Result<(), String> {
    // Untimed warm-up of the whole path, so the first figures measured do
    // not pay for cold code, page faults of fresh memory or a CPU that is
    // still clocking up.
    let mut warm = Fixture::new(4096, NullBackend::default(), 1 << 20)?;
    for kind in Kind::ALL {
        warm.ns_per_command(kind, 0..RUNS_PER_ROUND)?;
    }
    drop(warm);
    time_per_command(
        report,
        "vits",
        "the vITS alone (a backend that only counts)",
        NullBackend::default,
    )?;
    time_per_command(
        report,
        "vits_sw",
        "the vITS with the software-injection backend (ModelBackend: routes and pending sets)",
        || ModelBackend::new(VCPUS, 65_536),
    )?;
    lookup_cost(report)?;
    traps_per_batch(report)?;
    bytes_per_event(report)
}

/// Where INT's time at 65,536 events goes, without the queue: ns per
/// lookup of a (DeviceID, EventID) through the translation state
/// (`TranslationState::event`), for events picked as the INT series picks
/// them and for one event repeated; and ns per read of one random 8-byte
/// slot of a plain array as large as the event tables (the cost of one
/// dependent miss on this machine, the floor of any lookup). Each access
/// depends on the one before, so misses do not overlap.
fn lookup_cost(report: &mut Report) -> Result<(), String> {
    const EVENTS: usize = 65_536;
    const LOOKUPS: usize = 1 << 16;
    let fixture = Fixture::new(EVENTS, NullBackend::default(), TIMING_WORK_PER_TRAP)?;
    let state = fixture.driver.vits.state();
    let picks: Vec<(VirtDeviceId, EventId)> = (0..LOOKUPS)
        .map(|i| {
            let (device, event) = base_event(fixture.pick(Kind::Int, i / BATCH, i % BATCH));
            (VirtDeviceId::new(device), EventId::new(event))
        })
        .collect();
    let hot = vec![picks[0]; LOOKUPS];
    let array: Vec<u64> = (0..EVENTS as u64).collect();
    let slots: Vec<usize> = (0..LOOKUPS)
        .map(|i| (i as u64 * 40_503 % EVENTS as u64) as usize)
        .collect();
    let time_lookups = |picks: &[(VirtDeviceId, EventId)]| {
        let mut samples = Vec::new();
        for _ in 0..21 {
            fixture.touch_all();
            let start = Instant::now();
            let mut found = 0u64;
            // Each lookup's DeviceID and EventID depend on the lookup
            // before (plus zero, which the compiler cannot see): the
            // latency of the whole chain (index, table slot), not misses
            // the processor overlaps with the next lookup's.
            let zero = std::hint::black_box(0u64);
            for &(device, event) in picks {
                let dep = (found & zero) as u32;
                let device = VirtDeviceId::new(device.get() + dep);
                let event = EventId::new(event.get() + dep);
                if let Some(entry) = state.event(device, event) {
                    found += u64::from(entry.intid.get());
                }
            }
            samples.push(start.elapsed().as_nanos() as f64 / picks.len() as f64);
            std::hint::black_box(found);
        }
        median(&mut samples)
    };
    let random = time_lookups(&picks);
    let repeated = time_lookups(&hot);
    let mut samples = Vec::new();
    for _ in 0..21 {
        let sum: u64 = array.iter().sum();
        std::hint::black_box(sum);
        let start = Instant::now();
        let mut found = 0u64;
        let zero = std::hint::black_box(0u64);
        for &slot in &slots {
            found += array[slot + (found & zero) as usize];
        }
        samples.push(start.elapsed().as_nanos() as f64 / slots.len() as f64);
        std::hint::black_box(found);
    }
    let one_read = median(&mut samples);
    for (name, ns, what) in [
        (
            "vits_ns_per_lookup_65536_events",
            random,
            "a translation-state lookup of a random event, 65,536 events mapped",
        ),
        (
            "vits_ns_per_lookup_hot",
            repeated,
            "a translation-state lookup of one event repeated (hot caches)",
        ),
        (
            "host_ns_per_random_read_512k",
            one_read,
            "one read of a random 8-byte slot of a 512 KiB array (one dependent miss)",
        ),
    ] {
        report.push(Figure::number(name.to_string(), ns, "ns", what.to_string()));
    }
    report.table(format!(
        "where INT's time goes at 65,536 events (median of 21 passes of {LOOKUPS}):\n  state lookup, random event {random:>6.1} ns\n  state lookup, one event    {repeated:>6.1} ns\n  one random read, 512 KiB   {one_read:>6.1} ns\n"
    ));
    Ok(())
}

/// Units of work a timed trap may do: a batch of 64 MOVALLs at 65,536
/// events is charged 64 x 65,537 (each may move every event), and must
/// still drain in one trap.
const TIMING_WORK_PER_TRAP: usize = 1 << 24;

/// Bytes streamed through before the `IntEvicted` series: four times this
/// host's 2 MiB L2 per core, so the series starts from caches that hold
/// none of the vITS state (a shared L3 may keep it).
const EVICT_BYTES: usize = 8 << 20;

/// Writes and reads `buffer` once a cache line (untimed): the vITS state
/// leaves the L1 and L2 caches (a shared L3 may keep it).
fn evict_caches(buffer: &mut [u8]) {
    for (i, line) in buffer.chunks_mut(64).enumerate() {
        line[0] = line[0].wrapping_add(i as u8);
    }
    let sum: u64 = buffer.chunks(64).map(|line| u64::from(line[0])).sum();
    std::hint::black_box(sum);
}

/// ns per command for every command and event count, as figures and a table.
fn time_per_command<B: VitsBackend>(
    report: &mut Report,
    prefix: &str,
    what: &str,
    backend: impl Fn() -> B,
) -> Result<(), String> {
    let mut table = format!(
        "{what}: ns per command\n(median of {RUNS} traps in {ROUNDS} interleaved rounds, each trap one CWRITER write draining {BATCH} queued commands of one type)\n{:<9}",
        "command"
    );
    for events in EVENT_COUNTS {
        table += &format!("{:>13}", format!("{events} events"));
    }
    table += &format!("{:>10}\n", "x 16->64K");
    let kinds: Vec<Kind> = Kind::ALL
        .iter()
        .copied()
        .chain([Kind::IntHot, Kind::IntEvicted])
        .collect();
    let mut grid: Vec<Vec<f64>> = vec![Vec::new(); kinds.len()];
    for events in EVENT_COUNTS {
        let mut fixture = Fixture::new(events, backend(), TIMING_WORK_PER_TRAP)?;
        let mut samples: Vec<Vec<f64>> = vec![Vec::new(); kinds.len()];
        for &kind in &kinds {
            fixture.ns_per_command(kind, 0..WARMUP)?;
        }
        let mut flush = vec![0u8; EVICT_BYTES];
        for round in 0..ROUNDS {
            let first = WARMUP + round * RUNS_PER_ROUND;
            for (row, &kind) in kinds.iter().enumerate() {
                match kind {
                    Kind::IntHot => {}
                    Kind::IntEvicted => evict_caches(&mut flush),
                    _ => fixture.touch_all(),
                }
                samples[row].extend(fixture.ns_per_command(kind, first..first + RUNS_PER_ROUND)?);
            }
        }
        for (row, kind) in kinds.iter().enumerate() {
            let ns = median(&mut samples[row]);
            grid[row].push(ns);
            let name = match kind {
                Kind::IntHot => "INT of one event repeated (hot caches)".to_string(),
                Kind::IntEvicted => "INT after the caches were flushed".to_string(),
                other => other.name().to_uppercase(),
            };
            report.push(Figure::number(
                format!("{prefix}_ns_per_cmd_{}_{events}_events", kind.name()),
                ns,
                "ns",
                format!("{name} with {events} events mapped, {what}"),
            ));
        }
    }
    for (row, kind) in kinds.iter().enumerate() {
        table += &format!(
            "{:<9}",
            kind.name()
                .to_uppercase()
                .replace("INT_HOT", "INT hot")
                .replace("INT_EVICTED", "INT evict")
        );
        for ns in &grid[row] {
            table += &format!("{ns:>13.1}");
        }
        let growth = grid[row][EVENT_COUNTS.len() - 1] / grid[row][0];
        table += &format!("{growth:>10.2}\n");
        report.push(Figure::number(
            format!("{prefix}_growth_{}_16_to_65536_events", kind.name()),
            growth,
            "ratio",
            format!("{} ns per command at 65,536 events over at 16", kind.name()),
        ));
    }
    report.table(table);
    Ok(())
}

/// Traps (CWRITER write + CREADR reads) a guest needs to get a batch done,
/// with the hypervisor's per-trap budget.
fn traps_per_batch(report: &mut Report) -> Result<(), String> {
    let budget = KERNEL_COMMANDS_PER_TRAP;
    let mut fixture = Fixture::new(256, NullBackend::default(), budget)?;
    let mut table = format!(
        "vITS traps per batch (one CWRITER write per batch, then CREADR polled until it reaches CWRITER, as Linux does; {budget} commands per trap as in the hypervisor)\n{:>8}{:>18}{:>18}\n",
        "batch", "working traps", "guest accesses"
    );
    let cycle = |i: usize| {
        let (device_id, event_id) = base_event(i * 37 % 256);
        match i % 4 {
            0 => ItsCommand::Int {
                device_id,
                event_id,
            },
            1 => ItsCommand::Clear {
                device_id,
                event_id,
            },
            2 => ItsCommand::Inv {
                device_id,
                event_id,
            },
            _ => ItsCommand::Sync { rdbase: rd(0) },
        }
    };
    for batch in TRAP_BATCHES {
        let commands: Vec<ItsCommand> = (0..batch).map(cycle).collect();
        let errors = fixture.driver.vits.errors().total_commands();
        let syncs = fixture.driver.backend.syncs;
        fixture.driver.enqueue(&commands);
        fixture.driver.kick();
        let mut accesses = 1;
        loop {
            accesses += 1;
            let creadr = fixture.driver.read_creadr();
            if fixture.driver.drained(creadr) {
                break;
            }
            if accesses > batch + 2 {
                return Err(format!("batch of {batch}: the queue does not drain"));
            }
        }
        fixture.driver.check_no_errors(errors)?;
        let working = fixture.driver.backend.syncs - syncs;
        table += &format!("{batch:>8}{working:>18}{accesses:>18}\n");
        report.push(Figure::int(
            format!("vits_traps_per_batch_{batch}"),
            working,
            "traps",
            format!("MMIO accesses (CWRITER write, CREADR reads) that processed commands for a batch of {batch} announced by one CWRITER write; budget {budget} per trap"),
        ));
        report.push(Figure::int(
            format!("vits_guest_accesses_per_batch_{batch}"),
            accesses as u64,
            "traps",
            format!("CWRITER write + CREADR reads until the guest sees a batch of {batch} done"),
        ));
    }
    report.push(Figure::int(
        "vits_max_commands_per_trap".into(),
        budget as u64,
        "commands",
        "per-trap budget of the running hypervisor (kernel/vits.rs MAX_COMMANDS_PER_TRAP)".into(),
    ));
    report.table(table);
    Ok(())
}

/// Heap bytes per mapped event and per mapped device: the live-heap delta
/// (counting global allocator) of mapping them, divided by their number.
fn bytes_per_event(report: &mut Report) -> Result<(), String> {
    const DEVICES: usize = 1024;
    const EVENTS: usize = DEVICES * EVENTS_PER_DEVICE;
    let mut driver = Driver::new(config(1 << 20), NullBackend::default())?;
    let mut collections = Vec::new();
    for icid in 0..COLLECTIONS {
        collections.push(ItsCommand::Mapc {
            icid,
            rdbase: rd(u64::from(icid)),
            valid: true,
        });
    }
    driver.submit(&collections)?;
    let devices: Vec<ItsCommand> = (0..DEVICES).map(|d| mapd(1 + d as u32, true)).collect();
    let events: Vec<ItsCommand> = (0..EVENTS)
        .map(|index| {
            let (device_id, event_id) = base_event(index);
            ItsCommand::Mapti {
                device_id,
                event_id,
                intid: FIRST_INTID + index as u32,
                icid: (index % usize::from(COLLECTIONS)) as u16,
            }
        })
        .collect();
    let before_devices = alloc_count::live_bytes();
    driver.submit(&devices)?;
    let before_events = alloc_count::live_bytes();
    driver.submit(&events)?;
    let after = alloc_count::live_bytes();
    let per_device = before_devices.abs_diff(before_events) as f64 / DEVICES as f64;
    let per_event = before_events.abs_diff(after) as f64 / EVENTS as f64;

    // The software backend's own routes, for the same events.
    let mut software = Driver::new(config(1 << 20), ModelBackend::new(VCPUS, 65_536))?;
    software.submit(&collections)?;
    software.submit(&devices)?;
    let before_sw = alloc_count::live_bytes();
    software.submit(&events)?;
    let after_sw = alloc_count::live_bytes();
    let per_event_sw = before_sw.abs_diff(after_sw) as f64 / EVENTS as f64;

    report.push(Figure::number(
        "vits_bytes_per_event".into(),
        per_event,
        "bytes",
        format!("live-heap delta of mapping {EVENTS} events (MAPTI, 64 per device, ascending EventIDs) / {EVENTS}, vITS translation state only"),
    ));
    report.push(Figure::number(
        "vits_bytes_per_device".into(),
        per_device,
        "bytes",
        format!("live-heap delta of mapping {DEVICES} devices with no events (MAPD) / {DEVICES}"),
    ));
    report.push(Figure::number(
        "vits_sw_bytes_per_event".into(),
        per_event_sw,
        "bytes",
        "the same with the software-injection backend: vITS state plus the backend's route".into(),
    ));
    report.table(format!(
        "vITS memory (live-heap delta measured with a counting global allocator; requested bytes, no malloc overhead)\n  per mapped event, vITS state:            {per_event:>7.1} bytes\n  per mapped event, vITS + software routes: {per_event_sw:>7.1} bytes\n  per mapped device (no events):            {per_device:>7.1} bytes\n"
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_batch_runs_without_vits_errors_and_keeps_the_event_count() {
        let mut fixture = Fixture::new(256, NullBackend::default(), 1 << 20).unwrap();
        for kind in Kind::ALL
            .into_iter()
            .chain([Kind::IntHot, Kind::IntEvicted])
        {
            let samples = fixture.ns_per_command(kind, 0..2).unwrap();
            assert_eq!(samples.len(), 2, "{kind:?}");
        }
        assert_eq!(fixture.driver.vits.state().event_count(), 256);
    }

    #[test]
    fn a_batch_within_the_budget_takes_one_trap() {
        let mut report = Report::default();
        traps_per_batch(&mut report).unwrap();
        let traps = |name: &str| {
            report
                .figures
                .iter()
                .find(|f| f.name == name)
                .map(|f| f.value.clone())
        };
        use super::super::report::Value;
        assert_eq!(traps("vits_traps_per_batch_256"), Some(Value::Int(1)));
        assert_eq!(traps("vits_traps_per_batch_1024"), Some(Value::Int(4)));
    }
}
