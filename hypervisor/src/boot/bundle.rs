//! The boot bundle: the manifest and the guest images, packed by `xtask`
//! into one blob that the boot loader places in RAM beside the hypervisor
//! (as the "initrd" of the arm64 boot protocol, so QEMU, U-Boot and board
//! firmware all know how to load it and name it in `/chosen`).
//!
//! Layout, all integers little-endian:
//! ```text
//! 0x00  magic "HVBUNDL1"
//! 0x08  u32 entry count, u32 reserved (0)
//! 0x10  entries: [name: 48 bytes, NUL-padded UTF-8][offset: u64][size: u64]
//! ....  data, each entry starting 4 KiB aligned (offsets from the bundle start)
//! ```
#![forbid(unsafe_code)]

use alloc::vec::Vec;

/// The magic bytes at the start of every bundle.
pub const MAGIC: &[u8; 8] = b"HVBUNDL1";
/// Bytes in one entry-table record.
const ENTRY_SIZE: usize = 64;
/// Bytes of an entry's name field.
const NAME_SIZE: usize = 48;
/// Alignment of every entry's data.
const DATA_ALIGN: usize = 4096;
/// The most entries a bundle may hold (bounds parsing work).
pub const MAX_ENTRIES: usize = 64;
/// The manifest's entry name.
pub const MANIFEST_NAME: &str = "manifest.toml";

/// Why a bundle could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BundleError {
    /// The blob does not start with [`MAGIC`].
    BadMagic,
    /// The header or the entry table runs past the end of the blob.
    Truncated,
    /// More than [`MAX_ENTRIES`] entries.
    TooManyEntries(u32),
    /// Entry `index` has a name that is empty or not UTF-8.
    BadName { index: usize },
    /// Entry `name`'s data lies outside the blob.
    OutOfBounds { index: usize },
    /// Two entries have the same name.
    Duplicate { index: usize },
    /// An entry the caller needs is absent.
    Missing(&'static str),
}

impl core::fmt::Display for BundleError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::BadMagic => write!(f, "boot bundle: bad magic (not built by `cargo xtask`?)"),
            Self::Truncated => write!(f, "boot bundle: truncated header or entry table"),
            Self::TooManyEntries(n) => {
                write!(f, "boot bundle: {n} entries (at most {MAX_ENTRIES})")
            }
            Self::BadName { index } => write!(f, "boot bundle: entry {index} has a bad name"),
            Self::OutOfBounds { index } => {
                write!(f, "boot bundle: entry {index} lies outside the bundle")
            }
            Self::Duplicate { index } => write!(f, "boot bundle: entry {index} repeats a name"),
            Self::Missing(name) => write!(f, "boot bundle: no entry named {name:?}"),
        }
    }
}

/// One named blob inside a bundle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    /// The entry's name (e.g. `manifest.toml`, `testguest.bin`).
    pub name: &'a str,
    /// Offset of the data from the start of the bundle.
    pub offset: usize,
    /// The data.
    pub data: &'a [u8],
}

/// A parsed, bounds-checked view of a bundle in memory.
#[derive(Clone, Debug)]
pub struct Bundle<'a> {
    entries: Vec<Entry<'a>>,
}

impl<'a> Bundle<'a> {
    /// Parses and checks `blob`: every entry lies inside it and names are unique.
    pub fn parse(blob: &'a [u8]) -> Result<Self, BundleError> {
        if blob.len() < 16 {
            return Err(BundleError::Truncated);
        }
        if &blob[..8] != MAGIC {
            return Err(BundleError::BadMagic);
        }
        let count = u32::from_le_bytes([blob[8], blob[9], blob[10], blob[11]]);
        if count as usize > MAX_ENTRIES {
            return Err(BundleError::TooManyEntries(count));
        }
        let table_end = 16 + count as usize * ENTRY_SIZE;
        if blob.len() < table_end {
            return Err(BundleError::Truncated);
        }
        let mut entries: Vec<Entry<'a>> = Vec::with_capacity(count as usize);
        for index in 0..count as usize {
            let rec = &blob[16 + index * ENTRY_SIZE..16 + (index + 1) * ENTRY_SIZE];
            let name_len = rec[..NAME_SIZE]
                .iter()
                .position(|&b| b == 0)
                .unwrap_or(NAME_SIZE);
            let name = core::str::from_utf8(&rec[..name_len])
                .map_err(|_| BundleError::BadName { index })?;
            if name.is_empty() {
                return Err(BundleError::BadName { index });
            }
            let offset = read_u64(&rec[NAME_SIZE..NAME_SIZE + 8]);
            let size = read_u64(&rec[NAME_SIZE + 8..NAME_SIZE + 16]);
            let data = usize::try_from(offset)
                .ok()
                .zip(usize::try_from(size).ok())
                .and_then(|(o, s)| Some((o, o.checked_add(s)?)))
                .and_then(|(o, e)| blob.get(o..e).map(|d| (o, d)));
            let Some((offset, data)) = data else {
                return Err(BundleError::OutOfBounds { index });
            };
            if entries.iter().any(|e| e.name == name) {
                return Err(BundleError::Duplicate { index });
            }
            entries.push(Entry { name, offset, data });
        }
        Ok(Self { entries })
    }

    /// The entry called `name`, if present.
    pub fn get(&self, name: &str) -> Option<&Entry<'a>> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// All entries, in bundle order.
    pub fn entries(&self) -> &[Entry<'a>] {
        &self.entries
    }

    /// The manifest text.
    pub fn manifest(&self) -> Result<&'a str, BundleError> {
        let entry = self
            .get(MANIFEST_NAME)
            .ok_or(BundleError::Missing(MANIFEST_NAME))?;
        core::str::from_utf8(entry.data).map_err(|_| BundleError::BadName { index: 0 })
    }
}

fn read_u64(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(b)
}

/// Builds a bundle (used by `xtask` on the host, and by tests).
#[derive(Default)]
pub struct BundleWriter {
    entries: Vec<(alloc::string::String, Vec<u8>)>,
}

impl BundleWriter {
    /// An empty bundle.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an entry; names longer than 47 bytes are refused.
    pub fn add(&mut self, name: &str, data: Vec<u8>) -> Result<(), BundleError> {
        if name.is_empty() || name.len() >= NAME_SIZE {
            return Err(BundleError::BadName {
                index: self.entries.len(),
            });
        }
        if self.entries.iter().any(|(n, _)| n == name) {
            return Err(BundleError::Duplicate {
                index: self.entries.len(),
            });
        }
        if self.entries.len() == MAX_ENTRIES {
            return Err(BundleError::TooManyEntries(MAX_ENTRIES as u32 + 1));
        }
        self.entries.push((name.into(), data));
        Ok(())
    }

    /// The bundle's bytes.
    pub fn finish(&self) -> Vec<u8> {
        let table_end = 16 + self.entries.len() * ENTRY_SIZE;
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        let mut offset = table_end.next_multiple_of(DATA_ALIGN);
        for (name, data) in &self.entries {
            let mut rec = [0u8; ENTRY_SIZE];
            rec[..name.len()].copy_from_slice(name.as_bytes());
            rec[NAME_SIZE..NAME_SIZE + 8].copy_from_slice(&(offset as u64).to_le_bytes());
            rec[NAME_SIZE + 8..].copy_from_slice(&(data.len() as u64).to_le_bytes());
            out.extend_from_slice(&rec);
            offset = (offset + data.len()).next_multiple_of(DATA_ALIGN);
        }
        for (_, data) in &self.entries {
            out.resize(out.len().next_multiple_of(DATA_ALIGN), 0);
            out.extend_from_slice(data);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn sample() -> Vec<u8> {
        let mut w = BundleWriter::new();
        w.add(MANIFEST_NAME, b"[[partition]]".to_vec()).unwrap();
        w.add("guest.bin", vec![0xaa; 5000]).unwrap();
        w.finish()
    }

    #[test]
    fn written_bundle_parses_back_with_aligned_entries() {
        let blob = sample();
        let b = Bundle::parse(&blob).unwrap();
        assert_eq!(b.entries().len(), 2);
        assert_eq!(b.manifest().unwrap(), "[[partition]]");
        let g = b.get("guest.bin").unwrap();
        assert_eq!(g.data, &[0xaa; 5000][..]);
        assert_eq!(g.offset % DATA_ALIGN, 0);
    }

    #[test]
    fn bad_magic_and_truncation_are_errors() {
        let mut blob = sample();
        assert_eq!(
            Bundle::parse(&blob[..10]).unwrap_err(),
            BundleError::Truncated
        );
        blob[0] = b'X';
        assert_eq!(Bundle::parse(&blob).unwrap_err(), BundleError::BadMagic);
    }

    #[test]
    fn entry_pointing_outside_the_blob_is_refused() {
        let mut blob = sample();
        // Entry 1's size field: make it run past the end.
        let size_at = 16 + ENTRY_SIZE + NAME_SIZE + 8;
        blob[size_at..size_at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(
            Bundle::parse(&blob).unwrap_err(),
            BundleError::OutOfBounds { index: 1 }
        );
    }

    #[test]
    fn missing_manifest_is_reported_by_name() {
        let mut w = BundleWriter::new();
        w.add("guest.bin", vec![1]).unwrap();
        let blob = w.finish();
        let b = Bundle::parse(&blob).unwrap();
        assert_eq!(
            b.manifest().unwrap_err(),
            BundleError::Missing(MANIFEST_NAME)
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let mut blob = bytes;
            if blob.len() > 8 { blob[..8].copy_from_slice(MAGIC); }
            let _ = Bundle::parse(&blob);
        }
    }
}
