//! A small, bounds-checked reader of flattened device trees (DTSpec v0.4,
//! chapter 5) that turns the blob into a node table with parent links.
//!
//! Why not the `fdt` crate alone: `fdt` 0.1.5 panics on malformed blobs,
//! stops listing a node's children after an `FDT_NOP` between its properties
//! (libfdt leaves NOPs behind when firmware deletes a property), and exposes
//! no parent links, which `ranges` translation and `interrupt-parent`
//! inheritance need. Every read here is checked, so no input panics.

use alloc::string::String;
use alloc::vec::Vec;

/// DTSpec 5.2: the header's magic number.
const FDT_MAGIC: u32 = 0xd00d_feed;
/// DTSpec 5.4.1: structure block tokens.
const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;
const FDT_END: u32 = 9;
/// Deepest nesting accepted; real trees stay under 8 levels.
const MAX_DEPTH: usize = 32;
/// Most nodes accepted, bounding the memory a hostile blob can make us use.
const MAX_NODES: usize = 8192;
/// Most `/memreserve/` entries accepted.
const MAX_RESERVATIONS: usize = 256;

/// Index of a node in [`Tree::nodes`]; the root is 0.
pub(crate) type NodeIdx = usize;

/// What is wrong with a blob that could not be read as a device tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TreeError {
    /// Byte offset in the blob where reading failed.
    pub offset: usize,
    /// What was wrong there.
    pub reason: &'static str,
}

/// One property: its name and raw big-endian value.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Prop<'a> {
    pub name: &'a str,
    pub value: &'a [u8],
}

/// One node: its name (with unit address), parent, properties and children.
#[derive(Debug)]
pub(crate) struct Node<'a> {
    pub name: &'a str,
    pub parent: Option<NodeIdx>,
    pub props: Vec<Prop<'a>>,
    pub children: Vec<NodeIdx>,
}

/// A parsed device tree: nodes in structure-block order and `/memreserve/`.
#[derive(Debug)]
pub(crate) struct Tree<'a> {
    pub nodes: Vec<Node<'a>>,
    /// `/memreserve/` entries as (address, size).
    pub reservations: Vec<(u64, u64)>,
}

/// A cursor over big-endian words with checked reads.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Cursor<'a> {
    fn error(&self, reason: &'static str) -> TreeError {
        TreeError {
            offset: self.base + self.pos,
            reason,
        }
    }

    fn u32(&mut self) -> Result<u32, TreeError> {
        let word = self
            .bytes
            .get(self.pos..self.pos + 4)
            .ok_or_else(|| self.error("truncated structure block"))?;
        self.pos += 4;
        Ok(u32::from_be_bytes([word[0], word[1], word[2], word[3]]))
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], TreeError> {
        let end = self
            .pos
            .checked_add(len)
            .ok_or_else(|| self.error("length overflows"))?;
        let bytes = self
            .bytes
            .get(self.pos..end)
            .ok_or_else(|| self.error("value past end of block"))?;
        // DTSpec 5.4.1: every token starts on a 4-byte boundary.
        self.pos = end
            .checked_add(3)
            .ok_or_else(|| self.error("length overflows"))?
            & !3;
        Ok(bytes)
    }
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

fn be64(blob: &[u8], offset: usize) -> Option<u64> {
    Some((u64::from(be32(blob, offset)?) << 32) | u64::from(be32(blob, offset + 4)?))
}

impl<'a> Tree<'a> {
    /// Reads `blob`, checking the header, every token, length and string.
    pub fn parse(blob: &'a [u8]) -> Result<Self, TreeError> {
        let header_error = |reason| TreeError { offset: 0, reason };
        let field = |index: usize| {
            be32(blob, index * 4).ok_or(header_error("blob shorter than the 40-byte header"))
        };
        if field(0)? != FDT_MAGIC {
            return Err(header_error("bad magic (not a flattened device tree)"));
        }
        let total = field(1)? as usize;
        let blob = blob
            .get(..total)
            .ok_or(header_error("totalsize larger than the blob"))?;
        // Version 17 (DTSpec 5.2) is what dtc, QEMU and vm-fdt write; 16 lacks size_dt_struct.
        if field(5)? < 17 || field(6)? > 17 {
            return Err(header_error("unsupported version (need 17)"));
        }
        let region = |offset: u32, size: u32, what| {
            let start = offset as usize;
            let end = start.checked_add(size as usize);
            end.and_then(|end| blob.get(start..end))
                .ok_or(header_error(what))
        };
        let structure = region(field(2)?, field(9)?, "structure block outside the blob")?;
        let strings = region(field(3)?, field(8)?, "strings block outside the blob")?;
        let reservations = Self::read_reservations(blob, field(4)? as usize)?;
        let base = field(2)? as usize;
        let mut tree = Tree {
            nodes: Vec::new(),
            reservations,
        };
        tree.read_structure(
            Cursor {
                bytes: structure,
                pos: 0,
                base,
            },
            strings,
        )?;
        Ok(tree)
    }

    fn read_reservations(blob: &[u8], offset: usize) -> Result<Vec<(u64, u64)>, TreeError> {
        let mut entries = Vec::new();
        for index in 0..=MAX_RESERVATIONS {
            let at = offset + index * 16;
            let error = TreeError {
                offset: at,
                reason: "unterminated /memreserve/ block",
            };
            let address = be64(blob, at).ok_or(error)?;
            let size = be64(blob, at + 8).ok_or(error)?;
            if address == 0 && size == 0 {
                return Ok(entries);
            }
            entries.push((address, size));
        }
        Err(TreeError {
            offset,
            reason: "too many /memreserve/ entries",
        })
    }

    fn read_structure(
        &mut self,
        mut cursor: Cursor<'a>,
        strings: &'a [u8],
    ) -> Result<(), TreeError> {
        let mut stack: Vec<NodeIdx> = Vec::new();
        loop {
            match cursor.u32()? {
                FDT_BEGIN_NODE => {
                    if stack.is_empty() && !self.nodes.is_empty() {
                        return Err(cursor.error("second root node"));
                    }
                    if stack.len() >= MAX_DEPTH || self.nodes.len() >= MAX_NODES {
                        return Err(cursor.error("tree too deep or too large"));
                    }
                    let rest = cursor.bytes.get(cursor.pos..).unwrap_or_default();
                    let name = c_str(rest)
                        .ok_or_else(|| cursor.error("node name not NUL-terminated UTF-8"))?;
                    cursor.take(name.len() + 1)?;
                    let index = self.nodes.len();
                    let parent = stack.last().copied();
                    if let Some(parent) = parent {
                        self.nodes[parent].children.push(index);
                    }
                    self.nodes.push(Node {
                        name,
                        parent,
                        props: Vec::new(),
                        children: Vec::new(),
                    });
                    stack.push(index);
                }
                FDT_END_NODE => {
                    stack
                        .pop()
                        .ok_or_else(|| cursor.error("FDT_END_NODE without a node"))?;
                }
                FDT_PROP => {
                    let len = cursor.u32()? as usize;
                    let name_offset = cursor.u32()? as usize;
                    let value = cursor.take(len)?;
                    let name = strings
                        .get(name_offset..)
                        .and_then(c_str)
                        .ok_or_else(|| cursor.error("property name outside the strings block"))?;
                    let node = *stack
                        .last()
                        .ok_or_else(|| cursor.error("property outside a node"))?;
                    self.nodes[node].props.push(Prop { name, value });
                }
                FDT_NOP => {}
                FDT_END if stack.is_empty() && !self.nodes.is_empty() => return Ok(()),
                FDT_END => return Err(cursor.error("FDT_END inside a node or before the root")),
                _ => return Err(cursor.error("unknown structure token")),
            }
        }
    }

    /// The node at `index` (always valid for indices this tree handed out).
    pub fn node(&self, index: NodeIdx) -> &Node<'a> {
        &self.nodes[index]
    }

    /// The raw value of property `name` of node `index`.
    pub fn prop(&self, index: NodeIdx, name: &str) -> Option<&'a [u8]> {
        self.nodes[index]
            .props
            .iter()
            .find(|prop| prop.name == name)
            .map(|prop| prop.value)
    }

    /// The strings of a string-list property (`compatible`, `clock-names`).
    pub fn strings(&self, index: NodeIdx, name: &str) -> impl Iterator<Item = &'a str> {
        let value = self.prop(index, name).unwrap_or_default();
        let value = value.strip_suffix(&[0]).unwrap_or(value);
        let empty = value.is_empty();
        value
            .split(|&b| b == 0)
            .filter(move |_| !empty)
            .filter_map(|s| core::str::from_utf8(s).ok())
    }

    /// The first string of property `name`.
    pub fn string(&self, index: NodeIdx, name: &str) -> Option<&'a str> {
        self.prop(index, name).and_then(c_str)
    }

    /// Whether node `index` lists `compatible` in its `compatible` property.
    pub fn is_compatible(&self, index: NodeIdx, compatible: &str) -> bool {
        self.strings(index, "compatible").any(|c| c == compatible)
    }

    /// All nodes compatible with any of `compatibles`, in tree order.
    pub fn find_compatible<'t>(
        &'t self,
        compatibles: &'t [&str],
    ) -> impl Iterator<Item = NodeIdx> + 't {
        (0..self.nodes.len()).filter(move |&i| compatibles.iter().any(|c| self.is_compatible(i, c)))
    }

    /// DTSpec 2.3.4: a node is usable unless its `status` says otherwise.
    pub fn is_available(&self, index: NodeIdx) -> bool {
        matches!(
            self.string(index, "status"),
            None | Some("okay") | Some("ok")
        )
    }

    /// The node whose `phandle` (or legacy `linux,phandle`) is `phandle`.
    pub fn by_phandle(&self, phandle: u32) -> Option<NodeIdx> {
        (0..self.nodes.len()).find(|&i| {
            let value = self
                .prop(i, "phandle")
                .or_else(|| self.prop(i, "linux,phandle"));
            value.and_then(|v| be32(v, 0)) == Some(phandle) && value.map(<[u8]>::len) == Some(4)
        })
    }

    /// The node's full path, e.g. `/intc@8000000/its@8080000`.
    pub fn path(&self, index: NodeIdx) -> String {
        let mut chain = Vec::new();
        let mut at = Some(index);
        while let Some(node) = at.filter(|&n| n != 0) {
            chain.push(self.nodes[node].name);
            at = self.nodes[node].parent;
        }
        let mut path = String::new();
        for name in chain.iter().rev() {
            path.push('/');
            path.push_str(name);
        }
        if path.is_empty() {
            path.push('/');
        }
        path
    }

    /// DTSpec 2.2.3: the node at `path`; a component without a unit address
    /// matches a node of that name with any unit address.
    pub fn find_path(&self, path: &str) -> Option<NodeIdx> {
        let mut at = 0;
        for component in path.split('/').filter(|c| !c.is_empty()) {
            let children = &self.nodes[at].children;
            let exact = children.iter().find(|&&c| self.nodes[c].name == component);
            let loose = || {
                children.iter().find(|&&c| {
                    !component.contains('@')
                        && self.nodes[c].name.split('@').next() == Some(component)
                })
            };
            at = *exact.or_else(loose)?;
        }
        Some(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_short_and_non_fdt_blobs() {
        assert_eq!(
            Tree::parse(&[]).unwrap_err().reason,
            "blob shorter than the 40-byte header"
        );
        assert_eq!(
            Tree::parse(&[0u8; 64]).unwrap_err().reason,
            "bad magic (not a flattened device tree)"
        );
    }
}
