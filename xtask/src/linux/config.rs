//! `guests/linux/linux.toml`: which Debian packages make the Linux guest.

use serde::Deserialize;
use std::path::Path;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The kernel's package.
    pub kernel: KernelConfig,
    /// The userland's package.
    pub busybox: PackageConfig,
    /// Where packages come from.
    pub debian: DebianConfig,
    /// What the initramfs holds besides busybox and /init.
    pub initramfs: InitramfsConfig,
}

/// `[kernel]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelConfig {
    /// Debian's metapackage of the flavour (`linux-image-cloud-arm64`).
    pub package: String,
    /// The upstream series expected (`6.1`).
    pub series: String,
}

/// A table naming one package.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageConfig {
    /// The Debian package.
    pub package: String,
}

/// `[debian]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DebianConfig {
    /// The suite when the host is not Debian.
    pub default_suite: String,
}

/// `[initramfs]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitramfsConfig {
    /// Modules /init loads; their dependencies come along.
    pub modules: Vec<String>,
}

impl Config {
    /// Reads `guests/linux/linux.toml` below `root`.
    pub fn load(root: &Path) -> Result<Self, String> {
        let path = root.join("guests").join("linux").join("linux.toml");
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Whether Debian version `version` belongs to the configured series
    /// (`6.1.192-2` is in `6.1`, `6.12.12-1~bpo12+1` is not).
    pub fn in_series(&self, version: &str) -> bool {
        version
            .strip_prefix(self.kernel.series.as_str())
            .is_some_and(|rest| rest.starts_with(['.', '-', '+', '~']))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repositorys_file_parses_and_names_the_cloud_flavour() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let c = Config::load(root).unwrap();
        assert_eq!(c.kernel.package, "linux-image-cloud-arm64");
        assert!(c.initramfs.modules.iter().any(|m| m == "virtio_net"));
    }

    #[test]
    fn series_match_is_on_a_version_boundary() {
        let c: Config = toml::from_str(
            "[kernel]\npackage = \"k\"\nseries = \"6.1\"\n[busybox]\npackage = \"b\"\n\
             [debian]\ndefault_suite = \"bookworm\"\n[initramfs]\nmodules = []\n",
        )
        .unwrap();
        assert!(c.in_series("6.1.192-2"));
        assert!(!c.in_series("6.12.12-1~bpo12+1"));
        assert!(!c.in_series("6.10"));
    }
}
