//! `cargo xtask soak`: 200 partition resets under MSI load, on a GICv4
//! host and on a GICv3 host (not part of `cargo xtask test`: minutes).
//!
//! The test guest's `passthrough-reset` mode with `resets=200`
//! (`boards/qemu-virt/tests/soak-resets.toml`): in every life alpha maps
//! edu's MSI through its vITS, takes bursts of MSIs on both vCPUs (MOVI in
//! between), leaves one pending and asks for SYSTEM_RESET. The hypervisor
//! logs alpha's footprint line at every start and around every teardown:
//! its physical ITS footprint, the machine's LPIs in use, free frames and
//! the heap's live bytes. After every teardown the line must equal the
//! first teardown's, and every later start the second start's (the first
//! life also allocates the stage-2 tables of the BAR window, kept for
//! every later life): any drift fails. VMIDs are allocated once per
//! partition at boot and never on a reset, so they cannot drift.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::board::Board;
use crate::build;
use crate::qemu::{self, Outcome};
use crate::scenarios::{self, Scenario};
use crate::scenarios_passthrough::{footprints, Footprint};

/// Resets the guest performs (its `resets=` boot argument).
const RESETS: usize = 200;
const GICV3: &str = "virt,gic-version=3,virtualization=on,iommu=smmuv3";

/// Entry point of `cargo xtask soak`.
pub fn run(root: &Path) -> Result<ExitCode, String> {
    let board = Board::load(root, "qemu-virt")?;
    qemu::check(&board.qemu)?;
    let artifacts = build::build(root, &board)?;
    let soak = |name, machine| Scenario {
        name,
        manifest: "tests/soak-resets.toml",
        machine,
        qemu_args: &["-device", "edu"],
        timeout: Duration::from_secs(3600),
        stop_when: |out| {
            out.contains("] FAIL")
                || out.contains(&format!("PASS passthrough-reset: boot {RESETS}: "))
        },
        check,
    };
    let mut failed = 0;
    for s in [
        soak("soak-resets-gicv4", None),
        soak("soak-resets-gicv3", Some(GICV3)),
    ] {
        println!("== {} ({RESETS} resets)", s.name);
        let started = Instant::now();
        match scenarios::run_scenario(&board, &artifacts, &s) {
            Ok(()) => println!("PASS {} ({:.0} s)", s.name, started.elapsed().as_secs_f32()),
            Err(e) => {
                failed += 1;
                println!("FAIL {}: {e}", s.name);
            }
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The line logged `when`, if exactly one was.
fn one<'a>(all: &'a [Footprint], when: &str) -> Result<&'a Footprint, String> {
    let mut found = all.iter().filter(|f| f.when == when);
    match (found.next(), found.next()) {
        (Some(f), None) => Ok(f),
        (None, _) => Err(format!("no footprint line {when}")),
        (Some(_), Some(_)) => Err(format!("two footprint lines {when}")),
    }
}

/// A number following `label` in a footprint line.
fn figure(f: &Footprint, label: &str) -> Option<u64> {
    let rest = f.what.split(label).nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit())
        .find(|s| !s.is_empty())?
        .parse()
        .ok()
}

fn check(o: &Outcome) -> Result<(), String> {
    let out = &o.output;
    if out.contains("] FAIL") {
        let line = out.lines().find(|l| l.contains("] FAIL")).unwrap_or("");
        return Err(format!("the guest failed: {line}"));
    }
    let all = footprints(out, "alpha");
    let start = one(&all, "at start (boot 1)")?;
    let after = one(&all, "after teardown (boot 0)")?;
    if !after
        .partition_part()
        .starts_with("guest-made: devices 0, events 0, LPIs 0, routes 0;")
    {
        return Err(format!("after the first teardown: {}", after.what));
    }
    for label in ["LPIs in use ", "free frames ", "heap live "] {
        if figure(after, label).is_none() {
            return Err(format!("no `{label}` figure in: {}", after.what));
        }
    }
    let mut resets = 0;
    for boot in 0..RESETS {
        let teardown = one(&all, &format!("after teardown (boot {boot})"))?;
        if teardown.what != after.what {
            return Err(format!(
                "drift after teardown {boot}: {} (first teardown: {})",
                teardown.what, after.what
            ));
        }
        let next = one(&all, &format!("at start (boot {})", boot + 1))?;
        if next.what != start.what {
            return Err(format!(
                "drift at start of boot {}: {} (boot 1: {})",
                boot + 1,
                next.what,
                start.what
            ));
        }
        resets += 1;
    }
    println!(
        "{resets} resets, zero drift: after every teardown {}; at every start {}",
        after.what, start.what
    );
    println!(
        "baseline: LPIs in use {}, free frames {} KiB, heap live {} bytes",
        figure(after, "LPIs in use ").unwrap_or(0),
        figure(after, "free frames ").unwrap_or(0),
        figure(after, "heap live ").unwrap_or(0)
    );
    Ok(())
}
