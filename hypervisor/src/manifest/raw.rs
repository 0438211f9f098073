//! The manifest as written: serde shapes that mirror the TOML, converted to
//! the typed [`PartitionConfig`] once deserialization succeeds.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use super::{HypervisorConfig, ImageConfig, PartitionConfig, RamConfig, DEFAULT_CONSOLE_IPA};
use crate::ids::CpuIndex;
use crate::mm::Ipa;
use crate::pci::Bdf;

/// The whole document.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawManifest {
    /// `[[partition]]` tables; an absent key is reported by validation.
    #[serde(default)]
    pub partition: Vec<RawPartition>,
    /// The `[hypervisor]` table (defaults if absent).
    #[serde(default)]
    pub hypervisor: RawHypervisor,
}

/// The `[hypervisor]` table.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHypervisor {
    /// The heap, in bytes or with a K/M/G suffix; range checked by validation.
    heap: Option<ByteSize>,
}

impl RawHypervisor {
    pub(super) fn into_config(self) -> HypervisorConfig {
        HypervisorConfig {
            heap: self.heap.map(|h| h.0),
        }
    }
}

/// A `cpus` list: each entry must be a CPU index the hypervisor can drive
/// (below [`CpuIndex::COUNT`]); whether the machine has it is validation's job.
fn cpu_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<CpuIndex>, D::Error> {
    Vec::<u16>::deserialize(deserializer)?
        .into_iter()
        .map(|raw| {
            CpuIndex::new(raw).ok_or_else(|| {
                de::Error::custom(format!(
                    "CPU {raw} is beyond the {} CPUs the hypervisor drives",
                    CpuIndex::COUNT
                ))
            })
        })
        .collect()
}

/// A `pci` list: each entry a `bb:dd.f` address; whether the machine has
/// it is validation's job.
fn pci_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Bdf>, D::Error> {
    Vec::<String>::deserialize(deserializer)?
        .into_iter()
        .map(|text| {
            text.parse().map_err(|_| {
                de::Error::custom(format!(
                    "{text:?} is not a PCI address (use bus:device.function, e.g. \"00:01.0\")"
                ))
            })
        })
        .collect()
}

/// One `[[partition]]` table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPartition {
    name: String,
    #[serde(deserialize_with = "cpu_list")]
    cpus: Vec<CpuIndex>,
    ram: RawRam,
    #[serde(default)]
    identity_mapped: bool,
    kernel: RawKernel,
    initrd: Option<RawImage>,
    #[serde(default)]
    bootargs: String,
    console_ipa: Option<u64>,
    /// PCI functions given to the partition, by host address ("00:01.0"),
    /// parsed here once.
    #[serde(default, deserialize_with = "pci_list")]
    pci: Vec<Bdf>,
    /// Limits of the partition's virtual ITS (defaults if absent).
    #[serde(default)]
    its: RawIts,
    /// What a vCPU's WFI does.
    #[serde(default)]
    wfi: super::WfiPolicy,
    /// Whether DMA no SMMU confines is accepted.
    #[serde(default)]
    dma: super::DmaPolicy,
}

/// `[partition.its]`: what bounds the vITS's memory and work per trap.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawIts {
    max_devices: Option<usize>,
    max_events: Option<usize>,
    max_collections: Option<usize>,
    max_commands_per_trap: Option<usize>,
    count: Option<usize>,
}

/// `ram = { ipa, size }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRam {
    ipa: u64,
    size: ByteSize,
}

/// `initrd = { image, ipa }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImage {
    image: String,
    ipa: u64,
}

/// `kernel = { image, ipa, format }`: `format = "raw"` for a binary
/// without the arm64 Image header.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKernel {
    image: String,
    ipa: u64,
    #[serde(default)]
    format: crate::boot::guest_image::ImageFormat,
}

impl RawPartition {
    /// The typed configuration (no validation beyond the shape).
    pub(super) fn into_config(self) -> PartitionConfig {
        PartitionConfig {
            name: self.name,
            cpus: self.cpus,
            ram: RamConfig {
                ipa: Ipa(self.ram.ipa),
                size: self.ram.size.0,
            },
            identity_mapped: self.identity_mapped,
            kernel: self.kernel.into_config(),
            initrd: self.initrd.map(RawImage::into_config),
            bootargs: self.bootargs,
            console_ipa: Ipa(self.console_ipa.unwrap_or(DEFAULT_CONSOLE_IPA.0)),
            pci: self.pci,
            its: super::ItsLimits {
                max_devices: self
                    .its
                    .max_devices
                    .unwrap_or(super::ItsLimits::DEFAULT.max_devices),
                max_events: self
                    .its
                    .max_events
                    .unwrap_or(super::ItsLimits::DEFAULT.max_events),
                max_collections: self
                    .its
                    .max_collections
                    .unwrap_or(super::ItsLimits::DEFAULT.max_collections),
                max_commands_per_trap: self
                    .its
                    .max_commands_per_trap
                    .unwrap_or(super::ItsLimits::DEFAULT.max_commands_per_trap),
                count: self.its.count.unwrap_or(super::ItsLimits::DEFAULT.count),
            },
            dma: self.dma,
            wfi: self.wfi,
        }
    }
}

impl RawImage {
    fn into_config(self) -> ImageConfig {
        ImageConfig {
            image: self.image,
            ipa: Ipa(self.ipa),
            format: crate::boot::guest_image::ImageFormat::Raw,
        }
    }
}

impl RawKernel {
    fn into_config(self) -> ImageConfig {
        ImageConfig {
            image: self.image,
            ipa: Ipa(self.ipa),
            format: self.format,
        }
    }
}

/// A byte count written as an integer or as a string with a K/M/G suffix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ByteSize(u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ByteSizeVisitor)
    }
}

struct ByteSizeVisitor;

impl Visitor<'_> for ByteSizeVisitor {
    type Value = ByteSize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a size: bytes or a string with a K/M/G suffix")
    }

    fn visit_u64<E: de::Error>(self, bytes: u64) -> Result<ByteSize, E> {
        Ok(ByteSize(bytes))
    }

    fn visit_i64<E: de::Error>(self, bytes: i64) -> Result<ByteSize, E> {
        u64::try_from(bytes)
            .map(ByteSize)
            .map_err(|_| E::custom(format!("{bytes} is not a size (it is negative)")))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<ByteSize, E> {
        parse_size(text)
            .map(ByteSize)
            .ok_or_else(|| E::custom(format!("{text:?} is not a size (use bytes or K/M/G)")))
    }
}

/// Parses `"<decimal digits>[K|M|G]"` (binary multiples), `None` if malformed
/// or too large for 64 bits.
pub(super) fn parse_size(text: &str) -> Option<u64> {
    let suffixes = [('K', 10), ('M', 20), ('G', 30)];
    let (digits, shift) = suffixes
        .iter()
        .find_map(|&(suffix, shift)| Some((text.strip_suffix(suffix)?, shift)))
        .unwrap_or((text, 0));
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value: u64 = digits.parse().ok()?;
    value.checked_mul(1u64 << shift)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn size_suffixes_are_binary_multiples() {
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("4K"), Some(4 << 10));
        assert_eq!(parse_size("64M"), Some(64 << 20));
        assert_eq!(parse_size("2G"), Some(2 << 30));
    }

    #[test]
    fn malformed_sizes_are_rejected() {
        for text in [
            "", "M", "64Q", "64m", "-1M", "1.5G", " 64M", "64 M", "0x10M",
        ] {
            assert_eq!(parse_size(text), None, "{text:?}");
        }
    }

    #[test]
    fn size_overflow_is_rejected() {
        assert_eq!(parse_size("18446744073709551616"), None);
        assert_eq!(parse_size("17179869184G"), None);
    }
}
