//! A small GICv3 ITS driver for the test guest, shaped like Linux's
//! (drivers/irqchip/irq-gic-v3-its.c): Device and Collection tables sized
//! from GITS_BASER<n>, one command queue behind GITS_CBASER, 32-byte
//! commands (IHI 0069, chapter 5.3 "ITS commands"), the LPI configuration
//! and pending tables behind GICR_PROPBASER/GICR_PENDBASER, EnableLPIs.
//! No heap: every table comes from one static, 64 KiB aligned pool in the
//! guest's own RAM. Every wait is bounded.

use core::sync::atomic::{AtomicUsize, Ordering};

pub use crate::guest::mmio::{read32, read64, write32, write64};

/// First LPI INTID (IHI 0069, 1.2 "INTIDs").
pub const FIRST_LPI: u32 = 8192;
/// GICR_PROPBASER.IDbits we program: 14 INTID bits (LPIs 8192..16383),
/// the architectural minimum for LPIs, so any GIC and any partition's
/// `lpi_id_bits` accepts it.
const LPI_ID_BITS: u32 = 14;
/// Bytes of the LPI configuration table: one byte per LPI.
const PROP_BYTES: usize = (1 << LPI_ID_BITS) - FIRST_LPI as usize;
/// Most redistributors (vCPUs) we give a pending table.
pub const MAX_CPUS: usize = 4;
/// Events per ITT slot we hand out: 32 EventIDs at up to 32 bytes each.
const ITT_SLOT: usize = 1024;
/// Polls of a register before a wait gives up (each an MMIO read; under a
/// hypervisor a trap); the time bound below usually ends the wait first.
const POLLS: u32 = 2_000_000;
/// Time bound of every register wait, in milliseconds.
const WAIT_MS: u64 = 1000;

/// GITS_* register offsets (IHI 0069, 12.19 "The ITS register map").
mod gits {
    /// GITS_CTLR.
    pub const CTLR: usize = 0x0000;
    /// GITS_TYPER (64-bit).
    pub const TYPER: usize = 0x0008;
    /// GITS_CBASER (64-bit).
    pub const CBASER: usize = 0x0080;
    /// GITS_CWRITER (64-bit).
    pub const CWRITER: usize = 0x0088;
    /// GITS_CREADR (64-bit).
    pub const CREADR: usize = 0x0090;
    /// GITS_BASER0; BASER<n> at + 8n.
    pub const BASER: usize = 0x0100;
    /// GITS_TRANSLATER, in the translation frame (64 KiB after the control frame).
    pub const TRANSLATER: usize = 0x1_0040;
    /// GITS_CTLR.Enabled.
    pub const CTLR_ENABLED: u32 = 1 << 0;
    /// GITS_CTLR.Quiescent.
    pub const CTLR_QUIESCENT: u32 = 1 << 31;
    /// GITS_CREADR.Stalled.
    pub const CREADR_STALLED: u64 = 1 << 0;
    /// Valid bit of GITS_CBASER and GITS_BASER<n>.
    pub const VALID: u64 = 1 << 63;
    /// InnerCache = 0b001, Normal Non-cacheable: the guest runs with its MMU
    /// off, so its own accesses to the tables are non-cacheable too.
    pub const INNER_NC: u64 = 0b001 << 59;
}

/// GICR_* register offsets in RD_base (IHI 0069, 12.11).
mod gicr {
    /// GICR_CTLR.
    pub const CTLR: usize = 0x0000;
    /// GICR_TYPER (64-bit).
    pub const TYPER: usize = 0x0008;
    /// GICR_WAKER.
    pub const WAKER: usize = 0x0014;
    /// GICR_PROPBASER (64-bit).
    pub const PROPBASER: usize = 0x0070;
    /// GICR_PENDBASER (64-bit).
    pub const PENDBASER: usize = 0x0078;
    /// GICR_PIDR2.
    pub const PIDR2: usize = 0xffe8;
    /// GICR_CTLR.EnableLPIs.
    pub const CTLR_ENABLE_LPIS: u32 = 1 << 0;
    /// GICR_CTLR.RWP.
    pub const CTLR_RWP: u32 = 1 << 3;
    /// GICR_TYPER.PLPIS: physical LPIs supported.
    pub const TYPER_PLPIS: u64 = 1 << 0;
    /// GICR_TYPER.VLPIS: the frame has VLPI pages (stride 256 KiB).
    pub const TYPER_VLPIS: u64 = 1 << 1;
    /// GICR_TYPER.Last.
    pub const TYPER_LAST: u64 = 1 << 4;
    /// GICR_WAKER.ProcessorSleep.
    pub const WAKER_SLEEP: u32 = 1 << 1;
    /// GICR_WAKER.ChildrenAsleep.
    pub const WAKER_ASLEEP: u32 = 1 << 2;
}

/// GICD_* register offsets (IHI 0069, 12.9).
mod gicd {
    /// GICD_CTLR.
    pub const CTLR: usize = 0x0000;
    /// GICD_TYPER.
    pub const TYPER: usize = 0x0004;
    /// GICD_CTLR.RWP.
    pub const CTLR_RWP: u32 = 1 << 31;
    /// GICD_CTLR: ARE, EnableGrp1, EnableGrp0 (what Linux writes, DS = 1).
    pub const CTLR_ENABLE: u32 = (1 << 4) | (1 << 1) | (1 << 0);
    /// GICD_TYPER.LPIS.
    pub const TYPER_LPIS: u32 = 1 << 17;
}

/// Makes earlier memory writes (tables, commands) visible to the GIC before
/// the register write that tells it to look (Linux: wmb/dsb before CWRITER).
pub fn dsb() {
    // SAFETY: a barrier only.
    unsafe { core::arch::asm!("dsb sy", options(nostack)) };
}

/// The counter value `ms` milliseconds from now (deadline of a wait).
fn deadline(ms: u64) -> u64 {
    let freq: u64;
    // SAFETY: reading CNTFRQ_EL0 has no side effects.
    unsafe { core::arch::asm!("mrs {}, cntfrq_el0", out(reg) freq) };
    crate::guest::counter() + freq / 1000 * ms
}

/// Polls `done` until it holds, for at most `WAIT_MS` and `POLLS` polls.
fn wait_for(mut done: impl FnMut() -> bool) -> bool {
    let end = deadline(WAIT_MS);
    for _ in 0..POLLS {
        if done() {
            return true;
        }
        if crate::guest::counter() > end {
            return done();
        }
        core::hint::spin_loop();
    }
    done()
}

/// One 64 KiB page of the pool.
#[repr(C, align(65536))]
struct Page([u8; 0x1_0000]);

/// Pages in the pool: Device table, Collection table, command queue, LPI
/// configuration table, ITTs, and one pending table per redistributor
/// (GICR_PENDBASER wants 64 KiB alignment).
const POOL_PAGES: usize = 5 + MAX_CPUS;
/// The pool (in .bss, zeroed at boot, inside the guest's RAM).
static mut POOL: [Page; POOL_PAGES] = [const { Page([0; 0x1_0000]) }; POOL_PAGES];
/// Pages handed out so far.
static POOL_NEXT: AtomicUsize = AtomicUsize::new(0);

/// Hands out one zeroed 64 KiB page of the pool (each page once per boot).
fn alloc_page() -> Result<usize, &'static str> {
    let i = POOL_NEXT.fetch_add(1, Ordering::AcqRel);
    if i >= POOL_PAGES {
        return Err("its: table pool exhausted");
    }
    // Only the address is taken (no reference); page `i` is handed out once.
    let base = (&raw mut POOL) as usize + i * 0x1_0000;
    Ok(base)
}

/// The pool's address range, to check it lies in RAM the device tree names.
pub fn pool_range() -> (u64, u64) {
    // Only the address is taken (no reference).
    let base = (&raw mut POOL) as u64;
    (base, base + (POOL_PAGES * 0x1_0000) as u64)
}

/// ITS command opcodes (IHI 0069, 5.3, Table 5-x "ITS command numbers").
pub mod op {
    /// MOVI.
    pub const MOVI: u8 = 0x01;
    /// INT.
    pub const INT: u8 = 0x03;
    /// CLEAR.
    pub const CLEAR: u8 = 0x04;
    /// SYNC.
    pub const SYNC: u8 = 0x05;
    /// MAPD.
    pub const MAPD: u8 = 0x08;
    /// MAPC.
    pub const MAPC: u8 = 0x09;
    /// MAPTI.
    pub const MAPTI: u8 = 0x0a;
    /// MAPI.
    pub const MAPI: u8 = 0x0b;
    /// INV.
    pub const INV: u8 = 0x0c;
    /// INVALL.
    pub const INVALL: u8 = 0x0d;
    /// MOVALL.
    pub const MOVALL: u8 = 0x0e;
    /// DISCARD.
    pub const DISCARD: u8 = 0x0f;
}

/// One 32-byte ITS command: four little-endian doublewords DW0..DW3.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cmd(pub [u64; 4]);

/// RDbase field of MAPC/SYNC/MOVALL: bits [50:16] of its doubleword.
fn rdbase_field(rd: u64) -> u64 {
    (rd & 0x7_ffff_ffff) << 16
}

impl Cmd {
    /// DW0 with the opcode in [7:0] and DeviceID in [63:32] (every
    /// device-scoped command, IHI 0069 5.3).
    fn dev(opcode: u8, device: u32) -> u64 {
        u64::from(opcode) | (u64::from(device) << 32)
    }
    /// A command with only an opcode and a DeviceID/EventID pair (INT,
    /// CLEAR, DISCARD, INV: DW1[31:0] = EventID).
    fn dev_event(opcode: u8, device: u32, event: u32) -> Self {
        Self([Self::dev(opcode, device), u64::from(event), 0, 0])
    }
    /// MAPD: DW1[4:0] Size = EventID bits - 1, DW2[51:8] ITT_addr,
    /// DW2[63] V (IHI 0069, 5.3.8).
    pub fn mapd(device: u32, itt: u64, event_bits: u32, valid: bool) -> Self {
        let size = u64::from(event_bits.saturating_sub(1) & 0x1f);
        let v = if valid { 1 << 63 } else { 0 };
        Self([
            Self::dev(op::MAPD, device),
            size,
            (itt & 0x000f_ffff_ffff_ff00) | v,
            0,
        ])
    }
    /// MAPC: DW2[15:0] ICID, DW2[50:16] RDbase, DW2[63] V (5.3.9).
    pub fn mapc(icid: u16, rdbase: u64, valid: bool) -> Self {
        let v = if valid { 1 << 63 } else { 0 };
        Self([
            u64::from(op::MAPC),
            0,
            u64::from(icid) | rdbase_field(rdbase) | v,
            0,
        ])
    }
    /// MAPTI: DW1[31:0] EventID, DW1[63:32] pINTID, DW2[15:0] ICID (5.3.11).
    pub fn mapti(device: u32, event: u32, intid: u32, icid: u16) -> Self {
        Self([
            Self::dev(op::MAPTI, device),
            u64::from(event) | (u64::from(intid) << 32),
            u64::from(icid),
            0,
        ])
    }
    /// MAPI: as MAPTI with pINTID = EventID (5.3.10).
    pub fn mapi(device: u32, event: u32, icid: u16) -> Self {
        Self([
            Self::dev(op::MAPI, device),
            u64::from(event),
            u64::from(icid),
            0,
        ])
    }
    /// INT: DW1[31:0] EventID (5.3.7).
    pub fn int(device: u32, event: u32) -> Self {
        Self::dev_event(op::INT, device, event)
    }
    /// CLEAR: DW1[31:0] EventID (5.3.3).
    pub fn clear(device: u32, event: u32) -> Self {
        Self::dev_event(op::CLEAR, device, event)
    }
    /// DISCARD: DW1[31:0] EventID (5.3.4).
    pub fn discard(device: u32, event: u32) -> Self {
        Self::dev_event(op::DISCARD, device, event)
    }
    /// INV: DW1[31:0] EventID (5.3.5).
    pub fn inv(device: u32, event: u32) -> Self {
        Self::dev_event(op::INV, device, event)
    }
    /// INVALL: DW2[15:0] ICID (5.3.6).
    pub fn invall(icid: u16) -> Self {
        Self([u64::from(op::INVALL), 0, u64::from(icid), 0])
    }
    /// MOVI: DW1[31:0] EventID, DW2[15:0] the new ICID (5.3.13).
    pub fn movi(device: u32, event: u32, icid: u16) -> Self {
        Self([
            Self::dev(op::MOVI, device),
            u64::from(event),
            u64::from(icid),
            0,
        ])
    }
    /// MOVALL: DW2[50:16] RDbase1 (from), DW3[50:16] RDbase2 (to) (5.3.12).
    pub fn movall(from: u64, to: u64) -> Self {
        Self([
            u64::from(op::MOVALL),
            0,
            rdbase_field(from),
            rdbase_field(to),
        ])
    }
    /// SYNC: DW2[50:16] RDbase (5.3.15).
    pub fn sync(rdbase: u64) -> Self {
        Self([u64::from(op::SYNC), 0, rdbase_field(rdbase), 0])
    }
    /// A command with any opcode and otherwise zero (for error tests).
    pub fn raw(opcode: u8, device: u32) -> Self {
        Self([Self::dev(opcode, device), 0, 0, 0])
    }
}

/// One redistributor of a vCPU.
#[derive(Clone, Copy, Debug, Default)]
pub struct Redist {
    /// RD_base.
    pub base: usize,
    /// GICR_TYPER.
    pub typer: u64,
}

impl Redist {
    /// GICR_TYPER.Processor_Number, bits [23:8].
    pub fn processor_number(&self) -> u64 {
        (self.typer >> 8) & 0xffff
    }
}

/// GICR_TYPER.Affinity_Value form of an MPIDR (Aff3 moves to [31:24]).
fn affinity(mpidr: u64) -> u64 {
    (mpidr & 0xff_ffff) | ((mpidr >> 8) & 0xff00_0000)
}

/// The GIC as the device tree describes it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Gic {
    /// GICD base.
    pub gicd: usize,
    /// First redistributor region (base, size).
    pub gicr: (usize, usize),
    /// The ITS control frame (first `arm,gic-v3-its` node).
    pub its: usize,
}

/// Finds GICD, the first redistributor region and the `index`-th ITS in
/// the device tree (the `arm,gic-v3` node's `reg` and its
/// `arm,gic-v3-its` children).
pub fn discover_its(index: usize) -> Result<Gic, &'static str> {
    let fdt = crate::guest::fdt();
    let node = fdt
        .find_compatible(&["arm,gic-v3"])
        .ok_or("no arm,gic-v3 node in the device tree")?;
    let mut reg = node.reg().ok_or("the GIC node has no reg")?;
    let d = reg.next().ok_or("the GIC node's reg is empty")?;
    let r = reg
        .next()
        .ok_or("the GIC node names no redistributor region")?;
    let its = fdt
        .all_nodes()
        .filter(|n| {
            n.compatible()
                .is_some_and(|c| c.all().any(|s| s == "arm,gic-v3-its"))
        })
        .nth(index)
        .and_then(|n| n.reg())
        .and_then(|mut r| r.next())
        .ok_or("no such arm,gic-v3-its node (with reg) in the device tree")?;
    Ok(Gic {
        gicd: d.starting_address as usize,
        gicr: (r.starting_address as usize, r.size.unwrap_or(0)),
        its: its.starting_address as usize,
    })
}

impl Gic {
    /// The redistributor whose GICR_TYPER affinity is `mpidr`'s, walking
    /// the first region as Linux does (GICR_PIDR2.ArchRev 3 or 4, stride
    /// from VLPIS, stop at Last); bounded by the region and 256 frames.
    pub fn redist_of(&self, mpidr: u64) -> Option<Redist> {
        let (base, size) = self.gicr;
        let mut at = base;
        for _ in 0..256 {
            if at + 0x2_0000 > base + size {
                return None;
            }
            let arch = (read32(at + gicr::PIDR2) >> 4) & 0xf;
            if arch != 3 && arch != 4 {
                return None;
            }
            let typer = read64(at + gicr::TYPER);
            if typer >> 32 == affinity(mpidr) {
                return Some(Redist { base: at, typer });
            }
            if typer & gicr::TYPER_LAST != 0 {
                return None;
            }
            at += if typer & gicr::TYPER_VLPIS != 0 {
                0x4_0000
            } else {
                0x2_0000
            };
        }
        None
    }

    /// Linux's gic_dist_init order: disable, wait RWP, ARE + both group
    /// enables, wait RWP. LPIs need GICD_TYPER.LPIS.
    pub fn dist_enable(&self) -> Result<(), &'static str> {
        if read32(self.gicd + gicd::TYPER) & gicd::TYPER_LPIS == 0 {
            return Err("GICD_TYPER.LPIS is 0: no LPIs");
        }
        let d = self.gicd;
        write32(d + gicd::CTLR, 0);
        if !wait_for(|| read32(d + gicd::CTLR) & gicd::CTLR_RWP == 0) {
            return Err("GICD_CTLR.RWP stuck at 1");
        }
        write32(d + gicd::CTLR, gicd::CTLR_ENABLE);
        if !wait_for(|| read32(d + gicd::CTLR) & gicd::CTLR_RWP == 0) {
            return Err("GICD_CTLR.RWP stuck at 1");
        }
        Ok(())
    }
}

/// The LPI configuration table shared by every redistributor (Linux keeps
/// one too): one byte per LPI, [7:2] priority, [1] RES1 (Group 1 in
/// Linux's naming), [0] Enable (IHI 0069, 5.1.1).
pub struct LpiTables {
    /// Address of the configuration table (byte 0 = LPI 8192).
    prop: usize,
    /// Pending table of each vCPU's redistributor.
    pend: [usize; MAX_CPUS],
}

/// LPI configuration byte: Enable.
pub const LPI_ENABLE: u8 = 1 << 0;
/// LPI configuration byte: bit 1, which Linux always sets (LPI_PROP_GROUP1).
pub const LPI_GROUP1: u8 = 1 << 1;

impl LpiTables {
    /// Allocates the configuration table (every LPI disabled, priority
    /// 0xa0 as Linux's LPI_PROP_DEFAULT_PRIO) and `cpus` pending tables.
    pub fn new(cpus: usize) -> Result<Self, &'static str> {
        let prop = alloc_page()?;
        let mut pend = [0; MAX_CPUS];
        for p in pend.iter_mut().take(cpus.min(MAX_CPUS)) {
            *p = alloc_page()?;
        }
        let t = Self { prop, pend };
        for i in 0..PROP_BYTES {
            // SAFETY: the configuration table is ours, PROP_BYTES long.
            unsafe { core::ptr::write_volatile((prop + i) as *mut u8, 0xa0 | LPI_GROUP1) };
        }
        Ok(t)
    }

    /// Writes the configuration byte of `intid` (priority and enable), then
    /// a barrier so that a following INV/INVALL sees it.
    pub fn set(&self, intid: u32, prio: u8, enable: bool) {
        let Some(i) = intid
            .checked_sub(FIRST_LPI)
            .map(|i| i as usize)
            .filter(|&i| i < PROP_BYTES)
        else {
            return;
        };
        let byte = (prio & 0xfc) | LPI_GROUP1 | if enable { LPI_ENABLE } else { 0 };
        // SAFETY: `i` is inside the configuration table.
        unsafe { core::ptr::write_volatile((self.prop + i) as *mut u8, byte) };
        dsb();
    }

    /// The pending table of vCPU `cpu` (0: none).
    pub fn pending_table(&self, cpu: usize) -> usize {
        self.pend.get(cpu).copied().unwrap_or(0)
    }

    /// Clears GICR_CTLR.EnableLPIs of `rd` and waits for RWP (IHI 0069,
    /// 12.10.2: RWP covers clearing EnableLPIs); returns GICR_CTLR before.
    pub fn disable_on(&self, rd: &Redist) -> Result<u32, &'static str> {
        let ctlr = read32(rd.base + gicr::CTLR);
        write32(rd.base + gicr::CTLR, ctlr & !gicr::CTLR_ENABLE_LPIS);
        let base = rd.base;
        if !wait_for(|| read32(base + gicr::CTLR) & gicr::CTLR_RWP == 0) {
            return Err("GICR_CTLR.RWP stuck at 1 after clearing EnableLPIs");
        }
        if read32(rd.base + gicr::CTLR) & gicr::CTLR_ENABLE_LPIS != 0 {
            return Err("GICR_CTLR.EnableLPIs cannot be cleared");
        }
        Ok(ctlr)
    }

    /// Points redistributor `rd` (vCPU `cpu`) at the tables and sets
    /// GICR_CTLR.EnableLPIs, as Linux's its_cpu_init_lpis: PROPBASER with
    /// IDbits, PENDBASER (64 KiB aligned, zeroed, PTZ = 0), then enable.
    pub fn enable_on(&self, rd: &Redist, cpu: usize) -> Result<(), &'static str> {
        if rd.typer & gicr::TYPER_PLPIS == 0 {
            return Err("GICR_TYPER.PLPIS is 0: this redistributor has no LPIs");
        }
        let pend = *self
            .pend
            .get(cpu)
            .ok_or("its: no pending table for this vCPU")?;
        if pend == 0 {
            return Err("its: no pending table for this vCPU");
        }
        let ctlr = read32(rd.base + gicr::CTLR);
        if ctlr & gicr::CTLR_ENABLE_LPIS != 0 {
            // Already on (e.g. a second setup in one boot): the tables
            // cannot change any more (IHI 0069, GICR_PROPBASER).
            return Ok(());
        }
        let prop =
            (self.prop as u64 & 0x000f_ffff_ffff_f000) | (0b001 << 7) | u64::from(LPI_ID_BITS - 1);
        write64(rd.base + gicr::PROPBASER, prop);
        let pendbaser = (pend as u64 & 0x000f_ffff_ffff_0000) | (0b001 << 7);
        write64(rd.base + gicr::PENDBASER, pendbaser);
        dsb();
        write32(rd.base + gicr::CTLR, ctlr | gicr::CTLR_ENABLE_LPIS);
        let base = rd.base;
        if !wait_for(|| read32(base + gicr::CTLR) & gicr::CTLR_RWP == 0) {
            return Err("GICR_CTLR.RWP stuck at 1 after EnableLPIs");
        }
        if read32(rd.base + gicr::CTLR) & gicr::CTLR_ENABLE_LPIS == 0 {
            return Err("GICR_CTLR.EnableLPIs did not stick");
        }
        Ok(())
    }
}

/// Linux's gic_enable_redist(true): clear ProcessorSleep, wait (bounded)
/// for ChildrenAsleep to read 0.
pub fn redist_wake(rd: &Redist) -> Result<(), &'static str> {
    let w = read32(rd.base + gicr::WAKER);
    write32(rd.base + gicr::WAKER, w & !gicr::WAKER_SLEEP);
    let base = rd.base;
    if wait_for(|| read32(base + gicr::WAKER) & gicr::WAKER_ASLEEP == 0) {
        Ok(())
    } else {
        Err("GICR_WAKER.ChildrenAsleep still 1")
    }
}

/// One ITS, set up and enabled.
pub struct Its {
    /// Control frame base.
    pub base: usize,
    /// GITS_TYPER.
    pub typer: u64,
    /// The command queue and its size in bytes.
    queue: usize,
    queue_bytes: usize,
    /// Byte offset of the next command we write (our CWRITER).
    write: usize,
    /// The page ITTs are carved from, and slots used.
    itt_page: usize,
    itt_used: usize,
    /// BASER<n> values written back by the ITS (for the log line).
    pub basers: [u64; 8],
}

/// How a command queue wait ended badly.
#[derive(Clone, Copy, Debug)]
pub enum QueueError {
    /// GITS_CREADR.Stalled set, at this CREADR.
    Stalled(u64),
    /// CREADR did not reach CWRITER within the bound (CREADR, CWRITER).
    Timeout(u64, u64),
    /// No room in the queue within the bound.
    Full,
}

impl core::fmt::Display for QueueError {
    /// One line naming the state.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Stalled(r) => write!(f, "GITS_CREADR.Stalled set (CREADR {r:#x})"),
            Self::Timeout(r, w) => write!(
                f,
                "CREADR {r:#x} did not reach CWRITER {w:#x} within {WAIT_MS} ms"
            ),
            Self::Full => write!(f, "command queue full for {WAIT_MS} ms"),
        }
    }
}

impl Its {
    /// GITS_TYPER.Devbits + 1.
    pub fn device_bits(&self) -> u32 {
        ((self.typer >> 13) & 0x1f) as u32 + 1
    }
    /// GITS_TYPER.ID_bits + 1 (EventID width).
    pub fn event_bits(&self) -> u32 {
        ((self.typer >> 8) & 0x1f) as u32 + 1
    }
    /// GITS_TYPER.ITT_entry_size + 1, in bytes.
    pub fn itt_entry_size(&self) -> usize {
        ((self.typer >> 4) & 0xf) as usize + 1
    }
    /// GITS_TYPER.PTA: RDbase is a physical address (1) or a processor number (0).
    pub fn pta(&self) -> bool {
        self.typer & (1 << 19) != 0
    }
    /// The RDbase that names redistributor `rd` in MAPC/SYNC/MOVALL: its
    /// processor number (PTA = 0) or its address >> 16 (PTA = 1).
    pub fn rdbase(&self, rd: &Redist) -> u64 {
        if self.pta() {
            rd.base as u64 >> 16
        } else {
            rd.processor_number()
        }
    }

    /// Probes and enables the ITS at `base` the way Linux's its_probe_one
    /// and its_alloc_tables do: disable and wait for Quiescent, allocate
    /// the Device and Collection tables each BASER asks for (Type,
    /// Entry_Size, Page_Size negotiated 64K -> 16K -> 4K), the command
    /// queue (GITS_CBASER, CWRITER = 0), then GITS_CTLR.Enabled.
    pub fn init(base: usize) -> Result<Self, &'static str> {
        let ctlr = read32(base + gits::CTLR);
        if ctlr & gits::CTLR_ENABLED != 0 {
            write32(base + gits::CTLR, ctlr & !gits::CTLR_ENABLED);
        }
        if !wait_for(|| read32(base + gits::CTLR) & gits::CTLR_QUIESCENT != 0) {
            return Err("GITS_CTLR.Quiescent did not read 1 after disabling");
        }
        let typer = read64(base + gits::TYPER);
        if typer & 1 == 0 {
            return Err("GITS_TYPER.Physical is 0: no physical LPIs");
        }
        let mut its = Self {
            base,
            typer,
            queue: 0,
            queue_bytes: 0,
            write: 0,
            itt_page: 0,
            itt_used: 0,
            basers: [0; 8],
        };
        let mut device = false;
        let mut collection = false;
        for n in 0..8 {
            let reg = base + gits::BASER + 8 * n;
            let v = read64(reg);
            let ty = (v >> 56) & 7;
            // Type 1: Devices, 4: Collections (IHI 0069, GITS_BASER<n>.Type).
            // Others (vPEs) are for a hypervisor; Linux leaves them alone
            // unless it runs VMs.
            if ty != 1 && ty != 4 {
                continue;
            }
            its.basers[n] = its.alloc_table(reg, v)?;
            device |= ty == 1;
            collection |= ty == 4;
        }
        if !device {
            return Err("no GITS_BASER<n> of Type Devices");
        }
        if !collection && (typer >> 24) & 0xff == 0 {
            return Err("no Collection table and GITS_TYPER.HCC = 0");
        }
        its.queue = alloc_page()?;
        its.queue_bytes = 0x1_0000;
        // Size: number of 4 KiB pages - 1 (IHI 0069, GITS_CBASER).
        let cbaser = gits::VALID
            | gits::INNER_NC
            | (its.queue as u64 & 0x000f_ffff_ffff_f000)
            | (its.queue_bytes as u64 / 0x1000 - 1);
        write64(base + gits::CBASER, cbaser);
        if read64(base + gits::CBASER) & gits::VALID == 0 {
            return Err("GITS_CBASER.Valid did not stick");
        }
        write64(base + gits::CWRITER, 0);
        dsb();
        write32(
            base + gits::CTLR,
            read32(base + gits::CTLR) | gits::CTLR_ENABLED,
        );
        if read32(base + gits::CTLR) & gits::CTLR_ENABLED == 0 {
            return Err("GITS_CTLR.Enabled did not stick");
        }
        its.itt_page = alloc_page()?;
        Ok(its)
    }

    /// Gives the table of BASER `reg` (current value `v`) one 64 KiB page
    /// of the pool, flat, and returns what the ITS kept. Page_Size starts
    /// at 64 KiB; if the ITS changes it (it supports only smaller pages),
    /// retry with what it says, as Linux's its_setup_baser does.
    fn alloc_table(&mut self, reg: usize, v: u64) -> Result<u64, &'static str> {
        let mem = alloc_page()? as u64;
        let ro = v & ((7 << 56) | (0x1f << 48));
        let mut psz = 0b10u64;
        for _ in 0..3 {
            let page = match psz {
                0 => 0x1000u64,
                1 => 0x4000,
                _ => 0x1_0000,
            };
            let want = gits::VALID
                | gits::INNER_NC
                | ro
                | (mem & 0x0000_ffff_ffff_f000)
                | (psz << 8)
                | (0x1_0000 / page - 1);
            write64(reg, want);
            let got = read64(reg);
            let got_psz = (got >> 8) & 3;
            if got_psz != psz {
                psz = got_psz;
                continue;
            }
            if got & gits::VALID == 0 {
                return Err("GITS_BASER<n>.Valid did not stick");
            }
            return Ok(got);
        }
        Err("GITS_BASER<n>.Page_Size did not settle")
    }

    /// GITS_TYPER.CIL and CIDbits: how many collection IDs the ITS
    /// accepts (16 bits when CIL is 0, IHI 0069 GITS_TYPER).
    pub fn collection_ids(&self) -> u32 {
        if self.typer & (1 << 36) != 0 {
            1 << (((self.typer >> 32) & 0xf) as u32 + 1)
        } else {
            1 << 16
        }
    }

    /// Entries of the Collection table as the ITS kept its BASER: bytes
    /// ((Size + 1) pages of Page_Size) over Entry_Size; 0 without one.
    pub fn collection_table_entries(&self) -> u64 {
        let Some(&v) = self.basers.iter().find(|&&v| (v >> 56) & 7 == 4) else {
            return 0;
        };
        if v & gits::VALID == 0 {
            return 0;
        }
        let page = match (v >> 8) & 3 {
            0 => 0x1000,
            1 => 0x4000,
            _ => 0x1_0000,
        };
        let entry = ((v >> 48) & 0x1f) + 1;
        ((v & 0xff) + 1) * page / entry
    }

    /// Moves the Collection table to `pages` 64 KiB pages at `mem` (64 KiB
    /// aligned, zeroed, the caller's): disables the ITS (waiting for
    /// Quiescent), rewrites that BASER, enables it again. For a guest
    /// that wants every collection ID the ITS allows in its table.
    pub fn replace_collection_table(&mut self, mem: u64, pages: u64) -> Result<(), &'static str> {
        let n = self
            .basers
            .iter()
            .position(|&v| (v >> 56) & 7 == 4)
            .ok_or("no Collection table to replace")?;
        let base = self.base;
        write32(
            base + gits::CTLR,
            read32(base + gits::CTLR) & !gits::CTLR_ENABLED,
        );
        if !wait_for(|| read32(base + gits::CTLR) & gits::CTLR_QUIESCENT != 0) {
            return Err("GITS_CTLR.Quiescent did not read 1 after disabling");
        }
        let old = self.basers[n];
        let ro = old & ((7 << 56) | (0x1f << 48));
        let want = gits::VALID
            | gits::INNER_NC
            | ro
            | (mem & 0x0000_ffff_ffff_0000)
            | (0b10 << 8)
            | (pages.clamp(1, 256) - 1);
        let reg = base + gits::BASER + 8 * n;
        write64(reg, want);
        let got = read64(reg);
        dsb();
        write32(
            base + gits::CTLR,
            read32(base + gits::CTLR) | gits::CTLR_ENABLED,
        );
        if got & gits::VALID == 0 || (got >> 8) & 3 != 0b10 {
            return Err("the new Collection table's BASER did not stick");
        }
        self.basers[n] = got;
        Ok(())
    }

    /// An ITT for `events` EventIDs (256-byte aligned, from a 1 KiB slot),
    /// or an error if the slots are used up or it would not fit one.
    pub fn alloc_itt(&mut self, events: usize) -> Result<u64, &'static str> {
        if events * self.itt_entry_size() > ITT_SLOT {
            return Err("its: ITT larger than a slot");
        }
        if (self.itt_used + 1) * ITT_SLOT > 0x1_0000 {
            return Err("its: ITT slots used up");
        }
        let a = self.itt_page + self.itt_used * ITT_SLOT;
        self.itt_used += 1;
        Ok(a as u64)
    }

    /// GITS_CREADR.
    pub fn creadr(&self) -> u64 {
        read64(self.base + gits::CREADR)
    }

    /// GITS_CWRITER.
    pub fn cwriter(&self) -> u64 {
        read64(self.base + gits::CWRITER)
    }

    /// Queues `cmds` (waiting, bounded, for room as the ring wraps), then
    /// one barrier and one CWRITER write for the batch (Linux's
    /// its_send_single_command posts each; a batch is what a real driver
    /// does under load), then waits for CREADR to reach CWRITER.
    pub fn send(&mut self, cmds: &[Cmd]) -> Result<(), QueueError> {
        for c in cmds {
            let next = (self.write + 32) % self.queue_bytes;
            let base = self.base;
            let full = || (read64(base + gits::CREADR) & 0xf_ffe0) as usize == next;
            if full() {
                // Tell the ITS about what is queued so far, then wait.
                dsb();
                write64(self.base + gits::CWRITER, self.write as u64);
                if !wait_for(|| !full()) {
                    return Err(QueueError::Full);
                }
            }
            for (i, dw) in c.0.iter().enumerate() {
                // SAFETY: the slot is inside our queue page.
                unsafe {
                    core::ptr::write_volatile((self.queue + self.write + 8 * i) as *mut u64, *dw)
                };
            }
            self.write = next;
        }
        dsb();
        write64(self.base + gits::CWRITER, self.write as u64);
        self.wait()
    }

    /// Like [`Self::send`] for a batch that fits the free part of the
    /// ring, returning the counter ticks of the one CWRITER write alone
    /// (barrier, write, and under a hypervisor its trap, which processes
    /// the batch): what `cargo xtask bench` reports per trapped CWRITER
    /// write of N commands.
    pub fn send_timing_cwriter(&mut self, cmds: &[Cmd]) -> Result<u64, QueueError> {
        let free = (self.creadr() as usize & 0xf_ffe0)
            .wrapping_sub(self.write + 32)
            .rem_euclid(self.queue_bytes);
        if cmds.len() * 32 > free {
            return Err(QueueError::Full);
        }
        for c in cmds {
            for (i, dw) in c.0.iter().enumerate() {
                // SAFETY: the slot is inside our queue page.
                unsafe {
                    core::ptr::write_volatile((self.queue + self.write + 8 * i) as *mut u64, *dw)
                };
            }
            self.write = (self.write + 32) % self.queue_bytes;
        }
        dsb();
        let start = crate::guest::counter();
        write64(self.base + gits::CWRITER, self.write as u64);
        let ticks = crate::guest::counter().wrapping_sub(start);
        self.wait()?;
        Ok(ticks)
    }

    /// Waits (bounded) until CREADR equals our CWRITER; Stalled is an error.
    pub fn wait(&self) -> Result<(), QueueError> {
        let want = self.write as u64;
        let base = self.base;
        let done = || {
            let r = read64(base + gits::CREADR);
            r & gits::CREADR_STALLED != 0 || r & 0xf_ffe0 == want
        };
        wait_for(done);
        let r = self.creadr();
        if r & gits::CREADR_STALLED != 0 {
            return Err(QueueError::Stalled(r));
        }
        if r & 0xf_ffe0 != want {
            return Err(QueueError::Timeout(r, want));
        }
        Ok(())
    }

    /// A CPU write of `event` to GITS_TRANSLATER (the MSI a device would
    /// send; on QEMU virt, and on our vITS, it carries DeviceID 0).
    pub fn translate(&self, event: u32) {
        dsb();
        write32(self.base + gits::TRANSLATER, event);
    }
}
