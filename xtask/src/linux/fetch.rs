//! Resolving, downloading and extracting the guest's Debian packages, with
//! a cache: `target/linux/pkg/<package>_<version>/` holds each extracted
//! package and `target/linux/resolved.txt` the last versions resolved, for
//! use when Debian's mirror cannot be reached.

use super::apt::{self, PrivateApt};
use super::config::Config;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Why the mirror was not asked when the user said so.
const OFFLINE_OPTION: &str = "--offline";

/// A package at an exact version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The package name (`linux-image-6.1.0-56-cloud-arm64`).
    pub package: String,
    /// Its Debian version (`6.1.192-2`).
    pub version: String,
}

/// Where a fetched package came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Downloaded and extracted now.
    Downloaded,
    /// The mirror's current version was already extracted.
    Cached,
    /// The mirror could not be asked (the reason); the last resolved
    /// version's extraction was used.
    Offline(String),
}

/// A package extracted on disk.
#[derive(Clone, Debug)]
pub struct Fetched {
    /// Which package and version.
    pub resolved: Resolved,
    /// Where `dpkg-deb -x` put its files.
    pub tree: PathBuf,
    /// Whether it was downloaded now.
    pub origin: Origin,
}

/// Whether to ask Debian's mirror for the current versions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Network {
    /// Refresh the lists and resolve; fall back to the cache if unreachable.
    Online,
    /// Use the last resolved versions without contacting the mirror.
    Offline,
}

impl fmt::Display for Resolved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.package, self.version)
    }
}

impl Origin {
    /// Why Debian's mirror could not be asked, if that is why the cache was used.
    pub fn mirror_error(&self) -> Option<&str> {
        match self {
            Origin::Offline(why) if why != OFFLINE_OPTION => Some(why),
            _ => None,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Downloaded => write!(f, "downloaded"),
            Origin::Cached => write!(f, "cached"),
            Origin::Offline(why) if why == OFFLINE_OPTION => write!(f, "cached, {OFFLINE_OPTION}"),
            Origin::Offline(_) => write!(f, "cached; Debian's mirror unreachable"),
        }
    }
}

/// Where the versions to use came from.
enum Source {
    /// Resolved now through the private apt, which downloads what is missing.
    Mirror(PrivateApt),
    /// Read from `resolved.txt`, the mirror not asked (the reason).
    Cache(String),
}

/// The kernel and busybox packages, extracted under `dir` (`target/linux`).
pub fn fetch(dir: &Path, config: &Config, network: Network) -> Result<(Fetched, Fetched), String> {
    let record = dir.join("resolved.txt");
    let online = match network {
        Network::Online => PrivateApt::prepare(
            &dir.join("apt"),
            &suite(config),
            config.kernel.from_backports,
        )
        .and_then(|apt| Ok((resolve_online(&apt, config)?, apt))),
        Network::Offline => Err(OFFLINE_OPTION.to_string()),
    };
    let ((kernel, busybox), source) = match online {
        Ok((resolved, apt)) => (resolved, Source::Mirror(apt)),
        Err(why) => match cached_resolution(dir, &record) {
            Some(resolved) => (resolved, Source::Cache(why)),
            None => {
                return Err(format!(
                "cannot resolve the Linux guest's packages ({why}) and nothing is cached in {}: \
                     run `cargo xtask linux` once with access to deb.debian.org",
                dir.display()
            ))
            }
        },
    };
    let get = |resolved: Resolved| -> Result<Fetched, String> {
        let tree = package_dir(dir, &resolved);
        let origin = match &source {
            Source::Cache(why) => Origin::Offline(why.clone()),
            Source::Mirror(_) if tree.is_dir() => Origin::Cached,
            Source::Mirror(apt) => {
                extract(apt, dir, &resolved, &tree)?;
                Origin::Downloaded
            }
        };
        Ok(Fetched {
            resolved,
            tree,
            origin,
        })
    };
    let (kernel, busybox) = (get(kernel)?, get(busybox)?);
    if let Source::Mirror(_) = source {
        let text = record_text(&kernel.resolved, &busybox.resolved);
        std::fs::write(&record, text).map_err(|e| format!("{}: {e}", record.display()))?;
        prune(dir, &[&kernel.tree, &busybox.tree]);
    }
    Ok((kernel, busybox))
}

/// The versions in `record` if both are still extracted.
fn cached_resolution(dir: &Path, record: &Path) -> Option<(Resolved, Resolved)> {
    let text = std::fs::read_to_string(record).ok()?;
    let (kernel, busybox) = parse_record(&text)?;
    (package_dir(dir, &kernel).is_dir() && package_dir(dir, &busybox).is_dir())
        .then_some((kernel, busybox))
}

/// The Debian suite packages come from: the host's if it is Debian.
pub fn suite(config: &Config) -> String {
    let os_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    apt::host_suite(&os_release, &config.debian.default_suite)
}

/// Refreshes the private lists and resolves both packages' current versions.
fn resolve_online(apt: &PrivateApt, config: &Config) -> Result<(Resolved, Resolved), String> {
    apt.update()?;
    let meta = apt.show(&config.kernel.package)?;
    let kernel = match meta
        .get("Depends")
        .and_then(|d| apt::versioned_dependency(d, "linux-image-"))
    {
        Some((package, Some(version))) => Resolved { package, version },
        Some((package, None)) => {
            let version = field(&apt.show(&package)?, "Version", &package)?;
            Resolved { package, version }
        }
        // Not a metapackage: the configured package is the kernel itself.
        None => Resolved {
            package: config.kernel.package.clone(),
            version: field(&meta, "Version", &config.kernel.package)?,
        },
    };
    let busybox = Resolved {
        package: config.busybox.package.clone(),
        version: field(
            &apt.show(&config.busybox.package)?,
            "Version",
            &config.busybox.package,
        )?,
    };
    Ok((kernel, busybox))
}

fn field(
    fields: &std::collections::BTreeMap<String, String>,
    name: &str,
    package: &str,
) -> Result<String, String> {
    fields
        .get(name)
        .cloned()
        .ok_or_else(|| format!("apt-cache show {package}: no {name} field"))
}

/// Downloads `resolved` and extracts it into `tree`, atomically: a partial
/// extraction is never mistaken for a cached one.
fn extract(apt: &PrivateApt, dir: &Path, resolved: &Resolved, tree: &Path) -> Result<(), String> {
    let download = dir.join("download");
    let deb = apt.download(&resolved.package, &resolved.version, &download)?;
    let partial = tree.with_extension("partial");
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&partial).map_err(|e| format!("{}: {e}", partial.display()))?;
    let status = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&partial)
        .status()
        .map_err(|e| {
            format!("dpkg-deb: {e} (Debian's dpkg is needed to unpack the Linux guest)")
        })?;
    if !status.success() {
        return Err(format!("dpkg-deb -x {} failed", deb.display()));
    }
    std::fs::rename(&partial, tree).map_err(|e| format!("{}: {e}", tree.display()))?;
    let _ = std::fs::remove_dir_all(&download);
    Ok(())
}

/// `target/linux/pkg/<package>_<version>` (a `:` of an epoch as `%3a`, as
/// Debian writes it in file names).
pub fn package_dir(dir: &Path, r: &Resolved) -> PathBuf {
    dir.join("pkg")
        .join(format!("{}_{}", r.package, r.version.replace(':', "%3a")))
}

/// Removes extracted packages other than `keep` (superseded versions).
fn prune(dir: &Path, keep: &[&Path]) {
    let Ok(entries) = std::fs::read_dir(dir.join("pkg")) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if !keep.iter().any(|k| *k == path) {
            eprintln!("xtask linux: removing superseded {}", path.display());
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

/// `resolved.txt`: one `role package version` line per package.
fn record_text(kernel: &Resolved, busybox: &Resolved) -> String {
    format!(
        "kernel {} {}\nbusybox {} {}\n",
        kernel.package, kernel.version, busybox.package, busybox.version
    )
}

fn parse_record(text: &str) -> Option<(Resolved, Resolved)> {
    let find = |role: &str| {
        text.lines().find_map(|l| {
            let mut words = l.split_whitespace();
            (words.next()? == role).then_some(())?;
            Some(Resolved {
                package: words.next()?.to_string(),
                version: words.next()?.to_string(),
            })
        })
    };
    Some((find("kernel")?, find("busybox")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips() {
        let k = Resolved {
            package: "linux-image-6.1.0-56-cloud-arm64".into(),
            version: "6.1.192-2".into(),
        };
        let b = Resolved {
            package: "busybox-static".into(),
            version: "1:1.35.0-4+deb12u1+b1".into(),
        };
        assert_eq!(parse_record(&record_text(&k, &b)), Some((k, b)));
        assert_eq!(parse_record("kernel x\n"), None);
    }

    #[test]
    fn package_dir_escapes_the_epoch_colon() {
        let b = Resolved {
            package: "busybox-static".into(),
            version: "1:1.35.0-4+deb12u1+b1".into(),
        };
        assert_eq!(
            package_dir(Path::new("/t/linux"), &b),
            Path::new("/t/linux/pkg/busybox-static_1%3a1.35.0-4+deb12u1+b1")
        );
    }
}
