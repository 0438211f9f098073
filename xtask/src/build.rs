//! Building the hypervisor image, the test guests and the boot bundle.

use crate::board::Board;
use crate::linux;
use hypervisor::boot::bundle::{BundleWriter, MANIFEST_NAME};
use hypervisor::manifest::Manifest;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The bare-metal target of the kernel and the test guests.
pub const TARGET: &str = "aarch64-unknown-none-softfloat";

/// The test guest's builds: its name in the boot bundle and the IPA it is
/// linked at (the guest is not relocatable; a manifest's `kernel.ipa` must
/// be that address). Identity-mapped partitions need RAM that overlaps
/// neither each other, the hypervisor image (0x4020_0000 on virt) nor the
/// boot bundle QEMU puts at RAM base + 128 MiB (0x4800_0000), hence one
/// build per identity-mapped RAM base in use, 2 MiB into it.
pub const TEST_GUESTS: [TestGuest; 3] = [
    // The linker script's default: RAM base + 2 MiB, like an arm64 Image.
    TestGuest {
        image: "testguest.bin",
        link: 0x4020_0000,
    },
    // Identity-mapped RAM at 0x5000_0000 (boards/qemu-virt/tests/passthrough*.toml).
    TestGuest {
        image: "testguest-hi.bin",
        link: 0x5020_0000,
    },
    // A second identity-mapped partition, RAM at 0x6000_0000
    // (tests/passthrough-two-partitions.toml).
    TestGuest {
        image: "testguest-hi2.bin",
        link: 0x6020_0000,
    },
];

/// One build of the test guest.
#[derive(Clone, Copy, Debug)]
pub struct TestGuest {
    /// Its file name, in the build output and in the bundle.
    pub image: &'static str,
    /// The IPA it is linked (and must be loaded) at.
    pub link: u64,
}

/// What `build` produced.
pub struct Artifacts {
    /// The hypervisor as a raw arm64 Image.
    pub image: PathBuf,
    /// The hypervisor ELF (symbols, for debugging).
    pub elf: PathBuf,
    /// The test guest's raw binaries, one per [`TEST_GUESTS`] entry.
    pub testguests: Vec<PathBuf>,
}

/// Builds the test image of the hypervisor for `board` (with the
/// `selftest` feature: self-tests and test hypercalls) and the test guests.
pub fn build(root: &Path, board: &Board) -> Result<Artifacts, String> {
    build_image(root, board, true)
}

/// Builds the hypervisor for `board`, with the `selftest` feature or
/// without (the image `cargo xtask run` boots), and the test guests.
pub fn build_image(root: &Path, board: &Board, selftest: bool) -> Result<Artifacts, String> {
    ensure_target()?;
    let load = format!("{:#x}", board.load_address);
    eprintln!(
        "xtask: building the hypervisor for {} (load address {load}) and {} test guests",
        board.name,
        TEST_GUESTS.len()
    );
    let mut args = vec![
        "build",
        "--release",
        "-p",
        "hypervisor",
        "--bin",
        "hypervisor",
        "--target",
        TARGET,
    ];
    if selftest {
        args.extend(["--features", "selftest"]);
    }
    cargo(root, &args, &[("HV_LOAD_ADDR", &load)])?;
    let out = root.join("target").join(TARGET).join("release");
    // The test image has names of its own, so that building one image
    // never replaces the other under a run that still uses it (the
    // scenario that starts `cargo xtask run`).
    let name = if selftest {
        "hypervisor-selftest"
    } else {
        "hypervisor"
    };
    let elf = out.join(name);
    if selftest {
        std::fs::copy(out.join("hypervisor"), &elf)
            .map_err(|e| format!("{}: {e}", elf.display()))?;
    }
    let image = out.join(format!("{name}.img"));
    elf_to_binary(&elf, &image)?;
    // The first build shares the workspace's target dir (the bare-QEMU
    // oracle runs its ELF); each other one has its own, so that the builds
    // do not invalidate each other.
    let testguests = TEST_GUESTS
        .iter()
        .enumerate()
        .map(|(i, g)| build_test_guest(root, &out, g, i > 0))
        .collect::<Result<_, _>>()?;
    Ok(Artifacts {
        image,
        elf,
        testguests,
    })
}

/// Builds the test guest linked at `guest.link` and flattens it to
/// `out/<guest.image>`; with `own_dir`, in a target dir of its own
/// (`target/guest-hi` for `testguest-hi.bin`).
fn build_test_guest(
    root: &Path,
    out: &Path,
    guest: &TestGuest,
    own_dir: bool,
) -> Result<PathBuf, String> {
    let target_dir = own_dir.then(|| {
        let stem = guest.image.trim_end_matches(".bin");
        let suffix = stem.strip_prefix("testguest-").unwrap_or(stem);
        root.join("target").join(format!("guest-{suffix}"))
    });
    let dir_arg = target_dir
        .as_ref()
        .map(|d| d.to_string_lossy().into_owned());
    let mut args = vec!["build", "--release", "-p", "testguest", "--target", TARGET];
    if let Some(dir) = &dir_arg {
        args.extend(["--target-dir", dir.as_str()]);
    }
    let link = format!("{:#x}", guest.link);
    cargo(root, &args, &[("GUEST_LOAD_ADDR", &link)])?;
    let elf = target_dir
        .map_or_else(|| out.to_path_buf(), |d| d.join(TARGET).join("release"))
        .join("testguest");
    let bin = out.join(guest.image);
    elf_to_binary(&elf, &bin)?;
    Ok(bin)
}

/// Longest bundle entry name (the format's 48-byte field holds a NUL).
const MAX_ENTRY_NAME: usize = 47;

/// Packs `manifest` and every image it names (`kernel.image`,
/// `initrd.image` of each partition, each once) into a boot bundle at
/// `out`. Images are looked up by name in [`image_dirs`]; the Linux
/// guest's are built first if the manifest names them.
pub fn bundle(artifacts: &Artifacts, manifest: &Path, out: &Path) -> Result<(), String> {
    let text =
        std::fs::read_to_string(manifest).map_err(|e| format!("{}: {e}", manifest.display()))?;
    let images = named_images(&text);
    let mut series: Vec<Option<String>> = images
        .iter()
        .filter_map(|i| linux::series_of(&i.name))
        .collect();
    series.dedup();
    for s in series {
        linux::ensure_series(&crate::root(), s.as_deref())
            .map_err(|e| format!("{} names the Linux guest: {e}", manifest.display()))?;
    }
    let dirs = image_dirs(artifacts);
    let mut w = BundleWriter::new();
    w.add(MANIFEST_NAME, text.clone().into_bytes())
        .map_err(|e| e.to_string())?;
    let mut packed = BTreeSet::new();
    for image in &images {
        if !packed.insert(image.name.as_str()) {
            continue;
        }
        let at = || format!("{}: {image}", manifest.display());
        if image.name.len() > MAX_ENTRY_NAME || image.name.contains('/') {
            return Err(format!(
                "{}: a bundle entry name has at most {MAX_ENTRY_NAME} bytes and no `/`",
                at()
            ));
        }
        let Some(path) = dirs
            .iter()
            .map(|d| d.join(&image.name))
            .find(|p| p.is_file())
        else {
            let looked: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
            return Err(format!(
                "{}: no such image in {} (`cargo xtask build` builds the test guests, `cargo xtask linux` the Linux guest)",
                at(),
                looked.join(", ")
            ));
        };
        let data = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        w.add(&image.name, data)
            .map_err(|e| format!("{}: {e}", at()))?;
    }
    std::fs::write(out, w.finish()).map_err(|e| format!("{}: {e}", out.display()))
}

/// Where [`bundle`] finds images, in order: the test guests' build output,
/// then the Linux guest's folder (`target/linux/`).
pub fn image_dirs(artifacts: &Artifacts) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    for guest in &artifacts.testguests {
        if let Some(dir) = guest.parent().filter(|d| !dirs.iter().any(|x| x == d)) {
            dirs.push(dir.to_path_buf());
        }
    }
    dirs.push(linux::dir(&crate::root()));
    dirs
}

/// An image a manifest names, and where.
#[derive(Debug, PartialEq, Eq)]
struct NamedImage {
    /// The partition's name (`?` if it has none).
    partition: String,
    /// The field (`kernel.image` or `initrd.image`).
    field: &'static str,
    /// The image's name in the bundle.
    name: String,
}

impl std::fmt::Display for NamedImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "partition {:?}: field {}: image {:?}",
            self.partition, self.field, self.name
        )
    }
}

/// The images `text` names, through the hypervisor's own manifest parser;
/// if that refuses the text (a test of a malformed manifest), through a
/// plain TOML read, so the images are packed and the hypervisor reports
/// the error at boot.
fn named_images(text: &str) -> Vec<NamedImage> {
    if let Ok(m) = Manifest::parse(text) {
        return m
            .partitions
            .iter()
            .flat_map(|p| {
                let kernel = Some(("kernel.image", &p.kernel.image));
                let initrd = p.initrd.as_ref().map(|i| ("initrd.image", &i.image));
                [kernel, initrd]
                    .into_iter()
                    .flatten()
                    .map(|(field, name)| NamedImage {
                        partition: p.name.clone(),
                        field,
                        name: name.clone(),
                    })
            })
            .collect();
    }
    let Ok(doc) = text.parse::<toml::Table>() else {
        return Vec::new();
    };
    let partitions = doc
        .get("partition")
        .and_then(|p| p.as_array())
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut images = Vec::new();
    for p in partitions {
        let partition = p
            .get("name")
            .and_then(|n| n.as_str())
            .unwrap_or("?")
            .to_string();
        for (table, field) in [("kernel", "kernel.image"), ("initrd", "initrd.image")] {
            if let Some(name) = p
                .get(table)
                .and_then(|t| t.get("image"))
                .and_then(|n| n.as_str())
            {
                images.push(NamedImage {
                    partition: partition.clone(),
                    field,
                    name: name.to_string(),
                });
            }
        }
    }
    images
}

fn cargo(root: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let status = cmd.status().map_err(|e| format!("cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`cargo {}` failed", args.join(" ")))
    }
}

/// Adds the bare-metal rustup target if it is missing.
fn ensure_target() -> Result<(), String> {
    let out = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    match out {
        Ok(o)
            if String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.trim() == TARGET) =>
        {
            Ok(())
        }
        Ok(_) => {
            eprintln!("xtask: adding rustup target {TARGET}");
            let status = Command::new("rustup")
                .args(["target", "add", TARGET])
                .status()
                .map_err(|e| format!("rustup: {e}"))?;
            if status.success() {
                Ok(())
            } else {
                Err(format!("`rustup target add {TARGET}` failed"))
            }
        }
        // No rustup: trust the toolchain to have the target.
        Err(_) => Ok(()),
    }
}

/// Writes the PT_LOAD segments of an ELF64 little-endian file as one flat
/// binary starting at the lowest segment address (what `objcopy -O binary` does).
pub fn elf_to_binary(elf: &Path, out: &Path) -> Result<(), String> {
    let data = std::fs::read(elf).map_err(|e| format!("{}: {e}", elf.display()))?;
    let bad = || format!("{}: not an ELF64 little-endian executable", elf.display());
    if data.len() < 64 || &data[..4] != b"\x7fELF" || data[4] != 2 || data[5] != 1 {
        return Err(bad());
    }
    let u16_at = |o: usize| u16::from_le_bytes([data[o], data[o + 1]]) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(data[o..o + 8].try_into().unwrap());
    let phoff = u64_at(0x20) as usize;
    let phentsize = u16_at(0x36);
    let phnum = u16_at(0x38);
    let mut segments = Vec::new();
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        if ph + 56 > data.len() {
            return Err(bad());
        }
        let p_type = u32::from_le_bytes(data[ph..ph + 4].try_into().unwrap());
        let (offset, paddr, filesz) = (
            u64_at(ph + 8) as usize,
            u64_at(ph + 24),
            u64_at(ph + 32) as usize,
        );
        if p_type == 1 && filesz > 0 {
            segments.push((paddr, &data[offset..offset + filesz]));
        }
    }
    let base = segments.iter().map(|s| s.0).min().ok_or_else(bad)?;
    let mut image = Vec::new();
    for (addr, bytes) in segments {
        let at = (addr - base) as usize;
        if image.len() < at + bytes.len() {
            image.resize(at + bytes.len(), 0);
        }
        image[at..at + bytes.len()].copy_from_slice(bytes);
    }
    std::fs::write(out, image).map_err(|e| format!("{}: {e}", out.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(images: &[NamedImage]) -> Vec<(&str, &str, &str)> {
        images
            .iter()
            .map(|i| (i.partition.as_str(), i.field, i.name.as_str()))
            .collect()
    }

    const TWO_LINUX: &str = r#"
[[partition]]
name = "alpha"
cpus = [0, 1]
ram = { ipa = 0x4000_0000, size = "256M" }
kernel = { image = "linux.Image", ipa = 0x4020_0000 }
initrd = { image = "linux-initramfs.cpio.gz", ipa = 0x4800_0000 }

[[partition]]
name = "beta"
cpus = [2]
ram = { ipa = 0x4000_0000, size = "64M" }
kernel = { image = "testguest.bin", ipa = 0x4020_0000 }
"#;

    #[test]
    fn kernel_and_initrd_images_of_every_partition_are_named() {
        assert_eq!(
            names(&named_images(TWO_LINUX)),
            [
                ("alpha", "kernel.image", "linux.Image"),
                ("alpha", "initrd.image", "linux-initramfs.cpio.gz"),
                ("beta", "kernel.image", "testguest.bin"),
            ]
        );
    }

    #[test]
    fn a_manifest_the_parser_refuses_still_names_its_images() {
        // An unknown field: a shape error for the hypervisor, which must
        // still get the images to report it at boot.
        let text = "[[partition]]\nname = \"a\"\nbogus = 1\nkernel = { image = \"testguest.bin\", ipa = 0 }\n";
        assert!(Manifest::parse(text).is_err());
        assert_eq!(
            names(&named_images(text)),
            [("a", "kernel.image", "testguest.bin")]
        );
        assert!(named_images("not toml [").is_empty());
    }

    #[test]
    fn test_guest_builds_have_distinct_names_and_link_addresses_2mib_into_ram() {
        for (i, g) in TEST_GUESTS.iter().enumerate() {
            // 2 MiB into RAM that is 2 MiB aligned.
            assert_eq!(g.link % (2 << 20), 0, "{}", g.image);
            for h in &TEST_GUESTS[i + 1..] {
                assert_ne!(g.image, h.image);
                // 64 MiB partitions 2 MiB below each link address stay apart.
                assert!(
                    g.link.abs_diff(h.link) >= 64 << 20,
                    "{} {}",
                    g.image,
                    h.image
                );
            }
        }
    }

    #[test]
    fn every_board_manifest_names_images_the_bundle_can_find() {
        // The test guests' names, or the Linux guest's.
        let root = crate::root();
        let mut files = Vec::new();
        for dir in [
            root.join("boards/qemu-virt"),
            root.join("boards/qemu-virt/tests"),
        ] {
            for e in std::fs::read_dir(dir).unwrap().flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "toml") && !p.ends_with("board.toml") {
                    files.push(p);
                }
            }
        }
        assert!(!files.is_empty());
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            for image in named_images(&text) {
                assert!(
                    TEST_GUESTS.iter().any(|g| g.image == image.name)
                        || linux::produces(&image.name),
                    "{}: {image}",
                    f.display()
                );
            }
        }
    }
}
