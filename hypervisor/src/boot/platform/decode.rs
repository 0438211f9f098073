//! Typed reads of device-tree properties: cells, `reg` translated through
//! the parents' `ranges`, and GIC interrupt specifiers. Every failure names
//! the node and the property.

use alloc::vec::Vec;

use super::gic::GicInterrupt;
use super::tree::{NodeIdx, Tree};
use super::PlatformError;
use crate::mm::addr::{PhysAddr, Range};

/// Most cells in one address or size we decode (PCI addresses take 3).
const MAX_CELLS: u32 = 4;

/// An error about `property` of node `index`.
pub(crate) fn bad(
    tree: &Tree,
    index: NodeIdx,
    property: &'static str,
    reason: &'static str,
) -> PlatformError {
    PlatformError::BadProperty {
        node: tree.path(index),
        property,
        reason,
    }
}

/// The error for a property the hypervisor cannot do without.
pub(crate) fn missing(tree: &Tree, index: NodeIdx, property: &'static str) -> PlatformError {
    PlatformError::MissingProperty {
        node: tree.path(index),
        property,
    }
}

/// Reads `count` big-endian cells from the front of `cells` as one number.
pub(crate) fn take_cells(cells: &mut &[u8], count: u32) -> Option<u128> {
    let bytes = cells.get(..count as usize * 4)?;
    *cells = &cells[bytes.len()..];
    Some(bytes.chunks_exact(4).fold(0u128, |acc, w| {
        (acc << 32) | u128::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
    }))
}

/// A one-cell property (`#address-cells`, `phandle`, ...), if present.
pub(crate) fn u32_prop(
    tree: &Tree,
    index: NodeIdx,
    property: &'static str,
) -> Result<Option<u32>, PlatformError> {
    match tree.prop(index, property) {
        None => Ok(None),
        Some(value) if value.len() == 4 => Ok(take_cells(&mut &value[..], 1).map(|v| v as u32)),
        Some(_) => Err(bad(tree, index, property, "expected one cell")),
    }
}

/// A property of one or two cells (e.g. `linux,initrd-start`, whose width
/// depends on the bootloader), if present.
pub(crate) fn u64_prop(
    tree: &Tree,
    index: NodeIdx,
    property: &'static str,
) -> Result<Option<u64>, PlatformError> {
    match tree.prop(index, property) {
        None => Ok(None),
        Some(value) if value.len() == 4 || value.len() == 8 => {
            Ok(take_cells(&mut &value[..], value.len() as u32 / 4).map(|v| v as u64))
        }
        Some(_) => Err(bad(tree, index, property, "expected one or two cells")),
    }
}

/// DTSpec 2.3.5: the `#address-cells` a node gives its children (default 2).
pub(crate) fn address_cells(tree: &Tree, index: NodeIdx) -> Result<u32, PlatformError> {
    let cells = u32_prop(tree, index, "#address-cells")?.unwrap_or(2);
    if cells > MAX_CELLS {
        return Err(bad(tree, index, "#address-cells", "more than 4 cells"));
    }
    Ok(cells)
}

/// DTSpec 2.3.5: the `#size-cells` a node gives its children (default 1).
pub(crate) fn size_cells(tree: &Tree, index: NodeIdx) -> Result<u32, PlatformError> {
    let cells = u32_prop(tree, index, "#size-cells")?.unwrap_or(1);
    if cells > MAX_CELLS {
        return Err(bad(tree, index, "#size-cells", "more than 4 cells"));
    }
    Ok(cells)
}

/// The `reg` entries of a node as (bus address, size), in its parent's cells.
pub(crate) fn raw_reg(tree: &Tree, index: NodeIdx) -> Result<Vec<(u128, u128)>, PlatformError> {
    let parent = tree
        .node(index)
        .parent
        .ok_or_else(|| bad(tree, index, "reg", "the root has no reg"))?;
    let (address_cells, size_cells) = (address_cells(tree, parent)?, size_cells(tree, parent)?);
    let mut value = tree
        .prop(index, "reg")
        .ok_or_else(|| missing(tree, index, "reg"))?;
    let entry = (address_cells + size_cells) as usize * 4;
    if entry == 0 || value.is_empty() || value.len() % entry != 0 {
        return Err(bad(
            tree,
            index,
            "reg",
            "length is not a whole number of (address, size) entries",
        ));
    }
    let mut entries = Vec::new();
    while let (Some(address), Some(size)) = (
        take_cells(&mut value, address_cells),
        take_cells(&mut value, size_cells),
    ) {
        entries.push((address, size));
    }
    Ok(entries)
}

/// The `reg` entries of a node as CPU physical ranges.
pub(crate) fn reg(tree: &Tree, index: NodeIdx) -> Result<Vec<Range<PhysAddr>>, PlatformError> {
    let parent = tree.node(index).parent.unwrap_or(0);
    let mut ranges = Vec::new();
    for (address, size) in raw_reg(tree, index)? {
        let start = translate(tree, index, "reg", parent, address)?;
        let size =
            u64::try_from(size).map_err(|_| bad(tree, index, "reg", "size wider than 64 bits"))?;
        if start.checked_add(size).is_none() {
            return Err(bad(
                tree,
                index,
                "reg",
                "range wraps past the end of the address space",
            ));
        }
        ranges.push(Range { start, size });
    }
    Ok(ranges)
}

/// DTSpec 2.3.8: maps `address`, an address on the bus `bus` (the parent of
/// `node`, from its `property`), to a CPU physical address through each ancestor's `ranges`.
pub(crate) fn translate(
    tree: &Tree,
    node: NodeIdx,
    property: &'static str,
    bus: NodeIdx,
    address: u128,
) -> Result<PhysAddr, PlatformError> {
    let mut address = address;
    let mut bus = bus;
    while let Some(up) = tree.node(bus).parent {
        match tree.prop(bus, "ranges") {
            // Linux (of_translate_address) also refuses a bus without `ranges`.
            None => {
                return Err(bad(
                    tree,
                    bus,
                    "ranges",
                    "missing: children are not visible to the CPU",
                ))
            }
            Some([]) => {}
            Some(mut value) => {
                let child_cells = address_cells(tree, bus)?;
                let (parent_cells, size_cells) = (address_cells(tree, up)?, size_cells(tree, bus)?);
                if child_cells > 2 {
                    return Err(bad(
                        tree,
                        bus,
                        "ranges",
                        "translation through a bus with 3-cell addresses",
                    ));
                }
                let mut mapped = None;
                while let (Some(child), Some(parent), Some(size)) = (
                    take_cells(&mut value, child_cells),
                    take_cells(&mut value, parent_cells),
                    take_cells(&mut value, size_cells),
                ) {
                    if address >= child && address - child < size {
                        mapped = parent.checked_add(address - child);
                        break;
                    }
                }
                address = mapped.ok_or_else(|| {
                    bad(
                        tree,
                        node,
                        property,
                        "address outside the parent bus's ranges",
                    )
                })?;
            }
        }
        bus = up;
    }
    u64::try_from(address)
        .map(PhysAddr)
        .map_err(|_| bad(tree, node, property, "address wider than 64 bits"))
}

/// DTSpec 2.4.1 (Linux `of_irq_find_parent`): the node's interrupt parent
/// is its `interrupt-parent` or else its tree parent, followed until a node
/// with `#interrupt-cells`.
pub(crate) fn interrupt_parent(tree: &Tree, index: NodeIdx) -> Option<NodeIdx> {
    let mut at = index;
    // A phandle cycle must not loop forever: no chain is longer than the tree.
    for _ in 0..tree.nodes.len() {
        let next = match tree.prop(at, "interrupt-parent") {
            Some(value) => tree.by_phandle(take_cells(&mut &value[..], 1)? as u32)?,
            None => tree.node(at).parent?,
        };
        if tree.prop(next, "#interrupt-cells").is_some() {
            return Some(next);
        }
        at = next;
    }
    None
}

/// The node's `interrupts`, decoded as specifiers of the GIC at `gic`
/// (an empty list if it has none).
pub(crate) fn interrupts(
    tree: &Tree,
    index: NodeIdx,
    gic: NodeIdx,
) -> Result<Vec<GicInterrupt>, PlatformError> {
    let Some(mut value) = tree.prop(index, "interrupts") else {
        return Ok(Vec::new());
    };
    // A tree with no interrupt-parent anywhere has one controller: the GIC.
    let parent = interrupt_parent(tree, index).unwrap_or(gic);
    if parent != gic {
        return Err(bad(
            tree,
            index,
            "interrupts",
            "interrupt parent is not the GIC",
        ));
    }
    let cells = u32_prop(tree, gic, "#interrupt-cells")?
        .ok_or_else(|| missing(tree, gic, "#interrupt-cells"))?;
    // arm,gic-v3 binding: 3 cells, or 4 with a PPI partition phandle.
    if !(3..=MAX_CELLS).contains(&cells) || value.len() % (cells as usize * 4) != 0 {
        return Err(bad(
            tree,
            index,
            "interrupts",
            "not a list of 3-cell GIC specifiers",
        ));
    }
    let mut specifiers = Vec::new();
    while let Some(kind) = take_cells(&mut value, 1) {
        let number = take_cells(&mut value, 1).unwrap_or_default();
        let flags = take_cells(&mut value, 1).unwrap_or_default();
        take_cells(&mut value, cells - 3);
        let specifier = GicInterrupt::from_cells(kind as u32, number as u32, flags as u32)
            .ok_or_else(|| {
                bad(
                    tree,
                    index,
                    "interrupts",
                    "unknown interrupt type or number out of range",
                )
            })?;
        specifiers.push(specifier);
    }
    Ok(specifiers)
}

/// The first `interrupts` specifier of a node, if any.
pub(crate) fn first_interrupt(
    tree: &Tree,
    index: NodeIdx,
    gic: NodeIdx,
) -> Result<Option<GicInterrupt>, PlatformError> {
    Ok(interrupts(tree, index, gic)?.first().copied())
}
