//! cargo-fuzz entry of [`hypervisor_fuzz::bundle`]: the invariants live there,
//! so the replay tests run the same checks without libFuzzer.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hypervisor_fuzz::bundle::run(data));
