//! `guests/linux/linux.toml`: which Debian packages make the Linux guest.

use serde::Deserialize;
use std::path::Path;

/// The whole file.
#[derive(Clone, Debug, Deserialize)]
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
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelConfig {
    /// Debian's metapackage of the flavour (`linux-image-cloud-arm64`).
    pub package: String,
    /// The upstream series expected (`6.1`): the default one.
    pub series: String,
    /// Other series, taken from the suite's `-backports` (`["6.12"]`):
    /// `cargo xtask linux --series 6.12`.
    #[serde(default)]
    pub backports: Vec<String>,
    /// Set for a run that fetches a backports series (not in the file).
    #[serde(skip)]
    pub from_backports: bool,
}

/// A table naming one package.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageConfig {
    /// The Debian package.
    pub package: String,
}

/// `[debian]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DebianConfig {
    /// The suite when the host is not Debian.
    pub default_suite: String,
}

/// `[initramfs]`.
#[derive(Clone, Debug, Deserialize)]
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

    /// This configuration for kernel series `series` (`None`: the default
    /// one); another series must be listed in `kernel.backports`.
    pub fn for_series(&self, series: Option<&str>) -> Result<Self, String> {
        let mut config = self.clone();
        match series {
            None => Ok(config),
            Some(s) if s == self.kernel.series => Ok(config),
            Some(s) if self.kernel.backports.iter().any(|b| b == s) => {
                config.kernel.series = s.to_string();
                config.kernel.from_backports = true;
                Ok(config)
            }
            Some(s) => Err(format!(
                "kernel series {s} is neither `series` ({}) nor in `backports` ({:?}) of guests/linux/linux.toml",
                self.kernel.series, self.kernel.backports
            )),
        }
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
        assert!(c.kernel.backports.iter().any(|s| s == "6.12"));
    }

    #[test]
    fn a_backports_series_is_selected_by_name_and_others_refused() {
        let c: Config = toml::from_str(
            "[kernel]\npackage = \"k\"\nseries = \"6.1\"\nbackports = [\"6.12\"]\n\
             [busybox]\npackage = \"b\"\n[debian]\ndefault_suite = \"bookworm\"\n\
             [initramfs]\nmodules = []\n",
        )
        .unwrap();
        let b = c.for_series(Some("6.12")).unwrap();
        assert!(b.kernel.from_backports && b.in_series("6.12.57-1~bpo12+1"));
        assert!(!c.for_series(None).unwrap().kernel.from_backports);
        assert!(!c.for_series(Some("6.1")).unwrap().kernel.from_backports);
        assert!(c.for_series(Some("5.10")).unwrap_err().contains("5.10"));
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
