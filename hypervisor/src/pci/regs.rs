//! Configuration-space register offsets and bits the hypervisor uses.
//!
//! Offsets are from the PCI Local Bus Specification 3.0, 6.1 (type 0
//! header, figure 6-1) and the PCI-to-PCI Bridge Architecture
//! Specification 1.2, 3.2 (type 1 header); capability layouts from
//! PCI LB 3.0, 6.7-6.8 and the PCIe base specification 6.0, 7.5.3.

/// Vendor ID (15:0) and Device ID (31:16).
pub const VENDOR_DEVICE: u16 = 0x00;
/// COMMAND (15:0) and STATUS (31:16).
pub const COMMAND_STATUS: u16 = 0x04;
/// Revision ID (7:0) and class code (31:8).
pub const CLASS_REVISION: u16 = 0x08;
/// Cache line size, latency timer, header type (23:16), BIST.
pub const HEADER_DWORD: u16 = 0x0c;
/// BAR 0; BAR n is at `BAR0 + 4 * n`.
pub const BAR0: u16 = 0x10;
/// Type 1: primary (7:0), secondary (15:8), subordinate (23:16) bus numbers.
pub const BRIDGE_BUSES: u16 = 0x18;
/// Type 0: subsystem vendor ID (15:0) and subsystem ID (31:16).
pub const SUBSYSTEM: u16 = 0x2c;
/// Type 0 expansion ROM BAR.
pub const EXPANSION_ROM: u16 = 0x30;
/// Capabilities pointer (7:0), in both header types.
pub const CAPABILITIES_POINTER: u16 = 0x34;
/// Type 1 expansion ROM BAR.
pub const BRIDGE_EXPANSION_ROM: u16 = 0x38;
/// Interrupt line (7:0) and pin (15:8).
pub const INTERRUPT: u16 = 0x3c;
/// First byte after the standard header, where capabilities may start.
pub const HEADER_END: u16 = 0x40;
/// Size of conventional configuration space; extended space follows (PCIe).
pub const CONFIG_SPACE_SIZE: u16 = 0x100;
/// Size of PCIe extended configuration space (PCIe base 6.0, 7.2.2).
pub const EXTENDED_CONFIG_SPACE_SIZE: u16 = 0x1000;

/// The value a read of an absent function returns (PCIe base 6.0, 2.3.2:
/// a UR completion to a configuration read reads as all ones).
pub const ABSENT: u32 = 0xffff_ffff;

/// COMMAND register bits (PCI LB 3.0, 6.2.2).
pub mod command {
    /// Respond to I/O space accesses.
    pub const IO_SPACE: u16 = 1 << 0;
    /// Respond to memory space accesses.
    pub const MEMORY_SPACE: u16 = 1 << 1;
    /// May master the bus (DMA and MSI writes).
    pub const BUS_MASTER: u16 = 1 << 2;
    /// Disables the INTx# pin.
    pub const INTX_DISABLE: u16 = 1 << 10;
}

/// STATUS register bits (PCI LB 3.0, 6.2.3).
pub mod status {
    /// The capabilities pointer at 0x34 is valid.
    pub const CAPABILITIES_LIST: u16 = 1 << 4;
}

/// Header type register (PCI LB 3.0, 6.2.1).
pub mod header_type {
    /// Bits 6:0: the layout of bytes 0x10..0x40.
    pub const LAYOUT_MASK: u8 = 0x7f;
    /// Bit 7: the device implements functions 1-7.
    pub const MULTI_FUNCTION: u8 = 0x80;
    /// Layout 0: an endpoint.
    pub const ENDPOINT: u8 = 0;
    /// Layout 1: a PCI-to-PCI bridge.
    pub const PCI_BRIDGE: u8 = 1;
    /// Layout 2: a CardBus bridge.
    pub const CARDBUS_BRIDGE: u8 = 2;
}

/// Base address register bits (PCI LB 3.0, 6.2.5.1).
pub mod bar {
    /// Bit 0: an I/O BAR.
    pub const IO: u32 = 1 << 0;
    /// I/O BARs: bits 1:0 are not address bits.
    pub const IO_FLAGS: u32 = 0x3;
    /// Memory BARs: bits 2:1, the locatable type.
    pub const MEM_TYPE_MASK: u32 = 0x6;
    /// Memory type 00: anywhere in 32-bit space.
    pub const MEM_TYPE_32: u32 = 0x0;
    /// Memory type 01: below 1 MiB (reserved since PCI LB 3.0).
    pub const MEM_TYPE_1M: u32 = 0x2;
    /// Memory type 10: anywhere in 64-bit space, the next BAR holds bits 63:32.
    pub const MEM_TYPE_64: u32 = 0x4;
    /// Bit 3: prefetchable.
    pub const PREFETCHABLE: u32 = 1 << 3;
    /// Memory BARs: bits 3:0 are not address bits.
    pub const MEM_FLAGS: u32 = 0xf;
}

/// Capability IDs (PCI Code and ID Assignment Specification, 2).
pub mod cap_id {
    /// PCI power management.
    pub const POWER_MANAGEMENT: u8 = 0x01;
    /// Message Signalled Interrupts.
    pub const MSI: u8 = 0x05;
    /// Vendor specific (virtio uses it for its structures).
    pub const VENDOR: u8 = 0x09;
    /// PCI Express.
    pub const PCI_EXPRESS: u8 = 0x10;
    /// MSI-X.
    pub const MSIX: u8 = 0x11;
}

/// MSI capability (PCI LB 3.0, 6.8.1).
pub mod msi {
    /// Message control: MSI enable.
    pub const ENABLE: u16 = 1 << 0;
    /// Message control bits 3:1: log2 of the vectors the function can send.
    pub const MULTIPLE_MESSAGE_CAPABLE_SHIFT: u16 = 1;
    /// Message control bits 6:4: log2 of the vectors software enabled.
    pub const MULTIPLE_MESSAGE_ENABLE_SHIFT: u16 = 4;
    /// Mask of a 3-bit multiple-message field.
    pub const MULTIPLE_MESSAGE_MASK: u16 = 0x7;
    /// Message control: 64-bit message address capable.
    pub const ADDRESS_64: u16 = 1 << 7;
    /// Message control: per-vector masking capable.
    pub const PER_VECTOR_MASK: u16 = 1 << 8;
    /// Offset of the message address (bits 31:2; 1:0 are zero).
    pub const ADDRESS_LOW: u16 = 0x04;
    /// Offset of the upper address (64-bit capable functions only).
    pub const ADDRESS_HIGH: u16 = 0x08;
}

/// MSI-X capability (PCI LB 3.0, 6.8.2).
pub mod msix {
    /// Message control bits 10:0: table size minus one.
    pub const TABLE_SIZE_MASK: u16 = 0x7ff;
    /// Message control: all vectors masked.
    pub const FUNCTION_MASK: u16 = 1 << 14;
    /// Message control: MSI-X enable.
    pub const ENABLE: u16 = 1 << 15;
    /// Offset of the table offset / BIR dword.
    pub const TABLE: u16 = 0x04;
    /// Offset of the PBA offset / BIR dword.
    pub const PBA: u16 = 0x08;
    /// Bits 2:0 of the table/PBA dwords: the BAR indicator.
    pub const BIR_MASK: u32 = 0x7;
    /// Size of one table entry: address low, address high, data, vector control.
    pub const ENTRY_SIZE: u64 = 16;
    /// Vector control bit 0: the vector is masked (set at reset, 6.8.2.9).
    pub const VECTOR_MASKED: u32 = 1 << 0;
}

/// Bits 7:0 of a capability header: the ID; bits 15:8: the next pointer.
pub const fn cap_next(header: u32) -> u8 {
    (header >> 8) as u8
}

/// The BAR register offset of BAR `index`.
pub const fn bar_offset(index: u8) -> u16 {
    BAR0 + 4 * index as u16
}
