//! The physical ITS: table allocation (GITS_BASER<n>), the command queue
//! (GITS_CBASER/CWRITER/CREADR) and enabling, on top of the pure pieces in
//! `gic::` (command codec, ring logic, table planner).
//!
//! IHI 0069 6.2 "ITS initialization": disable and wait for quiescence,
//! program every table and the queue, then enable. Tables and queue ask for
//! inner-shareable write-back accesses; where the ITS does not keep that
//! (the shareability field reads back 0), it cannot snoop the CPU caches,
//! so we switch to non-cacheable accesses and clean what we write.

use crate::arch::cache::clean_invalidate;
use crate::gic::its_cmd::ItsCommand;
use crate::gic::its_queue::{CommandQueue, CommandQueueHw, QueueError};
use crate::gic::its_tables::{self, BaserProbe, PageSizes, TablePlan};
use crate::gic::regs::its::{
    GitsBaser, GitsCbaser, GitsCreadr, GitsCtlr, GitsCwriter, GitsTyper, ItsPageSize, ItsTableType,
};
use crate::gic::regs::{Cacheability, Shareability};
use crate::mm::PhysAddr;
use alloc::vec::Vec;
use spin::Mutex;

/// Register offsets in the ITS control frame.
mod off {
    pub const CTLR: usize = 0x0;
    pub const TYPER: usize = 0x8;
    pub const CBASER: usize = 0x80;
    pub const CWRITER: usize = 0x88;
    pub const CREADR: usize = 0x90;
    pub const BASER: usize = 0x100;
    /// GITS_TRANSLATER, in the translation frame (+64 KiB).
    pub const TRANSLATER: usize = 0x1_0040;
}

/// Bytes of the command queue (16 pages: 2047 commands).
const QUEUE_BYTES: u64 = 64 * 1024;
/// Largest flat table we allocate before preferring two levels.
const MAX_FLAT_BYTES: u64 = 1 << 20;
/// Polls of GITS_CREADR before a wait gives up and reports the ITS wedged.
pub const POLL_BUDGET: u32 = 10_000_000;

/// Reads GITS_TYPER of the ITS at `base`.
///
/// # Safety
/// `base` must map an ITS control frame as device memory.
pub unsafe fn read_typer(base: usize) -> u64 {
    // SAFETY: the caller guarantees the mapping; GITS_TYPER is read-only.
    unsafe { core::ptr::read_volatile((base + off::TYPER) as *const u64) }
}

/// Why the ITS could not be brought up or did not take commands.
#[derive(Debug)]
pub enum ItsError {
    /// GITS_CTLR.Quiescent never became 1 after disabling.
    NotQuiescent,
    /// A table could not be planned.
    Table(ItsTableType, its_tables::TableError),
    /// No physical memory for a table or the queue.
    OutOfMemory(&'static str),
    /// The command queue refused or did not finish a batch.
    Queue(QueueError),
    /// A DeviceID beyond what the device table covers.
    DeviceIdTooLarge(u32),
}

impl core::fmt::Display for ItsError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NotQuiescent => write!(f, "ITS did not become quiescent when disabled"),
            Self::Table(kind, e) => write!(f, "ITS {kind:?} table: {e:?}"),
            Self::OutOfMemory(what) => write!(f, "no memory for the ITS {what}"),
            Self::Queue(e) => write!(f, "ITS command queue: {e}"),
            Self::DeviceIdTooLarge(id) => {
                write!(f, "DeviceID {id:#x} is beyond the ITS device table")
            }
        }
    }
}

/// One table the ITS uses, as allocated.
#[derive(Clone, Copy, Debug)]
pub struct Table {
    /// The plan it was built from.
    pub plan: TablePlan,
    /// Physical address of the (level-1) table.
    pub base: PhysAddr,
    /// Whether the ITS snoops our caches for it.
    pub coherent: bool,
}

/// The command queue's memory and registers.
struct QueueHw {
    regs: usize,
    queue: u64,
    coherent: bool,
}

impl CommandQueueHw for QueueHw {
    fn write_command(&mut self, offset: u64, command: [u64; 4]) {
        let slot = (self.queue + offset) as *mut u64;
        for (i, dw) in command.iter().enumerate() {
            // SAFETY: the slot lies in the queue we allocated (offset < size).
            unsafe { core::ptr::write_volatile(slot.add(i), *dw) };
        }
        if !self.coherent {
            clean_invalidate(self.queue + offset, 32);
        }
    }

    fn write_cwriter(&mut self, value: GitsCwriter) {
        // The commands must reach memory (or the point the ITS snoops)
        // before the ITS sees the new CWRITER.
        crate::arch::sysreg::dsb_sy();
        // SAFETY: GITS_CWRITER of the ITS we own.
        unsafe { core::ptr::write_volatile((self.regs + off::CWRITER) as *mut u64, value.0) };
    }

    fn read_creadr(&mut self) -> GitsCreadr {
        // SAFETY: GITS_CREADR of the ITS we own.
        GitsCreadr(unsafe { core::ptr::read_volatile((self.regs + off::CREADR) as *const u64) })
    }

    fn relax(&mut self) {
        core::hint::spin_loop();
    }
}

/// A physical ITS, initialised and enabled.
pub struct Its {
    base: usize,
    typer: GitsTyper,
    queue: Mutex<CommandQueue<QueueHw>>,
    /// The tables, by type.
    pub tables: Vec<Table>,
}

impl Its {
    /// Brings up the ITS at `base` (its 128 KiB mapped as device memory),
    /// taking table and queue memory from `alloc(size, align)`.
    ///
    /// # Safety
    /// `base` must map an ITS that nothing else drives.
    pub unsafe fn init(
        base: usize,
        alloc: &mut dyn FnMut(u64, u64) -> Option<PhysAddr>,
    ) -> Result<Self, ItsError> {
        // The caller guarantees `base` maps an ITS control frame we own; the
        // offsets below are registers of that frame.
        // SAFETY: as just said.
        let r64 = |o: usize| unsafe { core::ptr::read_volatile((base + o) as *const u64) };
        let w64 = |o: usize, v: u64| {
            // SAFETY: as above.
            unsafe { core::ptr::write_volatile((base + o) as *mut u64, v) }
        };
        // SAFETY: as above.
        let r32 = |o: usize| unsafe { core::ptr::read_volatile((base + o) as *const u32) };
        // SAFETY: as above.
        let w32 =
            |o: usize, v: u32| unsafe { core::ptr::write_volatile((base + o) as *mut u32, v) };
        // Disabled and quiescent before the tables change (IHI 0069, GITS_CTLR).
        w32(off::CTLR, GitsCtlr(r32(off::CTLR)).with_enabled(false).0);
        if !crate::drivers::gicv3::wait_for(|| GitsCtlr(r32(off::CTLR)).quiescent()) {
            return Err(ItsError::NotQuiescent);
        }
        let typer = GitsTyper(r64(off::TYPER));
        let mut tables = Vec::new();
        for n in 0..8 {
            let at = off::BASER + 8 * n;
            let probed = GitsBaser(r64(at));
            let Some(kind) = probed.kind() else { continue };
            if kind == ItsTableType::Unimplemented {
                continue;
            }
            // Which page sizes and whether Indirect stick (IHI 0069, GITS_BASER<n>.Page_Size).
            let mut page_sizes = PageSizes::NONE;
            for page in [
                ItsPageSize::Size4K,
                ItsPageSize::Size16K,
                ItsPageSize::Size64K,
            ] {
                w64(at, probed.with_page(page).0);
                if GitsBaser(r64(at)).page() == page {
                    page_sizes = page_sizes.with(page);
                }
            }
            w64(at, probed.with_indirect(true).0);
            let indirect = GitsBaser(r64(at)).indirect();
            let probe = BaserProbe {
                kind,
                entry_bytes: probed.entry_bytes(),
                page_sizes,
                indirect,
            };
            let id_bits = match kind {
                ItsTableType::Devices => typer.device_id_bits(),
                ItsTableType::Vpes => 16,
                _ => typer.collection_id_bits().min(16),
            };
            let plan = its_tables::plan(&probe, id_bits, MAX_FLAT_BYTES)
                .map_err(|e| ItsError::Table(kind, e))?;
            let bytes = plan.bytes();
            let pa = alloc(bytes, plan.page.bytes()).ok_or(ItsError::OutOfMemory("tables"))?;
            // SAFETY: fresh RAM, identity-mapped, ours.
            unsafe { core::ptr::write_bytes(pa.raw() as *mut u8, 0, bytes as usize) };
            let value = plan
                .baser(
                    probed,
                    pa,
                    Cacheability::ReadWriteAllocWriteBack,
                    Shareability::InnerShareable,
                )
                .map_err(|e| ItsError::Table(kind, e))?;
            w64(at, value.0);
            let mut coherent = GitsBaser(r64(at)).shareability() != 0;
            if !coherent {
                w64(
                    at,
                    value
                        .with_inner_cache(Cacheability::NonCacheable.bits())
                        .with_shareability(0)
                        .0,
                );
                clean_invalidate(pa.raw(), bytes);
                coherent = false;
            }
            tables.push(Table {
                plan,
                base: pa,
                coherent,
            });
        }
        let queue = alloc(QUEUE_BYTES, 0x1_0000).ok_or(ItsError::OutOfMemory("command queue"))?;
        // SAFETY: fresh RAM, identity-mapped, ours.
        unsafe { core::ptr::write_bytes(queue.raw() as *mut u8, 0, QUEUE_BYTES as usize) };
        let cbaser = GitsCbaser(0)
            .with_valid(true)
            .with_inner_cache(Cacheability::ReadWriteAllocWriteBack.bits())
            .with_shareability(Shareability::InnerShareable.bits())
            .with_size(QUEUE_BYTES / 4096 - 1)
            .with_physical_address(queue);
        w64(off::CBASER, cbaser.0);
        let coherent = GitsCbaser(r64(off::CBASER)).shareability() != 0;
        if !coherent {
            w64(
                off::CBASER,
                cbaser
                    .with_inner_cache(Cacheability::NonCacheable.bits())
                    .with_shareability(0)
                    .0,
            );
            clean_invalidate(queue.raw(), QUEUE_BYTES);
        }
        let queue = CommandQueue::new(
            QueueHw {
                regs: base,
                queue: queue.raw(),
                coherent,
            },
            QUEUE_BYTES,
        )
        .map_err(ItsError::Queue)?;
        w32(off::CTLR, GitsCtlr(r32(off::CTLR)).with_enabled(true).0);
        Ok(Self {
            base,
            typer,
            queue: Mutex::new(queue),
            tables,
        })
    }

    /// GITS_TYPER.
    pub fn typer(&self) -> GitsTyper {
        self.typer
    }

    /// GITS_CTLR.ITS_Number: this ITS's bit in a VMOVP ITSList (used
    /// when GITS_TYPER.VMOVP == 0).
    pub fn its_number(&self) -> u8 {
        // SAFETY: GITS_CTLR of the ITS we own; reading has no side effect.
        let ctlr = unsafe { core::ptr::read_volatile((self.base + off::CTLR) as *const u32) };
        GitsCtlr(ctlr).its_number() as u8
    }

    /// Physical address of GITS_TRANSLATER (what devices write MSIs to).
    pub fn translater(&self) -> PhysAddr {
        PhysAddr((self.base + off::TRANSLATER) as u64)
    }

    /// The table of `kind`, if the ITS has one.
    pub fn table(&self, kind: ItsTableType) -> Option<&Table> {
        self.tables.iter().find(|t| t.plan.kind == kind)
    }

    /// Makes sure the device table has an entry for `device_id`: with a
    /// two-level table, allocates its level-2 page on first use (IHI 0069,
    /// GITS_BASER<n>.Indirect).
    pub fn prepare_device(
        &self,
        device_id: u32,
        alloc: &mut dyn FnMut(u64, u64) -> Option<PhysAddr>,
    ) -> Result<(), ItsError> {
        let Some(table) = self.table(ItsTableType::Devices) else {
            return Ok(());
        };
        let plan = table.plan;
        if u64::from(device_id) >= 1u64 << plan.id_bits {
            return Err(ItsError::DeviceIdTooLarge(device_id));
        }
        if plan.levels == its_tables::TableLevels::Flat {
            return Ok(());
        }
        let index = u64::from(device_id) / plan.ids_per_page;
        let slot = (table.base.raw() + index * 8) as *mut u64;
        // SAFETY: the level-1 table is ours and `index` lies inside it
        // (device_id < 2^id_bits, which the level-1 table covers).
        if unsafe { core::ptr::read_volatile(slot) } != 0 {
            return Ok(());
        }
        let page = plan.page.bytes();
        let pa = alloc(page, page).ok_or(ItsError::OutOfMemory("level-2 device table"))?;
        // SAFETY: fresh RAM, identity-mapped, ours.
        unsafe { core::ptr::write_bytes(pa.raw() as *mut u8, 0, page as usize) };
        let entry = plan
            .level1_entry(pa)
            .map_err(|e| ItsError::Table(ItsTableType::Devices, e))?;
        if !table.coherent {
            clean_invalidate(pa.raw(), page);
        }
        // SAFETY: as above; one 64-bit store the ITS reads atomically.
        unsafe { core::ptr::write_volatile(slot, entry) };
        if !table.coherent {
            clean_invalidate(slot as u64, 8);
        }
        crate::arch::sysreg::dsb_sy();
        Ok(())
    }

    /// Issues `commands` and one closing `sync` (SYNC or VSYNC), and waits
    /// (bounded) until the ITS has consumed them all.
    pub fn submit(&self, commands: &[ItsCommand], sync: ItsCommand) -> Result<(), ItsError> {
        self.queue
            .lock()
            .submit(commands, sync, POLL_BUDGET)
            .map_err(ItsError::Queue)
    }
}
