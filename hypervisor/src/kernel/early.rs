//! Before the MMU is on: find RAM and the console in the device tree
//! (without a heap), build the EL2 identity map in a static pool, and turn
//! on the MMU and caches. No lock or atomic is touched before that point,
//! since exclusive accesses to the Device memory type that applies with the
//! MMU off need not work on real hardware.

use crate::arch::cache::clean_invalidate;
use crate::arch::mmu::{self, FrameSource, IdentityTables};
use crate::boot::platform::early::{total_size, EarlyConsole, EarlyTree};
use crate::mm::{
    El2Access, El2Attributes, El2PageTable, El2Stage1, PhysAddr, VirtAddr, MAIR_EL2, PAGE_SIZE,
};
use core::sync::atomic::{AtomicU64, Ordering};
use spin::Mutex;

/// Frames for the EL2 tables: enough for RAM in blocks, the image in pages
/// and the devices mapped later.
const POOL_FRAMES: usize = 96;

#[repr(C, align(4096))]
struct Pool([[u8; 4096]; POOL_FRAMES]);

static mut POOL: Pool = Pool([[0; 4096]; POOL_FRAMES]);

/// Hands out the static pool's frames in order.
pub struct StaticPool {
    next: usize,
}

impl FrameSource for StaticPool {
    fn frames(&mut self, count: usize) -> Option<PhysAddr> {
        // Single tables only (EL2 stage 1 needs no concatenated root).
        if count != 1 || self.next >= POOL_FRAMES {
            return None;
        }
        let base = core::ptr::addr_of!(POOL) as u64;
        let pa = PhysAddr(base + self.next as u64 * PAGE_SIZE);
        self.next += 1;
        Some(pa)
    }
}

/// TTBR0_EL2 for the secondaries, which read it with their MMU (and so
/// their caches) off: a plain atomic, cleaned to the point of coherency.
static EL2_ROOT: AtomicU64 = AtomicU64::new(0);

/// The EL2 translation tables, for mapping devices after boot.
pub static EL2_TABLES: Mutex<Option<El2PageTable<IdentityTables<StaticPool>>>> = Mutex::new(None);

extern "C" {
    static __image_start: u8;
    static __text_end: u8;
    static __rodata_end: u8;
    static __image_end: u8;
}

fn symbol(s: &u8) -> u64 {
    s as *const u8 as u64
}

/// Physical range of the hypervisor image (text to end of BSS).
pub fn image_range() -> (u64, u64) {
    // SAFETY: linker-defined symbols; only their addresses are used.
    unsafe { (symbol(&__image_start), symbol(&__image_end)) }
}

/// What the early boot found out, handed to the main boot.
pub struct EarlyInfo {
    /// The console UART (base after `ranges`, driver family), if the tree names one.
    pub uart: Option<EarlyConsole>,
}

/// The device tree at `dtb` as bytes, its length from its header.
///
/// # Safety
/// `dtb` must point at a device tree (or at least 8 readable bytes) that
/// stays untouched in RAM for the hypervisor's life.
pub unsafe fn dtb_bytes(dtb: usize) -> Option<&'static [u8]> {
    // SAFETY: the caller guarantees 8 readable bytes at `dtb`.
    let header = unsafe { core::slice::from_raw_parts(dtb as *const u8, 8) };
    let size = total_size(header)?;
    // SAFETY: the header's totalsize spans the blob the caller vouches for.
    Some(unsafe { core::slice::from_raw_parts(dtb as *const u8, size) })
}

/// Maps RAM and the image W^X, the console as device memory, and enables
/// the MMU. Returns `None` if the tree is unusable (nothing can be printed).
pub fn init(dtb: usize) -> Option<EarlyInfo> {
    // SAFETY: the loader passed a device tree, which stays untouched in RAM.
    let tree = EarlyTree::new(unsafe { dtb_bytes(dtb) }?).ok()?;
    let uart = tree.console().ok().flatten();
    let mut tables =
        El2PageTable::new(El2Stage1, IdentityTables::el2(StaticPool { next: 0 })).ok()?;
    // SAFETY: linker-defined symbols; only their addresses are used.
    let (image, text_end, rodata_end, image_end) = unsafe {
        (
            symbol(&__image_start),
            symbol(&__text_end),
            symbol(&__rodata_end),
            symbol(&__image_end),
        )
    };
    let data = El2Attributes::normal(El2Access::ReadWrite, true);
    let mut mapped = Some(());
    tree.for_each_memory(|region| {
        let (start, end) = (region.start.0, region.start.0 + region.size);
        // RAM below and above the image: read-write, never executable.
        for (s, e) in [(start, end.min(image)), (start.max(image_end), end)] {
            if s < e && mapped.is_some() {
                mapped = tables
                    .map(VirtAddr(s), PhysAddr(s), e - s, data)
                    .ok()
                    .map(|_| ());
            }
        }
    })
    .ok()?;
    mapped?;
    let parts = [
        (
            image,
            text_end,
            El2Attributes::normal(El2Access::ReadOnly, false),
        ),
        (
            text_end,
            rodata_end,
            El2Attributes::normal(El2Access::ReadOnly, true),
        ),
        (rodata_end, image_end, data),
    ];
    for (s, e, attrs) in parts {
        tables.map(VirtAddr(s), PhysAddr(s), e - s, attrs).ok()?;
    }
    // The page holding the UART: the Pi's mini UART (0xfe215040) is not page aligned.
    if let Some(base) = uart.map(|c| c.base.0 & !(PAGE_SIZE - 1)) {
        tables
            .map(
                VirtAddr(base),
                PhysAddr(base),
                PAGE_SIZE,
                El2Attributes::device(),
            )
            .ok()?;
    }
    // The tables were written with the MMU (hence caches) off: make sure no
    // stale cache line shadows them once walks become cacheable.
    let pool = core::ptr::addr_of!(POOL) as u64;
    clean_invalidate(pool, (POOL_FRAMES as u64) * PAGE_SIZE);
    // SAFETY: the tables map all RAM (image W^X included) and the console.
    unsafe { mmu::enable_el2(tables.root(), El2Stage1::tcr_el2(mmu::pa_range()), MAIR_EL2) };
    EL2_ROOT.store(tables.root().raw(), Ordering::Release);
    clean_invalidate(core::ptr::addr_of!(EL2_ROOT) as u64, 8);
    *EL2_TABLES.lock() = Some(tables);
    Some(EarlyInfo { uart })
}

/// Loads this CPU's MMU with the tables the boot CPU built (secondaries).
pub fn enable_on_secondary() {
    let root = EL2_ROOT.load(Ordering::Acquire);
    if root != 0 {
        // SAFETY: the same tables as the boot CPU, complete by now.
        unsafe {
            mmu::enable_el2(
                PhysAddr(root),
                El2Stage1::tcr_el2(mmu::pa_range()),
                MAIR_EL2,
            )
        };
    }
}

/// Identity-maps a device register range (device-nGnRE, never executable).
pub fn map_device(base: u64, size: u64) -> Result<(), crate::mm::PageTableError> {
    let start = base & !(PAGE_SIZE - 1);
    let end = (base + size).next_multiple_of(PAGE_SIZE);
    let mut guard = EL2_TABLES.lock();
    let tables = guard
        .as_mut()
        .ok_or(crate::mm::PageTableError::OutOfTableMemory)?;
    match tables.map(
        VirtAddr(start),
        PhysAddr(start),
        end - start,
        El2Attributes::device(),
    ) {
        // Mapped already: fine only if every page is identity-mapped device
        // memory (e.g. two devices sharing a page), never if it is RAM.
        Err(e @ crate::mm::PageTableError::AlreadyMapped { .. }) => {
            let device = El2Attributes::device();
            let all_device = (start..end).step_by(PAGE_SIZE as usize).all(|va| {
                tables
                    .translate(VirtAddr(va))
                    .is_none_or(|(pa, attrs)| pa.raw() == va && attrs == device)
            });
            if !all_device {
                return Err(e);
            }
            // Map what is still unmapped in the range, page by page.
            for va in (start..end).step_by(PAGE_SIZE as usize) {
                if tables.translate(VirtAddr(va)).is_none() {
                    tables.map(VirtAddr(va), PhysAddr(va), PAGE_SIZE, device)?;
                }
            }
            crate::arch::sysreg::isb();
            Ok(())
        }
        other => {
            crate::arch::sysreg::isb();
            other
        }
    }
}
