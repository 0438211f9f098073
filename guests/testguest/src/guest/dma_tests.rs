//! DMA isolation as a guest sees it: the guest points its own
//! edu's DMA engine at its RAM (which must work, translated by the SMMU
//! from the guest's addresses) and at memory that is not its own (another
//! partition's RAM, the GIC distributor, the hypervisor's image), which the
//! SMMU must stop; a second partition keeps a known pattern in its RAM and
//! checks it stays unharmed.
//!
//! edu's DMA engine (QEMU `hw/misc/edu.c`): BAR0 0x80 source, 0x88
//! destination, 0x90 count, 0x98 command (bit 0 start, bit 1 direction
//! edu-to-RAM, bit 2 interrupt on completion); its 4 KiB buffer sits at
//! 0x40000 in its own space; bit 0 clears when the transfer is done
//! (100 ms later by QEMU's virtual clock).

use super::pci_tests::{edu_with_msi, mmio_read32, mmio_write64};
use super::{bootarg, delay_ms, fdt, psci};

/// edu's DMA buffer in its own address space.
const EDU_BUFFER: u64 = 0x4_0000;
/// Bytes moved per transfer (edu's whole buffer).
const LEN: u64 = 0x1000;
/// The word the victim partition keeps at `victim=` (index i: PATTERN | i).
const VICTIM_PATTERN: u32 = 0x5eed_0000;
/// The word the attacker writes (index i: POISON | i).
const POISON: u32 = 0xa5a5_0000;

/// Direction of one transfer.
#[derive(Clone, Copy)]
enum Dir {
    /// RAM (or whatever the address reaches) into edu's buffer.
    ToEdu,
    /// edu's buffer out to RAM.
    ToRam,
}

fn fail(what: &str) -> ! {
    println!("FAIL dma: {what}");
    psci::system_off()
}

fn hex_arg(key: &str) -> Option<u64> {
    u64::from_str_radix(bootarg(key)?.trim_start_matches("0x"), 16).ok()
}

/// The guest's RAM base (first memory region of its device tree).
pub(super) fn ram_base() -> u64 {
    fdt()
        .memory()
        .regions()
        .map(|r| r.starting_address as u64)
        .min()
        .unwrap_or_else(|| fail("no memory node"))
}

fn fill(at: u64, base: u32) {
    for i in 0..(LEN / 4) {
        // SAFETY: `at` is a 4 KiB range of our own RAM (checked by callers).
        unsafe { core::ptr::write_volatile((at + i * 4) as *mut u32, base | i as u32) };
    }
}

fn word(at: u64, i: u64) -> u32 {
    // SAFETY: `at` is a 4 KiB range of our own RAM.
    unsafe { core::ptr::read_volatile((at + i * 4) as *const u32) }
}

/// How many words at `at` read `base | i`.
fn matching(at: u64, base: u32) -> u64 {
    (0..LEN / 4)
        .filter(|&i| word(at, i) == base | i as u32)
        .count() as u64
}

/// Runs one edu transfer of `LEN` bytes and waits for it to finish (edu
/// reports completion whether or not the SMMU let the access through).
fn transfer(bar0: u64, dir: Dir, address: u64) {
    let (src, dst, cmd) = match dir {
        Dir::ToEdu => (address, EDU_BUFFER, 0b001),
        Dir::ToRam => (EDU_BUFFER, address, 0b011),
    };
    mmio_write64(bar0 + 0x80, src);
    mmio_write64(bar0 + 0x88, dst);
    mmio_write64(bar0 + 0x90, LEN);
    mmio_write64(bar0 + 0x98, cmd);
    for _ in 0..400 {
        if mmio_read32((bar0 + 0x98) as *const u32) & 1 == 0 {
            return;
        }
        delay_ms(5);
    }
    fail("edu's DMA did not complete within 2 s");
}

/// The `dma-isolation` scenario (the partition that owns edu).
/// Bootargs: `targets=name@0xADDR,...` (addresses outside our RAM).
pub fn dma_isolation() {
    let (bar0, _device) = edu_with_msi();
    let scratch = ram_base() + 0x100_0000;
    let (source, copy) = (scratch, scratch + LEN);
    // Our own RAM, through the SMMU: a round trip RAM -> edu -> RAM.
    fill(source, POISON);
    fill(copy, 0);
    transfer(bar0, Dir::ToEdu, source);
    transfer(bar0, Dir::ToRam, copy);
    let same = matching(copy, POISON);
    if same != LEN / 4 {
        fail("a DMA round trip through our own RAM lost data");
    }
    println!("PASS dma: own RAM {source:#x} -> edu -> {copy:#x}: {LEN} bytes arrived");
    // Let the victim partition lay its pattern down first.
    delay_ms(200);
    let targets = bootarg("targets").unwrap_or("");
    for target in targets.split(',').filter(|t| !t.is_empty()) {
        let Some((name, address)) = target.split_once('@') else {
            fail("targets= wants name@0xADDR,...")
        };
        let Ok(address) = u64::from_str_radix(address.trim_start_matches("0x"), 16) else {
            fail("targets= has a bad address")
        };
        // edu's buffer holds POISON: write it there.
        transfer(bar0, Dir::ToEdu, source);
        transfer(bar0, Dir::ToRam, address);
        // And read from there into the buffer, then back into our RAM:
        // nothing of the victim's pattern may come back.
        fill(copy, 0);
        transfer(bar0, Dir::ToEdu, address);
        transfer(bar0, Dir::ToRam, copy);
        let leaked = matching(copy, VICTIM_PATTERN);
        if leaked != 0 {
            fail("a DMA read from outside our RAM returned the victim's data");
        }
        println!("PASS dma: {name} {address:#x}: write and read issued, edu reports both done, nothing read back");
    }
    println!("PASS dma-isolation: done");
}

/// The `dma-victim` scenario: keeps a pattern at `victim=0xADDR` (in our
/// RAM) for `seconds=` (default 5), checking it every 100 ms.
pub fn dma_victim() {
    let at = hex_arg("victim").unwrap_or_else(|| ram_base() + 0x80_0000);
    let seconds = bootarg("seconds")
        .and_then(|s| s.parse().ok())
        .unwrap_or(5u64);
    fill(at, VICTIM_PATTERN);
    println!("dma-victim: pattern laid at {at:#x}");
    for tick in 0..seconds * 10 {
        let intact = matching(at, VICTIM_PATTERN);
        if intact != LEN / 4 {
            println!(
                "FAIL dma-victim: pattern at {at:#x} changed at tick {tick}: {} of {} words intact",
                intact,
                LEN / 4
            );
            psci::system_off()
        }
        delay_ms(100);
    }
    println!("PASS dma-victim: pattern at {at:#x} intact after {seconds} s");
}

/// The `dma-reset` scenario: on the first boot, starts a DMA into our own
/// RAM at `scratch` and resets the partition before it lands (edu moves
/// data 100 ms after the start); on the next boot, the bytes must not be
/// there.
pub fn dma_reset(boots: usize) {
    let scratch = ram_base() + 0x200_0000;
    if boots == 0 {
        let (bar0, _device) = edu_with_msi();
        let source = ram_base() + 0x100_0000;
        fill(source, POISON);
        fill(scratch, 0);
        transfer(bar0, Dir::ToEdu, source);
        mmio_write64(bar0 + 0x80, EDU_BUFFER);
        mmio_write64(bar0 + 0x88, scratch);
        mmio_write64(bar0 + 0x90, LEN);
        mmio_write64(bar0 + 0x98, 0b011);
        println!("dma-reset: DMA into {scratch:#x} started, asking for SYSTEM_RESET");
        psci::system_reset()
    }
    // Well past the moment the old life's transfer would have landed.
    delay_ms(500);
    let landed = matching(scratch, POISON);
    if landed != 0 {
        println!("FAIL dma-reset: {landed} words of the old life's DMA reached {scratch:#x}");
    } else {
        println!(
            "PASS dma-reset: boot {boots}: nothing of the old life's DMA reached {scratch:#x}"
        );
    }
}
