//! The guest's view of a function's MSI capability (PCI LB 3.0, 6.8.1).
//!
//! The guest writes its vITS doorbell (GITS_TRANSLATER IPA) and its
//! EventID; those values never reach the device. The filter keeps them,
//! reads them back exactly, and reports each change so the kernel can
//! program the physical doorbell and the physical EventID instead.

use super::DwordWrite;
use crate::pci::regs::msi;
use crate::pci::{Bdf, ConfigAccess, MsiCapability};

/// The MSI settings as the guest last wrote them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct GuestMsiState {
    /// MSI enable.
    pub enabled: bool,
    /// log2 of the vectors enabled (Multiple Message Enable, at most what the function can send).
    pub vectors_log2: u8,
    /// The doorbell address the guest wrote (an IPA: its vITS GITS_TRANSLATER).
    pub address: u64,
    /// Message data of vector 0 (the guest's EventID); vector n sends data + n.
    pub data: u16,
    /// Per-vector mask bits (always 0 without per-vector masking).
    pub mask: u32,
}

/// MSI capability emulation for one function.
#[derive(Clone, Debug)]
pub(super) struct MsiEmulation {
    cap: MsiCapability,
    state: GuestMsiState,
}

/// Message control bits that come from the device (read-only to software).
const READ_ONLY_CONTROL: u16 = msi::MULTIPLE_MESSAGE_MASK << msi::MULTIPLE_MESSAGE_CAPABLE_SHIFT
    | msi::ADDRESS_64
    | msi::PER_VECTOR_MASK;

impl MsiEmulation {
    /// The emulation of `cap` in its reset state (disabled, all zero).
    pub(super) fn new(cap: MsiCapability) -> Self {
        Self {
            cap,
            state: GuestMsiState::default(),
        }
    }

    /// The capability being emulated.
    pub(super) fn capability(&self) -> &MsiCapability {
        &self.cap
    }

    /// The guest's current settings.
    pub(super) fn state(&self) -> GuestMsiState {
        self.state
    }

    /// Back to the reset state (a partition reset).
    pub(super) fn reset(&mut self) {
        self.state = GuestMsiState::default();
    }

    /// Whether config-space dword `offset` lies in the capability.
    pub(super) fn contains(&self, offset: u16) -> bool {
        let start = u16::from(self.cap.offset);
        offset >= start && offset < start + self.cap.len()
    }

    /// The mask bits that exist: one per vector the function can send.
    fn vector_bits(&self) -> u32 {
        if !self.cap.per_vector_mask {
            return 0;
        }
        ((1u64 << (1u32 << self.cap.vectors_log2)) - 1) as u32
    }

    /// The guest-visible dword at config offset `offset` (dword aligned, inside).
    pub(super) fn read<A: ConfigAccess + ?Sized>(&self, access: &A, phys: Bdf, offset: u16) -> u32 {
        let base = u16::from(self.cap.offset);
        let relative = offset - base;
        let s = &self.state;
        if relative == 0 {
            // ID and next pointer from the device, control emulated.
            let header = access.read32(phys, base);
            let mut control = (header >> 16) as u16 & READ_ONLY_CONTROL;
            control |= u16::from(s.vectors_log2) << msi::MULTIPLE_MESSAGE_ENABLE_SHIFT;
            if s.enabled {
                control |= msi::ENABLE;
            }
            return header & 0xffff | u32::from(control) << 16;
        }
        if relative == msi::ADDRESS_LOW {
            return s.address as u32;
        }
        if relative == msi::ADDRESS_HIGH && self.cap.address_64 {
            return (s.address >> 32) as u32;
        }
        if relative == self.cap.data_offset() {
            return u32::from(s.data);
        }
        if Some(relative) == self.cap.mask_offset() {
            return s.mask;
        }
        if Some(relative) == self.cap.pending_offset() {
            // Pending bits are the device's own, read-only: read through.
            return access.read32(phys, offset);
        }
        0
    }

    /// Applies a guest write; returns the new settings if they changed.
    pub(super) fn write(&mut self, write: &DwordWrite, current: u32) -> Option<GuestMsiState> {
        let before = self.state;
        let relative = write.offset - u16::from(self.cap.offset);
        let value = write.merge(current);
        let vector_bits = self.vector_bits();
        let s = &mut self.state;
        if relative == 0 {
            if write.mask & 0xffff_0000 != 0 {
                let control = (value >> 16) as u16;
                s.enabled = control & msi::ENABLE != 0;
                let asked =
                    (control >> msi::MULTIPLE_MESSAGE_ENABLE_SHIFT) & msi::MULTIPLE_MESSAGE_MASK;
                // Software must not enable more vectors than the function can
                // send (6.8.1.3); the filter caps the field at that limit.
                s.vectors_log2 = (asked as u8).min(self.cap.vectors_log2);
            }
        } else if relative == msi::ADDRESS_LOW {
            // Bits 1:0 are read-only zero: the address is dword aligned.
            s.address = s.address & !0xffff_ffff | u64::from(value & !3);
        } else if relative == msi::ADDRESS_HIGH && self.cap.address_64 {
            s.address = s.address & 0xffff_ffff | u64::from(value) << 32;
        } else if relative == self.cap.data_offset() {
            s.data = value as u16;
        } else if Some(relative) == self.cap.mask_offset() {
            s.mask = value & vector_bits;
        }
        (self.state != before).then_some(self.state)
    }
}
