//! System figures: the hypervisor on QEMU.
//!
//! - The guest-driven passthrough scenario (`tests/passthrough.toml`): the
//!   test guest is given edu, programs its MSI with its own vITS doorbell,
//!   maps it with its own MAPD/MAPC/MAPTI and triggers it 16 times a boot,
//!   printing the hypervisor's exits and the counter ticks from its trigger
//!   write to its handler's return for each. On the GICv4 board
//!   (`gic-version=4`) the MSIs arrive as vLPIs; on `gic-version=3` through
//!   the software path (physical LPI at EL2, injected through the vGIC).
//! - The same guest on QEMU without the hypervisor (`bare`): the baseline
//!   the two latencies are divided by.
//! - The GICv4 self-test (`selftest=gicv4`, `tests/gicv4.toml`): the
//!   hypervisor maps edu's MSI itself (`_selftest` figures).

use super::bare;
use super::icount;
use super::report::{median, Figure, Report, Value};
use crate::board::Board;
use crate::{build, qemu};
use std::path::Path;
use std::time::{Duration, Instant};

/// QEMU boots of each configuration.
pub const BOOTS: usize = 3;
/// Time bound of one boot.
const TIMEOUT: Duration = Duration::from_secs(60);
/// The self-test's manifest, relative to the board folder.
const SELFTEST_MANIFEST: &str = "tests/gicv4.toml";
/// QEMU arguments of the self-test (the same as the `gicv4-vlpi-...` scenario).
pub const SELFTEST_ARGS: [&str; 4] = ["-device", "edu", "-append", "selftest=gicv4"];
/// The passthrough scenario's manifest.
const PASSTHROUGH_MANIFEST: &str = "tests/passthrough.toml";
/// The GICv4 self-test's machine (the board's, without the SMMU).
const SELFTEST_MACHINE: &str = "virt,gic-version=4,virtualization=on";
/// The `-gicv3` scenarios' machine.
pub const GICV3_MACHINE: &str = "virt,gic-version=3,virtualization=on,iommu=smmuv3";
/// The guest's last passthrough line: the measured rounds are all printed.
const PASSTHROUGH_DONE: &str = "PASS passthrough: MAPTI again";

/// What the guest reported over the boots of one configuration.
#[derive(Debug, Default, PartialEq)]
struct Deliveries {
    /// Hypervisor exits during each delivery.
    exits: Vec<u64>,
    /// Ticks from trigger to handler return, for deliveries whose handler
    /// had run when the guest read the counter.
    ticks: Vec<u64>,
    /// Deliveries whose handler had not run by the second counter read.
    late: usize,
    /// Wall time of each boot.
    seconds: Vec<f64>,
}

impl Deliveries {
    fn add(&mut self, other: Deliveries) {
        self.exits.extend(other.exits);
        self.ticks.extend(other.ticks);
        self.late += other.late;
    }

    fn median_ticks(&self) -> Option<f64> {
        let mut t: Vec<f64> = self.ticks.iter().map(|&t| t as f64).collect();
        (!t.is_empty()).then(|| median(&mut t))
    }
}

/// Builds, boots every configuration `BOOTS` times and adds the figures:
/// the wall-clock ones and the self-test if `wall`, the instruction counts
/// (`icount`) if `icount`.
pub fn measure(
    root: &Path,
    board: &Board,
    report: &mut Report,
    wall: bool,
    icount: bool,
) -> Result<(), String> {
    qemu::check(&board.qemu)?;
    let artifacts = build::build(root, board)?;
    sizes(&artifacts, report)?;
    let first = report.figures.len();
    let dir = artifacts.image.parent().unwrap_or(root).to_path_buf();

    // The guest-driven passthrough scenario, GICv4 and GICv3 hosts.
    let bundle = dir.join("bundle-bench-passthrough.bin");
    build::bundle(&artifacts, &board.dir.join(PASSTHROUGH_MANIFEST), &bundle)?;
    let extra = vec!["-device".to_string(), "edu".to_string()];
    let v4q = board.qemu.clone();
    let mut v3q = board.qemu.clone();
    v3q.machine = GICV3_MACHINE.into();
    let mut v4 = Deliveries::default();
    let mut v3 = Deliveries::default();
    // Bare metal: the same guest (linked at 0x5020_0000) without the
    // hypervisor, on both GIC models.
    let guest_elf = root
        .join("target")
        .join("guest-hi")
        .join(build::TARGET)
        .join("release")
        .join("testguest");
    let shim_path = dir.join("bench-bare-shim.bin");
    let shim = bare::elf_entry(&guest_elf)
        .and_then(|entry| {
            std::fs::write(&shim_path, bare::shim(entry))
                .map_err(|e| format!("{}: {e}", shim_path.display()))
        })
        .map(|()| shim_path.clone());
    let mut bare3 = Deliveries::default();
    let mut bare4 = Deliveries::default();
    let mut bare_error: Option<String> = shim.as_ref().err().cloned();
    // Instructions per MSI, the deterministic figures (QEMU -icount).
    let measure_icount = |shim: &Path, report: &mut Report| {
        let configs = icount::configs(
            board,
            GICV3_MACHINE,
            &artifacts.image,
            &bundle,
            &guest_elf,
            shim,
        );
        icount::measure(&configs, &dir, report)
    };
    if !wall {
        if icount {
            let shim = shim.as_ref().map_err(|e| format!("bare-metal shim: {e}"))?;
            let table = measure_icount(shim, report)?;
            report.table(table);
            memory(&dir, report);
        }
        return Ok(());
    }
    // Boots interleave the configurations so that a load spike on this
    // shared machine hits all of them, not one.
    for boot in 0..BOOTS {
        for (tag, q, into) in [("gicv4", &v4q, &mut v4), ("gicv3", &v3q, &mut v3)] {
            let cmd = qemu::command(q, &artifacts.image, &bundle, &extra);
            let found = boot_once(
                cmd,
                &dir.join(format!("bench-passthrough-{tag}-{boot}.log")),
            )?;
            into.add(found.0);
            into.seconds.push(found.1);
        }
        if let Ok(shim) = &shim {
            for (tag, machine, into) in [
                ("gicv3", GICV3_MACHINE, &mut bare3),
                ("gicv4", board.qemu.machine.as_str(), &mut bare4),
            ] {
                if bare_error.is_some() {
                    break;
                }
                let cmd = bare::command(board, machine, &guest_elf, shim);
                match boot_once(cmd, &dir.join(format!("bench-bare-{tag}-{boot}.log"))) {
                    Ok((found, secs)) => {
                        into.add(found);
                        into.seconds.push(secs);
                    }
                    Err(e) => bare_error = Some(e),
                }
            }
        }
    }
    for (tag, d) in [("gicv4", &v4), ("gicv3", &v3)] {
        let path = if tag == "gicv4" {
            "GICv4 direct injection (vLPI to a resident vPE)"
        } else {
            "the GICv3 software path (physical LPI at EL2, injected through the vGIC)"
        };
        let msis = d.exits.len();
        report.push(Figure::number(
            format!("{tag}_exits_per_msi"),
            d.exits.iter().sum::<u64>() as f64 / msis as f64,
            "exits",
            format!("hypervisor exits during one passthrough MSI the guest drives through its own vITS, by {path} (guest's exit counter, mean of {msis} MSIs over {BOOTS} boots of the passthrough scenario)"),
        ));
        report.push(Figure::int(
            format!("{tag}_exits_max_per_msi"),
            d.exits.iter().copied().max().unwrap_or(0),
            "exits",
            "the most exits seen during any one of those deliveries".into(),
        ));
    }
    let bare_why = |e: &str| format!("not measured: the bare-metal boot failed: {e}");
    let latency = |name: &str,
                   d: &Deliveries,
                   what: &str,
                   missing: Option<String>|
     -> Vec<Figure> {
        match (missing, d.median_ticks()) {
            (None, Some(m)) => vec![
                Figure::number(
                    name.into(),
                    m,
                    "ticks",
                    format!("CNTVCT ticks from edu's trigger write to the MSI handler's return, {what}; median of {} MSIs over {BOOTS} boots ({} more had not reached the handler by the second counter read; QEMU TCG: emulated time)", d.ticks.len(), d.late),
                ),
                Figure::int(
                    format!("{name}_min"),
                    d.ticks.iter().copied().min().unwrap_or(0),
                    "ticks",
                    "the fastest of those deliveries".into(),
                ),
            ],
            (why, _) => vec![Figure::missing(
                name,
                "ticks",
                what,
                &why.unwrap_or_else(|| "not measured: the guest printed no tick line with the handler already run".into()),
            )],
        }
    };
    let bare_missing = bare_error.as_deref().map(bare_why);
    for f in latency("msi_latency_ticks_gicv4", &v4, "passthrough scenario, GICv4 direct injection", None)
        .into_iter()
        .chain(latency("msi_latency_ticks_gicv3", &v3, "passthrough scenario, GICv3 software path (gic-version=3)", None))
        .chain(latency("msi_latency_ticks_bare", &bare3, "the same guest on QEMU without the hypervisor, gic-version=3 (physical LPI straight to EL1)", bare_missing.clone()))
        .chain(latency("msi_latency_ticks_bare_gicv4_machine", &bare4, "the same guest on QEMU without the hypervisor, on the GICv4 board's machine (gic-version=4, physical LPI straight to EL1)", bare_missing.clone()))
    {
        report.push(f);
    }
    let ratio = |name: &str, num: &Deliveries, den: &Deliveries, what: &str| match (
        &bare_missing,
        num.median_ticks(),
        den.median_ticks(),
    ) {
        (None, Some(n), Some(d)) if d > 0.0 => {
            Figure::number(name.into(), n / d, "ratio", what.into())
        }
        (why, _, _) => Figure::missing(
            name,
            "ratio",
            what,
            why.as_deref()
                .unwrap_or("not measured: a latency above is missing"),
        ),
    };
    report.push(ratio(
        "msi_latency_ratio_gicv4",
        &v4,
        &bare4,
        "msi_latency_ticks_gicv4 / msi_latency_ticks_bare_gicv4_machine: GICv4 direct against bare metal on the same QEMU machine (gic-version=4)",
    ));
    report.push(ratio(
        "msi_latency_ratio_gicv3",
        &v3,
        &bare3,
        "msi_latency_ticks_gicv3 / msi_latency_ticks_bare: GICv3 software path against bare metal on the same QEMU machine (gic-version=3)",
    ));
    report.push(ratio(
        "msi_latency_ratio_gicv4_to_bare_gicv3",
        &v4,
        &bare3,
        "msi_latency_ticks_gicv4 / msi_latency_ticks_bare: GICv4 direct against bare metal on gic-version=3 (QEMU's GICv4 model is not the same code as its GICv3 one)",
    ));
    for (name, d) in [
        ("qemu_passthrough_gicv4_seconds", &v4),
        ("qemu_passthrough_gicv3_seconds", &v3),
    ] {
        let mut s = d.seconds.clone();
        report.push(Figure::number(
            name.into(),
            median(&mut s),
            "s",
            "wall time of one QEMU boot of the passthrough scenario to the guest's last PASS (median)".into(),
        ));
    }

    // The GICv4 self-test: the hypervisor maps edu's MSI itself.
    selftest(&artifacts, board, &dir, report)?;

    let icount_table = match &shim {
        Ok(shim) if icount => Some(measure_icount(shim, report)?),
        _ => None,
    };
    let icount_first = report.figures.len()
        - if icount_table.is_some() {
            icount::FIGURES
        } else {
            0
        };

    let mut table = format!(
        "system (QEMU {}, TCG; {BOOTS} boots each, interleaved: the passthrough scenario on -M {} -smp {} and on -M {GICV3_MACHINE}, {} + {} MSIs; the same guest without the hypervisor on both machines (-smp {}), {} + {} MSIs; the GICv4 self-test; wall clock, secondary to the instruction counts)\n",
        board.name,
        board.qemu.machine,
        board.qemu.smp,
        v4.exits.len(),
        v3.exits.len(),
        board.qemu.smp,
        bare3.exits.len(),
        bare4.exits.len(),
    );
    for figure in &report.figures[first..icount_first] {
        let value = match &figure.value {
            Value::Int(n) => format!("{n} {}", figure.unit),
            Value::Number(x) => format!("{x:.2} {}", figure.unit),
            Value::Missing(why) => why.clone(),
        };
        table += &format!("  {:<40} {value}\n", figure.name);
    }
    report.table(table);
    if let Some(table) = icount_table {
        report.table(table);
    }
    memory(&dir, report);
    Ok(())
}

/// The hypervisor's memory per partition, from the console of a
/// passthrough boot this run made (both partitions of tests/passthrough.toml).
fn memory(dir: &Path, report: &mut Report) {
    let console = ["bench-icount-gicv4-0.log", "bench-passthrough-gicv4-0.log"]
        .iter()
        .find_map(|name| std::fs::read_to_string(dir.join(name)).ok());
    if let Some(console) = console {
        let table = memory_figures(&console, report);
        if !table.is_empty() {
            report.table(format!(
                "hypervisor memory per partition at boot (tests/passthrough.toml, its console)\n{table}"
            ));
        }
    }
}

/// The hypervisor's size: the Image a boot loader loads, and what its ELF's
/// loadable segments occupy in memory once loaded (text, data, and the
/// zeroed statics: stacks, per-CPU blocks and heap arena included).
fn sizes(artifacts: &build::Artifacts, report: &mut Report) -> Result<(), String> {
    let image = std::fs::metadata(&artifacts.image)
        .map_err(|e| format!("{}: {e}", artifacts.image.display()))?
        .len();
    let elf =
        std::fs::read(&artifacts.elf).map_err(|e| format!("{}: {e}", artifacts.elf.display()))?;
    let (file, memory) = load_sizes(&elf)
        .ok_or_else(|| format!("{}: not an ELF64 file", artifacts.elf.display()))?;
    report.push(Figure::int(
        "hypervisor_image_bytes".into(),
        image,
        "bytes",
        format!(
            "size of the raw arm64 Image of the hypervisor ({})",
            artifacts.image.display()
        ),
    ));
    report.push(Figure::int(
        "hypervisor_static_bytes".into(),
        memory,
        "bytes",
        "memory of the hypervisor ELF's PT_LOAD segments (p_memsz): code, data and zeroed statics (stacks, per-CPU blocks, heap arena)".into(),
    ));
    let mut table = format!(
        "size\n  hypervisor_image_bytes                   {image} bytes\n  hypervisor_static_bytes                  {memory} bytes (of which {file} loaded from the file)\n"
    );
    // Per physical CPU (each runs one vCPU): its EL2 stack and its per-CPU
    // block, from the ELF's symbol sizes.
    let stacks = super::el2::object_size(&elf, "STACKS");
    let percpu = super::el2::object_size(&elf, "hypervisor::kernel::percpu::PERCPU");
    if let (Some(stacks), Some(percpu)) = (stacks, percpu) {
        let per_cpu = (stacks + percpu) / HYPERVISOR_MAX_CPUS;
        report.push(Figure::int(
            "hypervisor_static_bytes_per_cpu".into(),
            per_cpu,
            "bytes",
            format!("static memory per physical CPU (= per vCPU: one vCPU per CPU): its EL2 stack and its per-CPU block (ELF symbols STACKS, {stacks} bytes, and PERCPU, {percpu} bytes, for {HYPERVISOR_MAX_CPUS} CPUs)"),
        ));
        table += &format!(
            "  hypervisor_static_bytes_per_cpu          {per_cpu} bytes (EL2 stack + per-CPU block)\n"
        );
    }
    report.table(table);
    Ok(())
}

/// The hypervisor's compiled-in CPU count (`arch::MAX_CPUS` is this constant).
const HYPERVISOR_MAX_CPUS: u64 = hypervisor::ids::CpuIndex::COUNT as u64;

/// The hypervisor's memory per partition at boot, from its console: the
/// `partition <name>: hypervisor memory: heap <n> bytes, frames <k> KiB
/// ..., <v> vCPUs` lines and the `heap: <n> bytes live` line.
pub fn memory_figures(console: &str, report: &mut Report) -> String {
    let mut table = String::new();
    for line in console.lines() {
        let Some(at) = line.find("partition ") else {
            continue;
        };
        let rest = &line[at + "partition ".len()..];
        let Some((name, rest)) = rest.split_once(": hypervisor memory: heap ") else {
            continue;
        };
        let mut words = rest.split([' ', ',']);
        let heap = words.next().and_then(|w| w.parse::<u64>().ok());
        let frames = rest
            .split("frames ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|w| w.parse::<u64>().ok());
        let vcpus = rest
            .rsplit(", ")
            .next()
            .and_then(|r| r.split_whitespace().next())
            .and_then(|w| w.parse::<u64>().ok());
        if let (Some(heap), Some(frames), Some(vcpus)) = (heap, frames, vcpus) {
            report.push(Figure::int(
                format!("hypervisor_heap_bytes_partition_{name}"),
                heap,
                "bytes",
                format!("hypervisor heap taken by building partition {name} ({vcpus} vCPUs) at boot (its console line)"),
            ));
            report.push(Figure::int(
                format!("hypervisor_frame_kib_partition_{name}"),
                frames,
                "KiB",
                format!("physical frames the hypervisor took for partition {name} besides its RAM (stage-2 tables and the like) at boot"),
            ));
            table += &format!(
                "  partition {name}: heap {heap} bytes, frames {frames} KiB, {vcpus} vCPUs\n"
            );
        }
    }
    if let Some(live) = console.lines().find_map(|l| {
        l.split("heap: ")
            .nth(1)?
            .split_whitespace()
            .next()?
            .parse::<u64>()
            .ok()
    }) {
        report.push(Figure::int(
            "hypervisor_heap_bytes_at_boot".into(),
            live,
            "bytes",
            "hypervisor heap live once the partitions are built (its `heap:` console line)".into(),
        ));
        table += &format!("  heap live at boot: {live} bytes\n");
    }
    table
}

/// Sums of p_filesz and p_memsz over an ELF64 file's PT_LOAD segments.
fn load_sizes(elf: &[u8]) -> Option<(u64, u64)> {
    let u16_at = |at: usize| Some(u16::from_le_bytes(elf.get(at..at + 2)?.try_into().ok()?));
    let u32_at = |at: usize| Some(u32::from_le_bytes(elf.get(at..at + 4)?.try_into().ok()?));
    let u64_at = |at: usize| Some(u64::from_le_bytes(elf.get(at..at + 8)?.try_into().ok()?));
    if elf.get(..4)? != b"\x7fELF" || *elf.get(4)? != 2 {
        return None;
    }
    let phoff = usize::try_from(u64_at(0x20)?).ok()?;
    let (size, count) = (usize::from(u16_at(0x36)?), usize::from(u16_at(0x38)?));
    let (mut file, mut memory) = (0u64, 0u64);
    for i in 0..count {
        let at = phoff + i * size;
        if u32_at(at)? == 1 {
            file += u64_at(at + 0x20)?;
            memory += u64_at(at + 0x28)?;
        }
    }
    Some((file, memory))
}

/// One boot of a passthrough configuration, to the guest's last PASS line.
fn boot_once(cmd: std::process::Command, log: &Path) -> Result<(Deliveries, f64), String> {
    let started = Instant::now();
    let outcome = qemu::run_captured(cmd, TIMEOUT, &|out: &str| {
        out.contains(PASSTHROUGH_DONE) || out.contains("FAIL")
    })?;
    let secs = started.elapsed().as_secs_f64();
    let _ = std::fs::write(log, &outcome.output);
    if outcome.timed_out {
        return Err(format!(
            "passthrough boot timed out after {TIMEOUT:?} (console: {})",
            log.display()
        ));
    }
    if let Some(line) = outcome.output.lines().find(|l| l.contains("FAIL")) {
        return Err(format!("`{line}` (console: {})", log.display()));
    }
    let found = parse_passthrough(&outcome.output);
    if found.exits.is_empty() {
        return Err(format!(
            "the passthrough guest reported no delivery (console: {})",
            log.display()
        ));
    }
    Ok((found, secs))
}

/// The GICv4 self-test figures (`_selftest`).
fn selftest(
    artifacts: &build::Artifacts,
    board: &Board,
    dir: &Path,
    report: &mut Report,
) -> Result<(), String> {
    let bundle = dir.join("bundle-bench-gicv4.bin");
    build::bundle(artifacts, &board.dir.join(SELFTEST_MANIFEST), &bundle)?;
    let extra: Vec<String> = SELFTEST_ARGS.iter().map(|a| a.to_string()).collect();
    let mut all = Deliveries::default();
    // The EL2 self-test drives edu with no partition owning it: with the
    // SMMU its StreamID would abort, so this machine has none.
    let mut q = board.qemu.clone();
    q.machine = SELFTEST_MACHINE.into();
    for boot in 0..BOOTS {
        let started = Instant::now();
        let outcome = qemu::run_captured(
            qemu::command(&q, &artifacts.image, &bundle, &extra),
            TIMEOUT,
            &|out: &str| out.contains("[alpha] PASS doorbell") || out.contains("FAIL"),
        )?;
        all.seconds.push(started.elapsed().as_secs_f64());
        let log = dir.join(format!("bench-gicv4-{boot}.log"));
        let _ = std::fs::write(&log, &outcome.output);
        if outcome.timed_out {
            return Err(format!(
                "GICv4 self-test timed out after {TIMEOUT:?} (console: {})",
                log.display()
            ));
        }
        let found = parse_selftest(&outcome.output);
        if found.exits.is_empty() {
            return Err(format!(
                "GICv4 self-test reported no delivery (console: {})",
                log.display()
            ));
        }
        all.add(found);
    }
    let msis = all.exits.len();
    report.push(Figure::number(
        "gicv4_selftest_exits_per_msi".into(),
        all.exits.iter().sum::<u64>() as f64 / msis as f64,
        "exits",
        format!("hypervisor exits during one MSI the hypervisor itself mapped as a GICv4 vLPI (self-test; mean of {msis} MSIs over {BOOTS} boots)"),
    ));
    report.push(match all.median_ticks() {
        Some(m) => Figure::number(
            "msi_latency_ticks_gicv4_selftest".into(),
            m,
            "ticks",
            format!("CNTVCT ticks from edu's trigger write to the vLPI handler's return in the self-test, median of {} MSIs", all.ticks.len()),
        ),
        None => Figure::missing(
            "msi_latency_ticks_gicv4_selftest",
            "ticks",
            "the self-test's latency",
            "not measured: the guest printed no tick line with the handler already run",
        ),
    });
    report.push(Figure::number(
        "qemu_gicv4_selftest_seconds".into(),
        median(&mut all.seconds),
        "s",
        "wall time of one QEMU boot from start to the guest's doorbell PASS (median)".into(),
    ));
    Ok(())
}

/// The passthrough guest's measured rounds in a console log (`[alpha] `
/// under the hypervisor, unprefixed on bare metal).
fn parse_passthrough(out: &str) -> Deliveries {
    let mut found = Deliveries::default();
    for line in out.lines() {
        let line = line.strip_prefix("[alpha] ").unwrap_or(line);
        if !line.starts_with("passthrough: MSI round ") {
            continue;
        }
        if let Some(exits) = number_after(line, "hypervisor exits meanwhile: ") {
            found.exits.push(exits);
        }
        if let Some(ticks) = number_after(line, "to handler return: ") {
            if line.ends_with("(handler ran: true)") {
                found.ticks.push(ticks);
            } else {
                found.late += 1;
            }
        }
    }
    found
}

/// The self-test's `vlpi` lines in a console log.
fn parse_selftest(out: &str) -> Deliveries {
    let mut found = Deliveries::default();
    for line in out.lines() {
        let Some(line) = line.strip_prefix("[alpha] ") else {
            continue;
        };
        if line.contains("vlpi: round") {
            if let Some(exits) = number_after(line, "hypervisor exits during delivery: ") {
                found.exits.push(exits);
            }
            if line.ends_with("(handler ran: true)") {
                if let Some(ticks) = number_after(line, "to handler return: ") {
                    found.ticks.push(ticks);
                }
            }
        }
    }
    found
}

/// The decimal number right after `marker` in `line`.
fn number_after(line: &str, marker: &str) -> Option<u64> {
    let rest = &line[line.find(marker)? + marker.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn memory_lines_become_figures() {
        let mut report = super::Report::default();
        let table = super::memory_figures(
            "partition alpha: hypervisor memory: heap 1234 bytes, frames 56 KiB (stage 2, tables), 2 vCPUs\nheap: 9999 bytes live of 8388608 once the partitions are built\n",
            &mut report,
        );
        assert!(table.contains("alpha"));
        let names: Vec<&str> = report.figures.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "hypervisor_heap_bytes_partition_alpha",
                "hypervisor_frame_kib_partition_alpha",
                "hypervisor_heap_bytes_at_boot"
            ]
        );
    }

    use super::*;

    #[test]
    fn parses_exits_and_ticks_of_the_vlpi_rounds() {
        let out = "\
[alpha] PASS vlpi: round 0: vINTID 8192 taken through ICV_IAR1_EL1, hypervisor exits during delivery: 0
[alpha] vlpi: round 0: ticks from trigger write to handler return: 1234 (handler ran: true)
[beta] tick 0
[alpha] FAIL vlpi: round 1: INTID 8192, hypervisor exits during delivery: 2
[alpha] vlpi: round 1: ticks from trigger write to handler return: 5 (handler ran: false)
";
        let found = parse_selftest(out);
        assert_eq!(found.exits, vec![0, 2]);
        assert_eq!(found.ticks, vec![1234]);
    }

    #[test]
    fn parses_passthrough_rounds_with_and_without_the_partition_prefix() {
        let out = "\
[alpha] PASS passthrough: MSI round 0: vINTID 8192 taken once on vCPU 0 (hypervisor exits meanwhile: 1)
[alpha] passthrough: MSI round 0: hypervisor exits meanwhile: 1, ticks from trigger write to handler return: 900 (handler ran: true)
[beta] passthrough: MSI round 0: hypervisor exits meanwhile: 7, ticks from trigger write to handler return: 1 (handler ran: true)
passthrough: MSI round 3: hypervisor exits meanwhile: 0, ticks from trigger write to handler return: 40 (handler ran: false)
passthrough: MSI round 4: hypervisor exits meanwhile: 0, ticks from trigger write to handler return: 30 (handler ran: true)
";
        let found = parse_passthrough(out);
        assert_eq!(found.exits, vec![1, 0, 0]);
        assert_eq!(found.ticks, vec![900, 30]);
        assert_eq!(found.late, 1);
    }
}
