//! The guest's LPI pending tables (IHI 0069, 5.1.2, and GICR_PENDBASER,
//! 12.10.20): one bit per INTID, LPI n at bit n % 8 of byte n / 8; the
//! first 1 KiB (INTIDs below 8192) holds no LPI state.
//!
//! While a redistributor's GICR_CTLR.EnableLPIs is 0 its pending table in
//! memory *is* the LPI pending state: when EnableLPIs goes 0 -> 1 the vGIC
//! reads the table the guest gave (unless the guest set PENDBASER.PTZ,
//! which says the table is zero) and makes every LPI whose bit is set
//! pending; when EnableLPIs goes 1 -> 0 it writes the vCPU's pending LPIs
//! back into the table (set bits for pending, clear for the rest) and
//! holds none of them any more. In between the model holds the state and
//! the table is the redistributor's, as the architecture says (software
//! must not write it while EnableLPIs is 1).
//!
//! GICR_CTLR.RWP covers clearing EnableLPIs; the write-back is done
//! before the trapped write returns, so RWP reads 0. Clearing EnableLPIs
//! at all is IMPLEMENTATION DEFINED on hardware (GICR_CTLR.CES says
//! whether it is supported); the vGIC sets CES and supports it.
//!
//! An unreadable or unwritable table (an address outside the partition's
//! RAM) is UNPREDICTABLE in the architecture: the vGIC ignores it (nothing
//! loaded, nothing stored), counts it and reports it once. The work is
//! bounded: only the LPI part of the table is touched, up to the smaller
//! of the partition's LPI INTID bits and GICR_PROPBASER.IDbits + 1, and
//! never more than [`MAX_TABLE_BYTES`].

use super::lpi::LpiConfigSource;
use super::{Actions, Vgic, VgicError};
use crate::guest_mem::GuestMemory;
use crate::ids::{VcpuIndex, VirtIntId, FIRST_LPI};
use crate::mm::Ipa;

/// Most bytes of one pending table the vGIC reads or writes (LPI part):
/// 2^19 INTIDs. A partition's `lpi_id_bits` (16 today) keeps it far below.
pub const MAX_TABLE_BYTES: u64 = 1 << 16;
/// Bytes moved per guest-memory access.
const CHUNK: usize = 256;
/// GICR_PENDBASER.Physical_Address, bits [51:16].
const PENDBASER_ADDR: u64 = 0x000f_ffff_ffff_0000;

/// What a pending-table transfer did, for the kernel's log and counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableTransfer {
    /// LPIs made pending from the table (load) or written as pending (store).
    pub lpis: usize,
    /// Bytes of the table read or written.
    pub bytes: u64,
    /// The table was not read because PTZ said it is zero.
    pub skipped_ptz: bool,
    /// The table (or part of it) was outside the partition's RAM.
    pub unreadable: bool,
}

impl Vgic {
    /// The LPI part of `vcpu`'s pending table: (IPA of the byte holding
    /// INTID 8192, its length in bytes); `None` if it covers no LPI. What
    /// [`Vgic::load_pending_table`] reads and [`Vgic::store_pending_table`]
    /// writes (the kernel's cache maintenance covers it).
    pub fn pending_table_span(&self, vcpu: VcpuIndex) -> Result<Option<(u64, u64)>, VgicError> {
        let regs = self.vcpu(vcpu)?.redist;
        let prop_bits = ((regs.propbaser & 0x1f) as u8).saturating_add(1);
        let bits = prop_bits.min(self.config.lpi_id_bits);
        if bits < 14 {
            return Ok(None);
        }
        let intids = 1u64 << bits;
        let bytes = ((intids - u64::from(FIRST_LPI)) / 8).min(MAX_TABLE_BYTES);
        let first = (regs.pendbaser & PENDBASER_ADDR).checked_add(u64::from(FIRST_LPI) / 8);
        Ok(first.map(|first| (first, bytes)))
    }

    /// GICR_CTLR.EnableLPIs of `vcpu` went 0 -> 1: every LPI whose bit is
    /// set in its pending table becomes pending (nothing if PTZ was
    /// written as 1). `config` reads the LPIs' configuration.
    pub fn load_pending_table(
        &mut self,
        vcpu: VcpuIndex,
        mem: &dyn GuestMemory,
        config: &dyn LpiConfigSource,
    ) -> Result<(Actions, TableTransfer), VgicError> {
        let mut actions = Actions::new();
        let mut done = TableTransfer::default();
        if self.vcpu(vcpu)?.redist.ptz {
            done.skipped_ptz = true;
            return Ok((actions, done));
        }
        let Some((first, bytes)) = self.pending_table_span(vcpu)? else {
            return Ok((actions, done));
        };
        let mut buf = [0u8; CHUNK];
        let mut offset = 0u64;
        while offset < bytes {
            let len = (bytes - offset).min(CHUNK as u64) as usize;
            let chunk = &mut buf[..len];
            let Some(ipa) = first.checked_add(offset) else {
                done.unreadable = true;
                break;
            };
            if mem.read(Ipa(ipa), chunk).is_err() {
                done.unreadable = true;
                break;
            }
            for (i, &byte) in chunk.iter().enumerate() {
                for bit in (0..8).filter(|b| byte & (1 << b) != 0) {
                    let index = (offset + i as u64) * 8 + bit;
                    let intid = u64::from(FIRST_LPI) + index;
                    let Some(intid) = u32::try_from(intid).ok().and_then(VirtIntId::new) else {
                        continue;
                    };
                    // A full budget is counted by set_lpi_pending; the
                    // rest of the table is still read (each bit once).
                    if let Ok(a) = self.set_lpi_pending(vcpu, intid, config) {
                        actions.merge(a);
                        done.lpis += 1;
                    }
                }
            }
            done.bytes += len as u64;
            offset += len as u64;
        }
        if done.unreadable {
            self.counters.pending_table_faults =
                self.counters.pending_table_faults.saturating_add(1);
        }
        if done.lpis > 0 {
            actions.kick(vcpu);
        }
        Ok((actions, done))
    }

    /// GICR_CTLR.EnableLPIs of `vcpu` went 1 -> 0: its pending LPIs (in the
    /// model, or in a list register as of the last fold) are written into
    /// its pending table, every other LPI bit cleared, and the model holds
    /// none of them any more. Listed copies are dropped on their fold.
    pub fn store_pending_table(
        &mut self,
        vcpu: VcpuIndex,
        mem: &mut dyn GuestMemory,
    ) -> Result<(Actions, TableTransfer), VgicError> {
        let mut actions = Actions::new();
        let mut done = TableTransfer::default();
        let span = self.pending_table_span(vcpu)?;
        // Everything pending on this vCPU, wherever it sits.
        let mut pending: alloc::vec::Vec<u32> = self.vcpu(vcpu)?.lpis.pending().collect();
        for holder in &self.vcpus {
            for intid in holder.lpis.listed.keys() {
                if VirtIntId::new(*intid).is_some_and(|i| self.lpi_pending(vcpu, i)) {
                    pending.push(*intid);
                }
            }
        }
        pending.sort_unstable();
        pending.dedup();
        for &intid in &pending {
            // Out of the model: the table holds them from now on.
            if let Some(intid) = VirtIntId::new(intid) {
                self.clear_lpi_pending(vcpu, intid)
                    .map(|a| actions.merge(a))
                    .ok();
            }
        }
        let Some((first, bytes)) = span else {
            return Ok((actions, done));
        };
        let mut buf = [0u8; CHUNK];
        let mut offset = 0u64;
        let mut next = pending.iter().peekable();
        while offset < bytes {
            let len = (bytes - offset).min(CHUNK as u64) as usize;
            let chunk = &mut buf[..len];
            chunk.fill(0);
            let end = u64::from(FIRST_LPI) + (offset + len as u64) * 8;
            while let Some(&&intid) = next.peek() {
                if u64::from(intid) >= end {
                    break;
                }
                let index = u64::from(intid) - u64::from(FIRST_LPI) - offset * 8;
                chunk[(index / 8) as usize] |= 1 << (index % 8);
                done.lpis += 1;
                next.next();
            }
            let written = first
                .checked_add(offset)
                .is_some_and(|ipa| mem.write(Ipa(ipa), chunk).is_ok());
            if !written {
                done.unreadable = true;
                break;
            }
            done.bytes += len as u64;
            offset += len as u64;
        }
        if done.unreadable {
            self.counters.pending_table_faults =
                self.counters.pending_table_faults.saturating_add(1);
        }
        Ok((actions, done))
    }
}
