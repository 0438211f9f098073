//! The console UART, whichever driver family the tree's `stdout-path`
//! node is ([`UartModel`]): the PL011 or the BCM2835 mini UART.

use super::bcm2835_aux::MiniUart;
use super::pl011::Pl011;

/// The UART families this module drives (the kernel picks one from the
/// device tree's console).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UartModel {
    /// ARM PrimeCell PL011.
    Pl011,
    /// The BCM2835 auxiliary "mini" UART.
    Bcm2835Aux,
}

/// A console UART with a driver.
pub enum Uart {
    /// ARM PL011 (QEMU virt, the Pi's second UART).
    Pl011(Pl011),
    /// BCM2835 mini UART (the Raspberry Pi trees' `stdout-path`).
    MiniUart(MiniUart),
}

impl Uart {
    /// A driver for the UART of family `model` at `base`.
    ///
    /// # Safety
    /// `base` must be the register frame of a UART of that family, mapped
    /// as device memory (or the MMU off), that nothing else drives.
    pub unsafe fn new(model: UartModel, base: usize) -> Self {
        match model {
            // SAFETY: forwarded from the caller.
            UartModel::Pl011 => Self::Pl011(unsafe { Pl011::new(base) }),
            // SAFETY: forwarded from the caller.
            UartModel::Bcm2835Aux => Self::MiniUart(unsafe { MiniUart::new(base) }),
        }
    }

    /// Sends one byte (bounded wait for room).
    pub fn put(&mut self, byte: u8) {
        match self {
            Self::Pl011(uart) => uart.put(byte),
            Self::MiniUart(uart) => uart.put(byte),
        }
    }

    /// Takes one received byte, if any.
    pub fn get(&mut self) -> Option<u8> {
        match self {
            Self::Pl011(uart) => uart.get(),
            Self::MiniUart(uart) => uart.get(),
        }
    }

    /// Raises the UART's interrupt when bytes arrive, where the driver
    /// supports it (the mini UART's console input is not interrupt-driven:
    /// see `bcm2835_aux`).
    pub fn enable_receive_interrupt(&mut self) {
        if let Self::Pl011(uart) = self {
            uart.enable_receive_interrupt();
        }
    }
}

impl core::fmt::Write for Uart {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        match self {
            Self::Pl011(uart) => uart.write_str(s),
            Self::MiniUart(uart) => uart.write_str(s),
        }
    }
}
