//! A private apt for arm64 Debian packages: its own configuration, sources,
//! package lists and cache under `target/linux/apt/`, so that fetching the
//! guest kernel needs no root and never touches the host's apt or dpkg.
//!
//! apt reads `APT_CONFIG` before `/etc/apt/apt.conf.d/`, and our file points
//! `Dir::Etc::parts` and `Dir::Etc::main` elsewhere, so the host's
//! configuration snippets (hooks that clean `/var/cache/apt`, proxies for
//! other repositories, AppStream downloads) are not read at all.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Debian's mirror of the main suites.
const MIRROR: &str = "http://deb.debian.org/debian";
/// Debian's mirror of the security suites.
const SECURITY_MIRROR: &str = "http://deb.debian.org/debian-security";
/// The key that signs both mirrors (package `debian-archive-keyring`).
pub const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";
/// Suites without `-updates` and `-security` companions.
const ROLLING: [&str; 3] = ["sid", "unstable", "experimental"];

/// apt with state, cache and configuration of its own, for arm64.
pub struct PrivateApt {
    dir: PathBuf,
}

impl PrivateApt {
    /// Writes the configuration and sources for `suite` under `dir` and
    /// creates the directories apt writes to.
    pub fn prepare(dir: &Path, suite: &str, backports: bool) -> Result<Self, String> {
        if !Path::new(KEYRING).exists() {
            return Err(format!(
                "{KEYRING} is missing: it checks Debian's signatures (Debian: apt-get install debian-archive-keyring)"
            ));
        }
        for sub in [
            "etc/apt.conf.d",
            "etc/sources.list.d",
            "etc/preferences.d",
            "etc/trusted.gpg.d",
            "state/lists/partial",
            "cache/archives/partial",
        ] {
            let d = dir.join(sub);
            std::fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        let write = |name: &str, text: String| {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))
        };
        write("apt.conf", apt_conf(dir))?;
        let mut sources = sources_list(suite, Path::new(KEYRING));
        let mut preferences = String::new();
        if backports {
            sources.push_str(&backports_line(suite, Path::new(KEYRING)));
            preferences = backports_pin(suite);
        }
        write("etc/sources.list", sources)?;
        write("etc/preferences", preferences)?;
        // dpkg's status file: empty, nothing is installed in this apt's view.
        write("state/status", String::new())?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// Refreshes the package lists; fails if any index could not be fetched.
    pub fn update(&self) -> Result<(), String> {
        let out = self.run("apt-get", &["-q", "--error-on=any", "update"], None)?;
        if out.status.success() {
            Ok(())
        } else {
            Err(summary("apt-get update", &out))
        }
    }

    /// The candidate version's record of `package` (`apt-cache show`).
    pub fn show(&self, package: &str) -> Result<BTreeMap<String, String>, String> {
        let out = self.run("apt-cache", &["show", "--no-all-versions", package], None)?;
        if !out.status.success() {
            return Err(summary(&format!("apt-cache show {package}"), &out));
        }
        let fields = parse_fields(&String::from_utf8_lossy(&out.stdout));
        if fields.get("Package").map(String::as_str) != Some(package) {
            return Err(format!("apt-cache show {package}: no record of {package}"));
        }
        Ok(fields)
    }

    /// Downloads `package` at `version` into the empty directory `into`
    /// and returns the `.deb`'s path.
    pub fn download(&self, package: &str, version: &str, into: &Path) -> Result<PathBuf, String> {
        let _ = std::fs::remove_dir_all(into);
        std::fs::create_dir_all(into).map_err(|e| format!("{}: {e}", into.display()))?;
        let spec = format!("{package}={version}");
        let out = self.run("apt-get", &["-q", "download", &spec], Some(into))?;
        if !out.status.success() {
            return Err(summary(&format!("apt-get download {spec}"), &out));
        }
        let debs: Vec<PathBuf> = std::fs::read_dir(into)
            .map_err(|e| format!("{}: {e}", into.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "deb"))
            .collect();
        match debs.as_slice() {
            [deb] => Ok(deb.clone()),
            _ => Err(format!(
                "apt-get download {spec}: expected one .deb in {}, found {}",
                into.display(),
                debs.len()
            )),
        }
    }

    fn run(&self, program: &str, args: &[&str], cwd: Option<&Path>) -> Result<Output, String> {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env("APT_CONFIG", self.dir.join("apt.conf"))
            // Stable, parseable messages.
            .env("LC_ALL", "C");
        if let Some(cwd) = cwd {
            cmd.current_dir(cwd);
        }
        cmd.output().map_err(|e| {
            format!("{program}: {e} (Debian's apt is needed to fetch the Linux guest)")
        })
    }
}

/// The host's Debian suite from `/etc/os-release` text, or `default` when
/// the host is not Debian (another distribution's codenames mean nothing
/// on Debian's mirror).
pub fn host_suite(os_release: &str, default: &str) -> String {
    let field = |key: &str| {
        os_release.lines().find_map(|l| {
            let v = l.strip_prefix(key)?.strip_prefix('=')?;
            Some(v.trim().trim_matches('"').trim_matches('\'').to_string())
        })
    };
    match (field("ID").as_deref(), field("VERSION_CODENAME")) {
        (Some("debian"), Some(codename)) if !codename.is_empty() => codename,
        _ => default.to_string(),
    }
}

/// `sources.list` for `suite` (main only): the suite, its `-updates` and
/// its `-security` (where kernel security updates land first).
pub fn sources_list(suite: &str, keyring: &Path) -> String {
    let line = |mirror: &str, suite: &str| {
        format!(
            "deb [arch=arm64 signed-by={}] {mirror} {suite} main\n",
            keyring.display()
        )
    };
    let mut text =
        String::from("# Written by `cargo xtask linux`: the guest's packages, nothing else.\n");
    text.push_str(&line(MIRROR, suite));
    if !ROLLING.contains(&suite) {
        text.push_str(&line(MIRROR, &format!("{suite}-updates")));
        text.push_str(&line(SECURITY_MIRROR, &format!("{suite}-security")));
    }
    text
}

/// The `-backports` line of `sources.list` for `suite`.
pub fn backports_line(suite: &str, keyring: &Path) -> String {
    format!(
        "deb [arch=arm64 signed-by={}] {MIRROR} {suite}-backports main\n",
        keyring.display()
    )
}

/// apt preferences that make the kernel packages come from `suite`'s
/// backports (which apt never prefers by itself) and nothing else.
pub fn backports_pin(suite: &str) -> String {
    format!(
        "# Written by `cargo xtask linux --series ...`: the kernel from backports.\n\
         Package: linux-image-*\n\
         Pin: release n={suite}-backports\n\
         Pin-Priority: 990\n"
    )
}

/// The private `apt.conf`: every directory apt reads or writes under `dir`,
/// arm64 only, no locking (nothing else uses this state; locking would
/// want root for the host's dpkg lock otherwise).
pub fn apt_conf(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "// Written by `cargo xtask linux`; used through APT_CONFIG.\n\
         Dir::Etc::main \"{d}/etc/apt.conf.main\";\n\
         Dir::Etc::parts \"{d}/etc/apt.conf.d\";\n\
         Dir::Etc::sourcelist \"{d}/etc/sources.list\";\n\
         Dir::Etc::sourceparts \"{d}/etc/sources.list.d\";\n\
         Dir::Etc::preferences \"{d}/etc/preferences\";\n\
         Dir::Etc::preferencesparts \"{d}/etc/preferences.d\";\n\
         Dir::Etc::trusted \"{d}/etc/trusted.gpg\";\n\
         Dir::Etc::trustedparts \"{d}/etc/trusted.gpg.d\";\n\
         Dir::State \"{d}/state\";\n\
         Dir::State::status \"{d}/state/status\";\n\
         Dir::Cache \"{d}/cache\";\n\
         APT::Architecture \"arm64\";\n\
         APT::Architectures {{ \"arm64\"; }};\n\
         Acquire::Languages \"none\";\n\
         Acquire::Retries \"1\";\n\
         Acquire::http::Timeout \"30\";\n\
         Debug::NoLocking \"true\";\n"
    )
}

/// The fields of one deb822 record (`Package: x`, continuation lines joined).
pub fn parse_fields(record: &str) -> BTreeMap<String, String> {
    let mut fields: BTreeMap<String, String> = BTreeMap::new();
    let mut last: Option<String> = None;
    for line in record.lines() {
        if line.is_empty() {
            // apt-cache show prints one record, then a blank line.
            break;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            if let Some(value) = last.as_ref().and_then(|k| fields.get_mut(k)) {
                value.push('\n');
                value.push_str(line.trim());
            }
            continue;
        }
        if let Some((key, value)) = line.split_once(':') {
            fields.insert(key.to_string(), value.trim().to_string());
            last = Some(key.to_string());
        }
    }
    fields
}

/// The first dependency in `depends` whose name starts with `prefix`, with
/// its exact version (`linux-image-6.1.0-56-cloud-arm64 (= 6.1.192-2)`).
pub fn versioned_dependency(depends: &str, prefix: &str) -> Option<(String, Option<String>)> {
    depends
        .split([',', '|'])
        .map(str::trim)
        .find(|d| d.starts_with(prefix))
        .map(|d| {
            let (name, rest) = d.split_once(' ').unwrap_or((d, ""));
            let version = rest
                .trim()
                .strip_prefix("(=")
                .and_then(|v| v.strip_suffix(')'))
                .map(|v| v.trim().to_string());
            (name.to_string(), version)
        })
}

/// The failed command and the first error apt printed (`E:` lines name
/// the failed fetch and the reason; `W:` and `Err:` lines repeat them).
fn summary(what: &str, out: &Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let errors: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("E: "))
        .map(str::trim)
        .collect();
    match errors.as_slice() {
        [] => format!("`{what}` failed ({})", out.status),
        [one] => format!("`{what}` failed: {one}"),
        [first, rest @ ..] => format!("`{what}` failed: {first} (and {} more errors)", rest.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_suite_is_debians_codename_or_the_default() {
        let debian = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_CODENAME=bookworm\n";
        assert_eq!(host_suite(debian, "bookworm"), "bookworm");
        let trixie = "ID=debian\nVERSION_CODENAME=\"trixie\"\n";
        assert_eq!(host_suite(trixie, "bookworm"), "trixie");
        let ubuntu = "ID=ubuntu\nID_LIKE=debian\nVERSION_CODENAME=noble\n";
        assert_eq!(host_suite(ubuntu, "bookworm"), "bookworm");
        assert_eq!(host_suite("", "bookworm"), "bookworm");
        assert_eq!(
            host_suite("ID=debian\nVERSION_CODENAME=\n", "bookworm"),
            "bookworm"
        );
    }

    #[test]
    fn backports_add_one_source_and_pin_only_the_kernel_packages() {
        let line = backports_line("bookworm", Path::new("/k.gpg"));
        assert_eq!(
            line,
            "deb [arch=arm64 signed-by=/k.gpg] http://deb.debian.org/debian bookworm-backports main\n"
        );
        let pin = backports_pin("bookworm");
        assert!(pin.contains("Package: linux-image-*\n"));
        assert!(pin.contains("Pin: release n=bookworm-backports\n"));
        // Above 500 (the suite's own) and below 1000 (no downgrades).
        assert!(pin.contains("Pin-Priority: 990\n"));
    }

    #[test]
    fn sources_list_has_suite_updates_and_security_for_arm64() {
        let text = sources_list("bookworm", Path::new("/k.gpg"));
        let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            lines,
            [
                "deb [arch=arm64 signed-by=/k.gpg] http://deb.debian.org/debian bookworm main",
                "deb [arch=arm64 signed-by=/k.gpg] http://deb.debian.org/debian bookworm-updates main",
                "deb [arch=arm64 signed-by=/k.gpg] http://deb.debian.org/debian-security bookworm-security main",
            ]
        );
        let sid = sources_list("sid", Path::new("/k.gpg"));
        assert_eq!(sid.lines().filter(|l| l.starts_with("deb ")).count(), 1);
    }

    #[test]
    fn apt_conf_keeps_every_directory_private() {
        let conf = apt_conf(Path::new("/w/target/linux/apt"));
        for key in [
            "Dir::Etc::main \"/w/target/linux/apt/etc/apt.conf.main\";",
            "Dir::Etc::parts \"/w/target/linux/apt/etc/apt.conf.d\";",
            "Dir::Etc::sourceparts \"/w/target/linux/apt/etc/sources.list.d\";",
            "Dir::State \"/w/target/linux/apt/state\";",
            "Dir::State::status \"/w/target/linux/apt/state/status\";",
            "Dir::Cache \"/w/target/linux/apt/cache\";",
            "APT::Architectures { \"arm64\"; };",
            "Debug::NoLocking \"true\";",
        ] {
            assert!(conf.lines().any(|l| l == key), "missing {key}\n{conf}");
        }
        // Nothing points at the host's /etc/apt or /var.
        assert!(!conf.contains("/etc/apt/") && !conf.contains("/var/"));
    }

    /// `apt-cache show --no-all-versions linux-image-cloud-arm64` through
    /// the private apt on bookworm (November 2026).
    const METAPACKAGE: &str = "Package: linux-image-cloud-arm64
Source: linux-signed-arm64 (6.1.192+2)
Version: 6.1.192-2
Installed-Size: 13
Maintainer: Debian Kernel Team <debian-kernel@lists.debian.org>
Architecture: arm64
Provides: linux-latest-modules-6.1.0-56-cloud-arm64, wireguard-modules (= 1.0.0)
Depends: linux-image-6.1.0-56-cloud-arm64 (= 6.1.192-2)
Description: Linux for arm64 cloud (meta-package)
Description-md5: 266939b2cc5604a948c15783fa8f3dda
Homepage: https://www.kernel.org/
Built-Using: linux (= 6.1.192-2)
Section: kernel
Priority: optional
Filename: pool/updates/main/l/linux-signed-arm64/linux-image-cloud-arm64_6.1.192-2_arm64.deb
Size: 1460
SHA256: ab97b5c21a7b8ee1ab7a7a5a45f690ff773b6cde33183cd9d57de345133b3ce7

";

    #[test]
    fn metapackage_record_resolves_to_the_versioned_kernel() {
        let f = parse_fields(METAPACKAGE);
        assert_eq!(f["Version"], "6.1.192-2");
        let (name, version) = versioned_dependency(&f["Depends"], "linux-image-").unwrap();
        assert_eq!(name, "linux-image-6.1.0-56-cloud-arm64");
        assert_eq!(version.as_deref(), Some("6.1.192-2"));
    }

    #[test]
    fn continuation_lines_join_their_field() {
        let f = parse_fields("Package: p\nDescription: short\n long text\n .\n more\nSize: 1\n");
        assert_eq!(f["Description"], "short\nlong text\n.\nmore");
        assert_eq!(f["Size"], "1");
    }

    #[test]
    fn dependency_lists_with_alternatives_and_no_version() {
        let d = "initramfs-tools | linux-initramfs-tool, linux-image-6.12.12+bpo-cloud-arm64 (= 6.12.12-1~bpo12+1)";
        let (name, version) = versioned_dependency(d, "linux-image-").unwrap();
        assert_eq!(name, "linux-image-6.12.12+bpo-cloud-arm64");
        assert_eq!(version.as_deref(), Some("6.12.12-1~bpo12+1"));
        assert_eq!(
            versioned_dependency("kmod, linux-image-x", "linux-image-"),
            Some(("linux-image-x".to_string(), None))
        );
        assert_eq!(versioned_dependency("kmod", "linux-image-"), None);
    }

    #[test]
    fn only_the_first_record_is_read() {
        let two = "Package: busybox-static\nVersion: 1:1.35.0-4+deb12u1+b1\n\nPackage: busybox-static\nVersion: 1:1.30.1-6\n";
        assert_eq!(parse_fields(two)["Version"], "1:1.35.0-4+deb12u1+b1");
    }
}
