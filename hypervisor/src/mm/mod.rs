//! Memory management: typed addresses, translation tables, frame allocation.

pub mod addr;
pub mod frame;
pub mod pagetable;
pub mod regime;
#[cfg(test)]
pub(crate) mod test_memory;
pub mod vmid;

pub use addr::{Ipa, PhysAddr, Range, VirtAddr};
pub use frame::{FrameAllocator, FrameError, FRAME_SIZE};
pub use pagetable::{
    El2PageTable, PageTable, PageTableError, Stage2PageTable, TableMemory, PAGE_SIZE,
};
pub use regime::{
    El2Access, El2Attributes, El2Stage1, MairIndex, PaRange, Regime, Shareability, Stage2,
    Stage2Access, Stage2Attributes, Stage2ConfigError, Stage2MemAttr, MAIR_EL2,
};
pub use vmid::{vttbr_el2, Vmid, VmidAllocator, VmidError, VmidWidth};
