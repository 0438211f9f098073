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

const USAGE: &str =
    "usage: cargo xtask linux [--bare | --shell] [--offline] [--series S] [--board NAME]

  (no option)  fetch the kernel and busybox (if Debian has newer ones) and
               build target/linux/linux.Image and linux-initramfs.cpio.gz
  --bare       then boot them on QEMU without the hypervisor (hvtest=auto),
               check what /init reports and print the boot time
  --shell      then boot them on QEMU with an interactive shell (Ctrl-A X quits)
  --offline    use what target/linux holds; do not ask Debian's mirror
  --series S   another kernel series of guests/linux/linux.toml's `backports`
               (6.12): target/linux/linux-S.Image and linux-S-initramfs.cpio.gz";

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

/// The guests prepared in this process, by series (`None`: the default),
/// since fetching asks the mirror.
static PREPARED: Mutex<Vec<(Option<String>, LinuxGuest)>> = Mutex::new(Vec::new());

/// `target/linux/`: the default series' packages and every series' images.
pub fn dir(root: &Path) -> PathBuf {
    root.join("target").join("linux")
}

/// Where series `series`' packages and apt state live: `target/linux/`
/// for the default one, `target/linux/series-<S>/` for another.
fn series_dir(root: &Path, series: Option<&str>) -> PathBuf {
    match series {
        None => dir(root),
        Some(s) => dir(root).join(format!("series-{s}")),
    }
}

/// The kernel image's name for `series` (in `target/linux/` and bundles).
pub fn image_name(series: Option<&str>) -> String {
    match series {
        None => IMAGE_NAME.to_string(),
        Some(s) => format!("linux-{s}.Image"),
    }
}

/// The initramfs's name for `series`.
pub fn initramfs_name(series: Option<&str>) -> String {
    match series {
        None => INITRAMFS_NAME.to_string(),
        Some(s) => format!("linux-{s}-initramfs.cpio.gz"),
    }
}

/// The series whose image or initramfs is called `name`: `Some(None)` for
/// the default series, `Some(Some(s))` for `linux-<s>.Image` and
/// `linux-<s>-initramfs.cpio.gz`, `None` if this module does not build it.
pub fn series_of(name: &str) -> Option<Option<String>> {
    if name == IMAGE_NAME || name == INITRAMFS_NAME {
        return Some(None);
    }
    let rest = name.strip_prefix("linux-")?;
    let series = rest
        .strip_suffix(".Image")
        .or_else(|| rest.strip_suffix("-initramfs.cpio.gz"))?;
    let numeric = !series.is_empty() && series.chars().all(|c| c.is_ascii_digit() || c == '.');
    numeric.then(|| Some(series.to_string()))
}

/// Whether `name` is an image this module builds (a manifest naming it
/// needs [`ensure_series`] before bundling).
#[cfg(test)]
pub fn produces(name: &str) -> bool {
    series_of(name).is_some()
}

/// Fetches (or reuses) the packages and builds the image and initramfs of
/// the default series, once per process; prints the resolved versions.
pub fn ensure(root: &Path) -> Result<LinuxGuest, String> {
    ensure_series(root, None)
}

/// [`ensure`] for kernel series `series` (`None`: the default).
pub fn ensure_series(root: &Path, series: Option<&str>) -> Result<LinuxGuest, String> {
    ensure_with(root, Network::Online, series)
}

fn ensure_with(root: &Path, network: Network, series: Option<&str>) -> Result<LinuxGuest, String> {
    let mut prepared = PREPARED.lock().unwrap_or_else(|e| e.into_inner());
    let key = series.map(str::to_string);
    if let Some((_, guest)) = prepared.iter().find(|(s, _)| *s == key) {
        return Ok(guest.clone());
    }
    let guest = prepare(root, network, series)?;
    prepared.push((key, guest.clone()));
    Ok(guest)
}

/// `cargo xtask linux ...`.
pub fn run(root: &Path, args: &[String]) -> Result<ExitCode, String> {
    let (mut bare, mut shell, mut network, mut board) =
        (false, false, Network::Online, "qemu-virt".to_string());
    let mut series: Option<String> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--bare" => bare = true,
            "--shell" => shell = true,
            "--offline" => network = Network::Offline,
            "--board" => board = it.next().ok_or("--board needs a name")?.clone(),
            "--series" => series = Some(it.next().ok_or("--series needs a series")?.clone()),
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
    // The default series named explicitly is the default series.
    let default = Config::load(root)?.kernel.series;
    let series = series.filter(|s| *s != default);
    let guest = ensure_with(root, network, series.as_deref())?;
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
    match oracle::boot_seconds(root, &board, series.as_deref()) {
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
fn prepare(root: &Path, network: Network, series: Option<&str>) -> Result<LinuxGuest, String> {
    let config = Config::load(root)?.for_series(series)?;
    let dir = series_dir(root, series);
    let out_dir = self::dir(root);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let (kernel, busybox) = fetch::fetch(&dir, &config, network)?;
    println!("linux: {} ({})", kernel.resolved, kernel.origin);
    if config.kernel.from_backports {
        println!(
            "linux: series {} from {}-backports",
            config.kernel.series,
            fetch::suite(&config)
        );
    }
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
    let image = out_dir.join(image_name(series));
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
    let initramfs_path = out_dir.join(initramfs_name(series));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_map_to_their_series_and_back() {
        assert_eq!(series_of("linux.Image"), Some(None));
        assert_eq!(series_of(INITRAMFS_NAME), Some(None));
        for s in ["6.12", "6.1"] {
            let named = Some(Some(s.to_string()));
            assert_eq!(series_of(&image_name(Some(s))), named);
            assert_eq!(series_of(&initramfs_name(Some(s))), named);
        }
        assert_eq!(series_of("linux-x.Image"), None);
        assert_eq!(series_of("testguest.bin"), None);
        assert!(produces("linux-6.12.Image") && !produces("linux-.Image"));
    }
}
