//! The console UART: the node `/chosen/stdout-path` names (DTSpec 3.6).

use alloc::string::String;
use alloc::vec::Vec;

use super::decode::{self, bad, take_cells};
use super::gic::GicInterrupt;
use super::tree::{NodeIdx, Tree};
use super::PlatformError;
use crate::mm::addr::{PhysAddr, Range};

/// The UART families the hypervisor has drivers for, by compatible string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UartKind {
    /// ARM PrimeCell PL011 (`arm,pl011`).
    Pl011,
    /// 8250/16550-compatible (`ns16550a`, `ns16550`, `snps,dw-apb-uart`).
    Ns16550,
    /// The BCM2835 auxiliary "mini" UART (`brcm,bcm2835-aux-uart`), the
    /// Raspberry Pi 3/4 trees' `stdout-path`.
    Bcm2835Aux,
    /// Anything else: see [`Console::compatible`].
    Other,
}

impl UartKind {
    /// The driver family for a node's `compatible` strings: the first
    /// string a driver exists for wins, most specific first.
    pub fn from_compatible<'s>(compatible: impl IntoIterator<Item = &'s str>) -> Self {
        compatible
            .into_iter()
            .find_map(|c| match c {
                "arm,pl011" => Some(Self::Pl011),
                "ns16550a" | "ns16550" | "snps,dw-apb-uart" => Some(Self::Ns16550),
                "brcm,bcm2835-aux-uart" => Some(Self::Bcm2835Aux),
                _ => None,
            })
            .unwrap_or(Self::Other)
    }
}

/// The console UART.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Console {
    /// Path of the node.
    pub node: String,
    /// Its `compatible` strings, most specific first.
    pub compatible: Vec<String>,
    /// The driver family.
    pub kind: UartKind,
    /// The register frame (first `reg` entry).
    pub registers: Range<PhysAddr>,
    /// Its interrupt, if it has one wired to the GIC.
    pub interrupt: Option<GicInterrupt>,
    /// Baud rate from the stdout-path options ("serial0:115200n8") or `current-speed`.
    pub baud: Option<u32>,
    /// Reference clock in Hz: `clock-frequency`, or the fixed-clock `clocks` names.
    pub clock_hz: Option<u32>,
    /// 16550 register spacing as a shift (`reg-shift`, default 0).
    pub reg_shift: u32,
    /// 16550 access width in bytes (`reg-io-width`, default 1).
    pub reg_io_width: u32,
}

/// Reads the console named by `/chosen` (or the `serial0` alias if the
/// tree names none); `None` if there is neither.
pub(crate) fn parse(tree: &Tree, gic: NodeIdx) -> Result<Option<Console>, PlatformError> {
    let chosen = tree.find_path("/chosen");
    let spec = chosen.and_then(|c| {
        tree.string(c, "stdout-path")
            .or_else(|| tree.string(c, "linux,stdout-path"))
    });
    let (path, options) = match spec {
        Some(spec) => spec.split_once(':').unwrap_or((spec, "")),
        None => ("serial0", ""),
    };
    let resolved = if path.starts_with('/') {
        Some(path)
    } else {
        tree.find_path("/aliases")
            .and_then(|aliases| tree.string(aliases, path))
    };
    let Some(node) = resolved.and_then(|p| tree.find_path(p)) else {
        return match (spec, chosen) {
            (Some(_), Some(chosen)) => Err(bad(tree, chosen, "stdout-path", "names no node")),
            _ => Ok(None),
        };
    };
    let compatible: Vec<String> = tree.strings(node, "compatible").map(String::from).collect();
    let kind = UartKind::from_compatible(compatible.iter().map(String::as_str));
    let registers = *decode::reg(tree, node)?
        .first()
        .ok_or_else(|| bad(tree, node, "reg", "empty"))?;
    let digits = options.bytes().take_while(u8::is_ascii_digit).count();
    let baud = match options[..digits].parse().ok() {
        Some(baud) => Some(baud),
        None => decode::u32_prop(tree, node, "current-speed")?,
    };
    let clock_hz = match decode::u32_prop(tree, node, "clock-frequency")? {
        Some(hz) => Some(hz),
        None => clock_rate(tree, node, "uartclk")?,
    };
    Ok(Some(Console {
        node: tree.path(node),
        compatible,
        kind,
        registers,
        // The console works polled: an interrupt routed elsewhere is no reason to fail.
        interrupt: decode::first_interrupt(tree, node, gic).ok().flatten(),
        baud,
        clock_hz,
        reg_shift: decode::u32_prop(tree, node, "reg-shift")?.unwrap_or(0),
        reg_io_width: decode::u32_prop(tree, node, "reg-io-width")?.unwrap_or(1),
    }))
}

/// The rate of the clock `name` (or the first clock) of `node`, if it is a
/// `fixed-clock` (clock-bindings.txt: `clocks` is a list of phandle + args).
fn clock_rate(tree: &Tree, node: NodeIdx, name: &str) -> Result<Option<u32>, PlatformError> {
    let Some(mut clocks) = tree.prop(node, "clocks") else {
        return Ok(None);
    };
    let wanted = tree
        .strings(node, "clock-names")
        .position(|n| n == name)
        .unwrap_or(0);
    let mut index = 0;
    while let Some(phandle) = take_cells(&mut clocks, 1) {
        let provider = tree
            .by_phandle(phandle as u32)
            .ok_or_else(|| bad(tree, node, "clocks", "unknown phandle"))?;
        let args = decode::u32_prop(tree, provider, "#clock-cells")?.unwrap_or(0);
        take_cells(&mut clocks, args)
            .ok_or_else(|| bad(tree, node, "clocks", "truncated specifier"))?;
        if index == wanted {
            if !tree.is_compatible(provider, "fixed-clock") {
                return Ok(None);
            }
            return decode::u32_prop(tree, provider, "clock-frequency");
        }
        index += 1;
    }
    Ok(None)
}
