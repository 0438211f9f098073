//! The hypervisor's console: the physical UART behind a lock, a `log`
//! backend that prefixes each line with the CPU, and line-buffered output
//! of the partitions' virtual consoles.

use crate::drivers::pl011::Pl011;
use core::fmt::Write;
use spin::Mutex;

static UART: Mutex<Option<Pl011>> = Mutex::new(None);

/// Starts the console on the PL011 at `base`.
///
/// # Safety
/// `base` must be a PL011 reachable at this address (identity-mapped device
/// memory, or the MMU off) that nothing else drives.
pub unsafe fn init(base: usize) {
    // SAFETY: forwarded from the caller.
    *UART.lock() = Some(unsafe { Pl011::new(base) });
    log::set_logger(&LOGGER).ok();
    log::set_max_level(log::LevelFilter::Info);
}

/// Writes formatted text to the console (dropped if there is none yet).
pub fn write_fmt(args: core::fmt::Arguments<'_>) {
    if let Some(uart) = UART.lock().as_mut() {
        let _ = uart.write_fmt(args);
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
