//! What the first instructions after the MMU-off entry need from the host
//! device tree, read without a heap: the blob's size, the RAM to map, and
//! the console's register frame as a CPU physical address.
//!
//! [`Tree`](super::tree::Tree) builds a node table on the heap, which does
//! not exist yet when the EL2 page tables are made; the `fdt` crate (0.1.5)
//! panics on the FDT_NOP tokens QEMU's `-dtb` path leaves and does not
//! apply `ranges` (on a Raspberry Pi 4 the console's `reg` is the bus
//! address 0x7e215040, the CPU sees it at 0xfe215040). This reader streams
//! the structure block with checked reads, skips NOPs, keeps the ancestors'
//! `#address-cells`, `#size-cells` and `ranges` of the one path it follows
//! on a fixed-size stack, and gives up (an error, never a panic) on
//! anything it cannot read.

use super::console::UartKind;
use super::tree::TreeError;
use crate::mm::addr::{PhysAddr, Range};

/// DTSpec 5.2: the header's magic number.
const FDT_MAGIC: u32 = 0xd00d_feed;
/// DTSpec 5.4.1: structure block tokens.
const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;
const FDT_END: u32 = 9;
/// Deepest node the console may sit at (real trees: 2 or 3).
const MAX_PATH_DEPTH: usize = 8;
/// Widest address or size decoded (2 cells: a 64-bit CPU address).
const MAX_CELLS: u32 = 2;

/// The console as the early code needs it: where and which driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EarlyConsole {
    /// The register frame's CPU physical address (after `ranges`).
    pub base: PhysAddr,
    /// The driver family, from the node's `compatible`.
    pub kind: UartKind,
}

/// The `totalsize` field of the FDT header at the start of `header`, if it
/// carries the magic number (the early code reads the header first to learn
/// how many bytes the blob spans).
pub fn total_size(header: &[u8]) -> Option<usize> {
    (be32(header, 0)? == FDT_MAGIC).then_some(be32(header, 4)? as usize)
}

/// A checked, heap-free view of a flattened device tree.
#[derive(Clone, Copy, Debug)]
pub struct EarlyTree<'a> {
    structure: &'a [u8],
    strings: &'a [u8],
    base: usize,
}

/// One structure-block token, NOPs already skipped.
#[derive(Clone, Copy, Debug)]
enum Token<'a> {
    Begin(&'a str),
    End,
    Prop(&'a str, &'a [u8]),
}

/// A node on the followed path: what its children need from it.
#[derive(Clone, Copy, Debug)]
struct Frame<'a> {
    address_cells: Option<u32>,
    size_cells: Option<u32>,
    ranges: Option<&'a [u8]>,
}

impl Frame<'_> {
    /// Nothing seen yet.
    const DEFAULT: Self = Frame {
        address_cells: None,
        size_cells: None,
        ranges: None,
    };

    /// `#address-cells`, DTSpec 2.3.5 default 2.
    fn address_cells(&self) -> u32 {
        self.address_cells.unwrap_or(2)
    }

    /// `#size-cells`, DTSpec 2.3.5 default 1.
    fn size_cells(&self) -> u32 {
        self.size_cells.unwrap_or(1)
    }
}

impl<'a> EarlyTree<'a> {
    /// Checks the header of `blob` and locates its blocks.
    pub fn new(blob: &'a [u8]) -> Result<Self, TreeError> {
        let error = |reason| TreeError { offset: 0, reason };
        let field = |index: usize| be32(blob, index * 4).ok_or(error("blob shorter than header"));
        if field(0)? != FDT_MAGIC {
            return Err(error("bad magic (not a flattened device tree)"));
        }
        let blob = blob
            .get(..field(1)? as usize)
            .ok_or(error("totalsize larger than the blob"))?;
        let region = |offset: u32, size: u32, what| {
            let start = offset as usize;
            start
                .checked_add(size as usize)
                .and_then(|end| blob.get(start..end))
                .ok_or(error(what))
        };
        Ok(EarlyTree {
            structure: region(field(2)?, field(9)?, "structure block outside the blob")?,
            strings: region(field(3)?, field(8)?, "strings block outside the blob")?,
            base: field(2)? as usize,
        })
    }

    /// Calls `found` with each available RAM range (`reg` of the root's
    /// children with `device_type = "memory"`), in tree order.
    pub fn for_each_memory(&self, mut found: impl FnMut(Range<PhysAddr>)) -> Result<(), TreeError> {
        let mut root = Frame::DEFAULT;
        let mut depth = 0usize;
        // The current root child's properties: they may come in any order
        // (the first of duplicates counts).
        let (mut device_type, mut status, mut reg) = (None, None, None);
        let mut at = 0;
        while let Some((token, next)) = self.token(at)? {
            at = next;
            match token {
                Token::Begin(_) => {
                    depth += 1;
                    if depth == 2 {
                        (device_type, status, reg) = (None, None, None);
                    }
                }
                Token::End if depth == 2 => {
                    depth -= 1;
                    let is_memory = device_type.and_then(c_str) == Some("memory");
                    let available = status.is_none_or(|s| matches!(c_str(s), Some("okay" | "ok")));
                    if let (true, true, Some(mut value)) = (is_memory, available, reg) {
                        while let Some(range) = take_range(&mut value, &root) {
                            if range.size != 0 {
                                found(range);
                            }
                        }
                    }
                }
                Token::End => depth = depth.saturating_sub(1),
                Token::Prop(name, value) if depth == 1 => root.apply(name, value),
                Token::Prop(name, value) if depth == 2 => match name {
                    "device_type" => device_type = device_type.or(Some(value)),
                    "status" => status = status.or(Some(value)),
                    "reg" => reg = reg.or(Some(value)),
                    _ => {}
                },
                Token::Prop(..) => {}
            }
        }
        Ok(())
    }

    /// The console `/chosen` `stdout-path` names (through `/aliases` when
    /// it is an alias; `serial0` if there is no `stdout-path`), with its
    /// `reg` translated through every ancestor's `ranges`. `None` if there
    /// is no such node or its address is not visible to the CPU.
    pub fn console(&self) -> Result<Option<EarlyConsole>, TreeError> {
        let spec = match self.root_child_prop("chosen", "stdout-path")? {
            Some(spec) => Some(spec),
            None => self.root_child_prop("chosen", "linux,stdout-path")?,
        };
        let spec = spec.and_then(c_str).unwrap_or("serial0");
        let name = spec.split(':').next().unwrap_or(spec);
        let path = if name.starts_with('/') {
            name
        } else {
            match self.root_child_prop("aliases", name)?.and_then(c_str) {
                Some(path) => path,
                None => return Ok(None),
            }
        };
        self.console_at(path)
    }

    /// The console node at `path` (DTSpec 2.2.3: a component without a
    /// unit address matches any unit address).
    fn console_at(&self, path: &str) -> Result<Option<EarlyConsole>, TreeError> {
        let mut frames = [Frame::DEFAULT; MAX_PATH_DEPTH + 1];
        let wanted_depth = path.split('/').filter(|c| !c.is_empty()).count();
        if wanted_depth == 0 || wanted_depth > MAX_PATH_DEPTH {
            return Ok(None);
        }
        // `depth`: nesting of the current node; `matched`: how many of its
        // ancestors (and itself) lie on `path`.
        let (mut depth, mut matched) = (0usize, 0usize);
        let (mut reg, mut compatible): (Option<&[u8]>, &[u8]) = (None, &[]);
        let mut at = 0;
        while let Some((token, next)) = self.token(at)? {
            at = next;
            match token {
                Token::Begin(name) => {
                    depth += 1;
                    // The root (depth 1) is on every path; a child extends
                    // the match if its parent is matched and its name fits.
                    let on_path = depth == 1
                        || (matched == depth - 1
                            && path_component(path, depth - 2).is_some_and(|c| name_fits(name, c)));
                    if on_path {
                        matched = depth;
                        frames[depth - 1] = Frame::DEFAULT;
                    }
                }
                Token::End => {
                    if matched == depth && depth == wanted_depth + 1 {
                        return Ok(reg.and_then(|r| self.translate(r, &frames[..depth])).map(
                            |base| EarlyConsole {
                                base,
                                kind: UartKind::from_compatible(strings(compatible)),
                            },
                        ));
                    }
                    if matched == depth {
                        matched -= 1;
                    }
                    depth = depth.saturating_sub(1);
                }
                Token::Prop(name, value) if matched == depth && depth > 0 => {
                    frames[depth - 1].apply(name, value);
                    if depth == wanted_depth + 1 {
                        match name {
                            "reg" => reg = reg.or(Some(value)),
                            "compatible" if compatible.is_empty() => compatible = value,
                            _ => {}
                        }
                    }
                }
                Token::Prop(..) => {}
            }
        }
        Ok(None)
    }

    /// The first `reg` address of the node whose frame is last in
    /// `frames` (its ancestors before it), as a CPU address (DTSpec 2.3.8).
    fn translate(&self, reg: &[u8], frames: &[Frame]) -> Option<PhysAddr> {
        let (node_parent, buses) = frames.split_last()?.1.split_last()?;
        let mut value = reg;
        let mut address = take_cells(&mut value, node_parent.address_cells())?;
        // Walk up from the node's parent: each bus below the root maps its
        // children's addresses into its own parent's through `ranges`.
        let mut child = node_parent;
        for parent in buses.iter().rev() {
            address = map_through(address, child, parent)?;
            child = parent;
        }
        Some(PhysAddr(address))
    }

    /// The value of `property` of the root's child named `node`.
    fn root_child_prop(&self, node: &str, property: &str) -> Result<Option<&'a [u8]>, TreeError> {
        let (mut depth, mut inside) = (0usize, false);
        let mut at = 0;
        while let Some((token, next)) = self.token(at)? {
            at = next;
            match token {
                Token::Begin(name) => {
                    depth += 1;
                    inside = depth == 2 && name_fits(name, node);
                }
                Token::End => {
                    depth = depth.saturating_sub(1);
                    inside = false;
                }
                Token::Prop(name, value) if inside && depth == 2 && name == property => {
                    return Ok(Some(value))
                }
                Token::Prop(..) => {}
            }
        }
        Ok(None)
    }

    /// The token at byte `at` of the structure block (NOPs skipped) and the
    /// offset after it; `None` at FDT_END.
    fn token(&self, mut at: usize) -> Result<Option<(Token<'a>, usize)>, TreeError> {
        loop {
            let error = |reason| TreeError {
                offset: self.base + at,
                reason,
            };
            let token = be32(self.structure, at).ok_or(error("truncated structure block"))?;
            let body = at + 4;
            match token {
                FDT_NOP => at = body,
                FDT_END => return Ok(None),
                FDT_END_NODE => return Ok(Some((Token::End, body))),
                FDT_BEGIN_NODE => {
                    let rest = self.structure.get(body..).unwrap_or_default();
                    let name = c_str(rest).ok_or(error("node name not NUL-terminated UTF-8"))?;
                    return Ok(Some((Token::Begin(name), align4(body + name.len() + 1))));
                }
                FDT_PROP => {
                    let len = be32(self.structure, body).ok_or(error("truncated property"))?;
                    let name_offset =
                        be32(self.structure, body + 4).ok_or(error("truncated property"))?;
                    let start = body + 8;
                    let value = start
                        .checked_add(len as usize)
                        .and_then(|end| self.structure.get(start..end))
                        .ok_or(error("property value past end of block"))?;
                    let name = self
                        .strings
                        .get(name_offset as usize..)
                        .and_then(c_str)
                        .ok_or(error("property name outside the strings block"))?;
                    return Ok(Some((
                        Token::Prop(name, value),
                        align4(start + value.len()),
                    )));
                }
                _ => return Err(error("unknown structure token")),
            }
        }
    }
}

impl<'a> Frame<'a> {
    /// Records the properties a node's children depend on (the first of
    /// duplicates counts, as in the full parser).
    fn apply(&mut self, name: &str, value: &'a [u8]) {
        let cells = || Some(be32(value, 0).unwrap_or(u32::MAX));
        match name {
            "#address-cells" => self.address_cells = self.address_cells.or_else(cells),
            "#size-cells" => self.size_cells = self.size_cells.or_else(cells),
            "ranges" => self.ranges = self.ranges.or(Some(value)),
            _ => {}
        }
    }
}

/// `address` on the bus `child` (a child of `parent`), as an address on
/// `parent`'s bus: identity for an empty `ranges`, `None` with no `ranges`
/// (not visible to the CPU) or when no entry covers it.
fn map_through(address: u64, child: &Frame, parent: &Frame) -> Option<u64> {
    let mut value = child.ranges?;
    if value.is_empty() {
        return Some(address);
    }
    loop {
        let child_base = take_cells(&mut value, child.address_cells())?;
        let parent_base = take_cells(&mut value, parent.address_cells())?;
        let size = take_cells(&mut value, child.size_cells())?;
        if address >= child_base && address - child_base < size {
            return parent_base.checked_add(address - child_base);
        }
    }
}

/// One (address, size) `reg` entry in `frame`'s cells.
fn take_range(value: &mut &[u8], frame: &Frame) -> Option<Range<PhysAddr>> {
    let start = take_cells(value, frame.address_cells())?;
    let size = take_cells(value, frame.size_cells())?;
    start.checked_add(size)?;
    Some(Range {
        start: PhysAddr(start),
        size,
    })
}

/// Reads `count` (at most 2) big-endian cells from the front of `value`.
fn take_cells(value: &mut &[u8], count: u32) -> Option<u64> {
    if count > MAX_CELLS {
        return None;
    }
    let bytes = value.get(..count as usize * 4)?;
    *value = &value[bytes.len()..];
    Some(bytes.chunks_exact(4).fold(0u64, |acc, w| {
        (acc << 32) | u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
    }))
}

/// The `index`th non-empty component of `path`.
fn path_component(path: &str, index: usize) -> Option<&str> {
    path.split('/').filter(|c| !c.is_empty()).nth(index)
}

/// Whether node `name` is what path `component` names.
fn name_fits(name: &str, component: &str) -> bool {
    name == component || (!component.contains('@') && name.split('@').next() == Some(component))
}

/// The strings of a string-list property value.
fn strings(value: &[u8]) -> impl Iterator<Item = &str> {
    value
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .filter_map(|s| core::str::from_utf8(s).ok())
}

fn align4(offset: usize) -> usize {
    offset.saturating_add(3) & !3
}

/// The NUL-terminated UTF-8 string at the start of `bytes`.
fn c_str(bytes: &[u8]) -> Option<&str> {
    let len = bytes.iter().position(|&b| b == 0)?;
    core::str::from_utf8(&bytes[..len]).ok()
}

fn be32(blob: &[u8], offset: usize) -> Option<u32> {
    let word = blob.get(offset..offset.checked_add(4)?)?;
    Some(u32::from_be_bytes([word[0], word[1], word[2], word[3]]))
}
