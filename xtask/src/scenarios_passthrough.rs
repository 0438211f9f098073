//! System scenarios of PCI passthrough between partitions and across a
//! reset, each on the GICv4 board (direct injection, no exit per
//! MSI) and on GICv3 (`-gicv3`, the software path, one exit per MSI).
//!
//! The guest side is `passthrough_pair` and `passthrough_reset` in
//! `guests/testguest/src/guest/vits_tests.rs`; the hypervisor side is read
//! from its `physical ITS footprint` lines (`Partition::its_footprint`),
//! logged at every start and before and after every teardown of a
//! partition with PCI functions.

use crate::qemu::Outcome;
use crate::scenarios::{expect, lines_of, no_failures, Scenario};
use std::time::Duration;

/// The GICv3 machine of the `-gicv3` variants.
const GICV3: &str = "virt,gic-version=3,virtualization=on,iommu=smmuv3";
/// MSIs each partition of the pair sends (tests/passthrough-two-partitions.toml).
const PAIR: [(&str, u32); 2] = [("alpha", 24), ("beta", 40)];
/// The pair's physical DeviceIDs (host 00:01.0 and 00:02.0), the same
/// virtual one (0x8) in both guests.
const PAIR_DEVICES: [u32; 2] = [0x8, 0x10];
/// MSIs of each reset burst on vCPU 0 (the guest's RESET_BURST_V0).
const RESET_BURST_V0: u32 = 16;

/// The scenarios, each on GICv4 and GICv3.
pub(crate) fn scenarios() -> Vec<Scenario> {
    let pair = |name, machine, check| Scenario {
        name,
        manifest: "tests/passthrough-two-partitions.toml",
        machine,
        qemu_args: &["-device", "edu,addr=1", "-device", "edu,addr=2"],
        timeout: Duration::from_secs(60),
        stop_when: |out| out.contains("] FAIL"),
        check,
    };
    let reset = |name, machine, check| Scenario {
        name,
        manifest: "tests/passthrough-reset.toml",
        machine,
        qemu_args: &["-device", "edu"],
        timeout: Duration::from_secs(60),
        stop_when: |out| out.contains("] FAIL"),
        check,
    };
    vec![
        pair(
            "passthrough-two-partitions-same-ids-no-crosstalk",
            None,
            |o| check_pair(o, 0),
        ),
        pair(
            "passthrough-two-partitions-same-ids-no-crosstalk-gicv3",
            Some(GICV3),
            |o| check_pair(o, 1),
        ),
        reset(
            "passthrough-reset-mid-traffic-same-counts-and-its-footprint-after-restart",
            None,
            |o| check_reset(o, 0),
        ),
        reset(
            "passthrough-reset-mid-traffic-same-counts-and-its-footprint-after-restart-gicv3",
            Some(GICV3),
            |o| check_reset(o, 1),
        ),
    ]
}

/// One `physical ITS footprint` line of partition `name`: when (e.g.
/// `after teardown (boot 0)`) and what (`guest-made: ...; machine: ...`).
pub(crate) struct Footprint {
    pub(crate) when: String,
    pub(crate) what: String,
}

impl Footprint {
    /// The partition's part (`guest-made: ...; standing: ...`).
    pub(crate) fn partition_part(&self) -> &str {
        self.what.split("; machine: ").next().unwrap_or("")
    }

    /// The line without the heap's live bytes (which differ between a
    /// start and a teardown; `cargo xtask soak` compares them like with like).
    fn without_heap(&self) -> &str {
        self.what.split(", heap live ").next().unwrap_or(&self.what)
    }

    /// The machine's LPIs in use.
    fn lpis_in_use(&self) -> Option<u64> {
        self.what
            .split("LPIs in use ")
            .nth(1)?
            .split(',')
            .next()?
            .parse()
            .ok()
    }
}

/// Every footprint line of partition `name`, in order.
pub(crate) fn footprints(out: &str, name: &str) -> Vec<Footprint> {
    let marker = format!("partition {name}: physical ITS footprint ");
    out.lines()
        .filter_map(|l| {
            let rest = &l[l.find(&marker)? + marker.len()..];
            let (when, what) = rest.split_once("): ")?;
            Some(Footprint {
                when: format!("{when})"),
                what: what.to_string(),
            })
        })
        .collect()
}

/// The one footprint line logged `when`.
pub(crate) fn footprint<'a>(
    all: &'a [Footprint],
    name: &str,
    when: &str,
) -> Result<&'a Footprint, String> {
    let mut found = all.iter().filter(|f| f.when == when);
    match (found.next(), found.next()) {
        (Some(f), None) => Ok(f),
        (None, _) => Err(format!("no footprint line of {name} {when}")),
        (Some(_), Some(_)) => Err(format!("more than one footprint line of {name} {when}")),
    }
}

/// What a guest's own mappings look like on the physical ITS while event 0
/// of its edu is mapped, and what the hypervisor set up at boot.
fn mapped_footprint(exits_per_msi: u32) -> &'static str {
    if exits_per_msi == 0 {
        // GICv4: one VMAPTI; the function, 2 vPEs and doorbells from boot.
        "guest-made: devices 0, events 1, LPIs 0, routes 0; standing: devices 1, vPEs 2, doorbell LPIs 2"
    } else {
        // Software path: MAPD, MAPTI to one physical LPI, one route.
        "guest-made: devices 1, events 1, LPIs 1, routes 1; standing: devices 0, vPEs 0, doorbell LPIs 0"
    }
}

/// What is left after a teardown: nothing the guest made.
fn torn_down_footprint(exits_per_msi: u32) -> &'static str {
    if exits_per_msi == 0 {
        "guest-made: devices 0, events 0, LPIs 0, routes 0; standing: devices 1, vPEs 2, doorbell LPIs 2"
    } else {
        "guest-made: devices 0, events 0, LPIs 0, routes 0; standing: devices 0, vPEs 0, doorbell LPIs 0"
    }
}

fn check_pair(o: &Outcome, exits_per_msi: u32) -> Result<(), String> {
    let out = &o.output;
    no_failures(out)?;
    let mut windows = Vec::new();
    for ((name, msis), device) in PAIR.into_iter().zip(PAIR_DEVICES) {
        let lines = lines_of(out, name);
        let functions: Vec<&&str> = lines.iter().filter(|l| l.starts_with("pci: ")).collect();
        if functions.len() != 1 || !functions[0].starts_with("pci: 00:01.0 1234:11e8") {
            return Err(format!(
                "{name} sees {functions:?}, expected only its edu at 00:01.0"
            ));
        }
        expect(
            out,
            &format!("[{name}] PASS passthrough-pair: {msis} MSIs, each taken once on vCPU 0 as LPI 8192 (hypervisor exits meanwhile: {})", msis * exits_per_msi),
        )?;
        expect(
            out,
            &format!("[{name}] PASS passthrough-pair: until 3000 ms nothing else: vCPU 0 took {msis}, vCPU 1 took 0, no other INTID"),
        )?;
        // The same virtual IDs, each partition's own physical device.
        if exits_per_msi == 0 {
            expect(
                out,
                &format!(
                    "partition {name}: physical ITS: VMAPTI device {device:#x} event 0 -> vPE"
                ),
            )?;
            if out.contains("(software path)") {
                return Err("a passthrough event took the software path on a GICv4 host".into());
            }
        } else {
            expect(
                out,
                &format!("partition {name}: passthrough {device:#x} event 0 -> physical LPI"),
            )?;
        }
        let sent = lines
            .iter()
            .find_map(|l| l.strip_prefix(&format!("passthrough-pair: {msis} MSIs sent from ")))
            .ok_or(format!("{name} did not say when it sent its MSIs"))?;
        let ms: Vec<u64> = sent
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|n| n.parse().ok())
            .collect();
        let [from, to, ..] = ms[..] else {
            return Err(format!("{name}: cannot read `{sent}`"));
        };
        windows.push((name, from, to));
        let all = footprints(out, name);
        let after = footprint(&all, name, "after teardown (boot 0)")?;
        if after.partition_part() != torn_down_footprint(exits_per_msi) {
            return Err(format!(
                "{name} after teardown: {}, expected {}",
                after.what,
                torn_down_footprint(exits_per_msi)
            ));
        }
    }
    // Both partitions sent MSIs at the same time.
    let (a, b) = (windows[0], windows[1]);
    if a.1.max(b.1) >= a.2.min(b.2) {
        return Err(format!(
            "the traffic did not overlap: {} {}..{} ms, {} {}..{} ms",
            a.0, a.1, a.2, b.0, b.1, b.2
        ));
    }
    match o.exit_code {
        Some(0) => Ok(()),
        other => Err(format!("QEMU exit status {other:?}, expected 0")),
    }
}

fn check_reset(o: &Outcome, exits_per_msi: u32) -> Result<(), String> {
    let out = &o.output;
    no_failures(out)?;
    let alpha = lines_of(out, "alpha");
    for boot in 0..2 {
        if !alpha
            .iter()
            .any(|l| l.starts_with("boot:") && l.ends_with(&format!("boot-count {boot}")))
        {
            return Err(format!("alpha's boot {boot} not seen"));
        }
        expect(
            out,
            &format!("[alpha] PASS passthrough-reset: boot {boot}: {RESET_BURST_V0} MSIs taken once each on vCPU 0, after MOVI 8 on vCPU 1, nothing else (hypervisor exits on vCPU 0 meanwhile: {})", RESET_BURST_V0 * exits_per_msi),
        )?;
    }
    expect(out, "[alpha] passthrough-reset: boot 0: one more MSI pending on vCPU 1 (IRQs masked, edu not acknowledged); asking for SYSTEM_RESET")?;
    expect(out, "partition alpha: reset (PSCI SYSTEM_RESET), boot 1")?;
    expect(out, "[alpha] PASS passthrough-reset: boot 1: nothing of the last life's pending MSI arrived within 200 ms of mapping the event again")?;
    expect(out, "[beta] PASS hello: 2 vcpus up")?;
    if exits_per_msi == 0 && out.contains("(software path)") {
        return Err("a passthrough event took the software path on a GICv4 host".into());
    }
    let all = footprints(out, "alpha");
    let get = |when: &str| footprint(&all, "alpha", when);
    let (start0, start1) = (get("at start (boot 0)")?, get("at start (boot 1)")?);
    let (before0, before1) = (
        get("before teardown (boot 0)")?,
        get("before teardown (boot 1)")?,
    );
    let (after0, after1) = (
        get("after teardown (boot 0)")?,
        get("after teardown (boot 1)")?,
    );
    // The same traffic leaves the same mappings; each teardown all of
    // the guest's; each life starts where the first did.
    for (f, want) in [
        (before0, mapped_footprint(exits_per_msi)),
        (before1, mapped_footprint(exits_per_msi)),
        (after0, torn_down_footprint(exits_per_msi)),
        (after1, torn_down_footprint(exits_per_msi)),
        (start0, torn_down_footprint(exits_per_msi)),
    ] {
        if f.partition_part() != want {
            return Err(format!("alpha {}: {}, expected {want}", f.when, f.what));
        }
    }
    if start0.partition_part() != start1.partition_part()
        || start0.lpis_in_use() != start1.lpis_in_use()
    {
        return Err(format!(
            "alpha at start: boot 0 {} but boot 1 {}",
            start0.what, start1.what
        ));
    }
    // Machine-wide too, free frames included, from the end of the first
    // life on: the first BAR mapping also allocated the stage-2 tables
    // for the BAR window, which stage 2 keeps for every later life.
    for (a, b) in [(after0, start1), (before0, before1), (after0, after1)] {
        if a.without_heap() != b.without_heap() {
            return Err(format!(
                "alpha {}: {} but {}: {}",
                a.when, a.what, b.when, b.what
            ));
        }
    }
    // alpha is the only partition with physical LPIs: the allocator agrees
    // with its bookkeeping.
    let doorbells = if exits_per_msi == 0 { 2 } else { 0 };
    for (f, lpis) in [
        (start0, doorbells),
        (before0, doorbells + exits_per_msi as u64),
        (after1, doorbells),
    ] {
        if f.lpis_in_use() != Some(lpis) {
            return Err(format!(
                "alpha {}: {}; expected the LPI allocator to have {lpis} in use",
                f.when, f.what
            ));
        }
    }
    match o.exit_code {
        Some(0) => Ok(()),
        other => Err(format!("QEMU exit status {other:?}, expected 0")),
    }
}
