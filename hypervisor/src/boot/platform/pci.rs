//! PCIe host bridges with ECAM (`pci-host-ecam-generic`).
//!
//! Bindings: Linux `Documentation/devicetree/bindings/pci/host-generic-pci.yaml`,
//! the PCI bus binding (IEEE 1275 PCI, phys.hi cell layout) and `pci-msi.txt`.

use alloc::string::String;
use alloc::vec::Vec;

use super::decode::{self, bad, take_cells};
use super::smmu::IommuMapEntry;
use super::tree::{NodeIdx, Tree};
use super::PlatformError;
use crate::mm::addr::{PhysAddr, Range};

/// The address space of a `ranges` entry (phys.hi bits 25:24).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PciSpace {
    /// I/O space (01).
    Io,
    /// 32-bit memory space (10).
    Mem32,
    /// 64-bit memory space (11).
    Mem64,
}

/// One window through which the CPU reaches PCI space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PciWindow {
    /// I/O, 32-bit or 64-bit memory.
    pub space: PciSpace,
    /// phys.hi bit 30: the window may be mapped prefetchable.
    pub prefetchable: bool,
    /// Address on the PCI side (what BARs are programmed with).
    pub pci_address: u64,
    /// Where the CPU sees it.
    pub cpu_address: PhysAddr,
    /// Size in bytes.
    pub size: u64,
}

/// One `msi-map` entry: requester IDs `rid_base..rid_base+length` map to
/// MSI specifiers (ITS DeviceIDs) `msi_base..` of controller `msi_controller`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsiMapEntry {
    /// First requester ID (bus << 8 | devfn).
    pub rid_base: u32,
    /// phandle of the MSI controller (an ITS).
    pub msi_controller: u32,
    /// DeviceID of `rid_base` at that controller.
    pub msi_base: u32,
    /// Number of requester IDs covered.
    pub length: u32,
}

/// A generic ECAM PCIe host bridge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PciHostBridge {
    /// Path of the node.
    pub node: String,
    /// The ECAM configuration space (1 MiB per bus).
    pub ecam: Range<PhysAddr>,
    /// First bus number (`bus-range`, default 0).
    pub first_bus: u8,
    /// Last bus number (`bus-range`, default 255).
    pub last_bus: u8,
    /// The `ranges` windows, in tree order.
    pub windows: Vec<PciWindow>,
    /// `msi-parent` phandle, if MSIs are not mapped per requester ID.
    pub msi_parent: Option<u32>,
    /// `msi-map` entries (the requester ID to DeviceID mapping).
    pub msi_map: Vec<MsiMapEntry>,
    /// `msi-map-mask` applied to a requester ID before the lookup.
    pub msi_map_mask: Option<u32>,
    /// `iommu-map` entries (the requester ID to SMMU StreamID mapping).
    pub iommu_map: Vec<IommuMapEntry>,
    /// `iommu-map-mask` applied to a requester ID before the lookup.
    pub iommu_map_mask: Option<u32>,
    /// `dma-coherent`: devices snoop CPU caches.
    pub dma_coherent: bool,
    /// `linux,pci-domain` (the PCI segment), if given.
    pub domain: Option<u32>,
}

impl PciHostBridge {
    /// The ITS DeviceID of requester ID `rid`, by the bridge's `msi-map`
    /// (Linux binding pci-msi.txt: the RID masked with `msi-map-mask`, then
    /// the entry whose range holds it, offset from its `msi-base`); without
    /// an `msi-map` the DeviceID is the RID (`msi-parent`). `None`: the map
    /// has no entry for it, so the function cannot send MSIs.
    pub fn device_id(&self, rid: u16) -> Option<u32> {
        if self.msi_map.is_empty() {
            return Some(u32::from(rid));
        }
        let rid = u32::from(rid) & self.msi_map_mask.unwrap_or(0xffff);
        self.msi_map.iter().find_map(|e| {
            let offset = rid.checked_sub(e.rid_base)?;
            (offset < e.length).then(|| e.msi_base.wrapping_add(offset))
        })
    }

    /// The StreamID of requester ID `rid` at the IOMMU with phandle
    /// `iommu`, by the bridge's `iommu-map` (pci-iommu.txt: the RID masked
    /// with `iommu-map-mask`, the entry whose range holds it, offset from
    /// its `sid-base`). `None`: no entry maps it to that IOMMU, so its DMA
    /// does not go through it.
    pub fn stream_id(&self, rid: u16, iommu: u32) -> Option<u32> {
        let rid = u32::from(rid) & self.iommu_map_mask.unwrap_or(0xffff);
        self.iommu_map.iter().find_map(|e| {
            let offset = rid.checked_sub(e.rid_base)?;
            (e.iommu == iommu && offset < e.length).then(|| e.sid_base.wrapping_add(offset))
        })
    }

    /// The first window of `space` (non-prefetchable preferred).
    pub fn window(&self, space: PciSpace) -> Option<&PciWindow> {
        let mut candidates = self.windows.iter().filter(|w| w.space == space);
        let first = candidates.clone().next();
        candidates.find(|w| !w.prefetchable).or(first)
    }

    /// The I/O window, if any.
    pub fn io(&self) -> Option<&PciWindow> {
        self.window(PciSpace::Io)
    }

    /// The 32-bit memory window, if any.
    pub fn mem32(&self) -> Option<&PciWindow> {
        self.window(PciSpace::Mem32)
    }

    /// The 64-bit memory window, if any.
    pub fn mem64(&self) -> Option<&PciWindow> {
        self.window(PciSpace::Mem64)
    }
}

/// Reads every available ECAM host bridge.
pub(crate) fn parse_all(tree: &Tree) -> Result<Vec<PciHostBridge>, PlatformError> {
    let mut bridges = Vec::new();
    for node in tree.find_compatible(&["pci-host-ecam-generic"]) {
        if tree.is_available(node) {
            bridges.push(parse(tree, node)?);
        }
    }
    Ok(bridges)
}

fn parse(tree: &Tree, node: NodeIdx) -> Result<PciHostBridge, PlatformError> {
    let ecam = *decode::reg(tree, node)?
        .first()
        .ok_or_else(|| bad(tree, node, "reg", "empty"))?;
    let (first_bus, last_bus) = match tree.prop(node, "bus-range") {
        None => (0, 255),
        Some(mut value) => {
            let first = take_cells(&mut value, 1).and_then(|b| u8::try_from(b).ok());
            let last = take_cells(&mut value, 1).and_then(|b| u8::try_from(b).ok());
            match (first, last) {
                (Some(first), Some(last)) if first <= last && value.is_empty() => (first, last),
                _ => {
                    return Err(bad(
                        tree,
                        node,
                        "bus-range",
                        "not two bus numbers, first <= last <= 255",
                    ))
                }
            }
        }
    };
    let msi_parent = match tree.prop(node, "msi-parent") {
        // The phandle is the first cell; any further cells are its specifier.
        Some(mut value) => Some(
            take_cells(&mut value, 1).ok_or_else(|| bad(tree, node, "msi-parent", "empty"))? as u32,
        ),
        None => None,
    };
    Ok(PciHostBridge {
        node: tree.path(node),
        ecam,
        first_bus,
        last_bus,
        windows: windows(tree, node)?,
        msi_parent,
        msi_map: msi_map(tree, node)?,
        msi_map_mask: decode::u32_prop(tree, node, "msi-map-mask")?,
        iommu_map: super::smmu::iommu_map(tree, node)?,
        iommu_map_mask: decode::u32_prop(tree, node, "iommu-map-mask")?,
        dma_coherent: tree.prop(node, "dma-coherent").is_some(),
        domain: decode::u32_prop(tree, node, "linux,pci-domain")?,
    })
}

/// Decodes `ranges`: (phys.hi, pci address 2 cells, CPU address, size).
fn windows(tree: &Tree, node: NodeIdx) -> Result<Vec<PciWindow>, PlatformError> {
    let bus = tree.node(node).parent.unwrap_or(0);
    let cpu_cells = decode::address_cells(tree, bus)?;
    if decode::address_cells(tree, node)? != 3 {
        return Err(bad(
            tree,
            node,
            "#address-cells",
            "a PCI bus has 3-cell addresses",
        ));
    }
    let size_cells = decode::size_cells(tree, node)?;
    let mut value = tree.prop(node, "ranges").unwrap_or_default();
    let entry = (3 + cpu_cells + size_cells) as usize * 4;
    if !value.len().is_multiple_of(entry) {
        return Err(bad(
            tree,
            node,
            "ranges",
            "length is not a whole number of entries",
        ));
    }
    let mut windows = Vec::new();
    while let Some(phys_hi) = take_cells(&mut value, 1) {
        let pci_address = take_cells(&mut value, 2).unwrap_or_default() as u64;
        let cpu_address = take_cells(&mut value, cpu_cells).unwrap_or_default();
        let size = u64::try_from(take_cells(&mut value, size_cells).unwrap_or_default())
            .map_err(|_| bad(tree, node, "ranges", "size wider than 64 bits"))?;
        let space = match (phys_hi >> 24) & 3 {
            1 => PciSpace::Io,
            2 => PciSpace::Mem32,
            3 => PciSpace::Mem64,
            _ => return Err(bad(tree, node, "ranges", "configuration space in ranges")),
        };
        let cpu_address = decode::translate(tree, node, "ranges", bus, cpu_address)?;
        if cpu_address.checked_add(size).is_none() {
            return Err(bad(
                tree,
                node,
                "ranges",
                "window wraps past the end of the address space",
            ));
        }
        let prefetchable = phys_hi & (1 << 30) != 0;
        windows.push(PciWindow {
            space,
            prefetchable,
            pci_address,
            cpu_address,
            size,
        });
    }
    Ok(windows)
}

/// Decodes `msi-map` (pci-msi.txt: 4-cell entries, one-cell msi-base).
fn msi_map(tree: &Tree, node: NodeIdx) -> Result<Vec<MsiMapEntry>, PlatformError> {
    let Some(mut value) = tree.prop(node, "msi-map") else {
        return Ok(Vec::new());
    };
    if value.is_empty() || value.len() % 16 != 0 {
        return Err(bad(
            tree,
            node,
            "msi-map",
            "not a list of (rid-base, phandle, msi-base, length)",
        ));
    }
    let mut entries = Vec::new();
    while let Some(rid_base) = take_cells(&mut value, 1) {
        let mut next = || take_cells(&mut value, 1).unwrap_or_default() as u32;
        let (msi_controller, msi_base, length) = (next(), next(), next());
        if tree.by_phandle(msi_controller).is_none() {
            return Err(bad(
                tree,
                node,
                "msi-map",
                "names an unknown MSI controller phandle",
            ));
        }
        entries.push(MsiMapEntry {
            rid_base: rid_base as u32,
            msi_controller,
            msi_base,
            length,
        });
    }
    Ok(entries)
}

#[cfg(test)]
mod device_id_tests {
    use super::*;

    fn bridge(map: Vec<MsiMapEntry>, mask: Option<u32>) -> PciHostBridge {
        let mut b = crate::boot::platform::Platform::from_fdt(include_bytes!(
            "../../../testdata/qemu-virt-gicv4.dtb"
        ))
        .expect("fixture parses")
        .pci
        .remove(0);
        b.msi_map = map;
        b.msi_map_mask = mask;
        b
    }

    fn entry(rid_base: u32, msi_base: u32, length: u32) -> MsiMapEntry {
        MsiMapEntry {
            rid_base,
            msi_controller: 1,
            msi_base,
            length,
        }
    }

    #[test]
    fn without_msi_map_the_device_id_is_the_requester_id() {
        assert_eq!(bridge(Vec::new(), None).device_id(0x0108), Some(0x0108));
    }

    #[test]
    fn msi_map_offsets_the_requester_id_into_its_range() {
        let b = bridge(
            vec![
                entry(0x0000, 0x1_0000, 0x100),
                entry(0x0100, 0x2_0000, 0x100),
            ],
            None,
        );
        assert_eq!(b.device_id(0x0008), Some(0x1_0008));
        assert_eq!(b.device_id(0x0108), Some(0x2_0008));
        assert_eq!(b.device_id(0x0208), None, "no entry covers bus 2");
    }

    #[test]
    fn msi_map_mask_applies_before_the_lookup() {
        let b = bridge(vec![entry(0, 0x40, 8)], Some(0x7));
        assert_eq!(b.device_id(0x0105), Some(0x45));
    }
}
