//! Instructions per passthrough MSI: the passthrough scenario and the same
//! guest on bare QEMU, run under QEMU's instruction counting
//! (`-icount shift=0`: one TCG thread, every instruction advances virtual
//! time by 1 ns), so the counter ticks between the guest's trigger write
//! and its handler's return count the instructions executed meanwhile, by
//! the guest and the hypervisor alike, and come out the same run after run.
//!
//! Fair baseline: the bare run and the hypervisor run use the same QEMU
//! machine and `-smp`. CPUs that are not part of the measurement do not
//! run: on bare QEMU they stay powered off (the guest starts no secondary
//! there); under the hypervisor the neighbour partition's guest has powered
//! itself off (`scenario=hello`), so its CPUs wait in the hypervisor's run
//! loop. Whatever a waiting CPU still executes in that loop counts (one
//! instruction stream), and shows in the figures.

use super::bare;
use super::report::{median, Figure, Report, Value};
use crate::board::Board;
use crate::qemu;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Figures `measure` adds: per configuration the median, max, hypercall,
/// boot spread, the batches and the CWRITER writes; two ratios, the
/// hypervisor's share of the software path.
pub const FIGURES: usize = 4 * (4 + BATCHES.len() + CWRITERS.len()) + 3;
/// Boots of each configuration: the figures must agree between them.
pub const BOOTS: usize = 2;
/// QEMU's instruction counting: 2^0 ns of virtual time per instruction.
pub const ICOUNT: [&str; 2] = ["-icount", "shift=0"];
/// Time bound of one boot (instruction counting runs one TCG thread).
const TIMEOUT: Duration = Duration::from_secs(120);
/// The guest's last passthrough line.
const DONE: &str = "PASS passthrough: MAPTI again";

/// The instruction counts of one configuration over its boots.
#[derive(Debug, Default, PartialEq)]
pub struct Counts {
    /// Instructions per delivery, all boots.
    pub all: Vec<u64>,
    /// The median of each boot.
    pub boot_medians: Vec<f64>,
    /// Instructions of each null hypercall round trip, all boots.
    pub hypercalls: Vec<u64>,
    /// Instructions of each command batch of `BATCHES[i]` SYNCs, all boots.
    pub batches: [Vec<u64>; BATCHES.len()],
    /// Batch samples left out because vCPU 1 ran meanwhile.
    pub batches_left_out: [usize; BATCHES.len()],
    /// Instructions of each CWRITER write announcing `CWRITERS[i]` SYNCs.
    pub cwriters: [Vec<u64>; CWRITERS.len()],
}

/// Sizes of the timed command batches (the guest's SYNC batches).
pub const BATCHES: [usize; 4] = [1, 8, 16, 64];
/// Sizes of the batches whose CWRITER write alone is timed.
pub const CWRITERS: [usize; 3] = [1, 8, 64];

impl Counts {
    fn median(&self) -> f64 {
        let mut all: Vec<f64> = self.all.iter().map(|&n| n as f64).collect();
        median(&mut all)
    }

    /// Largest relative difference between two boots' medians.
    fn spread(&self) -> f64 {
        let max = self.boot_medians.iter().copied().fold(f64::MIN, f64::max);
        let min = self.boot_medians.iter().copied().fold(f64::MAX, f64::min);
        if min > 0.0 {
            max / min - 1.0
        } else {
            0.0
        }
    }
}

/// One configuration: a name for figures, what it is, its command.
pub struct Config {
    pub tag: &'static str,
    pub what: String,
    pub command: Box<dyn Fn() -> Command>,
}

/// The four configurations: the hypervisor on the GICv4 and GICv3 machines,
/// the same guest bare on both.
#[allow(clippy::too_many_arguments)]
pub fn configs(
    board: &Board,
    gicv3_machine: &'static str,
    image: &Path,
    bundle: &Path,
    guest_elf: &Path,
    shim: &Path,
) -> Vec<Config> {
    let v4 = board.qemu.clone();
    let mut v3 = board.qemu.clone();
    v3.machine = gicv3_machine.into();
    let extra = vec!["-device".to_string(), "edu".to_string()];
    let mut configs = Vec::new();
    for (tag, q, what) in [
        (
            "gicv4",
            v4,
            "the passthrough scenario, GICv4 direct injection",
        ),
        ("gicv3", v3, "the passthrough scenario, GICv3 software path"),
    ] {
        let (image, bundle, extra) = (image.to_path_buf(), bundle.to_path_buf(), extra.clone());
        configs.push(Config {
            tag,
            what: format!("{what} (-M {} -smp {})", q.machine, q.smp),
            command: Box::new(move || {
                let mut cmd = qemu::command(&q, &image, &bundle, &extra);
                cmd.args(ICOUNT);
                cmd
            }),
        });
    }
    for (tag, machine) in [
        ("bare_gicv4_machine", board.qemu.machine.clone()),
        ("bare", gicv3_machine.to_string()),
    ] {
        let (q, guest_elf, shim) = (
            board.qemu.clone(),
            guest_elf.to_path_buf(),
            shim.to_path_buf(),
        );
        configs.push(Config {
            tag,
            what: format!(
                "the same guest on QEMU without the hypervisor (-M {machine} -smp {})",
                q.smp
            ),
            command: Box::new(move || {
                let mut cmd = bare::command_for(&q, &machine, &guest_elf, &shim);
                cmd.args(ICOUNT);
                cmd
            }),
        });
    }
    configs
}

/// Boots every configuration `BOOTS` times under instruction counting and
/// adds the figures; returns the table lines.
pub fn measure(configs: &[Config], logs: &Path, report: &mut Report) -> Result<String, String> {
    let mut counts: Vec<Counts> = configs.iter().map(|_| Counts::default()).collect();
    for boot in 0..BOOTS {
        for (config, into) in configs.iter().zip(&mut counts) {
            let log = logs.join(format!("bench-icount-{}-{boot}.log", config.tag));
            let (found, hypercalls, output) = boot_once((config.command)(), &log)?;
            for (i, n) in BATCHES.iter().enumerate() {
                let marker = format!("passthrough: command batch of {n}: ");
                let (kept, left_out) = parse_batches(&output, &marker);
                into.batches[i].extend(kept);
                into.batches_left_out[i] += left_out;
            }
            for (i, n) in CWRITERS.iter().enumerate() {
                let marker = format!("passthrough: CWRITER write of {n}: ");
                into.cwriters[i].extend(parse_marked(&output, &marker));
            }
            let mut per_boot: Vec<f64> = found.iter().map(|&n| n as f64).collect();
            into.boot_medians.push(median(&mut per_boot));
            into.all.extend(found);
            into.hypercalls.extend(hypercalls);
        }
    }
    let first = report.figures.len();
    for (config, c) in configs.iter().zip(&counts) {
        let msis = c.all.len();
        report.push(Figure::number(
            format!("{}_instructions_per_msi", config.tag),
            c.median(),
            "instructions",
            format!("instructions executed (QEMU -icount shift=0: guest and hypervisor, all CPUs) from edu's trigger write to the MSI handler's return, {}; median of {msis} MSIs over {BOOTS} boots", config.what),
        ));
        report.push(Figure::int(
            format!("{}_instructions_max_per_msi", config.tag),
            c.all.iter().copied().max().unwrap_or(0),
            "instructions",
            "the most of those deliveries".into(),
        ));
        let mut hypercalls: Vec<f64> = c.hypercalls.iter().map(|&n| n as f64).collect();
        report.push(if hypercalls.is_empty() {
            Figure::missing(
                &format!("{}_hypercall_instructions", config.tag),
                "instructions",
                "a null hypercall's round trip",
                "not measured: the guest printed no hypercall line",
            )
        } else {
            Figure::number(
                format!("{}_hypercall_instructions", config.tag),
                median(&mut hypercalls),
                "instructions",
                format!("instructions of one exit-count hypercall's round trip from the guest (HVC, the exit's entry and dispatch, the return), {}; median of {} over {BOOTS} boots", config.what, hypercalls.len()),
            )
        });
        for (i, n) in BATCHES.iter().enumerate() {
            let mut batch: Vec<f64> = c.batches[i].iter().map(|&n| n as f64).collect();
            let name = format!("{}_instructions_per_batch_of_{n}", config.tag);
            let left_out = c.batches_left_out[i];
            report.push(if batch.is_empty() {
                Figure::missing(&name, "instructions", "a command batch", "not measured: the guest printed no batch line during which vCPU 1 stayed still")
            } else {
                Figure::number(
                    name,
                    median(&mut batch),
                    "instructions",
                    format!("instructions from the guest's first queue write of {n} SYNC commands to its CREADR read that sees them done (CWRITER write and CREADR polling, trapped under the hypervisor), {}; median of {} samples over {BOOTS} boots, {left_out} more left out because vCPU 1 ran meanwhile (one-thread icount runs a CPU for a whole time slice: such a sample counts vCPU 1's wait loop too)", config.what, batch.len()),
                )
            });
        }
        for (i, n) in CWRITERS.iter().enumerate() {
            let mut writes: Vec<f64> = c.cwriters[i].iter().map(|&n| n as f64).collect();
            let name = format!("{}_instructions_per_cwriter_write_of_{n}", config.tag);
            report.push(if writes.is_empty() {
                Figure::missing(&name, "instructions", "a CWRITER write", "not measured: the guest printed no CWRITER line")
            } else {
                Figure::number(
                    name,
                    median(&mut writes),
                    "instructions",
                    format!("instructions of the guest's one GITS_CWRITER write announcing {n} queued SYNC commands (barrier, write; under the hypervisor its trap, which processes the {n} commands, and the return), {}; median of {} boots", config.what, writes.len()),
                )
            });
        }
        report.push(Figure::number(
            format!("{}_instructions_boot_spread", config.tag),
            c.spread() * 100.0,
            "%",
            format!("largest difference between the {BOOTS} boots' medians, relative"),
        ));
    }
    let by_tag = |tag: &str| {
        configs
            .iter()
            .position(|c| c.tag == tag)
            .and_then(|i| counts.get(i))
            .map(Counts::median)
    };
    for (name, num, den, what) in [
        ("msi_instructions_ratio_gicv4", "gicv4", "bare_gicv4_machine", "gicv4_instructions_per_msi / bare_gicv4_machine_instructions_per_msi: GICv4 direct injection against bare metal, same machine and -smp"),
        ("msi_instructions_ratio_gicv3", "gicv3", "bare", "gicv3_instructions_per_msi / bare_instructions_per_msi: GICv3 software path against bare metal, same machine and -smp"),
    ] {
        report.push(match (by_tag(num), by_tag(den)) {
            (Some(n), Some(d)) if d > 0.0 => Figure::number(name.into(), n / d, "ratio", what.into()),
            _ => Figure::missing(name, "ratio", what, "not measured"),
        });
    }
    // Where the software path's instructions go: the guest runs the same
    // code on both (trigger, exception entry, handler), so the difference
    // is the hypervisor's: the physical LPI's exit to EL2, its translation
    // and injection through a list register, and the return.
    let what = "gicv3_instructions_per_msi - bare_instructions_per_msi: instructions the hypervisor adds to one software-injected MSI (exit to EL2, LPI -> vITS route, list-register injection, return), the guest's own being the same";
    report.push(match (by_tag("gicv3"), by_tag("bare")) {
        (Some(v3), Some(bare)) => Figure::number(
            "gicv3_el2_instructions_per_msi".into(),
            v3 - bare,
            "instructions",
            what.into(),
        ),
        _ => Figure::missing(
            "gicv3_el2_instructions_per_msi",
            "instructions",
            what,
            "not measured",
        ),
    });
    let mut table = format!(
        "instructions per passthrough MSI (QEMU -icount shift=0, one TCG thread; {BOOTS} boots each; same machine and -smp for bare and hypervisor, CPUs outside the measurement idle)\n"
    );
    for figure in &report.figures[first..] {
        let value = match &figure.value {
            Value::Int(n) => format!("{n} {}", figure.unit),
            Value::Number(x) => format!("{x:.2} {}", figure.unit),
            Value::Missing(why) => why.clone(),
        };
        table += &format!("  {:<44} {value}\n", figure.name);
    }
    Ok(table)
}

/// One boot: the instructions of each delivery whose handler had run, and
/// of each null hypercall.
fn boot_once(cmd: Command, log: &Path) -> Result<(Vec<u64>, Vec<u64>, String), String> {
    let outcome = qemu::run_captured(cmd, TIMEOUT, &|out: &str| {
        out.contains(DONE) || out.contains("FAIL")
    })?;
    let _ = std::fs::write(log, &outcome.output);
    if outcome.timed_out {
        return Err(format!(
            "icount boot timed out after {TIMEOUT:?} (console: {})",
            log.display()
        ));
    }
    if let Some(line) = outcome.output.lines().find(|l| l.contains("FAIL")) {
        return Err(format!("`{line}` (console: {})", log.display()));
    }
    let found = parse(&outcome.output);
    if found.is_empty() {
        return Err(format!(
            "the guest reported no delivery with its counter frequency (console: {})",
            log.display()
        ));
    }
    let hypercalls = parse_hypercalls(&outcome.output);
    Ok((found, hypercalls, outcome.output))
}

/// Instructions of each `<marker>` batch line during which the guest's
/// vCPU 1 stayed still, and how many lines were left out because it ran
/// (`(vCPU 1 ran: true)`): QEMU's one TCG thread runs one CPU at a time,
/// each for a time slice (the time to the next virtual timer deadline over
/// the CPU count), and vCPU 1 spins in its wait loop, so a sample that
/// spans a switch to it counts a whole slice of that loop (millions of
/// instructions) that has nothing to do with the batch.
fn parse_batches(out: &str, marker: &str) -> (Vec<u64>, usize) {
    const RAN: &str = "(vCPU 1 ran: true)";
    let (ran, still): (Vec<&str>, Vec<&str>) = out
        .lines()
        .filter(|line| line.contains(marker))
        .partition(|line| line.contains(RAN));
    (parse_marked(&still.join("\n"), marker), ran.len())
}

/// Instructions of each null hypercall round trip in a console log.
fn parse_hypercalls(out: &str) -> Vec<u64> {
    parse_marked(out, "passthrough: hypercall round trip: ")
}

/// Instructions of each `<marker><ticks> ticks at <hz> Hz` line.
fn parse_marked(out: &str, marker: &str) -> Vec<u64> {
    out.lines()
        .filter_map(|line| {
            let rest = &line[line.find(marker)? + marker.len()..];
            let mut words = rest.split_whitespace();
            let ticks = words.next()?.parse::<u64>().ok()?;
            let (Some("ticks"), Some("at"), Some(hz)) = (words.next(), words.next(), words.next())
            else {
                return None;
            };
            instructions(ticks, hz.parse().ok()?)
        })
        .collect()
}

/// Instructions in `ticks` of a counter at `hz`, at 1 instruction per ns.
fn instructions(ticks: u64, hz: u64) -> Option<u64> {
    if hz == 0 {
        return None;
    }
    u64::try_from(u128::from(ticks) * 1_000_000_000 / u128::from(hz)).ok()
}

/// Instructions of each measured delivery in a console log: ticks at the
/// counter's frequency, at 1 instruction per ns of virtual time.
fn parse(out: &str) -> Vec<u64> {
    const MARKER: &str = "ticks from trigger write to handler return: ";
    let mut found = Vec::new();
    for line in out.lines() {
        if !line.contains("passthrough: MSI round ") || !line.ends_with("(handler ran: true)") {
            continue;
        }
        let Some(at) = line.find(MARKER) else {
            continue;
        };
        let mut words = line[at + MARKER.len()..].split_whitespace();
        let ticks = words.next().and_then(|w| w.parse::<u64>().ok());
        let hz = match (words.next(), words.next()) {
            (Some("at"), Some(hz)) => hz.parse::<u64>().ok(),
            _ => None,
        };
        if let Some(n) = ticks.zip(hz).and_then(|(t, hz)| instructions(t, hz)) {
            found.push(n);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_become_instructions_at_the_counter_frequency() {
        let out = "\
[alpha] passthrough: MSI round 3: hypervisor exits meanwhile: 0, ticks from trigger write to handler return: 900 at 1000000000 Hz (handler ran: true)
passthrough: MSI round 4: hypervisor exits meanwhile: 0, ticks from trigger write to handler return: 30 at 62500000 Hz (handler ran: true)
passthrough: MSI round 5: hypervisor exits meanwhile: 0, ticks from trigger write to handler return: 30 at 62500000 Hz (handler ran: false)
passthrough: MSI round 6: hypervisor exits meanwhile: 0, ticks from trigger write to handler return: 30 (handler ran: true)
";
        assert_eq!(parse(out), vec![900, 480]);
    }

    #[test]
    fn hypercall_lines_become_instructions() {
        let out = "\
[alpha] passthrough: hypercall round trip: 1200 ticks at 1000000000 Hz
passthrough: hypercall round trip: 3 ticks at 62500000 Hz
passthrough: hypercall round trip: 3 ticks
";
        assert_eq!(parse_hypercalls(out), vec![1200, 48]);
    }

    #[test]
    fn batch_samples_during_which_vcpu1_ran_are_left_out() {
        let out = "\
passthrough: command batch of 16: 100 ticks at 1000000000 Hz (vCPU 1 ran: false)
passthrough: command batch of 16: 12600000 ticks at 1000000000 Hz (vCPU 1 ran: true)
passthrough: command batch of 1: 7 ticks at 1000000000 Hz (vCPU 1 ran: false)
passthrough: command batch of 16: 6 ticks at 62500000 Hz
";
        let marker = "passthrough: command batch of 16: ";
        assert_eq!(parse_batches(out, marker), (vec![100, 96], 1));
    }

    #[test]
    fn spread_is_the_relative_difference_of_boot_medians() {
        let c = Counts {
            all: vec![100, 101],
            boot_medians: vec![100.0, 101.0],
            hypercalls: vec![],
            batches: Default::default(),
            batches_left_out: Default::default(),
            cwriters: Default::default(),
        };
        assert!((c.spread() - 0.01).abs() < 1e-9);
    }
}
