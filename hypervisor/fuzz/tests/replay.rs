//! Runs every checked-in input through its target's checks with plain
//! `cargo test` (no libFuzzer, no cargo-fuzz, stable Rust): the seed
//! corpus in `seeds/<target>/` and the inputs of crashes once found in
//! `regressions/<target>/`. `cargo xtask test` runs this.

use std::path::Path;

#[test]
fn every_seed_and_regression_input_passes_its_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut ran = 0;
    for (name, run) in hypervisor_fuzz::TARGETS {
        let mut inputs = 0;
        for dir in ["seeds", "regressions"] {
            let Ok(entries) = std::fs::read_dir(root.join(dir).join(name)) else {
                continue;
            };
            for entry in entries {
                let path = entry.expect("directory entry").path();
                let data = std::fs::read(&path).expect("input readable");
                eprintln!("{name}: {}", path.display());
                run(&data);
                inputs += 1;
            }
        }
        assert!(inputs > 0, "target {name} has no seed inputs");
        ran += inputs;
    }
    eprintln!("{ran} inputs replayed");
}
