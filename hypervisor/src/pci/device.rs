//! Bringing up a host bridge: find its functions, size and place their
//! BARs, read their capabilities.

use alloc::vec::Vec;

use super::assign::{assign_bars, AssignedBar};
use super::bar::probe_bars;
use super::capability::Capabilities;
use super::enumerate::{enumerate_bridge, HeaderKind, PciFunction};
use super::{Bdf, ConfigAccess, PciError};
use crate::boot::platform::PciHostBridge;

/// A function found behind the host bridge, ready to be given to a partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PciDevice {
    /// Identity and header layout.
    pub function: PciFunction,
    /// Its BARs as placed by the hypervisor (none for bridges: not reprogrammed).
    pub bars: Vec<AssignedBar>,
    /// Its capability list.
    pub capabilities: Capabilities,
}

impl PciDevice {
    /// Its address.
    pub fn bdf(&self) -> Bdf {
        self.function.bdf
    }

    /// The assigned BAR numbered `index`, if implemented.
    pub fn bar(&self, index: u8) -> Option<&AssignedBar> {
        self.bars.iter().find(|b| b.bar.index == index)
    }
}

/// Enumerates `bridge`, sizes the BARs of every endpoint, places them in
/// the bridge's windows and programs them, and reads each capability list.
///
/// COMMAND is left as found (decode off after reset, PCI LB 3.0, 6.2.2):
/// the partition that is given the device enables decode and bus mastering.
pub fn discover<A: ConfigAccess + ?Sized>(
    access: &mut A,
    bridge: &PciHostBridge,
) -> Result<Vec<PciDevice>, PciError> {
    let functions = enumerate_bridge(access, bridge);
    let mut all_bars = Vec::new();
    let mut devices = Vec::with_capacity(functions.len());
    for function in functions {
        if function.header == HeaderKind::Endpoint {
            for bar in probe_bars(access, function.bdf, function.header)? {
                all_bars.push((function.bdf, bar));
            }
        }
        devices.push(PciDevice {
            function,
            bars: Vec::new(),
            capabilities: Capabilities::read(access, function.bdf)?,
        });
    }
    let assigned = assign_bars(access, bridge, &all_bars)?;
    for ((bdf, _), bar) in all_bars.iter().zip(assigned) {
        if let Some(device) = devices.iter_mut().find(|d| d.function.bdf == *bdf) {
            device.bars.push(bar);
        }
    }
    Ok(devices)
}
