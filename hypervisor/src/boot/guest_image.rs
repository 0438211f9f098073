//! Where a partition's images go in its RAM, and whether they fit: a raw
//! binary is copied where the manifest says and entered at its first byte;
//! an arm64 Linux `Image` (Documentation/arch/arm64/booting.rst) says in
//! its header how much memory it needs beyond the file (`image_size`, for
//! its BSS and early page tables) and at which offset from a 2 MiB
//! boundary it must sit (`text_offset`). Pure: the kernel copies the bytes
//! once the plan is accepted.
#![forbid(unsafe_code)]

use core::ops::Range;

/// The magic number at offset 0x38 of an arm64 Image header ("ARM\x64").
const ARM64_MAGIC: u32 = 0x644d_5241;
/// Alignment of the 2 MiB-aligned base an Image's `text_offset` counts from.
const IMAGE_BASE_ALIGN: u64 = 2 << 20;
/// `text_offset` the boot protocol tells loaders to assume when an old
/// Image leaves `image_size` zero.
const LEGACY_TEXT_OFFSET: u64 = 0x8_0000;

/// What a kernel image is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageKind {
    /// A raw binary: it occupies its file size and starts at its first byte.
    Raw,
    /// An arm64 Linux Image.
    Arm64 {
        /// Offset of the load address from a 2 MiB boundary.
        text_offset: u64,
        /// Bytes from the load address the kernel uses (at least the file).
        image_size: u64,
        /// Header flags: bit 0 big-endian, bits 1-2 page size, bit 3
        /// placement (0: within 48 bits of the start of RAM's 2 MiB base).
        flags: u64,
    },
}

/// Reads the kind of `image` from its header.
pub fn inspect(image: &[u8]) -> ImageKind {
    let u64_at = |o: usize| {
        image
            .get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
    };
    let magic = image
        .get(0x38..0x3c)
        .map(|b| u32::from_le_bytes(b.try_into().unwrap_or([0; 4])));
    match (magic, u64_at(0x08), u64_at(0x10), u64_at(0x18)) {
        (Some(ARM64_MAGIC), Some(text_offset), Some(image_size), Some(flags)) => {
            if image_size == 0 {
                // Before Linux 3.17: no size, text_offset 0x80000 assumed.
                ImageKind::Arm64 {
                    text_offset: LEGACY_TEXT_OFFSET,
                    image_size: image.len() as u64,
                    flags: 0,
                }
            } else {
                ImageKind::Arm64 {
                    text_offset,
                    image_size: image_size.max(image.len() as u64),
                    flags,
                }
            }
        }
        _ => ImageKind::Raw,
    }
}

/// What the manifest says a kernel image is (`kernel.format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    /// An arm64 Linux Image, checked by its header (the default: a file
    /// without the header is refused rather than run as code).
    #[default]
    Image,
    /// A raw binary entered at its first byte (bare-metal guests, test
    /// suites): copied as it is, whatever it holds.
    Raw,
}

/// Why a partition's images cannot be placed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// An image (or the memory it needs) reaches outside the partition's RAM.
    OutsideRam {
        what: &'static str,
        at: u64,
        size: u64,
    },
    /// An image (or the memory it needs) reaches into the device tree area.
    OverlapsDtb { what: &'static str },
    /// The initrd lies inside the memory the kernel needs.
    InitrdOverlapsKernel { kernel_end: u64 },
    /// A Linux Image placed at an address its header does not allow.
    Misaligned { at: u64, text_offset: u64 },
    /// A big-endian Linux Image (the guest's EL1 is little-endian at entry).
    BigEndian,
    /// The manifest expects an arm64 Image but the file has no Image header.
    NotAnImage { len: u64 },
}

impl core::fmt::Display for LayoutError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::OutsideRam { what, at, size } => write!(
                f,
                "{what} ({size:#x} bytes at IPA {at:#x}) does not fit in the partition's RAM"
            ),
            Self::OverlapsDtb { what } => {
                write!(f, "{what} overlaps the device tree area (the last 2 MiB of RAM)")
            }
            Self::InitrdOverlapsKernel { kernel_end } => write!(
                f,
                "initrd lies inside the memory the kernel needs (up to IPA {kernel_end:#x}, its header's image_size)"
            ),
            Self::Misaligned { at, text_offset } => write!(
                f,
                "kernel: a Linux Image must be loaded at a 2 MiB boundary plus its text_offset {text_offset:#x}; {at:#x} is not"
            ),
            Self::BigEndian => write!(f, "kernel: a big-endian Linux Image is not supported"),
            Self::NotAnImage { len } => write!(
                f,
                "kernel: the file ({len} bytes) is not an arm64 Image (no \"ARM\\x64\" magic at offset 0x38); a raw binary needs format = \"raw\" in the manifest"
            ),
        }
    }
}

/// Accepted placement of a partition's images.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// What the kernel image is.
    pub kind: ImageKind,
    /// The IPAs the kernel occupies once running (file plus BSS for Linux).
    pub kernel: Range<u64>,
    /// The IPAs of the initrd, if any.
    pub initrd: Option<Range<u64>>,
}

/// Checks that the kernel (`kernel` bytes at `kernel_ipa`) is what the
/// manifest's `format` says and that it and the initrd (`initrd` = IPA
/// and length) fit in `ram` without touching the device tree area `dtb`
/// or each other.
pub fn place(
    kernel: &[u8],
    format: ImageFormat,
    kernel_ipa: u64,
    initrd: Option<(u64, u64)>,
    ram: Range<u64>,
    dtb: Range<u64>,
) -> Result<Placement, LayoutError> {
    let kind = match (format, inspect(kernel)) {
        (ImageFormat::Raw, _) => ImageKind::Raw,
        (ImageFormat::Image, ImageKind::Raw) => {
            return Err(LayoutError::NotAnImage {
                len: kernel.len() as u64,
            })
        }
        (ImageFormat::Image, image) => image,
    };
    let footprint = match kind {
        ImageKind::Raw => kernel.len() as u64,
        ImageKind::Arm64 {
            text_offset,
            image_size,
            flags,
        } => {
            if flags & 1 != 0 {
                return Err(LayoutError::BigEndian);
            }
            if kernel_ipa.wrapping_sub(text_offset) % IMAGE_BASE_ALIGN != 0 {
                return Err(LayoutError::Misaligned {
                    at: kernel_ipa,
                    text_offset,
                });
            }
            image_size
        }
    };
    let kernel_range = within(&ram, &dtb, "kernel", kernel_ipa, footprint)?;
    let initrd = match initrd {
        Some((at, len)) => {
            let r = within(&ram, &dtb, "initrd", at, len)?;
            if r.start < kernel_range.end && kernel_range.start < r.end {
                return Err(LayoutError::InitrdOverlapsKernel {
                    kernel_end: kernel_range.end,
                });
            }
            Some(r)
        }
        None => None,
    };
    Ok(Placement {
        kind,
        kernel: kernel_range,
        initrd,
    })
}

fn within(
    ram: &Range<u64>,
    dtb: &Range<u64>,
    what: &'static str,
    at: u64,
    size: u64,
) -> Result<Range<u64>, LayoutError> {
    let end = at
        .checked_add(size)
        .filter(|&end| at >= ram.start && end <= ram.end)
        .ok_or(LayoutError::OutsideRam { what, at, size })?;
    if at < dtb.end && dtb.start < end {
        return Err(LayoutError::OverlapsDtb { what });
    }
    Ok(at..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const RAM: Range<u64> = 0x4000_0000..0x4000_0000 + 256 * MIB;
    const DTB: Range<u64> = 0x4000_0000 + 254 * MIB..0x4000_0000 + 256 * MIB;

    /// An Image header as Debian's arm64 kernels carry it: text_offset 0,
    /// image_size beyond the file, flags 0xa (LE, 4K pages, anywhere).
    fn linux(file_len: usize, text_offset: u64, image_size: u64, flags: u64) -> Vec<u8> {
        let mut v = vec![0u8; file_len.max(64)];
        v[0x08..0x10].copy_from_slice(&text_offset.to_le_bytes());
        v[0x10..0x18].copy_from_slice(&image_size.to_le_bytes());
        v[0x18..0x20].copy_from_slice(&flags.to_le_bytes());
        v[0x38..0x3c].copy_from_slice(&ARM64_MAGIC.to_le_bytes());
        v
    }

    #[test]
    fn a_raw_binary_occupies_its_file() {
        let p = place(&[0u8; 100], ImageFormat::Raw, 0x4020_0000, None, RAM, DTB).unwrap();
        assert_eq!(p.kind, ImageKind::Raw);
        assert_eq!(p.kernel, 0x4020_0000..0x4020_0064);
    }

    #[test]
    fn a_file_without_an_image_header_is_refused_unless_it_is_said_to_be_raw() {
        let text = b"this is a text file, not a kernel\n".repeat(8);
        assert_eq!(
            place(&text, ImageFormat::Image, 0x4020_0000, None, RAM, DTB).unwrap_err(),
            LayoutError::NotAnImage {
                len: text.len() as u64
            }
        );
        let p = place(&text, ImageFormat::Raw, 0x4020_0000, None, RAM, DTB).unwrap();
        assert_eq!(p.kind, ImageKind::Raw);
    }

    #[test]
    fn a_raw_format_takes_an_image_as_plain_bytes() {
        let img = linux(4096, 0, 0x1ab_0000, 0xa);
        let p = place(&img, ImageFormat::Raw, 0x4010_0000, None, RAM, DTB).unwrap();
        assert_eq!(p.kind, ImageKind::Raw);
        assert_eq!(p.kernel, 0x4010_0000..0x4010_1000);
    }

    #[test]
    fn a_linux_image_reserves_its_image_size() {
        let img = linux(4096, 0, 0x1ab_0000, 0xa);
        let p = place(&img, ImageFormat::Image, 0x4020_0000, None, RAM, DTB).unwrap();
        assert_eq!(
            p.kind,
            ImageKind::Arm64 {
                text_offset: 0,
                image_size: 0x1ab_0000,
                flags: 0xa
            }
        );
        assert_eq!(p.kernel, 0x4020_0000..0x4020_0000 + 0x1ab_0000);
    }

    #[test]
    fn an_initrd_inside_the_kernels_bss_is_refused() {
        let img = linux(4096, 0, 0x1ab_0000, 0xa);
        // Past the file but inside image_size.
        let err = place(
            &img,
            ImageFormat::Image,
            0x4020_0000,
            Some((0x4100_0000, 4096)),
            RAM,
            DTB,
        )
        .unwrap_err();
        assert_eq!(
            err,
            LayoutError::InitrdOverlapsKernel {
                kernel_end: 0x4020_0000 + 0x1ab_0000
            }
        );
        assert!(place(
            &img,
            ImageFormat::Image,
            0x4020_0000,
            Some((0x4400_0000, 4096)),
            RAM,
            DTB
        )
        .is_ok());
    }

    #[test]
    fn the_load_address_must_honour_text_offset() {
        let img = linux(4096, 0, 0x10_0000, 0xa);
        let err = place(&img, ImageFormat::Image, 0x4010_0000, None, RAM, DTB).unwrap_err();
        assert_eq!(
            err,
            LayoutError::Misaligned {
                at: 0x4010_0000,
                text_offset: 0
            }
        );
        let old_style = linux(4096, 0x8_0000, 0x10_0000, 0x2);
        assert!(place(&old_style, ImageFormat::Image, 0x4008_0000, None, RAM, DTB).is_ok());
        assert!(err.to_string().contains("text_offset 0x0"));
    }

    #[test]
    fn an_image_without_size_gets_the_legacy_text_offset() {
        let img = linux(8192, 0x1234, 0, 0);
        assert_eq!(
            inspect(&img),
            ImageKind::Arm64 {
                text_offset: LEGACY_TEXT_OFFSET,
                image_size: 8192,
                flags: 0
            }
        );
    }

    #[test]
    fn a_kernel_reaching_the_device_tree_or_past_ram_is_refused() {
        let img = linux(4096, 0, 8 * MIB, 0xa);
        let at = 0x4000_0000 + 248 * MIB;
        assert_eq!(
            place(&img, ImageFormat::Image, at, None, RAM, DTB).unwrap_err(),
            LayoutError::OverlapsDtb { what: "kernel" }
        );
        let err = place(&[0; 16], ImageFormat::Raw, RAM.end - 8, None, RAM, DTB).unwrap_err();
        assert!(matches!(
            err,
            LayoutError::OutsideRam { what: "kernel", .. }
        ));
        // An address-space wrap is outside RAM, not an overflow.
        let err = place(
            &[0; 16],
            ImageFormat::Raw,
            0x4000_0000,
            Some((u64::MAX - 4, 16)),
            RAM,
            DTB,
        )
        .unwrap_err();
        assert!(matches!(
            err,
            LayoutError::OutsideRam { what: "initrd", .. }
        ));
    }

    #[test]
    fn big_endian_images_are_refused() {
        let img = linux(4096, 0, 0x10_0000, 0xb);
        assert_eq!(
            place(&img, ImageFormat::Image, 0x4020_0000, None, RAM, DTB).unwrap_err(),
            LayoutError::BigEndian
        );
    }

    #[test]
    fn short_or_foreign_blobs_are_raw() {
        assert_eq!(inspect(&[]), ImageKind::Raw);
        assert_eq!(inspect(&[0xff; 0x3b]), ImageKind::Raw);
        let mut v = linux(64, 0, 0x1000, 0);
        v[0x38] = 0;
        assert_eq!(inspect(&v), ImageKind::Raw);
    }
}
