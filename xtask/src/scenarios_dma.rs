//! System scenarios of DMA isolation: a partition's edu pointed
//! at its own RAM (works, translated by the SMMU), at another partition's
//! RAM, the GIC distributor and the hypervisor's image (each stopped by
//! the SMMU, the fault logged naming the partition and the address, the
//! other partition's memory unharmed); a reset in the middle of a DMA; and
//! the manifest rules for a machine without an SMMU. GICv4 and GICv3 hosts.
//!
//! The guest side is `guests/testguest/src/guest/dma_tests.rs`.

use crate::qemu::Outcome;
use crate::scenarios::{expect, lines_of, no_failures, Scenario};
use std::time::Duration;

/// The GICv3 machine of the `-gicv3` variants, with the SMMU.
const GICV3_SMMU: &str = "virt,gic-version=3,virtualization=on,iommu=smmuv3";
/// The board's GICv4 machine without the SMMU.
const GICV4_NO_SMMU: &str = "virt,gic-version=4,virtualization=on";
/// edu with a 64-bit DMA mask (its default is 28 bits).
const EDU: &[&str] = &["-device", "edu,dma_mask=0xffffffffffffffff"];
/// Where alpha points edu in `tests/dma-isolation.toml`, by name.
const TARGETS: [(&str, &str); 3] = [
    ("peer-ram", "0x60800000"),
    ("gic-distributor", "0x8000000"),
    ("hypervisor-image", "0x40200000"),
];

/// The scenarios.
pub(crate) fn scenarios() -> Vec<Scenario> {
    let isolation = |name, machine| Scenario {
        name,
        manifest: "tests/dma-isolation.toml",
        machine,
        qemu_args: EDU,
        timeout: Duration::from_secs(90),
        stop_when: |out| {
            out.contains("] FAIL")
                || (out.contains("PASS dma-isolation: done") && out.contains("PASS dma-victim"))
        },
        check: check_isolation,
    };
    let reset = |name, machine| Scenario {
        name,
        manifest: "tests/dma-reset.toml",
        machine,
        qemu_args: EDU,
        timeout: Duration::from_secs(90),
        stop_when: |out| {
            out.contains("] FAIL")
                || (out.contains("PASS dma-reset") && out.contains("PASS dma-victim"))
        },
        check: check_reset,
    };
    vec![
        isolation(
            "dma-isolation-edu-stopped-at-peer-ram-gicd-and-hypervisor-own-ram-works",
            None,
        ),
        isolation(
            "dma-isolation-edu-stopped-at-peer-ram-gicd-and-hypervisor-own-ram-works-gicv3",
            Some(GICV3_SMMU),
        ),
        reset("dma-reset-mid-transfer-nothing-lands-in-the-new-life", None),
        reset(
            "dma-reset-mid-transfer-nothing-lands-in-the-new-life-gicv3",
            Some(GICV3_SMMU),
        ),
        Scenario {
            name: "manifest-pci-without-smmu-refused-unless-dma-unconfined",
            manifest: "tests/dma-unconfined-missing.toml",
            machine: Some(GICV4_NO_SMMU),
            qemu_args: &["-device", "edu"],
            timeout: Duration::from_secs(30),
            stop_when: |out| out.contains("powering off"),
            check: |o| {
                let out = &o.output;
                expect(
                    out,
                    "hypervisor: error: manifest: partition \"alpha\": field dma: PCI function 00:01.0 could reach all memory by DMA: this machine has no SMMU",
                )?;
                expect(out, "hypervisor: no partition started; powering off")?;
                expect(out, "SMMU     none: DMA of PCI functions is not confined")
            },
        },
        Scenario {
            name: "passthrough-without-smmu-says-dma-unconfined",
            manifest: "tests/passthrough.toml",
            machine: Some(GICV4_NO_SMMU),
            qemu_args: &["-device", "edu"],
            timeout: Duration::from_secs(60),
            stop_when: |out| out.contains("] FAIL") || out.contains("] PASS passthrough: MSI"),
            check: |o| {
                let out = &o.output;
                no_failures(out)?;
                expect(out, "SMMU     none: DMA of PCI functions is not confined")?;
                let line = out
                    .lines()
                    .find(|l| l.starts_with("partition alpha: CPUs "))
                    .ok_or("no partition line for alpha")?;
                if !line.ends_with("DMA UNCONFINED: its PCI functions can reach all memory") {
                    return Err(format!("alpha's partition line does not say it: {line}"));
                }
                Ok(())
            },
        },
    ]
}

/// Faults the hypervisor logged for `partition` (its `DMA fault` lines).
fn fault_lines<'a>(out: &'a str, partition: &str) -> Vec<&'a str> {
    let marker = format!("partition {partition}: DMA fault");
    out.lines().filter(|l| l.contains(&marker)).collect()
}

fn victim_ok(out: &str) -> Result<(), String> {
    let beta = lines_of(out, "beta");
    if !beta.iter().any(|l| l.starts_with("PASS dma-victim")) {
        return Err("beta did not report its pattern intact".into());
    }
    if !fault_lines(out, "beta").is_empty() {
        return Err("a DMA fault was blamed on beta, which has no device".into());
    }
    Ok(())
}

fn check_isolation(o: &Outcome) -> Result<(), String> {
    let out = &o.output;
    no_failures(out)?;
    expect(out, "SMMU     v3 ")?;
    let alpha = lines_of(out, "alpha");
    if !alpha.iter().any(|l| l.starts_with("PASS dma: own RAM")) {
        return Err("alpha's DMA into its own RAM did not report PASS".into());
    }
    let faults = fault_lines(out, "alpha");
    for (name, address) in TARGETS {
        if !alpha
            .iter()
            .any(|l| l.starts_with(&format!("PASS dma: {name} {address}")))
        {
            return Err(format!("alpha did not finish its DMA at {name} {address}"));
        }
        if !faults.iter().any(|l| l.contains(address)) {
            return Err(format!(
                "no DMA fault naming alpha and {address} ({name}) in the log; faults: {faults:?}"
            ));
        }
    }
    if !alpha
        .iter()
        .any(|l| l.starts_with("PASS dma-isolation: done"))
    {
        return Err("alpha did not finish".into());
    }
    victim_ok(out)
}

fn check_reset(o: &Outcome) -> Result<(), String> {
    let out = &o.output;
    no_failures(out)?;
    let alpha = lines_of(out, "alpha");
    if !alpha.iter().any(|l| l.starts_with("dma-reset: DMA into")) {
        return Err("alpha's first life did not start its DMA".into());
    }
    if !alpha
        .iter()
        .any(|l| l.starts_with("PASS dma-reset: boot 1"))
    {
        return Err("alpha's second life did not report PASS".into());
    }
    expect(out, "partition alpha: reset")?;
    victim_ok(out)
}
