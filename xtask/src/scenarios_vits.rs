//! System scenarios of the virtual ITS: the guest drives its vITS and checks where every LPI lands.
//!
//! The guest side is `guests/testguest/src/guest/vits_tests.rs` (with its
//! ITS driver `its.rs`): alpha drives its vITS as Linux's ITS driver does
//! and prints one `PASS vits-...: <what>` line per step; every step compares
//! all of the guest's per-vCPU LPI counters before and after, so a line also
//! means "nothing else arrived, on no other vCPU". The same guest passes on
//! bare QEMU's GICv3/v4 ITS (the oracle). Each scenario runs on the board's
//! GICv4 machine and on a GICv3 one (`-gicv3`):
//! `cargo xtask test --system-only --filter vits`.

use crate::qemu::Outcome;
use crate::scenarios::{expect, lines_of, no_failures, Scenario};
use std::time::Duration;

/// The GICv3 machine of the `-gicv3` variants.
const GICV3: &str = "virt,gic-version=3,virtualization=on";

/// What vits-basic prints, in order (RDbase = vCPU index: GITS_TYPER.PTA = 0).
const BASIC: [&str; 8] = [
    "PASS vits-basic: MAPD devices 0x10 and 0 (32 events), MAPC collections 0 -> RDbase 0x0 and 1 -> RDbase 0x1, MAPTI, SYNC: CREADR reached CWRITER",
    "PASS vits-basic: INT device 0x10 event 0 -> LPI 8192 taken once on vCPU 0",
    "PASS vits-basic: TRANSLATER write (DeviceID 0, event 5) -> LPI 8200 taken once on vCPU 0",
    "PASS vits-basic: MOVI event 0 to collection 1 -> LPI 8192 taken once on vCPU 1, not on vCPU 0",
    "PASS vits-basic: DISCARD event 0 -> INT delivers nothing within 50 ms",
    "PASS vits-basic: MAPTI event 0 again -> LPI 8192 taken once on vCPU 0",
    "PASS vits-basic: MAPD device 0x10 V=0 -> INT delivers nothing within 50 ms",
    "PASS vits-basic: totals: vCPU 0 took 3, vCPU 1 took 1, nothing else",
];

/// What vits-pending-moves prints, in order.
const PENDING_MOVES: [&str; 7] = [
    "PASS vits-pending-moves: LPIs 8192, 8193, 8194, 8196 pending at vCPU 1 (IRQs masked): none taken",
    "PASS vits-pending-moves: MOVI of pending LPI 8196 to vCPU 0 -> taken once on vCPU 0",
    "PASS vits-pending-moves: MAPC collection 1 -> vCPU 0 + MOVALL: pending LPIs 8192, 8193, 8194 each taken once on vCPU 0",
    "PASS vits-pending-moves: vCPU 1 unmasked: nothing left behind on the old target",
    "PASS vits-pending-moves: after the retarget, INT of event 0 -> LPI 8192 taken once on vCPU 0",
    "PASS vits-pending-moves: CLEAR of pending LPI 8195 (vCPU 0 masked) -> not taken after unmasking",
    "PASS vits-pending-moves: INT of event 3 after CLEAR -> LPI 8195 taken once on vCPU 0",
];

/// What vits-config prints, in order.
const CONFIG: [&str; 6] = [
    "PASS vits-config: enable bit of LPI 8192 cleared + INV -> INT not taken within 50 ms",
    "PASS vits-config: enable bit set again + INV -> the pending LPI 8192 taken once",
    "PASS vits-config: enable bits of LPIs 8193..8195 cleared + INVALL -> INT of each not taken",
    "PASS vits-config: enable bits set again + INVALL -> pending LPIs 8193..8195 each taken once",
    "PASS vits-config: priorities 0x40/0x80/0xc0 honoured: taken in order 8194, 8193, 8195",
    "PASS vits-config: LPI 8195 (priority 0xc0) held by PMR 0x80, taken once at PMR 0xff",
];

/// The last line of vits-garbage (the valid command after the invalid ones).
const GARBAGE_DONE: &str =
    "[alpha] PASS vits-garbage: valid MAPTI + INT after the invalid commands -> LPI 8193 taken once on vCPU 0";

/// How many invalid commands vits-garbage writes (PTA = 0: the MAPC to a
/// missing processor is among them).
const GARBAGE_COMMANDS: usize = 18;

/// The vITS scenarios, each on GICv4 and GICv3.
pub(crate) fn scenarios() -> Vec<Scenario> {
    let mut all = Vec::new();
    all.extend(both(
        "vits-lpi-on-right-vcpu-translater-movi-discard-remap",
        "tests/vits-basic.toml",
        check_basic,
    ));
    all.extend(both(
        "vits-pending-lpis-follow-movi-mapc-retarget-movall-and-clear",
        "tests/vits-pending-moves.toml",
        check_pending_moves,
    ));
    all.extend(both(
        "vits-property-table-inv-invall-and-priority",
        "tests/vits-config.toml",
        check_config,
    ));
    all.extend(both(
        "vits-invalid-commands-skipped-queue-continues-other-partition-unaffected",
        "tests/vits-garbage.toml",
        check_garbage,
    ));
    all.extend(both(
        "vits-second-vits-of-a-partition-has-its-own-frames-and-translation",
        "tests/vits-second.toml",
        check_second,
    ));
    all.extend(both(
        "vits-two-partitions-same-ids-each-sees-only-its-own-lpis",
        "tests/vits-two-partitions.toml",
        check_two_partitions,
    ));
    all
}

/// A scenario on the board's machine (GICv4) and its `-gicv3` variant.
fn both(
    name: &'static str,
    manifest: &'static str,
    check: fn(&Outcome) -> Result<(), String>,
) -> [Scenario; 2] {
    let v3: &'static str = Box::leak(format!("{name}-gicv3").into_boxed_str());
    let garbage = manifest.ends_with("vits-garbage.toml");
    let one = |name, machine| Scenario {
        name,
        manifest,
        machine,
        qemu_args: &[],
        timeout: Duration::from_secs(60),
        stop_when: if garbage { stop_garbage } else { stop_on_fail },
        check,
    };
    [one(name, None), one(v3, Some(GICV3))]
}

/// Stops as soon as a guest fails (the others power off by themselves).
fn stop_on_fail(out: &str) -> bool {
    out.contains("] FAIL")
}

/// vits-garbage's beta ticks forever: stop 10 ticks after alpha's last
/// line, or as soon as a guest fails.
fn stop_garbage(out: &str) -> bool {
    crate::scenarios::ticks_after(out, "beta", GARBAGE_DONE) >= 10 || stop_on_fail(out)
}

/// `partition`'s lines include every line of `want`, each exactly once and
/// in this order.
fn lines_in_order(out: &str, partition: &str, want: &[&str]) -> Result<(), String> {
    let lines = lines_of(out, partition);
    let mut from = 0;
    for w in want {
        let n = lines.iter().filter(|l| l == &w).count();
        if n != 1 {
            return Err(format!(
                "[{partition}] printed `{w}` {n} times, expected once"
            ));
        }
        let at = lines
            .iter()
            .position(|l| l == w)
            .ok_or_else(|| format!("[{partition}] never printed `{w}`"))?;
        if at < from {
            return Err(format!("[{partition}] printed `{w}` out of order"));
        }
        from = at;
    }
    Ok(())
}

/// The guest found its ITS through the device tree, and its GITS_TYPER
/// says PTA = 0 (RDbase = processor number = vCPU index).
fn its_probed(out: &str, partition: &str) -> Result<(), String> {
    let line = lines_of(out, partition)
        .into_iter()
        .find(|l| l.starts_with("vits: ITS at "))
        .ok_or_else(|| format!("[{partition}] did not probe its ITS"))?;
    if !line.contains("PTA 0") {
        return Err(format!("[{partition}] sees PTA != 0: {line}"));
    }
    Ok(())
}

/// A partition that ran a vITS scenario to the end and powered off.
fn stopped(out: &str, partition: &str) -> Result<(), String> {
    expect(
        out,
        &format!("partition {partition}: stopped (PSCI SYSTEM_OFF)"),
    )
}

/// QEMU exited with status 0: every partition powered off.
fn exit_zero(o: &Outcome) -> Result<(), String> {
    match o.exit_code {
        Some(0) => Ok(()),
        other => Err(format!(
            "QEMU exit status {other:?}, expected 0 (all partitions off)"
        )),
    }
}

/// One partition running vits-X, beta booting beside it: every PASS line
/// once and in order, both partitions off, QEMU exit 0.
fn check_alpha(o: &Outcome, want: &[&str]) -> Result<(), String> {
    let out = &o.output;
    no_failures(out)?;
    its_probed(out, "alpha")?;
    lines_in_order(out, "alpha", want)?;
    expect(out, "[beta] PASS hello: 2 vcpus up")?;
    stopped(out, "alpha")?;
    exit_zero(o)
}

/// vits-basic: the LPI lands on the vCPU its collection names, through INT
/// and a TRANSLATER write; MOVI moves it; DISCARD and MAPD V=0 stop it;
/// exact totals per vCPU.
fn check_basic(o: &Outcome) -> Result<(), String> {
    check_alpha(o, &BASIC)
}

/// vits-second: the vits-basic checks, on the partition's second vITS
/// (its frames at 0x0a00_0000, from the guest's device tree); the
/// hypervisor's logs name vITS 0.1, never vITS 0.0 (the first is untouched).
fn check_second(o: &Outcome) -> Result<(), String> {
    let want: Vec<String> = BASIC
        .iter()
        .map(|l| l.replace("vits-basic", "vits-second"))
        .collect();
    let want: Vec<&str> = want.iter().map(String::as_str).collect();
    check_alpha(o, &want)?;
    let out = &o.output;
    expect(out, "[alpha] vits: ITS at 0xa000000 ")?;
    expect(out, "vITS 0.1: INT at queue offset")?;
    if out.contains("vITS 0.0:") {
        return Err("the first vITS logged commands: the guest only used the second".into());
    }
    Ok(())
}

/// vits-pending-moves: pending LPIs follow MOVI and MAPC retarget + MOVALL,
/// each taken exactly once on the new vCPU and never on the old; CLEAR
/// removes a pending one.
fn check_pending_moves(o: &Outcome) -> Result<(), String> {
    check_alpha(o, &PENDING_MOVES)
}

/// vits-config: the enable bit through INV and INVALL, the pending LPI
/// delivered once when enabled again, priority order and PMR.
fn check_config(o: &Outcome) -> Result<(), String> {
    check_alpha(o, &CONFIG)
}

/// vits-garbage: every invalid command skipped (CREADR reaches CWRITER, no
/// stall), no interrupt from them, the valid MAPTI + INT after them works;
/// the hypervisor logged skipped commands of alpha's vITS (partition 0)
/// and none of beta's; beta kept ticking with consecutive numbers.
fn check_garbage(o: &Outcome) -> Result<(), String> {
    let out = &o.output;
    no_failures(out)?;
    its_probed(out, "alpha")?;
    let skipped = lines_of(out, "alpha")
        .into_iter()
        .find(|l| l.starts_with("PASS vits-garbage: ") && l.contains("invalid commands skipped"))
        .ok_or("alpha did not report its invalid commands skipped")?;
    if !skipped.starts_with(&format!(
        "PASS vits-garbage: {GARBAGE_COMMANDS} invalid commands skipped"
    )) {
        return Err(format!(
            "alpha wrote another number of invalid commands: {skipped}"
        ));
    }
    expect(
        out,
        "[alpha] PASS vits-garbage: no interrupt from the invalid commands within 50 ms",
    )?;
    expect(out, GARBAGE_DONE)?;
    stopped(out, "alpha")?;
    let hv: Vec<&str> = out.lines().filter(|l| l.starts_with("[hv ")).collect();
    let alpha_skips: Vec<&&str> = hv
        .iter()
        .filter(|l| l.contains("vITS 0.0: ") && l.contains(" skipped: "))
        .collect();
    for needle in [
        "unknown command number",
        "exceeds Devbits",
        "not mapped",
        "exceeds the ITT size",
        "is not a guest LPI",
        "out of range",
        "names no vCPU",
    ] {
        if !alpha_skips.iter().any(|l| l.contains(needle)) {
            return Err(format!(
                "the hypervisor logged no skipped command of alpha's vITS saying `{needle}`"
            ));
        }
    }
    if let Some(l) = hv.iter().find(|l| l.contains("vITS 1.")) {
        return Err(format!(
            "beta's vITS logged something though beta never used it: {l}"
        ));
    }
    if let Some(l) = hv.iter().find(|l| l.contains("stalled")) {
        return Err(format!("a vITS queue stalled: {l}"));
    }
    let ticks: Vec<u64> = lines_of(out, "beta")
        .into_iter()
        .filter_map(|l| l.strip_prefix("tick ")?.parse().ok())
        .collect();
    if ticks.iter().enumerate().any(|(i, &t)| t != i as u64) {
        return Err(format!("beta's ticks are not 0, 1, 2, ...: {ticks:?}"));
    }
    let after = crate::scenarios::ticks_after(out, "beta", GARBAGE_DONE);
    if after < 10 {
        return Err(format!(
            "beta printed only {after} ticks after alpha's garbage"
        ));
    }
    Ok(())
}

/// vits-two-partitions: both partitions run vits-basic at once with the
/// same IDs; each passes every step with exact per-vCPU counts (a leaked
/// LPI would be an extra count in one of them), both off, QEMU exit 0.
fn check_two_partitions(o: &Outcome) -> Result<(), String> {
    let out = &o.output;
    no_failures(out)?;
    for p in ["alpha", "beta"] {
        its_probed(out, p)?;
        lines_in_order(out, p, &BASIC)?;
        stopped(out, p)?;
    }
    exit_zero(o)
}
