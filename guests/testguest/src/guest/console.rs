//! The console: the PL011 the device tree names in /chosen/stdout-path.

use core::fmt::Write;
use core::sync::atomic::{AtomicUsize, Ordering};
use spin::Mutex;

static BASE: AtomicUsize = AtomicUsize::new(0);
static LOCK: Mutex<()> = Mutex::new(());

/// Finds the console in the device tree.
pub fn init() {
    let base = super::fdt()
        .chosen()
        .stdout()
        .and_then(|n| n.reg())
        .and_then(|mut r| r.next())
        .map(|r| r.starting_address as usize);
    BASE.store(base.unwrap_or(0), Ordering::Release);
}

struct Uart(usize);

impl Write for Uart {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        if self.0 == 0 {
            return Ok(());
        }
        for b in s.bytes() {
            // SAFETY: BASE is the PL011 data register from the device tree.
            unsafe { core::ptr::write_volatile(self.0 as *mut u32, b as u32) };
        }
        Ok(())
    }
}

/// Writes a formatted line atomically with respect to other vCPUs.
pub fn write_line(args: core::fmt::Arguments<'_>) {
    let _guard = LOCK.lock();
    let mut uart = Uart(BASE.load(Ordering::Acquire));
    let _ = uart.write_fmt(args);
    let _ = uart.write_str("\n");
}

/// Prints a line on the guest console.
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => { $crate::guest::console::write_line(format_args!($($arg)*)) };
}

/// Prints a FAIL line and powers the partition off (a scenario's end).
macro_rules! fail {
    ($($arg:tt)*) => {{
        println!("FAIL {}", format_args!($($arg)*));
        $crate::guest::psci::system_off()
    }};
}

/// Unwraps a setup step or fails the scenario naming it.
macro_rules! check {
    ($what:expr, $r:expr) => {
        match $r {
            Ok(v) => v,
            Err(e) => fail!("{}: {}", $what, e),
        }
    };
}
