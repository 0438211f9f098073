//! A writer for the cpio "newc" format, the one the Linux kernel unpacks
//! as an initramfs (Documentation/driver-api/early-userspace/buffer-format.rst).
//!
//! Each entry is a 110-byte ASCII header (`070701` and thirteen 8-digit hex
//! fields), the path and its NUL padded to a multiple of 4 bytes, then the
//! data padded to a multiple of 4 bytes. The archive ends with an entry
//! named `TRAILER!!!`. Owners are root and times are 0, so the same inputs
//! always give the same bytes.

/// Builds a newc archive in memory.
pub struct CpioWriter {
    out: Vec<u8>,
    next_inode: u32,
}

/// File type bits of `mode` (`st_mode`).
const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFCHR: u32 = 0o020_000;

/// The name of the last entry.
const TRAILER: &str = "TRAILER!!!";

/// One header's fields, in the order newc writes them (without the magic).
struct Header<'a> {
    inode: u32,
    mode: u32,
    nlink: u32,
    size: u32,
    rdev_major: u32,
    rdev_minor: u32,
    name: &'a str,
}

impl Default for CpioWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl CpioWriter {
    /// An empty archive.
    pub fn new() -> Self {
        Self {
            out: Vec::new(),
            next_inode: 1,
        }
    }

    /// A directory (`path` without a leading `/`, e.g. `usr/bin`).
    pub fn dir(&mut self, path: &str, permissions: u32) {
        self.entry(path, S_IFDIR | permissions, 2, &[], (0, 0));
    }

    /// A regular file.
    pub fn file(&mut self, path: &str, permissions: u32, data: &[u8]) {
        self.entry(path, S_IFREG | permissions, 1, data, (0, 0));
    }

    /// A symbolic link to `target` (its data is the target's path).
    pub fn symlink(&mut self, path: &str, target: &str) {
        self.entry(path, S_IFLNK | 0o777, 1, target.as_bytes(), (0, 0));
    }

    /// A character device node (e.g. `dev/console`, 5:1).
    pub fn char_device(&mut self, path: &str, permissions: u32, major: u32, minor: u32) {
        self.entry(path, S_IFCHR | permissions, 1, &[], (major, minor));
    }

    /// The archive's bytes, with the trailer, padded to a 512-byte block
    /// as cpio(1) does.
    pub fn finish(mut self) -> Vec<u8> {
        self.header(&Header {
            inode: 0,
            mode: 0,
            nlink: 1,
            size: 0,
            rdev_major: 0,
            rdev_minor: 0,
            name: TRAILER,
        });
        self.out.resize(self.out.len().next_multiple_of(512), 0);
        self.out
    }

    fn entry(&mut self, path: &str, mode: u32, nlink: u32, data: &[u8], rdev: (u32, u32)) {
        let path = path.trim_start_matches('/');
        assert!(!path.is_empty(), "cpio entry without a name");
        let size = u32::try_from(data.len()).expect("cpio newc holds files below 4 GiB");
        let inode = self.next_inode;
        self.next_inode += 1;
        self.header(&Header {
            inode,
            mode,
            nlink,
            size,
            rdev_major: rdev.0,
            rdev_minor: rdev.1,
            name: path,
        });
        self.out.extend_from_slice(data);
        self.pad4();
    }

    fn header(&mut self, h: &Header<'_>) {
        // uid, gid, mtime, the file's own device and the checksum are 0.
        let fields = [
            h.inode,
            h.mode,
            0,
            0,
            h.nlink,
            0,
            h.size,
            0,
            0,
            h.rdev_major,
            h.rdev_minor,
            h.name.len() as u32 + 1,
            0,
        ];
        self.out.extend_from_slice(b"070701");
        for field in fields {
            self.out
                .extend_from_slice(format!("{field:08X}").as_bytes());
        }
        self.out.extend_from_slice(h.name.as_bytes());
        self.out.push(0);
        self.pad4();
    }

    fn pad4(&mut self) {
        self.out.resize(self.out.len().next_multiple_of(4), 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 13 header fields of the entry starting at `at`, and its name.
    fn fields(archive: &[u8], at: usize) -> (Vec<u32>, String) {
        assert_eq!(&archive[at..at + 6], b"070701");
        let f: Vec<u32> = (0..13)
            .map(|i| {
                let s = std::str::from_utf8(&archive[at + 6 + i * 8..at + 14 + i * 8]).unwrap();
                u32::from_str_radix(s, 16).unwrap()
            })
            .collect();
        let name_len = f[11] as usize;
        let name = std::str::from_utf8(&archive[at + 110..at + 110 + name_len - 1])
            .unwrap()
            .to_string();
        assert_eq!(archive[at + 110 + name_len - 1], 0, "name ends in NUL");
        (f, name)
    }

    #[test]
    fn file_entry_has_newc_header_name_and_padded_data() {
        let mut w = CpioWriter::new();
        w.file("/init", 0o755, b"#!/bin/sh\n");
        let a = w.finish();
        let (f, name) = fields(&a, 0);
        assert_eq!(name, "init", "leading slash dropped");
        assert_eq!(f[0], 1, "first inode");
        assert_eq!(f[1], 0o100_755);
        assert_eq!(f[4], 1, "nlink");
        assert_eq!(f[6], 10, "file size");
        assert_eq!(f[11], 5, "name size counts the NUL");
        // 110 + 5 = 115 -> header and name padded to 116, then the data.
        assert_eq!(&a[116..126], b"#!/bin/sh\n");
        // Data padded to 128, where the trailer starts.
        assert_eq!(&a[126..128], &[0, 0]);
        let (t, name) = fields(&a, 128);
        assert_eq!(name, "TRAILER!!!");
        assert_eq!(t[0], 0);
        assert_eq!(t[6], 0);
        assert_eq!(a.len() % 512, 0, "archive padded to a cpio block");
        assert!(a[128 + 110 + 11..].iter().all(|&b| b == 0));
    }

    #[test]
    fn header_fields_are_uppercase_hex_of_eight_digits() {
        let mut w = CpioWriter::new();
        w.dir("usr/share/udhcpc", 0o755);
        let a = w.finish();
        let header = std::str::from_utf8(&a[6..110]).unwrap();
        assert!(header
            .chars()
            .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c)));
        let (f, name) = fields(&a, 0);
        assert_eq!(name, "usr/share/udhcpc");
        assert_eq!(f[1], 0o040_755);
        assert_eq!(f[4], 2, "a directory has two links");
        assert_eq!(f[2..4], [0, 0], "owned by root");
        assert_eq!(f[5], 0, "mtime 0: reproducible");
    }

    #[test]
    fn symlink_data_is_its_target_and_device_carries_rdev() {
        let mut w = CpioWriter::new();
        w.symlink("bin/sh", "busybox");
        w.char_device("dev/console", 0o600, 5, 1);
        let a = w.finish();
        let (f, name) = fields(&a, 0);
        assert_eq!(name, "bin/sh");
        assert_eq!(f[1], 0o120_777);
        assert_eq!(f[6], 7);
        // 110 + 7 = 117 -> 120; data "busybox" 7 -> 128.
        assert_eq!(&a[120..127], b"busybox");
        let (d, name) = fields(&a, 128);
        assert_eq!(name, "dev/console");
        assert_eq!(d[0], 2, "inodes count up");
        assert_eq!(d[1], 0o020_600);
        assert_eq!((d[9], d[10]), (5, 1), "rdev major:minor");
        assert_eq!(d[6], 0);
    }

    #[test]
    fn every_entry_starts_four_byte_aligned() {
        let mut w = CpioWriter::new();
        for (i, name) in ["a", "bb", "ccc", "dddd", "eeeee"].iter().enumerate() {
            w.file(name, 0o644, &vec![b'x'; i]);
        }
        let a = w.finish();
        let mut at = 0;
        let mut names = Vec::new();
        loop {
            assert_eq!(at % 4, 0);
            let (f, name) = fields(&a, at);
            let name_end = (at + 110 + f[11] as usize).next_multiple_of(4);
            at = (name_end + f[6] as usize).next_multiple_of(4);
            if name == "TRAILER!!!" {
                break;
            }
            names.push(name);
        }
        assert_eq!(names, ["a", "bb", "ccc", "dddd", "eeeee"]);
    }
}
