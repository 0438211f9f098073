//! The distributor frame (IHI 0069, 12.9), as a guest with a single
//! security state and affinity routing sees it: GICD_CTLR.DS = 1 and ARE
//! read as one, the SGI/PPI words are RAZ/WI (those live in each
//! redistributor's SGI frame), SPIs are routed with IROUTER.

use super::access::{Access, Fault};
use super::ops::{BitField, BitOp, IROUTER_MASK};
use super::{Action, Actions, Vgic};
use crate::gic::regs::gicd::{GicdCtlr, GicdTyper};
use crate::ids::VcpuIndex;

/// Distributor register offsets (IHI 0069, 12.9, table 12-25).
pub mod offset {
    /// GICD_CTLR.
    pub const CTLR: u64 = 0x0000;
    /// GICD_TYPER.
    pub const TYPER: u64 = 0x0004;
    /// GICD_IIDR.
    pub const IIDR: u64 = 0x0008;
    /// GICD_TYPER2.
    pub const TYPER2: u64 = 0x000c;
    /// GICD_STATUSR.
    pub const STATUSR: u64 = 0x0010;
    /// GICD_IGROUPR<n>; the bit-per-interrupt registers follow every 0x80.
    pub const IGROUPR: u64 = 0x0080;
    /// GICD_ISENABLER<n>.
    pub const ISENABLER: u64 = 0x0100;
    /// GICD_ICENABLER<n>.
    pub const ICENABLER: u64 = 0x0180;
    /// GICD_ISPENDR<n>.
    pub const ISPENDR: u64 = 0x0200;
    /// GICD_ICPENDR<n>.
    pub const ICPENDR: u64 = 0x0280;
    /// GICD_ISACTIVER<n>.
    pub const ISACTIVER: u64 = 0x0300;
    /// GICD_ICACTIVER<n>.
    pub const ICACTIVER: u64 = 0x0380;
    /// GICD_IPRIORITYR<n>, one byte per interrupt.
    pub const IPRIORITYR: u64 = 0x0400;
    /// GICD_ITARGETSR<n> (RAZ/WI with affinity routing).
    pub const ITARGETSR: u64 = 0x0800;
    /// GICD_ICFGR<n>, two bits per interrupt.
    pub const ICFGR: u64 = 0x0c00;
    /// GICD_IGRPMODR<n>.
    pub const IGRPMODR: u64 = 0x0d00;
    /// GICD_NSACR<n>.
    pub const NSACR: u64 = 0x0e00;
    /// GICD_SGIR (WI with affinity routing).
    pub const SGIR: u64 = 0x0f00;
    /// GICD_CPENDSGIR<n> and GICD_SPENDSGIR<n> (RAZ/WI with affinity routing).
    pub const CPENDSGIR: u64 = 0x0f10;
    /// GICD_IROUTER<n> (64-bit), at IROUTER + 8n for SPI n.
    pub const IROUTER: u64 = 0x6000;
    /// GICD_PIDR4, the first of the ID registers.
    pub const ID_REGS: u64 = 0xffd0;
    /// GICD_PIDR2.
    pub const PIDR2: u64 = 0xffe8;
}

/// GICD_IIDR / GICR_IIDR: Implementer 0x43B (Arm's JEP106 code), ProductID
/// 0x56, as the vITS reports.
pub(super) const IIDR: u64 = 0x5600_043b;

/// The ID registers PIDR4..7, PIDR0..3, CIDR0..3 of a frame whose part
/// number's low byte is `part`: Arm's JEP106 code, ArchRev 3 (GICv3) in
/// PIDR2[7:4] (IHI 0069, 12.1.4).
pub(super) fn id_register(part: u8, index: u64) -> u64 {
    const ID_REGS: [u8; 12] = [0x44, 0, 0, 0, 0, 0xb4, 0x3b, 0, 0x0d, 0xf0, 0x05, 0xb1];
    match index {
        4 => u64::from(part),
        _ => ID_REGS.get(index as usize).map_or(0, |&v| u64::from(v)),
    }
}

/// Which block of interrupts a register file serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Bank {
    /// The distributor: SPIs (INTIDs 32 and up); SGI/PPI words are RAZ/WI.
    Spis,
    /// An SGI_base frame: the banked SGIs and PPIs (INTIDs 0-31) only.
    Private,
}

impl Bank {
    /// Whether the register file of this bank implements INTID `first`.
    fn serves(self, first: u32) -> bool {
        match self {
            Bank::Spis => first >= 32,
            Bank::Private => first < 32,
        }
    }
}

impl Vgic {
    /// A guest read of the distributor frame.
    pub(super) fn dist_read(&mut self, access: Access) -> Result<u64, Fault> {
        let off = access.offset;
        if let Some(result) = self.irq_regs_read(Bank::Spis, VcpuIndex::new(0), access) {
            return result;
        }
        match off {
            offset::CTLR => access.word().map(|()| self.ctlr()),
            offset::TYPER => access.word().map(|()| self.typer()),
            offset::IIDR => access.word().map(|()| IIDR),
            // TYPER2: no vPEID/vSGI support (GICv4.1 only); STATUSR: no errors.
            offset::TYPER2 | offset::STATUSR => access.word().map(|()| 0),
            offset::IROUTER..=0x7fdf => {
                let n = (off - offset::IROUTER) / 8;
                let part = access.part64(offset::IROUTER + 8 * n)?;
                let router = (n as u32)
                    .checked_sub(32)
                    .and_then(|i| self.routes.get(i as usize))
                    .copied()
                    .unwrap_or(0);
                Ok(part.read(router))
            }
            offset::ID_REGS..=0xffff => {
                access.word()?;
                Ok(id_register(0x92, (off - offset::ID_REGS) / 4))
            }
            _ => Err(Fault::Reserved),
        }
    }

    /// A guest write to the distributor frame.
    pub(super) fn dist_write(
        &mut self,
        vcpu: VcpuIndex,
        access: Access,
        value: u64,
        actions: &mut Actions,
    ) -> Result<(), Fault> {
        let off = access.offset;
        if let Some(result) = self.irq_regs_write(Bank::Spis, vcpu, access, value, actions) {
            return result;
        }
        match off {
            offset::CTLR => {
                access.word()?;
                self.write_ctlr(value, actions);
                Ok(())
            }
            // Read-only registers: writes ignored (IHI 0069, 12.1.3).
            offset::TYPER | offset::IIDR | offset::TYPER2 | offset::STATUSR => access.word(),
            offset::IROUTER..=0x7fdf => {
                let n = (off - offset::IROUTER) / 8;
                let part = access.part64(offset::IROUTER + 8 * n)?;
                self.write_irouter(n as u32, |old| part.merge(old, value), actions);
                Ok(())
            }
            offset::ID_REGS..=0xffff => access.word(),
            _ => Err(Fault::Reserved),
        }
    }

    /// The register file every bank shares: IGROUPR ... ICACTIVER,
    /// IPRIORITYR, ICFGR, and the RAZ/WI registers of an affinity-routed,
    /// single-security GIC. `None` if `access` is outside it.
    pub(super) fn irq_regs_read(
        &self,
        bank: Bank,
        vcpu: VcpuIndex,
        access: Access,
    ) -> Option<Result<u64, Fault>> {
        let off = access.offset;
        let result = match off {
            offset::IGROUPR..=0x3ff => {
                let first = (((off - offset::IGROUPR) % 0x80) / 4 * 32) as u32;
                let field = match (off - offset::IGROUPR) / 0x80 {
                    0 => BitField::Group,
                    1 | 2 => BitField::Enable,
                    3 | 4 => BitField::Pending,
                    _ => BitField::Active,
                };
                access
                    .word()
                    .map(|()| self.bank_value(bank, first, || self.read_bits(vcpu, first, field)))
            }
            offset::IPRIORITYR..=0x7ff => {
                let first = (off - offset::IPRIORITYR) as u32;
                access.byte_or_word().map(|()| {
                    self.bank_value(bank, first, || {
                        self.read_priorities(vcpu, first, access.size)
                    })
                })
            }
            offset::ICFGR..=0xcff => {
                let first = ((off - offset::ICFGR) / 4 * 16) as u32;
                access
                    .word()
                    .map(|()| self.bank_value(bank, first, || self.read_config(vcpu, first)))
            }
            // ITARGETSR, IGRPMODR, NSACR, SGIR, C/SPENDSGIR: RAZ/WI when
            // affinity routing is on and DS = 1 (IHI 0069, 12.9.x).
            offset::ITARGETSR..=0xbff if bank == Bank::Spis => access.byte_or_word().map(|()| 0),
            offset::IGRPMODR..=0xd7f | offset::NSACR..=0xeff => access.word().map(|()| 0),
            offset::SGIR | offset::CPENDSGIR..=0xf2f if bank == Bank::Spis => {
                access.word().map(|()| 0)
            }
            _ => return None,
        };
        Some(result)
    }

    /// Write side of [`Vgic::irq_regs_read`].
    pub(super) fn irq_regs_write(
        &mut self,
        bank: Bank,
        vcpu: VcpuIndex,
        access: Access,
        value: u64,
        actions: &mut Actions,
    ) -> Option<Result<(), Fault>> {
        let off = access.offset;
        let result = match off {
            offset::IGROUPR..=0x3ff => access.word().map(|()| {
                let first = (((off - offset::IGROUPR) % 0x80) / 4 * 32) as u32;
                let op = match (off - offset::IGROUPR) / 0x80 {
                    0 => BitOp::Group,
                    1 => BitOp::SetEnable,
                    2 => BitOp::ClearEnable,
                    3 => BitOp::SetPending,
                    4 => BitOp::ClearPending,
                    5 => BitOp::SetActive,
                    _ => BitOp::ClearActive,
                };
                if bank.serves(first) {
                    self.write_bits(vcpu, first, value, op, actions);
                }
            }),
            offset::IPRIORITYR..=0x7ff => access.byte_or_word().map(|()| {
                let first = (off - offset::IPRIORITYR) as u32;
                if bank.serves(first) {
                    self.write_priorities(vcpu, first, access.size, value);
                }
            }),
            offset::ICFGR..=0xcff => access.word().map(|()| {
                let first = ((off - offset::ICFGR) / 4 * 16) as u32;
                if bank.serves(first) {
                    self.write_config(vcpu, first, value);
                }
            }),
            offset::ITARGETSR..=0xbff if bank == Bank::Spis => access.byte_or_word(),
            offset::IGRPMODR..=0xd7f | offset::NSACR..=0xeff => access.word(),
            offset::SGIR | offset::CPENDSGIR..=0xf2f if bank == Bank::Spis => access.word(),
            _ => return None,
        };
        Some(result)
    }

    /// `read()` if `bank` serves INTID `first`, else 0 (RAZ).
    fn bank_value(&self, bank: Bank, first: u32, read: impl FnOnce() -> u64) -> u64 {
        if bank.serves(first) {
            read()
        } else {
            0
        }
    }

    /// GICD_CTLR in the single-security-state view (IHI 0069, 12.9.4):
    /// ARE (bit 4) and DS are RAO/WI, RWP reads 0.
    fn ctlr(&self) -> u64 {
        let ctlr = GicdCtlr(0)
            .with_are_s(true)
            .with_ds(true)
            .with_enable_grp0(self.grp0_enabled)
            .with_enable_grp1_ns(self.grp1_enabled);
        u64::from(ctlr.0)
    }

    fn write_ctlr(&mut self, value: u64, actions: &mut Actions) {
        let written = GicdCtlr(value as u32);
        let (grp0, grp1) = (written.enable_grp0(), written.enable_grp1_ns());
        let newly_enabled = (grp0 && !self.grp0_enabled) || (grp1 && !self.grp1_enabled);
        self.grp0_enabled = grp0;
        self.grp1_enabled = grp1;
        if newly_enabled {
            // Anything pending may now be forwarded, on any vCPU.
            for v in 0..self.config.num_vcpus {
                actions.kick(VcpuIndex::new(v));
            }
        }
    }

    /// GICD_TYPER (IHI 0069, 12.9.38): SPIs, IDbits, LPIS; no MBIS, no
    /// extended SPIs, a single security state; RSS when vCPUs above 15 exist.
    fn typer(&self) -> u64 {
        let id_bits = if self.config.lpis() {
            u32::from(self.config.lpi_id_bits) - 1
        } else {
            9 // INTIDs below 1024
        };
        let typer = GicdTyper(0)
            .with_it_lines_number(self.config.spi_end().div_ceil(32) - 1)
            .with_cpu_number(u32::from(self.config.num_vcpus.saturating_sub(1).min(7)))
            .with_lpis(self.config.lpis())
            .with_id_bits(id_bits)
            .with_rss(self.config.num_vcpus > 16);
        u64::from(typer.0)
    }

    /// Writes IROUTER<n> through `update` and applies the new route.
    fn write_irouter(&mut self, n: u32, update: impl FnOnce(u64) -> u64, actions: &mut Actions) {
        let Some(index) = n.checked_sub(32).map(|i| i as usize) else {
            return;
        };
        let Some(router) = self.routes.get_mut(index) else {
            return;
        };
        let new = update(*router) & IROUTER_MASK;
        if new == *router {
            return;
        }
        *router = new;
        let Some(irq) = self.spis.get(index) else {
            return;
        };
        let (phys, listed) = (irq.hw, irq.listed.map(|l| l.vcpu));
        let target = self.target(VcpuIndex::new(0), n);
        if let (Some(intid), Some(vcpu)) = (phys, target) {
            actions.push(Action::RoutePhys { vcpu, intid });
        }
        // A listed copy moves when its vCPU folds; otherwise the new target
        // may have work now.
        if let Some(t) = listed.or(target) {
            actions.kick(t);
        }
    }
}
