//! System scenarios of the GICv4 residency policy (`wfi` in the manifest,
//! GICv4 direct injection): a vCPU waiting in WFI for a passthrough MSI.
//!
//! alpha owns QEMU's `edu` and maps its MSI through its vITS; each round it
//! starts a DMA whose completion MSI comes some 100 ms later, waits in WFI
//! with interrupts masked, and prints how many hypervisor exits and GICv4
//! doorbells its vCPU saw during the wait. With `wfi = "resident"` the WFI
//! runs natively and the vLPI ends it: no exit, no doorbell. With
//! `wfi = "doorbell"` the WFI traps, the vPE is made non-resident, and the
//! vLPI rings the vPE's doorbell, which wakes the hypervisor: one exit (the
//! WFI) and one doorbell. On a GICv3 host (software path) the physical LPI
//! wakes the hypervisor's WFI instead: one exit, no doorbell.
//! `cargo xtask test --system-only --filter wfi`.

use crate::qemu::Outcome;
use crate::scenarios::{expect, no_failures, Scenario};
use std::time::Duration;

/// The GICv3 machine of the `-gicv3` variant.
const GICV3: &str = "virt,gic-version=3,virtualization=on,iommu=smmuv3";
/// Rounds the guest runs.
const ROUNDS: u32 = 3;

pub(crate) fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "wfi-resident-vpe-woken-by-vlpi-without-exit",
            manifest: "tests/passthrough-wfi-resident.toml",
            machine: None,
            qemu_args: &["-device", "edu,dma_mask=0xffffffffffffffff"],
            timeout: Duration::from_secs(60),
            stop_when: |_| false,
            check: |o| check(o, 0, 0),
        },
        Scenario {
            name: "wfi-doorbell-non-resident-vpe-woken-by-its-doorbell",
            manifest: "tests/passthrough-wfi-doorbell.toml",
            machine: None,
            qemu_args: &["-device", "edu,dma_mask=0xffffffffffffffff"],
            timeout: Duration::from_secs(60),
            stop_when: |_| false,
            check: |o| check(o, 1, 1),
        },
        Scenario {
            name: "wfi-doorbell-policy-on-gicv3-woken-by-the-physical-lpi",
            manifest: "tests/passthrough-wfi-doorbell.toml",
            machine: Some(GICV3),
            qemu_args: &["-device", "edu,dma_mask=0xffffffffffffffff"],
            timeout: Duration::from_secs(60),
            stop_when: |_| false,
            check: |o| check(o, 1, 0),
        },
    ]
}

/// Every round: the MSI ended the WFI, was taken once, and the wait cost
/// exactly `exits` exits and `doorbells` doorbells.
fn check(o: &Outcome, exits: u32, doorbells: u32) -> Result<(), String> {
    let out = &o.output;
    no_failures(out)?;
    expect(out, "[beta] PASS hello: 2 vcpus up")?;
    for round in 0..ROUNDS {
        let prefix = format!("[alpha] PASS passthrough-wfi: round {round}: the MSI ended the WFI (after 1 WFI), vINTID 8192 taken once; during the wait hypervisor exits: {exits}, doorbells: {doorbells}");
        expect(out, &prefix)?;
    }
    if o.exit_code != Some(0) {
        return Err(format!("QEMU exit status {:?}, expected 0", o.exit_code));
    }
    Ok(())
}
