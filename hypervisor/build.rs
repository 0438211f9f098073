//! Links the bare-metal image with the board's load address.
fn main() {
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    println!("cargo:rerun-if-env-changed=HV_LOAD_ADDR");
    println!("cargo:rerun-if-changed=../linker/hypervisor.ld");
    if target_os == "none" {
        let load = std::env::var("HV_LOAD_ADDR").unwrap_or_else(|_| "0x40200000".into());
        let script =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../linker/hypervisor.ld");
        println!("cargo:rustc-link-arg-bins=--defsym=LOAD_ADDR={load}");
        println!("cargo:rustc-link-arg-bins=-T{}", script.display());
    }
}
