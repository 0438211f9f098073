//! The BCM2835 auxiliary "mini" UART (BCM2711 ARM Peripherals, 2.2), the
//! console the Raspberry Pi 3/4 trees name in `stdout-path`
//! (`brcm,bcm2835-aux-uart`, `reg` at AUX_MU_IO_REG, 0xfe215040 on the Pi 4).
//!
//! Transmit and receive are polled. The firmware (or QEMU) has set the baud
//! rate from the core clock; the driver leaves the line settings alone,
//! since the baud divisor follows the VPU clock the hypervisor does not own.
//! Receive interrupts are not used: the datasheet and its errata disagree
//! on which AUX_MU_IER_REG bit enables them (QEMU follows the datasheet,
//! bit 1; Linux's driver and the errata use bit 0), so the console reads
//! this UART only when polled.

use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::registers::{ReadOnly, ReadWrite};
use tock_registers::{register_bitfields, register_structs};

register_bitfields! [u32,
    /// AUX_MU_LSR_REG: line status.
    pub Lsr [
        /// The receive FIFO holds at least one byte.
        DATA_READY OFFSET(0) NUMBITS(1) [],
        /// The receive FIFO overflowed (cleared by reading).
        RX_OVERRUN OFFSET(1) NUMBITS(1) [],
        /// The transmit FIFO can accept at least one byte.
        TX_EMPTY OFFSET(5) NUMBITS(1) [],
        /// The transmit FIFO is empty and the transmitter idle.
        TX_IDLE OFFSET(6) NUMBITS(1) [],
    ],
    /// AUX_MU_CNTL_REG: extra control.
    pub Cntl [
        /// The receiver is enabled.
        RX_ENABLE OFFSET(0) NUMBITS(1) [],
        /// The transmitter is enabled.
        TX_ENABLE OFFSET(1) NUMBITS(1) [],
    ],
];

register_structs! {
    /// The mini UART's registers from AUX_MU_IO_REG (aux block + 0x40).
    pub Registers {
        /// AUX_MU_IO_REG: one byte in or out (DLAB clear).
        (0x00 => io: ReadWrite<u32>),
        /// AUX_MU_IER_REG: interrupt enables (left at zero).
        (0x04 => ier: ReadWrite<u32>),
        /// AUX_MU_IIR_REG: interrupt identify, FIFO clear.
        (0x08 => iir: ReadWrite<u32>),
        /// AUX_MU_LCR_REG: data size, break, DLAB.
        (0x0c => lcr: ReadWrite<u32>),
        /// AUX_MU_MCR_REG: RTS.
        (0x10 => mcr: ReadWrite<u32>),
        /// AUX_MU_LSR_REG: line status.
        (0x14 => lsr: ReadOnly<u32, Lsr::Register>),
        /// AUX_MU_MSR_REG: CTS.
        (0x18 => msr: ReadOnly<u32>),
        /// AUX_MU_SCRATCH.
        (0x1c => scratch: ReadWrite<u32>),
        /// AUX_MU_CNTL_REG: receiver and transmitter enables, flow control.
        (0x20 => cntl: ReadWrite<u32, Cntl::Register>),
        /// AUX_MU_STAT_REG: FIFO levels and line state.
        (0x24 => stat: ReadOnly<u32>),
        /// AUX_MU_BAUD_REG: the 16-bit baud divisor.
        (0x28 => baud: ReadWrite<u32>),
        (0x2c => @END),
    }
}

/// Polls of AUX_MU_LSR_REG before a byte is dropped: a wedged or disabled
/// transmitter drops output rather than hanging the hypervisor.
const TX_POLLS: usize = 1_000_000;

/// A mini UART whose registers are mapped at a fixed address.
pub struct MiniUart {
    regs: *const Registers,
}

// SAFETY: the UART is only reached through the console lock.
unsafe impl Send for MiniUart {}

impl MiniUart {
    /// A driver for the mini UART whose AUX_MU_IO_REG is at `base`.
    ///
    /// # Safety
    /// `base` must be the address of a mini UART's AUX_MU_IO_REG, mapped as
    /// device memory (or the MMU off), and nothing else may drive this UART.
    pub const unsafe fn new(base: usize) -> Self {
        Self {
            regs: base as *const Registers,
        }
    }

    fn regs(&self) -> &Registers {
        // SAFETY: `new`'s contract makes `regs` a valid register block.
        unsafe { &*self.regs }
    }

    /// Whether the transmitter is enabled (firmware that did not set the
    /// UART up leaves it off, and then nothing can be printed).
    pub fn is_transmitting(&self) -> bool {
        self.regs().cntl.is_set(Cntl::TX_ENABLE)
    }

    /// Takes one received byte, if any.
    pub fn get(&mut self) -> Option<u8> {
        if !self.regs().lsr.is_set(Lsr::DATA_READY) {
            return None;
        }
        Some(self.regs().io.get() as u8)
    }

    /// Sends one byte, waiting (bounded) for room in the transmit FIFO.
    pub fn put(&mut self, byte: u8) {
        for _ in 0..TX_POLLS {
            if self.regs().lsr.is_set(Lsr::TX_EMPTY) {
                self.regs().io.set(u32::from(byte));
                return;
            }
            core::hint::spin_loop();
        }
    }
}

impl core::fmt::Write for MiniUart {
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
