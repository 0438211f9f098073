//! Linux on bare QEMU, without the hypervisor: the oracle for what the
//! guest's `/init` must report (the same kernel and initramfs later run in
//! a partition) and the baseline of its boot time.
//!
//! QEMU gets the board's machine (GICv4 with ITS, EL2 present, `-cpu max`)
//! with 2 CPUs and 512 MiB, one NVMe disk and one virtio-net-pci NIC on
//! user networking, and `hvtest=auto` on the kernel command line.

use super::{disk, LinuxGuest};
use crate::board::Board;
use crate::qemu::{self, Outcome};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Time bound of one boot: TCG on a loaded 2-core machine is slow.
pub const TIMEOUT: Duration = Duration::from_secs(180);
/// The NVMe disk's name (`target/linux/nvme-bare.img`).
pub const DISK: &str = "bare";
/// CPUs of the bare machine.
const SMP: &str = "2";
/// RAM of the bare machine.
const MEMORY: &str = "512M";
/// The console of [`boot_seconds`]'s boot, in `target/linux/`.
pub const BARE_LOG: &str = "bare-qemu.log";
/// The line `/init` prints last before powering off.
const DONE: &str = "hvtest: done";

/// One bare boot: what QEMU printed and how long the guest took.
pub struct BareBoot {
    /// The captured console.
    pub outcome: Outcome,
    /// Wall-clock seconds from starting QEMU to `hvtest: done`, if seen.
    pub seconds_to_done: Option<f64>,
}

/// The QEMU command of a bare boot with `bootargs` (`hvtest=...`).
pub fn command(board: &Board, guest: &LinuxGuest, disk_image: &Path, bootargs: &str) -> Command {
    let q = &board.qemu;
    let mut cmd = Command::new(&q.binary);
    cmd.args(["-M", &q.machine, "-cpu", &q.cpu, "-smp", SMP, "-m", MEMORY]);
    // The board's extra arguments include `-nic none`: the only NIC is ours.
    cmd.arg("-nographic").args(&q.args);
    // A kernel panic or reset ends QEMU instead of rebooting in a loop.
    cmd.arg("-no-reboot");
    cmd.arg("-kernel").arg(&guest.image);
    cmd.arg("-initrd").arg(&guest.initramfs);
    cmd.args(["-append", &format!("console=ttyAMA0 panic=5 {bootargs}")]);
    cmd.args(disk::qemu_args(disk_image, "hvtest-bare"));
    cmd.args([
        "-netdev",
        "user,id=net0",
        "-device",
        "virtio-net-pci,netdev=net0",
    ]);
    cmd
}

/// Boots with `hvtest=auto`, writes the console to `log`, and times the
/// boot to `hvtest: done`.
pub fn boot(
    board: &Board,
    guest: &LinuxGuest,
    linux_dir: &Path,
    log: &Path,
) -> Result<BareBoot, String> {
    qemu::check(&board.qemu)?;
    let disk_image = disk::nvme_image(linux_dir, DISK)?;
    let cmd = command(board, guest, &disk_image, "hvtest=auto");
    let (outcome, seconds_to_done) = qemu::run_timed(cmd, TIMEOUT, DONE)?;
    let _ = std::fs::write(log, &outcome.output);
    Ok(BareBoot {
        outcome,
        seconds_to_done,
    })
}

/// Boots and checks; the seconds to `hvtest: done` on success (for the
/// bench's baseline and `cargo xtask linux --bare`).
pub fn measure(
    board: &Board,
    guest: &LinuxGuest,
    linux_dir: &Path,
    log: &Path,
) -> Result<f64, String> {
    let run = boot(board, guest, linux_dir, log)?;
    check(&run.outcome, guest).map_err(|e| format!("{e} (console: {})", log.display()))?;
    run.seconds_to_done
        .ok_or_else(|| format!("no `{DONE}` (console: {})", log.display()))
}

/// Seconds from starting QEMU to `hvtest: done` of a checked bare boot,
/// the baseline for Linux in a partition (`cargo xtask linux --bare`, the
/// bench); the console goes to `target/linux/bare-qemu.log`.
pub fn boot_seconds(root: &Path, board: &Board, series: Option<&str>) -> Result<f64, String> {
    let guest = super::ensure_series(root, series)?;
    let dir = super::dir(root);
    let log = match series {
        None => dir.join(BARE_LOG),
        Some(s) => dir.join(format!("bare-qemu-{s}.log")),
    };
    measure(board, &guest, &dir, &log)
}

/// [`boot_seconds`] with `extra` added to the kernel command line (the
/// bench's like-with-like baseline adds `kvm-arm.mode=none`, so that the
/// bare kernel at EL2 does not bring up KVM, which a partition's kernel at
/// EL1 never does); the console goes to `target/linux/bare-qemu-extra.log`.
pub fn boot_seconds_with(root: &Path, board: &Board, extra: &str) -> Result<f64, String> {
    let guest = super::ensure(root)?;
    let dir = super::dir(root);
    let log = dir.join("bare-qemu-extra.log");
    let disk_image = disk::nvme_image(&dir, DISK)?;
    let cmd = command(board, &guest, &disk_image, &format!("hvtest=auto {extra}"));
    let (outcome, seconds) = qemu::run_timed(cmd, TIMEOUT, DONE)?;
    let _ = std::fs::write(&log, &outcome.output);
    check(&outcome, &guest).map_err(|e| format!("{e} (console: {})", log.display()))?;
    seconds.ok_or_else(|| format!("no `{DONE}` (console: {})", log.display()))
}

/// The system scenario: fetch (printing the resolved versions), boot,
/// check; the boot time is printed, never asserted.
pub fn scenario(root: &Path, board: &Board, log: &Path) -> Result<(), String> {
    scenario_series(root, board, log, None)
}

/// [`scenario`] with kernel series `series` (`None`: the default).
pub fn scenario_series(
    root: &Path,
    board: &Board,
    log: &Path,
    series: Option<&str>,
) -> Result<(), String> {
    let guest = super::ensure_series(root, series)?;
    let seconds = measure(board, &guest, &super::dir(root), log)?;
    println!("bare boot to hvtest done: {seconds:.1} s");
    Ok(())
}

/// Checks everything `/init` must report on bare QEMU.
pub fn check(o: &Outcome, guest: &LinuxGuest) -> Result<(), String> {
    let out = &o.output;
    if o.timed_out {
        return Err(format!(
            "timed out after {TIMEOUT:?}; last line: {}",
            out.lines().last().unwrap_or("(none)")
        ));
    }
    check_init(out, guest, DISK)?;
    match o.exit_code {
        Some(0) => Ok(()),
        other => Err(format!(
            "QEMU exit status {other:?}, expected 0 (poweroff through PSCI)"
        )),
    }
}

/// Checks one Linux console (`out`: only that guest's lines) for what
/// `/init` must report, with its NVMe disk called `disk`: the kernel and
/// packages, GICv3 and ITS probed without ITS errors, the modules, the
/// NVMe marker read back, both PCI functions on MSI-X through the ITS,
/// two good pings, the NIC vector moved and counted on its new CPU, and
/// `hvtest: done`. Returns the moved vector (irq, before, after).
pub fn check_init(out: &str, guest: &LinuxGuest, disk: &str) -> Result<(u32, u64, u64), String> {
    let moved = check_probe(out, guest, disk)?;
    expect(out, DONE)?;
    Ok(moved)
}

/// [`check_init`] without `hvtest: done`: one boot's report, for a boot
/// that reboots instead of finishing.
pub fn check_probe(out: &str, guest: &LinuxGuest, disk: &str) -> Result<(u32, u64, u64), String> {
    if let Some(bad) = out.lines().find(|l| {
        l.contains("Kernel panic")
            || l.contains("Internal error: Oops")
            || l.contains("BUG: ")
            || l.contains("Call trace:")
    }) {
        return Err(format!("the kernel reported: {bad}"));
    }
    if let Some(bad) = out
        .lines()
        .find(|l| l.contains("hvtest: ") && l.contains("FAILED"))
    {
        return Err(format!("/init reported: {bad}"));
    }
    expect(out, &format!("hvtest: kernel {}", guest.release))?;
    // The initramfs is the one built from the packages just resolved.
    expect(out, &format!("hvtest: package {}", guest.kernel.resolved))?;
    expect(out, &format!("hvtest: package {}", guest.busybox.resolved))?;
    let dmesg: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split_once("hvtest: dmesg: ").map(|(_, d)| d))
        .collect();
    if !dmesg.iter().any(|l| l.contains("GICv3")) {
        return Err("no GICv3 line in the kernel log".into());
    }
    if !dmesg.iter().any(|l| l.contains("ITS@")) {
        return Err("the kernel log does not show the ITS probed (no `ITS@` line)".into());
    }
    expect(out, "hvtest: ITS errors: none")?;
    for module in &guest.modules {
        expect(out, &format!("hvtest: module {module} loaded"))?;
    }
    expect(
        out,
        &format!("hvtest: nvme0n1 marker: {}", disk::marker(disk)),
    )?;
    for (what, ids) in [
        ("NVMe controller", &["1b36:0x0010"][..]),
        ("virtio-net", &["1af4:0x1000", "1af4:0x1041"][..]),
    ] {
        let line = out
            .lines()
            .find(|l| l.contains("hvtest: pci ") && ids.iter().any(|id| l.contains(id)))
            .ok_or(format!("no {what} in the PCI report"))?;
        if line.ends_with("msi_irqs none") {
            return Err(format!("{what} uses no MSI/MSI-X: {line}"));
        }
    }
    // MSI-X through the ITS: 6.1 names the chip ITS-MSI, 6.12 ITS-PCI-MSIX-<bdf>.
    let its_lines = |name: &str| {
        out.lines()
            .filter(|l| (l.contains("ITS-MSI") || l.contains("ITS-PCI-MSIX")) && l.contains(name))
            .count()
    };
    if its_lines("nvme") == 0 || its_lines("virtio") == 0 {
        return Err("/proc/interrupts has no ITS MSI-X vectors for both nvme and virtio".into());
    }
    let pings = out.matches("hvtest: ping 10.0.2.2: ok").count();
    if pings < 2 {
        return Err(format!(
            "expected two successful pings (before and after the vector moved), saw {pings}"
        ));
    }
    moved_vector(out)
}

/// From `hvtest: nic vector: irq N counted on cpu T: A -> B`: the vector
/// counted on its new CPU.
fn moved_vector(out: &str) -> Result<(u32, u64, u64), String> {
    let line = out
        .lines()
        .filter_map(|l| l.split_once("hvtest: nic vector: irq ").map(|(_, r)| r))
        .find(|r| r.contains(" counted on cpu "))
        .ok_or("no `nic vector: ... counted on cpu` line: the moved vector did not count")?;
    let (cpu, counts) = line
        .split_once(" counted on cpu ")
        .and_then(|(_, rest)| rest.split_once(": "))
        .ok_or_else(|| format!("malformed line: {line}"))?;
    let (before, after) = counts
        .split_once(" -> ")
        .and_then(|(a, b)| Some((a.trim().parse::<u64>().ok()?, b.trim().parse::<u64>().ok()?)))
        .ok_or_else(|| format!("malformed counts: {line}"))?;
    let cpu: u32 = cpu.parse().map_err(|_| format!("malformed cpu: {line}"))?;
    if after <= before {
        return Err(format!(
            "the moved vector did not count on cpu {cpu}: {before} -> {after}"
        ));
    }
    Ok((cpu, before, after))
}

fn expect(out: &str, needle: &str) -> Result<(), String> {
    if out.contains(needle) {
        Ok(())
    } else {
        Err(format!("expected `{needle}` in the console"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linux::fetch::{Fetched, Origin, Resolved};

    /// The `/init` lines of a real bare boot (6.1.0-56, QEMU 10.0.2), the
    /// kernel log trimmed to two of its GIC/ITS lines.
    const CONSOLE: &str = "\
[    2.560167] Checked W+X mappings: passed, no W+X pages found
hvtest: kernel 6.1.0-56-cloud-arm64
hvtest: package linux-image-6.1.0-56-cloud-arm64 6.1.192-2
hvtest: package busybox-static 1:1.35.0-4+deb12u1+b1
hvtest: cmdline console=ttyAMA0 panic=5 hvtest=auto
hvtest: cpus online 0-1 (2 in /proc/interrupts)
hvtest: dmesg: [    0.000000] GICv3: 256 SPIs implemented
hvtest: dmesg: [    0.000000] ITS@0x0000000008080000: Single VMOVP capable
hvtest: ITS errors: none
hvtest: module virtio_ring loaded
hvtest: module virtio loaded
hvtest: module virtio_net loaded
hvtest: pci 0000:00:00.0 0x1b36:0x0008 class 0x060000 driver none irq 0 msi_irqs none
hvtest: pci 0000:00:01.0 0x1b36:0x0010 class 0x010802 driver nvme irq 18 msi_irqs 19 21 22
hvtest: pci 0000:00:02.0 0x1af4:0x1000 class 0x020000 driver virtio-pci irq 23 msi_irqs 24 25 26
hvtest: nvme0n1 marker: HVTEST-NVME-MARKER disk=bare
hvtest: nvme0n1 md5 of the first 64 KiB: a859fa62320d48c38f1b7d1fb0b5afc4
hvtest: nvme irq 19 (nvme0q0) cpu0=12 cpu1=0
hvtest: network: eth0 configured by DHCP
hvtest: network: 10.0.2.15/24
hvtest: ping 10.0.2.2: ok (5/5 replies)
hvtest: nic vector: irq 25 (virtio0-input.0) on cpu 0 before: cpu0=8 cpu1=0
hvtest: nic vector: irq 25 moved to cpu 1 (smp_affinity 2, effective 1)
hvtest: ping 10.0.2.2: ok (5/5 replies)
hvtest: nic vector: irq 25 after: cpu0=8 cpu1=6
hvtest: nic vector: irq 25 counted on cpu 1: 0 -> 6
hvtest: /proc/interrupts:
           CPU0       CPU1
 19:         12          0   ITS-MSI 16384 Edge      nvme0q0
 25:          8          6   ITS-MSI 32769 Edge      virtio0-input.0
hvtest: done
[    6.118003] reboot: Power down
";

    fn guest() -> LinuxGuest {
        let fetched = |package: &str, version: &str| Fetched {
            resolved: Resolved {
                package: package.into(),
                version: version.into(),
            },
            tree: "/nonexistent".into(),
            origin: Origin::Cached,
        };
        LinuxGuest {
            kernel: fetched("linux-image-6.1.0-56-cloud-arm64", "6.1.192-2"),
            busybox: fetched("busybox-static", "1:1.35.0-4+deb12u1+b1"),
            release: "6.1.0-56-cloud-arm64".into(),
            image: "/nonexistent".into(),
            initramfs: "/nonexistent".into(),
            modules: vec!["virtio_ring".into(), "virtio".into(), "virtio_net".into()],
        }
    }

    fn outcome(output: &str) -> Outcome {
        Outcome {
            output: output.into(),
            exit_code: Some(0),
            timed_out: false,
        }
    }

    #[test]
    fn a_real_bare_boot_passes() {
        assert_eq!(check(&outcome(CONSOLE), &guest()), Ok(()));
    }

    #[test]
    fn each_missing_marker_fails_naming_it() {
        for (line, reason) in [
            (
                "hvtest: kernel 6.1.0-56",
                "hvtest: kernel 6.1.0-56-cloud-arm64",
            ),
            (
                "hvtest: package linux-image",
                "hvtest: package linux-image-6.1.0-56",
            ),
            ("GICv3: 256", "GICv3"),
            ("ITS@0x", "ITS probed"),
            ("ITS errors: none", "ITS errors: none"),
            ("module virtio loaded", "module virtio loaded"),
            ("0x1b36:0x0010", "NVMe controller"),
            ("nvme0n1 marker", "HVTEST-NVME-MARKER disk=bare"),
            ("ITS-MSI 16384", "no ITS MSI-X vectors"),
            ("counted on cpu", "did not count"),
            ("hvtest: done", "hvtest: done"),
        ] {
            let without: String = CONSOLE
                .lines()
                .filter(|l| !l.contains(line))
                .map(|l| format!("{l}\n"))
                .collect();
            let err = check(&outcome(&without), &guest()).unwrap_err();
            assert!(err.contains(reason), "without {line:?}: {err}");
        }
    }

    #[test]
    fn failed_lines_panics_timeouts_and_exit_status_fail() {
        let g = guest();
        let failed = CONSOLE.replace(
            "hvtest: ping 10.0.2.2: ok (5/5 replies)\nhvtest: nic vector: irq 25 after",
            "hvtest: ping 10.0.2.2: FAILED (0/5 replies)\nhvtest: nic vector: irq 25 after",
        );
        assert!(check(&outcome(&failed), &g)
            .unwrap_err()
            .contains("/init reported: hvtest: ping 10.0.2.2: FAILED"));
        let panic =
            format!("{CONSOLE}[    7.0] Kernel panic - not syncing: Attempted to kill init!\n");
        assert!(check(&outcome(&panic), &g)
            .unwrap_err()
            .contains("Kernel panic"));
        let mut o = outcome(CONSOLE);
        o.timed_out = true;
        assert!(check(&o, &g).unwrap_err().starts_with("timed out"));
        let mut o = outcome(CONSOLE);
        o.exit_code = None;
        assert!(check(&o, &g).unwrap_err().contains("exit status"));
    }

    #[test]
    fn moved_vector_is_read_from_inits_line() {
        let out = "hvtest: nic vector: irq 59 (virtio0-input.0) on cpu 0 before: cpu0=9 cpu1=0\n\
                   hvtest: nic vector: irq 59 counted on cpu 1: 0 -> 6\n";
        assert_eq!(moved_vector(out), Ok((1, 0, 6)));
        let stuck = "hvtest: nic vector: irq 59 counted on cpu 1: 4 -> 4\n";
        assert!(moved_vector(stuck).unwrap_err().contains("did not count"));
        assert!(moved_vector("nothing\n").is_err());
    }
}
