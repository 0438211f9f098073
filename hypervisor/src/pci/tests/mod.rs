//! Tests of the PCI layer against a fake configuration space that models
//! QEMU's gpex host bridge, virtio-net-pci, edu, e1000e and root ports.

mod capabilities;
mod discovery;
pub mod fake;
mod msi;
mod msix;
mod props;
mod vbridge;
