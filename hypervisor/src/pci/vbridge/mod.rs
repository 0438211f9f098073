//! A partition's virtual PCIe host bridge: the filter between a
//! guest's ECAM accesses and the physical functions assigned to it.
//!
//! The guest sees a generic ECAM host bridge (its device tree comes from
//! `guest_fdt::GuestPci`) with only its assigned functions, at virtual
//! BDFs. Every other BDF reads as absent (all ones) and ignores writes, so
//! the guest can neither see nor touch a function it was not given. What
//! the guest sees of each function is described in `function.rs`; MSI and
//! MSI-X are emulated in `msi.rs` and `msix.rs`.
//!
//! The kernel's part: trap the guest's ECAM window and call
//! [`VirtualHostBridge::config_read`] / [`VirtualHostBridge::config_write`];
//! trap the page(s) holding each MSI-X table and call
//! [`VirtualHostBridge::msix_table_read`] / [`VirtualHostBridge::msix_table_write`]
//! (other offsets of those pages go to the device, see
//! [`VirtualHostBridge::msix_page_region`]); act on each [`ConfigEvent`]:
//! on `BarMoved` / `MemoryDecode` re-map the device's BARs from
//! [`VirtualHostBridge::device_mappings`] and re-trap its table from
//! [`VirtualHostBridge::msix_traps`] (and on decode enable rewrite its
//! physical table, [`VirtualHostBridge::msix_sync`]); on `Msi` program the
//! message from [`GuestMsiState::physical`]; on `MsixVector` perform
//! [`VirtualHostBridge::msix_program`]'s writes; on `MsixControl` set the
//! device's enable and function mask.

mod build;
mod event;
mod function;
mod map;
mod msi;
mod msix;
mod program;

use alloc::vec::Vec;

use self::function::VirtualFunction;
use super::regs::{self, command, msi as msi_regs};
use super::{BarKind, Bdf, ConfigAccess, MsixCapability};
use crate::mm::addr::Ipa;
use crate::vits::AccessWidth;

pub use event::{virtual_bdf, Change, ConfigEvent, GuestAccessError, VbridgeError, VirtBdf};
pub use map::{BarMapping, MsixTrap};
pub use msi::GuestMsiState;
pub use msix::{MsixEntry, MsixPageRegion};
pub use program::{reprogram, HeldReason, MsiTarget, PhysicalVector, TableWrite, VectorProgram};

/// A guest write narrowed to one dword of config space.
#[derive(Clone, Copy, Debug)]
pub(super) struct DwordWrite {
    /// Dword-aligned register offset.
    pub offset: u16,
    /// The written bytes in their dword positions.
    pub value: u32,
    /// Which bytes were written (0xff per byte).
    pub mask: u32,
}

impl DwordWrite {
    /// `current` with the written bytes replaced.
    pub fn merge(&self, current: u32) -> u32 {
        current & !self.mask | self.value & self.mask
    }
}

/// One of the guest's PCI memory windows.
#[derive(Clone, Copy, Debug)]
struct GuestWindow {
    /// First PCI bus address.
    pci_start: u64,
    /// Size in bytes.
    size: u64,
    /// Where the guest's CPU sees `pci_start`.
    ipa: Ipa,
}

/// A partition's virtual PCIe host bridge.
#[derive(Clone, Debug)]
pub struct VirtualHostBridge {
    first_bus: u8,
    last_bus: u8,
    windows: Vec<GuestWindow>,
    functions: Vec<VirtualFunction>,
}

/// An I/O BAR of an assigned function, which the guest cannot use: its
/// bridge has no I/O window (only memory windows are in its device tree),
/// so the BAR stays at 0 and I/O decode stays off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoBarNotGiven {
    /// The function as the guest sees it.
    pub device: VirtBdf,
    /// The physical function.
    pub physical: Bdf,
    /// BAR number.
    pub bar: u8,
    /// Its size in bytes.
    pub size: u64,
}

impl VirtualHostBridge {
    /// The I/O BARs of the assigned functions, none of which the guest can
    /// use (for the log line that says why a guest reports them unassigned).
    pub fn io_bars_not_given(&self) -> Vec<IoBarNotGiven> {
        self.functions
            .iter()
            .flat_map(|f| {
                f.bars
                    .iter()
                    .filter(|b| b.kind == BarKind::Io)
                    .map(|b| IoBarNotGiven {
                        device: f.virt,
                        physical: f.phys,
                        bar: b.index,
                        size: b.size,
                    })
            })
            .collect()
    }

    /// The assigned devices as (virtual, physical) pairs.
    pub fn devices(&self) -> impl Iterator<Item = (VirtBdf, Bdf)> + '_ {
        self.functions.iter().map(|f| (f.virt, f.phys))
    }

    /// The physical function behind virtual `device`.
    pub fn physical(&self, device: VirtBdf) -> Option<Bdf> {
        self.function(device).map(|f| f.phys)
    }

    fn function(&self, device: VirtBdf) -> Option<&VirtualFunction> {
        self.functions.iter().find(|f| f.virt == device)
    }

    fn function_mut(&mut self, device: VirtBdf) -> Option<&mut VirtualFunction> {
        self.functions.iter_mut().find(|f| f.virt == device)
    }

    /// Size of the guest's ECAM window: 1 MiB per bus (PCIe base 6.0, 7.2.2).
    pub fn ecam_size(&self) -> u64 {
        (u64::from(self.last_bus.saturating_sub(self.first_bus)) + 1) << 20
    }

    /// Decodes an ECAM access: the function, the dword, the byte shift and width mask.
    fn decode(
        &self,
        offset: u64,
        width: AccessWidth,
    ) -> Result<(Bdf, u16, u32, u32), GuestAccessError> {
        let (bytes, mask) = match width {
            AccessWidth::Byte => (1, 0xff),
            AccessWidth::Half => (2, 0xffff),
            AccessWidth::Word => (4, 0xffff_ffff),
            // ECAM need not support wider than a dword (PCIe base 6.0, 7.2.2.2).
            AccessWidth::Double => return Err(GuestAccessError::BadWidth),
        };
        if !offset.is_multiple_of(bytes) {
            return Err(GuestAccessError::Misaligned { offset });
        }
        if offset >= self.ecam_size() {
            return Err(GuestAccessError::OutsideWindow { offset });
        }
        let (bdf, register) = Bdf::from_ecam_offset(offset, self.first_bus)
            .ok_or(GuestAccessError::OutsideWindow { offset })?;
        let shift = u32::from(register & 3) * 8;
        Ok((bdf, register & !3, shift, mask))
    }

    /// A guest read of `width` at `offset` in its ECAM window. On error the
    /// guest should read all ones; the error is for the log.
    pub fn config_read<A: ConfigAccess + ?Sized>(
        &self,
        access: &A,
        offset: u64,
        width: AccessWidth,
    ) -> Result<u32, GuestAccessError> {
        let (bdf, register, shift, mask) = self.decode(offset, width)?;
        let dword = match self.function(VirtBdf(bdf)) {
            Some(function) => function.read(access, register),
            None => regs::ABSENT,
        };
        Ok(dword >> shift & mask)
    }

    /// A guest write of `width` at `offset` in its ECAM window. Writes to
    /// absent functions and read-only registers are ignored (Ok(None)).
    pub fn config_write<A: ConfigAccess + ?Sized>(
        &mut self,
        access: &mut A,
        offset: u64,
        width: AccessWidth,
        value: u64,
    ) -> Result<Option<ConfigEvent>, GuestAccessError> {
        let (bdf, register, shift, mask) = self.decode(offset, width)?;
        let Some(function) = self.function_mut(VirtBdf(bdf)) else {
            return Ok(None);
        };
        let write = DwordWrite {
            offset: register,
            value: (value as u32 & mask) << shift,
            mask: mask << shift,
        };
        Ok(function.write(access, &write).map(|change| ConfigEvent {
            device: function.virt,
            physical: function.phys,
            change,
        }))
    }

    /// Where `device`'s MSI-X table and PBA are (BAR, offset, size), if it has MSI-X.
    pub fn msix_capability(&self, device: VirtBdf) -> Option<&MsixCapability> {
        self.function(device)?.msix.as_ref().map(|m| m.capability())
    }

    /// A guest read of `device`'s MSI-X table at `bar_offset` in the table's BAR.
    pub fn msix_table_read(
        &self,
        device: VirtBdf,
        bar_offset: u64,
        width: AccessWidth,
    ) -> Result<u64, GuestAccessError> {
        let function = self
            .function(device)
            .ok_or(GuestAccessError::NoSuchDevice { device })?;
        let msix = function
            .msix
            .as_ref()
            .ok_or(GuestAccessError::NotInMsixTable { offset: bar_offset })?;
        msix.read_table(bar_offset, width)
    }

    /// A guest write to `device`'s MSI-X table at `bar_offset`; reports a changed entry.
    pub fn msix_table_write(
        &mut self,
        device: VirtBdf,
        bar_offset: u64,
        width: AccessWidth,
        value: u64,
    ) -> Result<Option<ConfigEvent>, GuestAccessError> {
        let function = self
            .function_mut(device)
            .ok_or(GuestAccessError::NoSuchDevice { device })?;
        let msix = function
            .msix
            .as_mut()
            .ok_or(GuestAccessError::NotInMsixTable { offset: bar_offset })?;
        let change = msix.write_table(bar_offset, width, value)?;
        Ok(change.map(|change| ConfigEvent {
            device,
            physical: function.phys,
            change: change.into(),
        }))
    }

    /// The guest's MSI settings for `device`, if it has MSI.
    pub fn msi_state(&self, device: VirtBdf) -> Option<GuestMsiState> {
        Some(self.function(device)?.msi.as_ref()?.state())
    }

    /// The guest's MSI-X (enable, function mask) for `device`, if it has MSI-X.
    pub fn msix_control(&self, device: VirtBdf) -> Option<(bool, bool)> {
        Some(self.function(device)?.msix.as_ref()?.control())
    }

    /// The guest's MSI-X entry `vector` of `device`.
    pub fn msix_entry(&self, device: VirtBdf, vector: u16) -> Option<MsixEntry> {
        self.function(device)?.msix.as_ref()?.entry(vector)
    }

    /// Puts every device and the guest's view back to the state at
    /// partition start: physical decode, bus mastering, MSI and MSI-X off,
    /// guest BARs at their initial addresses, MSI state and MSI-X table
    /// cleared. The physical MSI-X table entries are the kernel's to mask.
    pub fn reset<A: ConfigAccess + ?Sized>(&mut self, access: &mut A) {
        for function in &mut self.functions {
            let phys = function.phys;
            let cmd = access.read32(phys, regs::COMMAND_STATUS) as u16;
            let quiet = cmd & !(command::IO_SPACE | command::MEMORY_SPACE | command::BUS_MASTER);
            access.write32(phys, regs::COMMAND_STATUS, u32::from(quiet));
            if let Some(msi) = &mut function.msi {
                let base = u16::from(msi.capability().offset);
                let header = access.read32(phys, base);
                let off = msi_regs::ENABLE
                    | msi_regs::MULTIPLE_MESSAGE_MASK << msi_regs::MULTIPLE_MESSAGE_ENABLE_SHIFT;
                access.write32(phys, base, header & !(u32::from(off) << 16));
                msi.reset();
            }
            if let Some(msix) = &mut function.msix {
                msix.capability().set_control(access, phys, false, false);
                msix.reset();
            }
            for bar in &mut function.bars {
                bar.address = bar.initial;
            }
            function.interrupt_line = 0;
            function.memory_enabled = false;
        }
    }
}
