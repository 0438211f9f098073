//! Moving a vPE to another redistributor: the GICv4.0 VMOVP sequence
//! (IHI 0069, 5.3 "VMOVP", GITS_TYPER.VMOVP and GITS_CTLR.ITS_Number).
//!
//! What the architecture asks, and what this module plans:
//!
//! - Every ITS that holds mappings for the vPE must learn its new
//!   redistributor. An ITS with GITS_TYPER.VMOVP == 1 propagates one VMOVP
//!   to all the others itself, so one command on one ITS is enough, and
//!   SequenceNumber and ITSList are ignored (written 0). With VMOVP == 0
//!   the hypervisor issues VMOVP on each of those ITSs, all with the same
//!   SequenceNumber and the same ITSList (one bit per ITS, by its
//!   GITS_CTLR.ITS_Number), and every ITS must see the sequences in the
//!   same order: the kernel runs one sequence at a time and takes its
//!   numbers from one [`VmovpSequencer`].
//! - Each VMOVP is followed by a VSYNC of the vPE on the same ITS, so the
//!   ITS's vPE table entry names the new redistributor before the kernel
//!   makes the vPE resident there.
//! - The vPE is not resident on the old redistributor while it moves (the
//!   kernel's part: GICR_VPENDBASER.Valid cleared and Dirty read 0 first).
//!   Its pending vLPIs are bits of its virtual pending table in memory,
//!   which VMOVP does not touch: the new redistributor reads them when the
//!   vPE becomes resident there, so nothing pending is lost.
//! - GICv4.0 doorbells are physical LPIs that the redistributor named by
//!   the vPE table raises for a non-resident vPE: they follow VMOVP with no
//!   command of their own. A doorbell already pending on the old
//!   redistributor stays there; it only wakes the old CPU needlessly, as
//!   the vLPIs it announced are in the pending table.
//!
//! VMOVI, VSYNC, INT, CLEAR, INV and VINVALL name the vPE by its ID, so
//! the backend's later commands need no change; what changes is the
//! recorded RDbase ([`crate::gicv4::VpeConfig::rdbase`]), which the
//! teardown's VMAPP V=0 names.

use alloc::vec::Vec;

use super::backend::PassthroughState;
use super::sink::{PhysItsSink, SinkError};
use crate::gic::its_cmd::{ItsCommand, RdBase};
use crate::ids::{VcpuIndex, VpeId};

/// ITSList has one bit per ITS_Number (GITS_CTLR.ITS_Number is 4 bits).
const ITS_LIST_BITS: u8 = 16;

/// How one physical ITS that maps the vPE takes a VMOVP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmovpForm {
    /// GITS_TYPER.VMOVP == 1: the ITS propagates the move to the others.
    Single,
    /// GITS_TYPER.VMOVP == 0: this ITS needs its own VMOVP, and is bit
    /// `its_number` (GITS_CTLR.ITS_Number) of ITSList.
    ItsList {
        /// GITS_CTLR.ITS_Number.
        its_number: u8,
    },
}

/// One ITS's part of a VMOVP sequence, submitted as one batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmovpStep {
    /// Index of the ITS in the caller's list.
    pub its: usize,
    /// The VMOVP.
    pub vmovp: ItsCommand,
    /// The VSYNC of the vPE that closes the batch.
    pub vsync: ItsCommand,
}

/// Why a vPE was not moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmovpError {
    /// No ITS holds mappings for the vPE.
    NoIts,
    /// Some ITSs propagate VMOVP and some need ITSList: no valid sequence.
    MixedForms,
    /// An ITS_Number does not fit ITSList.
    ItsNumberOutOfRange {
        /// The number given.
        its_number: u8,
    },
    /// Two ITSs claim the same ITS_Number.
    DuplicateItsNumber {
        /// The number given twice.
        its_number: u8,
    },
    /// The partition has no such vCPU.
    VcpuOutOfRange {
        /// The vCPU named.
        vcpu: VcpuIndex,
    },
    /// An ITS did not take its batch; `completed` ITSs before it did. The
    /// recorded RDbase is left as it was.
    Sink {
        /// Index of the ITS that failed.
        its: usize,
        /// ITSs that completed their step before it.
        completed: usize,
        /// What the sink said.
        error: SinkError,
    },
}

/// Sequence numbers for VMOVP sequences: one per sequence, all ITSs of a
/// sequence get the same one. Wraps at 16 bits (SequenceNumber's width);
/// only one sequence is ever in flight, so a reused number is never live.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmovpSequencer {
    next: u16,
}

impl VmovpSequencer {
    /// A sequencer starting at 0.
    pub const fn new() -> Self {
        Self { next: 0 }
    }

    /// The number of the next sequence.
    pub fn take(&mut self) -> u16 {
        let number = self.next;
        self.next = self.next.wrapping_add(1);
        number
    }
}

/// What a completed move did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VpeMove {
    /// The vPE moved.
    pub vpe: VpeId,
    /// Its redistributor before.
    pub from: RdBase,
    /// Its redistributor now.
    pub to: RdBase,
    /// Physical commands issued (VMOVPs and VSYNCs; 0 if it was already there).
    pub commands: usize,
}

/// Plans the VMOVP sequence that moves `vpe` to `target` on `itss`, the
/// ITSs that hold mappings for it, with SequenceNumber `sequence`.
pub fn plan(
    vpe: VpeId,
    target: RdBase,
    itss: &[VmovpForm],
    sequence: u16,
) -> Result<Vec<VmovpStep>, VmovpError> {
    let vsync = ItsCommand::Vsync { vpe_id: vpe.get() };
    let Some(first) = itss.first() else {
        return Err(VmovpError::NoIts);
    };
    if itss.iter().all(|form| *form == VmovpForm::Single) {
        // One VMOVP, propagated by the hardware; the fields are RES0 then.
        let vmovp = ItsCommand::Vmovp {
            vpe_id: vpe.get(),
            rdbase: target,
            seq_num: 0,
            its_list: 0,
        };
        return Ok(alloc::vec![VmovpStep {
            its: 0,
            vmovp,
            vsync
        }]);
    }
    if matches!(first, VmovpForm::Single) {
        return Err(VmovpError::MixedForms);
    }
    let mut its_list: u16 = 0;
    for form in itss {
        let VmovpForm::ItsList { its_number } = *form else {
            return Err(VmovpError::MixedForms);
        };
        if its_number >= ITS_LIST_BITS {
            return Err(VmovpError::ItsNumberOutOfRange { its_number });
        }
        let bit = 1u16 << its_number;
        if its_list & bit != 0 {
            return Err(VmovpError::DuplicateItsNumber { its_number });
        }
        its_list |= bit;
    }
    let vmovp = ItsCommand::Vmovp {
        vpe_id: vpe.get(),
        rdbase: target,
        seq_num: sequence,
        its_list,
    };
    Ok((0..itss.len())
        .map(|its| VmovpStep { its, vmovp, vsync })
        .collect())
}

impl PassthroughState {
    /// Moves `vcpu`'s vPE to the redistributor `target`: the VMOVP
    /// sequence of [`plan`] on `itss` (each ITS that maps the vPE, with
    /// its form and its sink), one batch per ITS in order, then the new
    /// RDbase recorded. The caller has made the vPE non-resident on its
    /// old redistributor, holds the lock that serialises VMOVP sequences,
    /// and makes the vPE resident on the new one afterwards. A vPE already
    /// at `target` costs no command.
    pub fn move_vpe<S: PhysItsSink>(
        &mut self,
        vcpu: VcpuIndex,
        target: RdBase,
        itss: &mut [(VmovpForm, S)],
        sequence: u16,
    ) -> Result<VpeMove, VmovpError> {
        let index = vcpu.index();
        let Some(current) = self.config().vpes.get(index).copied() else {
            return Err(VmovpError::VcpuOutOfRange { vcpu });
        };
        if current.rdbase == target {
            return Ok(VpeMove {
                vpe: current.vpe,
                from: current.rdbase,
                to: target,
                commands: 0,
            });
        }
        let forms: Vec<VmovpForm> = itss.iter().map(|(form, _)| *form).collect();
        let steps = plan(current.vpe, target, &forms, sequence)?;
        for (completed, step) in steps.iter().enumerate() {
            let Some((_, sink)) = itss.get_mut(step.its) else {
                return Err(VmovpError::NoIts);
            };
            if let Err(error) = sink.submit(&[step.vmovp], step.vsync) {
                return Err(VmovpError::Sink {
                    its: step.its,
                    completed,
                    error,
                });
            }
        }
        self.set_rdbase(index, target);
        Ok(VpeMove {
            vpe: current.vpe,
            from: current.rdbase,
            to: target,
            commands: steps.len() * 2,
        })
    }
}
