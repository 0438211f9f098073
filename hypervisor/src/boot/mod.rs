//! What the hypervisor boots from and what it hands each guest at boot:
//! the machine description read from the host device tree (`platform`),
//! the bundle of manifest and images (`bundle`), where each image goes in
//! a partition's RAM (`guest_image`), and the device tree a guest is
//! given (`guest_fdt`).

pub mod bundle;
pub mod guest_fdt;
pub mod guest_image;
pub mod platform;
pub mod spin_table;
