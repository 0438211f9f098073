//! A partition's virtual console: an emulated PL011 (transmit side, plus
//! the identification registers an OS driver probes). Output is collected
//! into lines so that the partitions' outputs interleave only at line
//! boundaries on the shared physical console.
#![forbid(unsafe_code)]

use alloc::vec::Vec;

/// Bytes of one emulated PL011 register window.
pub const SIZE: u64 = 0x1000;
/// The longest line kept; longer output is split.
const MAX_LINE: usize = 200;

/// PL011 register offsets (ARM DDI 0183).
mod reg {
    pub const DR: u64 = 0x000;
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
    pub const PERIPH_ID0: u64 = 0xfe0;
}

/// FR: receive FIFO empty, transmit FIFO empty.
const FR_RXFE_TXFE: u32 = (1 << 4) | (1 << 7);
/// PL011 peripheral and PrimeCell IDs, 0xfe0..0xffc.
const ID_REGS: [u32; 8] = [0x11, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1];

/// The emulated PL011 of one partition.
#[derive(Default)]
pub struct VirtualUart {
    line: Vec<u8>,
    ibrd: u32,
    fbrd: u32,
    lcr_h: u32,
    cr: u32,
    ifls: u32,
    imsc: u32,
}

impl VirtualUart {
    /// A fresh UART (as after reset).
    pub fn new() -> Self {
        Self {
            cr: 0x300,
            ..Default::default()
        }
    }

    /// A guest read at `offset`. Unknown offsets read as zero.
    pub fn read(&self, offset: u64) -> u32 {
        match offset {
            reg::DR => 0,
            reg::FR => FR_RXFE_TXFE,
            reg::IBRD => self.ibrd,
            reg::FBRD => self.fbrd,
            reg::LCR_H => self.lcr_h,
            reg::CR => self.cr,
            reg::IFLS => self.ifls,
            reg::IMSC => self.imsc,
            // No interrupt is ever raised: TX completes at once, RX is empty.
            reg::RIS | reg::MIS => 0,
            o if (reg::PERIPH_ID0..reg::PERIPH_ID0 + 32).contains(&o) && o % 4 == 0 => {
                ID_REGS[((o - reg::PERIPH_ID0) / 4) as usize]
            }
            _ => 0,
        }
    }

    /// A guest write of `value` at `offset`; returns a finished line of
    /// output (without its newline) if this write completed one.
    pub fn write(&mut self, offset: u64, value: u32) -> Option<Vec<u8>> {
        match offset {
            reg::DR => return self.put(value as u8),
            reg::IBRD => self.ibrd = value & 0xffff,
            reg::FBRD => self.fbrd = value & 0x3f,
            reg::LCR_H => self.lcr_h = value & 0xff,
            reg::CR => self.cr = value & 0xff87,
            reg::IFLS => self.ifls = value & 0x3f,
            reg::IMSC => self.imsc = value & 0x7ff,
            reg::ICR => {}
            _ => {}
        }
        None
    }

    fn put(&mut self, byte: u8) -> Option<Vec<u8>> {
        match byte {
            b'\n' => Some(core::mem::take(&mut self.line)),
            b'\r' => None,
            b => {
                // Keep the console readable: control bytes become '?'.
                self.line.push(if b == b'\t' || (0x20..0x7f).contains(&b) {
                    b
                } else {
                    b'?'
                });
                (self.line.len() >= MAX_LINE).then(|| core::mem::take(&mut self.line))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(u: &mut VirtualUart, s: &str) -> Vec<Vec<u8>> {
        s.bytes()
            .filter_map(|b| u.write(reg::DR, b as u32))
            .collect()
    }

    #[test]
    fn output_is_collected_into_lines() {
        let mut u = VirtualUart::new();
        assert_eq!(send(&mut u, "hello\r\nworld"), vec![b"hello".to_vec()]);
        assert_eq!(send(&mut u, "\n"), vec![b"world".to_vec()]);
    }

    #[test]
    fn long_lines_are_split_and_control_bytes_masked() {
        let mut u = VirtualUart::new();
        let lines = send(&mut u, &"x".repeat(MAX_LINE + 5));
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].len(), MAX_LINE);
        assert_eq!(send(&mut u, "\x1b[0m\n")[0], b"xxxxx?[0m".to_vec());
    }

    #[test]
    fn flags_say_ready_and_ids_identify_a_pl011() {
        let u = VirtualUart::new();
        assert_eq!(u.read(reg::FR) & (1 << 5), 0, "TX never full");
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
}
