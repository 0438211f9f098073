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
        Ok(board)
    }

    /// The default manifest's path.
    pub fn manifest_path(&self) -> PathBuf {
        self.dir.join(&self.manifest)
    }
}
