//! SMMUv3 nodes (`arm,smmu-v3`) and the PCIe host bridge's `iommu-map`.
//!
//! Bindings: Linux `Documentation/devicetree/bindings/iommu/arm,smmu-v3.yaml`
//! (reg, interrupts named `eventq`, `gerror`, `priq`, `cmdq-sync`,
//! `dma-coherent`, `#iommu-cells = <1>`: the cell is the StreamID) and
//! `pci-iommu.txt` (`iommu-map = <rid-base iommu sid-base length>`,
//! `iommu-map-mask`).

use alloc::string::String;
use alloc::vec::Vec;

use super::decode::{self, bad, take_cells};
use super::gic::GicInterrupt;
use super::tree::{NodeIdx, Tree};
use super::PlatformError;
use crate::mm::addr::{PhysAddr, Range};

/// An SMMUv3 as the device tree describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Smmu {
    /// Path of the node.
    pub node: String,
    /// The register frames (page 0 and page 1, 128 KiB on QEMU).
    pub registers: Range<PhysAddr>,
    /// `phandle`, which `iommu-map` entries name.
    pub phandle: Option<u32>,
    /// The event queue's wired interrupt (`eventq`), if any.
    pub eventq: Option<GicInterrupt>,
    /// The global error interrupt (`gerror`), if any.
    pub gerror: Option<GicInterrupt>,
    /// The PRI queue's interrupt (`priq`), if any.
    pub priq: Option<GicInterrupt>,
    /// The CMD_SYNC completion interrupt (`cmdq-sync`), if any.
    pub cmdq_sync: Option<GicInterrupt>,
    /// `combined`: one interrupt for everything, if the SMMU has that.
    pub combined: Option<GicInterrupt>,
    /// `dma-coherent`: the SMMU's table walks and queue accesses snoop CPU caches.
    pub dma_coherent: bool,
}

/// One `iommu-map` entry: requester IDs `rid_base..rid_base+length` are
/// StreamIDs `sid_base..` of the IOMMU with phandle `iommu`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IommuMapEntry {
    /// First requester ID (bus << 8 | devfn).
    pub rid_base: u32,
    /// phandle of the IOMMU.
    pub iommu: u32,
    /// StreamID of `rid_base`.
    pub sid_base: u32,
    /// Number of requester IDs covered.
    pub length: u32,
}

/// Reads every available `arm,smmu-v3` node.
pub(crate) fn parse_all(tree: &Tree, gic: NodeIdx) -> Result<Vec<Smmu>, PlatformError> {
    let mut smmus = Vec::new();
    for node in tree.find_compatible(&["arm,smmu-v3"]) {
        if tree.is_available(node) {
            smmus.push(parse(tree, node, gic)?);
        }
    }
    Ok(smmus)
}

fn parse(tree: &Tree, node: NodeIdx, gic: NodeIdx) -> Result<Smmu, PlatformError> {
    let registers = *decode::reg(tree, node)?
        .first()
        .ok_or_else(|| bad(tree, node, "reg", "empty"))?;
    let interrupts = decode::interrupts(tree, node, gic)?;
    let names: Vec<&str> = tree.strings(node, "interrupt-names").collect();
    if !interrupts.is_empty() && names.len() != interrupts.len() {
        return Err(bad(
            tree,
            node,
            "interrupt-names",
            "not one name per interrupt",
        ));
    }
    let named = |wanted: &str| {
        names
            .iter()
            .position(|n| *n == wanted)
            .and_then(|i| interrupts.get(i).copied())
    };
    Ok(Smmu {
        node: tree.path(node),
        registers,
        phandle: decode::u32_prop(tree, node, "phandle")?,
        eventq: named("eventq"),
        gerror: named("gerror"),
        priq: named("priq"),
        cmdq_sync: named("cmdq-sync"),
        combined: named("combined"),
        dma_coherent: tree.prop(node, "dma-coherent").is_some(),
    })
}

/// Decodes a PCI host bridge's `iommu-map` (4-cell entries, one-cell sid-base).
pub(crate) fn iommu_map(tree: &Tree, node: NodeIdx) -> Result<Vec<IommuMapEntry>, PlatformError> {
    let Some(mut value) = tree.prop(node, "iommu-map") else {
        return Ok(Vec::new());
    };
    if value.is_empty() || value.len() % 16 != 0 {
        return Err(bad(
            tree,
            node,
            "iommu-map",
            "not a list of (rid-base, phandle, sid-base, length)",
        ));
    }
    let mut entries = Vec::new();
    while let Some(rid_base) = take_cells(&mut value, 1) {
        let mut next = || take_cells(&mut value, 1).unwrap_or_default() as u32;
        let (iommu, sid_base, length) = (next(), next(), next());
        if tree.by_phandle(iommu).is_none() {
            return Err(bad(
                tree,
                node,
                "iommu-map",
                "names an unknown IOMMU phandle",
            ));
        }
        entries.push(IommuMapEntry {
            rid_base: rid_base as u32,
            iommu,
            sid_base,
            length,
        });
    }
    Ok(entries)
}
