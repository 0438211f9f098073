//! PCIe configuration space through an ECAM window (PCIe base spec 7.2.2).

use crate::pci::{Bdf, ConfigAccess};

/// An ECAM window mapped as device memory.
pub struct Ecam {
    base: usize,
    size: u64,
    first_bus: u8,
}

impl Ecam {
    /// The window at `base` (`size` bytes) whose first bus is `first_bus`.
    ///
    /// # Safety
    /// `[base, base + size)` must map the host bridge's ECAM as device memory.
    pub unsafe fn new(base: usize, size: u64, first_bus: u8) -> Self {
        Self {
            base,
            size,
            first_bus,
        }
    }

    fn address(&self, bdf: Bdf, offset: u16) -> Option<usize> {
        let at = bdf.ecam_offset(self.first_bus)? + u64::from(offset & 0xffc);
        (at + 4 <= self.size).then_some(self.base + at as usize)
    }
}

impl ConfigAccess for Ecam {
    fn read32(&self, bdf: Bdf, offset: u16) -> u32 {
        match self.address(bdf, offset) {
            // SAFETY: inside the ECAM window `new` was given; aligned dword.
            Some(a) => unsafe { core::ptr::read_volatile(a as *const u32) },
            None => u32::MAX,
        }
    }

    fn write32(&mut self, bdf: Bdf, offset: u16, value: u32) {
        if let Some(a) = self.address(bdf, offset) {
            // SAFETY: as above.
            unsafe { core::ptr::write_volatile(a as *mut u32, value) };
        }
    }
}
