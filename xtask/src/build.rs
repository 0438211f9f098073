//! Building the hypervisor image, the test guests and the boot bundle.

use crate::board::Board;
use hypervisor::bundle::{BundleWriter, MANIFEST_NAME};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The bare-metal target of the kernel and the test guests.
pub const TARGET: &str = "aarch64-unknown-none-softfloat";

/// Where `testguest-hi.bin` is linked: 2 MiB into identity-mapped RAM at
/// 0x5000_0000 (boards/qemu-virt/tests/passthrough*.toml).
pub const TESTGUEST_HI_IPA: u64 = 0x5020_0000;

/// What `build` produced.
pub struct Artifacts {
    /// The hypervisor as a raw arm64 Image.
    pub image: PathBuf,
    /// The hypervisor ELF (symbols, for debugging).
    pub elf: PathBuf,
    /// The test guest as a raw binary.
    pub testguest: PathBuf,
    /// The test guest linked at [`TESTGUEST_HI_IPA`] (for identity-mapped RAM).
    pub testguest_hi: PathBuf,
}

/// Builds the hypervisor for `board` and the test guests.
pub fn build(root: &Path, board: &Board) -> Result<Artifacts, String> {
    ensure_target()?;
    let load = format!("{:#x}", board.load_address);
    cargo(
        root,
        &[
            "build",
            "--release",
            "-p",
            "hypervisor",
            "--bin",
            "hypervisor",
            "--target",
            TARGET,
        ],
        &[("HV_LOAD_ADDR", &load)],
    )?;
    cargo(
        root,
        &["build", "--release", "-p", "testguest", "--target", TARGET],
        &[],
    )?;
    let out = root.join("target").join(TARGET).join("release");
    let elf = out.join("hypervisor");
    let image = out.join("hypervisor.img");
    elf_to_binary(&elf, &image)?;
    let testguest = out.join("testguest.bin");
    elf_to_binary(&out.join("testguest"), &testguest)?;
    // The same guest linked higher, in its own target dir so that the two
    // builds do not invalidate each other.
    let hi_dir = root.join("target").join("guest-hi");
    let hi_dir_arg = hi_dir.to_string_lossy().into_owned();
    let load = format!("{TESTGUEST_HI_IPA:#x}");
    cargo(
        root,
        &[
            "build",
            "--release",
            "-p",
            "testguest",
            "--target",
            TARGET,
            "--target-dir",
            &hi_dir_arg,
        ],
        &[("GUEST_LOAD_ADDR", &load)],
    )?;
    let testguest_hi = out.join("testguest-hi.bin");
    elf_to_binary(
        &hi_dir.join(TARGET).join("release").join("testguest"),
        &testguest_hi,
    )?;
    Ok(Artifacts {
        image,
        elf,
        testguest,
        testguest_hi,
    })
}

/// Packs `manifest` and the guest images into a boot bundle at `out`.
pub fn bundle(artifacts: &Artifacts, manifest: &Path, out: &Path) -> Result<(), String> {
    let mut w = BundleWriter::new();
    let text = std::fs::read(manifest).map_err(|e| format!("{}: {e}", manifest.display()))?;
    w.add(MANIFEST_NAME, text).map_err(|e| e.to_string())?;
    let guest = std::fs::read(&artifacts.testguest)
        .map_err(|e| format!("{}: {e}", artifacts.testguest.display()))?;
    w.add("testguest.bin", guest).map_err(|e| e.to_string())?;
    let hi = std::fs::read(&artifacts.testguest_hi)
        .map_err(|e| format!("{}: {e}", artifacts.testguest_hi.display()))?;
    w.add("testguest-hi.bin", hi).map_err(|e| e.to_string())?;
    std::fs::write(out, w.finish()).map_err(|e| format!("{}: {e}", out.display()))
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
