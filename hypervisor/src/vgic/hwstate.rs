//! The physical half of hardware-linked interrupts as the guest reads it.
//!
//! A hardware-linked interrupt (the EL1 virtual and physical timers, PPIs
//! 27 and 30) is level-sensitive: on real hardware its pending bit follows
//! the timer's output line, whether or not the interrupt is enabled (IHI
//! 0069, 4.1.2). The hypervisor disables the physical PPI while the guest
//! has it disabled (else an asserted line would interrupt EL2 without
//! end), so the model never learns of such a line: GICR_ISPENDR0 and
//! GICR_ICPENDR0 reads therefore also ask the physical redistributor,
//! through [`PhysicalIrqState`].
//!
//! Pending reads as model-or-physical: while the guest has the interrupt
//! pending or active in the model (or a list register), the physical one
//! is active at EL2 (acknowledged, waiting for the guest's deactivation)
//! and its pending bit is the line again, exactly the active-and-pending
//! state a level interrupt shows on hardware. Active reads come from the
//! model only: the physical active bit of a linked interrupt stands for
//! "the guest has it pending or active", which the model already knows
//! exactly.

use super::access::{decode_frame, Frame};
use super::dist::offset;
use super::Vgic;
use crate::ids::{PhysIntId, VcpuIndex};
use crate::mm::Ipa;

/// The physical interrupt state the vGIC cannot hold itself.
pub trait PhysicalIrqState {
    /// Whether physical interrupt `intid` is pending for `vcpu`: for a PPI
    /// on the redistributor of the physical CPU that runs `vcpu`.
    fn pending(&self, vcpu: VcpuIndex, intid: PhysIntId) -> bool;
}

/// No physical side (host tests, and vGICs without linked interrupts).
pub struct NoPhysicalState;

impl PhysicalIrqState for NoPhysicalState {
    fn pending(&self, _vcpu: VcpuIndex, _intid: PhysIntId) -> bool {
        false
    }
}

impl Vgic {
    /// [`Vgic::mmio_read`], with the pending bits of hardware-linked
    /// interrupts (GICR_ISPENDR0/ICPENDR0, GICD_ISPENDR<n>/ICPENDR<n>)
    /// also set when `phys` says the physical interrupt is pending.
    pub fn mmio_read_with(
        &mut self,
        vcpu: VcpuIndex,
        ipa: Ipa,
        size: u8,
        phys: &dyn PhysicalIrqState,
    ) -> u64 {
        let value = self.mmio_read(vcpu, ipa, size);
        if size != 4 || !ipa.raw().is_multiple_of(4) {
            return value;
        }
        let pending_regs = offset::ISPENDR..offset::ISACTIVER;
        let (owner, first) = match decode_frame(&self.config, ipa) {
            // SGI_base: only GICR_ISPENDR0/ICPENDR0 exist (INTIDs 0-31).
            Some(Frame::Sgi(owner, off)) if pending_regs.contains(&off) => {
                if !(off - offset::ISPENDR).is_multiple_of(0x80) {
                    return value;
                }
                (owner, 0)
            }
            // GICD: the SPI words (the first word is RAZ: SGIs and PPIs
            // live in the redistributors).
            Some(Frame::Dist(off)) if pending_regs.contains(&off) => {
                let first = ((off - offset::ISPENDR) % 0x80) / 4 * 32;
                if first == 0 {
                    return value;
                }
                (vcpu, first as u32)
            }
            _ => return value,
        };
        (0..32u32).fold(value, |acc, bit| {
            let intid = first + bit;
            let linked = self.irq(owner, intid).and_then(|irq| irq.hw);
            let set = linked.is_some_and(|p| {
                let target = self.target(owner, intid).unwrap_or(owner);
                phys.pending(target, p)
            });
            acc | (u64::from(set) << bit)
        })
    }
}
