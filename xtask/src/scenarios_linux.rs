//! Linux in partitions: the board `qemu-virt-linux`, two Debian
//! Linux partitions at once, each with its own NVMe disk and virtio-net NIC
//! passed through, RAM that is not identity-mapped (the board's SMMU
//! translates their DMA), and the same `/init` checks as on
//! bare QEMU (`linux/oracle.rs`, whose `check_init` reads each partition's
//! console).
//!
//! On top of what `/init` checks: the guest saw a GICv3 (no `GICv4` or
//! `Virtual CPUs` line, which bare QEMU shows) and its CPUs started at
//! EL1; the
//! hypervisor set up GICv4 direct
//! injection for both partitions; the NIC vector Linux moved with
//! `/proc/irq/N/smp_affinity` became a `VMOVI` on the physical ITS; no
//! passthrough MSI was injected by software on any of the four CPUs while
//! Linux counted its NVMe and NIC interrupts (they were vLPIs); linux-a's
//! `poweroff` stopped linux-a only, and linux-b went on pinging after it.
//! The `-gicv3` variant checks the same guest behaviour through the
//! software path (every passthrough MSI injected by software).
//! `cargo xtask test --system-only --filter linux`.

use crate::board::Board;
use crate::linux::{self, oracle};
use crate::qemu::Typed;
use crate::scenarios::{expect, lines_of, DirectScenario};
use crate::{build, qemu};
use std::path::Path;
use std::time::Duration;

/// The board with the devices the partitions are given.
const BOARD: &str = "qemu-virt-linux";
/// The Neoverse-class board (8 Neoverse N2 cores, same devices).
const NEOVERSE_BOARD: &str = "qemu-neoverse-n2";
/// Manifest of the two-partition test, relative to the board folder.
const MANIFEST: &str = "tests/two-linux.toml";
/// Both boots and linux-b's 20 ping rounds under TCG on a loaded machine.
const TIMEOUT: Duration = Duration::from_secs(420);
/// The GICv3 machine of the `-gicv3` variant.
const GICV3: &str = "virt,gic-version=3,virtualization=on,iommu=smmuv3";
/// The partitions and their NVMe disks (board.toml).
const PARTITIONS: [(&str, &str); 2] = [("linux-a", "linux-a"), ("linux-b", "linux-b")];
/// Ping rounds linux-b must print after linux-a stopped (of its 20).
const ROUNDS_AFTER_STOP: usize = 3;

pub(crate) fn scenarios() -> Vec<DirectScenario> {
    vec![
        DirectScenario {
            name: "linux-reboot-with-passthrough-devices-probes-again-and-its-footprint-returns",
            run: reboot,
        },
        DirectScenario {
            name: "linux-console-typing-reaches-the-focused-partition-ctrl-backslash-switches-a-200-byte-paste-arrives-whole",
            run: console,
        },
        DirectScenario {
            name: "linux-two-partitions-nvme-and-nic-msix-as-vlpis-vmovi-and-own-poweroff",
            run: |root, _, log| run(root, log, None),
        },
        DirectScenario {
            name: "linux-two-partitions-nvme-and-nic-msix-software-path-gicv3",
            run: |root, _, log| run(root, log, Some(GICV3)),
        },
        DirectScenario {
            name: "linux-two-partitions-on-neoverse-n2-8-cpus-nvme-and-nic-msix-as-vlpis-and-own-poweroff",
            run: |root, _, log| run_series_on(root, NEOVERSE_BOARD, log, None, None),
        },
        // The same with the other kernel series (guests/linux/linux.toml's
        // `backports`), from the same manifest with its images renamed.
        DirectScenario {
            name: "linux-6.12-on-bare-qemu-oracle-its-msix-nvme-ping-and-moved-vector",
            run: |root, board, log| oracle::scenario_series(root, board, log, Some(SERIES_612)),
        },
        DirectScenario {
            name: "linux-6.12-two-partitions-nvme-and-nic-msix-as-vlpis-vmovi-and-own-poweroff",
            run: |root, _, log| run_series(root, log, None, Some(SERIES_612)),
        },
        DirectScenario {
            name: "linux-6.12-two-partitions-nvme-and-nic-msix-software-path-gicv3",
            run: |root, _, log| run_series(root, log, Some(GICV3), Some(SERIES_612)),
        },
    ]
}

/// The second kernel series the scenarios run (Debian bookworm-backports').
const SERIES_612: &str = "6.12";

fn run(root: &Path, log: &Path, machine: Option<&str>) -> Result<(), String> {
    run_series(root, log, machine, None)
}

/// The two-partition scenario with kernel series `series` (`None`: the
/// default one).
fn run_series(
    root: &Path,
    log: &Path,
    machine: Option<&str>,
    series: Option<&str>,
) -> Result<(), String> {
    run_series_on(root, BOARD, log, machine, series)
}

/// [`run_series`] on board `board` (its own `tests/two-linux.toml`).
fn run_series_on(
    root: &Path,
    board: &str,
    log: &Path,
    machine: Option<&str>,
    series: Option<&str>,
) -> Result<(), String> {
    let guest = linux::ensure_series(root, series)?;
    let cmd = command_on(root, board, MANIFEST, machine, true, series)?;
    let outcome = qemu::run_captured(cmd, TIMEOUT, &|_| false)?;
    let _ = std::fs::write(log, &outcome.output);
    let out = &outcome.output;
    let on_log = |e: String| format!("{e} (console: {})", log.display());
    if outcome.timed_out {
        return Err(on_log(format!(
            "timed out after {TIMEOUT:?}; last line: {}",
            out.lines().last().unwrap_or("(none)")
        )));
    }
    check(out, &guest, machine.is_none()).map_err(on_log)?;
    if outcome.exit_code != Some(0) {
        return Err(on_log(format!(
            "QEMU exit status {:?}, expected 0 (both partitions powered off)",
            outcome.exit_code
        )));
    }
    Ok(())
}

/// Reboot: Linux with its NVMe and NIC runs the checks, reboots itself
/// (PSCI SYSTEM_RESET: the hypervisor tears the partition's physical ITS
/// state down and reloads it), and passes the same checks in its second
/// life; the footprint it leaves after the teardown is only what the
/// hypervisor set up at boot, and the second life starts from exactly the
/// footprint the first did.
fn reboot(root: &Path, _: &Board, log: &Path) -> Result<(), String> {
    let guest = linux::ensure(root)?;
    let cmd = command(root, "tests/linux-reboot.toml", None, true)?;
    let outcome = qemu::run_captured(cmd, TIMEOUT, &|_| false)?;
    let _ = std::fs::write(log, &outcome.output);
    let out = &outcome.output;
    let on_log = |e: String| format!("{e} (console: {})", log.display());
    if outcome.timed_out {
        return Err(on_log(format!("timed out after {TIMEOUT:?}")));
    }
    let reset = "partition linux-a: reset (PSCI SYSTEM_RESET), boot 1";
    let at = out
        .find(reset)
        .ok_or_else(|| on_log(format!("expected `{reset}`")))?;
    let (first, second) = (&out[..at], &out[at..]);
    for (life, text, last) in [(0, first, "hvtest: rebooting"), (1, second, "hvtest: done")] {
        let console = lines_of(text, "linux-a").join("\n");
        oracle::check_probe(&console, &guest, "linux-a")
            .map_err(|e| on_log(format!("boot {life}: {e}")))?;
        expect(&console, &format!("hvtest: boot count 0x0000000{life}"))
            .and_then(|()| expect(&console, last))
            .map_err(|e| on_log(format!("boot {life}: {e}")))?;
    }
    let all = crate::scenarios_passthrough::footprints(out, "linux-a");
    let get = |when: &str| {
        crate::scenarios_passthrough::footprint(&all, "linux-a", when)
            .map(|f| f.partition_part().to_string())
            .map_err(on_log)
    };
    let (start0, before, after, start1) = (
        get("at start (boot 0)")?,
        get("before teardown (boot 0)")?,
        get("after teardown (boot 0)")?,
        get("at start (boot 1)")?,
    );
    // Whatever Linux still had mapped when it rebooted (its shutdown path
    // frees some vectors itself), none of it outlives the teardown, and the
    // second life starts where the first did.
    if !after.starts_with("guest-made: devices 0, events 0, LPIs 0, routes 0;") {
        return Err(on_log(format!("after teardown: {after}")));
    }
    if start1 != start0 || after != start0 {
        return Err(on_log(format!(
            "footprints differ: at start of boot 0 `{start0}`, after its teardown `{after}`, at start of boot 1 `{start1}`"
        )));
    }
    println!("linux-a: before teardown {before}; after it and at both starts {after}");
    expect(out, "partition linux-a: stopped (PSCI SYSTEM_OFF)").map_err(on_log)?;
    match outcome.exit_code {
        Some(0) => Ok(()),
        other => Err(on_log(format!("QEMU exit status {other:?}, expected 0"))),
    }
}

/// Typing: both partitions at their shells; what is typed reaches only the
/// partition with the focus, `Ctrl-\` moves it, `Ctrl-]` prints the
/// hypervisor's state and counters, and `poweroff -f` typed into each
/// stops each.
fn console(root: &Path, _: &Board, log: &Path) -> Result<(), String> {
    linux::ensure(root)?;
    let cmd = command(root, "tests/two-linux-shell.toml", None, false)?;
    let prompt_ready = "for a list of built-in commands.";
    // 200 bytes typed at once (a paste): far more than a PL011's 32-byte
    // FIFO, so the hypervisor must hold the rest and feed it as the guest
    // reads. Every byte must arrive, in order, for the line to come back.
    let pasted = paste_payload();
    let mut paste = b"echo ".to_vec();
    paste.extend_from_slice(pasted.as_bytes());
    paste.push(b'\r');
    assert_eq!(paste.len(), PASTE_BYTES);
    let script = [
        Typed {
            after: &format!("[linux-b] Enter 'help' {prompt_ready}"),
            keys: b"",
        },
        Typed {
            after: &format!("[linux-a] Enter 'help' {prompt_ready}"),
            keys: b"echo in-a-$((6*7))\r",
        },
        Typed {
            after: "[linux-a] in-a-42",
            keys: b"\x1c",
        },
        Typed {
            after: "console input now goes to partition linux-b",
            keys: b"echo in-b-$((7*7))\r",
        },
        Typed {
            after: "[linux-b] in-b-49",
            keys: &paste,
        },
        Typed {
            after: &format!("[linux-b] {pasted}"),
            keys: b"\x1d",
        },
        Typed {
            after: "partition linux-b: vCPU 1 (CPU 3): exits",
            keys: b"poweroff -f\r",
        },
        Typed {
            after: "partition linux-b: stopped",
            keys: b"\x1c",
        },
        Typed {
            after: "console input now goes to partition linux-a",
            keys: b"poweroff -f\r",
        },
    ];
    let outcome = qemu::run_typing(cmd, TIMEOUT, &|_| false, &script)?;
    let _ = std::fs::write(log, &outcome.output);
    let out = &outcome.output;
    let on_log = |e: String| format!("{e} (console: {})", log.display());
    if outcome.timed_out {
        return Err(on_log(format!(
            "timed out after {TIMEOUT:?}; last line: {}",
            out.lines().last().unwrap_or("(none)")
        )));
    }
    let has_line = |l: &str| out.lines().any(|x| x.trim_end() == l);
    for (line, present) in [
        ("[linux-a] in-a-42", true),
        ("[linux-b] in-a-42", false),
        ("[linux-b] in-b-49", true),
        ("[linux-a] in-b-49", false),
    ] {
        if has_line(line) != present {
            return Err(on_log(format!(
                "`{line}` {}",
                if present {
                    "missing: the typed command did not run there"
                } else {
                    "present: typing reached the partition without the focus"
                }
            )));
        }
    }
    if !has_line(&format!("[linux-b] {pasted}")) {
        return Err(on_log(format!(
            "the {PASTE_BYTES}-byte paste did not come back whole from linux-b's shell"
        )));
    }
    // Ctrl-] printed both partitions' state and counters while they ran.
    for name in ["linux-a", "linux-b"] {
        expect(out, &format!("partition {name}: Running, boot 0")).map_err(on_log)?;
    }
    for name in ["linux-b", "linux-a"] {
        expect(out, &format!("partition {name}: stopped (PSCI SYSTEM_OFF)")).map_err(on_log)?;
    }
    match outcome.exit_code {
        Some(0) => Ok(()),
        other => Err(on_log(format!("QEMU exit status {other:?}, expected 0"))),
    }
}

/// Bytes typed at once in the console scenario (`echo `, the payload, Enter).
const PASTE_BYTES: usize = 200;

/// What the pasted `echo` prints: letters and digits in a pattern whose
/// every position differs from its neighbours, so a lost or reordered
/// byte changes the line.
fn paste_payload() -> String {
    const SYMBOLS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..PASTE_BYTES - "echo \r".len())
        .map(|i| char::from(SYMBOLS[i % SYMBOLS.len()]))
        .collect()
}

/// The QEMU command that boots the hypervisor on the board with `manifest`
/// (relative to the board folder), on `machine` if given, with the
/// board's NVMe disks and NICs if `devices`. The bundle is named after the
/// manifest.
fn command(
    root: &Path,
    manifest: &str,
    machine: Option<&str>,
    devices: bool,
) -> Result<std::process::Command, String> {
    command_series(root, manifest, machine, devices, None)
}

/// [`command`] with the Linux images of kernel series `series`: the
/// board's manifest with `linux.Image` and its initramfs renamed to that
/// series' (`linux-6.12.Image`, ...), written next to the bundle.
fn command_series(
    root: &Path,
    manifest: &str,
    machine: Option<&str>,
    devices: bool,
    series: Option<&str>,
) -> Result<std::process::Command, String> {
    command_on(root, BOARD, manifest, machine, devices, series)
}

/// [`command_series`] on board `board`.
fn command_on(
    root: &Path,
    board: &str,
    manifest: &str,
    machine: Option<&str>,
    devices: bool,
    series: Option<&str>,
) -> Result<std::process::Command, String> {
    let board = Board::load(root, board)?;
    let artifacts = build::build(root, &board)?;
    let stem = Path::new(manifest)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("linux");
    let stem = match series {
        None => stem.to_string(),
        Some(s) => format!("{stem}-{s}"),
    };
    let bundle = artifacts
        .image
        .with_file_name(format!("bundle-test-{stem}.bin"));
    let mut manifest_path = board.dir.join(manifest);
    if series.is_some() {
        let text = std::fs::read_to_string(&manifest_path)
            .map_err(|e| format!("{}: {e}", manifest_path.display()))?;
        let text = text
            .replace(
                &format!("\"{}\"", linux::IMAGE_NAME),
                &format!("\"{}\"", linux::image_name(series)),
            )
            .replace(
                &format!("\"{}\"", linux::INITRAMFS_NAME),
                &format!("\"{}\"", linux::initramfs_name(series)),
            );
        manifest_path = artifacts.image.with_file_name(format!("{stem}.toml"));
        std::fs::write(&manifest_path, text)
            .map_err(|e| format!("{}: {e}", manifest_path.display()))?;
    }
    build::bundle(&artifacts, &manifest_path, &bundle)?;
    let mut q = board.qemu.clone();
    if let Some(m) = machine {
        q.machine = m.into();
    }
    let devices = if devices {
        q.device_args(&linux::dir(root))?
    } else {
        Vec::new()
    };
    let mut cmd = qemu::command(&q, &artifacts.image, &bundle, &devices);
    // A hypervisor panic or reset must end the run, not hang it until the
    // bound.
    cmd.arg("-no-reboot");
    Ok(cmd)
}

fn check(out: &str, guest: &linux::LinuxGuest, gicv4: bool) -> Result<(), String> {
    if let Some(bad) = out
        .lines()
        .find(|l| l.contains("PANIC") || l.contains("FATAL") || l.contains("unhandled trap"))
    {
        return Err(format!("the hypervisor reported: {bad}"));
    }
    for (name, disk) in PARTITIONS {
        let console = lines_of(out, name).join("\n");
        // What Linux on bare QEMU reports of the host (it runs at EL2
        // there) a partition must not see: its GIC is a GICv3, and its
        // CPUs start at EL1.
        if let Some(leak) = console
            .lines()
            .find(|l| l.contains("GICv4") || l.contains("Virtual CPUs"))
        {
            return Err(format!("{name} sees the host's GICv4: {leak}"));
        }
        expect(&console, "CPU: All CPU(s) started at EL1").map_err(|e| format!("{name}: {e}"))?;
        let (cpu, before, after) =
            oracle::check_init(&console, guest, disk).map_err(|e| format!("{name}: {e}"))?;
        println!("{name}: the moved NIC vector counted on its new CPU {cpu}: {before} -> {after}");
        if gicv4 {
            expect(
                out,
                &format!("partition {name}: passthrough MSIs by GICv4 direct injection (2 vPEs)"),
            )?;
            let vmovi = format!("partition {name}: physical ITS: VMOVI device");
            if !out.lines().any(|l| l.contains(&vmovi)) {
                return Err(format!(
                    "{name}: Linux moved a vector but the hypervisor logged no VMOVI"
                ));
            }
        }
        let injected = software_msis(out, name)?;
        println!("{name}: passthrough MSIs injected by software, per vCPU: {injected:?}");
        match (gicv4, injected.iter().sum::<u64>()) {
            (true, 0) | (false, 1..) => {}
            (true, n) => {
                return Err(format!(
                    "{name}: {n} passthrough MSIs were injected by software on a GICv4 host"
                ))
            }
            (false, _) => {
                return Err(format!(
                    "{name}: no passthrough MSI went the software path on a GICv3 host"
                ))
            }
        }
    }
    // The residency policies: linux-a's WFI never traps; linux-b's does,
    // and on GICv4 vLPIs that arrived while it waited rang doorbells.
    let waits_a: u64 = counter(out, "linux-a", "wfi waits ")?.iter().sum();
    let waits_b: u64 = counter(out, "linux-b", "wfi waits ")?.iter().sum();
    let doorbells_b: u64 = counter(out, "linux-b", "doorbells ")?.iter().sum();
    println!("linux-a (wfi = resident): {waits_a} WFI waits; linux-b (wfi = doorbell): {waits_b} WFI waits, {doorbells_b} doorbells");
    if waits_a != 0 || waits_b == 0 {
        return Err(format!(
            "WFI waits: linux-a {waits_a} (resident: expected 0), linux-b {waits_b} (doorbell: expected some)"
        ));
    }
    if gicv4 && doorbells_b == 0 {
        return Err(
            "linux-b (wfi = doorbell) idled through 20 ping rounds, yet no vLPI rang a doorbell"
                .into(),
        );
    }
    // linux-a's poweroff stops linux-a only: linux-b pings on afterwards.
    let stop = "partition linux-a: stopped (PSCI SYSTEM_OFF)";
    let at = out
        .find(stop)
        .ok_or(format!("expected `{stop}` in the output"))?;
    let later = lines_of(&out[at..], "linux-b")
        .iter()
        .filter(|l| l.contains("hvtest: ping round") && l.ends_with(": ok"))
        .count();
    if later < ROUNDS_AFTER_STOP {
        return Err(format!(
            "linux-b printed {later} good ping rounds after linux-a stopped (at least {ROUNDS_AFTER_STOP} expected)"
        ));
    }
    println!("linux-b: {later} good ping rounds after linux-a powered off");
    expect(out, "partition linux-b: stopped (PSCI SYSTEM_OFF)")
}

/// The per-vCPU `passthrough MSIs injected by software N` counters the
/// hypervisor logs when partition `name` stops.
fn software_msis(out: &str, name: &str) -> Result<Vec<u64>, String> {
    counter(out, name, "passthrough MSIs injected by software ")
}

/// Per vCPU, the number after `what` in the counter lines the hypervisor
/// logs when partition `name` stops (two vCPUs).
fn counter(out: &str, name: &str, what: &str) -> Result<Vec<u64>, String> {
    let prefix = format!("partition {name}: vCPU ");
    let counts: Vec<u64> = out
        .lines()
        .filter_map(|l| l.split_once(&prefix).map(|(_, r)| r))
        .filter_map(|r| r.split_once(what).map(|(_, n)| n))
        .filter_map(|n| n.split([',', ')']).next()?.trim().parse().ok())
        .collect();
    if counts.len() != 2 {
        return Err(format!(
            "{name}: expected the `{what}` counters of 2 vCPUs at its stop, found {}",
            counts.len()
        ));
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn software_msis_are_read_per_vcpu() {
        let out = "[hv cpu0] INFO  partition linux-a: vCPU 0 (CPU 0): exits 9 (mmio 1, calls 2, irqs 3, wfi waits 0), passthrough MSIs injected by software 4, doorbells 0\n\
                   [hv cpu0] INFO  partition linux-a: vCPU 1 (CPU 1): exits 9 (mmio 1, calls 2, irqs 3, wfi waits 0), passthrough MSIs injected by software 0, doorbells 0\n";
        assert_eq!(software_msis(out, "linux-a").unwrap(), vec![4, 0]);
        assert!(software_msis(out, "linux-b").is_err());
    }
}
