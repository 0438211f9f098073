//! Linux NVMe read throughput in a partition with the SMMU against the same
//! partition without it, as a ratio of one run. The same kernel, initramfs,
//! 2 vCPUs and 512 MiB; the partition gets only its NVMe disk (host
//! 00:02.0) and `/init`'s `hvtest=nvme-read` reads the whole disk with
//! O_DIRECT (1 MiB blocks) 64 times per round, timing each round on the
//! guest's `/proc/uptime`:
//! - with: the board's machine (`iommu=smmuv3`), RAM not identity-mapped,
//!   the disk's DMA translated and confined by the SMMU's stage 2
//!   (`tests/bench-nvme-smmu.toml`);
//! - without: the same machine minus `iommu=smmuv3`, RAM identity-mapped at
//!   0x5000_0000 and `dma = "unconfined"` (`tests/bench-nvme-no-smmu.toml`).
//!
//! Boots alternate, so a load spike on the shared machine hits both.

use super::report::{median, Figure, Report, Value};
use crate::board::Board;
use crate::{build, linux, qemu};
use std::path::Path;
use std::time::Duration;

/// Boots of each configuration.
const BOOTS: usize = 3;
/// The board and manifests.
const BOARD: &str = "qemu-virt-linux";
const WITH_SMMU: &str = "tests/bench-nvme-smmu.toml";
const WITHOUT_SMMU: &str = "tests/bench-nvme-no-smmu.toml";
/// What the board's machine loses for the run without the SMMU.
const SMMU_OPTION: &str = ",iommu=smmuv3";
/// Time bound of one boot.
const TIMEOUT: Duration = Duration::from_secs(300);
/// The partition's last line.
const DONE: &str = "[linux-a] hvtest: done";
/// The start of a round's line, then `I bytes B centiseconds C`.
const ROUND: &str = "[linux-a] hvtest: nvme-read round ";

pub fn measure(root: &Path, report: &mut Report) -> Result<(), String> {
    let board = Board::load(root, BOARD)?;
    qemu::check(&board.qemu)?;
    if !board.qemu.machine.contains(SMMU_OPTION) {
        return Err(format!(
            "board {BOARD}: its machine {:?} has no `{SMMU_OPTION}` to compare against",
            board.qemu.machine
        ));
    }
    linux::ensure(root)?;
    let artifacts = build::build(root, &board)?;
    let dir = artifacts.image.parent().unwrap_or(root).to_path_buf();
    let devices = board.qemu.device_args(&linux::dir(root))?;
    let mut no_smmu_qemu = board.qemu.clone();
    no_smmu_qemu.machine = board.qemu.machine.replace(SMMU_OPTION, "");
    let configs = [
        ("smmu", WITH_SMMU, &board.qemu),
        ("no-smmu", WITHOUT_SMMU, &no_smmu_qemu),
    ];
    let mut bundles = Vec::new();
    for (tag, manifest, _) in &configs {
        let bundle = dir.join(format!("bundle-bench-nvme-{tag}.bin"));
        build::bundle(&artifacts, &board.dir.join(manifest), &bundle)?;
        bundles.push(bundle);
    }
    let (mut smmu, mut no_smmu) = (Vec::new(), Vec::new());
    for boot in 0..BOOTS {
        for ((tag, _, q), bundle) in configs.iter().zip(&bundles) {
            let cmd = qemu::command(q, &artifacts.image, bundle, &devices);
            let log = dir.join(format!("bench-nvme-{tag}-{boot}.log"));
            let rates = boot_rates(cmd, &log)?;
            if *tag == "smmu" {
                smmu.extend(rates);
            } else {
                no_smmu.extend(rates);
            }
        }
    }
    let (s, n) = (median(&mut smmu), median(&mut no_smmu));
    let mut table = format!(
        "linux nvme read ({BOOTS} boots each, alternating; per boot 5 rounds of 64 whole-disk O_DIRECT reads, bs=1M, each timed on the guest's /proc/uptime; median MiB/s of all rounds; QEMU TCG)\n"
    );
    for f in [
        Figure::number(
            "linux_nvme_read_mib_s_smmu".into(),
            s,
            "MiB/s",
            format!("a Linux partition (2 vCPUs, 512 MiB not identity-mapped) reading its passed-through NVMe disk with O_DIRECT, the disk's DMA through the SMMU's stage 2 (-M {}): median over the rounds of all boots", board.qemu.machine),
        ),
        Figure::number(
            "linux_nvme_read_mib_s_no_smmu".into(),
            n,
            "MiB/s",
            format!("the same partition, RAM identity-mapped and dma = \"unconfined\", on the machine without the SMMU (-M {}): median over the rounds of all boots", no_smmu_qemu.machine),
        ),
        Figure::number(
            "linux_nvme_smmu_throughput_ratio".into(),
            s / n,
            "ratio",
            "linux_nvme_read_mib_s_smmu / linux_nvme_read_mib_s_no_smmu (below 1: the SMMU costs throughput)".into(),
        ),
    ] {
        if let Value::Number(x) = f.value {
            table += &format!("  {:<40} {x:.2} {}\n", f.name, f.unit);
        }
        report.push(f);
    }
    report.table(table);
    Ok(())
}

/// One boot: the MiB/s of each of its rounds (a round of 64 reads of the
/// 4 MiB disk takes over a second here: its 10 ms resolution weighs under
/// 1 %).
fn boot_rates(cmd: std::process::Command, log: &Path) -> Result<Vec<f64>, String> {
    let (outcome, seconds) = qemu::run_timed(cmd, TIMEOUT, DONE)?;
    let _ = std::fs::write(log, &outcome.output);
    let fail = |why: &str| format!("{why} (console: {})", log.display());
    if seconds.is_none() {
        return Err(fail(&format!("the Linux partition did not reach `{DONE}`")));
    }
    if outcome
        .output
        .lines()
        .any(|l| l.contains("[linux-a] hvtest: nvme-read") && l.contains("FAILED"))
    {
        return Err(fail("an NVMe read failed"));
    }
    let rates: Vec<f64> = rounds(&outcome.output)
        .iter()
        .filter_map(|r| rate(std::slice::from_ref(r)))
        .collect();
    if rates.is_empty() {
        return Err(fail("no `nvme-read round` line with a time"));
    }
    Ok(rates)
}

/// MiB/s of `rounds` together; `None` without a measurable time.
fn rate(rounds: &[(u64, u64)]) -> Option<f64> {
    let bytes: u64 = rounds.iter().map(|r| r.0).sum();
    let cs: u64 = rounds.iter().map(|r| r.1).sum();
    (cs > 0).then(|| bytes as f64 / (1 << 20) as f64 / (cs as f64 / 100.0))
}

/// (bytes, centiseconds) of every round line in `console`.
fn rounds(console: &str) -> Vec<(u64, u64)> {
    console
        .lines()
        .filter_map(|line| {
            let rest = &line[line.find(ROUND)? + ROUND.len()..];
            let words: Vec<&str> = rest.split_whitespace().collect();
            match words.as_slice() {
                [_, "bytes", bytes, "centiseconds", cs] => {
                    Some((bytes.parse().ok()?, cs.parse().ok()?))
                }
                _ => None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{rate, rounds};

    #[test]
    fn round_lines_give_mib_per_second() {
        let console = "hypervisor: boot\n\
            [linux-a] hvtest: nvme-read: /dev/nvme0n1 4194304 bytes, 4 MiB blocks per pass, 64 passes per round\n\
            [linux-a] hvtest: nvme-read round 1 bytes 67108864 centiseconds 50\n\
            [linux-a] hvtest: nvme-read round 2 bytes 67108864 centiseconds 0\n\
            [linux-a] hvtest: nvme-read round 3: 1 of 64 reads came short FAILED\n\
            [linux-a] hvtest: nvme-read round 4 bytes 67108864 centiseconds 200\n";
        let found = rounds(console);
        assert_eq!(found, vec![(64 << 20, 50), (64 << 20, 0), (64 << 20, 200)]);
        assert_eq!(rate(&found), Some(192.0 / 2.5));
        assert_eq!(rate(&found[1..2]), None);
        assert_eq!(rate(&[]), None);
    }
}
