//! Kernel modules for the initramfs: which files, and the order `/init`
//! loads them in.
//!
//! Debian's kernel packages ship no `modules.dep` (`depmod` writes it when
//! the package is installed), so a module's dependencies come from its own
//! `.modinfo` section (`depends=virtio,virtio_ring`), the data `depmod`
//! reads too. A `modules.dep` is used instead when the tree has one. The
//! initramfs gets a `modules.dep` for the modules it holds, so busybox
//! `modprobe` works in the interactive shell.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// One module of a kernel's module tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Module {
    /// The kernel's name for it (`virtio_net`; `-` in file names becomes `_`).
    pub name: String,
    /// Path relative to `lib/modules/<release>/`, as written in `modules.dep`.
    pub path: String,
    /// Modules it needs loaded first.
    pub depends: Vec<String>,
}

/// The modules of one kernel release, found lazily: a module's file is
/// read only when something depends on it.
pub struct ModuleTree {
    /// `lib/modules/<release>/`.
    dir: PathBuf,
    /// Module name -> path relative to `dir`.
    paths: BTreeMap<String, String>,
    /// Dependencies from `modules.dep`, when the tree has one.
    dep_file: Option<BTreeMap<String, Vec<String>>>,
    /// Names of the modules built into the kernel (`modules.builtin`).
    builtin: BTreeSet<String>,
}

/// The modules to load, in order, and the built-in ones that were asked for.
#[derive(Debug, PartialEq, Eq)]
pub struct LoadPlan {
    /// Dependencies before the modules that need them.
    pub modules: Vec<Module>,
    /// Requested modules the kernel has built in (nothing to load).
    pub builtin: Vec<String>,
}

impl ModuleTree {
    /// Indexes `lib/modules/<release>/` of an extracted kernel package.
    pub fn open(dir: &Path) -> Result<Self, String> {
        let mut paths = BTreeMap::new();
        let kernel = dir.join("kernel");
        walk(&kernel, &mut |file| {
            let rel = file
                .strip_prefix(dir)
                .expect("walked below dir")
                .to_string_lossy()
                .into_owned();
            if let Some(name) = module_name(&rel) {
                paths.insert(name, rel);
            }
        })
        .map_err(|e| format!("{}: {e}", kernel.display()))?;
        if paths.is_empty() {
            return Err(format!("{}: no kernel modules found", kernel.display()));
        }
        let dep_file = match std::fs::read_to_string(dir.join("modules.dep")) {
            Ok(text) => Some(parse_modules_dep(&text)?),
            Err(_) => None,
        };
        let builtin = std::fs::read_to_string(dir.join("modules.builtin"))
            .map(|text| text.lines().filter_map(module_name).collect())
            .unwrap_or_default();
        Ok(Self {
            dir: dir.to_path_buf(),
            paths,
            dep_file,
            builtin,
        })
    }

    /// `roots` and everything they depend on, dependencies first.
    pub fn load_plan(&self, roots: &[String]) -> Result<LoadPlan, String> {
        let mut builtin = Vec::new();
        let mut wanted = Vec::new();
        for root in roots {
            let name = root.replace('-', "_");
            if self.builtin.contains(&name) {
                builtin.push(name);
            } else {
                wanted.push(name);
            }
        }
        let order = load_order(&wanted, &|name| self.module(name))?;
        Ok(LoadPlan {
            modules: order,
            builtin,
        })
    }

    /// The module file's bytes, uncompressed (`.ko.xz` through the host's `xz`).
    /// `module.path` is where the initramfs stores it (uncompressed); the
    /// tree's own file is found by the module's name.
    pub fn read(&self, module: &Module) -> Result<Vec<u8>, String> {
        let stored = self.paths.get(&module.name).unwrap_or(&module.path);
        let file = self.dir.join(stored);
        let path = stored.as_str();
        if path.ends_with(".ko") {
            return std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()));
        }
        if path.ends_with(".ko.xz") {
            let out = Command::new("xz")
                .arg("-dc")
                .arg(&file)
                .output()
                .map_err(|e| format!("xz (for {}): {e}", file.display()))?;
            if out.status.success() {
                return Ok(out.stdout);
            }
            return Err(format!("xz -dc {} failed", file.display()));
        }
        Err(format!(
            "{}: compressed module format not supported (only .ko and .ko.xz)",
            file.display()
        ))
    }

    fn module(&self, name: &str) -> Result<Module, String> {
        let path = self.paths.get(name).ok_or_else(|| {
            format!(
                "module {name} not found under {} (neither a module nor built in)",
                self.dir.display()
            )
        })?;
        let depends = match &self.dep_file {
            Some(deps) => deps.get(name).cloned().unwrap_or_default(),
            None => {
                let probe = Module {
                    name: name.into(),
                    path: path.clone(),
                    depends: Vec::new(),
                };
                modinfo_depends(&self.read(&probe)?)
                    .map_err(|e| format!("{}: {e}", self.dir.join(path).display()))?
            }
        };
        Ok(Module {
            name: name.into(),
            path: uncompressed_path(path),
            depends,
        })
    }
}

/// `modules.dep` text for the modules of `plan` (paths as stored in the
/// initramfs; each line lists every module its module needs, the last to
/// be loaded first, as `depmod` writes it).
pub fn modules_dep(plan: &[Module]) -> String {
    let by_name: BTreeMap<&str, &Module> = plan.iter().map(|m| (m.name.as_str(), m)).collect();
    let mut text = String::new();
    for module in plan {
        let order = load_order(std::slice::from_ref(&module.name), &|name| {
            by_name
                .get(name)
                .map(|m| (*m).clone())
                .ok_or_else(|| format!("{name} is not in the plan"))
        })
        .expect("the plan is closed under dependencies");
        let deps: Vec<&str> = order
            .iter()
            .rev()
            .skip(1)
            .map(|m| m.path.as_str())
            .collect();
        text.push_str(&module.path);
        text.push(':');
        for dep in deps {
            text.push(' ');
            text.push_str(dep);
        }
        text.push('\n');
    }
    text
}

/// Depth-first order over `lookup`'s dependency graph: every module after
/// all it depends on, each once; a cycle is an error naming it.
pub fn load_order(
    roots: &[String],
    lookup: &dyn Fn(&str) -> Result<Module, String>,
) -> Result<Vec<Module>, String> {
    fn visit(
        name: &str,
        lookup: &dyn Fn(&str) -> Result<Module, String>,
        done: &mut BTreeSet<String>,
        path: &mut Vec<String>,
        order: &mut Vec<Module>,
    ) -> Result<(), String> {
        if done.contains(name) {
            return Ok(());
        }
        if path.iter().any(|p| p == name) {
            return Err(format!(
                "module dependency cycle: {} -> {name}",
                path.join(" -> ")
            ));
        }
        let module = lookup(name)?;
        path.push(name.into());
        for dep in &module.depends {
            visit(dep, lookup, done, path, order)?;
        }
        path.pop();
        done.insert(name.into());
        order.push(module);
        Ok(())
    }
    let (mut done, mut order) = (BTreeSet::new(), Vec::new());
    for root in roots {
        visit(root, lookup, &mut done, &mut Vec::new(), &mut order)?;
    }
    Ok(order)
}

/// Parses `modules.dep`: module name -> names of the modules it needs.
pub fn parse_modules_dep(text: &str) -> Result<BTreeMap<String, Vec<String>>, String> {
    let mut deps = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let (module, needs) = line
            .split_once(':')
            .ok_or_else(|| format!("modules.dep line {}: no `:`", i + 1))?;
        let name = module_name(module.trim())
            .ok_or_else(|| format!("modules.dep line {}: {module} is not a module", i + 1))?;
        let needs = needs
            .split_whitespace()
            .map(|d| module_name(d).ok_or_else(|| format!("modules.dep line {}: {d}", i + 1)))
            .collect::<Result<Vec<_>, _>>()?;
        deps.insert(name, needs);
    }
    Ok(deps)
}

/// The module name of a path (`kernel/drivers/char/hw_random/virtio-rng.ko`
/// -> `virtio_rng`), `None` if it is not a module file.
pub fn module_name(path: &str) -> Option<String> {
    let file = path.rsplit('/').next()?;
    let stem = [".ko", ".ko.xz", ".ko.zst", ".ko.gz"]
        .iter()
        .find_map(|ext| file.strip_suffix(ext))?;
    (!stem.is_empty()).then(|| stem.replace('-', "_"))
}

/// The `depends=` list of a module's `.modinfo` section.
pub fn modinfo_depends(elf: &[u8]) -> Result<Vec<String>, String> {
    let modinfo = elf_section(elf, ".modinfo")?.ok_or("no .modinfo section")?;
    let depends = modinfo
        .split(|&b| b == 0)
        .find_map(|entry| entry.strip_prefix(b"depends="))
        .unwrap_or_default();
    let depends = std::str::from_utf8(depends).map_err(|_| "depends= is not UTF-8")?;
    Ok(depends
        .split(',')
        .filter(|d| !d.is_empty())
        .map(|d| d.replace('-', "_"))
        .collect())
}

/// The bytes of section `name` of an ELF64 little-endian file.
fn elf_section<'a>(elf: &'a [u8], name: &str) -> Result<Option<&'a [u8]>, String> {
    let bad = || "not an ELF64 little-endian file".to_string();
    if elf.len() < 64 || &elf[..4] != b"\x7fELF" || elf[4] != 2 || elf[5] != 1 {
        return Err(bad());
    }
    let u16_at = |o: usize| -> Option<usize> {
        Some(u16::from_le_bytes(elf.get(o..o + 2)?.try_into().ok()?) as usize)
    };
    let u32_at = |o: usize| -> Option<usize> {
        Some(u32::from_le_bytes(elf.get(o..o + 4)?.try_into().ok()?) as usize)
    };
    let u64_at = |o: usize| -> Option<usize> {
        usize::try_from(u64::from_le_bytes(elf.get(o..o + 8)?.try_into().ok()?)).ok()
    };
    let shoff = u64_at(0x28).ok_or_else(bad)?;
    let shentsize = u16_at(0x3a).ok_or_else(bad)?;
    let shnum = u16_at(0x3c).ok_or_else(bad)?;
    let shstrndx = u16_at(0x3e).ok_or_else(bad)?;
    // (name offset, file offset, size) of section `i`.
    let section = |i: usize| -> Option<(usize, usize, usize)> {
        let at = shoff.checked_add(i.checked_mul(shentsize)?)?;
        Some((u32_at(at)?, u64_at(at + 0x18)?, u64_at(at + 0x20)?))
    };
    let bytes = |offset: usize, size: usize| elf.get(offset..offset.checked_add(size)?);
    let (_, str_off, str_size) = section(shstrndx).ok_or_else(bad)?;
    let names = bytes(str_off, str_size).ok_or_else(bad)?;
    for i in 0..shnum {
        let (name_off, off, size) = section(i).ok_or_else(bad)?;
        let this = names
            .get(name_off..)
            .and_then(|n| n.split(|&b| b == 0).next())
            .ok_or_else(bad)?;
        if this == name.as_bytes() {
            return bytes(off, size).map(Some).ok_or_else(bad);
        }
    }
    Ok(None)
}

/// Where a module is stored in the initramfs: uncompressed.
fn uncompressed_path(path: &str) -> String {
    path.strip_suffix(".xz").unwrap_or(path).to_string()
}

fn walk(dir: &Path, f: &mut dyn FnMut(&Path)) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            walk(&path, f)?;
        } else {
            f(&path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(&str, &[&str])]) -> impl Fn(&str) -> Result<Module, String> {
        let map: BTreeMap<String, Vec<String>> = edges
            .iter()
            .map(|(n, d)| (n.to_string(), d.iter().map(|s| s.to_string()).collect()))
            .collect();
        move |name: &str| {
            let depends = map.get(name).cloned().ok_or(format!("no {name}"))?;
            Ok(Module {
                name: name.into(),
                path: format!("kernel/{name}.ko"),
                depends,
            })
        }
    }

    fn names(order: &[Module]) -> Vec<&str> {
        order.iter().map(|m| m.name.as_str()).collect()
    }

    /// The virtio-net stack of Debian's 6.1 cloud kernel, as its modinfo says.
    const VIRTIO: &[(&str, &[&str])] = &[
        ("virtio_net", &["virtio_ring", "virtio", "net_failover"]),
        (
            "virtio_pci",
            &[
                "virtio_ring",
                "virtio_pci_modern_dev",
                "virtio_pci_legacy_dev",
                "virtio",
            ],
        ),
        ("virtio_ring", &[]),
        ("virtio", &["virtio_ring"]),
        ("net_failover", &["failover"]),
        ("failover", &[]),
        ("virtio_pci_modern_dev", &[]),
        ("virtio_pci_legacy_dev", &[]),
    ];

    #[test]
    fn dependencies_load_first_and_each_module_once() {
        let roots = ["virtio_pci".to_string(), "virtio_net".to_string()];
        let order = load_order(&roots, &graph(VIRTIO)).unwrap();
        assert_eq!(
            names(&order),
            [
                "virtio_ring",
                "virtio_pci_modern_dev",
                "virtio_pci_legacy_dev",
                "virtio",
                "virtio_pci",
                "failover",
                "net_failover",
                "virtio_net"
            ]
        );
    }

    #[test]
    fn a_dependency_cycle_is_an_error_naming_it() {
        let e = load_order(&["a".into()], &graph(&[("a", &["b"]), ("b", &["a"])])).unwrap_err();
        assert_eq!(e, "module dependency cycle: a -> b -> a");
    }

    #[test]
    fn a_missing_module_is_an_error() {
        let e = load_order(&["a".into()], &graph(&[("a", &["gone"])])).unwrap_err();
        assert_eq!(e, "no gone");
    }

    #[test]
    fn modules_dep_lines_parse_to_names() {
        let text = "kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko\n\
                    kernel/drivers/char/hw_random/virtio-rng.ko.xz: kernel/drivers/virtio/virtio_ring.ko\n\
                    kernel/net/core/failover.ko:\n";
        let deps = parse_modules_dep(text).unwrap();
        assert_eq!(
            deps["virtio_net"],
            ["net_failover", "failover", "virtio", "virtio_ring"]
        );
        assert_eq!(deps["virtio_rng"], ["virtio_ring"]);
        assert!(deps["failover"].is_empty());
        assert!(parse_modules_dep("kernel/x.ko kernel/y.ko\n")
            .unwrap_err()
            .contains("line 1"));
    }

    #[test]
    fn generated_modules_dep_lists_the_closure_last_loaded_first() {
        let roots = ["virtio_net".to_string()];
        let order = load_order(&roots, &graph(VIRTIO)).unwrap();
        let text = modules_dep(&order);
        let line = text
            .lines()
            .find(|l| l.starts_with("kernel/virtio_net.ko:"))
            .unwrap();
        assert_eq!(line, "kernel/virtio_net.ko: kernel/net_failover.ko kernel/failover.ko kernel/virtio.ko kernel/virtio_ring.ko");
        // And it parses back to the same closure.
        let back = parse_modules_dep(&text).unwrap();
        assert_eq!(back["virtio"], ["virtio_ring"]);
        assert_eq!(back.len(), order.len());
    }

    #[test]
    fn module_names_use_underscores_and_drop_the_extension() {
        assert_eq!(
            module_name("kernel/drivers/char/hw_random/virtio-rng.ko").as_deref(),
            Some("virtio_rng")
        );
        assert_eq!(
            module_name("virtio_net.ko.xz").as_deref(),
            Some("virtio_net")
        );
        assert_eq!(module_name("kernel/drivers/net/README"), None);
        assert_eq!(module_name(".ko"), None);
    }

    /// A minimal ELF64 with a section-name table and a `.modinfo` section.
    fn elf_with_modinfo(modinfo: &[u8]) -> Vec<u8> {
        let shstrtab = b"\0.shstrtab\0.modinfo\0";
        let mut elf = vec![0u8; 64];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        let strtab_off = elf.len();
        elf.extend_from_slice(shstrtab);
        let modinfo_off = elf.len();
        elf.extend_from_slice(modinfo);
        elf.resize(elf.len().next_multiple_of(8), 0);
        let shoff = elf.len();
        // Section 0 (null), 1 (.shstrtab), 2 (.modinfo).
        for (name, off, size) in [
            (0u32, 0usize, 0usize),
            (1, strtab_off, shstrtab.len()),
            (11, modinfo_off, modinfo.len()),
        ] {
            let mut sh = [0u8; 64];
            sh[..4].copy_from_slice(&name.to_le_bytes());
            sh[0x18..0x20].copy_from_slice(&(off as u64).to_le_bytes());
            sh[0x20..0x28].copy_from_slice(&(size as u64).to_le_bytes());
            elf.extend_from_slice(&sh);
        }
        elf[0x28..0x30].copy_from_slice(&(shoff as u64).to_le_bytes());
        elf[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        elf[0x3c..0x3e].copy_from_slice(&3u16.to_le_bytes());
        elf[0x3e..0x40].copy_from_slice(&1u16.to_le_bytes());
        elf
    }

    #[test]
    fn an_xz_module_is_stored_uncompressed_and_read_from_its_compressed_file() {
        if Command::new("xz").arg("--version").output().is_err() {
            eprintln!("no xz on this host: skipped");
            return;
        }
        let dir = std::env::temp_dir().join(format!("xtask-modules-{}", std::process::id()));
        let core = dir.join("kernel/net/core");
        std::fs::create_dir_all(&core).unwrap();
        let elf = elf_with_modinfo(b"license=GPL\0depends=\0");
        let plain = core.join("failover.ko");
        std::fs::write(&plain, &elf).unwrap();
        assert!(Command::new("xz").arg(&plain).status().unwrap().success());
        let tree = ModuleTree::open(&dir).unwrap();
        let plan = tree.load_plan(&["failover".to_string()]).unwrap();
        assert_eq!(plan.modules[0].path, "kernel/net/core/failover.ko");
        assert_eq!(tree.read(&plan.modules[0]).unwrap(), elf);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn modinfo_depends_read_from_the_elf_section() {
        let elf =
            elf_with_modinfo(b"license=GPL\0depends=virtio_ring,virtio,net-failover\0intree=Y\0");
        assert_eq!(
            modinfo_depends(&elf).unwrap(),
            ["virtio_ring", "virtio", "net_failover"]
        );
        let none = elf_with_modinfo(b"license=GPL\0depends=\0");
        assert!(modinfo_depends(&none).unwrap().is_empty());
        assert!(modinfo_depends(b"not an elf").is_err());
        let mut truncated = elf_with_modinfo(b"depends=a\0");
        truncated.truncate(100);
        assert!(modinfo_depends(&truncated).is_err());
    }
}
