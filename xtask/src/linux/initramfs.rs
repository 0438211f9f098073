//! The guest's initramfs: busybox, `/init` and its udhcpc script from
//! `guests/linux/`, the kernel modules for virtio-net over virtio-pci with
//! their dependencies, as a gzip-compressed cpio "newc" archive.
//!
//! ```text
//! /init                              guests/linux/init
//! /bin/busybox, /bin/sh -> busybox   the other applets are linked by /init
//! /dev/console                       5:1, the kernel opens it before /init runs
//! /etc/udhcpc/default.script       guests/linux/udhcpc.script
//! /lib/modules/<release>/...         the modules and a modules.dep for them
//! /etc/hvtest/modules                "<name> <path>" in load order, for /init
//! /etc/hvtest/versions               the resolved package versions
//! ```

use super::cpio::CpioWriter;
use super::modules::{self, LoadPlan, ModuleTree};
use flate2::write::GzEncoder;
use flate2::Compression;
use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

/// What goes into the archive besides the modules.
pub struct Inputs<'a> {
    /// The kernel release (`uname -r`, the `lib/modules/` folder name).
    pub release: &'a str,
    /// The static busybox binary.
    pub busybox: &'a [u8],
    /// The `/init` script.
    pub init: &'a [u8],
    /// udhcpc's `default.script`.
    pub udhcpc_script: &'a [u8],
    /// Text of `/etc/hvtest/versions`.
    pub versions: &'a str,
}

/// A built initramfs.
pub struct Initramfs {
    /// The gzip-compressed archive.
    pub gz: Vec<u8>,
    /// Bytes before compression.
    pub cpio_len: usize,
    /// The modules it holds, in load order, and the built-in ones asked for.
    pub plan: LoadPlan,
}

/// Builds the initramfs with `modules` (and their dependencies) of `tree`.
pub fn build(
    inputs: &Inputs<'_>,
    tree: &ModuleTree,
    modules: &[String],
) -> Result<Initramfs, String> {
    let plan = tree.load_plan(modules)?;
    let mut files = Vec::new();
    for module in &plan.modules {
        files.push((module.path.clone(), tree.read(module)?));
    }
    let cpio = archive(inputs, &plan, &files);
    let mut gz = GzEncoder::new(Vec::new(), Compression::best());
    gz.write_all(&cpio).map_err(|e| format!("gzip: {e}"))?;
    let gz = gz.finish().map_err(|e| format!("gzip: {e}"))?;
    Ok(Initramfs {
        gz,
        cpio_len: cpio.len(),
        plan,
    })
}

/// The uncompressed archive: `files` are the modules' bytes by path.
fn archive(inputs: &Inputs<'_>, plan: &LoadPlan, files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut a = Archive::default();
    for dir in [
        "bin", "dev", "etc", "mnt", "proc", "root", "run", "sbin", "sys", "usr/bin", "usr/sbin",
        "var",
    ] {
        a.dir(dir, 0o755);
    }
    a.dir("tmp", 0o1777);
    a.cpio.char_device("dev/console", 0o600, 5, 1);
    a.file("bin/busybox", 0o755, inputs.busybox);
    a.cpio.symlink("bin/sh", "busybox");
    a.file("init", 0o755, inputs.init);
    a.file("etc/udhcpc/default.script", 0o755, inputs.udhcpc_script);
    a.file("etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/sh\n");
    a.file("etc/group", 0o644, b"root:x:0:\n");
    a.file("etc/hvtest/versions", 0o644, inputs.versions.as_bytes());
    let module_dir = format!("lib/modules/{}", inputs.release);
    let list: String = plan
        .modules
        .iter()
        .map(|m| format!("{} {}\n", m.name, m.path))
        .collect();
    a.file("etc/hvtest/modules", 0o644, list.as_bytes());
    a.file(
        &format!("{module_dir}/modules.dep"),
        0o644,
        modules::modules_dep(&plan.modules).as_bytes(),
    );
    for (path, bytes) in files {
        a.file(&format!("{module_dir}/{path}"), 0o644, bytes);
    }
    a.cpio.finish()
}

/// A cpio writer that adds each parent directory once, before its contents
/// (the kernel does not create missing parents while unpacking).
#[derive(Default)]
struct Archive {
    cpio: CpioWriter,
    dirs: BTreeSet<String>,
}

impl Archive {
    fn dir(&mut self, path: &str, permissions: u32) {
        let mut at = String::new();
        for part in path.split('/') {
            if !at.is_empty() {
                at.push('/');
            }
            at.push_str(part);
            if self.dirs.insert(at.clone()) {
                let mode = if at == path { permissions } else { 0o755 };
                self.cpio.dir(&at, mode);
            }
        }
    }

    fn file(&mut self, path: &str, permissions: u32, data: &[u8]) {
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent, 0o755);
        }
        self.cpio.file(path, permissions, data);
    }
}

/// Reads a file the initramfs needs.
pub fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linux::modules::Module;

    /// (name, mode) of every entry of a newc archive, in order.
    fn entries(a: &[u8]) -> Vec<(String, u32)> {
        let mut at = 0;
        let mut out = Vec::new();
        loop {
            let field = |i: usize| {
                let s = std::str::from_utf8(&a[at + 6 + i * 8..at + 14 + i * 8]).unwrap();
                u32::from_str_radix(s, 16).unwrap() as usize
            };
            let (mode, size, name_len) = (field(1), field(6), field(11));
            let name = std::str::from_utf8(&a[at + 110..at + 110 + name_len - 1]).unwrap();
            if name == "TRAILER!!!" {
                return out;
            }
            out.push((name.to_string(), mode as u32));
            at = ((at + 110 + name_len).next_multiple_of(4) + size).next_multiple_of(4);
        }
    }

    #[test]
    fn parents_come_first_and_init_busybox_console_are_there() {
        let inputs = Inputs {
            release: "6.1.0-56-cloud-arm64",
            busybox: b"ELF",
            init: b"#!/bin/sh\n",
            udhcpc_script: b"#!/bin/sh\n",
            versions: "linux: k 1\n",
        };
        let plan = LoadPlan {
            modules: vec![Module {
                name: "failover".into(),
                path: "kernel/net/core/failover.ko".into(),
                depends: vec![],
            }],
            builtin: vec![],
        };
        let files = vec![(plan.modules[0].path.clone(), b"ko".to_vec())];
        let list = entries(&archive(&inputs, &plan, &files));
        let index = |name: &str| {
            list.iter()
                .position(|(n, _)| n == name)
                .unwrap_or_else(|| panic!("{name} missing"))
        };
        let m = "lib/modules/6.1.0-56-cloud-arm64";
        for (parent, child) in [
            ("lib", "lib/modules"),
            ("lib/modules", m),
            (m, &format!("{m}/kernel")),
            (
                &format!("{m}/kernel/net/core"),
                &format!("{m}/kernel/net/core/failover.ko"),
            ),
            ("etc/udhcpc", "etc/udhcpc/default.script"),
        ] {
            assert!(index(parent) < index(child), "{parent} before {child}");
        }
        assert_eq!(list[index("init")].1, 0o100_755);
        assert_eq!(list[index("dev/console")].1, 0o020_600);
        assert_eq!(list[index("bin/sh")].1, 0o120_777);
        assert_eq!(list[index("tmp")].1, 0o041_777);
        index("etc/hvtest/modules");
        index(&format!("{m}/modules.dep"));
        // Each directory once.
        let mut names: Vec<&String> = list.iter().map(|(n, _)| n).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), list.len());
    }
}
