//! MSI-X passthrough as a driver sees it (`passthrough-msix`): QEMU's
//! e1000e on the guest's own bus, its MSI-X table programmed as Linux
//! does (Enable + Function Mask, entries masked, 32-bit writes, then
//! unmasked), its five interrupt causes routed to vectors 0-4 by IVAR and
//! raised through ICS, each vector's EventID mapped through the guest's
//! own vITS to an LPI on vCPU 0. Every check compares all LPI counters
//! (`vits_tests::expect`): "once" also means "nothing else, nowhere else".

use super::mmio;
use super::pci_tests::{cfg_read, cfg_write, ecam, translater};
use super::scenarios::exit_count_pub;
use super::vits_tests::{self as vits, Cmd, FIRST_LPI};
use core::sync::atomic::{AtomicU32, Ordering};

/// QEMU's e1000e (Intel 82574L).
const E1000E: (u32, u32) = (0x8086, 0x10d3);
/// Its registers in BAR0 (82574L datasheet, 10.2): interrupt cause read
/// (write 1 to clear), cause set, mask set, mask clear, vector allocation.
const ICR: u64 = 0xc0;
const ICS: u64 = 0xc8;
const IMS: u64 = 0xd0;
const IMC: u64 = 0xd8;
const IVAR: u64 = 0xe4;
/// How long a raised cause is left before IRQs are unmasked. QEMU's
/// e1000e (10.0) sends a vector again when its EITR throttling timer
/// expires, 128 us of virtual time after the first message (EITR cannot
/// be set below that, and QEMU's timers can run late on a loaded host):
/// both messages must land in the one pending LPI to be counted as the
/// single interrupt they are.
const COALESCE_MS: u64 = 200;
/// The causes with an MSI-X vector of their own, in IVAR order (ICR bits 20-24).
const CAUSES: [(u32, &str); 5] = [
    (1 << 20, "RxQ0"),
    (1 << 21, "RxQ1"),
    (1 << 22, "TxQ0"),
    (1 << 23, "TxQ1"),
    (1 << 24, "Other"),
];
/// IVAR: 4 bits per cause, vector in bits 2:0 and valid in bit 3; cause i -> vector i.
const IVAR_ROUTING: u32 = 0x8 | 0x9 << 4 | 0xa << 8 | 0xb << 12 | 0xc << 16;
/// The vectors the scenario expects.
const VECTORS: u32 = 5;
/// Guest RAM a bad MSI-X address points at: nothing may ever write it.
static SENTINEL: AtomicU32 = AtomicU32::new(0x5a5a_5a5a);

/// Prints `FAIL passthrough-msix: ...` and powers off.
macro_rules! fail {
    ($($arg:tt)*) => { vits::fail(format_args!($($arg)*)) };
}

/// Prints `PASS passthrough-msix: ...`.
macro_rules! pass {
    ($($arg:tt)*) => { vits::pass(format_args!($($arg)*)) };
}

/// What the scenario needs of the function.
struct Device {
    ecam: u64,
    dev: u64,
    /// Config offset of the MSI-X capability.
    cap: u64,
    /// e1000e's registers (BAR0).
    regs: u64,
    /// The MSI-X table and the PBA, as the guest reaches them.
    table: u64,
    pba: u64,
}

impl Device {
    /// Message control: MSI-X Enable and Function Mask (PCI LB 3.0, 6.8.2.3).
    fn control(&self, enable: bool, function_mask: bool) {
        let header = cfg_read(self.ecam, self.dev, self.cap) & 0x3fff_ffff;
        let bits = u32::from(enable) << 31 | u32::from(function_mask) << 30;
        cfg_write(self.ecam, self.dev, self.cap, header | bits);
    }

    /// The address of dword `offset` of table entry `vector`.
    fn entry(&self, vector: u32, offset: u64) -> usize {
        (self.table + u64::from(vector) * 16 + offset) as usize
    }

    /// Vector control: masked or not.
    fn mask(&self, vector: u32, masked: bool) {
        mmio::write32(self.entry(vector, 12), u32::from(masked));
    }

    /// Writes an entry's message as Linux does: 32-bit writes.
    fn message(&self, vector: u32, address: u64, data: u32) {
        mmio::write32(self.entry(vector, 0), address as u32);
        mmio::write32(self.entry(vector, 4), (address >> 32) as u32);
        mmio::write32(self.entry(vector, 8), data);
    }

    /// The PBA's first dword (bit n: vector n pending).
    fn pending(&self) -> u32 {
        mmio::read32(self.pba as usize)
    }

    fn write_reg(&self, offset: u64, value: u32) {
        mmio::write32((self.regs + offset) as usize, value);
    }
}

/// The address of BAR `bir` of `dev` (32- or 64-bit memory BAR).
fn bar(ecam: u64, dev: u64, bir: u64) -> u64 {
    let low = cfg_read(ecam, dev, 0x10 + 4 * bir);
    let mut address = u64::from(low & !0xf);
    if low & 0x6 == 0x4 {
        address |= u64::from(cfg_read(ecam, dev, 0x14 + 4 * bir)) << 32;
    }
    address
}

/// Finds e1000e and its MSI-X capability, enables decode and bus mastering.
fn find() -> Device {
    let Some(ecam) = ecam() else {
        fail!("no pci-host-ecam-generic node")
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
        if (id & 0xffff, id >> 16) == E1000E {
            found = Some(dev);
        }
    }
    let Some(dev) = found else {
        fail!("e1000e not on the guest's bus")
    };
    pass!("{functions} function(s) on the guest bus, e1000e at 00:{dev:02x}.0");
    let mut cap = u64::from(cfg_read(ecam, dev, 0x34) & 0xfc);
    let mut guard = 0;
    while cap != 0 && cfg_read(ecam, dev, cap) & 0xff != 0x11 && guard < 48 {
        cap = u64::from((cfg_read(ecam, dev, cap) >> 8) & 0xfc);
        guard += 1;
    }
    if cap == 0 || guard == 48 {
        fail!("no MSI-X capability");
    }
    let vectors = (cfg_read(ecam, dev, cap) >> 16 & 0x7ff) + 1;
    if vectors != VECTORS {
        fail!("MSI-X table size {vectors}, expected {VECTORS}");
    }
    let table = cfg_read(ecam, dev, cap + 4);
    let pba = cfg_read(ecam, dev, cap + 8);
    let device = Device {
        ecam,
        dev,
        cap,
        regs: bar(ecam, dev, 0),
        table: bar(ecam, dev, u64::from(table & 7)) + u64::from(table & !7),
        pba: bar(ecam, dev, u64::from(pba & 7)) + u64::from(pba & !7),
    };
    let command = cfg_read(ecam, dev, 0x4);
    cfg_write(ecam, dev, 0x4, (command & 0xffff) | 0b110);
    pass!(
        "MSI-X capability at {cap:#x}: {vectors} vectors, table at {:#x} (BAR{}), PBA at {:#x} (BAR{})",
        device.table,
        table & 7,
        device.pba,
        pba & 7
    );
    device
}

/// Raises `cause` and expects exactly one LPI `FIRST_LPI + vector` on vCPU
/// 0; returns the hypervisor exits meanwhile (EXIT_COUNT hypercall). The
/// device sends two messages (see [`COALESCE_MS`]), taken as one LPI: on
/// the software path each is a physical LPI at EL2, one exit, or both in
/// one exit if the second comes while EL2 handles the first.
fn round(d: &Device, vector: u32, what: &str) -> u64 {
    let (cause, _) = CAUSES[vector as usize];
    let before = vits::snap();
    let exits = exit_count_pub();
    vits::mask();
    d.write_reg(ICS, cause);
    super::delay_ms(COALESCE_MS);
    vits::unmask();
    vits::expect(&before, &[(0, FIRST_LPI + vector, 1)], what);
    // One exit is the second EXIT_COUNT call itself.
    let exits = exit_count_pub().wrapping_sub(exits).wrapping_sub(1);
    // ICR is write-one-to-clear: the cause can be raised again.
    d.write_reg(ICR, cause);
    exits
}

/// Raises `cause` of `vector` and expects no interrupt at all.
fn silent(d: &Device, vector: u32, what: &str) {
    let before = vits::snap();
    d.write_reg(ICS, CAUSES[vector as usize].0);
    vits::expect(&before, &[], what);
}

/// The `passthrough-msix` scenario.
pub fn passthrough_msix() {
    vits::set_name("passthrough-msix");
    let d = find();
    let Some(doorbell) = translater() else {
        fail!("no ITS in the device tree")
    };
    // Linux's order: Enable with Function Mask, every entry masked, the
    // messages written, Function Mask cleared; EventID = vector number.
    d.control(true, true);
    for v in 0..VECTORS {
        d.mask(v, true);
        d.message(v, doorbell, v);
    }
    for v in 0..VECTORS {
        let dwords = [0, 4, 8, 12].map(|o| mmio::read32(d.entry(v, o)));
        let want = [doorbell as u32, (doorbell >> 32) as u32, v, 1];
        let qwords = [0, 8].map(|o| mmio::read64(d.entry(v, o)));
        if dwords != want || qwords != [doorbell, u64::from(v) | 1 << 32] {
            fail!("vector {v} reads back {dwords:x?} / {qwords:x?}, written {want:x?}");
        }
    }
    pass!(
        "{VECTORS} vectors programmed with the vITS doorbell {doorbell:#x} and EventIDs 0-4, read back as written (32- and 64-bit reads)"
    );
    d.control(true, false);
    // The vITS: the function's DeviceID is its requester ID on our bus.
    let device = (d.dev as u32) << 3;
    let mut env = vits::setup();
    vits::enable_lpis(&env, VECTORS);
    let mut cmds = [Cmd::sync(0); 9];
    cmds[0] = vits::mapd(&mut env, device);
    cmds[1] = Cmd::mapc(0, env.rdb[0], true);
    for v in 0..VECTORS {
        cmds[2 + v as usize] = Cmd::mapti(device, v, FIRST_LPI + v, 0);
    }
    cmds[7] = env.sync(0);
    cmds[8] = env.sync(0);
    env.send(&cmds, "MAPD/MAPC/MAPTI");
    pass!(
        "MAPD device {device:#x}, MAPTI events 0-4 -> LPIs {FIRST_LPI}-{} on vCPU 0",
        FIRST_LPI + VECTORS - 1
    );
    // The device: nothing pending, everything masked, then cause i ->
    // vector i, the five causes enabled.
    d.write_reg(IMC, u32::MAX);
    d.write_reg(ICR, u32::MAX);
    d.write_reg(IVAR, IVAR_ROUTING);
    let all = CAUSES.iter().fold(0, |a, (c, _)| a | c);
    d.write_reg(IMS, all);
    let before = vits::snap();
    for v in 0..VECTORS {
        d.mask(v, false);
    }
    vits::expect(&before, &[], "unmasking the vectors");
    // The hot path: the device raises an unmasked vector.
    for v in 0..VECTORS {
        let name = CAUSES[v as usize].1;
        let exits = round(&d, v, name);
        pass!(
            "vector {v} ({name}): LPI {} taken once on vCPU 0 (hypervisor exits meanwhile: {exits})",
            FIRST_LPI + v
        );
    }
    // One message per vector, exits counted exactly.
    let mut exits = [0u64; VECTORS as usize];
    for v in 0..VECTORS {
        exits[v as usize] = released(&d, v);
    }
    function_mask(&d);
    bad_address(&d, doorbell);
    bad_accesses(&d);
    pass!(
        "{VECTORS} MSI-X vectors through the guest's vITS, hypervisor exits per MSI: {} {} {} {} {}",
        exits[0],
        exits[1],
        exits[2],
        exits[3],
        exits[4]
    );
}

/// A masked vector holds its message pending in the PBA and sends it,
/// once, when unmasked (PCI LB 3.0, 6.8.2.9). That single message is also
/// the exact exit count per MSI: the unmask is one trapped write, during
/// which the device sends; anything more is the interrupt's doing.
fn released(d: &Device, vector: u32) -> u64 {
    let (cause, name) = CAUSES[vector as usize];
    d.mask(vector, true);
    silent(d, vector, name);
    let pending = d.pending();
    if pending & 1 << vector == 0 {
        fail!(
            "vector {vector} masked with {name} raised, but PBA {pending:#x} has no bit {vector}"
        );
    }
    let before = vits::snap();
    let exits = exit_count_pub();
    d.mask(vector, false);
    vits::expect(&before, &[(0, FIRST_LPI + vector, 1)], name);
    // The second EXIT_COUNT call and the unmask write: one exit each.
    let exits = exit_count_pub().wrapping_sub(exits).wrapping_sub(2);
    let after = d.pending();
    if after & 1 << vector != 0 {
        fail!("vector {vector} unmasked and delivered, but PBA {after:#x} still has bit {vector}");
    }
    d.write_reg(ICR, cause);
    pass!(
        "vector {vector} ({name}) masked: raised, no MSI, PBA {pending:#x}; unmasked: LPI {} taken once, PBA clear (hypervisor exits caused: {exits})",
        FIRST_LPI + vector
    );
    exits
}

/// Function Mask holds every vector's message pending the same way.
fn function_mask(d: &Device) {
    d.control(true, true);
    silent(d, 1, "RxQ1 with the function masked");
    let pending = d.pending();
    if pending & 1 << 1 == 0 {
        fail!("function masked with RxQ1 raised, but PBA {pending:#x} has no bit 1");
    }
    let before = vits::snap();
    d.control(true, false);
    vits::expect(&before, &[(0, FIRST_LPI + 1, 1)], "function unmasked");
    d.write_reg(ICR, CAUSES[1].0);
    pass!("Function Mask: RxQ1 held pending (PBA {pending:#x}), taken once when cleared");
}

/// A vector pointed anywhere but the vITS doorbell stays masked on the
/// device: the guest reads back what it wrote, no MSI, nothing written.
fn bad_address(d: &Device, doorbell: u64) {
    let elsewhere = SENTINEL.as_ptr() as u64;
    d.mask(3, true);
    d.message(3, elsewhere, 3);
    d.mask(3, false);
    let back =
        u64::from(mmio::read32(d.entry(3, 0))) | u64::from(mmio::read32(d.entry(3, 4))) << 32;
    if back != elsewhere {
        fail!("vector 3 reads back {back:#x}, written {elsewhere:#x}");
    }
    silent(d, 3, "TxQ1 with vector 3 pointed at guest RAM");
    let sentinel = SENTINEL.load(Ordering::Acquire);
    if sentinel != 0x5a5a_5a5a {
        fail!("guest RAM at {elsewhere:#x} was written: {sentinel:#x}");
    }
    let pending = d.pending();
    pass!(
        "vector 3 pointed at guest RAM {elsewhere:#x}: read back as written, no MSI, nothing written there (PBA {pending:#x})"
    );
    // Reprogrammed as a driver does (masked around the change): the
    // message the device held back is sent, once.
    d.mask(3, true);
    d.message(3, doorbell, 3);
    let before = vits::snap();
    d.mask(3, false);
    let want: &[(usize, u32, u32)] = if pending & 1 << 3 != 0 {
        &[(0, FIRST_LPI + 3, 1)]
    } else {
        &[]
    };
    vits::expect(&before, want, "vector 3 pointed back at the doorbell");
    d.write_reg(ICR, CAUSES[3].0);
    let exits = round(d, 3, "TxQ1 with vector 3 at the doorbell again");
    pass!(
        "vector 3 back at the vITS doorbell: the held MSI taken {} time(s), then TxQ1 taken once (hypervisor exits meanwhile: {exits})",
        want.len()
    );
}

/// Accesses the table does not allow, and the rest of its page.
fn bad_accesses(d: &Device) {
    let byte = mmio::read8(d.entry(0, 0));
    if byte != 0 {
        fail!("a byte read of the MSI-X table returned {byte:#x}, expected 0 (refused)");
    }
    mmio::write8(d.entry(0, 8), 0xff);
    let data = mmio::read32(d.entry(0, 8));
    if data != 0 {
        fail!("a byte write changed vector 0's data to {data:#x}");
    }
    pass!("byte accesses to the MSI-X table refused (read 0, write ignored)");
    let beyond = d.table + u64::from(VECTORS) * 16;
    if beyond & !0xfff == d.table & !0xfff {
        let value = mmio::read32(beyond as usize);
        mmio::write32(beyond as usize, 0);
        pass!("past the table on its page ({beyond:#x}): the device answered {value:#x}");
    }
    let exits = round(d, 0, "RxQ0 after the refused accesses");
    pass!("vector 0 still taken once (hypervisor exits meanwhile: {exits})");
}
