//! Building a partition's virtual host bridge from the manifest's
//! assignment: checks, the guest's view of each function, and the initial
//! placement of guest BARs.

use alloc::vec::Vec;

use super::function::{GuestBar, VirtualFunction};
use super::msi::MsiEmulation;
use super::msix::MsixEmulation;
use super::{GuestWindow, VbridgeError, VirtBdf, VirtualHostBridge};
use crate::boot::guest_fdt::GuestPci;
use crate::boot::platform::PciSpace;
use crate::pci::regs;
use crate::pci::{
    BarAllocator, BarKind, BarRegion, Bdf, BusWindow, ConfigAccess, HeaderKind, PciDevice,
};

impl VirtualHostBridge {
    /// Builds the bridge for `guest` with `devices` at their virtual BDFs,
    /// places their BARs in the guest's windows, and quiesces the devices
    /// (decode, bus mastering, MSI and MSI-X off) as after a reset.
    pub fn new<A: ConfigAccess + ?Sized>(
        access: &mut A,
        guest: &GuestPci,
        devices: &[(VirtBdf, &PciDevice)],
    ) -> Result<VirtualHostBridge, VbridgeError> {
        let mut functions: Vec<VirtualFunction> = Vec::with_capacity(devices.len());
        for &(virt, device) in devices {
            let physical = device.bdf();
            if !(guest.first_bus..=guest.last_bus).contains(&virt.0.bus()) {
                return Err(VbridgeError::OutsideBusRange { device: virt });
            }
            if functions.iter().any(|f| f.virt == virt) {
                return Err(VbridgeError::DuplicateVirtual { device: virt });
            }
            if functions.iter().any(|f| f.phys == physical) {
                return Err(VbridgeError::DuplicatePhysical { physical });
            }
            functions.push(virtual_function(virt, device)?);
        }
        for i in 0..functions.len() {
            let Some(virt) = functions.get(i).map(|f| f.virt.0) else {
                continue;
            };
            let same_device =
                |other: &Bdf| other.bus() == virt.bus() && other.device() == virt.device();
            let siblings = functions.iter().filter(|f| same_device(&f.virt.0)).count();
            let has_zero = functions
                .iter()
                .any(|f| same_device(&f.virt.0) && f.virt.0.function() == 0);
            if !has_zero {
                return Err(VbridgeError::NoFunctionZero {
                    device: VirtBdf(virt),
                });
            }
            if let Some(f) = functions.get_mut(i) {
                f.multi_function = siblings > 1;
            }
        }
        let windows: Vec<GuestWindow> = [&guest.mem32, &guest.mem64]
            .into_iter()
            .filter_map(|w| w.as_ref())
            .map(|w| GuestWindow {
                pci_start: w.pci_address,
                size: w.cpu.size,
                ipa: w.cpu.start,
            })
            .collect();
        place_guest_bars(guest, &mut functions)?;
        let mut bridge = VirtualHostBridge {
            first_bus: guest.first_bus,
            last_bus: guest.last_bus,
            windows,
            functions,
        };
        bridge.reset(access);
        Ok(bridge)
    }
}

/// The guest's view of `device`, its BARs not yet placed in guest space.
fn virtual_function(virt: VirtBdf, device: &PciDevice) -> Result<VirtualFunction, VbridgeError> {
    let physical = device.bdf();
    if device.function.header != HeaderKind::Endpoint {
        return Err(VbridgeError::NotAnEndpoint { physical });
    }
    let mut bars = Vec::new();
    for assigned in &device.bars {
        let bar = assigned.bar;
        let unplaced = bar.kind.is_memory() && assigned.cpu_address.is_none();
        if unplaced || !bar.size.is_power_of_two() {
            return Err(VbridgeError::UnplacedBar {
                physical,
                bar: bar.index,
            });
        }
        bars.push(GuestBar {
            index: bar.index,
            kind: bar.kind,
            size: bar.size,
            address: 0,
            initial: 0,
            host: assigned.cpu_address,
        });
    }
    let caps = &device.capabilities;
    let msi = match caps.msi {
        Some(cap) if u16::from(cap.offset) + cap.len() > regs::CONFIG_SPACE_SIZE => {
            return Err(VbridgeError::BadCapability {
                physical,
                id: regs::cap_id::MSI,
            });
        }
        Some(cap) => Some(MsiEmulation::new(cap)),
        None => None,
    };
    let msix = match caps.msix {
        Some(cap) => {
            let fits = |region: &BarRegion| {
                let end = u64::from(region.offset) + u64::from(region.size);
                bars.iter()
                    .any(|b| b.index == region.bar && b.kind.is_memory() && end <= b.size)
            };
            if u16::from(cap.offset) + 12 > regs::CONFIG_SPACE_SIZE
                || !fits(&cap.table)
                || !fits(&cap.pba)
            {
                return Err(VbridgeError::BadCapability {
                    physical,
                    id: regs::cap_id::MSIX,
                });
            }
            Some(MsixEmulation::new(cap))
        }
        None => None,
    };
    Ok(VirtualFunction {
        virt,
        phys: physical,
        bars,
        multi_function: false,
        interrupt_line: 0,
        memory_enabled: false,
        msi,
        msix,
    })
}

/// Gives every memory BAR an initial guest address, largest first, as
/// firmware would, so a guest that does not reassign BARs finds them placed.
/// I/O BARs stay at 0: the guest's bridge has no I/O window.
fn place_guest_bars(
    guest: &GuestPci,
    functions: &mut [VirtualFunction],
) -> Result<(), VbridgeError> {
    let windows = [
        (&guest.mem32, PciSpace::Mem32),
        (&guest.mem64, PciSpace::Mem64),
    ]
    .into_iter()
    .filter_map(|(w, space)| {
        let w = w.as_ref()?;
        Some(BusWindow {
            space,
            prefetchable: false,
            start: w.pci_address,
            size: w.cpu.size,
        })
    });
    let mut allocator = BarAllocator::new(windows);
    let mut order: Vec<(usize, usize)> = Vec::new();
    for (f, function) in functions.iter().enumerate() {
        for (b, bar) in function.bars.iter().enumerate() {
            if bar.kind != BarKind::Io {
                order.push((f, b));
            }
        }
    }
    let size_of = |&(f, b): &(usize, usize)| {
        functions
            .get(f)
            .and_then(|func| func.bars.get(b))
            .map_or(0, |bar| bar.size)
    };
    order.sort_by_key(|key| core::cmp::Reverse(size_of(key)));
    for (f, b) in order {
        let Some(function) = functions.get_mut(f) else {
            continue;
        };
        let virt = function.virt;
        let Some(bar) = function.bars.get_mut(b) else {
            continue;
        };
        let placement = allocator
            .allocate(virt.0, bar.index, bar.kind, bar.size)
            .map_err(|_| VbridgeError::GuestWindowFull {
                device: virt,
                bar: bar.index,
            })?;
        bar.address = placement.address;
        bar.initial = placement.address;
    }
    Ok(())
}
