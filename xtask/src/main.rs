//! `cargo xtask`: build, run and test the hypervisor. The only entry points a user needs.

mod bench;
mod board;
mod build;
mod fuzz;
#[cfg(test)]
mod layering;
mod linux;
mod qemu;
mod scenarios;
mod scenarios_dma;
mod scenarios_flood;
mod scenarios_guest_arch;
mod scenarios_linux;
mod scenarios_passthrough;
mod scenarios_raspi;
mod scenarios_vgic;
mod scenarios_vits;
mod scenarios_wfi;
mod soak;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask <command> [--board NAME] [--manifest FILE]

commands:
  build    build the hypervisor image, the test guests and the boot bundle
  run      build, then boot the board in QEMU (Ctrl-A X quits)
  test     host unit tests, then the QEMU system scenarios
           (`cargo xtask test --system-only` / `--host-only`, `--filter WORD`)
  linux    fetch the Debian kernel and busybox, build the Linux guest's
           initramfs (`--bare`: boot it on QEMU without the hypervisor
           and check it; `--shell`: boot it interactively)
  fuzz     run every fuzz target of hypervisor/fuzz for a while, on stable
           Rust (`--seconds N` each, default 60; or one TARGET); installs
           cargo-fuzz if missing; a crash's input becomes a regression test
  soak     200 partition resets under MSI load on GICv4 and GICv3 hosts;
           fails if the ITS footprint, LPIs, free frames or heap drift
  bench    measured figures (vITS per command, traps, memory; exits and
           latency per MSI on QEMU): a table, and target/bench.json
           (`--host-only` / `--system-only`; `--filter WORD`: the system
           sections msi, icount, el2, wfi, linux, nvme)

default board: `run` qemu-virt-linux (QEMU virt, GICv4, 4 CPUs, two Linux
partitions with an NVMe disk and a NIC each); `build`, `test`, `bench`
qemu-virt (the test guests)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match real_main(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Options shared by the commands.
struct Options {
    /// `--board`, if given (each command has its default).
    board: Option<String>,
    manifest: Option<PathBuf>,
    host_only: bool,
    system_only: bool,
    filter: Option<String>,
}

/// The board `cargo xtask run` boots unless told otherwise: the product's
/// main job, Linux partitions with their own devices.
const RUN_BOARD: &str = "qemu-virt-linux";
/// The board of `build`, `test` and `bench` (the test guests).
const TEST_BOARD: &str = "qemu-virt";

impl Options {
    /// `--board`, or the test board.
    fn board(&self) -> &str {
        self.board.as_deref().unwrap_or(TEST_BOARD)
    }
}

fn parse_options(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        board: None,
        manifest: None,
        host_only: false,
        system_only: false,
        filter: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--board" => o.board = Some(it.next().ok_or("--board needs a name")?.clone()),
            "--manifest" => o.manifest = Some(it.next().ok_or("--manifest needs a file")?.into()),
            "--host-only" => o.host_only = true,
            "--system-only" => o.system_only = true,
            "--filter" => o.filter = Some(it.next().ok_or("--filter needs a word")?.clone()),
            other => return Err(format!("unknown option `{other}`\n{USAGE}")),
        }
    }
    Ok(o)
}

/// The workspace root (xtask lives one level below it).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask has a parent folder")
        .to_path_buf()
}

fn real_main(args: &[String]) -> Result<ExitCode, String> {
    let Some(cmd) = args.first() else {
        println!("{USAGE}");
        return Ok(ExitCode::SUCCESS);
    };
    let root = root();
    if cmd == "linux" {
        return linux::run(&root, &args[1..]);
    }
    if cmd == "fuzz" {
        return fuzz::run(&root, &args[1..]);
    }
    if cmd == "soak" {
        return soak::run(&root);
    }
    let opts = parse_options(&args[1..])?;
    match cmd.as_str() {
        "build" => {
            let board = board::Board::load(&root, opts.board())?;
            let (artifacts, bundle) = build_with_bundle(&root, &board, opts.manifest.as_deref())?;
            println!(
                "hypervisor image: {}\nsymbols (ELF):    {}\nboot bundle:      {}",
                artifacts.image.display(),
                artifacts.elf.display(),
                bundle.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        "run" => {
            let board = board::Board::load(&root, opts.board.as_deref().unwrap_or(RUN_BOARD))?;
            qemu::check(&board.qemu)?;
            let (artifacts, bundle) = build_with_bundle(&root, &board, opts.manifest.as_deref())?;
            let devices = board.qemu.device_args(&linux::dir(&root))?;
            println!(
                "xtask: booting {} ({}); Ctrl-A X quits",
                board.name, board.description
            );
            let (status, end) = qemu::run_watched(qemu::command(
                &board.qemu,
                &artifacts.image,
                &bundle,
                &devices,
            ))?;
            if let Some(end) = end {
                eprintln!("xtask: {end}");
                return Ok(ExitCode::FAILURE);
            }
            Ok(if status.success() {
                ExitCode::SUCCESS
            } else {
                eprintln!("xtask: QEMU exited with {status}");
                ExitCode::FAILURE
            })
        }
        "test" => scenarios::test_all(&root, &opts),
        "bench" => bench::run(&root, &opts, args),
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        other => Err(format!("unknown command `{other}`\n{USAGE}")),
    }
}

/// Builds everything (the hypervisor without the `selftest` feature) and
/// packs the bundle for `manifest` (default: the board's).
fn build_with_bundle(
    root: &Path,
    board: &board::Board,
    manifest: Option<&Path>,
) -> Result<(build::Artifacts, PathBuf), String> {
    let artifacts = build::build_image(root, board, false)?;
    let manifest = manifest
        .map(Path::to_path_buf)
        .unwrap_or_else(|| board.manifest_path());
    let out = artifacts
        .image
        .with_file_name(format!("bundle-{}.bin", board.name));
    build::bundle(&artifacts, &manifest, &out)?;
    Ok((artifacts, out))
}
