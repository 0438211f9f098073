//! The PL011 UART: the hypervisor's own console (transmit polled, receive
//! by interrupt once [`Pl011::enable_receive_interrupt`] is called).

use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::register_structs;
use tock_registers::registers::{ReadOnly, ReadWrite, WriteOnly};

register_structs! {
    /// PL011 registers (ARM DDI 0183).
    Registers {
        (0x00 => dr: ReadWrite<u32>),
        (0x04 => _reserved0),
        (0x18 => fr: ReadOnly<u32>),
        (0x1c => _reserved1),
        (0x38 => imsc: ReadWrite<u32>),
        (0x3c => _reserved2),
        (0x44 => icr: WriteOnly<u32>),
        (0x48 => @END),
    }
}

/// FR.TXFF: the transmit FIFO is full.
const FR_TXFF: u32 = 1 << 5;
/// FR.RXFE: the receive FIFO is empty.
const FR_RXFE: u32 = 1 << 4;
/// Receive and receive-timeout interrupts (IMSC, ICR).
const INT_RX_RT: u32 = (1 << 4) | (1 << 6);
/// Overrun, break, parity and framing error interrupts.
const INT_ERRORS: u32 = 0xf << 7;

/// A PL011 whose registers are mapped at a fixed address.
pub struct Pl011 {
    regs: *const Registers,
}

// SAFETY: the UART is only reached through the console lock.
unsafe impl Send for Pl011 {}

impl Pl011 {
    /// A driver for the PL011 at `base`.
    ///
    /// # Safety
    /// `base` must be the address of a PL011's registers, mapped as device
    /// memory (or the MMU off), and nothing else may drive this UART.
    pub const unsafe fn new(base: usize) -> Self {
        Self {
            regs: base as *const Registers,
        }
    }

    fn regs(&self) -> &Registers {
        // SAFETY: `new`'s contract makes `regs` a valid register block.
        unsafe { &*self.regs }
    }

    /// Raises the UART's interrupt when bytes arrive (or wait, for the
    /// receive timeout), leaving the firmware's line settings alone.
    pub fn enable_receive_interrupt(&mut self) {
        self.regs().icr.set(INT_RX_RT | INT_ERRORS);
        self.regs().imsc.set(INT_RX_RT);
    }

    /// Takes one received byte, if any (reading the data register also
    /// ends the receive interrupt once the FIFO is empty).
    pub fn get(&mut self) -> Option<u8> {
        if self.regs().fr.get() & FR_RXFE != 0 {
            return None;
        }
        // Bits 8-11 are the byte's error flags; a garbled byte is still input.
        Some(self.regs().dr.get() as u8)
    }

    /// Sends one byte, waiting for room in the FIFO (bounded: a wedged UART
    /// drops output rather than hanging the hypervisor).
    pub fn put(&mut self, byte: u8) {
        for _ in 0..1_000_000 {
            if self.regs().fr.get() & FR_TXFF == 0 {
                self.regs().dr.set(byte as u32);
                return;
            }
            core::hint::spin_loop();
        }
    }
}

impl core::fmt::Write for Pl011 {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                self.put(b'\r');
            }
            self.put(b);
        }
        Ok(())
    }
}
