//! System scenarios of DMA isolation (issue 11): a partition's edu pointed
//! at its own RAM (works, translated by the SMMU), at another partition's
//! RAM, the GIC distributor and the hypervisor's image (each stopped by
//! the SMMU, the fault logged naming the partition and the address, the
//! other partition's memory unharmed); a reset in the middle of a DMA; and
//! the manifest rules for a machine without an SMMU. GICv4 and GICv3 hosts.
//!
//! The guest side is `guests/testguest/src/guest/dma_tests.rs`.

use crate::scenarios::{expect, no_failures, Scenario};
use std::time::Duration;

/// The board's GICv4 machine without the SMMU.
const GICV4_NO_SMMU: &str = "virt,gic-version=4,virtualization=on";

/// The scenarios.
pub(crate) fn scenarios() -> Vec<Scenario> {
    vec![
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
