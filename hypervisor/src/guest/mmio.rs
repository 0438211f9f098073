//! MMIO dispatch: which of a partition's emulated devices a trapped guest
//! data access belongs to. The windows are fixed by the partition's
//! configuration and [`crate::layout`] (console, GIC, vITS frames, PCI
//! ECAM); the MSI-X table pages follow the guest's BAR programming, so the
//! caller answers for those. The first window that holds the address wins,
//! in the order of [`DISPATCH_ORDER`]; the manifest keeps the console out
//! of the fixed windows, so the order only matters for the MSI-X pages,
//! which are asked last (it takes the partition's bridge lock).
#![forbid(unsafe_code)]

use crate::layout;
use crate::mm::addr::Range;
use crate::mm::Ipa;

/// An emulated device of a partition, by the IPA window it traps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Emulated {
    /// The virtual PL011.
    Console,
    /// The virtual GIC's distributor and redistributors.
    Gic,
    /// One of the partition's virtual ITSs.
    Its(usize),
    /// The virtual PCI host bridge's ECAM window.
    PciConfig,
    /// A page holding a passthrough function's MSI-X table.
    MsixTable,
}

/// The order in which the windows are asked (`Its` stands for every vITS).
pub const DISPATCH_ORDER: [Emulated; 5] = [
    Emulated::Console,
    Emulated::Gic,
    Emulated::Its(0),
    Emulated::PciConfig,
    Emulated::MsixTable,
];

impl Emulated {
    /// What the logs call it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Console => "virtual console",
            Self::Gic => "virtual GIC",
            Self::Its(_) => "virtual ITS",
            Self::PciConfig => "virtual PCI configuration space",
            Self::MsixTable => "MSI-X table page of a passthrough function",
        }
    }
}

/// A partition's fixed emulated windows.
#[derive(Clone, Copy, Debug)]
pub struct MmioMap {
    /// Where the manifest put the virtual PL011.
    pub console_ipa: Ipa,
    /// vCPUs (one redistributor frame pair each).
    pub vcpus: usize,
    /// Virtual ITSs.
    pub its_count: usize,
    /// Whether the partition has a virtual PCI host bridge.
    pub pci: bool,
}

impl MmioMap {
    /// The device whose window holds `ipa`; `msix_page` answers for the
    /// MSI-X table pages, asked only when no fixed window matched.
    pub fn device_at(&self, ipa: Ipa, msix_page: impl FnOnce(Ipa) -> bool) -> Option<Emulated> {
        let console = Range {
            start: self.console_ipa,
            size: crate::guest::vuart::SIZE,
        };
        if holds(console, ipa) {
            Some(Emulated::Console)
        } else if holds(layout::GICD, ipa) || holds(layout::redistributors(self.vcpus), ipa) {
            Some(Emulated::Gic)
        } else if let Some(index) = (0..self.its_count).find(|&i| holds(layout::extra_its(i), ipa))
        {
            Some(Emulated::Its(index))
        } else if self.pci && holds(layout::PCI_ECAM, ipa) {
            Some(Emulated::PciConfig)
        } else if self.pci && msix_page(ipa) {
            Some(Emulated::MsixTable)
        } else {
            None
        }
    }
}

/// Whether `window` holds `ipa` (a window that would wrap holds nothing
/// past the top).
fn holds(window: Range<Ipa>, ipa: Ipa) -> bool {
    ipa.raw() >= window.start.raw() && ipa.raw() - window.start.raw() < window.size
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONSOLE: Ipa = Ipa(0x0900_0000);

    fn map(pci: bool) -> MmioMap {
        MmioMap {
            console_ipa: CONSOLE,
            vcpus: 2,
            its_count: 2,
            pci,
        }
    }

    fn no_msix(_: Ipa) -> bool {
        false
    }

    #[test]
    fn each_fixed_window_from_its_first_to_its_last_byte() {
        let m = map(true);
        let windows = [
            (
                Range {
                    start: CONSOLE,
                    size: crate::guest::vuart::SIZE,
                },
                Emulated::Console,
            ),
            (layout::GICD, Emulated::Gic),
            (layout::redistributors(2), Emulated::Gic),
            (layout::extra_its(0), Emulated::Its(0)),
            (layout::extra_its(1), Emulated::Its(1)),
            (layout::PCI_ECAM, Emulated::PciConfig),
        ];
        for (w, device) in windows {
            let last = Ipa(w.start.raw() + w.size - 1);
            assert_eq!(m.device_at(w.start, no_msix), Some(device), "{w:?}");
            assert_eq!(m.device_at(last, no_msix), Some(device), "{w:?}");
        }
    }

    #[test]
    fn redistributor_window_grows_with_the_vcpus() {
        let two = layout::redistributors(2);
        let past_two = Ipa(two.start.raw() + two.size);
        assert_eq!(map(false).device_at(past_two, no_msix), None);
        let four = MmioMap {
            vcpus: 4,
            ..map(false)
        };
        assert_eq!(four.device_at(past_two, no_msix), Some(Emulated::Gic));
    }

    #[test]
    fn only_the_configured_vitss_trap() {
        let third = layout::extra_its(2).start;
        assert_eq!(map(false).device_at(third, no_msix), None);
        let three = MmioMap {
            its_count: 3,
            ..map(false)
        };
        assert_eq!(three.device_at(third, no_msix), Some(Emulated::Its(2)));
    }

    #[test]
    fn pci_windows_only_with_a_bridge() {
        let ecam = layout::PCI_ECAM.start;
        assert_eq!(map(false).device_at(ecam, |_| true), None);
        assert_eq!(map(false).device_at(Ipa(0x1000_0000), |_| true), None);
        assert_eq!(
            map(true).device_at(Ipa(0x1000_0000), |_| true),
            Some(Emulated::MsixTable)
        );
    }

    #[test]
    fn msix_pages_are_asked_last_and_only_outside_the_fixed_windows() {
        let m = map(true);
        for ipa in [
            CONSOLE,
            layout::GICD.start,
            layout::extra_its(0).start,
            layout::PCI_ECAM.start,
        ] {
            assert!(m
                .device_at(ipa, |_| panic!("MSI-X asked for {ipa:?}"))
                .is_some());
        }
        let mut asked = None;
        assert_eq!(
            m.device_at(Ipa(0x1000_2000), |ipa| {
                asked = Some(ipa);
                false
            }),
            None
        );
        assert_eq!(asked, Some(Ipa(0x1000_2000)));
    }

    #[test]
    fn addresses_outside_every_window_are_nobodys() {
        let m = map(true);
        for ipa in [0, 0x4000_0000, u64::MAX] {
            assert_eq!(m.device_at(Ipa(ipa), no_msix), None, "{ipa:#x}");
        }
    }

    #[test]
    fn dispatch_order_lists_every_device_once() {
        for d in [
            Emulated::Console,
            Emulated::Gic,
            Emulated::PciConfig,
            Emulated::MsixTable,
        ] {
            assert_eq!(DISPATCH_ORDER.iter().filter(|x| **x == d).count(), 1);
        }
        assert_eq!(Emulated::Its(3).name(), "virtual ITS");
    }
}
