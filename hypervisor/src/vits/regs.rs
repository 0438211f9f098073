//! The guest-visible ITS registers (IHI 0069, chapter 12, the GITS_*
//! register descriptions): offsets, field layouts, and the register file
//! of one vITS. Pure data: the queue and the commands live elsewhere.

use super::config::{fits, VitsConfig};
use super::error::StallReason;
use crate::guest_mem::GuestMemory;
use crate::mm::Ipa;

/// Size of the vITS MMIO region: control frame + translation frame.
pub const FRAME_SIZE: u64 = 0x2_0000;

/// Register offsets from the vITS base (IHI 0069, the ITS register map).
pub mod offset {
    /// GITS_CTLR (32-bit).
    pub const CTLR: u64 = 0x0000;
    /// GITS_IIDR (32-bit).
    pub const IIDR: u64 = 0x0004;
    /// GITS_TYPER (64-bit).
    pub const TYPER: u64 = 0x0008;
    /// GITS_CBASER (64-bit).
    pub const CBASER: u64 = 0x0080;
    /// GITS_CWRITER (64-bit).
    pub const CWRITER: u64 = 0x0088;
    /// GITS_CREADR (64-bit).
    pub const CREADR: u64 = 0x0090;
    /// GITS_BASER0; BASER<n> is at BASER + 8n, n < 8 (64-bit).
    pub const BASER: u64 = 0x0100;
    /// First of the 32-bit ID registers (GITS_PIDR4).
    pub const ID_REGS: u64 = 0xFFD0;
    /// GITS_PIDR2.
    pub const PIDR2: u64 = 0xFFE8;
    /// GITS_TRANSLATER, in the translation frame (32-bit or 16-bit writes).
    pub const TRANSLATER: u64 = 0x1_0040;
}

/// The width of a guest MMIO access, from ESR_EL2.ISS.SAS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessWidth {
    /// 8 bits.
    Byte,
    /// 16 bits.
    Half,
    /// 32 bits.
    Word,
    /// 64 bits.
    Double,
}

impl AccessWidth {
    /// The width of an access of `bytes` bytes, if it is one.
    pub fn from_bytes(bytes: usize) -> Option<Self> {
        match bytes {
            1 => Some(Self::Byte),
            2 => Some(Self::Half),
            4 => Some(Self::Word),
            8 => Some(Self::Double),
            _ => None,
        }
    }
}

/// GITS_CTLR.Enabled.
pub const CTLR_ENABLED: u32 = 1 << 0;
/// GITS_CTLR.Quiescent.
pub const CTLR_QUIESCENT: u32 = 1 << 31;
/// GITS_CREADR.Stalled.
pub const CREADR_STALLED: u64 = 1 << 0;
/// GITS_CWRITER.Retry.
pub const CWRITER_RETRY: u64 = 1 << 0;
/// Offset field of GITS_CWRITER/GITS_CREADR, bits [19:5].
pub const QUEUE_OFFSET_MASK: u64 = 0x000F_FFE0;
/// Valid bit of GITS_CBASER and GITS_BASER<n>.
pub const BASER_VALID: u64 = 1 << 63;
/// GITS_BASER<n>.Indirect.
pub const BASER_INDIRECT: u64 = 1 << 62;

/// GITS_BASER<n>.Type values (IHI 0069, GITS_BASER<n>).
const TYPE_DEVICE: u64 = 1;
const TYPE_COLLECTION: u64 = 4;
/// Bytes per Device table, Collection table and ITT entry this ITS reports.
pub const ENTRY_SIZE: u64 = 8;
/// Size of one level-1 entry of a two-level table (IHI 0069, GITS_BASER<n>
/// Indirect: level-1 entries are 64 bits with Valid in bit 63).
const L1_ENTRY_SIZE: u64 = 8;

/// GITS_IIDR: Implementer 0x43B (JEP106 code of Arm), ProductID 0x56.
const IIDR: u32 = 0x5600_043B;
/// GITS_PIDR4..7, PIDR0..3, CIDR0..3: ArchRev 3 (GICv3) in PIDR2[7:4].
const ID_REGS: [u32; 12] = [0x44, 0, 0, 0, 0x94, 0xB4, 0x3B, 0, 0x0D, 0xF0, 0x05, 0xB1];

/// Fields the guest may write in GITS_CBASER: Valid, InnerCache, OuterCache,
/// Physical_Address[51:12], Shareability, Size (IHI 0069, GITS_CBASER).
/// Address bits [15:12] are kept as written, so a queue that is only 4 KiB
/// aligned works too.
const CBASER_WRITABLE: u64 =
    BASER_VALID | (0b111 << 59) | (0b111 << 53) | (0xFF_FFFF_FFFF << 12) | (0b11 << 10) | 0xFF;

/// Fields the guest may write in GITS_BASER<n>: all but Type and
/// Entry_Size (read-only) and Indirect (added per table).
const BASER_WRITABLE: u64 = BASER_VALID
    | (0b111 << 59)
    | (0b111 << 53)
    | (0xF_FFFF_FFFF << 12)
    | (0b11 << 10)
    | (0b11 << 8)
    | 0xFF;

/// One half or the whole of a 64-bit register, as an access reaches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Part {
    Whole,
    Low,
    High,
}

impl Part {
    /// Which part of the 64-bit register at `base` an access reaches
    /// (IHI 0069: the halves of the 64-bit GITS registers are accessible
    /// separately).
    pub(super) fn of(base: u64, offset: u64, width: AccessWidth) -> Option<Self> {
        match (offset.checked_sub(base)?, width) {
            (0, AccessWidth::Double) => Some(Self::Whole),
            (0, AccessWidth::Word) => Some(Self::Low),
            (4, AccessWidth::Word) => Some(Self::High),
            _ => None,
        }
    }

    /// The bits of `reg` this part returns.
    pub(super) fn read(self, reg: u64) -> u64 {
        match self {
            Self::Whole => reg,
            Self::Low => reg & 0xFFFF_FFFF,
            Self::High => reg >> 32,
        }
    }

    /// `reg` with this part replaced by `value`.
    pub(super) fn merge(self, reg: u64, value: u64) -> u64 {
        match self {
            Self::Whole => value,
            Self::Low => (reg & !0xFFFF_FFFF) | (value & 0xFFFF_FFFF),
            Self::High => (reg & 0xFFFF_FFFF) | (value << 32),
        }
    }
}

/// The state behind the guest-visible registers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Registers {
    /// GITS_CTLR.Enabled.
    pub enabled: bool,
    /// GITS_CBASER as the guest reads it.
    pub cbaser: u64,
    /// GITS_CWRITER.Offset, in bytes.
    pub cwriter: u64,
    /// GITS_CREADR.Offset, in bytes.
    pub creadr: u64,
    /// Why the queue stalled, if it did (GITS_CREADR.Stalled).
    pub stall: Option<StallReason>,
    /// GITS_BASER0: the Device table.
    pub device_baser: u64,
    /// GITS_BASER1: the Collection table.
    pub collection_baser: u64,
}

impl Registers {
    /// The reset state: Enabled and every Valid bit 0.
    pub(super) fn new() -> Self {
        let page_64k = 0b10 << 8;
        Self {
            enabled: false,
            cbaser: 0,
            cwriter: 0,
            creadr: 0,
            stall: None,
            device_baser: baser_ro(TYPE_DEVICE) | page_64k,
            collection_baser: baser_ro(TYPE_COLLECTION) | page_64k,
        }
    }

    /// GITS_TYPER for `config` (IHI 0069, GITS_TYPER).
    pub(super) fn typer(config: &VitsConfig) -> u64 {
        let physical = 1;
        let itt_entry_size = (ENTRY_SIZE - 1) << 4;
        let id_bits = u64::from(config.event_id_bits - 1) << 8;
        let dev_bits = u64::from(config.device_id_bits - 1) << 13;
        // PTA == 0: RDbase is a processor number, which is the vCPU index.
        // HCC == 0: every collection lives in the guest's Collection table.
        // CIL == 1 lets CIDbits say how wide collection IDs are.
        let cid_bits = u64::from(config.collection_id_bits - 1) << 32;
        let cil = 1 << 36;
        physical | itt_entry_size | id_bits | dev_bits | cid_bits | cil
    }

    /// GITS_CTLR as the guest reads it. Commands run to completion inside
    /// the trap, so a disabled vITS has nothing in flight: it is quiescent.
    pub(super) fn ctlr(&self) -> u32 {
        if self.enabled {
            CTLR_ENABLED
        } else {
            CTLR_QUIESCENT
        }
    }

    /// GITS_IIDR.
    pub(super) fn iidr() -> u32 {
        IIDR
    }

    /// The ID register at `offset` (PIDR4..CIDR3), if it is one.
    pub(super) fn id_reg(offset: u64) -> Option<u32> {
        let index = offset.checked_sub(offset::ID_REGS)? / 4;
        ID_REGS.get(usize::try_from(index).ok()?).copied()
    }

    /// GITS_CREADR as the guest reads it.
    pub(super) fn creadr_value(&self) -> u64 {
        self.creadr
            | if self.stall.is_some() {
                CREADR_STALLED
            } else {
                0
            }
    }

    /// Writes GITS_CBASER; returns false if the write was ignored. Writing
    /// it while the ITS is enabled is UNPREDICTABLE (GITS_CBASER); this ITS
    /// ignores such writes. A write resets GITS_CREADR to 0; GITS_CWRITER
    /// follows so that the new queue starts empty.
    pub(super) fn write_cbaser(&mut self, part: Part, value: u64) -> bool {
        if self.enabled {
            return false;
        }
        self.cbaser = part.merge(self.cbaser, value) & CBASER_WRITABLE;
        self.creadr = 0;
        self.cwriter = 0;
        self.stall = None;
        true
    }

    /// Whether GITS_CBASER.Valid is set.
    pub(super) fn queue_valid(&self) -> bool {
        self.cbaser & BASER_VALID != 0
    }

    /// The command queue's base address.
    pub(super) fn queue_base(&self) -> Ipa {
        Ipa(self.cbaser & (0xFF_FFFF_FFFF << 12))
    }

    /// The command queue's size in bytes: (Size + 1) 4 KiB pages.
    pub(super) fn queue_size(&self) -> u64 {
        ((self.cbaser & 0xFF) + 1) * 0x1000
    }

    /// Reads GITS_BASER<n>; unimplemented ones read as zero.
    pub(super) fn baser(&self, n: u64) -> u64 {
        match n {
            0 => self.device_baser,
            1 => self.collection_baser,
            _ => 0,
        }
    }

    /// Writes GITS_BASER<n>; returns which table lost its Valid bit, if
    /// one did. Writes while enabled are UNPREDICTABLE (GITS_BASER<n>) and
    /// ignored, as are writes to unimplemented BASERs (RAZ/WI).
    pub(super) fn write_baser(&mut self, n: u64, part: Part, value: u64) -> Option<Table> {
        if self.enabled {
            return None;
        }
        let (reg, table, writable) = match n {
            // Two-level Device tables are supported: Indirect is writable.
            0 => (
                &mut self.device_baser,
                Table::Device,
                BASER_WRITABLE | BASER_INDIRECT,
            ),
            // The Collection table is flat only: Indirect is RAZ/WI.
            1 => (
                &mut self.collection_baser,
                Table::Collection,
                BASER_WRITABLE,
            ),
            _ => return None,
        };
        let was_valid = *reg & BASER_VALID != 0;
        let ro = *reg & !BASER_WRITABLE & !BASER_INDIRECT;
        let mut new = (part.merge(*reg, value) & writable) | ro;
        // Page_Size 0b11 is reserved; this ITS treats it as 64 KiB.
        if (new >> 8) & 0b11 == 0b11 {
            new &= !(0b01 << 8);
        }
        *reg = new;
        (was_valid && new & BASER_VALID == 0).then_some(table)
    }

    /// Whether `device` has an entry in the guest's Device table: in range
    /// of a flat table, or under a valid level-1 entry of a two-level one
    /// (IHI 0069, GITS_BASER<n>.Indirect). Reading that level-1 entry can fail; the queue
    /// then stalls.
    pub(super) fn device_in_table<M: GuestMemory + ?Sized>(
        &self,
        device: u32,
        mem: &M,
    ) -> Result<bool, StallReason> {
        let table = TableGeometry::of(self.device_baser);
        let Some(table) = table else {
            return Ok(false);
        };
        let id = u64::from(device);
        if !table.indirect {
            return Ok(id < table.bytes / ENTRY_SIZE);
        }
        let per_page = table.page / ENTRY_SIZE;
        let index = id / per_page;
        if index >= table.bytes / L1_ENTRY_SIZE {
            return Ok(false);
        }
        let Some(ipa) = table.base.checked_add(index * L1_ENTRY_SIZE) else {
            return Ok(false);
        };
        let entry = mem
            .read_u64(ipa)
            .map_err(|_| StallReason::MemoryError { ipa })?;
        // Only the Valid bit matters: the vITS never follows the pointer.
        Ok(entry & BASER_VALID != 0)
    }

    /// Whether `icid` has an entry in the guest's (flat) Collection table
    /// and fits the collection ID width.
    pub(super) fn collection_in_table(&self, icid: u16, config: &VitsConfig) -> bool {
        let id = u64::from(icid);
        if !fits(id, config.collection_id_bits) {
            return false;
        }
        TableGeometry::of(self.collection_baser).is_some_and(|t| id < t.bytes / ENTRY_SIZE)
    }
}

/// Which guest table a BASER describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Table {
    Device,
    Collection,
}

/// Where a valid table is and how big.
struct TableGeometry {
    base: Ipa,
    page: u64,
    bytes: u64,
    indirect: bool,
}

impl TableGeometry {
    /// The geometry of a valid BASER (IHI 0069, GITS_BASER<n>), None if invalid.
    fn of(baser: u64) -> Option<Self> {
        if baser & BASER_VALID == 0 {
            return None;
        }
        let (page, base) = match (baser >> 8) & 0b11 {
            0 => (0x1000, baser & (0xF_FFFF_FFFF << 12)),
            1 => (0x4000, baser & (0x3_FFFF_FFFF << 14)),
            // 64 KiB pages: bits [15:12] hold address bits [51:48].
            _ => (
                0x1_0000,
                (baser & (0xFFFF_FFFF << 16)) | ((baser >> 12) & 0xF) << 48,
            ),
        };
        Some(Self {
            base: Ipa(base),
            page,
            bytes: ((baser & 0xFF) + 1) * page,
            indirect: baser & BASER_INDIRECT != 0,
        })
    }
}

/// The read-only bits of a BASER: Type and Entry_Size.
const fn baser_ro(table_type: u64) -> u64 {
    (table_type << 56) | ((ENTRY_SIZE - 1) << 48)
}
