//! The boot bundle parser (`bundle.rs`): arbitrary bytes as the bundle the
//! loader placed next to the hypervisor.
//!
//! Asserts: a parsed bundle has at most `MAX_ENTRIES` entries, each with a
//! non-empty unique name and data lying inside the blob at its offset;
//! every entry is found by name; written back with `BundleWriter` and
//! parsed again it gives the same entries; every error prints.

use hypervisor::boot::bundle::{Bundle, BundleWriter, MAX_ENTRIES};

/// One fuzz input: the bundle's bytes.
pub fn run(data: &[u8]) {
    let bundle = match Bundle::parse(data) {
        Ok(bundle) => bundle,
        Err(error) => {
            assert!(!error.to_string().is_empty());
            return;
        }
    };
    let entries = bundle.entries();
    assert!(entries.len() <= MAX_ENTRIES);
    let mut writer = BundleWriter::new();
    let mut written = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        assert!(!entry.name.is_empty());
        assert!(entries[..index].iter().all(|e| e.name != entry.name));
        let end = entry.offset + entry.data.len();
        assert!(end <= data.len());
        assert_eq!(&data[entry.offset..end], entry.data);
        assert_eq!(bundle.get(entry.name), Some(entry));
        // The parser takes a 48-byte name with no NUL; the writer keeps one.
        if entry.name.len() < 48 {
            writer
                .add(entry.name, entry.data.to_vec())
                .expect("a parsed entry can be written back");
            written.push(entry);
        }
    }
    match bundle.manifest() {
        Ok(text) => assert!(bundle
            .get("manifest.toml")
            .is_some_and(|e| e.data == text.as_bytes())),
        Err(error) => assert!(!error.to_string().is_empty()),
    }
    let blob = writer.finish();
    let again = Bundle::parse(&blob).expect("a written bundle parses");
    assert_eq!(again.entries().len(), written.len());
    for (a, b) in again.entries().iter().zip(written) {
        assert_eq!((a.name, a.data), (b.name, b.data));
    }
}
