//! Finding the functions behind a host bridge.

use alloc::vec::Vec;

use super::regs::{self, header_type};
use super::{Bdf, ConfigAccess};
use crate::boot::platform::PciHostBridge;

/// Base class, subclass and programming interface (PCI LB 3.0, 6.2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClassCode {
    /// Base class (0x02 network, 0x06 bridge, ...).
    pub base: u8,
    /// Subclass within the base class.
    pub sub: u8,
    /// Register-level programming interface.
    pub prog_if: u8,
}

/// What the header type register says about bytes 0x10..0x40.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderKind {
    /// Type 0: an endpoint with six BARs.
    Endpoint,
    /// Type 1: a PCI-to-PCI bridge, with its bus numbers as found (not reprogrammed).
    PciBridge {
        /// The bus the bridge sits on, as programmed.
        primary: u8,
        /// The bus directly behind it (0 while unconfigured).
        secondary: u8,
        /// The highest bus behind it.
        subordinate: u8,
    },
    /// Type 2: a CardBus bridge (not used by the hypervisor).
    CardBus,
    /// A layout the PCI specifications do not define.
    Unknown(u8),
}

/// One function found on a bus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PciFunction {
    /// Its address.
    pub bdf: Bdf,
    /// Vendor ID.
    pub vendor_id: u16,
    /// Device ID.
    pub device_id: u16,
    /// Revision ID.
    pub revision: u8,
    /// Class code.
    pub class: ClassCode,
    /// Header layout (and bus numbers of a bridge).
    pub header: HeaderKind,
    /// Header type bit 7 of function 0: the device has functions 1-7 to scan.
    pub multi_function: bool,
}

impl PciFunction {
    /// The requester ID this function's MSIs and DMA carry.
    pub fn requester_id(&self) -> u16 {
        self.bdf.requester_id()
    }

    /// Reads the identity of `bdf`, or `None` if no function answers there.
    pub fn read<A: ConfigAccess + ?Sized>(access: &A, bdf: Bdf) -> Option<PciFunction> {
        let ids = access.read32(bdf, regs::VENDOR_DEVICE);
        let vendor_id = ids as u16;
        // An absent function completes with UR and reads all ones (PCIe base
        // 6.0, 2.3.2); 0x0000 is not an assigned vendor ID either, and some
        // controllers return it for empty slots.
        if vendor_id == 0xffff || vendor_id == 0 {
            return None;
        }
        let class_revision = access.read32(bdf, regs::CLASS_REVISION);
        let header = (access.read32(bdf, regs::HEADER_DWORD) >> 16) as u8;
        let kind = match header & header_type::LAYOUT_MASK {
            header_type::ENDPOINT => HeaderKind::Endpoint,
            header_type::PCI_BRIDGE => {
                let buses = access.read32(bdf, regs::BRIDGE_BUSES);
                HeaderKind::PciBridge {
                    primary: buses as u8,
                    secondary: (buses >> 8) as u8,
                    subordinate: (buses >> 16) as u8,
                }
            }
            header_type::CARDBUS_BRIDGE => HeaderKind::CardBus,
            other => HeaderKind::Unknown(other),
        };
        Some(PciFunction {
            bdf,
            vendor_id,
            device_id: (ids >> 16) as u16,
            revision: class_revision as u8,
            class: ClassCode {
                base: (class_revision >> 24) as u8,
                sub: (class_revision >> 16) as u8,
                prog_if: (class_revision >> 8) as u8,
            },
            header: kind,
            multi_function: header & header_type::MULTI_FUNCTION != 0,
        })
    }
}

/// Every function on buses `first_bus..=last_bus`, in BDF order.
///
/// A brute-force scan of each bus in the range, as the ECAM window covers
/// them all. Bridges are recorded but not reprogrammed, so functions behind
/// a bridge that firmware left unconfigured are not reached.
pub fn enumerate<A: ConfigAccess + ?Sized>(
    access: &A,
    first_bus: u8,
    last_bus: u8,
) -> Vec<PciFunction> {
    let mut found = Vec::new();
    for bus in first_bus..=last_bus {
        for device in 0..Bdf::DEVICES {
            let Some(zero) = Bdf::new(bus, device, 0) else {
                continue;
            };
            // PCI LB 3.0, 6.2.1: a device implements function 0; functions
            // 1-7 exist only if function 0's header type has bit 7 set.
            let Some(first) = PciFunction::read(access, zero) else {
                continue;
            };
            found.push(first);
            if !first.multi_function {
                continue;
            }
            for function in 1..Bdf::FUNCTIONS {
                let other = zero
                    .with_function(function)
                    .and_then(|bdf| PciFunction::read(access, bdf));
                found.extend(other);
            }
        }
    }
    found
}

/// Every function behind `bridge`, over the bus range its device tree node gives.
pub fn enumerate_bridge<A: ConfigAccess + ?Sized>(
    access: &A,
    bridge: &PciHostBridge,
) -> Vec<PciFunction> {
    enumerate(access, bridge.first_bus, bridge.last_bus)
}
