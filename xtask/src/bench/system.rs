//! System figures: the hypervisor on QEMU, with the GICv4 self-test
//! (`selftest=gicv4`, manifest `tests/gicv4.toml`): edu's MSI reaches the
//! test guest as a vLPI; the guest counts the hypervisor's exits during
//! each delivery and the counter ticks from its trigger write to the end of
//! its handler.

use super::report::{median, Figure, Report, Value};
use crate::board::Board;
use crate::{build, qemu};
use std::path::Path;
use std::time::{Duration, Instant};

/// QEMU boots of the self-test (three MSIs each).
pub const BOOTS: usize = 3;
/// Time bound of one boot.
const TIMEOUT: Duration = Duration::from_secs(60);
/// The self-test's manifest, relative to the board folder.
const MANIFEST: &str = "tests/gicv4.toml";
/// QEMU arguments of the self-test (the same as the `gicv4-vlpi-...` scenario).
pub const QEMU_ARGS: [&str; 4] = ["-device", "edu", "-append", "selftest=gicv4"];

/// What the guest reported in one boot.
#[derive(Debug, Default, PartialEq)]
struct Deliveries {
    /// Hypervisor exits during each delivery.
    exits: Vec<u64>,
    /// Ticks from trigger to handler return, for deliveries whose handler
    /// had run when the guest read the counter.
    ticks: Vec<u64>,
}

/// Builds, boots the GICv4 self-test `BOOTS` times and adds the figures.
pub fn measure(root: &Path, board: &Board, report: &mut Report) -> Result<(), String> {
    qemu::check(&board.qemu)?;
    let artifacts = build::build(root, board)?;
    let bundle = artifacts.image.with_file_name("bundle-bench-gicv4.bin");
    build::bundle(&artifacts, &board.dir.join(MANIFEST), &bundle)?;
    let extra: Vec<String> = QEMU_ARGS.iter().map(|a| a.to_string()).collect();
    let mut all = Deliveries::default();
    let mut seconds = Vec::new();
    for boot in 0..BOOTS {
        let started = Instant::now();
        let outcome = qemu::run_captured(
            qemu::command(&board.qemu, &artifacts.image, &bundle, &extra),
            TIMEOUT,
            &|out: &str| out.contains("[alpha] PASS doorbell") || out.contains("FAIL"),
        )?;
        seconds.push(started.elapsed().as_secs_f64());
        let log = artifacts
            .image
            .with_file_name(format!("bench-gicv4-{boot}.log"));
        let _ = std::fs::write(&log, &outcome.output);
        if outcome.timed_out {
            return Err(format!(
                "GICv4 self-test timed out after {TIMEOUT:?} (console: {})",
                log.display()
            ));
        }
        let found = parse(&outcome.output);
        if found.exits.is_empty() {
            return Err(format!(
                "GICv4 self-test reported no delivery (console: {})",
                log.display()
            ));
        }
        all.exits.extend(found.exits);
        all.ticks.extend(found.ticks);
    }
    let msis = all.exits.len();
    let exits_per_msi = all.exits.iter().sum::<u64>() as f64 / msis as f64;
    report.push(Figure::number(
        "gicv4_exits_per_msi".into(),
        exits_per_msi,
        "exits",
        format!("hypervisor exits during one passthrough MSI delivered as a GICv4 vLPI to a resident vPE (guest's exit counter, mean of {msis} MSIs over {BOOTS} boots)"),
    ));
    report.push(Figure::int(
        "gicv4_exits_max_per_msi".into(),
        all.exits.iter().copied().max().unwrap_or(0),
        "exits",
        "the most exits seen during any one of those deliveries".into(),
    ));
    let mut ticks: Vec<f64> = all.ticks.iter().map(|&t| t as f64).collect();
    let latency = if ticks.is_empty() {
        Figure::missing(
            "msi_latency_ticks_gicv4",
            "ticks",
            "guest counter ticks from edu's trigger write to the vLPI handler's return",
            "not measured: the guest printed no tick line with the handler already run",
        )
    } else {
        Figure::number(
            "msi_latency_ticks_gicv4".into(),
            median(&mut ticks),
            "ticks",
            format!("CNTVCT ticks from edu's trigger write to the vLPI handler's return, median of {} MSIs (QEMU TCG: emulated time)", ticks.len()),
        )
    };
    report.push(latency);
    if let Some(&fastest) = all.ticks.iter().min() {
        report.push(Figure::int(
            "msi_latency_ticks_gicv4_min".into(),
            fastest,
            "ticks",
            "the fastest of those deliveries (the first of each boot is slowest: QEMU translates the handler then)".into(),
        ));
    }
    let not_yet_v3 =
        "not measurable yet (issue 6): the GICv3 software path for passthrough MSIs is not built";
    let no_bare = "not measurable yet (issue 6): the test guest has no PCI/ITS driver of its own to raise edu's MSI on QEMU without the hypervisor";
    for figure in [
        Figure::missing(
            "msi_latency_ticks_bare",
            "ticks",
            "the same latency with the test guest on QEMU without the hypervisor",
            no_bare,
        ),
        Figure::missing(
            "msi_latency_ratio_gicv4",
            "ratio",
            "msi_latency_ticks_gicv4 / msi_latency_ticks_bare",
            no_bare,
        ),
        Figure::missing(
            "gicv3_exits_per_msi",
            "exits",
            "hypervisor exits per passthrough MSI on gic-version=3",
            not_yet_v3,
        ),
        Figure::missing(
            "msi_latency_ticks_gicv3",
            "ticks",
            "the latency on the GICv3 software path",
            not_yet_v3,
        ),
        Figure::missing(
            "msi_latency_ratio_gicv3",
            "ratio",
            "msi_latency_ticks_gicv3 / msi_latency_ticks_bare",
            not_yet_v3,
        ),
        Figure::missing(
            "linux_boot_seconds",
            "s",
            "an unmodified Linux partition from power-on to its shell",
            "not measurable yet (issue 7): Linux partitions do not boot yet",
        ),
    ] {
        report.push(figure);
    }
    report.push(Figure::number(
        "qemu_gicv4_selftest_seconds".into(),
        median(&mut seconds),
        "s",
        "wall time of one QEMU boot from start to the guest's doorbell PASS (median)".into(),
    ));
    let mut table = format!(
        "system (QEMU {}, -M {}, -smp {}; {BOOTS} boots of the GICv4 self-test, {} MSIs)\n",
        board.name, board.qemu.machine, board.qemu.smp, msis
    );
    for figure in report.figures.iter().filter(|f| {
        f.name.starts_with("gicv")
            || f.name.starts_with("msi_")
            || f.name.starts_with("linux_")
            || f.name.starts_with("qemu_")
    }) {
        let value = match &figure.value {
            Value::Int(n) => format!("{n} {}", figure.unit),
            Value::Number(x) => format!("{x:.2} {}", figure.unit),
            Value::Missing(why) => why.clone(),
        };
        table += &format!("  {:<28} {value}\n", figure.name);
    }
    report.table(table);
    Ok(())
}

/// The guest's `vlpi` lines in a console log.
fn parse(out: &str) -> Deliveries {
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
        let found = parse(out);
        assert_eq!(found.exits, vec![0, 2]);
        assert_eq!(found.ticks, vec![1234]);
    }
}
