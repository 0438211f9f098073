//! The fuzz targets' bodies: each module's `run` takes the fuzzer's bytes,
//! drives one parser or guest-facing model of the hypervisor with them and
//! asserts invariants (budgets kept, nothing outside the partition touched,
//! every error reported with what names it), not only the absence of
//! panics. `fuzz_targets/*.rs` wrap them for cargo-fuzz; `tests/replay.rs`
//! runs the checked-in seeds and regression inputs through the same code
//! with plain `cargo test`.

extern crate alloc;

pub mod bundle;
pub mod guest_fdt;
pub mod input;
pub mod manifest;
pub mod pci_bridge;
pub mod platform_fdt;
pub mod ram;
pub mod trap_decode;
pub mod vgic_mmio;
pub mod vits_pair;
pub mod vuart_console;

// `pci_bridge` reuses the hypervisor's own fake configuration space (the
// host tests' `pci/tests/fake.rs`), which names these paths through `crate::`.
pub(crate) use hypervisor::{boot, mm, pci};

/// A target's body: takes the fuzzer's bytes, panics on a broken invariant.
pub type Run = fn(&[u8]);

/// Every target with a `run` in this crate, by its cargo-fuzz name.
pub const TARGETS: &[(&str, Run)] = &[
    ("bundle", bundle::run),
    ("guest_fdt", guest_fdt::run),
    ("manifest", manifest::run),
    ("pci_bridge", pci_bridge::run),
    ("platform_fdt", platform_fdt::run),
    ("trap_decode", trap_decode::run),
    ("vgic_mmio", vgic_mmio::run),
    ("vits_pair", vits_pair::run),
    ("vuart_console", vuart_console::run),
];
