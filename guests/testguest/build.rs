//! Links the guest at its load IPA.
fn main() {
    println!("cargo:rerun-if-changed=../../linker/guest.ld");
    println!("cargo:rerun-if-env-changed=GUEST_LOAD_ADDR");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../linker/guest.ld");
        println!("cargo:rustc-link-arg-bins=-T{}", script.display());
        // Another load IPA (e.g. inside identity-mapped RAM, for passthrough).
        if let Ok(addr) = std::env::var("GUEST_LOAD_ADDR") {
            println!("cargo:rustc-link-arg-bins=--defsym=GUEST_LOAD_ADDR={addr}");
        }
    }
}
