//! Where things are in the manifest text: maps the span of a TOML error to
//! the partition and field path it concerns, and a field back to its line,
//! so that every error can say `partition "alpha": field ram.size (line 4)`.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::PartitionRef;

/// Deepest nesting walked; the manifest's own shapes are three levels deep.
const MAX_DEPTH: usize = 8;

/// Index of the keys and values of one parsed manifest text.
pub(super) struct SourceMap<'t> {
    text: &'t str,
    entries: Vec<Entry>,
    /// The `name` string of each `[[partition]]`, as written.
    names: Vec<Option<String>>,
}

/// One key (or array element) of the document.
struct Entry {
    partition: Option<usize>,
    path: String,
    depth: usize,
    key: Range<usize>,
    value: Range<usize>,
    is_table: bool,
}

/// Partition and field an error span points at.
pub(super) struct Location {
    /// Index of the partition, if the span is inside one.
    pub partition: Option<usize>,
    /// Field path relative to the partition (or the document).
    pub field: String,
    /// 1-based line of the span.
    pub line: Option<u32>,
}

/// The line of each field of each partition, and of each field outside
/// the partitions (`hypervisor.heap`), kept for validation errors.
#[derive(Clone, Debug, Default)]
pub(super) struct FieldLines {
    lines: Vec<(usize, String, u32)>,
    top: Vec<(String, u32)>,
}

impl<'t> SourceMap<'t> {
    /// Indexes `root`, the parse of `text`.
    pub(super) fn build(text: &'t str, root: &DeTable<'_>) -> Self {
        let mut map = Self {
            text,
            entries: Vec::new(),
            names: Vec::new(),
        };
        for (key, value) in root.iter() {
            let name: &str = key.get_ref();
            map.push(None, name.to_string(), 1, key.span(), value);
            if name != "partition" {
                map.walk(None, name, value, 1);
                continue;
            }
            let DeValue::Array(partitions) = value.get_ref() else {
                continue;
            };
            for (index, partition) in partitions.iter().enumerate() {
                map.push(Some(index), String::new(), 2, partition.span(), partition);
                let name = partition.get_ref().get("name");
                map.names
                    .push(name.and_then(|n| n.get_ref().as_str()).map(String::from));
                map.walk(Some(index), "", partition, 2);
            }
        }
        map
    }

    /// The partition and field path an error `span` points at.
    pub(super) fn locate(&self, span: Option<Range<usize>>, message: &str) -> Location {
        let Some(span) = span else {
            return Location {
                partition: None,
                field: String::new(),
                line: None,
            };
        };
        let line = Some(line_of(self.text, span.start));
        let exact = self
            .entries
            .iter()
            .filter(|e| e.value == span || e.key == span)
            .max_by_key(|e| e.depth);
        let Some(entry) = exact.or_else(|| self.innermost_containing(span.start)) else {
            return Location {
                partition: None,
                field: String::new(),
                line,
            };
        };
        let mut field = entry.path.clone();
        // serde reports a missing field at the span of the table lacking it.
        if entry.is_table && entry.value == span {
            if let Some(missing) = missing_field(message) {
                field = join(&field, missing);
            }
        }
        Location {
            partition: entry.partition,
            field,
            line,
        }
    }

    /// How errors name partition `index`: by its name if usable, else by index.
    pub(super) fn partition_ref(&self, index: usize) -> PartitionRef {
        match self.names.get(index) {
            Some(Some(name)) => super::validate::partition_ref(index, name),
            _ => PartitionRef::Index(index),
        }
    }

    /// The line of every field.
    pub(super) fn field_lines(&self) -> FieldLines {
        let lines = self
            .entries
            .iter()
            .filter_map(|e| {
                Some((
                    e.partition?,
                    e.path.clone(),
                    line_of(self.text, e.key.start),
                ))
            })
            .collect();
        let top = self
            .entries
            .iter()
            .filter(|e| e.partition.is_none())
            .map(|e| (e.path.clone(), line_of(self.text, e.key.start)))
            .collect();
        FieldLines { lines, top }
    }

    fn push(
        &mut self,
        partition: Option<usize>,
        path: String,
        depth: usize,
        key: Range<usize>,
        value: &Spanned<DeValue<'_>>,
    ) {
        self.entries.push(Entry {
            partition,
            path,
            depth,
            key,
            value: value.span(),
            is_table: value.get_ref().is_table(),
        });
    }

    fn walk(
        &mut self,
        partition: Option<usize>,
        path: &str,
        value: &Spanned<DeValue<'_>>,
        depth: usize,
    ) {
        if depth >= MAX_DEPTH {
            return;
        }
        match value.get_ref() {
            DeValue::Table(table) => {
                for (key, child) in table.iter() {
                    let child_path = join(path, key.get_ref());
                    self.push(partition, child_path.clone(), depth + 1, key.span(), child);
                    self.walk(partition, &child_path, child, depth + 1);
                }
            }
            DeValue::Array(items) => {
                for (index, child) in items.iter().enumerate() {
                    let child_path = alloc::format!("{path}[{index}]");
                    self.push(
                        partition,
                        child_path.clone(),
                        depth + 1,
                        child.span(),
                        child,
                    );
                    self.walk(partition, &child_path, child, depth + 1);
                }
            }
            _ => {}
        }
    }

    fn innermost_containing(&self, offset: usize) -> Option<&Entry> {
        self.entries
            .iter()
            .filter(|e| e.value.contains(&offset))
            .min_by_key(|e| (e.value.len(), usize::MAX - e.depth))
    }
}

impl FieldLines {
    /// The line of `field` in partition `partition`, or of its header if the
    /// field is not written (a default).
    pub(super) fn line(&self, partition: usize, field: &str) -> Option<u32> {
        let find = |path: &str| {
            self.lines
                .iter()
                .find(|(p, f, _)| *p == partition && f == path)
                .map(|(_, _, line)| *line)
        };
        find(field).or_else(|| find(""))
    }

    /// The line of `field` outside the partitions (`hypervisor.heap`).
    pub(super) fn top_line(&self, field: &str) -> Option<u32> {
        self.top
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, line)| *line)
    }
}

/// The 1-based line of byte `offset` in `text`.
pub(super) fn line_of(text: &str, offset: usize) -> u32 {
    let before = text.as_bytes().get(..offset).unwrap_or(text.as_bytes());
    let newlines = before.iter().filter(|&&b| b == b'\n').count();
    u32::try_from(newlines).unwrap_or(u32::MAX - 1) + 1
}

/// `a.b`, or `b` when `a` is empty.
fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        alloc::format!("{path}.{key}")
    }
}

/// The field named by serde's "missing field `x`" message.
fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.split('`').next()
}
