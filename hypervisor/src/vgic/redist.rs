//! Each vCPU's redistributor: the RD_base frame (IHI 0069, 12.10: control,
//! identity, power handshake, LPI tables) and the SGI_base frame (12.11:
//! the banked SGI and PPI registers). No VLPI frames: the guest sees GICv3.

use super::access::{Access, Fault, Part};
use super::dist::{id_register, Bank, IIDR};
use super::{Action, Actions, Vgic, VgicError};
use crate::gic::regs::gicr::{GicrCtlr, GicrTyper, GicrWaker};
use crate::ids::VcpuIndex;

/// RD_base frame offsets (IHI 0069, 12.10, table 12-27).
pub mod offset {
    /// GICR_CTLR.
    pub const CTLR: u64 = 0x0000;
    /// GICR_IIDR.
    pub const IIDR: u64 = 0x0004;
    /// GICR_TYPER (64-bit).
    pub const TYPER: u64 = 0x0008;
    /// GICR_STATUSR.
    pub const STATUSR: u64 = 0x0010;
    /// GICR_WAKER.
    pub const WAKER: u64 = 0x0014;
    /// GICR_PROPBASER (64-bit).
    pub const PROPBASER: u64 = 0x0070;
    /// GICR_PENDBASER (64-bit).
    pub const PENDBASER: u64 = 0x0078;
    /// GICR_PIDR4, the first of the ID registers.
    pub const ID_REGS: u64 = 0xffd0;
    /// GICR_PIDR2.
    pub const PIDR2: u64 = 0xffe8;
}

/// GICR_PROPBASER fields a guest may set: IDbits, InnerCache,
/// Shareability, Physical_Address[51:12], OuterCache (IHI 0069, 12.10.21).
const PROPBASER_MASK: u64 =
    0x1f | (0b111 << 7) | (0b11 << 10) | (0xff_ffff_ffff << 12) | (0b111 << 56);
/// GICR_PENDBASER fields a guest may set: InnerCache, Shareability,
/// Physical_Address[51:16], OuterCache; PTZ (bit 62) is write-only
/// (IHI 0069, 12.10.20).
const PENDBASER_MASK: u64 = (0b111 << 7) | (0b11 << 10) | (0xf_ffff_ffff << 16) | (0b111 << 56);
/// GICR_PENDBASER.PTZ (IHI 0069, 12.10.20).
const PENDBASER_PTZ: u64 = 1 << 62;

/// The RD_base registers of one vCPU's redistributor that hold state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct RedistRegs {
    /// GICR_CTLR.EnableLPIs.
    pub enable_lpis: bool,
    /// GICR_WAKER.ProcessorSleep; ChildrenAsleep follows it at once.
    pub sleep: bool,
    /// GICR_PROPBASER as written (masked).
    pub propbaser: u64,
    /// GICR_PENDBASER as written (masked).
    pub pendbaser: u64,
    /// GICR_PENDBASER.PTZ as last written (write-only: the pending table
    /// is zero, so enabling LPIs need not read it).
    pub ptz: bool,
}

impl RedistRegs {
    /// Reset: asleep, LPIs off (IHI 0069, 12.10.29: ProcessorSleep resets to 1).
    pub fn new() -> Self {
        Self {
            enable_lpis: false,
            sleep: true,
            propbaser: 0,
            pendbaser: 0,
            ptz: false,
        }
    }
}

impl Vgic {
    /// A guest read of `vcpu`'s RD_base frame.
    pub(super) fn rd_read(&mut self, vcpu: VcpuIndex, access: Access) -> Result<u64, Fault> {
        let regs = self.vcpu(vcpu).map_err(|_| Fault::Reserved)?.redist;
        match access.offset {
            // CES: EnableLPIs may be cleared again (IHI 0069, 12.10.2).
            offset::CTLR => access.word().map(|()| {
                let ctlr = GicrCtlr(0)
                    .with_enable_lpis(regs.enable_lpis)
                    .with_ces(true);
                u64::from(ctlr.0)
            }),
            offset::IIDR => access.word().map(|()| IIDR),
            offset::TYPER | 0xc => access
                .part64(offset::TYPER)
                .map(|p| p.read(self.gicr_typer(vcpu))),
            offset::STATUSR => access.word().map(|()| 0),
            offset::WAKER => access.word().map(|()| {
                let waker = GicrWaker(0)
                    .with_processor_sleep(regs.sleep)
                    .with_children_asleep(regs.sleep);
                u64::from(waker.0)
            }),
            offset::PROPBASER | 0x74 => access
                .part64(offset::PROPBASER)
                .map(|p| p.read(regs.propbaser)),
            offset::PENDBASER | 0x7c => access
                .part64(offset::PENDBASER)
                .map(|p| p.read(regs.pendbaser)),
            offset::ID_REGS..=0xffff => {
                access.word()?;
                Ok(id_register(0x93, (access.offset - offset::ID_REGS) / 4))
            }
            _ => Err(Fault::Reserved),
        }
    }

    /// A guest write to `vcpu`'s RD_base frame.
    pub(super) fn rd_write(
        &mut self,
        vcpu: VcpuIndex,
        access: Access,
        value: u64,
        actions: &mut Actions,
    ) -> Result<(), Fault> {
        let lpis = self.config.lpis();
        let state = self.vcpu_mut(vcpu).map_err(|_| Fault::Reserved)?;
        let regs = &mut state.redist;
        match access.offset {
            offset::CTLR => {
                access.word()?;
                let enable = lpis && GicrCtlr(value as u32).enable_lpis();
                if enable != regs.enable_lpis {
                    regs.enable_lpis = enable;
                    actions.push(Action::LpisEnabled {
                        vcpu,
                        enabled: enable,
                    });
                    if enable && state.lpis.pending_count() > 0 {
                        actions.kick(vcpu);
                    }
                }
                Ok(())
            }
            offset::WAKER => {
                access.word()?;
                // The handshake completes at once: ChildrenAsleep follows
                // ProcessorSleep (IHI 0069, 12.10.29).
                regs.sleep = GicrWaker(value as u32).processor_sleep();
                Ok(())
            }
            // IHI 0069, 12.10.20-21: writing the table bases while
            // EnableLPIs is 1 is UNPREDICTABLE; they are ignored here.
            offset::PROPBASER | 0x74 => {
                let part = access.part64(offset::PROPBASER)?;
                if lpis && !regs.enable_lpis {
                    let new = part.merge(regs.propbaser, value) & PROPBASER_MASK;
                    if new != regs.propbaser {
                        regs.propbaser = new;
                        state.lpis.forget_config();
                        actions.push(Action::LpiConfigChanged { vcpu });
                    }
                }
                Ok(())
            }
            offset::PENDBASER | 0x7c => {
                let part = access.part64(offset::PENDBASER)?;
                if lpis && !regs.enable_lpis {
                    regs.pendbaser = part.merge(regs.pendbaser, value) & PENDBASER_MASK;
                    // PTZ is bit 62: in a 64-bit write or the upper word.
                    if part != Part::Low {
                        regs.ptz = part.merge(0, value) & PENDBASER_PTZ != 0;
                    }
                }
                Ok(())
            }
            offset::IIDR | offset::STATUSR => access.word(),
            offset::TYPER | 0xc => access.part64(offset::TYPER).map(|_| ()),
            offset::ID_REGS..=0xffff => access.word(),
            _ => Err(Fault::Reserved),
        }
    }

    /// GICR_TYPER of `vcpu` (IHI 0069, 12.10.33): its affinity (Aff0 = its
    /// index), Processor_Number (what an ITS with PTA = 0 names), Last on
    /// the final redistributor, PLPIS when the partition has LPIs.
    pub(super) fn gicr_typer(&self, vcpu: VcpuIndex) -> u64 {
        let typer = GicrTyper(0)
            .with_plpis(self.config.lpis())
            .with_last(vcpu.get().saturating_add(1) == self.config.num_vcpus)
            .with_processor_number(u64::from(vcpu.get()))
            // Affinity_Value is Aff3.Aff2.Aff1.Aff0; only Aff0 is non-zero.
            .with_affinity(u64::from(vcpu.get() & 0xff));
        typer.0
    }

    /// A guest read of `vcpu`'s SGI_base frame.
    pub(super) fn sgi_read(&mut self, vcpu: VcpuIndex, access: Access) -> Result<u64, Fault> {
        self.vcpu(vcpu).map_err(|_| Fault::Reserved)?;
        match self.irq_regs_read(Bank::Private, vcpu, access) {
            Some(result) => result,
            None => Err(Fault::Reserved),
        }
    }

    /// A guest write to `vcpu`'s SGI_base frame.
    pub(super) fn sgi_write(
        &mut self,
        vcpu: VcpuIndex,
        access: Access,
        value: u64,
        actions: &mut Actions,
    ) -> Result<(), Fault> {
        self.vcpu(vcpu).map_err(|_| Fault::Reserved)?;
        match self.irq_regs_write(Bank::Private, vcpu, access, value, actions) {
            Some(result) => result,
            None => Err(Fault::Reserved),
        }
    }

    /// GICR_PROPBASER of `vcpu`, for reading its LPI property table.
    pub fn propbaser(&self, vcpu: VcpuIndex) -> Result<u64, VgicError> {
        Ok(self.vcpu(vcpu)?.redist.propbaser)
    }
}
