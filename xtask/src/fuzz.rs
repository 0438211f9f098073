//! `cargo xtask fuzz [--seconds N] [TARGET]`: runs the cargo-fuzz targets
//! of `hypervisor/fuzz` on the pinned stable toolchain, one after another,
//! one libFuzzer process each, and prints executions, coverage and crashes
//! per target.
//!
//! Stable Rust is enough: with no sanitizer (`-s none`) cargo-fuzz passes
//! only stable `-C` flags (the sanitizers are what need nightly). The
//! targets are safe Rust, so a sanitizer has little to add; `-a` keeps
//! debug assertions, and with them overflow checks, in the optimized
//! build, so an arithmetic overflow on guest data is a crash too.
//! cargo-fuzz comes from crates.io (`cargo install cargo-fuzz --locked`)
//! when it is missing.
//!
//! Each target starts from its checked-in seeds (`hypervisor/fuzz/seeds/`)
//! plus what earlier runs found (`target/fuzz/corpus/`, not checked in).
//! A crash's input is copied to `hypervisor/fuzz/regressions/<target>/`,
//! which the replay test (`cargo xtask test`, host part) runs: it stays a
//! failing test until the bug is fixed.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

const USAGE: &str = "usage: cargo xtask fuzz [--seconds N] [TARGET]
  runs every fuzz target (or TARGET) for N seconds each (default 60)";

/// What one target's run showed.
struct Outcome {
    target: String,
    seconds: f64,
    executions: u64,
    coverage: u64,
    features: u64,
    corpus: u64,
    crashes: Vec<PathBuf>,
}

/// Entry point of `cargo xtask fuzz`.
pub fn run(root: &Path, args: &[String]) -> Result<ExitCode, String> {
    let mut seconds = 60u64;
    let mut only: Option<String> = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--seconds" => {
                let value = it.next().ok_or("--seconds needs a number")?;
                seconds = value
                    .parse()
                    .map_err(|_| format!("--seconds {value}: not a number"))?;
            }
            "--help" | "-h" => {
                println!("{USAGE}");
                return Ok(ExitCode::SUCCESS);
            }
            other if other.starts_with('-') => {
                return Err(format!("unknown option `{other}`\n{USAGE}"))
            }
            other => only = Some(other.to_string()),
        }
    }
    let crate_dir = root.join("hypervisor");
    ensure_cargo_fuzz()?;
    let targets = list_targets(&crate_dir)?;
    let targets: Vec<String> = match only {
        Some(name) if targets.contains(&name) => vec![name],
        Some(name) => {
            return Err(format!(
                "no fuzz target `{name}` (have: {})",
                targets.join(", ")
            ))
        }
        None => targets,
    };
    let target_dir = root.join("target").join("fuzz");
    println!("== building the fuzz targets (cargo fuzz build -s none -a, stable)");
    let status = cargo_fuzz(&crate_dir)
        .args(["build", "-s", "none", "-a", "--target-dir"])
        .arg(&target_dir)
        .status()
        .map_err(|e| format!("cargo fuzz build: {e}"))?;
    if !status.success() {
        return Err("cargo fuzz build failed".into());
    }
    let bin_dir = target_dir.join(host_triple()?).join("release");
    let mut outcomes = Vec::new();
    for target in &targets {
        println!("== fuzzing {target} for {seconds} s");
        outcomes.push(fuzz_one(root, &bin_dir, &target_dir, target, seconds)?);
    }
    print_table(&outcomes);
    let crashed = outcomes.iter().filter(|o| !o.crashes.is_empty()).count();
    Ok(if crashed == 0 {
        ExitCode::SUCCESS
    } else {
        println!(
            "{crashed} target(s) crashed; their inputs are in hypervisor/fuzz/regressions/ \
             and fail `cargo xtask test --host-only` until fixed"
        );
        ExitCode::FAILURE
    })
}

/// `cargo fuzz` in `dir`.
fn cargo_fuzz(dir: &Path) -> Command {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(dir).arg("fuzz");
    cmd
}

/// Installs cargo-fuzz from crates.io if `cargo fuzz` is not there.
fn ensure_cargo_fuzz() -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let present = Command::new(&cargo)
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if present {
        return Ok(());
    }
    println!("== installing cargo-fuzz (cargo install cargo-fuzz --locked)");
    let status = Command::new(&cargo)
        .args(["install", "cargo-fuzz", "--locked"])
        .status()
        .map_err(|e| format!("cargo install cargo-fuzz: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err("cargo install cargo-fuzz failed".into())
    }
}

fn list_targets(crate_dir: &Path) -> Result<Vec<String>, String> {
    let out = cargo_fuzz(crate_dir)
        .arg("list")
        .output()
        .map_err(|e| format!("cargo fuzz list: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo fuzz list: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect())
}

/// The host's target triple (cargo-fuzz builds for it, under its name).
fn host_triple() -> Result<String, String> {
    let out = Command::new("rustc")
        .arg("-vV")
        .output()
        .map_err(|e| format!("rustc -vV: {e}"))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(String::from))
        .ok_or_else(|| "rustc -vV names no host".into())
}

/// Runs one target's libFuzzer binary for `seconds` (one process, so one
/// core) and reads its statistics.
fn fuzz_one(
    root: &Path,
    bin_dir: &Path,
    target_dir: &Path,
    target: &str,
    seconds: u64,
) -> Result<Outcome, String> {
    let corpus = target_dir.join("corpus").join(target);
    let artifacts = target_dir.join("artifacts").join(target);
    let seeds = root.join("hypervisor/fuzz/seeds").join(target);
    for dir in [&corpus, &artifacts] {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let started = Instant::now();
    let mut cmd = Command::new(bin_dir.join(target));
    cmd.arg(format!("-max_total_time={seconds}"))
        .arg("-print_final_stats=1")
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        // New inputs go to the first directory; the seeds stay as they are.
        .arg(&corpus);
    if seeds.is_dir() {
        cmd.arg(&seeds);
    }
    let out = cmd
        .stdout(Stdio::null())
        .output()
        .map_err(|e| format!("{target}: {e}"))?;
    let seconds = started.elapsed().as_secs_f64();
    let log = String::from_utf8_lossy(&out.stderr);
    let log_path = target_dir.join(format!("{target}.log"));
    std::fs::write(&log_path, log.as_bytes())
        .map_err(|e| format!("{}: {e}", log_path.display()))?;
    let stat = |name: &str| {
        log.lines()
            .find_map(|l| {
                l.strip_prefix(name)?
                    .trim()
                    .strip_prefix(':')?
                    .trim()
                    .parse()
                    .ok()
            })
            .unwrap_or(0)
    };
    let last_status = log
        .lines()
        .rev()
        .find(|l| l.starts_with('#') && l.contains("cov: "))
        .unwrap_or("");
    let field = |name: &str| {
        last_status
            .split_whitespace()
            .skip_while(|w| *w != name)
            .nth(1)
            .and_then(|v| v.split('/').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let mut crashes = Vec::new();
    if !out.status.success() {
        crashes = keep_crashes(root, &artifacts, target)?;
        if crashes.is_empty() {
            return Err(format!(
                "{target}: libFuzzer failed ({}) without a crash input; see {}",
                out.status,
                log_path.display()
            ));
        }
    }
    Ok(Outcome {
        target: target.to_string(),
        seconds,
        executions: stat("stat::number_of_executed_units"),
        coverage: field("cov:"),
        features: field("ft:"),
        corpus: field("corp:"),
        crashes,
    })
}

/// Copies the target's crash inputs to the checked-in regression inputs.
fn keep_crashes(root: &Path, artifacts: &Path, target: &str) -> Result<Vec<PathBuf>, String> {
    let dest = root.join("hypervisor/fuzz/regressions").join(target);
    let mut kept = Vec::new();
    let entries =
        std::fs::read_dir(artifacts).map_err(|e| format!("{}: {e}", artifacts.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !(name.starts_with("crash-") || name.starts_with("timeout-") || name.starts_with("oom-"))
        {
            continue;
        }
        std::fs::create_dir_all(&dest).map_err(|e| format!("{}: {e}", dest.display()))?;
        let to = dest.join(&name);
        std::fs::copy(entry.path(), &to).map_err(|e| format!("{}: {e}", to.display()))?;
        println!("{target}: crash input kept as {}", to.display());
        kept.push(to);
    }
    Ok(kept)
}

fn print_table(outcomes: &[Outcome]) {
    println!();
    println!(
        "{:<14} {:>8} {:>12} {:>10} {:>6} {:>8} {:>7} {:>7}",
        "target", "seconds", "executions", "exec/s", "cov", "features", "corpus", "crashes"
    );
    let mut total = 0;
    for o in outcomes {
        total += o.executions;
        println!(
            "{:<14} {:>8.0} {:>12} {:>10.0} {:>6} {:>8} {:>7} {:>7}",
            o.target,
            o.seconds,
            o.executions,
            o.executions as f64 / o.seconds.max(0.001),
            o.coverage,
            o.features,
            o.corpus,
            o.crashes.len()
        );
    }
    println!("total executions: {total}");
}
