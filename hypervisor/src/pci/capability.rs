//! The capability list and the capabilities the hypervisor interprets:
//! MSI, MSI-X and PCI Express.
//!
//! PCI LB 3.0, 6.7: STATUS bit 4 says a list exists; the byte at 0x34
//! points to the first entry; each entry is (ID, next) with the next
//! pointer's two low bits reserved. Entries live in 0x40..0x100, so a list
//! visiting more than 48 dwords must loop: the walk stops at the first
//! repeat, which a faulty or hostile device cannot turn into a hang.

use alloc::vec::Vec;

use super::regs::{self, cap_id, msi, msix, status};
use super::{Bdf, ConfigAccess, PciError};

/// One entry of the capability list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CapabilityEntry {
    /// Capability ID (0x05 MSI, 0x10 PCIe, 0x11 MSI-X, ...).
    pub id: u8,
    /// Config-space offset of the entry.
    pub offset: u8,
}

/// Walks the capability list of `bdf`, stopping at a loop or a bad pointer.
pub fn walk_capabilities<A: ConfigAccess + ?Sized>(access: &A, bdf: Bdf) -> Vec<CapabilityEntry> {
    let mut entries = Vec::new();
    let status = (access.read32(bdf, regs::COMMAND_STATUS) >> 16) as u16;
    if status & status::CAPABILITIES_LIST == 0 || status == 0xffff {
        return entries;
    }
    let mut pointer = access.read32(bdf, regs::CAPABILITIES_POINTER) as u8 & 0xfc;
    // One bit per dword of 0x40..0x100.
    let mut visited: u64 = 0;
    while pointer != 0 {
        if u16::from(pointer) < regs::HEADER_END {
            log::warn!("PCI {bdf}: capability pointer {pointer:#x} points into the header");
            break;
        }
        let slot = 1u64 << ((u16::from(pointer) - regs::HEADER_END) / 4);
        if visited & slot != 0 {
            log::warn!("PCI {bdf}: capability list loops at {pointer:#x}");
            break;
        }
        visited |= slot;
        let header = access.read32(bdf, u16::from(pointer));
        if header == regs::ABSENT {
            break;
        }
        entries.push(CapabilityEntry {
            id: header as u8,
            offset: pointer,
        });
        pointer = regs::cap_next(header) & 0xfc;
    }
    entries
}

/// The MSI capability's fixed properties (PCI LB 3.0, 6.8.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsiCapability {
    /// Config-space offset.
    pub offset: u8,
    /// Message address may be 64-bit (an upper-address dword exists).
    pub address_64: bool,
    /// Mask and pending dwords exist.
    pub per_vector_mask: bool,
    /// log2 of the vectors the function can send (Multiple Message Capable, 0..=5).
    pub vectors_log2: u8,
}

impl MsiCapability {
    /// Decodes the capability at `offset` from its first dword.
    pub fn parse(offset: u8, header: u32) -> MsiCapability {
        let control = (header >> 16) as u16;
        let mmc = (control >> msi::MULTIPLE_MESSAGE_CAPABLE_SHIFT) & msi::MULTIPLE_MESSAGE_MASK;
        MsiCapability {
            offset,
            address_64: control & msi::ADDRESS_64 != 0,
            per_vector_mask: control & msi::PER_VECTOR_MASK != 0,
            // 110b and 111b are reserved: at most 32 vectors.
            vectors_log2: mmc.min(5) as u8,
        }
    }

    /// Offset of the message data, from the capability start.
    pub const fn data_offset(&self) -> u16 {
        if self.address_64 {
            0x0c
        } else {
            0x08
        }
    }

    /// Offset of the mask bits, if per-vector masking is implemented.
    pub const fn mask_offset(&self) -> Option<u16> {
        if self.per_vector_mask {
            Some(self.data_offset() + 4)
        } else {
            None
        }
    }

    /// Offset of the pending bits, if per-vector masking is implemented.
    pub const fn pending_offset(&self) -> Option<u16> {
        if self.per_vector_mask {
            Some(self.data_offset() + 8)
        } else {
            None
        }
    }

    /// Length of the capability structure in bytes.
    pub const fn len(&self) -> u16 {
        match self.pending_offset() {
            Some(pending) => pending + 4,
            None => self.data_offset() + 4,
        }
    }

    /// Always false: a capability has at least its header (clippy's pairing for `len`).
    pub const fn is_empty(&self) -> bool {
        false
    }

    /// Programs the physical MSI: disables it, writes the message, then sets
    /// Multiple Message Enable, the mask bits and the enable bit as asked.
    pub fn program<A: ConfigAccess + ?Sized>(
        &self,
        access: &mut A,
        bdf: Bdf,
        message: &MsiMessage,
    ) -> Result<(), PciError> {
        let bad = |reason| PciError::BadCapability {
            bdf,
            id: cap_id::MSI,
            reason,
        };
        if message.address & 3 != 0 {
            return Err(bad("MSI address not dword aligned"));
        }
        if !self.address_64 && message.address >> 32 != 0 {
            return Err(bad("64-bit MSI address for a 32-bit-only function"));
        }
        if message.vectors_log2 > self.vectors_log2 {
            return Err(bad("more MSI vectors enabled than the function can send"));
        }
        let base = u16::from(self.offset);
        let header = access.read32(bdf, base);
        let control = (header >> 16) as u16;
        // Disable while the message changes so no half-written message is sent.
        let disabled = control
            & !(msi::ENABLE | msi::MULTIPLE_MESSAGE_MASK << msi::MULTIPLE_MESSAGE_ENABLE_SHIFT);
        access.write32(bdf, base, (header & 0xffff) | u32::from(disabled) << 16);
        access.write32(bdf, base + msi::ADDRESS_LOW, message.address as u32);
        if self.address_64 {
            access.write32(
                bdf,
                base + msi::ADDRESS_HIGH,
                (message.address >> 32) as u32,
            );
        }
        access.write32(bdf, base + self.data_offset(), u32::from(message.data));
        if let Some(mask) = self.mask_offset() {
            access.write32(bdf, base + mask, message.mask);
        }
        let mut control =
            disabled | u16::from(message.vectors_log2) << msi::MULTIPLE_MESSAGE_ENABLE_SHIFT;
        if message.enable {
            control |= msi::ENABLE;
        }
        access.write32(bdf, base, (header & 0xffff) | u32::from(control) << 16);
        Ok(())
    }
}

/// What to program into a physical MSI capability.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct MsiMessage {
    /// Doorbell address (the physical GITS_TRANSLATER).
    pub address: u64,
    /// Message data of vector 0 (the physical EventID); vector n sends data + n.
    pub data: u16,
    /// log2 of the vectors enabled (Multiple Message Enable).
    pub vectors_log2: u8,
    /// Per-vector mask bits (ignored without per-vector masking).
    pub mask: u32,
    /// MSI enable.
    pub enable: bool,
}

/// A region inside a BAR: where the MSI-X table or PBA lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BarRegion {
    /// BAR number (BIR, 0..6).
    pub bar: u8,
    /// Byte offset in the BAR (8-byte aligned).
    pub offset: u32,
    /// Size in bytes.
    pub size: u32,
}

/// The MSI-X capability's fixed properties (PCI LB 3.0, 6.8.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsixCapability {
    /// Config-space offset.
    pub offset: u8,
    /// Number of table entries (1..=2048).
    pub table_size: u16,
    /// Where the vector table is: 16 bytes per entry.
    pub table: BarRegion,
    /// Where the pending bit array is: one bit per entry, in 64-bit words.
    pub pba: BarRegion,
}

impl MsixCapability {
    /// Reads the capability at `offset` of `bdf`, checking its BIRs.
    pub fn read<A: ConfigAccess + ?Sized>(
        access: &A,
        bdf: Bdf,
        offset: u8,
    ) -> Result<MsixCapability, PciError> {
        let base = u16::from(offset);
        let control = (access.read32(bdf, base) >> 16) as u16;
        let table_size = (control & msix::TABLE_SIZE_MASK) + 1;
        let region = |dword: u32, size: u32| -> Result<BarRegion, PciError> {
            let bar = (dword & msix::BIR_MASK) as u8;
            // 6.8.2.4: BIR values 6 and 7 are reserved.
            if bar > 5 {
                return Err(PciError::BadCapability {
                    bdf,
                    id: cap_id::MSIX,
                    reason: "MSI-X table or PBA BIR names no BAR",
                });
            }
            Ok(BarRegion {
                bar,
                offset: dword & !msix::BIR_MASK,
                size,
            })
        };
        let table_bytes = u32::from(table_size) * msix::ENTRY_SIZE as u32;
        let pba_bytes = u32::from(table_size).div_ceil(64) * 8;
        Ok(MsixCapability {
            offset,
            table_size,
            table: region(access.read32(bdf, base + msix::TABLE), table_bytes)?,
            pba: region(access.read32(bdf, base + msix::PBA), pba_bytes)?,
        })
    }

    /// Sets the physical MSI-X enable and function mask bits.
    pub fn set_control<A: ConfigAccess + ?Sized>(
        &self,
        access: &mut A,
        bdf: Bdf,
        enable: bool,
        function_mask: bool,
    ) {
        let base = u16::from(self.offset);
        let header = access.read32(bdf, base);
        let mut control = (header >> 16) as u16 & !(msix::ENABLE | msix::FUNCTION_MASK);
        if enable {
            control |= msix::ENABLE;
        }
        if function_mask {
            control |= msix::FUNCTION_MASK;
        }
        access.write32(bdf, base, (header & 0xffff) | u32::from(control) << 16);
    }
}

/// The PCI Express capability's identification (PCIe base 6.0, 7.5.3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PcieCapability {
    /// Config-space offset.
    pub offset: u8,
    /// Capability version (bits 3:0 of the PCIe capabilities register).
    pub version: u8,
    /// Device/port type (bits 7:4): 0 endpoint, 9 integrated endpoint, 4 root port, ...
    pub port_type: u8,
}

/// The capabilities of a function, with the ones the hypervisor interprets decoded.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Capabilities {
    /// The whole list, in list order.
    pub list: Vec<CapabilityEntry>,
    /// MSI, if present.
    pub msi: Option<MsiCapability>,
    /// MSI-X, if present.
    pub msix: Option<MsixCapability>,
    /// PCI Express, if present.
    pub pcie: Option<PcieCapability>,
}

impl Capabilities {
    /// Walks and decodes the capabilities of `bdf` (the first of each kind counts).
    pub fn read<A: ConfigAccess + ?Sized>(access: &A, bdf: Bdf) -> Result<Capabilities, PciError> {
        let list = walk_capabilities(access, bdf);
        let mut caps = Capabilities::default();
        for entry in &list {
            let header = access.read32(bdf, u16::from(entry.offset));
            match entry.id {
                cap_id::MSI if caps.msi.is_none() => {
                    caps.msi = Some(MsiCapability::parse(entry.offset, header));
                }
                cap_id::MSIX if caps.msix.is_none() => {
                    caps.msix = Some(MsixCapability::read(access, bdf, entry.offset)?);
                }
                cap_id::PCI_EXPRESS if caps.pcie.is_none() => {
                    let register = (header >> 16) as u16;
                    caps.pcie = Some(PcieCapability {
                        offset: entry.offset,
                        version: (register & 0xf) as u8,
                        port_type: ((register >> 4) & 0xf) as u8,
                    });
                }
                _ => {}
            }
        }
        caps.list = list;
        Ok(caps)
    }
}
