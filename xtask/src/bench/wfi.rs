//! The GICv4 residency policy in WFI (`wfi` in the manifest): what one
//! wake-up by a passthrough MSI costs a vCPU waiting in WFI, under
//! `wfi = "resident"` (native WFI, the vLPI ends it) and `wfi = "doorbell"`
//! (WFI trapped, vPE non-resident, the doorbell wakes the hypervisor).
//! The guest is the `passthrough-wfi` test guest (`scenarios_wfi.rs`): each
//! round an edu DMA-completion MSI ends a WFI, and the guest prints the
//! exits and doorbells of its vCPU during the wait.

use super::report::{Figure, Report};
use crate::board::Board;
use crate::{build, qemu};
use std::path::Path;
use std::time::Duration;

/// Boots of each policy (3 wake-ups each).
const BOOTS: usize = 2;
const TIMEOUT: Duration = Duration::from_secs(60);
/// The guest's per-round line, before its counts.
const ROUND: &str = "PASS passthrough-wfi: round ";

pub fn measure(root: &Path, board: &Board, report: &mut Report) -> Result<(), String> {
    let artifacts = build::build(root, board)?;
    let dir = artifacts.image.parent().unwrap_or(root).to_path_buf();
    let extra = vec![
        "-device".to_string(),
        "edu,dma_mask=0xffffffffffffffff".to_string(),
    ];
    let mut table =
        format!("wfi residency ({BOOTS} boots each, 3 wake-ups a boot; counts, not times)\n");
    for policy in ["resident", "doorbell"] {
        let bundle = dir.join(format!("bundle-bench-wfi-{policy}.bin"));
        let manifest = board
            .dir
            .join(format!("tests/passthrough-wfi-{policy}.toml"));
        build::bundle(&artifacts, &manifest, &bundle)?;
        let (mut exits, mut doorbells) = (Vec::new(), Vec::new());
        for boot in 0..BOOTS {
            let cmd = qemu::command(&board.qemu, &artifacts.image, &bundle, &extra);
            let outcome = qemu::run_captured(cmd, TIMEOUT, &|_| false)?;
            let log = dir.join(format!("bench-wfi-{policy}-{boot}.log"));
            let _ = std::fs::write(&log, &outcome.output);
            let rounds = parse(&outcome.output);
            if rounds.is_empty() {
                return Err(format!("no wake-up reported (console: {})", log.display()));
            }
            for (e, d) in rounds {
                exits.push(e);
                doorbells.push(d);
            }
        }
        let mean = |v: &[u64]| v.iter().sum::<u64>() as f64 / v.len() as f64;
        for (name, value, what) in [
            (
                format!("wfi_{policy}_exits_per_wake"),
                mean(&exits),
                format!("hypervisor exits of a vCPU from entering WFI to the passthrough MSI that ends it, wfi = \"{policy}\" (GICv4; mean of {} wake-ups)", exits.len()),
            ),
            (
                format!("wfi_{policy}_doorbells_per_wake"),
                mean(&doorbells),
                format!("GICv4 doorbells taken during that wait, wfi = \"{policy}\""),
            ),
        ] {
            table += &format!("  {name:<40} {value:.2}\n");
            report.push(Figure::number(name, value, "count", what));
        }
    }
    report.table(table);
    Ok(())
}

/// (exits, doorbells) of each round the guest reported.
fn parse(out: &str) -> Vec<(u64, u64)> {
    out.lines()
        .filter(|l| l.contains(ROUND))
        .filter_map(|l| {
            let exits = l.split("hypervisor exits: ").nth(1)?.split(',').next()?;
            let doorbells = l.split("doorbells: ").nth(1)?;
            Some((exits.trim().parse().ok()?, doorbells.trim().parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn rounds_are_parsed() {
        let out = "[alpha] PASS passthrough-wfi: round 0: the MSI ended the WFI (after 1 WFI), vINTID 8192 taken once; during the wait hypervisor exits: 1, doorbells: 1\n";
        assert_eq!(super::parse(out), vec![(1, 1)]);
    }
}
