//! What the partition's manifest decides about one virtual ITS: its ID
//! widths, its vCPUs, the caps that bound its memory, and which devices
//! stand behind its virtual DeviceIDs.

use alloc::collections::BTreeMap;

use crate::ids::{PartitionId, PhysDeviceId, VirtDeviceId, VirtIntId, FIRST_LPI};

/// What stands behind a virtual DeviceID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceBacking {
    /// A physical device passed through to the partition.
    Passthrough(PhysDeviceId),
    /// A device the hypervisor emulates; its MSIs come through
    /// [`super::Vits::send_msi`].
    Emulated,
    /// Nothing: the guest may still map it and raise INT commands.
    Nothing,
}

/// The configuration of one virtual ITS, taken from the partition config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VitsConfig {
    /// The partition this vITS belongs to (for logs).
    pub partition: PartitionId,
    /// Which vITS of the partition this is (for logs).
    pub index: u8,
    /// DeviceID width (GITS_TYPER.Devbits + 1), 1..=32.
    pub device_id_bits: u8,
    /// EventID width (GITS_TYPER.ID_bits + 1), 1..=32.
    pub event_id_bits: u8,
    /// INTID width of the guest's LPIs (GICD_TYPER.IDbits + 1), 14..=32.
    pub lpi_id_bits: u8,
    /// Collection ID width (GITS_TYPER.CIDbits + 1), 1..=16.
    pub collection_id_bits: u8,
    /// Number of vCPUs; a collection targets a vCPU by processor number.
    pub num_vcpus: u16,
    /// Most devices mapped at once.
    pub max_devices: usize,
    /// Most events mapped at once, over all devices.
    pub max_events: usize,
    /// Most collections mapped at once (MAPC of a new ICID beyond it is
    /// skipped and counted): bounds the collection state whatever
    /// `collection_id_bits` allows.
    pub max_collections: usize,
    /// Most commands processed per trap (CWRITER write or CREADR read).
    pub max_commands_per_trap: usize,
    /// The devices behind virtual DeviceIDs; IDs not listed are `Nothing`.
    pub devices: BTreeMap<VirtDeviceId, DeviceBacking>,
    /// The DeviceID a CPU write to GITS_TRANSLATER carries, if any (on
    /// QEMU virt a CPU's MSI write carries requester ID 0).
    pub cpu_device_id: Option<VirtDeviceId>,
}

/// Why a [`VitsConfig`] was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// An ID width is outside what GITS_TYPER can express.
    IdBits { field: &'static str, bits: u8 },
    /// The partition has no vCPU.
    NoVcpus,
    /// A cap is zero.
    ZeroCap { field: &'static str },
    /// A configured virtual DeviceID does not fit `device_id_bits`.
    DeviceIdTooWide { device: VirtDeviceId },
    /// Two virtual DeviceIDs name the same physical device.
    AliasedDevice {
        first: VirtDeviceId,
        second: VirtDeviceId,
    },
}

impl VitsConfig {
    /// Checks every field; the vITS relies on these bounds everywhere.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_bits("device_id_bits", self.device_id_bits, 1, 32)?;
        check_bits("event_id_bits", self.event_id_bits, 1, 32)?;
        // The guest's LPI range must hold at least one LPI above 8191.
        check_bits("lpi_id_bits", self.lpi_id_bits, 14, 32)?;
        check_bits("collection_id_bits", self.collection_id_bits, 1, 16)?;
        if self.num_vcpus == 0 {
            return Err(ConfigError::NoVcpus);
        }
        for (field, cap) in [
            ("max_devices", self.max_devices),
            ("max_events", self.max_events),
            ("max_collections", self.max_collections),
            ("max_commands_per_trap", self.max_commands_per_trap),
        ] {
            if cap == 0 {
                return Err(ConfigError::ZeroCap { field });
            }
        }
        let mut seen: BTreeMap<PhysDeviceId, VirtDeviceId> = BTreeMap::new();
        for (&device, backing) in &self.devices {
            if !fits(u64::from(device.get()), self.device_id_bits) {
                return Err(ConfigError::DeviceIdTooWide { device });
            }
            if let DeviceBacking::Passthrough(phys) = backing {
                if let Some(&first) = seen.get(phys) {
                    return Err(ConfigError::AliasedDevice {
                        first,
                        second: device,
                    });
                }
                seen.insert(*phys, device);
            }
        }
        Ok(())
    }

    /// What stands behind a virtual DeviceID.
    pub fn backing(&self, device: VirtDeviceId) -> DeviceBacking {
        self.devices
            .get(&device)
            .copied()
            .unwrap_or(DeviceBacking::Nothing)
    }

    /// `intid` as the guest's INTID if it is an LPI of the guest's range (the
    /// decode boundary of MAPTI/MAPI).
    pub fn guest_lpi(&self, intid: u32) -> Option<VirtIntId> {
        VirtIntId::new_lpi(intid, self.lpi_id_bits)
    }

    /// Whether `intid` is an LPI of the guest's range.
    pub fn is_guest_lpi(&self, intid: u32) -> bool {
        intid >= FIRST_LPI && fits(u64::from(intid), self.lpi_id_bits)
    }
}

/// Whether `value` fits in `bits` bits (`bits` <= 63).
pub(super) fn fits(value: u64, bits: u8) -> bool {
    value >> bits == 0
}

fn check_bits(field: &'static str, bits: u8, min: u8, max: u8) -> Result<(), ConfigError> {
    if bits < min || bits > max {
        return Err(ConfigError::IdBits { field, bits });
    }
    Ok(())
}
