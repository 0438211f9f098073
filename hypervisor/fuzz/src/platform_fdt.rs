//! The platform parser (`platform/`): arbitrary bytes, and mutations of
//! real trees (QEMU virt with GICv2, v3 and v4; QEMU's raspi4b tree, full
//! of the FDT_NOP tokens its `-dtb` path leaves), as the host device tree.
//!
//! Asserts: no input panics; an accepted tree describes usable hardware
//! (RAM sorted with no empty range, at least one CPU and no MPIDR twice,
//! PCIe bus ranges in order) and prints as the boot banner; an error names
//! the node (by path) and prints; and FDT_NOP tokens change nothing: the
//! same blob with NOPs inserted at the start and the end of its structure
//! block gives the same result. The heap-free early reader
//! (`platform::early`, what the kernel maps RAM and the console with before
//! the heap exists) never panics either, and on a tree the full parser
//! accepts it finds the same RAM.

use hypervisor::boot::platform::early::EarlyTree;
use hypervisor::boot::platform::{Platform, PlatformError};

const FDT_MAGIC: u32 = 0xd00d_feed;
const FDT_NOP: u32 = 4;
const FDT_END: u32 = 9;

/// One fuzz input: the device tree blob.
pub fn run(data: &[u8]) {
    let result = Platform::from_fdt(data);
    match &result {
        Ok(platform) => check_platform(platform),
        Err(error) => check_error(error),
    }
    check_early(data, result.as_ref().ok());
    // Only an accepted tree is compared: an error's byte offset moves with
    // the NOPs, and past a failure the bytes need not be tokens at all.
    if let (Ok(platform), Some(with_nops)) = (&result, insert_nops(data)) {
        assert_eq!(
            Platform::from_fdt(&with_nops).as_ref(),
            Ok(platform),
            "FDT_NOP tokens changed the result"
        );
    }
}

fn check_early(data: &[u8], platform: Option<&Platform>) {
    let Ok(early) = EarlyTree::new(data) else {
        return;
    };
    let mut memory = Vec::new();
    let walked = early.for_each_memory(|range| memory.push(range));
    let _ = early.console();
    // The early reader looks at the root's children only and stops at what
    // it cannot decode: what it maps must be RAM the full parser found.
    if let (Some(platform), Ok(())) = (platform, walked) {
        for range in &memory {
            assert!(
                platform.memory.contains(range),
                "early reader maps {range:?}, not RAM to the full parser"
            );
        }
    }
}

fn check_platform(platform: &Platform) {
    assert!(!platform.memory.is_empty());
    for pair in platform.memory.windows(2) {
        assert!(pair[0].start <= pair[1].start);
    }
    assert!(platform.memory.iter().all(|r| r.size != 0));
    assert!(!platform.cpus.is_empty());
    for (index, cpu) in platform.cpus.iter().enumerate() {
        assert!(
            platform.cpus[..index].iter().all(|c| c.mpidr != cpu.mpidr),
            "MPIDR {:#x} twice",
            cpu.mpidr
        );
    }
    for bridge in &platform.pci {
        assert!(bridge.first_bus <= bridge.last_bus, "{bridge:?}");
    }
    if let Some(initrd) = &platform.initrd {
        assert!(initrd.start.0.checked_add(initrd.size).is_some());
    }
    let banner = platform.to_string();
    assert!(banner.starts_with("machine  "), "{banner}");
}

fn check_error(error: &PlatformError) {
    match error {
        PlatformError::Malformed(tree) => assert!(!tree.reason.is_empty()),
        PlatformError::MissingNode { node } => assert!(!node.is_empty()),
        PlatformError::MissingProperty { node, property }
        | PlatformError::BadProperty { node, property, .. } => {
            assert!(node.starts_with('/'), "{error:?}");
            assert!(!property.is_empty());
        }
    }
    assert!(!error.to_string().is_empty());
}

fn be32(blob: &[u8], offset: usize) -> Option<u32> {
    let bytes = blob.get(offset..offset.checked_add(4)?)?;
    Some(u32::from_be_bytes(bytes.try_into().ok()?))
}

/// The blob with one FDT_NOP before its first structure token and one
/// before its FDT_END (DTSpec 5.4.1: NOPs may stand anywhere a token may),
/// header offsets and sizes moved to match; `None` if the header is not
/// one to edit safely.
fn insert_nops(blob: &[u8]) -> Option<Vec<u8>> {
    if be32(blob, 0)? != FDT_MAGIC || blob.len() < 40 {
        return None;
    }
    let total = be32(blob, 4)? as usize;
    let off_struct = be32(blob, 8)? as usize;
    let size_struct = be32(blob, 36)? as usize;
    let struct_end = off_struct.checked_add(size_struct)?;
    if total > blob.len() || struct_end > total || off_struct < 40 || size_struct < 4 {
        return None;
    }
    let last = struct_end - 4;
    if be32(blob, last)? != FDT_END || !last.is_multiple_of(4) || !off_struct.is_multiple_of(4) {
        return None;
    }
    let nop = FDT_NOP.to_be_bytes();
    let mut out = Vec::with_capacity(total + 8);
    out.extend_from_slice(&blob[..off_struct]);
    out.extend_from_slice(&nop);
    out.extend_from_slice(&blob[off_struct..last]);
    out.extend_from_slice(&nop);
    out.extend_from_slice(&blob[last..total]);
    // Blocks after the structure block move by 8 bytes; those before it stay.
    let put = |out: &mut Vec<u8>, field: usize, value: usize| -> Option<()> {
        let value = u32::try_from(value).ok()?.to_be_bytes();
        out.get_mut(field..field + 4)?.copy_from_slice(&value);
        Some(())
    };
    put(&mut out, 4, total + 8)?;
    put(&mut out, 36, size_struct + 8)?;
    // The strings block and the /memreserve/ block: before the structure
    // block (and ending there) they stay; after it they move by 8 bytes.
    let strings = be32(blob, 12)? as usize;
    let strings_end = strings.checked_add(be32(blob, 32)? as usize)?;
    let reservations = be32(blob, 16)? as usize;
    let reservations_end = reservations_end(blob, reservations)?;
    for (field, start, end) in [
        (12, strings, strings_end),
        (16, reservations, reservations_end),
    ] {
        if start >= struct_end {
            put(&mut out, field, start + 8)?;
        } else if end > off_struct {
            return None;
        }
    }
    Some(out)
}

/// One past the /memreserve/ block's terminating (0, 0) entry.
fn reservations_end(blob: &[u8], start: usize) -> Option<usize> {
    let mut at = start;
    for _ in 0..=256 {
        let entry = blob.get(at..at.checked_add(16)?)?;
        at += 16;
        if entry.iter().all(|&b| b == 0) {
            return Some(at);
        }
    }
    None
}
