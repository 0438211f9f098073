//! Board descriptions (`boards/<name>/board.toml`).

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// A board: where the hypervisor loads and how QEMU emulates it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Board {
    /// The board's name (its folder under `boards/`).
    pub name: String,
    /// One line for people.
    pub description: String,
    /// Physical load address of the hypervisor image.
    pub load_address: u64,
    /// Default manifest, relative to the board folder.
    pub manifest: String,
    /// How to run the board under QEMU.
    pub qemu: Qemu,
    /// The board's folder.
    #[serde(skip)]
    pub dir: PathBuf,
}

/// QEMU settings of a board.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct Qemu {
    /// The QEMU binary.
    pub binary: String,
    /// `-M` value.
    pub machine: String,
    /// `-cpu` value.
    pub cpu: String,
    /// `-smp` value.
    pub smp: u32,
    /// `-m` value.
    pub memory: String,
    /// Extra arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// NVMe controllers, each with a disk image xtask makes.
    #[serde(default)]
    pub nvme: Vec<NvmeDevice>,
    /// virtio-net NICs, each on its own QEMU user network.
    #[serde(default)]
    pub nic: Vec<NicDevice>,
    /// A device tree for `-dtb`, relative to the repository root (made
    /// absolute by [`Board::load`]); boards whose QEMU model makes no tree
    /// of its own (raspi4b) need one.
    #[serde(default)]
    pub dtb: Option<PathBuf>,
}

/// `[[qemu.nvme]]`: an NVMe controller on the host bridge.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct NvmeDevice {
    /// Disk name: `target/linux/nvme-<disk>.img`, with a marker line that
    /// the Linux guest's `/init` reads back.
    pub disk: String,
    /// PCI slot (device number) on bus 0.
    pub slot: u8,
}

/// `[[qemu.nic]]`: a virtio-net-pci NIC on QEMU user networking (guest
/// 10.0.2.15, gateway 10.0.2.2), one network per NIC.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct NicDevice {
    /// PCI slot (device number) on bus 0.
    pub slot: u8,
}

impl Qemu {
    /// The QEMU arguments of the board's NVMe controllers and NICs; makes
    /// the disk images under `linux_dir` first.
    pub fn device_args(&self, linux_dir: &Path) -> Result<Vec<String>, String> {
        let mut args = Vec::new();
        for d in &self.nvme {
            let image = crate::linux::disk::nvme_image(linux_dir, &d.disk)?;
            args.extend([
                "-drive".into(),
                format!(
                    "file={},if=none,id=nvme-{},format=raw",
                    image.display(),
                    d.disk
                ),
                "-device".into(),
                format!(
                    "nvme,serial=hv-{0},drive=nvme-{0},addr={1:#x}",
                    d.disk, d.slot
                ),
            ]);
        }
        for (i, n) in self.nic.iter().enumerate() {
            args.extend([
                "-netdev".into(),
                format!("user,id=net{i}"),
                "-device".into(),
                // iommu_platform: QEMU's virtio devices otherwise skip the
                // SMMU (VIRTIO_F_ACCESS_PLATFORM off) and take the guest's
                // addresses as physical ones; modern-only, as that needs.
                format!(
                    "virtio-net-pci,netdev=net{i},addr={:#x},disable-legacy=on,iommu_platform=on",
                    n.slot
                ),
            ]);
        }
        Ok(args)
    }
}

impl Board {
    /// Loads `boards/<name>/board.toml`.
    pub fn load(root: &Path, name: &str) -> Result<Board, String> {
        let dir = root.join("boards").join(name);
        let path = dir.join("board.toml");
        let text = std::fs::read_to_string(&path).map_err(|e| {
            format!(
                "{}: {e} (is `{name}` a board under boards/?)",
                path.display()
            )
        })?;
        let mut board: Board =
            toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        board.dir = dir;
        if let Some(dtb) = board.qemu.dtb.take() {
            board.qemu.dtb = Some(root.join(dtb));
        }
        Ok(board)
    }

    /// The default manifest's path.
    pub fn manifest_path(&self) -> PathBuf {
        self.dir.join(&self.manifest)
    }
}
