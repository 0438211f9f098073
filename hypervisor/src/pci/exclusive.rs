//! PCI functions given to different partitions must not share the IDs the
//! interrupt and DMA hardware tell them apart by: the ITS knows a
//! function's MSIs only by its DeviceID, the SMMU its DMA only by its
//! StreamID. Functions behind a PCIe-to-PCI bridge, or a `msi-map` /
//! `iommu-map` that folds requester IDs together, can share one; given to
//! two partitions, one partition's device would raise the other's
//! interrupts or DMA through the other's stage 2. Such a manifest is
//! refused at boot, before any guest runs.

use super::Bdf;
use alloc::format;
use alloc::string::String;

/// One PCI function given to a partition, with the IDs the machine uses for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AssignedFunction<'a> {
    /// The partition it is given to.
    pub partition: &'a str,
    /// Its host address.
    pub bdf: Bdf,
    /// Its physical ITS DeviceID (`msi-map`), if it has one.
    pub device_id: Option<u32>,
    /// Its SMMU StreamID (`iommu-map`), if an SMMU translates its DMA.
    pub stream_id: Option<u32>,
}

/// Checks that no two functions of different partitions share a DeviceID
/// or a StreamID; the error names both functions, both partitions and
/// what they share.
pub fn check_exclusive_ids(functions: &[AssignedFunction<'_>]) -> Result<(), String> {
    for (i, a) in functions.iter().enumerate() {
        for b in &functions[..i] {
            if a.partition == b.partition {
                continue;
            }
            let shared = [
                ("DeviceID", a.device_id, b.device_id, "their MSIs"),
                ("StreamID", a.stream_id, b.stream_id, "their DMA"),
            ];
            for (what, x, y, consequence) in shared {
                if let (Some(x), Some(y)) = (x, y) {
                    if x == y {
                        return Err(format!(
                            "PCI function {} (partition \"{}\") and {} (partition \"{}\") share {what} {x:#x}: {consequence} cannot be told apart; give both to one partition",
                            a.bdf, a.partition, b.bdf, b.partition
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(
        partition: &str,
        bdf: &str,
        device_id: u32,
        stream_id: Option<u32>,
    ) -> AssignedFunction<'static> {
        AssignedFunction {
            partition: if partition == "alpha" {
                "alpha"
            } else {
                "beta"
            },
            bdf: bdf.parse().unwrap(),
            device_id: Some(device_id),
            stream_id,
        }
    }

    #[test]
    fn distinct_ids_pass() {
        let all = [
            f("alpha", "00:02.0", 0x10, Some(0x10)),
            f("beta", "00:03.0", 0x18, Some(0x18)),
        ];
        assert_eq!(check_exclusive_ids(&all), Ok(()));
    }

    #[test]
    fn a_device_id_shared_across_partitions_is_refused_naming_both() {
        // Two functions behind a PCIe-to-PCI bridge: one requester ID.
        let all = [
            f("alpha", "01:00.0", 0x100, Some(0x100)),
            f("beta", "01:01.0", 0x100, Some(0x108)),
        ];
        let e = check_exclusive_ids(&all).unwrap_err();
        assert!(e.contains("01:01.0 (partition \"beta\")"), "{e}");
        assert!(e.contains("01:00.0 (partition \"alpha\")"), "{e}");
        assert!(e.contains("DeviceID 0x100"), "{e}");
    }

    #[test]
    fn a_stream_id_shared_across_partitions_is_refused() {
        let all = [
            f("alpha", "00:02.0", 0x10, Some(0x40)),
            f("beta", "00:03.0", 0x18, Some(0x40)),
        ];
        let e = check_exclusive_ids(&all).unwrap_err();
        assert!(
            e.contains("StreamID 0x40") && e.contains("their DMA"),
            "{e}"
        );
    }

    #[test]
    fn sharing_within_one_partition_is_allowed_and_missing_ids_never_match() {
        let all = [
            f("alpha", "01:00.0", 0x100, Some(0x100)),
            f("alpha", "01:01.0", 0x100, Some(0x100)),
            AssignedFunction {
                partition: "beta",
                bdf: "00:05.0".parse().unwrap(),
                device_id: None,
                stream_id: None,
            },
        ];
        assert_eq!(check_exclusive_ids(&all), Ok(()));
    }
}
