//! Links the guest at its load IPA.
fn main() {
    println!("cargo:rerun-if-changed=../../linker/guest.ld");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../linker/guest.ld");
        println!("cargo:rustc-link-arg-bins=-T{}", script.display());
    }
}
