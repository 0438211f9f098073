//! The hypervisor's console: the physical UART behind a lock, a `log`
//! backend that prefixes each line with the CPU, the partitions' virtual
//! consoles multiplexed onto it ([`crate::console::mux`]), and typed input
//! delivered to the partition with the focus.

use super::partition::Partition;
use crate::console::mux::{ConsoleMux, Input};
use crate::drivers::uart::Uart;
use alloc::vec::Vec;
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use spin::Mutex;

static UART: Mutex<Option<Uart>> = Mutex::new(None);
/// Who printed last and who gets typed bytes. Lock order: MUX, then UART.
static MUX: Mutex<ConsoleMux> = Mutex::new(ConsoleMux::new());
/// The physical console's interrupt (INTID), once receiving is enabled.
static INPUT_INTID: AtomicU32 = AtomicU32::new(0);
/// Set for a partition slot once a byte was typed into it: from then on
/// its unfinished lines are shown at once (prompts, echo).
static INTERACTIVE: [AtomicBool; 64] = [const { AtomicBool::new(false) }; 64];

/// Starts the console on the UART of family `kind` at `base` (silent for
/// a family without a driver).
///
/// # Safety
/// `base` must be such a UART reachable at this address (identity-mapped
/// device memory, or the MMU off) that nothing else drives.
pub unsafe fn init(base: usize, kind: crate::boot::platform::UartKind) {
    use crate::boot::platform::UartKind;
    use crate::drivers::uart::UartModel;
    // 16550s are parsed from the tree, not driven yet.
    let model = match kind {
        UartKind::Pl011 => Some(UartModel::Pl011),
        UartKind::Bcm2835Aux => Some(UartModel::Bcm2835Aux),
        UartKind::Ns16550 | UartKind::Other => None,
    };
    // SAFETY: forwarded from the caller.
    *UART.lock() = model.map(|model| unsafe { Uart::new(model, base) });
    log::set_logger(&LOGGER).ok();
    log::set_max_level(log::LevelFilter::Info);
}

/// Writes formatted text to the console (dropped if there is none yet).
pub fn write_fmt(args: core::fmt::Arguments<'_>) {
    let mut mux = MUX.lock();
    let mut newline = Vec::new();
    mux.hypervisor(&mut newline);
    if let Some(uart) = UART.lock().as_mut() {
        put_bytes(uart, &newline);
        let _ = uart.write_fmt(args);
    }
}

fn put_bytes(uart: &mut Uart, bytes: &[u8]) {
    for &b in bytes {
        uart.put(b);
    }
}

/// Output of partition `partition`'s virtual console: a finished `line`,
/// if its last write completed one, else (for a partition someone types
/// into) its unfinished line, taken from `partial` only then.
pub fn partition_output(
    partition: &Partition,
    line: Option<Vec<u8>>,
    partial: impl FnOnce() -> Vec<u8>,
) {
    let index = partition.id.index();
    let mut out = Vec::new();
    let mut mux = MUX.lock();
    // Raw terminal bytes only from the guest the operator is typing into.
    let terminal = is_interactive(index) && mux.focus() == index;
    match line {
        Some(line) => mux.line(index, partition.name(), &line, terminal, &mut out),
        None if terminal => mux.partial(index, partition.name(), &partial(), true, &mut out),
        None => return,
    }
    if let Some(uart) = UART.lock().as_mut() {
        put_bytes(uart, &out);
    }
}

fn is_interactive(index: usize) -> bool {
    INTERACTIVE
        .get(index)
        .is_some_and(|i| i.load(Ordering::Relaxed))
}

/// Lets the physical console's interrupt `intid` (an SPI, routed to the
/// boot CPU) carry typed bytes to the partitions.
pub fn enable_input(intid: u32) {
    if let Some(uart) = UART.lock().as_mut() {
        uart.enable_receive_interrupt();
        INPUT_INTID.store(intid, Ordering::Release);
    }
}

/// Whether `intid` is the console's input interrupt.
pub fn is_input_interrupt(intid: u32) -> bool {
    intid >= 32 && INPUT_INTID.load(Ordering::Acquire) == intid
}

/// The console's interrupt, taken at EL2: every byte waiting goes to the
/// partition with the focus (`Ctrl-\` moves the focus), whose virtual
/// PL011 raises its receive interrupt (`raise_line`, under the console
/// lock); `Ctrl-]` logs every partition's `status`.
pub fn take_input(
    partitions: &[Partition],
    raise_line: impl Fn(&Partition),
    status: impl Fn(&Partition),
) {
    for _ in 0..64 {
        let Some(byte) = UART.lock().as_mut().and_then(Uart::get) else {
            return;
        };
        let input = MUX.lock().input(byte, partitions.len());
        match input {
            Input::Ignore => {}
            Input::Counters => {
                for p in partitions {
                    status(p);
                }
                if let Some(its) = super::irq::its() {
                    let skipped = its.skipped_commands();
                    log::info!("physical ITS: {skipped} commands skipped after a stall");
                }
            }
            Input::Focus { index } => {
                let p = &partitions[index];
                if p.is_stopped() {
                    crate::println!(
                        "hypervisor: console input now goes to partition {}, which is stopped: what is typed is discarded (Ctrl-\\ switches)",
                        p.name()
                    );
                } else {
                    crate::println!(
                        "hypervisor: console input now goes to partition {} (Ctrl-\\ switches)",
                        p.name()
                    );
                }
            }
            Input::Deliver { index, byte } => {
                let p = &partitions[index];
                if p.is_stopped() {
                    // Said once when the focus moved here; nothing reads it.
                    continue;
                }
                if let Some(flag) = INTERACTIVE.get(index) {
                    flag.store(true, Ordering::Relaxed);
                }
                let mut console = p.console.lock();
                let before = console.irq_line();
                if !console.receive(byte) && console.overruns() == 1 {
                    log::warn!(
                        "partition {}: console input overrun: the guest is not reading its UART",
                        p.name()
                    );
                }
                // Under the console lock, as the guest's own accesses do.
                if console.irq_line() != before {
                    raise_line(p);
                }
            }
        }
    }
}

/// Writes to the console even if another CPU holds its lock (panic path).
pub fn write_fmt_force(args: core::fmt::Arguments<'_>) {
    let mut guard = match UART.try_lock() {
        Some(g) => g,
        None => {
            // SAFETY: we are going down; a garbled line beats a silent hang.
            unsafe { UART.force_unlock() };
            UART.lock()
        }
    };
    if let Some(uart) = guard.as_mut() {
        let _ = uart.write_fmt(args);
    }
}

/// Prints to the hypervisor console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::kernel::console::write_fmt(format_args!($($arg)*)) };
}

/// Prints a line to the hypervisor console.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::kernel::console::write_fmt(format_args!("{}\n", format_args!($($arg)*))) };
}

struct Logger;
static LOGGER: Logger = Logger;

impl log::Log for Logger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let level = match record.level() {
            log::Level::Error => "ERROR",
            log::Level::Warn => "WARN ",
            log::Level::Info => "INFO ",
            log::Level::Debug => "DEBUG",
            log::Level::Trace => "TRACE",
        };
        write_fmt(format_args!(
            "[hv cpu{}] {} {}\n",
            super::percpu::current_index(),
            level,
            record.args()
        ));
    }

    fn flush(&self) {}
}
