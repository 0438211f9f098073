//! System scenarios on the `raspi4b` board (QEMU's Raspberry Pi 4 B:
//! GIC-400, mini UART console, spin-table CPUs, no PSCI): the test guest's
//! scenarios from the qemu-virt board, with the board's own manifests
//! (`boards/raspi4b/tests/`) and one shared build for all of them.
//!
//! Without PSCI firmware the hypervisor halts when every partition has
//! stopped (QEMU keeps running), so these scenarios stop on that line
//! rather than on QEMU's exit.

use crate::qemu::Outcome;
use crate::scenarios::{expect, lines_of, no_failures, ticks_after, Scenario};
use std::time::Duration;

/// The board these scenarios run on.
pub(crate) const BOARD: &str = "raspi4b";

const ALL_STOPPED: &str = "hypervisor: all partitions stopped; powering off";

pub(crate) fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "raspi4b-banner-spin-table-cpus-and-two-partitions-report",
            manifest: "tests/hello.toml",
            machine: None,
            qemu_args: &[],
            timeout: Duration::from_secs(120),
            stop_when: |out| out.contains(ALL_STOPPED),
            check: check_banner_and_report,
        },
        Scenario {
            name: "raspi4b-vgicv2-virtual-timer-ticks-and-sgi-between-vcpus",
            manifest: "tests/gicv2.toml",
            machine: None,
            qemu_args: &[],
            timeout: Duration::from_secs(120),
            stop_when: |out| out.contains(ALL_STOPPED),
            check: check_vgicv2,
        },
        Scenario {
            name: "raspi4b-debian-linux-partition-boots-to-a-shell-on-vgicv2-beside-a-test-guest",
            manifest: "linux.toml",
            machine: None,
            qemu_args: &[],
            timeout: Duration::from_secs(300),
            stop_when: |out| out.contains("[linux] BusyBox v") || out.contains("[linux] FAIL"),
            check: check_linux,
        },
        Scenario {
            name: "raspi4b-console-per-partition-ticks",
            manifest: "manifest.toml",
            machine: None,
            qemu_args: &[],
            timeout: Duration::from_secs(120),
            stop_when: |out| {
                ticks_after(out, "alpha", "hypervisor") >= 5
                    && ticks_after(out, "beta", "hypervisor") >= 5
            },
            check: check_consoles,
        },
        Scenario {
            name: "raspi4b-system-reset-restarts-one-partition-only",
            manifest: "tests/reset.toml",
            machine: None,
            qemu_args: &[],
            timeout: Duration::from_secs(120),
            stop_when: |out| ticks_after(out, "beta", "[alpha] PASS reset") >= 10,
            check: check_reset,
        },
    ]
}

/// The banner names the Pi's GIC, console and CPU model; the three
/// secondaries came out of the spin table; both partitions start their
/// second vCPU, report and stop.
fn check_banner_and_report(o: &Outcome) -> Result<(), String> {
    let out = &o.output;
    no_failures(out)?;
    expect(out, "(arm,cortex-a72)")?;
    expect(out, "GIC      GICv2 (GIC-400 class)")?;
    expect(out, "console  brcm,bcm2835-aux-uart 0xfe215040")?;
    if out.contains("did not come online") || out.contains("spin table:") {
        return Err("a secondary CPU did not leave the spin table".into());
    }
    expect(out, "[alpha] PASS hello: 2 vcpus up")?;
    expect(out, "[beta] PASS hello: 2 vcpus up")?;
    expect(out, "partition alpha: stopped (PSCI SYSTEM_OFF)")?;
    expect(out, ALL_STOPPED)?;
    expect(out, "hypervisor: no PSCI firmware: halting instead")
}

/// Both partitions take ten virtual timer interrupts through their
/// virtual GICv2 and deliver an SGI from vCPU 0 to vCPU 1.
pub(crate) fn check_vgicv2(o: &Outcome) -> Result<(), String> {
    let out = &o.output;
    no_failures(out)?;
    for name in ["alpha", "beta"] {
        expect(
            out,
            &format!("[{name}] PASS gicv2 timer: 10 virtual timer interrupts"),
        )?;
        expect(
            out,
            &format!("[{name}] PASS gicv2 sgi: vcpu1 took SGI 1 from vcpu0"),
        )?;
    }
    // Alpha's WFI traps: the hypervisor slept in it until the timer's PPI.
    let stats = out
        .lines()
        .find(|l| l.contains("partition alpha: vCPU 0 ("))
        .ok_or("no exit counts for alpha's vCPU 0")?;
    if stats.contains("wfi waits 0,") || stats.contains("wfi waits 0)") {
        return Err(format!(
            "alpha's vCPU 0 never waited in WFI at EL2: {stats}"
        ));
    }
    expect(out, ALL_STOPPED)
}

/// Debian's arm64 kernel, unmodified, in a partition on the Pi: its GICv2
/// driver on the vGICv2, the virtual timer, its second CPU (PSCI CPU_ON
/// and IPIs as SGIs), its PL011 console, up to the initramfs's shell;
/// the test guest beside it keeps ticking.
fn check_linux(o: &Outcome) -> Result<(), String> {
    let out = &o.output;
    no_failures(out)?;
    for line in [
        "[linux] [",
        "Root IRQ handler: gic_handle_irq",
        "arch_timer: cp15 timer(s) running at",
        "smp: Brought up 1 node, 2 CPUs",
        "ttyAMA0 at MMIO 0x9000000",
        "Run /init as init process",
        "[linux] BusyBox v",
    ] {
        expect(out, line)?;
    }
    let ticks = ticks_after(out, "beta", "Run /init as init process");
    if ticks < 1 {
        return Err("beta did not tick while Linux booted".into());
    }
    Ok(())
}

/// Each partition's console carries its own guest's lines.
fn check_consoles(o: &Outcome) -> Result<(), String> {
    let out = &o.output;
    no_failures(out)?;
    for name in ["alpha", "beta"] {
        let ticks = lines_of(out, name)
            .iter()
            .filter(|l| l.starts_with("tick "))
            .count();
        if ticks < 5 {
            return Err(format!(
                "partition {name} printed {ticks} ticks, expected 5"
            ));
        }
    }
    Ok(())
}

/// Alpha's SYSTEM_RESET pulls its running second vCPU out of the guest
/// (a GICv2 kick SGI) and boots it again; beta is untouched.
fn check_reset(o: &Outcome) -> Result<(), String> {
    let out = &o.output;
    no_failures(out)?;
    let alpha = lines_of(out, "alpha");
    for boot in ["boot-count 0", "boot-count 1"] {
        if !alpha
            .iter()
            .any(|l| l.starts_with("boot:") && l.ends_with(boot))
        {
            return Err(format!("alpha's boot with {boot} not seen"));
        }
    }
    expect(out, "partition alpha: reset (PSCI SYSTEM_RESET), boot 1")?;
    let beta_boots = lines_of(out, "beta")
        .iter()
        .filter(|l| l.starts_with("boot:"))
        .count();
    if beta_boots != 1 {
        return Err(format!(
            "beta booted {beta_boots} times; it must not be reset"
        ));
    }
    Ok(())
}
