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
use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::register_structs;
use tock_registers::registers::{ReadOnly, ReadWrite, WriteOnly};

register_structs! {
    /// The ITS's two 64 KiB frames (IHI 0069, 12.19: the control frame
    /// ITS_base, then the translation frame with GITS_TRANSLATER).
    GitsRegs {
        (0x0000 => ctlr: ReadWrite<u32>),
        (0x0004 => iidr: ReadOnly<u32>),
        (0x0008 => typer: ReadOnly<u64>),
        (0x0010 => _reserved0),
        (0x0080 => cbaser: ReadWrite<u64>),
        (0x0088 => cwriter: ReadWrite<u64>),
        (0x0090 => creadr: ReadOnly<u64>),
        (0x0098 => _reserved1),
        (0x0100 => baser: [ReadWrite<u64>; 8]),
        (0x0140 => _reserved2),
        (0x1_0040 => translater: WriteOnly<u32>),
        (0x1_0044 => @END),
    }
}

/// The register block of the ITS at `base`.
///
/// # Safety
/// `base` must map an ITS's two frames as device memory for as long as the
/// reference is used.
unsafe fn regs<'a>(base: usize) -> &'a GitsRegs {
    // SAFETY: the caller's contract; the block is only accessed through
    // volatile register cells.
    unsafe { &*(base as *const GitsRegs) }
}

/// The ITS's registers, shared by the CPUs.
#[derive(Clone, Copy)]
struct SharedRegs(&'static GitsRegs);

// SAFETY: the ITS takes accesses from any CPU; what needs ordering (the
// CBASER/CWRITER/CREADR protocol) is serialised by the queue's lock, and
// set-up happens once before the ITS is shared.
unsafe impl Send for SharedRegs {}
// SAFETY: as above.
unsafe impl Sync for SharedRegs {}

impl core::ops::Deref for SharedRegs {
    type Target = GitsRegs;

    fn deref(&self) -> &GitsRegs {
        self.0
    }
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
pub unsafe fn read_typer(base: usize) -> GitsTyper {
    // SAFETY: the caller guarantees the mapping; GITS_TYPER is read-only.
    GitsTyper(unsafe { regs(base) }.typer.get())
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
    regs: SharedRegs,
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
        self.regs.cwriter.set(value.0);
    }

    fn read_creadr(&mut self) -> GitsCreadr {
        GitsCreadr(self.regs.creadr.get())
    }

    fn read_command(&mut self, offset: u64) -> [u64; 4] {
        let slot = (self.queue + offset) as *const u64;
        // SAFETY: the slot lies in the queue we allocated (offset < size).
        core::array::from_fn(|i| unsafe { core::ptr::read_volatile(slot.add(i)) })
    }

    fn relax(&mut self) {
        core::hint::spin_loop();
    }
}

/// A physical ITS, initialised and enabled.
pub struct Its {
    regs: SharedRegs,
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
        // SAFETY: the caller guarantees `base` maps an ITS we own, for good.
        let regs = SharedRegs(unsafe { regs(base) });
        let ctlr = move || GitsCtlr(regs.ctlr.get());
        // Disabled and quiescent before the tables change (IHI 0069, GITS_CTLR).
        regs.ctlr.set(ctlr().with_enabled(false).0);
        if !crate::drivers::gicv3::wait_for(|| ctlr().quiescent()) {
            return Err(ItsError::NotQuiescent);
        }
        let typer = GitsTyper(regs.typer.get());
        let mut tables = Vec::new();
        for baser in &regs.baser {
            let read = || GitsBaser(baser.get());
            let probed = read();
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
                baser.set(probed.with_page(page).0);
                if read().page() == page {
                    page_sizes = page_sizes.with(page);
                }
            }
            baser.set(probed.with_indirect(true).0);
            let indirect = read().indirect();
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
            baser.set(value.0);
            let mut coherent = read().shareability() != 0;
            if !coherent {
                baser.set(
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
        regs.cbaser.set(cbaser.0);
        let coherent = GitsCbaser(regs.cbaser.get()).shareability() != 0;
        if !coherent {
            regs.cbaser.set(
                cbaser
                    .with_inner_cache(Cacheability::NonCacheable.bits())
                    .with_shareability(0)
                    .0,
            );
            clean_invalidate(queue.raw(), QUEUE_BYTES);
        }
        let queue = CommandQueue::new(
            QueueHw {
                regs,
                queue: queue.raw(),
                coherent,
            },
            QUEUE_BYTES,
        )
        .map_err(ItsError::Queue)?;
        regs.ctlr.set(ctlr().with_enabled(true).0);
        Ok(Self {
            regs,
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
        GitsCtlr(self.regs.ctlr.get()).its_number() as u8
    }

    /// Physical address of GITS_TRANSLATER (what devices write MSIs to;
    /// the ITS is identity-mapped at EL2).
    pub fn translater(&self) -> PhysAddr {
        PhysAddr(core::ptr::from_ref(&self.regs.translater) as u64)
    }

    /// Commands the ITS stalled on that the queue skipped, since boot.
    pub fn skipped_commands(&self) -> u64 {
        self.queue.lock().skipped_commands()
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
