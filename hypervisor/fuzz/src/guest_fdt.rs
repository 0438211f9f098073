//! The guest device-tree generator's inputs (`guest_fdt.rs`): a partition
//! configuration built from the fuzzer's bytes, windows placed anywhere
//! (aligned or not, overlapping or not), any vCPU list, strings with any
//! bytes.
//!
//! Asserts: a configuration is either refused with the field (or the two
//! overlapping windows) named, or turned into a well-formed tree, never a
//! writer failure; the tree reads back through the hypervisor's own
//! device-tree reader and through the `fdt` crate with the RAM, the vCPUs
//! and the command line it was given, and none of the windows it describes
//! overlap.

use hypervisor::boot::guest_fdt::{
    generate, GuestConsole, GuestFdtConfig, GuestFdtError, GuestGic, GuestPci, GuestPciWindow,
};
use hypervisor::boot::platform::{Platform, PlatformError};
use hypervisor::mm::addr::Range;
use hypervisor::mm::Ipa;

use crate::input::Input;

/// A window: mostly page-aligned in the first GiBs, sometimes anything.
fn window(input: &mut Input, unit: u64) -> Range<Ipa> {
    if input.u8() == 0xff {
        return Range {
            start: Ipa(input.u64()),
            size: input.u64(),
        };
    }
    Range {
        start: Ipa(u64::from(input.u16()) * unit),
        size: u64::from(input.u8() % 16) * unit,
    }
}

fn string(input: &mut Input, max: usize) -> String {
    String::from_utf8_lossy(input.bytes(max)).into_owned()
}

/// The configuration the fuzzer's bytes describe.
fn config(input: &mut Input) -> GuestFdtConfig {
    let vcpus = usize::from(input.u8() % 10);
    let vcpu_mpidrs = if input.bool() {
        GuestFdtConfig::linear_mpidrs(vcpus)
    } else {
        (0..vcpus).map(|_| u64::from(input.u32())).collect()
    };
    let its = input.bool().then(|| window(input, 0x1_0000));
    let extra_its = (0..input.u8() % 3)
        .map(|_| window(input, 0x1_0000))
        .collect();
    let gic = GuestGic {
        distributor: window(input, 0x1_0000),
        redistributors: window(input, 0x2_0000),
        its,
        extra_its,
    };
    let console = input.bool().then(|| GuestConsole {
        registers: window(input, 0x1000),
        spi: u32::from(input.u16()),
    });
    let ram = window(input, 0x20_0000);
    let initrd = input.bool().then(|| window(input, 0x1000));
    let pci = input.bool().then(|| {
        let mem32 = input.bool().then(|| GuestPciWindow {
            cpu: window(input, 0x10_0000),
            pci_address: u64::from(input.u32()),
        });
        let mem64 = input.bool().then(|| GuestPciWindow {
            cpu: window(input, 0x10_0000),
            pci_address: input.u64(),
        });
        GuestPci {
            ecam: window(input, 0x10_0000),
            first_bus: input.u8(),
            last_bus: input.u8(),
            mem32,
            mem64,
            msi_base: input.u32(),
            dma_coherent: input.bool(),
        }
    });
    GuestFdtConfig {
        name: string(input, 40),
        ram,
        vcpu_mpidrs,
        gic,
        console,
        bootargs: string(input, 200),
        initrd,
        pci,
        boot_count: input.u32(),
    }
}

/// One fuzz input: a configuration.
pub fn run(data: &[u8]) {
    let mut input = Input(data);
    let cfg = config(&mut input);
    let blob = match generate(&cfg) {
        Ok(blob) => blob,
        Err(GuestFdtError::Writer(error)) => panic!("writer refused a checked config: {error}"),
        Err(GuestFdtError::Invalid { field, reason }) => {
            assert!(!field.is_empty() && !reason.is_empty());
            return;
        }
        Err(GuestFdtError::Overlap { first, second }) => {
            // Two entries of one list (`gic.extra_its`) may be the pair.
            assert!(!first.is_empty() && !second.is_empty());
            return;
        }
    };
    check_windows(&cfg);
    // The hypervisor's own reader: the tree is well formed (it may lack
    // what a host tree needs, e.g. PSCI or a timer, but never structure).
    if let Err(PlatformError::Malformed(error)) = Platform::from_fdt(&blob) {
        panic!("generated tree is malformed: {error:?}");
    }
    let tree = fdt::Fdt::new(&blob).expect("generated tree has a valid header");
    let regions: Vec<(u64, u64)> = tree
        .memory()
        .regions()
        .map(|r| (r.starting_address as u64, r.size.unwrap_or(0) as u64))
        .collect();
    assert_eq!(regions, vec![(cfg.ram.start.raw(), cfg.ram.size)]);
    assert_eq!(tree.cpus().count(), cfg.vcpu_mpidrs.len());
    assert_eq!(tree.chosen().bootargs().unwrap_or(""), cfg.bootargs);
}

/// Every window the tree describes is non-empty and disjoint from the others.
fn check_windows(cfg: &GuestFdtConfig) {
    let mut windows = vec![cfg.ram, cfg.gic.distributor, cfg.gic.redistributors];
    windows.extend(cfg.gic.its);
    windows.extend(cfg.gic.extra_its.iter().copied());
    windows.extend(cfg.console.as_ref().map(|c| c.registers));
    if let Some(pci) = &cfg.pci {
        windows.push(pci.ecam);
        windows.extend(pci.mem32.as_ref().map(|w| w.cpu));
        windows.extend(pci.mem64.as_ref().map(|w| w.cpu));
    }
    for (i, a) in windows.iter().enumerate() {
        assert!(a.size != 0);
        let a_end = a.start.raw().checked_add(a.size).expect("window wraps");
        for b in &windows[..i] {
            let b_end = b.start.raw() + b.size;
            assert!(
                a_end <= b.start.raw() || b_end <= a.start.raw(),
                "{a:?} overlaps {b:?}"
            );
        }
    }
}
