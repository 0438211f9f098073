//! A bare-metal EL1 test guest. It boots like Linux (x0 = device tree, MMU
//! off), reads its platform from the device tree, runs the scenario named
//! by `scenario=` in `/chosen/bootargs`, and reports on its console with
//! lines the system tests read (`PASS ...`, `FAIL ...`).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("the test guest runs on bare metal: it is built by `cargo xtask build`");
}

#[cfg(target_os = "none")]
#[macro_use]
mod guest;
