//! `cargo xtask test`: host unit tests, then QEMU system scenarios.

use crate::Options;
use std::path::Path;
use std::process::ExitCode;

/// Runs the host tests and the system scenarios.
pub fn test_all(_root: &Path, _opts: &Options) -> Result<ExitCode, String> {
    Err("system scenarios are not written yet".into())
}
