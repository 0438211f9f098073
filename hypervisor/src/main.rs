//! The hypervisor image: boot glue around the `hypervisor` library.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("the hypervisor runs on bare metal: build it with `cargo xtask build`");
}

#[cfg(target_os = "none")]
use hypervisor as _;
