//! Raw disk images for the guest's NVMe controller: a marker line at offset
//! 0 that `/init` reads back and prints (so the test sees the NVMe read,
//! and its MSI-X vectors count), zeros after it.

use std::path::{Path, PathBuf};

/// Size of every image: small, but several pages for `/init`'s reads.
pub const IMAGE_SIZE: u64 = 4 << 20;

/// The marker line at offset 0 of the image called `name`.
pub fn marker(name: &str) -> String {
    format!("HVTEST-NVME-MARKER disk={name}")
}

/// `target/linux/nvme-<name>.img` with its marker, created or repaired if
/// needed, for `-drive file=...,if=none,format=raw -device nvme,...`.
pub fn nvme_image(linux_dir: &Path, name: &str) -> Result<PathBuf, String> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(format!(
            "disk name {name:?}: use letters, digits and `-` only"
        ));
    }
    let path = linux_dir.join(format!("nvme-{name}.img"));
    let contents = image(name);
    let current = std::fs::read(&path).ok();
    if current.as_deref() != Some(&contents[..]) {
        std::fs::create_dir_all(linux_dir).map_err(|e| format!("{}: {e}", linux_dir.display()))?;
        std::fs::write(&path, contents).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(path)
}

/// The QEMU arguments that attach `image` as an NVMe controller with serial `serial`.
pub fn qemu_args(image: &Path, serial: &str) -> Vec<String> {
    vec![
        "-drive".into(),
        format!(
            "file={},if=none,id=nvme-{serial},format=raw",
            image.display()
        ),
        "-device".into(),
        format!("nvme,serial={serial},drive=nvme-{serial}"),
    ]
}

fn image(name: &str) -> Vec<u8> {
    let mut bytes = vec![0u8; IMAGE_SIZE as usize];
    let line = format!("{}\n", marker(name));
    bytes[..line.len()].copy_from_slice(line.as_bytes());
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_starts_with_the_marker_line_then_zeros() {
        let img = image("bare");
        assert_eq!(img.len() as u64, IMAGE_SIZE);
        let line = b"HVTEST-NVME-MARKER disk=bare\n";
        assert_eq!(&img[..line.len()], line);
        assert!(img[line.len()..].iter().all(|&b| b == 0));
    }

    #[test]
    fn names_that_could_escape_the_folder_are_refused() {
        let dir = Path::new("/nonexistent");
        assert!(nvme_image(dir, "../x").is_err());
        assert!(nvme_image(dir, "").is_err());
        assert!(nvme_image(dir, "a b").is_err());
    }
}
