//! ITS register values: GITS_CTLR, GITS_TYPER, GITS_CBASER, GITS_CREADR,
//! GITS_CWRITER and GITS_BASER<n> (IHI 0069, the GITS_* register
//! descriptions).

use core::fmt;

use super::{bits64, flag};
use crate::mm::addr::PhysAddr;

register! {
    /// GITS_CTLR, the ITS control register (32 bits).
    GitsCtlr(u32) {
        flag
        /// Enabled: the ITS translates and processes commands.
        enabled, with_enabled @ 0;
        flag
        /// ImDe_Enable: GICv4.1 implementation-defined event mode enable.
        im_de, with_im_de @ 1;
        flag
        /// UMSIirq: GICv4.1 unmapped-MSI interrupt enable.
        umsi_irq, with_umsi_irq @ 8;
        flag
        /// Quiescent: the ITS is idle (read only); wait for it before disabling.
        quiescent, with_quiescent @ 31;
        field
        /// ITS_Number: this ITS's number in VMOVP ITS lists (GITS_TYPER.VMOVP == 0).
        its_number, with_its_number @ [7:4];
    }
}

register! {
    /// GITS_TYPER, what the ITS implements (read only, 64 bits).
    GitsTyper(u64) {
        flag
        /// Physical: physical LPIs are supported.
        physical, with_physical @ 0;
        flag
        /// Virtual: GICv4 virtual LPIs and the V* commands are supported.
        virtual_lpis, with_virtual_lpis @ 1;
        flag
        /// CCT: cumulative collection tables.
        cct, with_cct @ 2;
        flag
        /// SEIS: the ITS can generate system errors.
        seis, with_seis @ 18;
        flag
        /// PTA: RDbase is a physical address (1) or a processor number (0).
        pta, with_pta @ 19;
        flag
        /// CIL: CIDbits is meaningful (0: collection IDs are 16 bits).
        cil, with_cil @ 36;
        flag
        /// VMOVP: one VMOVP suffices for all ITSs (no ITS list, no sequence number).
        vmovp, with_vmovp @ 37;
        flag
        /// MPAM: MPAM is supported.
        mpam, with_mpam @ 38;
        flag
        /// VSGI: GICv4.1 direct injection of virtual SGIs.
        vsgi, with_vsgi @ 39;
        flag
        /// VMAPP: the GICv4.1 VMAPP layout; the marker of a GICv4.1 ITS.
        vmapp, with_vmapp @ 40;
        flag
        /// nID: no individual doorbells (GICv4.1).
        nid, with_nid @ 43;
        flag
        /// UMSI: unmapped MSIs are reported.
        umsi, with_umsi @ 44;
        flag
        /// UMSIirq: unmapped MSIs can raise an interrupt.
        umsi_irq, with_umsi_irq @ 45;
        flag
        /// INV: the ITS supports the GICv4.1 invalidate registers.
        inv, with_inv @ 46;
        field
        /// ITT_entry_size: bytes per ITT entry, minus one.
        itt_entry_size, with_itt_entry_size @ [7:4];
        field
        /// ID_bits: EventID bits, minus one.
        id_bits, with_id_bits @ [12:8];
        field
        /// Devbits: DeviceID bits, minus one.
        devbits, with_devbits @ [17:13];
        field
        /// HCC: number of collections held in the ITS itself (no memory needed).
        hcc, with_hcc @ [31:24];
        field
        /// CIDbits: collection ID bits, minus one (when CIL == 1).
        cid_bits, with_cid_bits @ [35:32];
        field
        /// SVPET: vPE table sharing between ITSs and redistributors (GICv4.1).
        svpet, with_svpet @ [42:41];
    }
}

/// Which generation of the architecture an ITS implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ItsVersion {
    /// GICv3: physical LPIs only.
    V3,
    /// GICv4.0: virtual LPIs, per-vLPI doorbells (QEMU `gic-version=4`).
    V4_0,
    /// GICv4.1: VMAPP with default doorbell, vSGIs (GIC-700).
    V4_1,
}

impl GitsTyper {
    /// Number of bytes in one ITT entry.
    pub const fn itt_entry_bytes(self) -> u32 {
        self.itt_entry_size() as u32 + 1
    }

    /// Number of EventID bits the ITS supports.
    pub const fn event_id_bits(self) -> u32 {
        self.id_bits() as u32 + 1
    }

    /// Number of DeviceID bits the ITS supports.
    pub const fn device_id_bits(self) -> u32 {
        self.devbits() as u32 + 1
    }

    /// Number of collection ID bits (16 unless CIL says otherwise).
    pub const fn collection_id_bits(self) -> u32 {
        if self.cil() {
            self.cid_bits() as u32 + 1
        } else {
            16
        }
    }

    /// The architecture generation: Virtual without VMAPP is GICv4.0,
    /// Virtual with VMAPP is GICv4.1 (IHI 0069, GITS_TYPER.VMAPP).
    pub const fn version(self) -> ItsVersion {
        match (self.virtual_lpis(), self.vmapp()) {
            (false, _) => ItsVersion::V3,
            (true, false) => ItsVersion::V4_0,
            (true, true) => ItsVersion::V4_1,
        }
    }
}

/// A one-line summary for the boot banner.
impl fmt::Display for GitsTyper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let version = match self.version() {
            ItsVersion::V3 => "GICv3",
            ItsVersion::V4_0 => "GICv4.0",
            ItsVersion::V4_1 => "GICv4.1",
        };
        write!(
            f,
            "{version} ITS: DeviceID {} bits, EventID {} bits, ICID {} bits, ITT entry {} bytes, \
             RDbase by {}, HCC {}",
            self.device_id_bits(),
            self.event_id_bits(),
            self.collection_id_bits(),
            self.itt_entry_bytes(),
            if self.pta() {
                "address"
            } else {
                "processor number"
            },
            self.hcc(),
        )?;
        flag(f, self.physical(), "Physical")?;
        flag(f, self.virtual_lpis(), "Virtual")?;
        flag(f, self.vmovp(), "VMOVP")?;
        flag(f, self.vsgi(), "VSGI")?;
        flag(f, self.seis(), "SEIS")?;
        flag(f, self.mpam(), "MPAM")
    }
}

register! {
    /// GITS_CBASER, base and size of the command queue.
    GitsCbaser(u64) {
        flag
        /// Valid: the ITS may read the command queue.
        valid, with_valid @ 63;
        field
        /// Size: number of 4 KiB pages of the queue, minus one.
        size, with_size @ [7:0];
        field
        /// Shareability of the queue accesses.
        shareability, with_shareability @ [11:10];
        field
        /// OuterCache attributes of the queue accesses.
        outer_cache, with_outer_cache @ [55:53];
        field
        /// InnerCache attributes of the queue accesses.
        inner_cache, with_inner_cache @ [61:59];
    }
}

impl GitsCbaser {
    /// Physical_Address, bits [51:12]: the 4 KiB aligned queue base.
    pub const fn physical_address(self) -> PhysAddr {
        PhysAddr(self.0 & bits64(51, 12))
    }

    /// A copy with Physical_Address set (bits below 4 KiB are dropped).
    pub const fn with_physical_address(self, addr: PhysAddr) -> Self {
        Self((self.0 & !bits64(51, 12)) | (addr.0 & bits64(51, 12)))
    }

    /// Size of the queue in bytes.
    pub const fn queue_bytes(self) -> u64 {
        (self.size() + 1) * 4096
    }
}

register! {
    /// GITS_CREADR, where the ITS will read its next command.
    GitsCreadr(u64) {
        flag
        /// Stalled: the ITS stopped on a command error (with GITS_TYPER.SEIS).
        stalled, with_stalled @ 0;
        field
        /// Offset: index of the next command, in 32-byte units.
        offset, with_offset @ [19:5];
    }
}

register! {
    /// GITS_CWRITER, where software will write its next command.
    GitsCwriter(u64) {
        flag
        /// Retry: restart a stalled command queue.
        retry, with_retry @ 0;
        field
        /// Offset: index of the next free slot, in 32-byte units.
        offset, with_offset @ [19:5];
    }
}

impl GitsCreadr {
    /// The offset in bytes from the queue base.
    pub const fn byte_offset(self) -> u64 {
        self.0 & bits64(19, 5)
    }
}

impl GitsCwriter {
    /// A CWRITER value naming `bytes` from the queue base (32-byte units).
    pub const fn from_byte_offset(bytes: u64) -> Self {
        Self(bytes & bits64(19, 5))
    }

    /// The offset in bytes from the queue base.
    pub const fn byte_offset(self) -> u64 {
        self.0 & bits64(19, 5)
    }
}

register! {
    /// GITS_BASER<n>, one of the ITS's memory tables.
    GitsBaser(u64) {
        flag
        /// Valid: the ITS may use the table.
        valid, with_valid @ 63;
        flag
        /// Indirect: two-level table (sticks only if the ITS supports it).
        indirect, with_indirect @ 62;
        field
        /// Size: number of pages of the (level-1) table, minus one.
        size, with_size @ [7:0];
        field
        /// Page_Size encoding: 0 = 4 KiB, 1 = 16 KiB, 2 (and 3) = 64 KiB.
        page_size, with_page_size @ [9:8];
        field
        /// Shareability of the table accesses.
        shareability, with_shareability @ [11:10];
        field
        /// Entry_Size: bytes per entry, minus one (read only).
        entry_size, with_entry_size @ [52:48];
        field
        /// OuterCache attributes of the table accesses.
        outer_cache, with_outer_cache @ [55:53];
        field
        /// Type of table (read only): see [`ItsTableType`].
        table_type, with_table_type @ [58:56];
        field
        /// InnerCache attributes of the table accesses.
        inner_cache, with_inner_cache @ [61:59];
    }
}

/// What a GITS_BASER<n> holds (IHI 0069, GITS_BASER<n>.Type).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItsTableType {
    /// No table (the register is unimplemented).
    Unimplemented,
    /// The Device table, indexed by DeviceID.
    Devices,
    /// The vPE table, indexed by vPEID (GICv4).
    Vpes,
    /// The Collection table, indexed by ICID.
    Collections,
}

/// A page size an ITS table can use (GITS_BASER<n>.Page_Size).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ItsPageSize {
    /// 4 KiB pages.
    Size4K,
    /// 16 KiB pages.
    Size16K,
    /// 64 KiB pages (the only size with 52-bit addresses).
    Size64K,
}

impl ItsPageSize {
    /// Every page size, smallest first.
    pub const ALL: [ItsPageSize; 3] = [Self::Size4K, Self::Size16K, Self::Size64K];

    /// The page size in bytes.
    pub const fn bytes(self) -> u64 {
        match self {
            Self::Size4K => 4 << 10,
            Self::Size16K => 16 << 10,
            Self::Size64K => 64 << 10,
        }
    }

    /// The Page_Size field encoding.
    pub const fn bits(self) -> u64 {
        match self {
            Self::Size4K => 0,
            Self::Size16K => 1,
            Self::Size64K => 2,
        }
    }
}

impl GitsBaser {
    /// The table type, or `None` for a reserved encoding.
    pub const fn kind(self) -> Option<ItsTableType> {
        match self.table_type() {
            0 => Some(ItsTableType::Unimplemented),
            1 => Some(ItsTableType::Devices),
            2 => Some(ItsTableType::Vpes),
            4 => Some(ItsTableType::Collections),
            _ => None,
        }
    }

    /// The page size; the reserved encoding 3 reads as 64 KiB, as the
    /// architecture says it is treated.
    pub const fn page(self) -> ItsPageSize {
        match self.page_size() {
            0 => ItsPageSize::Size4K,
            1 => ItsPageSize::Size16K,
            _ => ItsPageSize::Size64K,
        }
    }

    /// A copy with the Page_Size field set.
    pub const fn with_page(self, page: ItsPageSize) -> Self {
        self.with_page_size(page.bits())
    }

    /// Number of bytes in one table entry.
    pub const fn entry_bytes(self) -> u32 {
        self.entry_size() as u32 + 1
    }

    /// Number of bytes of the (level-1) table: pages times page size.
    pub const fn table_bytes(self) -> u64 {
        (self.size() + 1) * self.page().bytes()
    }

    /// Physical_Address for the current page size. With 64 KiB pages,
    /// address bits [51:48] live in register bits [15:12] and bits
    /// [47:16] in place; otherwise register bits [47:12] are the address.
    pub const fn physical_address(self) -> PhysAddr {
        match self.page() {
            ItsPageSize::Size64K => {
                let high = ((self.0 >> 12) & 0xf) << 48;
                PhysAddr((self.0 & bits64(47, 16)) | high)
            }
            _ => PhysAddr(self.0 & bits64(47, 12)),
        }
    }

    /// A copy with Physical_Address set for the current page size (set the
    /// page size first). Bits the layout cannot hold are dropped: the
    /// caller checks alignment and width.
    pub const fn with_physical_address(self, addr: PhysAddr) -> Self {
        let cleared = self.0 & !bits64(47, 12);
        match self.page() {
            ItsPageSize::Size64K => {
                let high = ((addr.0 >> 48) & 0xf) << 12;
                Self(cleared | (addr.0 & bits64(47, 16)) | high)
            }
            _ => Self(cleared | (addr.0 & bits64(47, 12))),
        }
    }

    /// Widest physical address (exclusive bound) the layout can hold with
    /// the current page size: 2^52 with 64 KiB pages, 2^48 otherwise.
    pub const fn address_limit(self) -> u64 {
        match self.page() {
            ItsPageSize::Size64K => 1 << 52,
            _ => 1 << 48,
        }
    }
}

register! {
    /// A level-1 entry of a two-level ITS table (IHI 0069, GITS_BASER<n>.
    /// Indirect): Valid and the level-2 page's physical address (bits
    /// [51:12], page-aligned by the table's page size).
    ItsLevel1Entry(u64) {
        flag
        /// Valid: the level-2 page exists.
        valid, with_valid @ 63;
        field
        /// Bits [51:12] of the level-2 page's physical address.
        address_bits, with_address_bits @ [51:12];
    }
}

impl ItsLevel1Entry {
    /// A valid entry pointing at the level-2 page at `page` (4 KiB aligned).
    pub const fn valid_page(page: PhysAddr) -> Self {
        Self(0).with_address_bits(page.raw() >> 12).with_valid(true)
    }
}

/// GITS_TYPER as QEMU 10 `virt,gic-version=4` reports it.
#[cfg(test)]
pub(crate) const QEMU_GITS_TYPER: u64 = 0x3f_0001_efb3;

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn qemu_gits_typer_decodes_as_gicv40_with_16_bit_ids() {
        let typer = GitsTyper(QEMU_GITS_TYPER);
        assert!(typer.physical() && typer.virtual_lpis() && typer.vmovp());
        assert!(!typer.pta() && !typer.vmapp() && !typer.vsgi() && !typer.seis());
        assert_eq!(typer.hcc(), 0);
        assert_eq!(typer.device_id_bits(), 16);
        assert_eq!(typer.event_id_bits(), 16);
        assert_eq!(typer.collection_id_bits(), 16);
        assert_eq!(typer.itt_entry_bytes(), 12);
        assert_eq!(typer.version(), ItsVersion::V4_0);
    }

    #[test]
    fn typer_banner_names_version_sizes_and_features() {
        let banner = format!("{}", GitsTyper(QEMU_GITS_TYPER));
        assert_eq!(
            banner,
            "GICv4.0 ITS: DeviceID 16 bits, EventID 16 bits, ICID 16 bits, ITT entry 12 bytes, \
             RDbase by processor number, HCC 0 Physical Virtual VMOVP"
        );
    }

    #[test]
    fn vmapp_bit_marks_gicv41_and_no_virtual_is_gicv3() {
        let v41 = GitsTyper(QEMU_GITS_TYPER).with_vmapp(true).with_vsgi(true);
        assert_eq!(v41.version(), ItsVersion::V4_1);
        assert_eq!(v41.0, QEMU_GITS_TYPER | 3 << 39);
        let v3 = GitsTyper(QEMU_GITS_TYPER).with_virtual_lpis(false);
        assert_eq!(v3.version(), ItsVersion::V3);
    }

    #[test]
    fn collection_bits_default_to_16_without_cil() {
        let typer = GitsTyper(0).with_cid_bits(7);
        assert_eq!(typer.collection_id_bits(), 16);
        assert_eq!(typer.with_cil(true).collection_id_bits(), 8);
    }

    #[test]
    fn level1_entry_is_valid_bit_63_and_the_page_address() {
        let e = ItsLevel1Entry::valid_page(PhysAddr(0x8_0001_0000));
        assert_eq!(e.0, (1 << 63) | 0x8_0001_0000);
        assert!(e.valid());
        assert!(!ItsLevel1Entry(0x8_0001_0000).valid());
        // Address bits above 51 cannot reach the reserved field.
        assert_eq!(ItsLevel1Entry::valid_page(PhysAddr(1 << 52)).0, 1 << 63);
    }

    #[test]
    fn field_setters_mask_to_width() {
        let typer = GitsTyper(0).with_itt_entry_size(0xff);
        assert_eq!(typer.0, 0xf0);
        let ctlr = GitsCtlr(0).with_enabled(true).with_its_number(0x1f);
        assert_eq!(ctlr.0, 0xf1);
        assert_eq!(ctlr.with_enabled(false).0, 0xf0);
    }

    #[test]
    fn cbaser_places_address_size_attributes_and_valid() {
        let cbaser = GitsCbaser(0)
            .with_valid(true)
            .with_inner_cache(7)
            .with_shareability(1)
            .with_size(15)
            .with_physical_address(PhysAddr(0x000f_1234_5678_9000));
        assert_eq!(cbaser.0, 0xb80f_1234_5678_940f);
        assert_eq!(cbaser.queue_bytes(), 64 << 10);
        assert_eq!(cbaser.physical_address(), PhysAddr(0x000f_1234_5678_9000));
    }

    #[test]
    fn creadr_and_cwriter_offsets_are_bytes_in_32_byte_units() {
        let creadr = GitsCreadr(0x0000_1001);
        assert!(creadr.stalled());
        assert_eq!(creadr.byte_offset(), 0x1000);
        assert_eq!(creadr.offset(), 0x80);
        assert_eq!(GitsCwriter::from_byte_offset(0xf_ffe0 + 0x1f).0, 0xf_ffe0);
        assert_eq!(GitsCwriter(0).with_retry(true).0, 1);
    }

    #[test]
    fn baser_64k_pages_split_address_bits_51_to_48_into_15_to_12() {
        let baser = GitsBaser(0)
            .with_page(ItsPageSize::Size64K)
            .with_physical_address(PhysAddr(0x000a_1234_5678_0000));
        assert_eq!(baser.0, 0x0000_1234_5678_a200);
        assert_eq!(baser.physical_address(), PhysAddr(0x000a_1234_5678_0000));
        assert_eq!(baser.address_limit(), 1 << 52);
    }

    #[test]
    fn baser_4k_pages_hold_48_bit_addresses_in_place() {
        let baser = GitsBaser(0)
            .with_page(ItsPageSize::Size4K)
            .with_physical_address(PhysAddr(0x000a_1234_5678_9000));
        assert_eq!(baser.0, 0x0000_1234_5678_9000);
        assert_eq!(baser.address_limit(), 1 << 48);
    }

    #[test]
    fn baser_decodes_type_entry_size_and_table_size() {
        // Device table, 8-byte entries, 64 KiB pages, 2 pages, indirect.
        let baser = GitsBaser(0x4107_0000_0000_0201);
        assert_eq!(baser.kind(), Some(ItsTableType::Devices));
        assert_eq!(baser.entry_bytes(), 8);
        assert_eq!(baser.page(), ItsPageSize::Size64K);
        assert_eq!(baser.table_bytes(), 128 << 10);
        assert!(baser.indirect() && !baser.valid());
        assert_eq!(GitsBaser(2 << 56).kind(), Some(ItsTableType::Vpes));
        assert_eq!(GitsBaser(4 << 56).kind(), Some(ItsTableType::Collections));
        assert_eq!(GitsBaser(3 << 56).kind(), None);
        assert_eq!(GitsBaser(3 << 8).page(), ItsPageSize::Size64K);
    }
}
