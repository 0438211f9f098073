//! The emulated GICv2 distributor frame (IHI 0048B, 4.3: register map in
//! table 4-1). Word accesses everywhere; byte accesses where the spec
//! allows them (IPRIORITYR, ITARGETSR, CPENDSGIR, SPENDSGIR). Anything
//! else reads as zero and ignores writes (reserved, or an access size the
//! spec does not allow): the guest cannot make the model fail.

use super::{Action, Actions, IrqV2, VgicV2, VgicV2Error, PRIORITY_MASK, PRIVATE};
use crate::ids::VcpuIndex;

/// Distributor register offsets (IHI 0048B, table 4-1).
pub mod offset {
    /// GICD_CTLR.
    pub const CTLR: u64 = 0x000;
    /// GICD_TYPER.
    pub const TYPER: u64 = 0x004;
    /// GICD_IIDR.
    pub const IIDR: u64 = 0x008;
    /// GICD_IGROUPRn.
    pub const IGROUPR: u64 = 0x080;
    /// GICD_ISENABLERn.
    pub const ISENABLER: u64 = 0x100;
    /// GICD_ICENABLERn.
    pub const ICENABLER: u64 = 0x180;
    /// GICD_ISPENDRn.
    pub const ISPENDR: u64 = 0x200;
    /// GICD_ICPENDRn.
    pub const ICPENDR: u64 = 0x280;
    /// GICD_ISACTIVERn.
    pub const ISACTIVER: u64 = 0x300;
    /// GICD_ICACTIVERn.
    pub const ICACTIVER: u64 = 0x380;
    /// GICD_IPRIORITYRn.
    pub const IPRIORITYR: u64 = 0x400;
    /// GICD_ITARGETSRn.
    pub const ITARGETSR: u64 = 0x800;
    /// GICD_ICFGRn.
    pub const ICFGR: u64 = 0xc00;
    /// GICD_SGIR.
    pub const SGIR: u64 = 0xf00;
    /// GICD_CPENDSGIRn.
    pub const CPENDSGIR: u64 = 0xf10;
    /// GICD_SPENDSGIRn.
    pub const SPENDSGIR: u64 = 0xf20;
    /// GICD_PIDR2 (CoreSight ID block).
    pub const PIDR2: u64 = 0xfe8;
}

/// GICD_IIDR as a GIC-400 (r0p1) reports it: ProductID 0x02, Revision 1,
/// Implementer 0x43b (ARM).
const IIDR_VALUE: u32 = 0x0200_143b;
/// GICD_PIDR2: ArchRev 2 (GICv2), JEP106 bits of ARM.
const PIDR2_VALUE: u32 = 0x2b;
/// GICD_SGIR.TargetListFilter (bits [25:24]).
const SGIR_FILTER_SHIFT: u32 = 24;
/// GICD_SGIR.CPUTargetList (bits [23:16]).
const SGIR_TARGETS_SHIFT: u32 = 16;

/// Which bit-per-interrupt register bank an offset falls in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum BitBank {
    SetEnable,
    ClearEnable,
    SetPending,
    ClearPending,
    SetActive,
    ClearActive,
}

impl VgicV2 {
    /// A guest read of `width` bytes (1 or 4) at `offset` in the GICD frame.
    pub fn mmio_read(&self, vcpu: VcpuIndex, offset: u64, width: u8) -> Result<u32, VgicV2Error> {
        self.irq(vcpu, 0)?;
        use offset::*;
        let word = width == 4 && offset.is_multiple_of(4);
        let value = match offset {
            CTLR if word => u32::from(self.enabled),
            TYPER if word => {
                let lines = (PRIVATE + self.spis()) / 32 - 1;
                lines | (u32::from(self.vcpus() - 1) << 5)
            }
            IIDR if word => IIDR_VALUE,
            PIDR2 if word => PIDR2_VALUE,
            0x100..=0x3ff if word => {
                let (bank, first) = bit_bank(offset);
                let mut bits = 0;
                for bit in 0..32 {
                    let intid = first + bit;
                    if let Ok(irq) = self.irq(vcpu, intid) {
                        let set = match bank {
                            BitBank::SetEnable | BitBank::ClearEnable => irq.enabled,
                            BitBank::SetPending | BitBank::ClearPending => {
                                self.pending_view(vcpu, intid, irq)
                            }
                            BitBank::SetActive | BitBank::ClearActive => {
                                irq.active || irq.listed.is_some_and(|l| l.active)
                            }
                        };
                        bits |= u32::from(set) << bit;
                    }
                }
                bits
            }
            0x400..=0x7fb | 0x800..=0xbfb if word || width == 1 => {
                let mut value = 0;
                for byte in 0..u64::from(width) {
                    let at = offset + byte;
                    value |= u32::from(self.byte_reg(vcpu, at)) << (8 * byte);
                }
                value
            }
            0xc00..=0xcff if word => {
                let first = ((offset - ICFGR) * 4) as u32;
                let mut bits = 0;
                for n in 0..16 {
                    if let Ok(irq) = self.irq(vcpu, first + n) {
                        bits |= u32::from(irq.edge) << (2 * n + 1);
                    }
                }
                bits
            }
            0xf10..=0xf2f if word || width == 1 => {
                let bank = &self.banks[vcpu.index()];
                let base = (offset & !0xf) as usize;
                let first = (offset as usize - base) % 16;
                let mut value = 0;
                for byte in 0..usize::from(width) {
                    let sgi = first + byte;
                    value |=
                        u32::from(bank.sgi_sources.get(sgi).copied().unwrap_or(0)) << (8 * byte);
                }
                value
            }
            _ => 0,
        };
        Ok(value)
    }

    /// A guest write of `width` bytes (1 or 4) at `offset` in the GICD
    /// frame; returns what the kernel must do.
    pub fn mmio_write(
        &mut self,
        vcpu: VcpuIndex,
        offset: u64,
        width: u8,
        value: u32,
    ) -> Result<Actions, VgicV2Error> {
        self.irq(vcpu, 0)?;
        use offset::*;
        let word = width == 4 && offset.is_multiple_of(4);
        let mut actions = Actions::new();
        match offset {
            CTLR if word => {
                self.enabled = value & 1 != 0;
                actions.kick.0 = u64::from(self.all_vcpus());
            }
            0x100..=0x3ff if word => {
                let (bank, first) = bit_bank(offset);
                for bit in (0..32).filter(|b| value & (1 << b) != 0) {
                    self.write_bit(vcpu, bank, first + bit, &mut actions);
                }
            }
            0x400..=0x7fb | 0x800..=0xbfb if word || width == 1 => {
                for byte in 0..u64::from(width) {
                    let at = offset + byte;
                    let byte_value = (value >> (8 * byte)) as u8;
                    self.write_byte_reg(vcpu, at, byte_value, &mut actions);
                }
            }
            0xc08..=0xcff if word => {
                // ICFGR0 (SGIs) is read-only, ICFGR1 (PPIs) too on GIC-400.
                let first = ((offset - ICFGR) * 4) as u32;
                for n in 0..16 {
                    if let Ok(irq) = self.irq_mut(vcpu, first + n) {
                        irq.edge = value & (2 << (2 * n)) != 0;
                    }
                }
            }
            SGIR if word => actions = self.send_sgi(vcpu, value),
            0xf10..=0xf2f if word || width == 1 => {
                let set = offset >= SPENDSGIR;
                let first = (offset as usize & 0xf) % 16;
                let all = self.all_vcpus();
                let bank = &mut self.banks[vcpu.index()];
                for byte in 0..usize::from(width) {
                    let Some(sources) = bank.sgi_sources.get_mut(first + byte) else {
                        continue;
                    };
                    let bits = (value >> (8 * byte)) as u8 & all;
                    if set {
                        *sources |= bits;
                    } else {
                        *sources &= !bits;
                    }
                }
                if set {
                    actions.kick(vcpu);
                }
            }
            // IGROUPR: RAZ/WI (one group); the rest is reserved or read-only.
            _ => {}
        }
        Ok(actions)
    }

    /// GICD_SGIR (IHI 0048B, 4.3.15): makes SGI `value[3:0]` pending from
    /// `sender` on the CPU target list, all others, or the sender only.
    pub fn send_sgi(&mut self, sender: VcpuIndex, value: u32) -> Actions {
        let sgi = (value & 0xf) as usize;
        let me = 1u8.checked_shl(u32::from(sender.get())).unwrap_or(0);
        let targets = match (value >> SGIR_FILTER_SHIFT) & 0x3 {
            0b00 => (value >> SGIR_TARGETS_SHIFT) as u8,
            0b01 => self.all_vcpus() & !me,
            0b10 => me,
            // 0b11 is reserved: nothing is sent.
            _ => 0,
        } & self.all_vcpus();
        for (index, bank) in self.banks.iter_mut().enumerate() {
            if targets & (1 << index) != 0 {
                bank.sgi_sources[sgi] |= me;
            }
        }
        self.kick_targets(targets)
    }

    /// Pending as a read of GICD_ISPENDR sees it, list registers included.
    fn pending_view(&self, vcpu: VcpuIndex, intid: u32, irq: &IrqV2) -> bool {
        if intid < 16 {
            return self.banks[vcpu.index()].sgi_sources[intid as usize] != 0
                || irq.listed.is_some_and(|l| l.pending);
        }
        irq.pending || irq.listed.is_some_and(|l| l.pending && !l.cancel_pending)
    }

    /// One IPRIORITYR or ITARGETSR byte.
    fn byte_reg(&self, vcpu: VcpuIndex, at: u64) -> u8 {
        let (intid, targets) = match at {
            0x400..=0x7ff => ((at - offset::IPRIORITYR) as u32, false),
            _ => ((at - offset::ITARGETSR) as u32, true),
        };
        let Ok(irq) = self.irq(vcpu, intid) else {
            return 0;
        };
        match (targets, intid < PRIVATE) {
            (false, _) => irq.priority,
            // IHI 0048B, 4.3.12: the SGI/PPI bytes read as the reading CPU.
            (true, true) => 1u8.checked_shl(u32::from(vcpu.get())).unwrap_or(0),
            (true, false) => irq.targets,
        }
    }

    fn write_byte_reg(&mut self, vcpu: VcpuIndex, at: u64, value: u8, actions: &mut Actions) {
        let all = self.all_vcpus();
        let (intid, targets) = match at {
            0x400..=0x7ff => ((at - offset::IPRIORITYR) as u32, false),
            _ => ((at - offset::ITARGETSR) as u32, true),
        };
        let Ok(irq) = self.irq_mut(vcpu, intid) else {
            return;
        };
        if !targets {
            irq.priority = value & PRIORITY_MASK;
            return;
        }
        if intid < PRIVATE {
            return;
        }
        irq.targets = value & all;
        if let (Some(pintid), Some(first)) = (irq.hw, lowest(irq.targets)) {
            actions.push(Action::RoutePhys {
                vcpu: first,
                intid: pintid,
            });
        }
        let targets = irq.targets;
        if irq.pending {
            actions.merge(self.kick_targets(targets));
        }
    }

    /// One set/clear bit of the enable, pending or active banks.
    fn write_bit(&mut self, vcpu: VcpuIndex, bank: BitBank, intid: u32, actions: &mut Actions) {
        let Ok(irq) = self.irq_mut(vcpu, intid) else {
            return;
        };
        let sgi = intid < 16;
        let phys_target = if intid < PRIVATE {
            vcpu
        } else {
            irq.owner.or(lowest(irq.targets)).unwrap_or(vcpu)
        };
        let hw = irq.hw;
        let mut kick = false;
        match bank {
            // SGIs are always enabled; their pending state is per source
            // and set through GICD_SGIR / SPENDSGIR only (IHI 0048B, 4.3.7).
            BitBank::SetEnable if !sgi => {
                kick = !irq.enabled && irq.pending;
                irq.enabled = true;
                if let Some(pintid) = hw {
                    actions.push(Action::EnablePhys {
                        vcpu: phys_target,
                        intid: pintid,
                    });
                }
            }
            BitBank::ClearEnable if !sgi => {
                irq.enabled = false;
                if let Some(pintid) = hw {
                    actions.push(Action::DisablePhys {
                        vcpu: phys_target,
                        intid: pintid,
                    });
                }
            }
            BitBank::SetPending if !sgi => {
                irq.pending = true;
                kick = true;
            }
            BitBank::ClearPending if !sgi => {
                irq.pending = false;
                if let Some(listed) = irq.listed.as_mut() {
                    listed.cancel_pending = true;
                }
            }
            BitBank::SetActive => {
                irq.active = true;
                if intid >= PRIVATE && irq.owner.is_none() {
                    irq.owner = Some(vcpu);
                }
            }
            BitBank::ClearActive => {
                let was_active = irq.active;
                irq.active = false;
                match irq.listed.as_mut() {
                    Some(listed) => listed.cancel_active = true,
                    None if intid >= PRIVATE => irq.owner = None,
                    None => {}
                }
                if let (true, Some(pintid)) = (was_active, hw) {
                    actions.push(Action::DeactivatePhys {
                        vcpu: phys_target,
                        intid: pintid,
                    });
                }
            }
            _ => {}
        }
        if kick {
            let targets = if intid < PRIVATE {
                1u8.checked_shl(u32::from(vcpu.get())).unwrap_or(0)
            } else {
                irq.targets
            };
            actions.merge(self.kick_targets(targets));
        }
    }
}

/// The bank of a bit-per-interrupt register and the INTID of its bit 0.
fn bit_bank(offset: u64) -> (BitBank, u32) {
    let (bank, base) = match offset {
        0x100..=0x17f => (BitBank::SetEnable, offset::ISENABLER),
        0x180..=0x1ff => (BitBank::ClearEnable, offset::ICENABLER),
        0x200..=0x27f => (BitBank::SetPending, offset::ISPENDR),
        0x280..=0x2ff => (BitBank::ClearPending, offset::ICPENDR),
        0x300..=0x37f => (BitBank::SetActive, offset::ISACTIVER),
        _ => (BitBank::ClearActive, offset::ICACTIVER),
    };
    (bank, ((offset - base) * 8) as u32)
}

/// The lowest vCPU in a target byte.
fn lowest(targets: u8) -> Option<VcpuIndex> {
    (targets != 0).then(|| VcpuIndex::new(targets.trailing_zeros() as u16))
}
