//! System scenarios of guest-visible architecture: guests behave as on
//! real hardware (the EL1 physical timer beside the virtual one, timer
//! lines read pending while masked, LPI pending tables).
//!
//! The guest side is `guests/testguest/src/guest/timer_tests.rs` and
//! `pending_table_tests.rs`. Each scenario runs in a partition on the
//! board's GICv4 machine and on a GICv3 one (`-gicv3`), and the same
//! guest also runs on bare QEMU without the hypervisor (`bare-...`: the
//! oracle, entered at EL2 with the device tree at the start of RAM): what
//! it checks is what the architecture promises, so both must pass.
//!
//! Run just these: `cargo xtask test --system-only --filter guest-arch`.

use crate::board::Board;
use crate::qemu::{self, Outcome};
use crate::scenarios::{expect, lines_of, no_failures, Scenario};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The GICv3 machine of the `-gicv3` variants.
const GICV3: &str = "virt,gic-version=3,virtualization=on";
/// The GICv4 machine (the board's).
const GICV4: &str = "virt,gic-version=4,virtualization=on";

/// One guest behaviour: the test guest's scenario, the PASS lines it must
/// print (in order), and its manifest for the partitioned runs.
struct Behaviour {
    /// Scenario name stem (`guest-arch-<stem>`, `-gicv3`, `bare-...`).
    stem: &'static str,
    /// The test guest's `scenario=`.
    guest: &'static str,
    /// Manifest (alpha runs `guest`).
    manifest: &'static str,
    /// Line starts alpha must print, in this order.
    lines: &'static [&'static str],
    /// Whether beta runs the same scenario (else `hello`).
    beta_too: bool,
}

const TIMER_BOTH: Behaviour = Behaviour {
    stem: "el1-physical-timer-fires-at-deadline-repeatedly-beside-virtual-timer",
    guest: "timer-both",
    manifest: "tests/guest-arch-timers.toml",
    lines: &[
        "PASS timer-both: virtual timer (PPI 27) fired 20 times every 10 ms, never before its deadline",
        "PASS timer-both: physical timer (PPI 30) fired 14 times every 15 ms, never before its deadline",
        "PASS timer-both: physical timer brought forward from 200 ms to 5 ms taken once; masked virtual timer past its deadline not taken",
        "PASS timer-both: virtual timer unmasked after its deadline taken once; physical timer rearmed, masked and unmasked taken once",
        "PASS timer-both: done",
    ],
    beta_too: true,
};

const TIMER_PENDING: Behaviour = Behaviour {
    stem: "timer-lines-read-pending-while-masked-then-taken-once",
    guest: "timer-pending",
    manifest: "tests/guest-arch-timer-pending.toml",
    lines: &[
        "PASS timer-pending: both timer lines past their deadline read pending in GICR_ISPENDR0 and GICR_ICPENDR0 while their PPIs are disabled",
        "PASS timer-pending: CNTx_CTL.IMASK clears the pending bit of each",
        "PASS timer-pending: enabled with PSTATE.I set, both still read pending and nothing is taken",
        "PASS timer-pending: unmasked, each taken exactly once, then neither pending nor active",
        "PASS timer-pending: done",
    ],
    beta_too: false,
};

const PENDING_TABLE: Behaviour = Behaviour {
    stem: "lpi-pending-table-bits-before-enable-lpis-delivered-once-and-written-back",
    guest: "pending-table",
    manifest: "tests/guest-arch-pending-table.toml",
    lines: &[
        "PASS pending-table: 4 LPIs whose bits were written into the pending table before EnableLPIs taken exactly once each",
        "PASS pending-table: EnableLPIs cleared (CES ",
        "PASS pending-table: nothing taken while EnableLPIs was 0; set again, LPI 8692 from the table taken exactly once",
        "PASS pending-table: done",
    ],
    beta_too: false,
};

/// Every behaviour of this file.
const BEHAVIOURS: [&Behaviour; 3] = [&TIMER_BOTH, &TIMER_PENDING, &PENDING_TABLE];

/// The partitioned scenarios: each behaviour on GICv4 and GICv3.
pub(crate) fn scenarios() -> Vec<Scenario> {
    let mut all = Vec::new();
    for b in BEHAVIOURS {
        for (suffix, machine) in [("", None), ("-gicv3", Some(GICV3))] {
            all.push(Scenario {
                name: leak(format!("guest-arch-{}{suffix}", b.stem)),
                manifest: b.manifest,
                machine,
                qemu_args: &[],
                timeout: Duration::from_secs(90),
                stop_when: |out| out.contains("] FAIL"),
                check: check_for(b),
            });
        }
    }
    all
}

/// A name that lives as long as the run (a handful per `xtask test`).
fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// The check of behaviour `b` (a plain `fn`, as [`Scenario`] wants).
fn check_for(b: &Behaviour) -> fn(&Outcome) -> Result<(), String> {
    match b.guest {
        "timer-both" => |o| check_partitioned(o, &TIMER_BOTH),
        "timer-pending" => |o| check_partitioned(o, &TIMER_PENDING),
        _ => |o| check_partitioned(o, &PENDING_TABLE),
    }
}

/// `lines` appear in `out`'s lines in order, each exactly once.
fn in_order(out: &[&str], lines: &[&str], who: &str) -> Result<(), String> {
    let mut from = 0;
    for want in lines {
        let hits: Vec<usize> = out
            .iter()
            .enumerate()
            .filter(|(_, l)| l.starts_with(want))
            .map(|(i, _)| i)
            .collect();
        match hits.as_slice() {
            [i] if *i >= from => from = *i,
            [] => return Err(format!("{who}: expected a line `{want}...`")),
            [_] => return Err(format!("{who}: `{want}...` out of order")),
            _ => return Err(format!("{who}: `{want}...` printed more than once")),
        }
    }
    Ok(())
}

/// A partitioned run: no failure, alpha's (and beta's, if it runs the
/// same guest) lines in order, both stopped, QEMU exit 0.
fn check_partitioned(o: &Outcome, b: &Behaviour) -> Result<(), String> {
    let out = &o.output;
    no_failures(out)?;
    in_order(&lines_of(out, "alpha"), b.lines, "alpha")?;
    if b.beta_too {
        in_order(&lines_of(out, "beta"), b.lines, "beta")?;
    } else {
        expect(out, "[beta] PASS hello: 2 vcpus up")?;
    }
    expect(out, "partition alpha: stopped (PSCI SYSTEM_OFF)")?;
    expect(out, "all partitions stopped; powering off")?;
    match o.exit_code {
        Some(0) => Ok(()),
        other => Err(format!("QEMU exit status {other:?}, expected 0")),
    }
}

/// One run of the test guest on bare QEMU.
pub(crate) struct BareScenario {
    /// Name printed with PASS/FAIL.
    pub(crate) name: &'static str,
    /// The test guest's `scenario=`.
    guest: &'static str,
    /// `-M`.
    machine: &'static str,
    /// PASS lines, in order.
    lines: &'static [&'static str],
}

/// The oracle runs: each behaviour on bare QEMU's GICv4 and GICv3.
pub(crate) fn bare_scenarios() -> Vec<BareScenario> {
    let mut all = Vec::new();
    for b in BEHAVIOURS {
        for (suffix, machine) in [("", GICV4), ("-gicv3", GICV3)] {
            all.push(BareScenario {
                name: leak(format!("guest-arch-bare-qemu-{}{suffix}", b.stem)),
                guest: b.guest,
                machine,
                lines: b.lines,
            });
        }
    }
    all
}

/// Boots the test guest's ELF (`elf`) directly on QEMU with the board's
/// CPU and memory, 2 CPUs, `scenario=` on the command line; checks its
/// PASS lines and its SYSTEM_OFF. The console goes to `log`.
pub(crate) fn run_bare(
    board: &Board,
    elf: &Path,
    s: &BareScenario,
    log: &Path,
) -> Result<(), String> {
    let mut cmd = Command::new(&board.qemu.binary);
    cmd.args(["-M", s.machine, "-cpu", &board.qemu.cpu, "-smp", "2"])
        .args(["-m", "1G", "-nographic", "-nic", "none", "-kernel"])
        .arg(elf)
        .args(["-append", &format!("scenario={}", s.guest)]);
    let outcome = qemu::run_captured(cmd, Duration::from_secs(60), &|out: &str| {
        out.lines().any(|l| l.starts_with("FAIL"))
    })?;
    let _ = std::fs::write(log, &outcome.output);
    let console = || format!("(console: {})", log.display());
    if outcome.timed_out {
        return Err(format!("timed out after 60 s {}", console()));
    }
    let lines: Vec<&str> = outcome.output.lines().collect();
    if let Some(bad) = lines.iter().find(|l| l.starts_with("FAIL")) {
        return Err(format!("failure reported: {bad} {}", console()));
    }
    in_order(&lines, s.lines, "bare guest").map_err(|e| format!("{e} {}", console()))?;
    match outcome.exit_code {
        Some(0) => Ok(()),
        other => Err(format!(
            "QEMU exit status {other:?}, expected 0 (PSCI SYSTEM_OFF) {}",
            console()
        )),
    }
}
