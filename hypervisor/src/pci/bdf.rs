//! Bus/device/function addresses and their ECAM offsets.

use core::fmt;
use core::str::FromStr;

/// A PCI function address: 8-bit bus, 5-bit device, 3-bit function.
///
/// Stored as the 16-bit requester ID (PCIe base 6.0, 2.2.6.2: bus[15:8],
/// device[7:3], function[2:0]), so every value is a valid address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Bdf(u16);

/// Why a string is not a `bb:dd.f` address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BdfParseError;

impl fmt::Display for BdfParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a PCI address bb:dd.f (hex bus <= ff, device <= 1f, function <= 7)")
    }
}

impl Bdf {
    /// Devices per bus (a 5-bit device number).
    pub const DEVICES: u8 = 32;
    /// Functions per device (a 3-bit function number).
    pub const FUNCTIONS: u8 = 8;

    /// The address `bus:device.function`, or `None` if device > 31 or function > 7.
    pub const fn new(bus: u8, device: u8, function: u8) -> Option<Bdf> {
        if device >= Self::DEVICES || function >= Self::FUNCTIONS {
            return None;
        }
        Some(Bdf((bus as u16) << 8
            | (device as u16) << 3
            | function as u16))
    }

    /// The address a requester ID names (every 16-bit value is one).
    pub const fn from_requester_id(rid: u16) -> Bdf {
        Bdf(rid)
    }

    /// The requester ID: bus << 8 | device << 3 | function (the ITS DeviceID on QEMU virt).
    pub const fn requester_id(self) -> u16 {
        self.0
    }

    /// The bus number.
    pub const fn bus(self) -> u8 {
        (self.0 >> 8) as u8
    }

    /// The device number (0..32).
    pub const fn device(self) -> u8 {
        ((self.0 >> 3) & 0x1f) as u8
    }

    /// The function number (0..8).
    pub const fn function(self) -> u8 {
        (self.0 & 7) as u8
    }

    /// Function `function` of the same device, or `None` if `function` > 7.
    pub const fn with_function(self, function: u8) -> Option<Bdf> {
        Bdf::new(self.bus(), self.device(), function)
    }

    /// Byte offset of this function's 4 KiB configuration space in an ECAM
    /// window whose first bus is `first_bus`, or `None` if the bus is below it.
    ///
    /// PCIe base 6.0, 7.2.2: ECAM address bits [27:20] bus, [19:15] device,
    /// [14:12] function, [11:0] register; a window starting at bus B has bus
    /// B at offset 0.
    pub const fn ecam_offset(self, first_bus: u8) -> Option<u64> {
        if self.bus() < first_bus {
            return None;
        }
        let bus = (self.bus() - first_bus) as u64;
        Some(bus << 20 | (self.device() as u64) << 15 | (self.function() as u64) << 12)
    }

    /// The function and register an ECAM window offset names, for a window
    /// starting at `first_bus`; `None` if the bus number would pass 255.
    pub fn from_ecam_offset(offset: u64, first_bus: u8) -> Option<(Bdf, u16)> {
        let bus = u8::try_from(offset >> 20).ok()?.checked_add(first_bus)?;
        let device = ((offset >> 15) & 0x1f) as u8;
        let function = ((offset >> 12) & 7) as u8;
        let register = (offset & 0xfff) as u16;
        Some((Bdf::new(bus, device, function)?, register))
    }
}

impl fmt::Display for Bdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02x}:{:02x}.{}",
            self.bus(),
            self.device(),
            self.function()
        )
    }
}

impl fmt::Debug for Bdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bdf({self})")
    }
}

/// Parses `bb:dd.f` as lspci prints it (hex bus and device, function 0-7).
impl FromStr for Bdf {
    type Err = BdfParseError;

    fn from_str(text: &str) -> Result<Bdf, BdfParseError> {
        let (bus, rest) = text.split_once(':').ok_or(BdfParseError)?;
        let (device, function) = rest.split_once('.').ok_or(BdfParseError)?;
        let hex = |s: &str| -> Result<u8, BdfParseError> {
            // from_str_radix accepts a leading '+': require plain digits.
            if s.is_empty() || s.len() > 2 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(BdfParseError);
            }
            u8::from_str_radix(s, 16).map_err(|_| BdfParseError)
        };
        if function.len() != 1 {
            return Err(BdfParseError);
        }
        Bdf::new(hex(bus)?, hex(device)?, hex(function)?).ok_or(BdfParseError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn requester_id_packs_bus_device_function() {
        let bdf = Bdf::new(0x01, 0x02, 3).unwrap();
        assert_eq!(bdf.requester_id(), 0x0113);
        assert_eq!(Bdf::from_requester_id(0x0113), bdf);
        assert_eq!((bdf.bus(), bdf.device(), bdf.function()), (1, 2, 3));
    }

    #[test]
    fn out_of_range_device_or_function_is_rejected() {
        assert_eq!(Bdf::new(0, 32, 0), None);
        assert_eq!(Bdf::new(0, 0, 8), None);
    }

    #[test]
    fn prints_and_parses_the_lspci_form() {
        let bdf = Bdf::new(0, 2, 0).unwrap();
        assert_eq!(bdf.to_string(), "00:02.0");
        assert_eq!("00:02.0".parse::<Bdf>(), Ok(bdf));
        assert_eq!(
            "ff:1f.7".parse::<Bdf>(),
            Bdf::new(0xff, 0x1f, 7).ok_or(BdfParseError)
        );
        for bad in [
            "", "00:02", "00.02.0", "00:20.0", "00:02.8", "100:00.0", "+0:00.0", "00:02.00",
        ] {
            assert_eq!(bad.parse::<Bdf>(), Err(BdfParseError), "{bad:?}");
        }
    }

    #[test]
    fn ecam_offset_follows_the_bus_device_function_bit_fields() {
        let bdf = Bdf::new(3, 0x1f, 7).unwrap();
        assert_eq!(bdf.ecam_offset(0), Some(0x3f_f000));
        assert_eq!(bdf.ecam_offset(2), Some(0x1f_f000));
        assert_eq!(bdf.ecam_offset(4), None);
        assert_eq!(Bdf::from_ecam_offset(0x1f_f044, 2), Some((bdf, 0x44)));
        assert_eq!(Bdf::from_ecam_offset(0x100 << 20, 0), None);
        assert_eq!(Bdf::from_ecam_offset(0xff << 20, 1), None);
    }
}
