//! Passthrough PCI as a driver sees it: the guest's own PCIe host bridge
//! (from its device tree), its functions at virtual addresses, BARs it
//! reaches directly, and MSI programmed with its own vITS doorbell.

use super::{fdt, psci};

/// QEMU's edu device.
const EDU: (u16, u16) = (0x1234, 0x11e8);

/// The ECAM window of the guest's `pci-host-ecam-generic` node.
pub(super) fn ecam() -> Option<u64> {
    let tree = fdt();
    let node = tree.find_compatible(&["pci-host-ecam-generic"])?;
    let addr = node.reg()?.next().map(|r| r.starting_address as u64);
    addr
}

/// GITS_TRANSLATER of the guest's ITS (its `arm,gic-v3-its` node + 0x10040).
pub(super) fn translater() -> Option<u64> {
    let tree = fdt();
    let node = tree.find_compatible(&["arm,gic-v3-its"])?;
    let addr = node
        .reg()?
        .next()
        .map(|r| r.starting_address as u64 + 0x1_0040);
    addr
}

fn cfg_addr(ecam: u64, dev: u64, offset: u64) -> *mut u32 {
    (ecam + (dev << 15) + offset) as *mut u32
}

pub(super) fn mmio_read32(addr: *const u32) -> u32 {
    super::mmio::read32(addr as usize)
}

pub(super) fn mmio_write32(addr: *mut u32, value: u32) {
    super::mmio::write32(addr as usize, value)
}

pub(super) fn cfg_read(ecam: u64, dev: u64, offset: u64) -> u32 {
    mmio_read32(cfg_addr(ecam, dev, offset))
}

pub(super) fn cfg_write(ecam: u64, dev: u64, offset: u64, value: u32) {
    mmio_write32(cfg_addr(ecam, dev, offset), value)
}

fn fail(what: &str) -> ! {
    println!("FAIL passthrough: {what}");
    psci::system_off()
}

/// The `passthrough` scenario.
pub fn passthrough() {
    let (bar0, device) = edu_with_msi();
    super::vits_tests::passthrough_msi(
        device,
        &|| mmio_write32((bar0 + 0x60) as *mut u32, 1),
        &|| mmio_write32((bar0 + 0x64) as *mut u32, 1),
    );
}

/// The `passthrough-wfi` scenario: edu's DMA completion MSI (100 ms after
/// the start, by QEMU's virtual clock) must end a WFI the vCPU waits in.
pub fn passthrough_wfi() {
    let (bar0, device) = edu_with_msi();
    let start = || {
        // A DMA of 8 bytes from our RAM (1 MiB in) into edu's buffer
        // (0x40000), with its completion interrupt (0x100); the data does
        // not matter. The SMMU translates it; edu needs a DMA mask wider
        // than its default 28 bits for our addresses (the scenarios pass
        // dma_mask).
        mmio_write64(bar0 + 0x80, super::dma_tests::ram_base() + 0x10_0000);
        mmio_write64(bar0 + 0x88, 0x4_0000);
        mmio_write64(bar0 + 0x90, 8);
        mmio_write64(bar0 + 0x98, 0b101);
    };
    super::vits_tests::passthrough_wfi(device, &start, &|| {
        mmio_write32((bar0 + 0x64) as *mut u32, 0x100)
    });
}

pub(super) fn mmio_write64(addr: u64, value: u64) {
    mmio_write32(addr as *mut u32, value as u32);
    mmio_write32((addr + 4) as *mut u32, (value >> 32) as u32);
}

/// The `passthrough-pair` scenario: `msis=` MSIs through our own vITS,
/// paced over a window of counter time that another partition, with its
/// own edu and the same virtual IDs, shares.
pub fn passthrough_pair() {
    let (bar0, device) = edu_with_msi();
    let msis = super::bootarg("msis")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    super::vits_tests::passthrough_pair(
        device,
        &|| mmio_write32((bar0 + 0x60) as *mut u32, 1),
        &|| mmio_write32((bar0 + 0x64) as *mut u32, 1),
        msis,
    );
}

/// The `passthrough-reset` scenario: bursts of MSIs; on the first boot one
/// more left pending, then SYSTEM_RESET; a later boot must see exactly the
/// same.
pub fn passthrough_reset(boots: usize) {
    let (bar0, device) = edu_with_msi();
    super::vits_tests::passthrough_reset(
        device,
        &|| mmio_write32((bar0 + 0x60) as *mut u32, 1),
        &|| mmio_write32((bar0 + 0x64) as *mut u32, 1),
        boots,
    );
}

/// Finds edu on the guest's bus, checks its BAR is reached without exits,
/// and programs its MSI with the vITS doorbell and EventID 0. Returns
/// BAR0 and the function's DeviceID (its requester ID on our bus).
pub(super) fn edu_with_msi() -> (u64, u32) {
    let Some(ecam) = ecam() else {
        fail("no pci-host-ecam-generic node")
    };
    let mut found = None;
    let mut functions = 0;
    for dev in 0..32 {
        let id = cfg_read(ecam, dev, 0);
        if id == u32::MAX {
            continue;
        }
        functions += 1;
        println!("pci: 00:{dev:02x}.0 {:04x}:{:04x}", id & 0xffff, id >> 16);
        if (id & 0xffff, id >> 16) == (u32::from(EDU.0), u32::from(EDU.1)) {
            found = Some(dev);
        }
    }
    let Some(dev) = found else {
        fail("edu not on the guest's bus")
    };
    println!("PASS passthrough: {functions} function(s) on the guest bus, edu at 00:{dev:02x}.0");
    let bar0 = u64::from(cfg_read(ecam, dev, 0x10) & !0xf);
    // Sizing probe as a driver does it: all ones, read the mask, restore.
    cfg_write(ecam, dev, 0x10, u32::MAX);
    let mask = cfg_read(ecam, dev, 0x10) & !0xf;
    cfg_write(ecam, dev, 0x10, bar0 as u32);
    let size = (!mask).wrapping_add(1);
    if size != 1 << 20 {
        fail("edu BAR0 does not size as 1 MiB");
    }
    // Memory decode and bus mastering on.
    let cmd = cfg_read(ecam, dev, 0x4);
    cfg_write(ecam, dev, 0x4, (cmd & 0xffff) | 0b110);
    let before = super::scenarios::exit_count_pub();
    // edu's BAR0 at the address the bridge gave it, mapped by the hypervisor.
    let ident = mmio_read32(bar0 as *const u32);
    let mut ok = 0;
    for i in 0..100u32 {
        // edu's liveness register returns the inverse of what was written.
        mmio_write32((bar0 + 4) as *mut u32, i);
        if mmio_read32((bar0 + 4) as *const u32) == !i {
            ok += 1;
        }
    }
    let after = super::scenarios::exit_count_pub();
    let exits = after.wrapping_sub(before).wrapping_sub(1);
    if ident & 0xff != 0xed || ok != 100 {
        fail("edu registers do not answer through BAR0");
    }
    println!("PASS passthrough: edu at BAR0 {bar0:#x} (ident {ident:#x}), 201 register accesses, hypervisor exits: {exits}");
    if exits != 0 {
        fail("register accesses to a passthrough BAR trapped");
    }
    // MSI: find the capability, program our vITS doorbell and EventID 0.
    let Some(doorbell) = translater() else {
        fail("no ITS in the device tree")
    };
    let mut cap = (cfg_read(ecam, dev, 0x34) & 0xfc) as u64;
    let mut guard = 0;
    while cap != 0 && cfg_read(ecam, dev, cap) & 0xff != 0x05 && guard < 48 {
        cap = u64::from((cfg_read(ecam, dev, cap) >> 8) & 0xfc);
        guard += 1;
    }
    if cap == 0 || guard == 48 {
        fail("no MSI capability");
    }
    let control = cfg_read(ecam, dev, cap) >> 16;
    let is64 = control & (1 << 7) != 0;
    cfg_write(ecam, dev, cap + 4, doorbell as u32);
    let data_at = if is64 {
        cfg_write(ecam, dev, cap + 8, (doorbell >> 32) as u32);
        cap + 12
    } else {
        cap + 8
    };
    cfg_write(ecam, dev, data_at, 0);
    cfg_write(
        ecam,
        dev,
        cap,
        (cfg_read(ecam, dev, cap) & 0xffff) | ((control | 1) << 16),
    );
    let back = u64::from(cfg_read(ecam, dev, cap + 4))
        | if is64 {
            u64::from(cfg_read(ecam, dev, cap + 8)) << 32
        } else {
            0
        };
    if back != doorbell || cfg_read(ecam, dev, cap) >> 16 & 1 == 0 {
        fail("the MSI capability does not read back what was written");
    }
    println!(
        "PASS passthrough: MSI enabled with the vITS doorbell {doorbell:#x}, read back as written"
    );
    // The function's DeviceID is its requester ID on our bus.
    (bar0, (dev as u32) << 3)
}
