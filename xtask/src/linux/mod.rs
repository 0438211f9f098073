//! `cargo xtask linux`: the Linux test guest, an unmodified Debian arm64
//! kernel with a busybox initramfs, everything under `target/linux/`:
//!
//! - the packages named in `guests/linux/linux.toml`, resolved to their
//!   current versions and fetched with a private apt (`apt`, `fetch`),
//!   extracted once per version and reused from then on;
//! - `linux.Image` (the package's `vmlinuz`, a raw arm64 Image) and
//!   `linux-initramfs.cpio.gz` (`initramfs`, `cpio`, `modules`): the names
//!   manifests use for the boot bundle;
//! - NVMe disk images with a marker (`disk`);
//! - the boot on bare QEMU that tests compare against (`oracle`).
//!
//! docs/linux-guests.md describes it for users.

mod apt;
mod config;
mod cpio;
pub mod disk;
mod fetch;
mod initramfs;
mod modules;
pub mod oracle;

use crate::board::Board;
use config::Config;
use fetch::{Fetched, Network};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;

/// The kernel's name in `target/linux/` and in boot bundles.
pub const IMAGE_NAME: &str = "linux.Image";
/// The initramfs's name in `target/linux/` and in boot bundles.
pub const INITRAMFS_NAME: &str = "linux-initramfs.cpio.gz";

const USAGE: &str = "usage: cargo xtask linux [--bare | --shell] [--offline] [--board NAME]

  (no option)  fetch the kernel and busybox (if Debian has newer ones) and
               build target/linux/linux.Image and linux-initramfs.cpio.gz
  --bare       then boot them on QEMU without the hypervisor (hvtest=auto),
               check what /init reports and print the boot time
  --shell      then boot them on QEMU with an interactive shell (Ctrl-A X quits)
  --offline    use what target/linux holds; do not ask Debian's mirror";

/// The guest, ready to boot.
#[derive(Clone, Debug)]
pub struct LinuxGuest {
    /// The versioned kernel package.
    pub kernel: Fetched,
    /// The busybox package.
    pub busybox: Fetched,
    /// The kernel release (`uname -r`).
    pub release: String,
    /// `target/linux/linux.Image`.
    pub image: PathBuf,
    /// `target/linux/linux-initramfs.cpio.gz`.
    pub initramfs: PathBuf,
    /// The modules `/init` loads, in order.
    pub modules: Vec<String>,
}

/// The guest once prepared in this process (fetching asks the mirror).
static PREPARED: Mutex<Option<LinuxGuest>> = Mutex::new(None);

/// `target/linux/`.
pub fn dir(root: &Path) -> PathBuf {
    root.join("target").join("linux")
}

/// Whether `name` is an image this module builds (a manifest naming it
/// needs [`ensure`] before bundling).
pub fn produces(name: &str) -> bool {
    name == IMAGE_NAME || name == INITRAMFS_NAME
}

/// Fetches (or reuses) the packages and builds the image and initramfs,
/// once per process; prints the resolved versions.
pub fn ensure(root: &Path) -> Result<LinuxGuest, String> {
    ensure_with(root, Network::Online)
}

fn ensure_with(root: &Path, network: Network) -> Result<LinuxGuest, String> {
    let mut prepared = PREPARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(guest) = prepared.as_ref() {
        return Ok(guest.clone());
    }
    let guest = prepare(root, network)?;
    *prepared = Some(guest.clone());
    Ok(guest)
}

/// `cargo xtask linux ...`.
pub fn run(root: &Path, args: &[String]) -> Result<ExitCode, String> {
    let (mut bare, mut shell, mut network, mut board) =
        (false, false, Network::Online, "qemu-virt".to_string());
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--bare" => bare = true,
            "--shell" => shell = true,
            "--offline" => network = Network::Offline,
            "--board" => board = it.next().ok_or("--board needs a name")?.clone(),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(ExitCode::SUCCESS);
            }
            other => return Err(format!("unknown option `{other}`\n{USAGE}")),
        }
    }
    if bare && shell {
        return Err(format!("--bare and --shell exclude each other\n{USAGE}"));
    }
    let guest = ensure_with(root, network)?;
    println!(
        "kernel image:     {}\ninitramfs:        {}",
        guest.image.display(),
        guest.initramfs.display()
    );
    if !bare && !shell {
        return Ok(ExitCode::SUCCESS);
    }
    let board = Board::load(root, &board)?;
    let linux_dir = dir(root);
    if shell {
        crate::qemu::check(&board.qemu)?;
        let disk_image = disk::nvme_image(&linux_dir, oracle::DISK)?;
        println!("xtask: booting Linux on bare QEMU; Ctrl-A X quits");
        let status = oracle::command(&board, &guest, &disk_image, "")
            .status()
            .map_err(|e| e.to_string())?;
        return Ok(if status.success() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let log = linux_dir.join(oracle::BARE_LOG);
    println!(
        "xtask: booting Linux on bare QEMU (hvtest=auto, up to {:?})",
        oracle::TIMEOUT
    );
    match oracle::boot_seconds(root, &board) {
        Ok(seconds) => {
            println!("bare boot to hvtest done: {seconds:.1} s");
            println!("PASS linux on bare QEMU (console: {})", log.display());
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("FAIL linux on bare QEMU: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Fetches, then writes the image and the initramfs where they changed.
fn prepare(root: &Path, network: Network) -> Result<LinuxGuest, String> {
    let config = Config::load(root)?;
    let dir = dir(root);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let (kernel, busybox) = fetch::fetch(&dir, &config, network)?;
    println!("linux: {} ({})", kernel.resolved, kernel.origin);
    println!("busybox: {} ({})", busybox.resolved, busybox.origin);
    if let Some(why) = kernel.origin.mirror_error() {
        println!("xtask linux: using the cached packages: {why}");
    }
    if !config.in_series(&kernel.resolved.version) {
        eprintln!(
            "xtask linux: warning: {} is not of series {} (guests/linux/linux.toml); suite {}",
            kernel.resolved,
            config.kernel.series,
            fetch::suite(&config)
        );
    }
    let release = kernel_release(&kernel.tree)?;
    let vmlinuz = kernel.tree.join("boot").join(format!("vmlinuz-{release}"));
    let image_bytes = initramfs::read(&vmlinuz)?;
    check_arm64_image(&image_bytes).map_err(|e| format!("{}: {e}", vmlinuz.display()))?;
    let image = dir.join(IMAGE_NAME);
    write_if_changed(&image, &image_bytes)?;

    let guest_dir = root.join("guests").join("linux");
    let busybox_bin = initramfs::read(&busybox.tree.join("bin").join("busybox"))?;
    let init = initramfs::read(&guest_dir.join("init"))?;
    let udhcpc_script = initramfs::read(&guest_dir.join("udhcpc.script"))?;
    let versions = format!("{}\n{}\n", kernel.resolved, busybox.resolved);
    let tree = modules::ModuleTree::open(&kernel.tree.join("lib").join("modules").join(&release))?;
    let built = initramfs::build(
        &initramfs::Inputs {
            release: &release,
            busybox: &busybox_bin,
            init: &init,
            udhcpc_script: &udhcpc_script,
            versions: &versions,
        },
        &tree,
        &config.initramfs.modules,
    )?;
    let initramfs_path = dir.join(INITRAMFS_NAME);
    write_if_changed(&initramfs_path, &built.gz)?;
    let modules: Vec<String> = built.plan.modules.iter().map(|m| m.name.clone()).collect();
    println!(
        "initramfs: {} KiB ({} KiB cpio): busybox, /init, modules {}{}",
        built.gz.len() / 1024,
        built.cpio_len / 1024,
        modules.join(" "),
        if built.plan.builtin.is_empty() {
            String::new()
        } else {
            format!(" (built in: {})", built.plan.builtin.join(" "))
        }
    );
    Ok(LinuxGuest {
        kernel,
        busybox,
        release,
        image,
        initramfs: initramfs_path,
        modules,
    })
}

/// The one `lib/modules/<release>` folder of an extracted kernel package.
fn kernel_release(tree: &Path) -> Result<String, String> {
    let modules = tree.join("lib").join("modules");
    let releases: Vec<String> = std::fs::read_dir(&modules)
        .map_err(|e| format!("{}: {e}", modules.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    match releases.as_slice() {
        [release] => Ok(release.clone()),
        _ => Err(format!(
            "{}: expected one kernel release, found {releases:?}",
            modules.display()
        )),
    }
}

/// Checks the arm64 Image header (magic `ARM\x64` at 0x38): a compressed
/// or EFI-only kernel would not boot the way partitions load it.
fn check_arm64_image(bytes: &[u8]) -> Result<(), String> {
    if bytes.len() < 64 || &bytes[0x38..0x3c] != b"ARM\x64" {
        return Err("not a raw arm64 Image (no ARM\\x64 magic at 0x38)".into());
    }
    Ok(())
}

/// Writes `bytes` to `path` unless it already holds them (keeps mtimes).
fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<(), String> {
    if std::fs::read(path).ok().as_deref() == Some(bytes) {
        return Ok(());
    }
    std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))
}
