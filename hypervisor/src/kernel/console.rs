//! The hypervisor's console: the physical UART behind a lock, a `log`
//! backend that prefixes each line with the CPU, the partitions' virtual
//! consoles multiplexed onto it ([`crate::console::mux`]) through their
//! output rings, drained fairly ([`crate::console::output`]), and typed
//! input delivered to the partition with the focus.
//!
//! Output: a guest's data write goes into its partition's ring (its
//! virtual PL011's TX FIFO) and costs nothing else unless it finished a
//! line (or the operator is typing into that partition, whose echo is
//! shown at once). Then the writing CPU runs drain rounds (one line of
//! every partition per round, under `DRAIN`) until its line is shown, by
//! its own round or another CPU's: it waits at most for the round under
//! way, and since every line's writer waits for it, no line stays in a
//! ring with nobody to print it (no timer or idle path is needed, and a
//! CPU that never writes never drains). A write into a full ring waits the
//! same way for room. Each line is printed whole under `MUX` and `UART`,
//! as each hypervisor line is, so the two never mix mid-line, and a
//! hypervisor line waits for at most one partition line.
//!
//! Lock order: `DRAIN`, then a partition's console (then its vGIC, or
//! `MUX` then `UART` for a log line), or `DRAIN`, then `MUX`, then `UART`;
//! nothing holding `MUX`, `UART` or a partition's console takes `DRAIN`.
//! A partition's console is reached only through `Partition::console`,
//! used by this file alone.

use super::partition::Partition;
use crate::console::mux::{ConsoleMux, Input};
use crate::console::output::{Drainer, Sources, Unit};
use crate::drivers::uart::Uart;
use crate::guest::vuart::{Transmit, VirtualUart};
use crate::ids::VcpuIndex;
use alloc::vec::Vec;
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use spin::Mutex;

static UART: Mutex<Option<Uart>> = Mutex::new(None);
/// Who printed last and who gets typed bytes. Lock order: MUX, then UART.
static MUX: Mutex<ConsoleMux> = Mutex::new(ConsoleMux::new());
/// The round-robin drain of the partitions' output rings.
static DRAIN: Mutex<Drainer> = Mutex::new(Drainer::new());
/// The partition with the input focus (a copy of the multiplexer's, read
/// on every data write without taking `MUX`).
static FOCUS: AtomicUsize = AtomicUsize::new(0);
/// Writers that found another CPU's round under way and waited for it.
static DRAIN_WAITS: AtomicU64 = AtomicU64::new(0);
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

/// A guest access at `offset` of partition `partition`'s virtual PL011
/// (`value` for a write): returns the value read. The UART's interrupt
/// line follows what the access changed; a data write that finished a
/// line (or any, while the operator types into this partition) waits until
/// the line is shown, and one into a full TX FIFO waits for room and is
/// then made (see the module's doc).
pub fn guest_access(
    partition: &Partition,
    vcpu: VcpuIndex,
    offset: u64,
    write: bool,
    value: u32,
) -> u64 {
    let index = partition.id.index();
    let running = Some((partition, vcpu));
    loop {
        let mut console = partition.console();
        let before = console.irq_line();
        let (read, transmit) = if write {
            (0, console.write(offset, value))
        } else {
            (u64::from(console.read(offset)), Transmit::Nothing)
        };
        // Only a change reaches the vGIC (most accesses are data bytes
        // that change nothing), and under the console lock, so that the
        // vGIC's line follows the UART's level in the order it changed
        // (typed input and the drain change it from other CPUs).
        let level = console.irq_line();
        if level != before {
            super::vgic::set_console_line(partition, vcpu, level);
        }
        drop(console);
        match transmit {
            Transmit::Nothing => return read,
            Transmit::Taken { line } => {
                let terminal = is_terminal(index);
                if line || terminal {
                    drain_until(partition, running, |c| !c.has_output(is_terminal(index)));
                }
                return read;
            }
            Transmit::Full => {
                // A full ring always holds a line, so a round makes room;
                // if none could (no partition table: never after boot),
                // the byte is dropped (counted) rather than spun on.
                if !drain_until(partition, running, VirtualUart::tx_has_room) {
                    return read;
                }
            }
        }
    }
}

/// Runs drain rounds, or waits for another CPU's, until `done` holds for
/// `partition`'s UART (true), or a round finds nothing to show anywhere
/// (false).
fn drain_until(
    partition: &Partition,
    running: Option<(&Partition, VcpuIndex)>,
    done: impl Fn(&VirtualUart) -> bool,
) -> bool {
    let mut waited = false;
    loop {
        match DRAIN.try_lock() {
            Some(mut drainer) => {
                let moved = round(&mut drainer, running);
                drop(drainer);
                if moved == 0 {
                    return false;
                }
            }
            None => {
                if !waited {
                    waited = true;
                    DRAIN_WAITS.fetch_add(1, Ordering::Relaxed);
                }
                core::hint::spin_loop();
            }
        }
        if done(&partition.console()) {
            return true;
        }
    }
}

/// One drain round over every partition: returns the lines moved.
fn round(drainer: &mut Drainer, running: Option<(&Partition, VcpuIndex)>) -> usize {
    let partitions = super::partition::all();
    let mut sources = Rings {
        partitions,
        running,
    };
    drainer.round(&mut sources, |index, unit, text| {
        let Some(p) = partitions.get(index) else {
            return;
        };
        let mut out = Vec::new();
        let mut mux = MUX.lock();
        // Raw terminal bytes only from the guest the operator is typing into.
        let terminal = is_terminal(index);
        match unit {
            Unit::Line => mux.line(index, p.name(), text, terminal, &mut out),
            Unit::Partial => mux.partial(index, p.name(), text, terminal, &mut out),
        }
        if let Some(uart) = UART.lock().as_mut() {
            put_bytes(uart, &out);
        }
    })
}

/// The partitions' output rings, as the drain sees them.
struct Rings<'a> {
    partitions: &'a [Partition],
    running: Option<(&'a Partition, VcpuIndex)>,
}

impl Sources for Rings<'_> {
    fn count(&self) -> usize {
        self.partitions.len()
    }

    fn take(&mut self, index: usize, out: &mut Vec<u8>) -> Option<Unit> {
        let p = self.partitions.get(index)?;
        let mut console = p.console();
        let before = console.irq_line();
        let unit = console.take_output(is_terminal(index), out);
        // Room in the TX FIFO may raise its interrupt: under the console
        // lock, as the guest's own accesses change the line.
        let level = console.irq_line();
        if level != before {
            super::vgic::set_console_line_from(p, self.running, level);
        }
        unit
    }
}

/// Whether the operator is typing into partition `index` (its prompts and
/// echo are shown at once, with the terminal bytes line editing needs).
fn is_terminal(index: usize) -> bool {
    is_interactive(index) && FOCUS.load(Ordering::Relaxed) == index
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
                log_drain_counters();
            }
            Input::Focus { index } => {
                FOCUS.store(index, Ordering::Relaxed);
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
                let mut console = p.console();
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

/// The line of partition `p`'s console output counters (with its other
/// counters: at `Ctrl-]` and when it stops): how much it showed, how full
/// its TX FIFO got and how often its vCPU waited for room (a flooding
/// partition shows waits and a high water mark at the ring's size; a quiet
/// neighbour's lines keep growing). Takes the partition's console lock.
pub fn log_output_counters(p: &Partition) {
    let stats = p.console().tx_stats();
    log::info!(
        "partition {}: console output: {} lines ({} bytes) shown, {} bytes held (most {} of {}), TX FIFO full at {} writes (the vCPU waited) and {} flag reads",
        p.name(),
        stats.shown_lines,
        stats.shown_bytes,
        stats.held,
        stats.high_water,
        crate::guest::vuart::TX_RING,
        stats.full_writes,
        stats.full_reads,
    );
}

/// The `Ctrl-]` line of the output drain: its rounds, and how often a
/// writer found another CPU's round under way.
fn log_drain_counters() {
    let rounds = DRAIN.lock().rounds();
    crate::println!(
        "hypervisor: console drain: {rounds} rounds, {} writes waited for another CPU's round",
        DRAIN_WAITS.load(Ordering::Relaxed)
    );
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
