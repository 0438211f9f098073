//! `cargo xtask test`: host unit tests, then QEMU system scenarios.
//!
//! A scenario boots the hypervisor on a board with a manifest and reads
//! what happened from the consoles: the guests' lines (prefixed with their
//! partition's name) and the hypervisor's own. Each has a time bound; QEMU
//! is killed when it runs out, or as soon as the scenario has seen enough.

use crate::board::Board;
use crate::qemu::{self, Outcome};
use crate::{build, Options};
use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

/// One system test.
pub(crate) struct Scenario {
    /// Name printed with PASS/FAIL (the behaviour it pins).
    pub(crate) name: &'static str,
    /// Manifest, relative to the board folder.
    pub(crate) manifest: &'static str,
    /// `-M` override (e.g. a GICv3 machine), if any.
    pub(crate) machine: Option<&'static str>,
    /// Extra QEMU arguments (devices, the hypervisor's command line).
    pub(crate) qemu_args: &'static [&'static str],
    /// Time bound for the whole run.
    pub(crate) timeout: Duration,
    /// Ends the run early once the output shows enough.
    pub(crate) stop_when: fn(&str) -> bool,
    /// Checks the run; `Err` says what was wrong.
    pub(crate) check: fn(&Outcome) -> Result<(), String>,
}

/// A system test that boots something other than the hypervisor: no
/// bundle or manifest, its own QEMU command and checks (the Linux guest on
/// bare QEMU, the oracle for Linux in partitions).
pub(crate) struct DirectScenario {
    /// Name printed with PASS/FAIL.
    pub(crate) name: &'static str,
    /// Runs it (root, board, console log); `Err` says what was wrong.
    pub(crate) run: fn(&Path, &Board, &Path) -> Result<(), String>,
}

fn direct_scenarios() -> Vec<DirectScenario> {
    let mut all = vec![DirectScenario {
        name: "linux-on-bare-qemu-oracle-its-msix-nvme-ping-and-moved-vector",
        run: crate::linux::oracle::scenario,
    }];
    all.push(DirectScenario {
        name: "cargo-xtask-run-exits-non-zero-when-the-manifest-is-refused",
        run: run_refused_manifest,
    });
    all.extend(crate::scenarios_linux::scenarios());
    all
}

/// `cargo xtask run` with the invalid manifest, as a user would start it:
/// QEMU powers off cleanly (status 0) after the refusal, and xtask must
/// still exit non-zero and say why.
fn run_refused_manifest(root: &Path, board: &Board, log: &Path) -> Result<(), String> {
    let xtask = std::env::current_exe().map_err(|e| e.to_string())?;
    let manifest = board.dir.join("invalid-manifest.toml");
    let out = Command::new(xtask)
        .current_dir(root)
        .args(["run", "--board", &board.name, "--manifest"])
        .arg(&manifest)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("starting cargo xtask run: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::write(log, &text);
    if out.status.success() {
        return Err(format!(
            "cargo xtask run exited {} on a refused manifest (console: {})",
            out.status,
            log.display()
        ));
    }
    expect(
        &text,
        "xtask: the hypervisor refused to start: manifest: partition \"beta\": field cpus",
    )
    .map_err(|e| format!("{e} (console: {})", log.display()))
}

fn scenarios() -> Vec<Scenario> {
    let mut all = vec![
        Scenario {
            name: "two-partitions-boot-and-report",
            manifest: "tests/hello.toml",
            machine: None,
            qemu_args: &[],
            timeout: Duration::from_secs(60),
            stop_when: |_| false,
            check: check_two_partitions,
        },
        Scenario {
            name: "two-partitions-boot-and-report-gicv3",
            manifest: "tests/hello.toml",
            machine: Some("virt,gic-version=3,virtualization=on"),
            qemu_args: &[],
            timeout: Duration::from_secs(60),
            stop_when: |_| false,
            check: check_two_partitions,
        },
        Scenario {
            name: "two-partitions-boot-and-report-gicv2",
            manifest: "tests/hello.toml",
            machine: Some("virt,gic-version=2,virtualization=on"),
            qemu_args: &[],
            timeout: Duration::from_secs(60),
            stop_when: |_| false,
            check: check_two_partitions,
        },
        Scenario {
            name: "vgicv2-virtual-timer-ticks-and-sgi-between-vcpus-on-virt-gicv2",
            manifest: "tests/gicv2.toml",
            machine: Some("virt,gic-version=2,virtualization=on"),
            qemu_args: &[],
            timeout: Duration::from_secs(60),
            stop_when: |_| false,
            check: crate::scenarios_raspi::check_vgicv2,
        },
        Scenario {
            name: "secondary-vcpu-started-with-psci-cpu-on",
            manifest: "tests/hello.toml",
            machine: None,
            qemu_args: &[],
            timeout: Duration::from_secs(60),
            stop_when: |_| false,
            check: check_cpu_on,
        },
        Scenario {
            name: "access-outside-partition-is-contained",
            manifest: "tests/contain.toml",
            machine: None,
            qemu_args: &[],
            timeout: Duration::from_secs(60),
            stop_when: |out| {
                ticks_after(out, "beta", "[alpha] PASS escape: write at 0x44000000") >= 10
            },
            check: check_contained,
        },
        Scenario {
            name: "guest-stuck-re-taking-its-abort-is-stopped-with-a-reason-neighbour-unaffected",
            manifest: "tests/stuck.toml",
            machine: None,
            qemu_args: &[],
            // 10,000 faults under TCG: seconds unloaded, a minute loaded.
            timeout: Duration::from_secs(180),
            stop_when: |out| ticks_after(out, "beta", "partition alpha: stopped") >= 10,
            check: check_stuck,
        },
        Scenario {
            name: "system-reset-restarts-one-partition-only",
            manifest: "tests/reset.toml",
            machine: None,
            qemu_args: &[],
            timeout: Duration::from_secs(60),
            stop_when: |out| ticks_after(out, "beta", "[alpha] PASS reset") >= 10,
            check: check_reset,
        },
        Scenario {
            name: "invalid-manifest-stops-boot-naming-the-field",
            manifest: "invalid-manifest.toml",
            machine: None,
            qemu_args: &[],
            timeout: Duration::from_secs(60),
            stop_when: |_| false,
            check: check_invalid_manifest,
        },
        Scenario {
            name: "its-msi-becomes-lpi-at-el2-then-discard-stops-it",
            manifest: "tests/hello.toml",
            machine: Some("virt,gic-version=4,virtualization=on"),
            qemu_args: &["-device", "edu", "-append", "selftest=its"],
            timeout: Duration::from_secs(60),
            stop_when: |_| false,
            check: check_its_selftest,
        },
        Scenario {
            name: "its-msi-becomes-lpi-at-el2-then-discard-stops-it-gicv3",
            manifest: "tests/hello.toml",
            machine: Some("virt,gic-version=3,virtualization=on"),
            qemu_args: &["-device", "edu", "-append", "selftest=its"],
            timeout: Duration::from_secs(60),
            stop_when: |_| false,
            check: check_its_selftest,
        },
        Scenario {
            name: "gicv4-vlpi-reaches-guest-without-exit-and-doorbell-when-not-resident",
            manifest: "tests/gicv4.toml",
            machine: Some("virt,gic-version=4,virtualization=on"),
            qemu_args: &["-device", "edu", "-append", "selftest=gicv4"],
            timeout: Duration::from_secs(60),
            stop_when: |out| out.contains("[alpha] PASS doorbell") || out.contains("FAIL"),
            check: check_gicv4,
        },
        Scenario {
            name: "vmovp-moves-vpe-to-another-redistributor-pending-vlpi-delivered-once-there",
            manifest: "tests/vmovp.toml",
            machine: Some("virt,gic-version=4,virtualization=on"),
            qemu_args: &["-device", "edu", "-append", "selftest=vmovp"],
            timeout: Duration::from_secs(60),
            stop_when: |out| {
                out.contains("[alpha] PASS vmovp: after the move") || out.contains("FAIL")
            },
            check: check_vmovp,
        },
        Scenario {
            name: "guest-sees-only-handled-cpu-features-and-sve-is-undefined",
            manifest: "tests/cpu-features.toml",
            machine: None,
            qemu_args: &[],
            timeout: Duration::from_secs(60),
            stop_when: |_| false,
            check: check_cpu_features,
        },
        Scenario {
            name: "passthrough-pci-function-bars-without-exits-msis-through-the-guests-vits",
            manifest: "tests/passthrough.toml",
            machine: None,
            qemu_args: &["-device", "edu"],
            timeout: Duration::from_secs(60),
            stop_when: |_| false,
            check: check_passthrough_gicv4,
        },
        Scenario {
            name: "passthrough-pci-function-bars-without-exits-msis-through-the-guests-vits-gicv3",
            manifest: "tests/passthrough.toml",
            machine: Some("virt,gic-version=3,virtualization=on,iommu=smmuv3"),
            qemu_args: &["-device", "edu"],
            timeout: Duration::from_secs(60),
            stop_when: |_| false,
            check: check_passthrough_gicv3,
        },
        Scenario {
            name: "passthrough-msix-e1000e-vectors-without-exits",
            manifest: "tests/passthrough-msix.toml",
            machine: None,
            qemu_args: &["-device", "e1000e"],
            timeout: Duration::from_secs(60),
            stop_when: |_| false,
            check: check_msix_gicv4,
        },
        Scenario {
            name: "passthrough-msix-e1000e-vectors-without-exits-gicv3",
            manifest: "tests/passthrough-msix.toml",
            machine: Some("virt,gic-version=3,virtualization=on,iommu=smmuv3"),
            qemu_args: &["-device", "e1000e"],
            timeout: Duration::from_secs(60),
            stop_when: |_| false,
            check: check_msix_gicv3,
        },
    ];
    all.extend(crate::scenarios_passthrough::scenarios());
    all.extend(crate::scenarios_dma::scenarios());
    all.extend(crate::scenarios_flood::scenarios());
    all.extend(crate::scenarios_vgic::scenarios());
    all.extend(crate::scenarios_vits::scenarios());
    all.extend(crate::scenarios_wfi::scenarios());
    all.extend(crate::scenarios_guest_arch::scenarios());
    all
}

/// Runs the host tests and the system scenarios.
pub fn test_all(root: &Path, opts: &Options) -> Result<ExitCode, String> {
    let mut host_ok = true;
    if !opts.system_only {
        println!("== host unit tests (cargo test --workspace)");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(root)
            .args(["test", "--workspace"])
            .status()
            .map_err(|e| e.to_string())?;
        host_ok = status.success();
        if !host_ok {
            println!("host unit tests FAILED");
        }
        // The fuzz targets' checks over their seeds and regression inputs:
        // plain `cargo test`, no cargo-fuzz or libFuzzer (`cargo xtask fuzz`
        // does the fuzzing).
        println!("== fuzz seeds and regression inputs (hypervisor/fuzz, replayed)");
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(root)
            .args(["test", "--manifest-path", "hypervisor/fuzz/Cargo.toml"])
            .args([
                "--no-default-features",
                "--target-dir",
                "target/fuzz-replay",
            ])
            .status()
            .map_err(|e| e.to_string())?;
        if !status.success() {
            println!("fuzz replay FAILED");
            host_ok = false;
        }
    }
    if opts.host_only {
        return Ok(if host_ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let selected = |name: &str| {
        opts.filter
            .as_ref()
            .is_none_or(|f| name.contains(f.as_str()))
    };
    let hypervisor_scenarios: Vec<Scenario> = scenarios()
        .into_iter()
        .filter(|s| selected(s.name))
        .collect();
    let direct_scenarios: Vec<DirectScenario> = direct_scenarios()
        .into_iter()
        .filter(|s| selected(s.name))
        .collect();
    let bare_scenarios: Vec<_> = crate::scenarios_guest_arch::bare_scenarios()
        .into_iter()
        .filter(|s| selected(s.name))
        .collect();
    let board = Board::load(root, "qemu-virt")?;
    qemu::check(&board.qemu)?;
    // Only the hypervisor's scenarios and the test guest on bare QEMU need
    // it built.
    let artifacts = if hypervisor_scenarios.is_empty() && bare_scenarios.is_empty() {
        None
    } else {
        Some(build::build(root, &board)?)
    };
    let out_dir = root.join("target").join(build::TARGET).join("release");
    println!("== system scenarios ({})", board.name);
    let (mut passed, mut failed) = (0, 0);
    let mut report = |name: &str, started: Instant, result: Result<(), String>| {
        let secs = started.elapsed().as_secs_f32();
        match result {
            Ok(()) => {
                passed += 1;
                println!("PASS {name} ({secs:.1} s)");
            }
            Err(e) => {
                failed += 1;
                println!("FAIL {name} ({secs:.1} s): {e}");
            }
        }
    };
    if let Some(artifacts) = &artifacts {
        for s in &hypervisor_scenarios {
            let started = Instant::now();
            report(s.name, started, run_scenario(&board, artifacts, s));
        }
    }
    for s in &bare_scenarios {
        let started = Instant::now();
        let log = out_dir.join(format!("scenario-{}.log", s.name));
        let elf = out_dir.join("testguest");
        report(
            s.name,
            started,
            crate::scenarios_guest_arch::run_bare(&board, &elf, s, &log),
        );
    }
    for s in &direct_scenarios {
        let started = Instant::now();
        let log = out_dir.join(format!("scenario-{}.log", s.name));
        let result = std::fs::create_dir_all(&out_dir)
            .map_err(|e| format!("{}: {e}", out_dir.display()))
            .and_then(|()| (s.run)(root, &board, &log));
        report(s.name, started, result);
    }
    // The raspi4b board's scenarios: one build for that board, last (it
    // replaces the test image the qemu-virt scenarios used).
    let raspi: Vec<Scenario> = crate::scenarios_raspi::scenarios()
        .into_iter()
        .filter(|s| selected(s.name))
        .collect();
    if !raspi.is_empty() {
        let board = Board::load(root, crate::scenarios_raspi::BOARD)?;
        println!("== system scenarios ({})", board.name);
        let artifacts = build::build(root, &board)?;
        for s in &raspi {
            let started = Instant::now();
            report(s.name, started, run_scenario(&board, &artifacts, s));
        }
    }
    println!("system scenarios: {passed} passed, {failed} failed");
    Ok(if failed == 0 && host_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub(crate) fn run_scenario(
    board: &Board,
    artifacts: &build::Artifacts,
    s: &Scenario,
) -> Result<(), String> {
    let bundle = artifacts
        .image
        .with_file_name(format!("bundle-test-{}.bin", s.name));
    build::bundle(artifacts, &board.dir.join(s.manifest), &bundle)?;
    let mut q = board.qemu.clone();
    if let Some(m) = s.machine {
        q.machine = m.into();
    }
    let extra: Vec<String> = s.qemu_args.iter().map(|a| a.to_string()).collect();
    let outcome = qemu::run_captured(
        qemu::command(&q, &artifacts.image, &bundle, &extra),
        s.timeout,
        &s.stop_when,
    )?;
    let log = artifacts
        .image
        .with_file_name(format!("scenario-{}.log", s.name));
    let _ = std::fs::write(&log, &outcome.output);
    if outcome.timed_out {
        return Err(format!(
            "timed out after {:?} (console: {})",
            s.timeout,
            log.display()
        ));
    }
    (s.check)(&outcome).map_err(|e| format!("{e} (console: {})", log.display()))
}

/// Lines of partition `name` in the output.
pub(crate) fn lines_of<'a>(out: &'a str, name: &str) -> Vec<&'a str> {
    let prefix = format!("[{name}] ");
    out.lines()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .collect()
}

/// How many `tick` lines partition `name` printed after the first line containing `marker`.
pub(crate) fn ticks_after(out: &str, name: &str, marker: &str) -> usize {
    let Some(at) = out.find(marker) else { return 0 };
    lines_of(&out[at..], name)
        .iter()
        .filter(|l| l.starts_with("tick "))
        .count()
}

pub(crate) fn expect(out: &str, needle: &str) -> Result<(), String> {
    if out.contains(needle) {
        Ok(())
    } else {
        Err(format!("expected `{needle}` in the output"))
    }
}

pub(crate) fn no_failures(out: &str) -> Result<(), String> {
    match out
        .lines()
        .find(|l| l.contains("] FAIL") || l.contains("PANIC") || l.contains("FATAL"))
    {
        Some(l) => Err(format!("failure reported: {l}")),
        None => Ok(()),
    }
}

/// (CPUs, RAM PA start, size) of a partition from the hypervisor's boot lines.
fn partition_layout(out: &str, name: &str) -> Result<(String, u64, u64), String> {
    let prefix = format!("partition {name}: CPUs ");
    let line = out
        .lines()
        .find(|l| l.starts_with(&prefix))
        .ok_or(format!("no boot line for partition {name}"))?;
    let cpus = line[prefix.len()..]
        .split(']')
        .next()
        .unwrap_or("")
        .to_string()
        + "]";
    let pa = line
        .split("-> PA ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .ok_or("no PA")?;
    let pa = u64::from_str_radix(pa.trim_start_matches("0x"), 16).map_err(|e| e.to_string())?;
    let mib: u64 = line
        .split(" MiB")
        .next()
        .and_then(|s| s.rsplit('(').next())
        .and_then(|s| s.parse().ok())
        .ok_or("no size")?;
    Ok((cpus, pa, mib << 20))
}

fn check_two_partitions(o: &Outcome) -> Result<(), String> {
    let out = &o.output;
    no_failures(out)?;
    expect(out, "hypervisor ")?;
    expect(out, "[alpha] PASS hello: 2 vcpus up")?;
    expect(out, "[beta] PASS hello: 2 vcpus up")?;
    expect(out, "partition alpha: stopped (PSCI SYSTEM_OFF)")?;
    expect(out, "all partitions stopped; powering off")?;
    let (cpus_a, pa_a, size_a) = partition_layout(out, "alpha")?;
    let (cpus_b, pa_b, size_b) = partition_layout(out, "beta")?;
    if cpus_a == cpus_b {
        return Err(format!("both partitions on CPUs {cpus_a}"));
    }
    if pa_a < pa_b + size_b && pa_b < pa_a + size_a {
        return Err(format!(
            "RAM overlaps: alpha at {pa_a:#x}, beta at {pa_b:#x}"
        ));
    }
    match o.exit_code {
        Some(0) => Ok(()),
        other => Err(format!(
            "QEMU exit status {other:?}, expected 0 (PSCI SYSTEM_OFF)"
        )),
    }
}

/// The ID registers' hidden features read as absent, and the SVE
/// instruction trapped at EL2 (EC 0x19) came back to the guest as an
/// undefined instruction (EC 0).
fn check_cpu_features(o: &Outcome) -> Result<(), String> {
    let out = &o.output;
    no_failures(out)?;
    expect(
        out,
        "[alpha] PASS cpu-features: SVE, RAS, EL2, MTE, SME, pointer authentication read as absent",
    )?;
    expect(
        out,
        "[alpha] PASS cpu-features: an SVE instruction is undefined (ESR_EL1 0x2000000)",
    )?;
    expect(
        out,
        "partition alpha: vCPU 0: unhandled trap ESR_EL2 0x66000000",
    )?;
    expect(
        out,
        "[alpha] PASS cpu-features: an IMPLEMENTATION DEFINED register is undefined",
    )?;
    // Undefined because the hypervisor trapped it (HCR_EL2.TIDCP: EC 0x18,
    // MRS S3_0_C15_C0_0, x0), not because the CPU lacks it.
    expect(
        out,
        "partition alpha: vCPU 0: unhandled trap ESR_EL2 0x62303c01",
    )?;
    expect(out, "[beta] PASS hello: 2 vcpus up")
}

fn check_cpu_on(o: &Outcome) -> Result<(), String> {
    let out = &o.output;
    no_failures(out)?;
    for p in ["alpha", "beta"] {
        let lines = lines_of(out, p);
        if !lines.iter().any(|l| l.starts_with("vcpu1 up: mpidr 0x1")) {
            return Err(format!(
                "partition {p}: vCPU 1 did not report from MPIDR 0x1"
            ));
        }
        if !lines
            .iter()
            .any(|l| l.starts_with("PASS hello: 2 vcpus up"))
        {
            return Err(format!("partition {p}: vCPU 0 did not see vCPU 1 come up"));
        }
    }
    Ok(())
}

fn check_contained(o: &Outcome) -> Result<(), String> {
    let out = &o.output;
    no_failures(out)?;
    // The first target must be beta's physical RAM: the strongest escape.
    let (_, beta_pa, _) = partition_layout(out, "beta")?;
    for what in ["read", "write"] {
        expect(
            out,
            &format!("[alpha] PASS escape: {what} at {beta_pa:#x} aborted"),
        )?;
        expect(
            out,
            &format!("[alpha] PASS escape: {what} at 0x44000000 aborted"),
        )?;
    }
    expect(out, "partition alpha: vCPU 0 read from IPA")?;
    expect(out, "partition alpha: vCPU 0 wrote to IPA")?;
    if !out.contains("outside the partition") {
        return Err("the hypervisor did not log the access outside the partition".into());
    }
    expect(
        out,
        "[alpha] PASS escape: load pair from the console aborted",
    )?;
    expect(out, "the hypervisor cannot emulate (no syndrome")?;
    let after = ticks_after(out, "beta", "[alpha] PASS escape: write at 0x44000000");
    if after < 10 {
        return Err(format!(
            "beta printed only {after} ticks after alpha's fault"
        ));
    }
    if lines_of(out, "alpha")
        .iter()
        .filter(|l| l.starts_with("tick "))
        .count()
        == 0
    {
        return Err("alpha did not keep running after its aborts".into());
    }
    Ok(())
}

fn check_stuck(o: &Outcome) -> Result<(), String> {
    let out = &o.output;
    expect(out, "[alpha] stuck: faulting at 0x44000000")?;
    let stuck = out
        .lines()
        .find(|l| l.contains("partition alpha: vCPU 0 is stuck: it took the same exception"))
        .ok_or("no line says alpha's vCPU 0 is stuck")?;
    if !stuck.contains("at PC 0x402") {
        return Err(format!("the stuck line does not name alpha's PC: {stuck}"));
    }
    expect(
        out,
        "partition alpha: stopped (stuck re-taking the same exception)",
    )?;
    // The loop cost a handful of log lines, not one per fault.
    let warnings = out
        .lines()
        .filter(|l| l.contains("partition alpha: vCPU 0 read from IPA 0x44000000"))
        .count();
    if !(8..=24).contains(&warnings) {
        return Err(format!(
            "{warnings} lines for alpha's repeated fault (expected the first 8 and then one per power of two)"
        ));
    }
    let after = ticks_after(out, "beta", "partition alpha: stopped");
    if after < 10 {
        return Err(format!("beta printed {after} ticks after alpha stopped"));
    }
    no_failures(out)
}

fn check_reset(o: &Outcome) -> Result<(), String> {
    let out = &o.output;
    no_failures(out)?;
    let alpha = lines_of(out, "alpha");
    let beta = lines_of(out, "beta");
    if !alpha
        .iter()
        .any(|l| l.starts_with("boot:") && l.ends_with("boot-count 0"))
    {
        return Err("alpha's first boot not seen".into());
    }
    if !alpha
        .iter()
        .any(|l| l.starts_with("boot:") && l.ends_with("boot-count 1"))
    {
        return Err("alpha did not boot again after SYSTEM_RESET".into());
    }
    // vCPU 1 was running when vCPU 0 reset the partition, and came up again.
    if alpha
        .iter()
        .filter(|l| l.starts_with("PASS hello: 2 vcpus up"))
        .count()
        != 2
    {
        return Err("alpha's second vCPU did not run in both lives".into());
    }
    expect(out, "partition alpha: reset (PSCI SYSTEM_RESET), boot 1")?;
    let beta_boots = beta.iter().filter(|l| l.starts_with("boot:")).count();
    if beta_boots != 1 {
        return Err(format!(
            "beta booted {beta_boots} times; it must not be reset"
        ));
    }
    // Beta's ticks count up without a restart from 0.
    let ticks: Vec<u64> = beta
        .iter()
        .filter_map(|l| l.strip_prefix("tick ")?.parse().ok())
        .collect();
    if ticks.windows(2).any(|w| w[1] != w[0] + 1) {
        return Err(format!("beta's ticks are not one steady count: {ticks:?}"));
    }
    Ok(())
}

fn check_invalid_manifest(o: &Outcome) -> Result<(), String> {
    let out = &o.output;
    expect(
        out,
        "manifest: partition \"beta\": field cpus: CPU 1 is already given to partition \"alpha\"",
    )?;
    expect(out, "no partition started")?;
    if out
        .lines()
        .any(|l| l.starts_with("[alpha]") || l.starts_with("[beta]"))
    {
        return Err("a partition ran despite the invalid manifest".into());
    }
    match o.exit_code {
        Some(0) => {}
        other => {
            return Err(format!(
                "QEMU exit status {other:?}, expected a clean power-off"
            ))
        }
    }
    // QEMU's status is 0 after the power-off: `cargo xtask run` must still
    // fail, with the reason, from what the console says.
    match qemu::hypervisor_end(out) {
        Some(qemu::HypervisorEnd::Refused(why)) if why.contains("field cpus") => Ok(()),
        other => Err(format!(
            "`cargo xtask run` would not report the refusal: {other:?}"
        )),
    }
}

fn check_its_selftest(o: &Outcome) -> Result<(), String> {
    let out = &o.output;
    no_failures(out)?;
    if out.contains("selftest its: FAILED") {
        return Err(out
            .lines()
            .find(|l| l.contains("FAILED"))
            .unwrap_or("")
            .to_string());
    }
    expect(out, "ITS      enabled: 4 collections")?;
    expect(out, "PCI      00:01.0 1234:11e8")?;
    expect(
        out,
        "selftest its: edu 00:01.0 (DeviceID 0x8) EventID 0 -> LPI 8192 taken at EL2",
    )?;
    expect(
        out,
        "selftest its: after DISCARD, edu's MSI no longer raises LPI 8192",
    )?;
    // The partitions still run normally afterwards.
    expect(out, "[alpha] PASS hello: 2 vcpus up")?;
    expect(out, "[beta] PASS hello: 2 vcpus up")
}

fn check_gicv4(o: &Outcome) -> Result<(), String> {
    let out = &o.output;
    no_failures(out)?;
    if out.contains("selftest gicv4: FAILED") {
        return Err(out
            .lines()
            .find(|l| l.contains("FAILED"))
            .unwrap_or("")
            .to_string());
    }
    expect(
        out,
        "selftest gicv4: edu 00:01.0 (DeviceID 0x8) EventID 0 -> vPE 0 vINTID 8192",
    )?;
    for round in 0..3 {
        expect(out, &format!("[alpha] PASS vlpi: round {round}: vINTID 8192 taken through ICV_IAR1_EL1, hypervisor exits during delivery: 0"))?;
    }
    expect(out, "doorbell LPI")?;
    expect(out, "taken at EL2")?;
    expect(out, "[alpha] PASS doorbell: doorbell taken while non-resident, vINTID 8192 delivered once resident again")
}

/// VMOVP with a vLPI pending: the doorbell on the old CPU before the move
/// and on the new one after it, the pending vLPI and a new one taken once
/// on the vCPU of the new CPU, then a new MSI there with no exit.
fn check_vmovp(o: &Outcome) -> Result<(), String> {
    let out = &o.output;
    no_failures(out)?;
    if let Some(line) = out.lines().find(|l| l.contains("FAILED")) {
        return Err(line.to_string());
    }
    expect(
        out,
        "selftest vmovp: edu 00:01.0 (DeviceID 0x8) EventID 0 -> vPE 0 vINTID 8192",
    )?;
    expect(
        out,
        "[alpha] vmovp: before the move vINTID 8192 taken on vCPU 0 (CPU 0), hypervisor exits: 0",
    )?;
    expect(out, "selftest vmovp: vPE 0 non-resident on CPU 0 (Dirty cleared: true); edu triggered; doorbell LPI")?;
    expect(
        out,
        "taken on CPU 0 (old redistributor); vINTID 8192 pending in the vPE's VPT: true",
    )?;
    expect(out, "selftest vmovp: VMOVP vPE 0 RDbase 0x0 -> 0x1 (CPU 0 -> CPU 1) and VSYNC: 2 commands; vINTID 8192 still pending in the VPT: true")?;
    expect(out, "selftest vmovp: INT edu EventID 1 (vINTID 8193) after the move: doorbell on CPU 0 (old redistributor): none")?;
    expect(
        out,
        "taken on CPU 1; vPE made resident here (new redistributor)",
    )?;
    let doorbells = out
        .lines()
        .filter(|l| l.contains("selftest vmovp: doorbell LPI"))
        .count();
    if doorbells != 1 {
        return Err(format!(
            "{doorbells} doorbells taken by a running vCPU's CPU, want 1 (CPU 1's)"
        ));
    }
    expect(out, "[alpha] PASS vmovp: vINTID 8192 left pending before the move and vINTID 8193 raised after it, each taken once on vCPU 1 (CPU 1), nothing on vCPU 0")?;
    expect(out, "[alpha] PASS vmovp: after the move edu's MSI taken once on vCPU 1, hypervisor exits: 0; doorbells: CPU 0 1 (before the move), CPU 1 1 (after)")
}

/// On a GICv4 host: every MSI a vLPI, no exit; the guest's MOVI a VMOVI.
fn check_passthrough_gicv4(o: &Outcome) -> Result<(), String> {
    let out = &o.output;
    check_passthrough(o, 0)?;
    expect(
        out,
        "partition alpha: passthrough MSIs by GICv4 direct injection (2 vPEs)",
    )?;
    expect(
        out,
        "partition alpha: physical ITS: VMAPTI device 0x8 event 0 -> vPE 1 vINTID 8192",
    )?;
    expect(
        out,
        "partition alpha: physical ITS: VMOVI device 0x8 event 0 -> vPE 2",
    )?;
    expect(
        out,
        "partition alpha: physical ITS: DISCARD device 0x8 event 0",
    )?;
    if out.contains("(software path)") {
        return Err("a passthrough event took the software path on a GICv4 host".into());
    }
    Ok(())
}

/// On a GICv3 host: the software path, one exit per MSI.
fn check_passthrough_gicv3(o: &Outcome) -> Result<(), String> {
    check_passthrough(o, 1)?;
    expect(
        &o.output,
        "partition alpha: passthrough 0x8 event 0 -> physical LPI",
    )
}

/// MSI-X on a GICv4 host: every vector a vLPI, no exit.
fn check_msix_gicv4(o: &Outcome) -> Result<(), String> {
    let out = &o.output;
    check_msix(o, &[0], 0)?;
    expect(
        out,
        "partition alpha: passthrough MSIs by GICv4 direct injection (2 vPEs)",
    )?;
    for v in 0..5 {
        expect(
            out,
            &format!(
                "partition alpha: physical ITS: VMAPTI device 0x8 event {v} -> vPE 1 vINTID {}",
                8192 + v
            ),
        )?;
    }
    if out.contains("(software path)") {
        return Err("an MSI-X event took the software path on a GICv4 host".into());
    }
    Ok(())
}

/// MSI-X on a GICv3 host: the software path, one exit per MSI. QEMU's
/// e1000e sends a raised vector twice (its EITR timer re-sends it 128 us
/// later); the guest takes them as one LPI, the hypervisor as one or two
/// physical LPIs (two exits, or one if the second arrives during the first).
fn check_msix_gicv3(o: &Outcome) -> Result<(), String> {
    check_msix(o, &[1, 2], 1)?;
    for v in 0..5 {
        expect(
            &o.output,
            &format!("partition alpha: passthrough 0x8 event {v} -> physical LPI"),
        )?;
    }
    Ok(())
}

/// The number in `(hypervisor exits WHAT: N)` of the line containing `prefix`.
fn exits_in(out: &str, prefix: &str, what: &str) -> Result<u64, String> {
    let line = out
        .lines()
        .find(|l| l.contains(prefix))
        .ok_or_else(|| format!("missing: {prefix}"))?;
    let key = format!("(hypervisor exits {what}: ");
    let at = line
        .find(&key)
        .ok_or_else(|| format!("no exit count in: {line}"))?;
    line[at + key.len()..]
        .trim_end_matches(')')
        .parse()
        .map_err(|_| format!("bad exit count in: {line}"))
}

/// `hot_path`: the exits allowed while a raised vector is delivered;
/// `per_msi`: the exact exits one message costs.
fn check_msix(o: &Outcome, hot_path: &[u64], per_msi: u64) -> Result<(), String> {
    let out = &o.output;
    no_failures(out)?;
    expect(
        out,
        "partition alpha: CPUs [0, 1], RAM IPA 0x50000000 -> PA 0x50000000",
    )?;
    alpha_sees_only(out, "8086:10d3", "e1000e")?;
    let pass = |what: &str| format!("[alpha] PASS passthrough-msix: {what}");
    expect(
        out,
        &pass("1 function(s) on the guest bus, e1000e at 00:01.0"),
    )?;
    expect(out, &pass("MSI-X capability at 0xa0: 5 vectors, table at"))?;
    expect(out, &pass("5 vectors programmed with the vITS doorbell 0x8090040 and EventIDs 0-4, read back as written (32- and 64-bit reads)"))?;
    expect(
        out,
        &pass("MAPD device 0x8, MAPTI events 0-4 -> LPIs 8192-8196 on vCPU 0"),
    )?;
    expect(
        out,
        "partition alpha: PCI 00:01.0 MSI-X enabled, function masked",
    )?;
    let causes = ["RxQ0", "RxQ1", "TxQ0", "TxQ1", "Other"];
    for (v, name) in causes.iter().enumerate() {
        // What the device got for each vector, in the hypervisor's log.
        expect(out, &format!("partition alpha: PCI 00:01.0 MSI-X vector {v}: guest doorbell 0x8090040 EventID {v} -> physical GITS_TRANSLATER 0x8090040 DeviceID 0x8 EventID {v}, unmasked"))?;
        let hot = pass(&format!(
            "vector {v} ({name}): LPI {} taken once on vCPU 0",
            8192 + v
        ));
        let exits = exits_in(out, &hot, "meanwhile")?;
        if !hot_path.contains(&exits) {
            return Err(format!(
                "vector {v}: {exits} exits while delivering, expected one of {hot_path:?}"
            ));
        }
        let pba = 1 << v;
        let released = pass(&format!("vector {v} ({name}) masked: raised, no MSI, PBA {pba:#x}; unmasked: LPI {} taken once, PBA clear", 8192 + v));
        let exits = exits_in(out, &released, "caused")?;
        if exits != per_msi {
            return Err(format!(
                "vector {v}: {exits} exits for one MSI, expected {per_msi}"
            ));
        }
    }
    expect(
        out,
        &pass("Function Mask: RxQ1 held pending (PBA 0x2), taken once when cleared"),
    )?;
    expect(
        out,
        "read back as written, no MSI, nothing written there (PBA 0x8)",
    )?;
    expect(
        out,
        "partition alpha: PCI 00:01.0 MSI-X vector 3: address 0x5",
    )?;
    expect(
        out,
        "is not the vITS doorbell: the vector stays masked (logged once)",
    )?;
    expect(out, &pass("vector 3 back at the vITS doorbell: the held MSI taken 1 time(s), then TxQ1 taken once"))?;
    expect(
        out,
        &pass("byte accesses to the MSI-X table refused (read 0, write ignored)"),
    )?;
    let refused = "partition alpha: PCI 00:01.0: MSI-X page access refused (unsupported access width): reads 0, writes ignored (1 so far)";
    if out.matches(refused).count() != 1 {
        return Err(format!("expected exactly one: {refused}"));
    }
    // The rest of the table's page goes to the device (QEMU's e1000e
    // decodes nothing there: an abort, read as all ones, the hypervisor alive).
    expect(
        out,
        &pass("past the table on its page (0x10040050): the device answered"),
    )?;
    expect(out, &pass("vector 0 still taken once"))?;
    let n = per_msi;
    expect(out, &pass(&format!("5 MSI-X vectors through the guest's vITS, hypervisor exits per MSI: {n} {n} {n} {n} {n}")))?;
    expect(out, "[beta] PASS hello: 2 vcpus up")
}

/// alpha's bus shows exactly one function, `what` (vendor:device `id`) at
/// 00:01.0: no host bridge, nothing it was not given.
fn alpha_sees_only(out: &str, id: &str, what: &str) -> Result<(), String> {
    expect(out, &format!("[alpha] pci: 00:01.0 {id}"))?;
    let functions = lines_of(out, "alpha")
        .iter()
        .filter(|l| l.starts_with("pci: "))
        .count();
    if functions != 1 {
        return Err(format!(
            "alpha sees {functions} PCI functions, expected only {what}"
        ));
    }
    Ok(())
}

fn check_passthrough(o: &Outcome, exits_per_msi: u32) -> Result<(), String> {
    let out = &o.output;
    no_failures(out)?;
    expect(
        out,
        "partition alpha: CPUs [0, 1], RAM IPA 0x50000000 -> PA 0x50000000",
    )?;
    alpha_sees_only(out, "1234:11e8", "edu")?;
    expect(
        out,
        "[alpha] PASS passthrough: 1 function(s) on the guest bus, edu at 00:01.0",
    )?;
    expect(out, "201 register accesses, hypervisor exits: 0")?;
    expect(out, "partition alpha: PCI 00:01.0 MSI enabled: guest doorbell 0x8090040 data 0x0 -> physical GITS_TRANSLATER")?;
    expect(out, "[alpha] PASS passthrough: MSI enabled with the vITS doorbell 0x8090040, read back as written")?;
    // MSIs through the guest's own vITS.
    for round in 0..3 {
        expect(out, &format!("[alpha] PASS passthrough: MSI round {round}: vINTID 8192 taken once on vCPU 0 (hypervisor exits meanwhile: {exits_per_msi})"))?;
    }
    expect(
        out,
        "[alpha] PASS passthrough: after MOVI the MSI is taken once on vCPU 1, not on vCPU 0",
    )?;
    expect(
        out,
        "[alpha] PASS passthrough: after DISCARD the MSI reaches nobody",
    )?;
    expect(out, "[alpha] PASS passthrough: MAPTI again, the MSI is delivered again without reprogramming the function")?;
    // Pending state survives every move.
    expect(out, "[alpha] PASS passthrough: an MSI pending at masked vCPU 0 follows MOVI: taken once on vCPU 1, nothing on vCPU 0")?;
    expect(out, "[alpha] PASS passthrough: an MSI pending at masked vCPU 1 follows MAPC retarget + MOVALL: taken once on vCPU 0, nothing left on vCPU 1")?;
    expect(out, "[beta] PASS hello: 2 vcpus up")
}
