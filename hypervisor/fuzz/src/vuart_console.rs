//! The virtual PL011 (`vuart.rs`) and the console multiplexer
//! (`console_mux.rs`): any sequence of guest register accesses, typed
//! bytes and guest output shown on the shared console.
//!
//! Asserts, against a model of the typed bytes not yet read (the
//! guest-visible FIFO plus the hypervisor's backlog behind it): reads
//! return the bytes typed, in order, and nothing else; nothing is refused
//! until `RX_FIFO + INPUT_BACKLOG` bytes wait, and every byte refused is
//! counted as an overrun; the FIFO the guest sees reads full at `RX_FIFO`;
//! the
//! flag, raw and masked interrupt registers and the interrupt line agree;
//! output lines never carry a newline and stay bounded. On the console:
//! the focus always names a partition, the switch and counter keys are
//! never delivered, and a guest's bytes reach the terminal only as
//! printable ASCII (plus tab, and backspace/bell/ESC for the partition
//! being typed into), every line ending in CR LF.

use std::collections::VecDeque;

use hypervisor::console::mux::{ConsoleMux, Input as Typed, COUNTERS_KEY, SWITCH_KEY};
use hypervisor::console::output::Unit;
use hypervisor::guest::vuart::{int, Transmit, VirtualUart, INPUT_BACKLOG, RX_FIFO, SIZE};

use crate::input::Input;

const DR: u64 = 0x000;
const FR: u64 = 0x018;
const IMSC: u64 = 0x038;
const RIS: u64 = 0x03c;
const MIS: u64 = 0x040;
const FR_RXFE: u32 = 1 << 4;
const FR_RXFF: u32 = 1 << 6;
/// The longest line the virtual UART hands out (it splits longer ones).
const MAX_LINE: usize = 200;
/// Offsets worth hitting often: every implemented register and an ID.
const OFFSETS: [u64; 16] = [
    0x000, 0x004, 0x018, 0x024, 0x028, 0x02c, 0x030, 0x034, 0x038, 0x03c, 0x040, 0x044, 0x048,
    0xfe0, 0xffc, 0x100,
];
const NAMES: [&str; 3] = ["alpha", "beta", "gamma"];

/// One fuzz input: a sequence of operations on one UART and the console.
pub fn run(data: &[u8]) {
    let mut input = Input(data);
    let mut uart = VirtualUart::new();
    let mut fifo: VecDeque<u8> = VecDeque::new();
    let mut refused = 0u64;
    let mut mux = ConsoleMux::new();
    let mut out = Vec::new();
    while !input.is_empty() {
        match input.u8() % 8 {
            0 => {
                let offset = offset(&mut input);
                let value = uart.read(offset);
                if offset == DR {
                    assert_eq!(value, fifo.pop_front().map_or(0, u32::from));
                }
            }
            1 => {
                let offset = offset(&mut input);
                let value = input.u32();
                match uart.write(offset, value) {
                    Transmit::Nothing => {}
                    Transmit::Taken { line } => {
                        assert_eq!(offset, DR);
                        if line {
                            assert!(uart.has_output(false));
                            show_next(&mut uart, &mut mux, &mut input, false, &mut out);
                        }
                    }
                    Transmit::Full => {
                        // A full ring holds a finished line; showing it
                        // makes room.
                        assert_eq!(offset, DR);
                        assert!(!uart.tx_has_room() && uart.has_output(false));
                        show_next(&mut uart, &mut mux, &mut input, false, &mut out);
                        assert!(uart.tx_has_room());
                    }
                }
            }
            2 => {
                // A burst of typed bytes.
                for _ in 0..=input.u8() % 40 {
                    let byte = input.u8();
                    let accepted = uart.receive(byte);
                    assert_eq!(accepted, fifo.len() < RX_FIFO + INPUT_BACKLOG);
                    if accepted {
                        fifo.push_back(byte);
                    } else {
                        refused += 1;
                    }
                }
            }
            3 => show_next(&mut uart, &mut mux, &mut input, true, &mut out),
            4 => {
                let text = input.bytes(64).to_vec();
                let whole = input.bool();
                show(&mut mux, &mut input, &text, whole, &mut out);
            }
            5 => {
                let partitions = usize::from(input.u8() % 4);
                let byte = input.u8();
                match mux.input(byte, partitions) {
                    Typed::Deliver { index, byte: b } => {
                        assert!(index < partitions);
                        assert_eq!(b, byte);
                        assert!(byte != SWITCH_KEY && byte != COUNTERS_KEY);
                    }
                    Typed::Focus { index } => {
                        assert!(index < partitions);
                        assert_eq!(byte, SWITCH_KEY);
                    }
                    Typed::Counters => assert_eq!(byte, COUNTERS_KEY),
                    Typed::Ignore => assert_eq!(partitions, 0),
                }
                if partitions > 0 {
                    assert!(mux.focus() < partitions);
                }
            }
            6 => {
                out.clear();
                mux.hypervisor(&mut out);
                assert!(out.is_empty() || out == b"\r\n");
            }
            _ => {
                let value = input.u32();
                uart.write(IMSC, value);
            }
        }
        check_uart(&mut uart, &fifo, refused);
    }
}

fn offset(input: &mut Input) -> u64 {
    let code = input.u8();
    if code & 0x80 != 0 {
        u64::from(input.u16()) % (SIZE + 0x10)
    } else {
        OFFSETS[usize::from(code & 0xf)]
    }
}

/// Takes the next unit of the UART's output (a finished line, or with
/// `partial` also an unfinished one) and shows it.
fn show_next(
    uart: &mut VirtualUart,
    mux: &mut ConsoleMux,
    input: &mut Input,
    partial: bool,
    out: &mut Vec<u8>,
) {
    let mut text = Vec::new();
    if let Some(unit) = uart.take_output(partial, &mut text) {
        assert!(text.len() <= MAX_LINE, "unit of {}", text.len());
        assert!(!text.contains(&b'\n'));
        show(mux, input, &text, unit == Unit::Line, out);
    }
}

/// Shows `text` as partition output and checks what reaches the terminal.
fn show(mux: &mut ConsoleMux, input: &mut Input, text: &[u8], whole: bool, out: &mut Vec<u8>) {
    let index = usize::from(input.u8()) % NAMES.len();
    let terminal = input.bool();
    out.clear();
    if whole {
        mux.line(index, NAMES[index], text, terminal, out);
        assert!(out.ends_with(b"\r\n"));
    } else {
        mux.partial(index, NAMES[index], text, terminal, out);
    }
    // Only the multiplexer's own CR LF are control bytes; the guest's are
    // '?' unless the operator is typing into it.
    let mut crlf_allowed = out.clone();
    if whole {
        crlf_allowed.truncate(crlf_allowed.len() - 2);
    }
    let leading = crlf_allowed.starts_with(b"\r\n");
    let body = if leading {
        &crlf_allowed[2..]
    } else {
        &crlf_allowed[..]
    };
    for &b in body {
        let printable = (0x20..0x7f).contains(&b) || b == b'\t';
        let editing = terminal && matches!(b, 0x07 | 0x08 | 0x1b);
        assert!(printable || editing, "byte {b:#x} reached the terminal");
    }
    assert!(out.len() <= text.len() + NAMES[index].len() + 8);
}

fn check_uart(uart: &mut VirtualUart, fifo: &VecDeque<u8>, refused: u64) {
    assert!(fifo.len() <= RX_FIFO + INPUT_BACKLOG);
    assert_eq!(uart.unread(), fifo.len());
    assert_eq!(uart.overruns(), refused);
    let fr = uart.read(FR);
    assert_eq!(fr & FR_RXFE != 0, fifo.is_empty());
    assert_eq!(fr & FR_RXFF != 0, fifo.len() >= RX_FIFO);
    let ris = uart.read(RIS);
    let imsc = uart.read(IMSC);
    assert_eq!(ris & int::RX != 0, !fifo.is_empty());
    assert_eq!(uart.read(MIS), ris & imsc);
    assert_eq!(uart.irq_line(), ris & imsc != 0);
    assert_eq!(ris & !int::ALL, 0);
}
