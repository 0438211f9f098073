//! FDT_NOP tokens (DTSpec 5.4.1: "ignored by any program parsing the
//! device tree") change nothing: QEMU's raspi4b tree, which its `-dtb` path
//! leaves full of NOPs, reads as the same tree without them, and a NOP
//! between any two tokens of a QEMU virt tree changes nothing either. (The
//! `fdt` crate 0.1.5 panics on such trees; `tree.rs` is this module's own
//! reader, so these pin that it stays NOP-proof.)

use alloc::vec::Vec;

use super::*;

/// QEMU 10 `-M raspi4b -dtb bcm2711-rpi-4-b.dtb` (Debian's linux-image
/// 6.1 arm64 tree) dumped after QEMU's edits: 326 FDT_NOPs.
const RASPI4B: &[u8] = include_bytes!("../../../testdata/qemu-raspi4b-nops.dtb");
const GICV3: &[u8] = include_bytes!("../../../testdata/qemu-virt-gicv3.dtb");

const FDT_BEGIN_NODE: u32 = 1;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;
const FDT_END: u32 = 9;

fn be32(blob: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(blob[at..at + 4].try_into().unwrap())
}

fn set32(blob: &mut [u8], at: usize, value: u32) {
    blob[at..at + 4].copy_from_slice(&value.to_be_bytes());
}

/// Offsets of every token of the structure block, FDT_END last.
fn tokens(blob: &[u8]) -> Vec<usize> {
    let mut at = be32(blob, 8) as usize;
    let mut offsets = Vec::new();
    loop {
        offsets.push(at);
        let token = be32(blob, at);
        at += 4;
        match token {
            FDT_BEGIN_NODE => {
                let len = blob[at..].iter().position(|&b| b == 0).unwrap();
                at = (at + len + 1 + 3) & !3;
            }
            FDT_PROP => at = (at + 8 + be32(blob, at) as usize + 3) & !3,
            FDT_END => return offsets,
            _ => {}
        }
    }
}

/// `blob` with `insert` put and `remove` bytes taken out at `at` inside
/// the structure block: header sizes and later blocks' offsets follow.
fn resize_struct(blob: &[u8], at: usize, insert: &[u8], remove: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(blob.len() + insert.len());
    out.extend_from_slice(&blob[..at]);
    out.extend_from_slice(insert);
    out.extend_from_slice(&blob[at + remove..]);
    let shift = |value: u32| (value as usize + insert.len() - remove) as u32;
    set32(&mut out, 4, shift(be32(blob, 4)));
    set32(&mut out, 36, shift(be32(blob, 36)));
    for field in [12, 16] {
        if be32(blob, field) as usize >= at {
            set32(&mut out, field, shift(be32(blob, field)));
        }
    }
    out
}

fn without_nops(blob: &[u8]) -> Vec<u8> {
    let mut out = blob.to_vec();
    for &at in tokens(blob).iter().rev() {
        if be32(blob, at) == FDT_NOP {
            out = resize_struct(&out, at, &[], 4);
        }
    }
    out
}

#[test]
fn qemu_raspi4b_tree_full_of_nops_reads_like_it_without_them() {
    let nops = tokens(RASPI4B)
        .iter()
        .filter(|&&at| be32(RASPI4B, at) == FDT_NOP)
        .count();
    assert_eq!(nops, 326);
    let stripped = without_nops(RASPI4B);
    assert!(tokens(&stripped)
        .iter()
        .all(|&at| be32(&stripped, at) != FDT_NOP));
    let with = Platform::from_fdt(RASPI4B);
    assert_eq!(with, Platform::from_fdt(&stripped));
    let platform = with.expect("the Pi 4 tree describes a usable machine");
    assert_eq!(platform.cpus.len(), 4);
    assert!(matches!(platform.gic, Gic::V2(_)), "{:?}", platform.gic);
    assert!(!platform.memory.is_empty());
}

#[test]
fn a_nop_between_any_two_tokens_changes_nothing() {
    let expected = Platform::from_fdt(GICV3).expect("QEMU virt tree");
    let nop = FDT_NOP.to_be_bytes();
    for at in tokens(GICV3) {
        let edited = resize_struct(GICV3, at, &nop, 0);
        assert_eq!(
            Platform::from_fdt(&edited).as_ref(),
            Ok(&expected),
            "NOP at {at:#x}"
        );
    }
}
