//! `cargo xtask bench`: measured figures, never pass/fail. Speed and memory
//! targets live here, not in tests.
//!
//! - host: the vITS (hypervisor crate as a library, in this process) driven
//!   by guest commands: ns per command against the number of mapped
//!   events, traps per batch, heap bytes per event (`vits_host`); the
//!   worst trap under a command flood, in ns and events touched, with the
//!   default work budget and unbounded (`vits_flood`);
//! - system: the hypervisor on QEMU: exits and latency per passthrough MSI
//!   the guest drives through its own vITS, on GICv4 and GICv3 hosts, against
//!   the same guest without the hypervisor (`system`, `bare`); the GICv4
//!   self-test; the hypervisor's image and static size;
//! - icount: the same passthrough guest, hypervisor and bare, under QEMU's
//!   instruction counting: instructions per MSI, per null hypercall, per
//!   command batch, deterministic run to run (`icount`);
//! - wfi: exits and doorbells per wake-up from WFI by a passthrough MSI
//!   under each residency policy (`wfi`);
//! - linux: the wall-clock boot of the same Debian kernel and initramfs on
//!   bare QEMU (also with `kvm-arm.mode=none`) and in a partition, and
//!   their ratios (`linux`);
//! - nvme: Linux NVMe read throughput in a partition with the SMMU against
//!   the same partition without it, and their ratio (`nvme`).
//!
//! A table for people goes to stdout; the same figures, with the command
//! and the machine, to `target/bench.json`. docs/figures.md explains each.

mod alloc_count;
mod bare;
mod driver;
mod el2;
mod icount;
mod linux;
mod nvme;
mod report;
mod system;
mod vits_flood;
mod vits_host;
mod wfi;

use crate::board::Board;
use crate::Options;
use report::Report;
use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Set in the optimized child so that it does not start another one.
const CHILD_ENV: &str = "XTASK_BENCH_OPTIMIZED";

/// Runs the bench (`--host-only` / `--system-only` pick one half).
pub fn run(root: &Path, opts: &Options, args: &[String]) -> Result<ExitCode, String> {
    // `cargo xtask` builds xtask without optimization; timing the vITS
    // there would time the debug build. Re-run in an optimized build.
    if cfg!(debug_assertions) && std::env::var_os(CHILD_ENV).is_none() {
        return rerun_optimized(root, args);
    }
    let started = Instant::now();
    let board = Board::load(root, opts.board())?;
    let mut report = Report::default();
    report.info("command", format!("cargo xtask {}", args.join(" ")));
    report.info("date_utc", utc_now());
    machine_info(&board, &mut report);
    report.info(
        "method_vits_ns_per_cmd",
        format!(
            "median over {} timed traps (5 rounds interleaving the commands, after {} warm-up traps each) of the wall time (std::time::Instant) of one GITS_CWRITER write that drains {} queued commands of one type, divided by {}; state restored untimed between traps; events picked pseudo-randomly over all mapped ones; optimized build",
            vits_host::RUNS, vits_host::WARMUP, vits_host::BATCH, vits_host::BATCH
        ),
    );
    if !opts.system_only {
        eprintln!("xtask bench: host figures (vITS)");
        vits_host::measure(&mut report)?;
        eprintln!("xtask bench: host figures (vITS flood: worst trap)");
        vits_flood::measure(&mut report)?;
    }
    // `--filter WORD` runs the system sections whose name contains WORD:
    // msi (wall clock and self-test), icount, wfi, linux, nvme.
    let want = |section: &str| opts.filter.as_deref().is_none_or(|f| section.contains(f));
    if !opts.host_only {
        let (wall, icount) = (want("msi"), want("icount"));
        if wall || icount {
            eprintln!("xtask bench: system figures (QEMU: passthrough on GICv4 and GICv3, bare metal, GICv4 self-test; instruction counts)");
            system::measure(root, &board, &mut report, wall, icount)?;
        }
        if want("wfi") {
            eprintln!("xtask bench: GICv4 residency in WFI (resident, doorbell)");
            wfi::measure(root, &board, &mut report)?;
        }
        if want("el2") {
            eprintln!("xtask bench: instructions at EL2 per exit (QEMU execution-log profile)");
            el2::measure_all(root, &board, system::GICV3_MACHINE, &mut report)?;
        }
        if want("linux") {
            eprintln!("xtask bench: Linux boot time (bare QEMU and in a partition)");
            linux::measure(root, &mut report)?;
        }
        if want("nvme") {
            eprintln!(
                "xtask bench: Linux NVMe read throughput (a partition with and without the SMMU)"
            );
            nvme::measure(root, &mut report)?;
        }
    }
    report.info(
        "bench_seconds",
        format!("{:.1}", started.elapsed().as_secs_f64()),
    );
    for table in &report.tables {
        println!("{table}");
    }
    let out = root.join("target").join("bench.json");
    std::fs::write(&out, report.to_json()).map_err(|e| format!("{}: {e}", out.display()))?;
    println!(
        "{} figures in {} ({} not measurable yet); took {:.0} s",
        report.figures.len(),
        out.display(),
        report
            .figures
            .iter()
            .filter(|f| matches!(f.value, report::Value::Missing(_)))
            .count(),
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

/// Runs `cargo run --release -p xtask -- <args>` and passes its status on.
fn rerun_optimized(root: &Path, args: &[String]) -> Result<ExitCode, String> {
    eprintln!("xtask bench: building xtask optimized (timings of a debug build mean little)");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root)
        .args(["run", "--quiet", "--release", "--package", "xtask", "--"])
        .args(args)
        .env(CHILD_ENV, "1")
        .status()
        .map_err(|e| format!("cargo: {e}"))?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The machine the figures come from.
fn machine_info(board: &Board, report: &mut Report) {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    report.info("host_cpus", cpus.to_string());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    report.info("host_cpu_model", model);
    report.info(
        "host_os_arch",
        format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
    );
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into());
    report.info("host_load_average_at_start", load);
    let qemu = Command::new(&board.qemu.binary)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_string))
        .unwrap_or_else(|| "not found".into());
    report.info("qemu_version", qemu);
    report.info(
        "qemu_machine",
        format!(
            "-M {} -cpu {} -smp {} -m {} (TCG)",
            board.qemu.machine, board.qemu.cpu, board.qemu.smp, board.qemu.memory
        ),
    );
}

/// The current UTC time as `YYYY-MM-DDTHH:MM:SSZ`.
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's
/// days-to-civil algorithm, proleptic Gregorian calendar).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::civil_from_days;

    #[test]
    fn civil_dates_of_known_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
    }
}
