//! A partition's virtual console: an emulated PL011 (ARM DDI 0183) with
//! the registers an OS driver uses: data, flags, the identification
//! registers, and the interrupt registers with a receive FIFO, so a guest
//! such as Linux can drive it by interrupts.
//!
//! Transmitted bytes go into the partition's output ring
//! ([`crate::console::output`], [`TX_RING`] bytes: the transmit FIFO),
//! which the hypervisor drains onto the shared physical console a line at
//! a time, fairly between partitions. The flags and the transmit
//! interrupt follow its fill as a PL011's follow its FIFO: TXFF while it is
//! full, the transmit interrupt while it is at or below the IFLS trigger
//! level (a fraction of the ring, so a driver that writes half a FIFO per
//! interrupt without looking at TXFF, as Linux's does, always has room).
//! A data write while it is full is not taken ([`Transmit::Full`]): the
//! kernel makes room and repeats it, the vCPU waiting as on a bus wait
//! state, so nothing is lost even from a guest that never reads TXFF.
//! Received bytes wait in a 32-byte FIFO; the
//! receive and receive-timeout interrupts are raised while it holds data.
//! Typed input beyond what the FIFO holds waits in a backlog kept by the
//! hypervisor (up to [`INPUT_BACKLOG`] bytes) and moves into the FIFO as
//! the guest reads: a paste reaches the guest whole and in order, at the
//! pace its driver drains the FIFO, as if the terminal honoured flow
//! control. Only a guest that stops reading loses input (an overrun).
//! [`VirtualUart::irq_line`] is the level of the UART's interrupt output,
//! which the kernel drives into the partition's virtual GIC.
//!
//! The ring is framed into lines so that the partitions' outputs
//! interleave only at line boundaries on the shared physical console.
#![forbid(unsafe_code)]

pub use crate::console::output::TX_RING;
use crate::console::output::{OutputRing, Unit};
use alloc::collections::VecDeque;
use alloc::vec::Vec;

/// Bytes of one emulated PL011 register window.
pub const SIZE: u64 = 0x1000;
/// Depth of the receive FIFO (a PL011's is 32 entries).
pub const RX_FIFO: usize = 32;
/// Typed bytes held for a partition beyond its FIFO (flow control the
/// physical console does not have): enough for any paste a person makes.
pub const INPUT_BACKLOG: usize = 4096;

/// PL011 register offsets (ARM DDI 0183).
mod reg {
    pub const DR: u64 = 0x000;
    pub const RSR: u64 = 0x004;
    pub const FR: u64 = 0x018;
    pub const IBRD: u64 = 0x024;
    pub const FBRD: u64 = 0x028;
    pub const LCR_H: u64 = 0x02c;
    pub const CR: u64 = 0x030;
    pub const IFLS: u64 = 0x034;
    pub const IMSC: u64 = 0x038;
    pub const RIS: u64 = 0x03c;
    pub const MIS: u64 = 0x040;
    pub const ICR: u64 = 0x044;
    pub const DMACR: u64 = 0x048;
    pub const PERIPH_ID0: u64 = 0xfe0;
}

/// FR bits.
mod fr {
    pub const RXFE: u32 = 1 << 4;
    pub const TXFF: u32 = 1 << 5;
    pub const RXFF: u32 = 1 << 6;
    pub const TXFE: u32 = 1 << 7;
}

/// Interrupt bits of IMSC, RIS, MIS and ICR.
pub mod int {
    /// Receive.
    pub const RX: u32 = 1 << 4;
    /// Transmit.
    pub const TX: u32 = 1 << 5;
    /// Receive timeout.
    pub const RT: u32 = 1 << 6;
    /// Overrun error.
    pub const OE: u32 = 1 << 10;
    /// Every implemented interrupt bit.
    pub const ALL: u32 = 0x7ff;
}

/// RSR/ECR overrun error bit (and DR bit 11 for the byte after an overrun).
const RSR_OE: u32 = 1 << 3;
/// PL011 peripheral and PrimeCell IDs, 0xfe0..0xffc.
const ID_REGS: [u32; 8] = [0x11, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1];

/// What a guest's register write did to the transmit side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transmit {
    /// Not a data write.
    Nothing,
    /// The byte was taken; `line`: a finished line waits to be shown.
    Taken {
        /// A finished line waits in the ring.
        line: bool,
    },
    /// The ring is full: the byte was not taken (make room, write again).
    Full,
}

/// The emulated PL011 of one partition.
#[derive(Default)]
pub struct VirtualUart {
    /// Transmitted bytes not shown yet (the TX FIFO).
    tx: OutputRing,
    /// Flag reads that saw the TX FIFO full (a guest waiting for room).
    tx_full_reads: u64,
    /// Data writes made while the TX FIFO was full (the vCPU waited).
    tx_full_writes: u64,
    /// Bytes and lines shown on the physical console.
    shown_bytes: u64,
    shown_lines: u64,
    /// The receive FIFO the guest sees (at most [`RX_FIFO`] bytes).
    rx: VecDeque<u8>,
    /// Typed bytes waiting for room in the FIFO, oldest first.
    backlog: VecDeque<u8>,
    ibrd: u32,
    fbrd: u32,
    lcr_h: u32,
    cr: u32,
    ifls: u32,
    imsc: u32,
    /// Latched error interrupts (overrun), cleared by ICR.
    error_ris: u32,
    /// Receive status (overrun), cleared by a write to RSR/ECR.
    rsr: u32,
    /// Bytes dropped because the FIFO and the backlog were full.
    overruns: u64,
}

impl VirtualUart {
    /// A fresh UART (as after reset).
    pub fn new() -> Self {
        Self {
            cr: 0x300,
            ifls: 0x12,
            ..Default::default()
        }
    }

    /// The raw interrupt status: transmit while the TX FIFO is at or
    /// below its trigger level, receive and receive timeout while bytes
    /// wait, latched errors.
    fn ris(&self) -> u32 {
        let rx = if self.rx.is_empty() {
            0
        } else {
            int::RX | int::RT
        };
        let tx = if self.tx.len() <= self.tx_trigger() {
            int::TX
        } else {
            0
        };
        tx | rx | self.error_ris
    }

    /// The TX FIFO fill at or below which the transmit interrupt is raised:
    /// IFLS.TXIFLSEL's fraction of the ring (1/8 to 7/8; reserved values
    /// as 1/2, the reset value).
    fn tx_trigger(&self) -> usize {
        let eighths = match self.ifls & 0x7 {
            0 => 1,
            1 => 2,
            3 => 6,
            4 => 7,
            _ => 4,
        };
        TX_RING / 8 * eighths
    }

    /// The level of the UART's combined interrupt output.
    pub fn irq_line(&self) -> bool {
        self.ris() & self.imsc != 0
    }

    /// A guest read at `offset` (a data read takes the byte from the FIFO).
    /// Unknown offsets read as zero.
    pub fn read(&mut self, offset: u64) -> u32 {
        match offset {
            reg::DR => match self.rx.pop_front() {
                Some(b) => {
                    // The FIFO has room again: the oldest held byte moves in.
                    if let Some(next) = self.backlog.pop_front() {
                        self.rx.push_back(next);
                    }
                    u32::from(b)
                }
                None => 0,
            },
            reg::RSR => self.rsr,
            reg::FR => {
                let mut v = 0;
                if self.tx.is_full() {
                    v |= fr::TXFF;
                    self.tx_full_reads += 1;
                }
                // An unfinished line is the console's to hold, not the
                // FIFO's: a driver waiting for TXFE must not wait for it.
                if !self.tx.has_unit(false) {
                    v |= fr::TXFE;
                }
                if self.rx.is_empty() {
                    v |= fr::RXFE;
                }
                if self.rx.len() >= RX_FIFO {
                    v |= fr::RXFF;
                }
                v
            }
            reg::IBRD => self.ibrd,
            reg::FBRD => self.fbrd,
            reg::LCR_H => self.lcr_h,
            reg::CR => self.cr,
            reg::IFLS => self.ifls,
            reg::IMSC => self.imsc,
            reg::RIS => self.ris(),
            reg::MIS => self.ris() & self.imsc,
            o if (reg::PERIPH_ID0..reg::PERIPH_ID0 + 32).contains(&o) && o % 4 == 0 => {
                ID_REGS[((o - reg::PERIPH_ID0) / 4) as usize]
            }
            _ => 0,
        }
    }

    /// A guest write of `value` at `offset`; says what it did to the
    /// transmit side (a data byte is not taken while the ring is full).
    pub fn write(&mut self, offset: u64, value: u32) -> Transmit {
        match offset {
            reg::DR => {
                if !self.tx.push(value as u8) {
                    self.tx_full_writes += 1;
                    return Transmit::Full;
                }
                return Transmit::Taken {
                    line: self.tx.has_unit(false),
                };
            }
            reg::RSR => self.rsr = 0,
            reg::IBRD => self.ibrd = value & 0xffff,
            reg::FBRD => self.fbrd = value & 0x3f,
            reg::LCR_H => self.lcr_h = value & 0xff,
            reg::CR => self.cr = value & 0xff87,
            reg::IFLS => self.ifls = value & 0x3f,
            reg::IMSC => self.imsc = value & int::ALL,
            // Level sources (TX, RX, RT) follow the FIFOs; only latched
            // errors are cleared.
            reg::ICR => self.error_ris &= !value,
            // No DMA: the request bits read as zero.
            reg::DMACR => {}
            _ => {}
        }
        Transmit::Nothing
    }

    /// A byte typed for this partition: into the FIFO if it has room and
    /// nothing older waits, else into the backlog. Returns false (and
    /// latches an overrun, as the hardware would) if both were full.
    pub fn receive(&mut self, byte: u8) -> bool {
        if self.rx.len() < RX_FIFO && self.backlog.is_empty() {
            self.rx.push_back(byte);
            return true;
        }
        if self.backlog.len() < INPUT_BACKLOG {
            self.backlog.push_back(byte);
            return true;
        }
        self.overruns += 1;
        self.rsr |= RSR_OE;
        self.error_ris |= int::OE;
        false
    }

    /// Bytes typed for the guest that it has not read yet (FIFO and backlog).
    pub fn unread(&self) -> usize {
        self.rx.len() + self.backlog.len()
    }

    /// Bytes dropped because the FIFO and the backlog were full.
    pub fn overruns(&self) -> u64 {
        self.overruns
    }

    /// Moves the next line of output into `out` (with `partial`, the
    /// unfinished line if there is no finished one: for a console that
    /// shows this partition's output as it comes, e.g. a shell prompt).
    /// The bytes are raw: what reaches the physical terminal is the
    /// console multiplexer's decision (`console::mux::sanitize`).
    pub fn take_output(&mut self, partial: bool, out: &mut Vec<u8>) -> Option<Unit> {
        let unit = self.tx.take(partial, out)?;
        self.shown_bytes += out.len() as u64;
        if unit == Unit::Line {
            self.shown_lines += 1;
        }
        Some(unit)
    }

    /// Whether [`Self::take_output`] would move something.
    pub fn has_output(&self, partial: bool) -> bool {
        self.tx.has_unit(partial)
    }

    /// Whether the TX FIFO has room for a byte.
    pub fn tx_has_room(&self) -> bool {
        !self.tx.is_full()
    }

    /// The transmit side's counters.
    pub fn tx_stats(&self) -> TxStats {
        TxStats {
            shown_lines: self.shown_lines,
            shown_bytes: self.shown_bytes,
            full_reads: self.tx_full_reads,
            full_writes: self.tx_full_writes,
            high_water: self.tx.high_water(),
            held: self.tx.len(),
        }
    }
}

/// What a partition's console output did (the `Ctrl-]` counters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxStats {
    /// Lines shown on the physical console.
    pub shown_lines: u64,
    /// Bytes shown (newlines not counted).
    pub shown_bytes: u64,
    /// Flag reads that saw the TX FIFO full.
    pub full_reads: u64,
    /// Data writes made while it was full (each one a wait of the vCPU).
    pub full_writes: u64,
    /// The most bytes the TX FIFO held at once.
    pub high_water: usize,
    /// Bytes it holds now.
    pub held: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `s` and returns the finished lines it made (as the console
    /// drain would take them).
    fn send(u: &mut VirtualUart, s: &str) -> Vec<Vec<u8>> {
        for b in s.bytes() {
            assert!(matches!(u.write(reg::DR, b as u32), Transmit::Taken { .. }));
        }
        let mut lines = Vec::new();
        let mut line = Vec::new();
        while u.take_output(false, &mut line).is_some() {
            lines.push(core::mem::take(&mut line));
        }
        lines
    }

    #[test]
    fn output_is_collected_into_lines() {
        let mut u = VirtualUart::new();
        assert_eq!(send(&mut u, "hello\r\nworld"), vec![b"hello".to_vec()]);
        assert_eq!(send(&mut u, "\n"), vec![b"world".to_vec()]);
    }

    #[test]
    fn long_lines_are_split_and_bytes_kept_raw() {
        let mut u = VirtualUart::new();
        let max = crate::console::output::MAX_LINE;
        let lines = send(&mut u, &"x".repeat(max + 5));
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].len(), max);
        assert_eq!(
            send(&mut u, "\x1b[0m\x01\x7f\n")[0],
            b"xxxxx\x1b[0m\x01\x7f".to_vec()
        );
    }

    #[test]
    fn flags_say_ready_and_ids_identify_a_pl011() {
        let mut u = VirtualUart::new();
        assert_eq!(u.read(reg::FR) & fr::TXFF, 0, "TX FIFO empty after reset");
        assert_eq!(u.read(0xfe0), 0x11);
        assert_eq!(u.read(0xffc), 0xb1);
        assert_eq!(u.read(0x800), 0);
    }

    #[test]
    fn control_registers_hold_their_implemented_bits() {
        let mut u = VirtualUart::new();
        u.write(reg::CR, 0xffff_ffff);
        assert_eq!(u.read(reg::CR), 0xff87);
        u.write(reg::IMSC, 0x50);
        assert_eq!(u.read(reg::IMSC), 0x50);
    }

    #[test]
    fn the_transmit_interrupt_follows_its_mask() {
        let mut u = VirtualUart::new();
        assert!(!u.irq_line(), "everything masked after reset");
        assert_eq!(u.read(reg::RIS) & int::TX, int::TX, "TX FIFO empty");
        u.write(reg::IMSC, int::TX);
        assert!(u.irq_line());
        assert_eq!(u.read(reg::MIS), int::TX);
        // Linux masks TX once it has nothing left to send.
        u.write(reg::IMSC, int::RX | int::RT);
        assert!(!u.irq_line());
        assert_eq!(u.read(reg::MIS), 0);
    }

    #[test]
    fn received_bytes_raise_rx_until_read() {
        let mut u = VirtualUart::new();
        u.write(reg::IMSC, int::RX | int::RT);
        assert_eq!(u.read(reg::FR) & fr::RXFE, fr::RXFE);
        assert!(u.receive(b'l') && u.receive(b's'));
        assert!(u.irq_line());
        assert_eq!(u.read(reg::MIS), int::RX | int::RT);
        assert_eq!(u.read(reg::FR) & fr::RXFE, 0);
        // ICR does not clear a level source: the FIFO still holds data.
        u.write(reg::ICR, int::ALL);
        assert!(u.irq_line());
        assert_eq!(u.read(reg::DR), u32::from(b'l'));
        assert_eq!(u.read(reg::DR), u32::from(b's'));
        assert!(!u.irq_line());
        assert_eq!(u.read(reg::FR) & fr::RXFE, fr::RXFE);
        assert_eq!(u.read(reg::DR), 0, "empty FIFO reads zero");
    }

    #[test]
    fn a_paste_longer_than_the_fifo_arrives_whole_and_in_order() {
        let mut u = VirtualUart::new();
        let paste: Vec<u8> = (0..200u32).map(|i| b'a' + (i % 26) as u8).collect();
        for &b in &paste {
            assert!(u.receive(b));
        }
        assert_eq!(u.unread(), 200);
        assert_eq!(u.overruns(), 0);
        // The guest sees a full 32-entry FIFO, never more.
        assert_eq!(u.read(reg::FR) & fr::RXFF, fr::RXFF);
        let mut got = Vec::new();
        // A driver reads until the FIFO says empty, as Linux's does on each
        // receive interrupt; the backlog refills it as it goes.
        while u.read(reg::FR) & fr::RXFE == 0 {
            got.push(u.read(reg::DR) as u8);
        }
        assert_eq!(got, paste);
        assert_eq!(u.unread(), 0);
    }

    #[test]
    fn bytes_typed_while_the_backlog_drains_keep_their_order() {
        let mut u = VirtualUart::new();
        for b in 0..40u8 {
            u.receive(b);
        }
        assert_eq!(u.read(reg::DR), 0);
        // Room in the FIFO now, but older bytes still wait in the backlog.
        u.receive(40);
        let rest: Vec<u32> = (0..40).map(|_| u.read(reg::DR)).collect();
        assert_eq!(rest, (1..=40).collect::<Vec<u32>>());
    }

    #[test]
    fn a_guest_that_never_reads_overruns_once_the_backlog_is_full() {
        let mut u = VirtualUart::new();
        for i in 0..RX_FIFO + INPUT_BACKLOG {
            assert!(u.receive(i as u8));
        }
        assert_eq!(u.read(reg::FR) & fr::RXFF, fr::RXFF);
        assert!(!u.receive(0xaa));
        assert_eq!(u.overruns(), 1);
        assert_eq!(u.read(reg::RIS) & int::OE, int::OE);
        assert_eq!(u.read(reg::RSR), RSR_OE);
        u.write(reg::IMSC, int::OE);
        assert!(u.irq_line());
        u.write(reg::ICR, int::OE);
        u.write(reg::RSR, 0);
        assert!(!u.irq_line());
        assert_eq!(u.read(reg::RSR), 0);
        // The bytes before the overrun are all still there, in order.
        for i in 0..RX_FIFO + INPUT_BACKLOG {
            assert_eq!(u.read(reg::DR), (i as u8) as u32);
        }
        assert_eq!(u.read(reg::FR) & fr::RXFE, fr::RXFE);
    }

    #[test]
    fn the_unfinished_line_can_be_taken() {
        let mut u = VirtualUart::new();
        assert!(send(&mut u, "~ # ").is_empty());
        let mut partial = Vec::new();
        assert_eq!(u.take_output(true, &mut partial), Some(Unit::Partial));
        assert_eq!(partial, b"~ # ".to_vec());
        assert_eq!(send(&mut u, "ls\n"), vec![b"ls".to_vec()]);
    }

    #[test]
    fn a_full_tx_fifo_says_so_refuses_the_byte_and_drops_the_tx_interrupt() {
        let mut u = VirtualUart::new();
        u.write(reg::IMSC, int::TX);
        // Reset IFLS: the transmit interrupt at or below half the ring.
        for i in 0..TX_RING / 2 {
            assert_eq!(
                u.write(reg::DR, u32::from(b'a' + (i % 26) as u8)),
                Transmit::Taken {
                    line: i + 1 >= crate::console::output::MAX_LINE
                }
            );
        }
        assert!(u.irq_line(), "at the trigger level");
        u.write(reg::DR, u32::from(b'b'));
        assert!(!u.irq_line(), "above the trigger level");
        assert_eq!(u.read(reg::RIS) & int::TX, 0);
        while u.tx_has_room() {
            u.write(reg::DR, u32::from(b'c'));
        }
        assert_eq!(u.read(reg::FR) & fr::TXFF, fr::TXFF);
        assert_eq!(u.write(reg::DR, u32::from(b'd')), Transmit::Full);
        assert_eq!(u.tx_stats().full_writes, 1);
        assert_eq!(u.tx_stats().full_reads, 1);
        assert_eq!(u.tx_stats().held, TX_RING);
        // The console takes lines: room again, and once at or below the
        // trigger level the interrupt asks for more.
        let mut line = Vec::new();
        u.take_output(false, &mut line);
        assert_eq!(u.read(reg::FR) & fr::TXFF, 0);
        assert_eq!(
            u.write(reg::DR, u32::from(b'd')),
            Transmit::Taken { line: true }
        );
        while u.tx_stats().held > TX_RING / 2 {
            line.clear();
            u.take_output(false, &mut line);
        }
        assert!(u.irq_line());
        // A lower trigger level (IFLS.TXIFLSEL = 0: 1/8) waits for more room.
        u.write(reg::IFLS, 0);
        assert!(!u.irq_line());
    }

    #[test]
    fn an_unfinished_line_does_not_keep_the_tx_fifo_busy() {
        let mut u = VirtualUart::new();
        assert_eq!(u.read(reg::FR) & fr::TXFE, fr::TXFE);
        assert_eq!(
            u.write(reg::DR, u32::from(b'$')),
            Transmit::Taken { line: false }
        );
        assert_eq!(
            u.read(reg::FR) & fr::TXFE,
            fr::TXFE,
            "a prompt is held, not queued"
        );
        assert_eq!(
            u.write(reg::DR, u32::from(b'\n')),
            Transmit::Taken { line: true }
        );
        assert_eq!(u.read(reg::FR) & fr::TXFE, 0);
        let mut line = Vec::new();
        assert_eq!(u.take_output(false, &mut line), Some(Unit::Line));
        assert_eq!(line, b"$");
        assert_eq!(u.read(reg::FR) & (fr::TXFE | fr::TXFF), fr::TXFE);
        assert_eq!(u.tx_stats().shown_lines, 1);
    }
}
