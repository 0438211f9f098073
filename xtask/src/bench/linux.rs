//! Linux boot time: the same Debian kernel and initramfs from QEMU's start
//! to `/init`'s `hvtest: done` (modules loaded, NVMe read, DHCP, two ping
//! rounds, a vector moved), on bare QEMU (2 CPUs, 512 MiB, one NVMe, one
//! virtio-net) and in a partition shaped the same (`tests/one-linux.toml`
//! of `qemu-virt-linux`: 2 vCPUs, 512 MiB, the board's first NVMe and
//! NIC). Boots alternate, so a load spike on the shared machine hits both.

use super::report::{median, Figure, Report};
use crate::board::Board;
use crate::linux::{self, oracle};
use crate::{build, qemu};
use std::path::Path;
use std::time::Duration;

/// Boots of each configuration.
const BOOTS: usize = 2;
/// The board and manifest of the partition boot.
const BOARD: &str = "qemu-virt-linux";
const MANIFEST: &str = "tests/one-linux.toml";
/// Time bound of one partition boot.
const TIMEOUT: Duration = Duration::from_secs(300);
/// Added to the bare kernel's command line for the like-with-like baseline.
const KVM_OFF: &str = "kvm-arm.mode=none";
/// The partition's line that ends the timed span.
const DONE: &str = "[linux-a] hvtest: done";
/// What busybox's shell prints when it is ready for input, after the
/// partition's console prefix (as the `linux-console` scenario waits for).
const SHELL_READY: &str = "Enter 'help' for a list of built-in commands.";
/// The partitions of `cargo xtask run`'s default manifest.
const RUN_PARTITIONS: [&str; 2] = ["linux-a", "linux-b"];

pub fn measure(root: &Path, report: &mut Report) -> Result<(), String> {
    let board = Board::load(root, BOARD)?;
    qemu::check(&board.qemu)?;
    linux::ensure(root)?;
    let artifacts = build::build(root, &board)?;
    let dir = artifacts.image.parent().unwrap_or(root).to_path_buf();
    let bundle = dir.join("bundle-bench-linux.bin");
    build::bundle(&artifacts, &board.dir.join(MANIFEST), &bundle)?;
    let devices = board.qemu.device_args(&linux::dir(root))?;
    let run_bundle = dir.join("bundle-bench-run.bin");
    build::bundle(&artifacts, &board.manifest_path(), &run_bundle)?;
    let (mut bare, mut partition, mut bare_el1) = (Vec::new(), Vec::new(), Vec::new());
    let mut shells = Vec::new();
    for boot in 0..BOOTS {
        let cmd = qemu::command(&board.qemu, &artifacts.image, &run_bundle, &devices);
        let log = dir.join(format!("bench-linux-run-{boot}.log"));
        shells.push(shells_boot(cmd, &log)?);
        bare.push(oracle::boot_seconds(root, &board, None)?);
        bare_el1.push(oracle::boot_seconds_with(root, &board, KVM_OFF)?);
        let cmd = qemu::command(&board.qemu, &artifacts.image, &bundle, &devices);
        let log = dir.join(format!("bench-linux-partition-{boot}.log"));
        partition.push(partition_boot(cmd, &log)?);
    }
    let (b, p, e, s) = (
        median(&mut bare),
        median(&mut partition),
        median(&mut bare_el1),
        median(&mut shells),
    );
    let mut table = format!(
        "linux ({BOOTS} boots each, alternating: bare, bare with {KVM_OFF}, partition; QEMU TCG, wall clock)\n"
    );
    for f in [
        Figure::number(
            "linux_boot_seconds_bare".into(),
            b,
            "s",
            "Debian's cloud kernel + the initramfs on bare QEMU (2 CPUs, 512 MiB, NVMe, virtio-net): QEMU start to `hvtest: done` (median)".into(),
        ),
        Figure::number(
            "linux_boot_seconds_partition".into(),
            p,
            "s",
            "the same kernel and initramfs in a partition (2 vCPUs, 512 MiB identity-mapped, the NVMe and NIC passed through, GICv4): QEMU start to the partition's `hvtest: done` (median)".into(),
        ),
        Figure::number(
            "linux_boot_ratio".into(),
            p / b,
            "ratio",
            "linux_boot_seconds_partition / linux_boot_seconds_bare".into(),
        ),
        Figure::number(
            "linux_boot_seconds_bare_kvm_off".into(),
            e,
            "s",
            format!("the bare boot with `{KVM_OFF}`: the kernel at EL2 leaves KVM (and its GICv4 support) down, as a partition's kernel at EL1 has none (median)"),
        ),
        Figure::number(
            "linux_boot_ratio_kvm_off".into(),
            p / e,
            "ratio",
            "linux_boot_seconds_partition / linux_boot_seconds_bare_kvm_off: like with like".into(),
        ),
        Figure::number(
            "run_seconds_to_both_shells".into(),
            s,
            "s",
            format!("`cargo xtask run`'s default board and manifest ({BOARD}: two Linux partitions of 2 vCPUs and 256 MiB, each with an NVMe and a NIC, the SMMU confining them): QEMU start until both partitions' shells have printed `{SHELL_READY}` (median of {BOOTS} boots, wall clock)"),
        ),
    ] {
        if let super::report::Value::Number(x) = f.value {
            table += &format!("  {:<40} {x:.2} {}\n", f.name, f.unit);
        }
        report.push(f);
    }
    report.table(table);
    Ok(())
}

/// One boot of `cargo xtask run`'s machine and manifest: seconds from
/// QEMU's start until both partitions' shells are ready.
fn shells_boot(cmd: std::process::Command, log: &Path) -> Result<f64, String> {
    let ready = |out: &str| {
        RUN_PARTITIONS
            .iter()
            .all(|p| out.contains(&format!("[{p}] {SHELL_READY}")))
    };
    let seen_at: std::cell::Cell<Option<std::time::Instant>> = std::cell::Cell::new(None);
    let started = std::time::Instant::now();
    let outcome = qemu::run_captured(cmd, TIMEOUT, &|out: &str| {
        if seen_at.get().is_none() && ready(out) {
            seen_at.set(Some(std::time::Instant::now()));
        }
        seen_at.get().is_some()
    })?;
    let _ = std::fs::write(log, &outcome.output);
    if let Some(at) = seen_at.get() {
        Ok(at.duration_since(started).as_secs_f64())
    } else {
        Err(format!(
            "`cargo xtask run`'s partitions did not both reach their shells (console: {})",
            log.display()
        ))
    }
}

/// One partition boot: seconds from QEMU's start to [`DONE`].
fn partition_boot(cmd: std::process::Command, log: &Path) -> Result<f64, String> {
    let (outcome, seconds) = qemu::run_timed(cmd, TIMEOUT, DONE)?;
    let _ = std::fs::write(log, &outcome.output);
    seconds.ok_or_else(|| {
        format!(
            "the Linux partition did not reach `{DONE}` (console: {})",
            log.display()
        )
    })
}
