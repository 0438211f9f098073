//! The PL011 UART: the hypervisor's own console (transmit polled, receive
//! by interrupt once [`Pl011::enable_receive_interrupt`] is called).

use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::registers::{ReadOnly, ReadWrite, WriteOnly};
use tock_registers::{register_bitfields, register_structs};

register_bitfields! {u32,
    /// UARTDR, the data register (DDI 0183, 3.3.1).
    DR [
        /// The received or transmitted byte.
        DATA OFFSET(0) NUMBITS(8) [],
    ],
    /// UARTFR, the flag register (DDI 0183, 3.3.3).
    FR [
        /// RXFE: the receive FIFO is empty.
        RXFE OFFSET(4) NUMBITS(1) [],
        /// TXFF: the transmit FIFO is full.
        TXFF OFFSET(5) NUMBITS(1) [],
    ],
    /// UARTIMSC/UARTICR: the interrupt mask and clear registers share
    /// their layout (DDI 0183, 3.3.10 and 3.3.13).
    INT [
        /// RXIM/RXIC: receive.
        RX OFFSET(4) NUMBITS(1) [],
        /// RTIM/RTIC: receive timeout.
        RT OFFSET(6) NUMBITS(1) [],
        /// FEIM/FEIC: framing error.
        FE OFFSET(7) NUMBITS(1) [],
        /// PEIM/PEIC: parity error.
        PE OFFSET(8) NUMBITS(1) [],
        /// BEIM/BEIC: break error.
        BE OFFSET(9) NUMBITS(1) [],
        /// OEIM/OEIC: overrun error.
        OE OFFSET(10) NUMBITS(1) [],
    ],
}

register_structs! {
    /// PL011 registers (ARM DDI 0183).
    Registers {
        (0x00 => dr: ReadWrite<u32, DR::Register>),
        (0x04 => _reserved0),
        (0x18 => fr: ReadOnly<u32, FR::Register>),
        (0x1c => _reserved1),
        (0x38 => imsc: ReadWrite<u32, INT::Register>),
        (0x3c => _reserved2),
        (0x44 => icr: WriteOnly<u32, INT::Register>),
        (0x48 => @END),
    }
}

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
        let receive = INT::RX::SET + INT::RT::SET;
        let errors = INT::FE::SET + INT::PE::SET + INT::BE::SET + INT::OE::SET;
        self.regs().icr.write(receive + errors);
        self.regs().imsc.write(receive);
    }

    /// Takes one received byte, if any (reading the data register also
    /// ends the receive interrupt once the FIFO is empty).
    pub fn get(&mut self) -> Option<u8> {
        if self.regs().fr.is_set(FR::RXFE) {
            return None;
        }
        // Bits 8-11 are the byte's error flags; a garbled byte is still input.
        Some(self.regs().dr.read(DR::DATA) as u8)
    }

    /// Sends one byte, waiting for room in the FIFO (bounded: a wedged UART
    /// drops output rather than hanging the hypervisor).
    pub fn put(&mut self, byte: u8) {
        for _ in 0..1_000_000 {
            if !self.regs().fr.is_set(FR::TXFF) {
                self.regs().dr.write(DR::DATA.val(u32::from(byte)));
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
