//! The interrupt controller as the device tree describes it: GICv3 (with
//! its ITSs) or GICv2, and GIC interrupt specifiers.
//!
//! Bindings: Linux `Documentation/devicetree/bindings/interrupt-controller/
//! arm,gic-v3.yaml` and `arm,gic.yaml`.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use super::decode::{self, bad};
use super::tree::{NodeIdx, Tree};
use super::PlatformError;
use crate::ids::PhysIntId;
use crate::mm::addr::{PhysAddr, Range};

/// Compatible strings of a GICv3/v4 distributor node.
const GICV3_COMPATIBLES: &[&str] = &["arm,gic-v3"];
/// Compatible strings of GICv2-class controllers (arm,gic.yaml).
const GICV2_COMPATIBLES: &[&str] = &[
    "arm,gic-400",
    "arm,cortex-a15-gic",
    "arm,cortex-a7-gic",
    "arm,cortex-a9-gic",
    "arm,pl390",
];

/// The INTID space an interrupt specifier's first cell selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InterruptKind {
    /// Shared peripheral interrupt (cell value 0): INTID 32 + number.
    Spi,
    /// Private peripheral interrupt (1): INTID 16 + number.
    Ppi,
    /// GICv3.1 extended SPI (2): INTID 4096 + number.
    ExtendedSpi,
    /// GICv3.1 extended PPI (3): INTID 1056 + number.
    ExtendedPpi,
}

/// One decoded GIC interrupt specifier (type, number, flags).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GicInterrupt {
    /// SPI, PPI or their extended ranges.
    pub kind: InterruptKind,
    /// Number within the kind's range (the binding's second cell).
    pub number: u32,
    /// Trigger flags (third cell): 1/2 edge, 4 level-high, 8 level-low.
    pub flags: u32,
}

impl GicInterrupt {
    /// Decodes the three cells, rejecting numbers outside the kind's range.
    pub fn from_cells(kind: u32, number: u32, flags: u32) -> Option<Self> {
        let (kind, count) = match kind {
            0 => (InterruptKind::Spi, 988),
            1 => (InterruptKind::Ppi, 16),
            2 => (InterruptKind::ExtendedSpi, 1024),
            3 => (InterruptKind::ExtendedPpi, 64),
            _ => return None,
        };
        (number < count).then_some(Self {
            kind,
            number,
            flags,
        })
    }

    /// The interrupt's INTID on the physical GIC.
    pub fn intid(&self) -> Option<PhysIntId> {
        let base: u32 = match self.kind {
            InterruptKind::Spi => 32,
            InterruptKind::Ppi => 16,
            InterruptKind::ExtendedSpi => 4096,
            InterruptKind::ExtendedPpi => 1056,
        };
        base.checked_add(self.number).and_then(PhysIntId::new)
    }

    /// Whether the interrupt is level-sensitive (flags 4 or 8).
    pub fn is_level(&self) -> bool {
        self.flags & 0xc != 0
    }
}

impl fmt::Display for GicInterrupt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            InterruptKind::Spi => "SPI",
            InterruptKind::Ppi => "PPI",
            InterruptKind::ExtendedSpi => "ESPI",
            InterruptKind::ExtendedPpi => "EPPI",
        };
        match self.intid() {
            Some(intid) => write!(f, "{kind} {} (INTID {})", self.number, intid.get()),
            None => write!(
                f,
                "{kind} {} (outside the INTIDs the GIC model takes)",
                self.number
            ),
        }
    }
}

/// The physical interrupt controller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Gic {
    /// GICv3 or GICv4 (the version is read from GICD_PIDR2 / GITS_TYPER at run time).
    V3(GicV3),
    /// GICv2 (GIC-400 and relatives).
    V2(GicV2),
}

/// A GICv3/v4 as described by an `arm,gic-v3` node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GicV3 {
    /// Path of the node, for messages.
    pub node: String,
    /// The node's phandle, which interrupt-parent and msi-parent refer to.
    pub phandle: Option<u32>,
    /// GICD register frame (reg entry 0).
    pub distributor: Range<PhysAddr>,
    /// GICR regions (reg entries 1..=#redistributor-regions).
    pub redistributor_regions: Vec<Range<PhysAddr>>,
    /// Distance between redistributors, if not the architectural 2 or 4 frames.
    pub redistributor_stride: Option<u64>,
    /// ITS children (arm,gic-v3-its), in tree order.
    pub its: Vec<Its>,
    /// The virtual-interface maintenance interrupt (the node's `interrupts`).
    pub maintenance: Option<GicInterrupt>,
}

/// One GICv3 ITS (an `arm,gic-v3-its` child of the GIC node).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Its {
    /// Path of the node, for messages.
    pub node: String,
    /// The node's phandle, which a PCI host bridge's msi-map/msi-parent names.
    pub phandle: Option<u32>,
    /// The ITS register frames (control and translation pages).
    pub registers: Range<PhysAddr>,
}

/// A GICv2 as described by an `arm,gic-400`-class node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GicV2 {
    /// Path of the node, for messages.
    pub node: String,
    /// The node's phandle.
    pub phandle: Option<u32>,
    /// GICD (reg entry 0).
    pub distributor: Range<PhysAddr>,
    /// GICC, the physical CPU interface (reg entry 1).
    pub cpu_interface: Range<PhysAddr>,
    /// GICH, the virtual interface control (reg entry 2; only with virtualization extensions).
    pub hyp_interface: Option<Range<PhysAddr>>,
    /// GICV, the virtual CPU interface a guest uses as its GICC (reg entry 3).
    pub virtual_cpu_interface: Option<Range<PhysAddr>>,
    /// The maintenance interrupt (the node's `interrupts`).
    pub maintenance: Option<GicInterrupt>,
    /// GICv2m MSI frames (arm,gic-v2m-frame children).
    pub msi_frames: Vec<Range<PhysAddr>>,
}

impl Gic {
    /// The architecture major version the node describes (2 or 3).
    pub fn version(&self) -> u8 {
        match self {
            Gic::V3(_) => 3,
            Gic::V2(_) => 2,
        }
    }

    /// The GICD register frame.
    pub fn distributor(&self) -> Range<PhysAddr> {
        match self {
            Gic::V3(gic) => gic.distributor,
            Gic::V2(gic) => gic.distributor,
        }
    }

    /// The maintenance interrupt, if the tree gives one.
    pub fn maintenance(&self) -> Option<GicInterrupt> {
        match self {
            Gic::V3(gic) => gic.maintenance,
            Gic::V2(gic) => gic.maintenance,
        }
    }

    /// The node's phandle.
    pub fn phandle(&self) -> Option<u32> {
        match self {
            Gic::V3(gic) => gic.phandle,
            Gic::V2(gic) => gic.phandle,
        }
    }
}

/// Finds the GIC node: the root's interrupt parent if it is a supported
/// GIC, else the first supported GIC in the tree.
pub(crate) fn find(tree: &Tree) -> Result<NodeIdx, PlatformError> {
    let supported = |&index: &NodeIdx| {
        tree.is_available(index)
            && tree.prop(index, "interrupt-controller").is_some()
            && GICV3_COMPATIBLES
                .iter()
                .chain(GICV2_COMPATIBLES)
                .any(|c| tree.is_compatible(index, c))
    };
    let root_parent =
        decode::u32_prop(tree, 0, "interrupt-parent")?.and_then(|phandle| tree.by_phandle(phandle));
    root_parent
        .filter(supported)
        .or_else(|| (0..tree.nodes.len()).find(supported))
        .ok_or(PlatformError::MissingNode {
            node: "interrupt controller (arm,gic-v3, arm,gic-400 or arm,cortex-a15-gic)",
        })
}

/// Describes the GIC at node `index` (found by [`find`]).
pub(crate) fn parse(tree: &Tree, index: NodeIdx) -> Result<Gic, PlatformError> {
    let regs = decode::reg(tree, index)?;
    let phandle = decode::u32_prop(tree, index, "phandle")?;
    let maintenance = decode::first_interrupt(tree, index, index)?;
    let node = tree.path(index);
    let children = |compatible: &'static str| {
        let tree_children = tree.node(index).children.iter().copied();
        tree_children.filter(move |&c| tree.is_available(c) && tree.is_compatible(c, compatible))
    };
    if GICV3_COMPATIBLES
        .iter()
        .any(|c| tree.is_compatible(index, c))
    {
        let regions =
            decode::u32_prop(tree, index, "#redistributor-regions")?.unwrap_or(1) as usize;
        if regions == 0 || regs.len() < 1 + regions {
            return Err(bad(
                tree,
                index,
                "reg",
                "fewer entries than GICD + #redistributor-regions",
            ));
        }
        let mut its = Vec::new();
        for child in children("arm,gic-v3-its") {
            let registers = decode::reg(tree, child)?;
            its.push(Its {
                node: tree.path(child),
                phandle: decode::u32_prop(tree, child, "phandle")?,
                registers: *registers
                    .first()
                    .ok_or_else(|| bad(tree, child, "reg", "empty"))?,
            });
        }
        return Ok(Gic::V3(GicV3 {
            node,
            phandle,
            distributor: regs[0],
            redistributor_regions: regs[1..=regions].to_vec(),
            redistributor_stride: decode::u64_prop(tree, index, "redistributor-stride")?,
            its,
            maintenance,
        }));
    }
    if regs.len() < 2 {
        return Err(bad(
            tree,
            index,
            "reg",
            "GICv2 needs at least GICD and GICC",
        ));
    }
    let mut msi_frames = Vec::new();
    for child in children("arm,gic-v2m-frame") {
        msi_frames.extend(decode::reg(tree, child)?.first().copied());
    }
    Ok(Gic::V2(GicV2 {
        node,
        phandle,
        distributor: regs[0],
        cpu_interface: regs[1],
        hyp_interface: regs.get(2).copied(),
        virtual_cpu_interface: regs.get(3).copied(),
        maintenance,
        msi_frames,
    }))
}
