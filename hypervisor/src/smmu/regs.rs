//! SMMUv3 register values (IHI 0070, chapter 6 "Memory map and
//! registers"). Values are newtypes whose getters carry the specification's
//! field names; `with_` setters mask to the field's width so a value can
//! never spill into a neighbouring field. Reading and writing the registers
//! is the driver's business (`drivers::smmuv3`, whose register block the
//! compiler checks against the offsets).

/// Cacheability of an SMMU table or queue access (SMMU_CR1.*_IC/*_OC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Cacheability {
    /// Non-cacheable.
    NonCacheable = 0,
    /// Write-back cacheable.
    WriteBack = 1,
    /// Write-through cacheable.
    WriteThrough = 2,
}

/// Shareability of an SMMU table or queue access (SMMU_CR1.*_SH).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Shareability {
    /// Non-shareable.
    NonShareable = 0,
    /// Outer shareable.
    OuterShareable = 2,
    /// Inner shareable.
    InnerShareable = 3,
}

register! {
    /// SMMU_IDR0: translation stages, table formats, coherency, IDs.
    Idr0(u32) {
        flag
        /// S2P: stage 2 translation supported.
        s2p, with_s2p @ 0;
        flag
        /// S1P: stage 1 translation supported.
        s1p, with_s1p @ 1;
        flag
        /// COHACC: table, queue and page-table walks are IO-coherent.
        cohacc, with_cohacc @ 4;
        flag
        /// BTM: broadcast TLB maintenance.
        btm, with_btm @ 5;
        flag
        /// HYP: EL2 (hypervisor) stage 1 contexts.
        hyp, with_hyp @ 9;
        flag
        /// ATS: PCIe ATS supported.
        ats, with_ats @ 10;
        flag
        /// ASID16: 16-bit ASIDs.
        asid16, with_asid16 @ 12;
        flag
        /// MSI: the SMMU can signal its interrupts by MSI.
        msi, with_msi @ 13;
        flag
        /// SEV: the SMMU can send WFE wake-up events (CMD_SYNC CS = SIG_SEV).
        sev, with_sev @ 14;
        flag
        /// PRI: PCIe page request interface.
        pri, with_pri @ 16;
        flag
        /// VMID16: 16-bit VMIDs.
        vmid16, with_vmid16 @ 18;
        flag
        /// CD2L: two-level context descriptor tables.
        cd2l, with_cd2l @ 19;
        flag
        /// TERM_MODEL: 1 = a terminated transaction always aborts (never RAZ/WI).
        term_model, with_term_model @ 26;
        field
        /// TTF: translation table formats, 0b01 AArch32, 0b10 AArch64, 0b11 both.
        ttf, with_ttf @ [3:2];
        field
        /// HTTU: hardware access flag (0b01) and dirty state (0b10) updates.
        httu, with_httu @ [7:6];
        field
        /// TTENDIAN: 0b00 mixed, 0b10 little endian only, 0b11 big endian only.
        ttendian, with_ttendian @ [22:21];
        field
        /// STALL_MODEL: 0b00 stall and terminate, 0b01 terminate only, 0b10 stall forced.
        stall_model, with_stall_model @ [25:24];
        field
        /// ST_LEVEL: 0b00 linear stream table only, 0b01 two-level supported.
        st_level, with_st_level @ [28:27];
    }
}

register! {
    /// SMMU_IDR1: ID sizes, queue sizes, preset tables.
    Idr1(u32) {
        flag
        /// REL: preset table/queue addresses are relative to the SMMU base.
        rel, with_rel @ 28;
        flag
        /// QUEUES_PRESET: queue base addresses are fixed.
        queues_preset, with_queues_preset @ 29;
        flag
        /// TABLES_PRESET: the stream table base is fixed.
        tables_preset, with_tables_preset @ 30;
        flag
        /// ECMDQ: enhanced command queues.
        ecmdq, with_ecmdq @ 31;
        field
        /// SIDSIZE: StreamID bits.
        sidsize, with_sidsize @ [5:0];
        field
        /// SSIDSIZE: SubstreamID bits.
        ssidsize, with_ssidsize @ [10:6];
        field
        /// PRIQS: log2 of the largest PRI queue.
        priqs, with_priqs @ [15:11];
        field
        /// EVENTQS: log2 of the largest event queue.
        eventqs, with_eventqs @ [20:16];
        field
        /// CMDQS: log2 of the largest command queue.
        cmdqs, with_cmdqs @ [25:21];
    }
}

register! {
    /// SMMU_IDR3: optional SMMUv3.1+ features.
    Idr3(u32) {
        flag
        /// FWB: stage 2 forced write-back.
        fwb, with_fwb @ 8;
        flag
        /// RIL: range-based TLB invalidation.
        ril, with_ril @ 10;
        field
        /// BBML: break-before-make level.
        bbml, with_bbml @ [12:11];
    }
}

register! {
    /// SMMU_IDR5: output address size and translation granules.
    Idr5(u32) {
        flag
        /// GRAN4K: 4 KiB translation granule.
        gran4k, with_gran4k @ 4;
        flag
        /// GRAN16K: 16 KiB translation granule.
        gran16k, with_gran16k @ 5;
        flag
        /// GRAN64K: 64 KiB translation granule.
        gran64k, with_gran64k @ 6;
        field
        /// OAS: output address size, 0 = 32 .. 5 = 48, 6 = 52 bits.
        oas, with_oas @ [2:0];
        field
        /// VAX: virtual address extension.
        vax, with_vax @ [11:10];
        field
        /// STALL_MAX: most outstanding stalled transactions.
        stall_max, with_stall_max @ [31:16];
    }
}

register! {
    /// SMMU_CR0 (and SMMU_CR0ACK, which has the same layout).
    Cr0(u32) {
        flag
        /// SMMUEN: translation enabled (else SMMU_GBPA applies).
        smmuen, with_smmuen @ 0;
        flag
        /// PRIQEN: PRI queue enabled.
        priqen, with_priqen @ 1;
        flag
        /// EVENTQEN: event queue enabled.
        eventqen, with_eventqen @ 2;
        flag
        /// CMDQEN: command queue enabled.
        cmdqen, with_cmdqen @ 3;
        flag
        /// ATSCHK: ATS requests checked against the stream table.
        atschk, with_atschk @ 4;
        field
        /// VMW: VMID wildcard.
        vmw, with_vmw @ [8:6];
    }
}

register! {
    /// SMMU_CR1: attributes of table and queue accesses.
    Cr1(u32) {
        field
        /// QUEUE_IC: queue inner cacheability.
        queue_ic, with_queue_ic @ [1:0];
        field
        /// QUEUE_OC: queue outer cacheability.
        queue_oc, with_queue_oc @ [3:2];
        field
        /// QUEUE_SH: queue shareability.
        queue_sh, with_queue_sh @ [5:4];
        field
        /// TABLE_IC: stream table (and CD) inner cacheability.
        table_ic, with_table_ic @ [7:6];
        field
        /// TABLE_OC: stream table outer cacheability.
        table_oc, with_table_oc @ [9:8];
        field
        /// TABLE_SH: stream table shareability.
        table_sh, with_table_sh @ [11:10];
    }
}

impl Cr1 {
    /// Tables and queues both accessed with `cache` (inner and outer) and `share`.
    pub const fn uniform(cache: Cacheability, share: Shareability) -> Self {
        let c = cache as u32;
        let s = share as u32;
        Self(0)
            .with_queue_ic(c)
            .with_queue_oc(c)
            .with_queue_sh(s)
            .with_table_ic(c)
            .with_table_oc(c)
            .with_table_sh(s)
    }
}

register! {
    /// SMMU_CR2.
    Cr2(u32) {
        flag
        /// E2H: EL2 stage 1 uses the EL2-E2H regime.
        e2h, with_e2h @ 0;
        flag
        /// RECINVSID: record C_BAD_STREAMID for StreamIDs beyond the table.
        recinvsid, with_recinvsid @ 1;
        flag
        /// PTM: private TLB maintenance (ignore broadcast TLBIs).
        ptm, with_ptm @ 2;
    }
}

register! {
    /// SMMU_GBPA: global bypass attributes, what traffic gets while SMMUEN == 0.
    Gbpa(u32) {
        flag
        /// ABORT: terminate all traffic while SMMUEN == 0.
        abort, with_abort @ 20;
        flag
        /// Update: set with a change; the SMMU clears it once it took the change.
        update, with_update @ 31;
        field
        /// SHCFG: shareability override (0b01 = use incoming).
        shcfg, with_shcfg @ [13:12];
    }
}

register! {
    /// SMMU_IRQ_CTRL (and SMMU_IRQ_CTRLACK).
    IrqCtrl(u32) {
        flag
        /// GERROR_IRQEN: global error interrupt enabled.
        gerror_irqen, with_gerror_irqen @ 0;
        flag
        /// PRIQ_IRQEN: PRI queue interrupt enabled.
        priq_irqen, with_priq_irqen @ 1;
        flag
        /// EVENTQ_IRQEN: event queue interrupt enabled.
        eventq_irqen, with_eventq_irqen @ 2;
    }
}

register! {
    /// SMMU_GERROR (and SMMU_GERRORN): a bit is active while the two differ.
    Gerror(u32) {
        flag
        /// CMDQ_ERR: the command queue stopped on an error (SMMU_CMDQ_CONS.ERR says which).
        cmdq_err, with_cmdq_err @ 0;
        flag
        /// EVENTQ_ABT_ERR: an event queue write was aborted.
        eventq_abt_err, with_eventq_abt_err @ 2;
        flag
        /// PRIQ_ABT_ERR: a PRI queue write was aborted.
        priq_abt_err, with_priq_abt_err @ 3;
        flag
        /// MSI_CMDQ_ABT_ERR: a CMD_SYNC MSI write was aborted.
        msi_cmdq_abt_err, with_msi_cmdq_abt_err @ 4;
        flag
        /// MSI_EVENTQ_ABT_ERR: an event queue MSI write was aborted.
        msi_eventq_abt_err, with_msi_eventq_abt_err @ 5;
        flag
        /// MSI_PRIQ_ABT_ERR: a PRI queue MSI write was aborted.
        msi_priq_abt_err, with_msi_priq_abt_err @ 6;
        flag
        /// MSI_GERROR_ABT_ERR: a GERROR MSI write was aborted.
        msi_gerror_abt_err, with_msi_gerror_abt_err @ 7;
        flag
        /// SFM_ERR: the SMMU entered service failure mode.
        sfm_err, with_sfm_err @ 8;
        flag
        /// CMDQP_ERR: an enhanced command queue error.
        cmdqp_err, with_cmdqp_err @ 9;
    }
}

impl Gerror {
    /// Bits that can be active (everything else is RES0).
    pub const DEFINED: u32 = 0x3fd;

    /// The active errors: GERROR bits that differ from GERRORN.
    pub const fn active(gerror: Self, gerrorn: Self) -> Self {
        Self((gerror.0 ^ gerrorn.0) & Self::DEFINED)
    }

    /// Names of the set bits, for a log line.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        const NAMES: [(u32, &str); 9] = [
            (0, "CMDQ_ERR"),
            (2, "EVENTQ_ABT_ERR"),
            (3, "PRIQ_ABT_ERR"),
            (4, "MSI_CMDQ_ABT_ERR"),
            (5, "MSI_EVENTQ_ABT_ERR"),
            (6, "MSI_PRIQ_ABT_ERR"),
            (7, "MSI_GERROR_ABT_ERR"),
            (8, "SFM_ERR"),
            (9, "CMDQP_ERR"),
        ];
        NAMES
            .into_iter()
            .filter(move |(bit, _)| self.0 & (1 << bit) != 0)
            .map(|(_, name)| name)
    }
}

register! {
    /// SMMU_STRTAB_BASE: where the stream table (or its level 1) lives.
    StrtabBase(u64) {
        flag
        /// RA: read-allocate hint.
        ra, with_ra @ 62;
        field
        /// ADDR[51:6]: physical address bits of the table, in place.
        addr, with_addr @ [51:6];
    }
}

impl StrtabBase {
    /// The register for a table at `pa` (64-byte aligned).
    pub const fn at(pa: u64) -> Self {
        Self(0).with_addr(pa >> 6)
    }
}

/// SMMU_STRTAB_BASE_CFG.FMT: linear stream table.
pub const STRTAB_FMT_LINEAR: u32 = 0;
/// SMMU_STRTAB_BASE_CFG.FMT: two-level stream table.
pub const STRTAB_FMT_2LEVEL: u32 = 1;

register! {
    /// SMMU_STRTAB_BASE_CFG: stream table format and size.
    StrtabBaseCfg(u32) {
        field
        /// LOG2SIZE: log2 of the StreamIDs the table covers.
        log2size, with_log2size @ [5:0];
        field
        /// SPLIT: StreamID bits resolved by a level-2 table (6, 8 or 10).
        split, with_split @ [10:6];
        field
        /// FMT: 0 linear, 1 two-level.
        fmt, with_fmt @ [17:16];
    }
}

register! {
    /// SMMU_CMDQ_BASE: command queue base and size.
    CmdqBase(u64) {
        flag
        /// RA: read-allocate hint.
        ra, with_ra @ 62;
        field
        /// ADDR[51:5]: physical address bits of the queue, in place.
        addr, with_addr @ [51:5];
        field
        /// LOG2SIZE: log2 of the number of entries.
        log2size, with_log2size @ [4:0];
    }
}

register! {
    /// SMMU_EVENTQ_BASE: event queue base and size.
    EventqBase(u64) {
        flag
        /// WA: write-allocate hint.
        wa, with_wa @ 62;
        field
        /// ADDR[51:5]: physical address bits of the queue, in place.
        addr, with_addr @ [51:5];
        field
        /// LOG2SIZE: log2 of the number of entries.
        log2size, with_log2size @ [4:0];
    }
}

register! {
    /// SMMU_CMDQ_PROD: where software writes the next command.
    CmdqProd(u32) {
        field
        /// WR: index, with the wrap bit just above it (bit LOG2SIZE).
        wr, with_wr @ [19:0];
    }
}

register! {
    /// SMMU_CMDQ_CONS: where the SMMU reads the next command.
    CmdqCons(u32) {
        field
        /// RD: index, with the wrap bit just above it (bit LOG2SIZE).
        rd, with_rd @ [19:0];
        field
        /// ERR: why the queue stopped, while GERROR.CMDQ_ERR is active.
        err, with_err @ [30:24];
    }
}

/// SMMU_CMDQ_CONS.ERR: CERROR_NONE.
pub const CERROR_NONE: u32 = 0;
/// SMMU_CMDQ_CONS.ERR: CERROR_ILL, an illegal or unknown command.
pub const CERROR_ILL: u32 = 1;
/// SMMU_CMDQ_CONS.ERR: CERROR_ABT, the command fetch was aborted.
pub const CERROR_ABT: u32 = 2;
/// SMMU_CMDQ_CONS.ERR: CERROR_ATC_INV_SYNC, an ATC invalidation timed out.
pub const CERROR_ATC_INV_SYNC: u32 = 3;

register! {
    /// SMMU_EVENTQ_PROD: where the SMMU writes the next event.
    EventqProd(u32) {
        flag
        /// OVFLG: toggled by the SMMU when events were lost to a full queue.
        ovflg, with_ovflg @ 31;
        field
        /// WR: index, with the wrap bit just above it (bit LOG2SIZE).
        wr, with_wr @ [19:0];
    }
}

register! {
    /// SMMU_EVENTQ_CONS: where software reads the next event.
    EventqCons(u32) {
        flag
        /// OVACKFLG: software's copy of OVFLG, acknowledging an overflow.
        ovackflg, with_ovackflg @ 31;
        field
        /// RD: index, with the wrap bit just above it (bit LOG2SIZE).
        rd, with_rd @ [19:0];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_idr0_decodes_to_the_documented_features() {
        // QEMU 10's SMMUv3 with stage=nested: S1P, S2P, AArch64 tables,
        // COHACC, ASID16, VMID16, little endian, terminate model, 2-level.
        let idr0 = Idr0(0x0d44_101b);
        assert!(idr0.s2p() && idr0.s1p() && idr0.cohacc());
        assert!(idr0.asid16() && idr0.vmid16());
        assert!(!idr0.msi() && !idr0.ats() && !idr0.pri());
        assert_eq!(idr0.ttf(), 0b10);
        assert_eq!(idr0.ttendian(), 0b10);
        assert_eq!(idr0.stall_model(), 0b01);
        assert!(idr0.term_model());
        assert_eq!(idr0.st_level(), 0b01);
    }

    #[test]
    fn cr1_uniform_places_every_attribute_field() {
        let cr1 = Cr1::uniform(Cacheability::WriteBack, Shareability::InnerShareable);
        // QUEUE_IC/OC = 1 at [1:0]/[3:2], QUEUE_SH = 3 at [5:4], same for TABLE at +6.
        assert_eq!(cr1.0, 0b11_01_01_11_01_01);
        assert_eq!(
            Cr1::uniform(Cacheability::NonCacheable, Shareability::NonShareable).0,
            0
        );
    }

    #[test]
    fn queue_bases_place_address_and_size() {
        let base = CmdqBase(0)
            .with_ra(true)
            .with_addr(0x8_1234_5000 >> 5)
            .with_log2size(8);
        assert_eq!(base.0, (1 << 62) | 0x8_1234_5000 | 8);
        let base = EventqBase(0)
            .with_wa(true)
            .with_addr(0x4000_0000 >> 5)
            .with_log2size(7);
        assert_eq!(base.0, (1 << 62) | 0x4000_0000 | 7);
        assert_eq!(
            StrtabBase::at(0x4001_0000).with_ra(true).0,
            (1 << 62) | 0x4001_0000
        );
    }

    #[test]
    fn strtab_base_cfg_places_fmt_split_log2size() {
        let cfg = StrtabBaseCfg(0)
            .with_fmt(STRTAB_FMT_2LEVEL)
            .with_split(8)
            .with_log2size(16);
        assert_eq!(cfg.0, (1 << 16) | (8 << 6) | 16);
    }

    #[test]
    fn gerror_active_bits_are_the_difference_with_gerrorn() {
        let active = Gerror::active(Gerror(0b1_0000_0101), Gerror(0b0000_0100));
        assert!(active.cmdq_err() && active.sfm_err() && !active.eventq_abt_err());
        let names: alloc::vec::Vec<_> = active.names().collect();
        assert_eq!(names, ["CMDQ_ERR", "SFM_ERR"]);
        // RES0 bits never count as errors.
        assert_eq!(Gerror::active(Gerror(0x8000_0002), Gerror(0)).0, 0);
    }

    #[test]
    fn queue_pointer_registers_keep_flags_apart_from_the_index() {
        let cons = CmdqCons((CERROR_ILL << 24) | 0x1_0005);
        assert_eq!(cons.err(), CERROR_ILL);
        assert_eq!(cons.rd(), 0x1_0005);
        let prod = EventqProd(0x8000_0083);
        assert!(prod.ovflg());
        assert_eq!(prod.wr(), 0x83);
        assert_eq!(EventqCons(0).with_ovackflg(true).with_rd(3).0, 0x8000_0003);
        assert!(Gbpa(1 << 31).update() && Gbpa(1 << 20).abort());
    }
}
