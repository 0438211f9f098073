//! One assigned function as its partition sees it: the type 0 header with
//! emulated BARs, a filtered COMMAND, and MSI/MSI-X emulated.
//!
//! What the guest sees, register by register (PCI LB 3.0, 6.1-6.2):
//! - IDs, class, revision, subsystem, STATUS, capability pointer: the device's.
//! - Header type: layout 0; bit 7 set when other functions of the virtual
//!   device are assigned too (not when the physical device has them).
//! - BARs: emulated. Reads give the guest's address with the device's type
//!   bits; writes keep the guest's value masked to the BAR's real size, so
//!   the all-ones probe reads back the real size mask (6.2.5.1). The device's
//!   own BARs are never written.
//! - COMMAND: memory space, bus master and INTx disable pass to the device;
//!   I/O space only if the function has an I/O BAR the hypervisor placed;
//!   other bits keep the hypervisor's value. STATUS write-one-to-clear bits pass.
//! - Cache line size, latency timer, BIST: read through, writes ignored.
//! - Expansion ROM BAR: reads 0, writes ignored, i.e. no ROM (6.2.5.2).
//! - Interrupt line: a scratch byte of the guest's; interrupt pin 0: INTx
//!   is not routed to partitions, MSI/MSI-X are.
//! - Capabilities: read through, except MSI and MSI-X (emulated); writes
//!   to any other capability are ignored.
//! - Extended space (0x100..0x1000): an empty extended capability list
//!   (PCIe base 6.0, 7.6.3: a zero header at 0x100 means none), so SR-IOV,
//!   AER, ACS and the rest are absent; writes ignored.

use alloc::vec::Vec;

use super::msi::MsiEmulation;
use super::msix::{MsixChange, MsixEmulation};
use super::{Change, DwordWrite, VirtBdf};
use crate::mm::addr::PhysAddr;
use crate::pci::regs::{self, command, header_type};
use crate::pci::{BarKind, Bdf, ConfigAccess};

/// A BAR as the guest sees it.
#[derive(Clone, Copy, Debug)]
pub(super) struct GuestBar {
    /// BAR number; a 64-bit BAR also owns `index + 1`.
    pub index: u8,
    /// Type bits shown to the guest: the device's.
    pub kind: BarKind,
    /// The device's size.
    pub size: u64,
    /// The guest's PCI bus address for it.
    pub address: u64,
    /// The address given at partition start (restored by a reset).
    pub initial: u64,
    /// Where the CPU reaches the device's BAR, if the hypervisor placed it.
    pub host: Option<PhysAddr>,
}

/// One assigned function.
#[derive(Clone, Debug)]
pub(super) struct VirtualFunction {
    pub virt: VirtBdf,
    pub phys: Bdf,
    pub bars: Vec<GuestBar>,
    pub multi_function: bool,
    pub interrupt_line: u8,
    /// COMMAND.Memory Space as last written through the filter.
    pub memory_enabled: bool,
    pub msi: Option<MsiEmulation>,
    pub msix: Option<MsixEmulation>,
}

/// The COMMAND bits a guest may change.
const GUEST_COMMAND: u16 = command::MEMORY_SPACE | command::BUS_MASTER | command::INTX_DISABLE;

impl VirtualFunction {
    /// May the guest enable I/O decode: only with an I/O BAR the hypervisor placed.
    fn io_allowed(&self) -> bool {
        self.bars
            .iter()
            .any(|b| b.kind == BarKind::Io && b.host.is_some())
    }

    /// The BAR register `register` (0..6) belongs to, and whether it is the upper half.
    fn bar_at(&self, register: u8) -> Option<(usize, bool)> {
        self.bars.iter().enumerate().find_map(|(i, b)| {
            if b.index == register {
                Some((i, false))
            } else if b.index + 1 == register && matches!(b.kind, BarKind::Mem64 { .. }) {
                Some((i, true))
            } else {
                None
            }
        })
    }

    /// The guest-visible dword at `offset` (dword aligned, below 4096).
    pub(super) fn read<A: ConfigAccess + ?Sized>(&self, access: &A, offset: u16) -> u32 {
        let phys = self.phys;
        match offset {
            regs::VENDOR_DEVICE | regs::COMMAND_STATUS | regs::CLASS_REVISION | regs::SUBSYSTEM => {
                access.read32(phys, offset)
            }
            regs::HEADER_DWORD => {
                let dword = access.read32(phys, offset);
                let mut header = header_type::ENDPOINT;
                if self.multi_function {
                    header |= header_type::MULTI_FUNCTION;
                }
                dword & !0x00ff_0000 | u32::from(header) << 16
            }
            o if (regs::BAR0..regs::BAR0 + 24).contains(&o) => {
                self.read_bar(((o - regs::BAR0) / 4) as u8)
            }
            regs::CAPABILITIES_POINTER => access.read32(phys, offset) & 0xff,
            regs::INTERRUPT => u32::from(self.interrupt_line),
            o if (regs::HEADER_END..regs::CONFIG_SPACE_SIZE).contains(&o) => {
                if let Some(msi) = self.msi.as_ref().filter(|m| m.contains(o)) {
                    msi.read(access, phys, o)
                } else if let Some(msix) = self.msix.as_ref().filter(|m| m.contains(o)) {
                    msix.read(access, phys, o)
                } else {
                    access.read32(phys, o)
                }
            }
            // CardBus CIS, expansion ROM, reserved, extended space.
            _ => 0,
        }
    }

    fn read_bar(&self, register: u8) -> u32 {
        let Some((i, upper)) = self.bar_at(register) else {
            return 0;
        };
        let Some(bar) = self.bars.get(i) else {
            return 0;
        };
        if upper {
            (bar.address >> 32) as u32
        } else {
            bar.address as u32 & !bar.kind.flag_mask() | bar.kind.flags()
        }
    }

    /// Applies a guest write; returns what changed for the kernel to act on.
    pub(super) fn write<A: ConfigAccess + ?Sized>(
        &mut self,
        access: &mut A,
        write: &DwordWrite,
    ) -> Option<Change> {
        let offset = write.offset;
        match offset {
            regs::COMMAND_STATUS => self.write_command(access, write),
            o if (regs::BAR0..regs::BAR0 + 24).contains(&o) => {
                let current = self.read_bar(((o - regs::BAR0) / 4) as u8);
                self.write_bar(((o - regs::BAR0) / 4) as u8, write.merge(current))
            }
            regs::INTERRUPT => {
                if write.mask & 0xff != 0 {
                    self.interrupt_line = write.merge(u32::from(self.interrupt_line)) as u8;
                }
                None
            }
            o if (regs::HEADER_END..regs::CONFIG_SPACE_SIZE).contains(&o) => {
                // Writes to capabilities other than MSI and MSI-X are dropped
                // (power management, PCIe control): see the module comment.
                let phys = self.phys;
                if let Some(msi) = self.msi.as_mut().filter(|m| m.contains(o)) {
                    let current = msi.read(access, phys, o);
                    return msi.write(write, current).map(Change::Msi);
                }
                if let Some(msix) = self.msix.as_mut().filter(|m| m.contains(o)) {
                    let current = msix.read(access, phys, o);
                    return msix.write_capability(write, current).map(Change::from);
                }
                None
            }
            _ => None,
        }
    }

    fn write_command<A: ConfigAccess + ?Sized>(
        &mut self,
        access: &mut A,
        write: &DwordWrite,
    ) -> Option<Change> {
        let physical = access.read32(self.phys, regs::COMMAND_STATUS);
        let old = physical as u16;
        let mut allowed = GUEST_COMMAND;
        if self.io_allowed() {
            allowed |= command::IO_SPACE;
        }
        // Only the COMMAND bytes the guest wrote.
        allowed &= write.mask as u16;
        let new = old & !allowed | write.value as u16 & allowed;
        // STATUS: only bytes the guest wrote; zeros leave its RW1C bits alone.
        let status = write.value & write.mask & 0xffff_0000;
        access.write32(self.phys, regs::COMMAND_STATUS, status | u32::from(new));
        let decode = command::MEMORY_SPACE;
        self.memory_enabled = new & decode != 0;
        (old & decode != new & decode).then_some(Change::MemoryDecode {
            enabled: new & decode != 0,
        })
    }

    fn write_bar(&mut self, register: u8, value: u32) -> Option<Change> {
        let (i, upper) = self.bar_at(register)?;
        let bar = self.bars.get_mut(i)?;
        let before = bar.address;
        let address = if upper {
            bar.address & 0xffff_ffff | u64::from(value) << 32
        } else {
            bar.address & !0xffff_ffff | u64::from(value & !bar.kind.flag_mask())
        };
        // Address bits below the size are read-only zero (6.2.5.1): the
        // all-ones probe reads back the size mask.
        let mut masked = address & !(bar.size - 1);
        if !matches!(bar.kind, BarKind::Mem64 { .. }) {
            masked &= 0xffff_ffff;
        }
        bar.address = masked;
        (masked != before).then_some(Change::BarMoved {
            bar: bar.index,
            guest_address: masked,
        })
    }
}

impl From<MsixChange> for Change {
    fn from(change: MsixChange) -> Change {
        match change {
            MsixChange::Control {
                enabled,
                function_mask,
            } => Change::MsixControl {
                enabled,
                function_mask,
            },
            MsixChange::Vector { vector, entry } => Change::MsixVector { vector, entry },
        }
    }
}
